"""template.yaml's operational limits: a queue of its own for backfills, retention, dead-letter and age alarms,
who may publish alerts, what the uploads bucket refuses and which keys the function may decrypt with.

Read as CloudFormation receives it (translated by aws-sam-translator), with one deployment's parameters
applied (``_Deployment``, shared with tests/unit/test_template.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.unit.test_template import EXISTING, REGION, TEMPLATE, _Deployment, _listed, translated_deployments

FOURTEEN_DAYS = 14 * 24 * 3600  # SQS's longest retention
KEY = EXISTING["ExistingBucketKmsKeyArn"]
OTHER_KEY = KEY.replace("1234abcd", "9876fedc")


@pytest.fixture(scope="module")
def deployment():
    return translated_deployments()


def _mappings(stack: _Deployment) -> dict[str, dict[str, Any]]:
    """Event source mappings by the queue they read."""
    return {
        r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: r["Properties"]
        for r in stack.resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }


def _dead_letter_queues(stack: _Deployment) -> set[str]:
    """Every queue something in the stack sends what failed to: redrive policies, the on-failure
    destination of direct invocations, the EventBridge rule's dead-letter config."""
    found = set()
    for resource in stack.resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in properties:
            found.add(properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig":
            found.add(properties["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0])
        if resource["Type"] == "AWS::Events::Rule":
            found |= {t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] for t in properties["Targets"]}
    return found


def _alarms(stack: _Deployment) -> list[dict[str, Any]]:
    return [r["Properties"] for r in stack.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]


# -- the backfill queue ------------------------------------------------------------------------------------


def test_backfill_messages_have_a_queue_a_trigger_and_a_concurrency_of_their_own(deployment):
    stack = deployment(MaximumConcurrency="50", BackfillMaximumConcurrency="4")
    mappings = _mappings(stack)
    # The review function's own queue (the decisions' effects) has a trigger of its own too.
    assert set(mappings) == {"AnalyzeQueue", "BackfillQueue", "ReviewEffectsQueue"}
    mappings = {queue: mappings[queue] for queue in ("AnalyzeQueue", "BackfillQueue")}
    # Live uploads keep their own share: a backfill of millions is capped apart from them.
    assert mappings["AnalyzeQueue"]["ScalingConfig"] == {"MaximumConcurrency": "50"}
    assert mappings["BackfillQueue"]["ScalingConfig"] == {"MaximumConcurrency": "4"}
    for mapping in mappings.values():
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    live, backfill = (stack.resources[q]["Properties"]["RedrivePolicy"] for q in ("AnalyzeQueue", "BackfillQueue"))
    assert live["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert backfill["deadLetterTargetArn"] == {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]}
    # Both SSE-SQS, as the analysis queue.
    for name in ("BackfillQueue", "BackfillDeadLetterQueue"):
        properties = stack.resources[name]["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True and "KmsMasterKeyId" not in properties, name


def test_the_command_line_and_the_at_scale_backfill_send_to_the_backfill_queue(deployment):
    outputs = deployment().outputs
    assert outputs["BackfillQueueUrl"] == {"Ref": "BackfillQueue"}
    assert outputs["BackfillQueueArn"] == {"Fn::GetAtt": ["BackfillQueue", "Arn"]}
    assert outputs["BackfillDeadLetterQueueArn"] == {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]}
    assert "BackfillQueueUrl" in (TEMPLATE.parent / "image_analysis_cli" / "resources.py").read_text()
    scale = yaml_parse((TEMPLATE.parent / "scale" / "backfill-distributed-map.yaml").read_text())
    assert set(scale["Parameters"]) >= {"BackfillQueueUrl", "BackfillQueueArn"}
    assert not {"AnalyzeQueueUrl", "AnalyzeQueueArn"} & set(scale["Parameters"])


def test_every_queue_keeps_messages_fourteen_days(deployment):
    for parameters in ({}, EXISTING):
        stack = deployment(**parameters)
        queues = {n: r["Properties"] for n, r in stack.resources.items() if r["Type"] == "AWS::SQS::Queue"}
        assert set(queues) == {
            "AnalyzeQueue",
            "DeadLetterQueue",
            "BackfillQueue",
            "BackfillDeadLetterQueue",
            "ReviewEffectsQueue",
            "ReviewEffectsDeadLetterQueue",
        }
        for name, properties in queues.items():
            assert properties["MessageRetentionPeriod"] == FOURTEEN_DAYS, name


def test_a_message_is_delivered_at_least_three_times_before_its_dead_letter_queue(sam_parameters):
    receives = sam_parameters["MaxReceiveCount"]
    assert receives["MinValue"] >= 3 and receives["Default"] >= 3


@pytest.fixture(scope="module")
def sam_parameters() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())["Parameters"]


def test_both_queues_redrive_after_the_same_max_receive_count(deployment):
    stack = deployment(MaxReceiveCount="4")
    for queue in ("AnalyzeQueue", "BackfillQueue"):
        assert stack.resources[queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == "4", queue


# -- alarms --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameters", [{}, EXISTING], ids=["created-bucket", "existing-bucket"])
def test_every_dead_letter_queue_alarms_on_its_first_message(deployment, parameters):
    stack = deployment(**parameters)
    dead_letter_queues = _dead_letter_queues(stack)
    assert dead_letter_queues == {"DeadLetterQueue", "BackfillDeadLetterQueue", "ReviewEffectsDeadLetterQueue"}
    for queue in dead_letter_queues:
        watching = [
            a
            for a in _alarms(stack)
            if a.get("Namespace") == "AWS/SQS"
            and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and a["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        ]
        assert len(watching) == 1, queue
        (alarm,) = watching
        # One message is enough: it expires 14 days after it was first sent, not after it arrived.
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Maximum",
            0,
            "GreaterThanThreshold",
        )
        assert alarm["EvaluationPeriods"] == 1 and alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]


def test_live_uploads_waiting_too_long_raise_an_alarm_and_a_backfill_does_not(deployment):
    stack = deployment(QueueAgeAlarmSeconds="1800")
    aged = [a for a in _alarms(stack) if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    (alarm,) = aged
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["AnalyzeQueue", "QueueName"]}}]
    assert alarm["Statistic"] == "Maximum" and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == "1800" and alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]


