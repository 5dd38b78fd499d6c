"""template.yaml's promises that no emulator checks: timeouts, encryption, least privilege, no recursion."""

from __future__ import annotations

from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from local.stack import translate

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def sam():
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def resources(sam):
    return sam["Resources"]


def test_visibility_timeout_is_at_least_six_times_the_function_timeout(sam, resources):
    function_timeout = (
        resources["AnalyzeFunction"]["Properties"].get("Timeout") or sam["Globals"]["Function"]["Timeout"]
    )
    assert resources["AnalyzeQueue"]["Properties"]["VisibilityTimeout"] >= 6 * function_timeout


def test_queue_trigger_reports_batch_item_failures_with_a_concurrency_cap(sam, resources):
    trigger = resources["AnalyzeFunction"]["Properties"]["Events"]["Uploads"]["Properties"]
    assert trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sam["Parameters"]["MaximumConcurrency"]["MinValue"] >= 2
    assert resources["AnalyzeQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }


def test_queues_use_sse_sqs_because_s3_cannot_use_the_aws_managed_sqs_key(resources):
    for name in ("AnalyzeQueue", "DeadLetterQueue"):
        properties = resources[name]["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True
        assert "KmsMasterKeyId" not in properties


def test_bucket_waits_for_the_queue_policy_and_notifies_only_creates(resources):
    bucket = resources["UploadsBucket"]
    assert bucket["DependsOn"] == "AnalyzeQueuePolicy"
    notifications = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert sorted(n["Event"] for n in notifications) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]


def test_function_never_writes_to_the_bucket_that_triggers_it(resources):
    statements = resources["AnalyzeFunction"]["Properties"]["Policies"][0]["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        # Tagging raises no ObjectCreated event; writing or deleting objects would.
        writes = [a for a in actions if a.startswith(("s3:Put", "s3:Delete")) and "Tagging" not in a]
        if writes:
            assert "UploadsBucket" not in str(statement["Resource"]), statement
    assert "NotificationConfiguration" not in resources["ArtifactsBucket"]["Properties"]


def test_every_function_statement_names_its_resources(resources):
    for statement in resources["AnalyzeFunction"]["Properties"]["Policies"][0]["Statement"]:
        if statement["Resource"] == "*":
            # Only APIs that accept no resource ARN at all.
            assert all(action.startswith("rekognition:Detect") for action in statement["Action"]), statement["Sid"]


def test_no_secret_in_function_environment(resources):
    variables = resources["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]
    assert not [name for name in variables if name.endswith(("_API_KEY", "_API_SECRET", "_TOKEN", "_PASSWORD"))]


def test_alarms_go_to_the_operations_topic_never_the_alerts_topic(resources):
    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) >= 3
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "OperationsTopic"}]


def test_operations_key_lets_cloudwatch_publish(resources):
    statements = resources["OperationsKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def test_translates_with_the_outputs_the_contract_names(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the translator fills in pseudo parameters
    translated = translate(TEMPLATE, {})
    outputs = set(translated["Outputs"])
    assert {
        "UploadsBucketName",
        "ResultsTableName",
        "AlertsTopicArn",
        "AnalyzeQueueUrl",
        "DeadLetterQueueUrl",
        "ProviderSecretArn",
    } <= outputs
    function = translated["Resources"]["AnalyzeFunction"]["Properties"]
    assert function["Runtime"] == "python3.13"
    assert function["Handler"] == "app.lambda_handler"