def test_the_default_queue_age_alarm_is_above_the_time_retries_may_take(deployment, sam_parameters):
    stack = deployment()
    visibility = stack.resources["AnalyzeQueue"]["Properties"]["VisibilityTimeout"]
    receives = int(sam_parameters["MaxReceiveCount"]["Default"])
    # A message handed back waits out the visibility timeout before each retry: no alarm for that alone.
    assert sam_parameters["QueueAgeAlarmSeconds"]["Default"] > visibility * (receives - 1)


# -- the alerts topic ----------------------------------------------------------------------------------------


def test_only_the_function_publishes_alerts_and_only_over_tls(deployment):
    stack = deployment()
    policy = stack.resources["AlertsTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "AlertsTopic"}]
    statements = policy["PolicyDocument"]["Statement"]
    assert [s for s in statements if s["Effect"] == "Allow"] == []  # grants nothing to anyone
    tls = [s for s in statements if s["Condition"].get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert len(tls) == 1 and tls[0]["Effect"] == "Deny" and tls[0]["Principal"] == "*"
    assert "sns:Publish" in _listed(tls[0]["Action"]) and tls[0]["Resource"] == {"Ref": "AlertsTopic"}
    (others,) = [s for s in statements if "ArnNotEquals" in s["Condition"]]
    assert others["Effect"] == "Deny" and others["Principal"] == "*" and _listed(others["Action"]) == ["sns:Publish"]
    assert others["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": {"Fn::GetAtt": ["AnalyzeFunctionRole", "Arn"]}}
    # The role the policy lets through is the function's, and its own policy allows the publish.
    assert stack.resources["AnalyzeFunction"]["Properties"]["Role"] == {"Fn::GetAtt": ["AnalyzeFunctionRole", "Arn"]}
    assert {"Ref": "AlertsTopic"} in stack.allowed("sns:Publish")


# -- what the uploads bucket refuses ---------------------------------------------------------------------------


def test_the_uploads_bucket_refuses_uploads_under_a_customer_provided_key(deployment):
    stack = deployment()
    statements = stack.resources["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Sid"] == "DenyCustomerProvidedKeys"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    # PutObject also authorizes CreateMultipartUpload, UploadPart and CopyObject.
    assert _listed(deny["Action"]) == ["s3:PutObject"]
    assert stack.sub(deny["Resource"], UploadsBucket="image-uploads-u") == "arn:aws:s3:::image-uploads-u/*"
    # The header is present (not null) exactly when the request carries a customer key.
    assert deny["Condition"] == {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}
    # The function never needs it: it writes nothing to the uploads bucket.
    assert not [r for r in stack.allowed("s3:PutObject") if "UploadsBucket" in json.dumps(r)]


def test_the_uploads_bucket_refuses_uploads_straight_into_an_archive_storage_class(deployment):
    stack = deployment()
    statements = stack.resources["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Sid"] == "DenyUploadsToArchiveStorage"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and _listed(deny["Action"]) == ["s3:PutObject"]
    # Glacier Instant Retrieval is read like any object: only the classes that need a restore.
    assert deny["Condition"] == {"StringEquals": {"s3:x-amz-storage-class": ["GLACIER", "DEEP_ARCHIVE"]}}
    # Nor does the bucket archive anything later.
    assert "LifecycleConfiguration" not in stack.resources["UploadsBucket"]["Properties"]


# -- KMS keys ------------------------------------------------------------------------------------------------


def _decryptable(stack: _Deployment) -> list[Any]:
    keys = []
    for statement in stack.role_statements():
        if "kms:Decrypt" in _listed(statement["Action"]):
            assert stack.sub(statement["Condition"]["StringEquals"]["kms:ViaService"]) == f"s3.{REGION}.amazonaws.com"
            keys += _listed(statement["Resource"])
    return keys


@pytest.mark.parametrize(
    ("parameters", "keys"),
    [
        ({}, []),
        ({"UploadsKmsKeyArn": KEY}, [KEY]),
        ({**EXISTING}, [KEY]),
        # A key given as UploadsKmsKeyArn with an existing bucket is that bucket's key: honoured, not dropped.
        ({**{k: v for k, v in EXISTING.items() if k != "ExistingBucketKmsKeyArn"}, "UploadsKmsKeyArn": KEY}, [KEY]),
        ({**EXISTING, "UploadsKmsKeyArn": OTHER_KEY}, [OTHER_KEY, KEY]),
    ],
    ids=["no-key", "created-bucket", "existing-bucket", "existing-bucket-uploads-key", "existing-bucket-both"],
)
def test_the_function_may_decrypt_with_every_key_given_for_its_uploads(deployment, parameters, keys):
    stack = deployment(**parameters)
    assert sorted(_decryptable(stack)) == sorted(keys)
    if "ExistingBucketName" in parameters:
        assert "UploadsBucket" not in stack.resources  # nothing is created or encrypted: only read
