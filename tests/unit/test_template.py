"""template.yaml's promises that no emulator checks: timeouts, encryption, least privilege, keys, alarms.

Most tests read the template as CloudFormation receives it (translated by aws-sam-translator, as
``sam deploy`` does, so that SAM's own additions are seen too), with the parameters and conditions of one
deployment applied by ``_Deployment``.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
from samtranslator.yaml_helper import yaml_parse

from image_analysis.models import Flag
from image_analysis.providers import REGISTRY
from local.stack import translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
LAYER = ROOT / "layers/shared/image_analysis"
REGION, ACCOUNT, STACK = "eu-west-1", "123456789012", "photos-prod"
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK, "AWS::Partition": "aws"}
# The only actions that may name "*" as their resource: their APIs accept no resource ARN.
STAR_ONLY_ACTIONS = {
    "rekognition:DetectLabels",
    "rekognition:DetectModerationLabels",
    "rekognition:DetectText",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # The console's vendor spend (the review function): GetMetricData takes no resource ARN.
    "cloudwatch:GetMetricData",
}
EXISTING = {
    "ExistingBucketName": "users-photos",
    "ExistingBucketPrefix": "incoming/",
    "ExistingBucketSuffix": ".jpg",
    "ExistingBucketKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
_NO_VALUE = object()


class _Deployment:
    """The translated template with one deployment's parameters and conditions applied.

    Fn::If, Fn::Equals/Not/And/Or, Conditions, Ref to parameters and AWS::NoValue are evaluated the way
    CloudFormation does; every other intrinsic (Ref to resources, GetAtt, Sub) is kept as written.
    """

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        declared = template["Parameters"]
        self.parameters = {name: str(p.get("Default", "")) for name, p in declared.items()} | parameters
        self.list_parameters = {n for n, p in declared.items() if p["Type"] == "CommaDelimitedList"}
        self._conditions = template.get("Conditions", {})
        self._known: dict[str, bool] = {}
        self.resources = {
            name: self.resolve(r)
            for name, r in template["Resources"].items()
            if "Condition" not in r or self.condition(r["Condition"])
        }
        self.outputs = {
            name: self.resolve(o["Value"])
            for name, o in template["Outputs"].items()
            if "Condition" not in o or self.condition(o["Condition"])
        }

    def condition(self, name: str) -> bool:
        if name not in self._known:
            self._known[name] = bool(self._value(self._conditions[name]))
        return self._known[name]

    def _value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Fn::Equals":
                return self._value(argument[0]) == self._value(argument[1])
            if function == "Fn::Not":
                return not self._value(argument[0])
            if function == "Fn::And":
                return all(self._value(a) for a in argument)
            if function == "Fn::Or":
                return any(self._value(a) for a in argument)
            if function == "Condition":
                return self.condition(argument)
            if function == "Fn::Join":
                return argument[0].join(self._value(argument[1]))
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return self.resolve(when_true if self.condition(name) else when_false)
        if set(node) == {"Ref"}:
            if node["Ref"] == "AWS::NoValue":
                return _NO_VALUE
            if node["Ref"] in self.parameters:
                value = self.parameters[node["Ref"]]
                return value.split(",") if node["Ref"] in self.list_parameters else value
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def sub(self, node: Any, **names: str) -> str:
        """A Fn::Sub string with pseudo parameters, parameters and the given resource names filled in."""
        text, variables = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        values = PSEUDO | self.parameters | {k: str(v) for k, v in variables.items()} | names
        return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), m.group(0)), text)

    # -- the function's role ---------------------------------------------------------------------------
    def role_statements(self, function: str = "AnalyzeFunction") -> list[dict[str, Any]]:
        role = self.resources[self.resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]]
        return [s for policy in role["Properties"].get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]

    def allowed(self, action: str, function: str = "AnalyzeFunction") -> list[Any]:
        """Every resource an Allow statement of the function's role names for this action."""
        found = []
        for statement in self.role_statements(function):
            if statement["Effect"] == "Allow" and action in _listed(statement["Action"]):
                found += _listed(statement["Resource"])
        return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return yaml_parse(TEMPLATE.read_text())


def translated_deployments() -> Any:
    """``make(**parameters)``: the template as CloudFormation receives it with those parameters, translated
    once per set of parameters (a translation takes most of a second)."""
    cache: dict[str, _Deployment] = {}

    def make(**parameters: str) -> _Deployment:
        key = json.dumps(parameters, sort_keys=True)
        if key not in cache:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("AWS_DEFAULT_REGION", REGION)  # the translator fills in pseudo parameters
                cache[key] = _Deployment(translate(TEMPLATE, parameters), parameters)
        return cache[key]

    return make


@pytest.fixture(scope="module")
def deployment() -> Any:
    return translated_deployments()


# -- queue, trigger, notifications ---------------------------------------------------------------------


def test_visibility_timeout_is_at_least_six_times_the_function_timeout(sam):
    resources = sam["Resources"]
    function_timeout = (
        resources["AnalyzeFunction"]["Properties"].get("Timeout") or sam["Globals"]["Function"]["Timeout"]
    )
    for queue in ("AnalyzeQueue", "BackfillQueue"):
        assert resources[queue]["Properties"]["VisibilityTimeout"] >= 6 * function_timeout, queue


def test_queue_trigger_reports_batch_item_failures_with_a_concurrency_cap(sam):
    resources = sam["Resources"]
    trigger = resources["AnalyzeFunction"]["Properties"]["Events"]["Uploads"]["Properties"]
    assert trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sam["Parameters"]["MaximumConcurrency"]["MinValue"] >= 2
    assert resources["AnalyzeQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }


def test_bucket_waits_for_the_queue_policy_and_notifies_creates_and_deletes(deployment):
    bucket = deployment().resources["UploadsBucket"]
    assert bucket["DependsOn"] == "AnalyzeQueuePolicy"
    notifications = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert sorted(n["Event"] for n in notifications) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert {json.dumps(n["Queue"]) for n in notifications} == {json.dumps({"Fn::GetAtt": ["AnalyzeQueue", "Arn"]})}


# -- least privilege -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameters",
    [{}, {"EnableTracing": "true"}, EXISTING, {"UploadsKmsKeyArn": EXISTING["ExistingBucketKmsKeyArn"]}],
    ids=["default", "tracing", "existing-bucket", "uploads-key"],
)
def test_every_role_names_its_resources_and_attaches_no_managed_policy(deployment, parameters):
    stack = deployment(**parameters)
    roles = {n: r for n, r in stack.resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {"AnalyzeFunctionRole", "ReviewFunctionRole", "ReviewSweepScheduleRole"}, (
        "SAM generated a role of its own"
    )
    policies = {n for n, r in stack.resources.items() if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")}
    # The one managed policy is the stack's own, for moderators to attach (contract: ModeratorPolicyArn).
    assert policies == {"ModeratorPolicy"}
    for role in roles.values():
        assert not role["Properties"].get("ManagedPolicyArns"), "managed policies allow '*' resources"
    moderator = stack.resources["ModeratorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    schedule = [
        statement
        for policy in roles["ReviewSweepScheduleRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    for statement in [*stack.role_statements(), *stack.role_statements("ReviewFunction"), *moderator, *schedule]:
        actions = _listed(statement["Action"])
        assert all("*" not in action for action in actions), statement["Sid"]
        if "*" in _listed(statement["Resource"]):
            assert set(actions) <= STAR_ONLY_ACTIONS, statement["Sid"]


def test_xray_permissions_only_when_tracing_is_on(deployment):
    assert deployment().allowed("xray:PutTraceSegments") == []
    traced = deployment(EnableTracing="true")
    assert traced.allowed("xray:PutTraceSegments") == ["*"]
    assert traced.resources["AnalyzeFunction"]["Properties"]["TracingConfig"] == {"Mode": "Active"}


def _calls(module: Path, client: str) -> set[str]:
    """boto3 operations a module calls on its client, as IAM action names (put_item -> PutItem)."""
    names = re.findall(rf"self\.{client}\.(\w+)\(", module.read_text())
    return {"".join(part.title() for part in name.split("_")) for name in names if name != "exceptions"}


@pytest.mark.parametrize(
    ("module", "table"),
    [
        ("store.py", "ResultsTable"),
        ("cache.py", "CacheTable"),
        ("usage.py", "UsageTable"),
        ("alert_ledger.py", "AlertLedgerTable"),
    ],
)
def test_the_function_may_make_every_dynamodb_call_its_code_makes(deployment, module, table):
    operations = _calls(LAYER / module, "_client")
    assert operations, f"no DynamoDB calls found in {module}"
    for operation in operations:
        assert {"Fn::GetAtt": [table, "Arn"]} in deployment().allowed(f"dynamodb:{operation}"), operation


def test_results_are_never_deleted_by_the_function_only_reduced_to_expiring_watermarks(deployment):
    # OnDelete=delete keeps a content-free watermark that expires: a late create event must find it.
    assert "DeleteItem" not in _calls(LAYER / "store.py", "_client")
    assert {"Fn::GetAtt": ["ResultsTable", "Arn"]} not in deployment().allowed("dynamodb:DeleteItem")


# head_object and get_object are authorized as s3:GetObject (s3:GetObjectVersion with a version id).
_S3_ACTIONS = {
    "HeadObject": ["s3:GetObject", "s3:GetObjectVersion"],
    "GetObject": ["s3:GetObject", "s3:GetObjectVersion"],
    "GetObjectTagging": ["s3:GetObjectTagging", "s3:GetObjectVersionTagging"],
    "PutObjectTagging": ["s3:PutObjectTagging", "s3:PutObjectVersionTagging"],
    "DeleteObjectTagging": ["s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"],
}


@pytest.mark.parametrize(
    ("parameters", "objects", "bucket"),
    [
        ({}, "arn:aws:s3:::image-uploads-STACKID/*", "arn:aws:s3:::image-uploads-STACKID"),
        (EXISTING, "arn:aws:s3:::users-photos/incoming/*.jpg", "arn:aws:s3:::users-photos"),
    ],
    ids=["created-bucket", "existing-bucket"],
)
def test_the_function_reads_and_tags_only_the_uploads_that_trigger_it(deployment, parameters, objects, bucket):
    stack = deployment(**parameters)
    names = {"UploadsBucket": "image-uploads-STACKID"}
    operations = _calls(LAYER / "objects.py", "_s3")
    assert set(operations) == set(_S3_ACTIONS), "objects.py calls S3 in a way this test does not know"
    for operation in operations:
        for action in _S3_ACTIONS[operation]:
            resources = [stack.sub(r, **names) for r in stack.allowed(action)]
            # Besides the uploads, only the artifacts bucket's prepared copies and the hash banks' snapshots
            # (which trigger nothing).
            others = ("${ArtifactsBucket.Arn}/prepared/", "${BanksBucket.Arn}/banks/")
            assert [r for r in resources if not r.startswith(others)] == [objects], action
    # Without ListBucket S3 answers 403 for a deleted key, which the code records as object_unreadable.
    assert [stack.sub(r, **names) for r in stack.allowed("s3:ListBucket")] == [bucket]


def test_the_trigger_and_the_on_failure_destination_are_allowed_on_their_queues_only(deployment):
    stack = deployment()
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert stack.allowed(action) == [
            {"Fn::GetAtt": ["AnalyzeQueue", "Arn"]},
            {"Fn::GetAtt": ["BackfillQueue", "Arn"]},
        ], action
    assert stack.allowed("sqs:SendMessage") == [{"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}]
    destination = stack.resources["AnalyzeFunctionEventInvokeConfig"]["Properties"]["DestinationConfig"]
    assert destination["OnFailure"]["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def test_the_function_writes_only_to_its_own_log_group_with_retention(deployment):
    stack = deployment()
    function = stack.resources["AnalyzeFunction"]["Properties"]
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "AnalyzeLogGroup"}
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert stack.allowed(action) == [{"Fn::GetAtt": ["AnalyzeLogGroup", "Arn"]}]
    assert stack.allowed("logs:CreateLogGroup") == []
    assert stack.resources["AnalyzeLogGroup"]["Properties"]["RetentionInDays"] == "365"


def test_function_never_writes_to_the_bucket_that_triggers_it(deployment):
    for parameters in ({}, EXISTING):
        stack = deployment(**parameters)
        for statement in stack.role_statements():
            # Tagging raises no ObjectCreated event; writing or deleting objects would.
            writes = [a for a in _listed(statement["Action"]) if a.startswith(("s3:Put", "s3:Delete"))]
            if [a for a in writes if "Tagging" not in a]:
                resources = json.dumps(statement["Resource"])
                assert "UploadsBucket" not in resources and "users-photos" not in resources, statement["Sid"]
        assert "NotificationConfiguration" not in stack.resources["ArtifactsBucket"]["Properties"]


def test_no_secret_in_function_environment(sam):
    variables = sam["Resources"]["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]
    assert not [name for name in variables if name.endswith(("_API_KEY", "_API_SECRET", "_TOKEN", "_PASSWORD"))]


# -- existing bucket ----------------------------------------------------------------------------------------


def test_an_existing_bucket_is_attached_through_an_eventbridge_rule_and_left_alone(deployment):
    stack = deployment(**EXISTING)
    for created in ("UploadsBucket", "UploadsBucketPolicy"):
        assert created not in stack.resources
    rule = stack.resources["UploadsRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert sorted(pattern["detail-type"]) == ["Object Created", "Object Deleted"]
    assert pattern["detail"]["bucket"]["name"] == ["users-photos"]
    (key_filter,) = pattern["detail"]["object"]["key"]
    assert stack.sub(key_filter["wildcard"]) == "incoming/*.jpg"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["AnalyzeQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    for queue_policy in ("AnalyzeQueuePolicy", "DeadLetterQueuePolicy"):
        (statement,) = stack.resources[queue_policy]["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["UploadsRule", "Arn"]}
    assert stack.outputs["UploadsBucketName"] == "users-photos"
    assert stack.outputs["UploadsRuleArn"] == {"Fn::GetAtt": ["UploadsRule", "Arn"]}


def test_a_created_bucket_gets_no_rule_and_only_s3_may_send_to_the_queue(deployment):
    stack = deployment()
    assert "UploadsRule" not in stack.resources and "DeadLetterQueuePolicy" not in stack.resources
    (statement,) = stack.resources["AnalyzeQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert (
        stack.sub(statement["Condition"]["ArnEquals"]["aws:SourceArn"], StackUuid="u-1")
        == "arn:aws:s3:::image-uploads-u-1"
    )
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


# -- encryption ----------------------------------------------------------------------------------------------


def _key_statements(stack: _Deployment, key: str, service: str) -> list[dict[str, Any]]:
    policy = stack.resources[key]["Properties"]["KeyPolicy"]
    return [s for s in policy["Statement"] if s["Effect"] == "Allow" and s["Principal"].get("Service") == service]


def _service_name(principal: Any, stack: _Deployment) -> str:
    return stack.sub(principal) if isinstance(principal, dict) else principal


def _alarm_arn(stack: _Deployment, alarm: dict[str, Any]) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stack.sub(alarm['Properties']['AlarmName'])}"


def test_every_key_user_is_allowed_to_use_its_key(deployment):
    """The emulator enforces no key policy: this reads who publishes, sends and writes with which key."""
    stack = deployment()
    resources = stack.resources
    alarms = [r for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    for name, topic in ((n, r) for n, r in resources.items() if r["Type"] == "AWS::SNS::Topic"):
        key = topic["Properties"]["KmsMasterKeyId"]
        services = {"cloudwatch.amazonaws.com" for a in alarms if {"Ref": name} in a["Properties"]["AlarmActions"]}
        services |= {
            "events.amazonaws.com"
            for r in resources.values()
            if r["Type"] == "AWS::Events::Rule"
            for t in r["Properties"]["Targets"]
            if t["Arn"] == {"Ref": name}
        }
        if key == "alias/aws/sns":
            # The AWS-managed key allows no service principal: only this account's principals may publish.
            assert not services, f"{name}: {services} cannot publish to a topic under alias/aws/sns"
            publishers = stack.allowed("sns:Publish") + stack.allowed("sns:Publish", "ReviewFunction")
            assert {"Ref": name} in publishers
            continue
        assert key == {"Ref": "OperationsKey"}, name
        assert services == {"cloudwatch.amazonaws.com"}, name
        (statement,) = _key_statements(stack, "OperationsKey", "cloudwatch.amazonaws.com")
        assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(statement["Action"])
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
        allowed_alarms = stack.sub(statement["Condition"]["ArnLike"]["aws:SourceArn"])
        for alarm in alarms:
            assert fnmatch.fnmatchcase(_alarm_arn(stack, alarm), allowed_alarms), alarm["Properties"]["AlarmName"]
    # Queues that S3 and EventBridge send to: SSE-SQS, never the AWS-managed SQS key.
    for name in ("AnalyzeQueue", "DeadLetterQueue", "ReviewEffectsQueue", "ReviewEffectsDeadLetterQueue"):
        properties = resources[name]["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True and "KmsMasterKeyId" not in properties, name
    # The log groups: CloudWatch Logs may use the key for exactly these log groups.
    groups = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"]
    # The functions' two, the review API's and the console API's access logs.
    assert len(groups) == 4 and all(g["KmsKeyId"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]} for g in groups)
    (logs,) = [
        s
        for s in resources["OperationsKey"]["Properties"]["KeyPolicy"]["Statement"]
        if _service_name(s["Principal"].get("Service", ""), stack) == f"logs.{REGION}.amazonaws.com"
    ]
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs["Action"])
    contexts = [stack.sub(c) for c in logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]]
    assert sorted(contexts) == sorted(
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{stack.sub(g['LogGroupName'])}" for g in groups
    )
    # Tables and the secret: read through their services' AWS-managed keys, which need no grant.
    for name, resource in resources.items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert resource["Properties"]["SSESpecification"] == {"SSEEnabled": True}, name
    assert "KmsKeyId" not in resources["ProviderSecret"]["Properties"]
    assert stack.allowed("kms:Decrypt") == []


@pytest.mark.parametrize(
    ("parameters", "key"),
    [
        ({"UploadsKmsKeyArn": EXISTING["ExistingBucketKmsKeyArn"]}, EXISTING["ExistingBucketKmsKeyArn"]),
        (EXISTING, EXISTING["ExistingBucketKmsKeyArn"]),
    ],
    ids=["created-bucket", "existing-bucket"],
)
def test_the_function_may_decrypt_uploads_under_their_key_through_s3_only(deployment, parameters, key):
    stack = deployment(**parameters)
    (statement,) = [s for s in stack.role_statements() if "kms:Decrypt" in _listed(s["Action"])]
    assert statement["Resource"] == key
    assert stack.sub(statement["Condition"]["StringEquals"]["kms:ViaService"]) == f"s3.{REGION}.amazonaws.com"


def test_uploads_bucket_is_sse_s3_by_default_and_sse_kms_with_a_key(deployment):
    def rule(stack: _Deployment) -> dict[str, Any]:
        (only,) = stack.resources["UploadsBucket"]["Properties"]["BucketEncryption"][
            "ServerSideEncryptionConfiguration"
        ]
        return only

    assert rule(deployment()) == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    key = EXISTING["ExistingBucketKmsKeyArn"]
    assert rule(deployment(UploadsKmsKeyArn=key)) == {
        "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
        "BucketKeyEnabled": True,
    }


def test_access_logs_go_to_the_log_bucket_only_when_one_is_given(deployment):
    for name in ("UploadsBucket", "ArtifactsBucket"):
        assert "LoggingConfiguration" not in deployment().resources[name]["Properties"]
        logging = deployment(LogBucketName="org-access-logs").resources[name]["Properties"]["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == "org-access-logs"


# -- quarantine ----------------------------------------------------------------------------------------------


def _statements(stack: _Deployment, policy: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in stack.resources[policy]["Properties"]["PolicyDocument"]["Statement"]}


def test_quarantine_denies_reading_flagged_objects_to_all_but_the_named_roles(deployment):
    reviewer = f"arn:aws:iam::{ACCOUNT}:role/moderation-reviewer"
    stack = deployment(QuarantineReaderArns=reviewer)
    deny = _statements(stack, "UploadsBucketPolicy")["DenyReadingFlaggedObjects"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert set(deny["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert deny["Condition"]["StringEquals"] == {"s3:ExistingObjectTag/moderation": "flagged"}
    split = deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]["Fn::Split"]
    readers = split[1]["Fn::Join"][1]
    assert readers == [
        {"Fn::Join": [",", [reviewer]]},
        {"Fn::GetAtt": ["AnalyzeFunctionRole", "Arn"]},
        # The review function hands moderators presigned URLs of flagged originals.
        {"Fn::GetAtt": ["ReviewFunctionRole", "Arn"]},
    ]
    # The deny matches the tag the pipeline writes, so the deny implies tagging.
    assert stack.resources["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]["QUARANTINE_TAGS"] == "true"
    assert '"moderation": "flagged"' in (LAYER / "objects.py").read_text()


def test_no_quarantine_statement_by_default_or_on_an_existing_bucket(deployment):
    assert set(_statements(deployment(), "UploadsBucketPolicy")) == {
        "DenyInsecureTransport",
        "DenyCustomerProvidedKeys",
        "DenyUploadsToArchiveStorage",
    }
    existing = deployment(**EXISTING, QuarantineReaderArns="arn:aws:iam::123456789012:role/r")
    assert "UploadsBucketPolicy" not in existing.resources
    assert existing.resources["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]["QUARANTINE_TAGS"] == "false"


# -- observability -----------------------------------------------------------------------------------------


def _emitted_metrics() -> tuple[set[str], set[str]]:
    """Metric names the layer emits: exact names, and the prefixes of names built with f-strings."""
    exact, prefixes = set(), set()
    for module in LAYER.rglob("*.py"):
        for arguments in re.findall(r"_count\(([^\n]*)", module.read_text()):
            # Every literal on the call's line: a name may be chosen by a conditional expression.
            for is_f, name, templated in re.findall(r'(f?)"([A-Za-z_]*)(\{?)', arguments):
                (prefixes if is_f and templated else exact).add(name)
    return exact, prefixes


def _is_emitted(name: str) -> bool:
    exact, prefixes = _emitted_metrics()
    return name in exact or any(p and name.startswith(p) for p in prefixes)


def _dashboard(stack: _Deployment, **names: str) -> dict[str, Any]:
    body = stack.resources["Dashboard"]["Properties"]["DashboardBody"]
    names = {"AnalyzeFunction": "fn", "AnalyzeQueue.QueueName": "q", "DeadLetterQueue.QueueName": "dlq"} | names
    return json.loads(stack.sub(body, **names))


def _dashboard_metrics(stack: _Deployment) -> set[str]:
    return {
        row[1]
        for widget in _dashboard(stack)["widgets"]
        for row in widget["properties"].get("metrics", [])
        if isinstance(row[0], str) and row[0] == "ImageAnalysis"
    }


def test_every_custom_metric_in_alarms_and_dashboard_is_one_the_code_emits(deployment):
    stack = deployment()
    names = set(_dashboard_metrics(stack))
    for alarm in (r for r in stack.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        properties = alarm["Properties"]
        if properties.get("Namespace") == "ImageAnalysis":
            names.add(properties["MetricName"])
        names |= {m["MetricStat"]["Metric"]["MetricName"] for m in properties.get("Metrics", []) if "MetricStat" in m}
    assert {"ProviderQuotaExhausted", "ImagesFailed", "ImagesSucceeded", "BytesSent"} <= names
    assert [n for n in sorted(names) if not _is_emitted(n)] == []


def test_the_dashboard_shows_statuses_providers_flags_savings_bytes_and_the_dead_letter_queue(deployment):
    stack = deployment()
    shown = _dashboard_metrics(stack)
    statuses = {"ImagesSucceeded", "ImagesPartial", "ImagesFailed", "ImagesRejected", "ImagesSkipped"}
    assert statuses <= shown
    assert {f"ProviderLatency_{p}" for p in REGISTRY} <= shown
    assert {f"Flagged_{f}" for f in get_args(Flag)} <= shown
    assert {f"CallsSaved_{p}" for p in REGISTRY if p != "builtin"} <= shown
    assert "BytesSent" in shown
    widgets = _dashboard(stack)["widgets"]
    rows = [row for w in widgets for row in w["properties"].get("metrics", [])]
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "dlq"] in [r[:4] for r in rows]
    (search,) = [r[0]["expression"] for r in rows if isinstance(r[0], dict) and "SEARCH" in r[0]["expression"]]
    assert "ProviderError" in search and _is_emitted("ProviderError_imagga_timeout")
    alarm_widget = next(w for w in widgets if w["type"] == "alarm")
    alarms = [r for r in stack.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(_alarm_arn(stack, a) for a in alarms)


def test_alarms_go_to_the_operations_topic_and_watch_a_rate_and_the_quota(deployment):
    stack = deployment()
    alarms = {n: r["Properties"] for n, r in stack.resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) >= 4
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "OperationsTopic"}]
    quota = [a for a in alarms.values() if a.get("MetricName") == "ProviderQuotaExhausted"]
    assert quota and quota[0]["Threshold"] == 0 and quota[0]["ComparisonOperator"] == "GreaterThanThreshold"
    (rate,) = [a for a in alarms.values() if "Metrics" in a]
    (expression,) = [m for m in rate["Metrics"] if m.get("ReturnData")]
    by_id = {m["Id"]: m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"] if "MetricStat" in m}
    numerator, denominator = expression["Expression"].split(" / ")
    assert [by_id[i] for i in by_id if i in numerator] == ["ImagesFailed"]
    assert {by_id[i] for i in by_id if i in denominator} == {
        "ImagesFailed",
        "ImagesSucceeded",
        "ImagesPartial",
        "ImagesRejected",
    }
    assert rate["Threshold"] == "10" and "ImagesFailed" not in {a.get("MetricName") for a in alarms.values()}


def _custom_alarm_metrics(stack: _Deployment) -> list[dict[str, Any]]:
    """Every ImageAnalysis metric an alarm watches: a plain alarm's, or one inside a metric-math alarm."""
    found = []
    for alarm in (r["Properties"] for r in stack.resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        if alarm.get("Namespace") == "ImageAnalysis":
            found.append({k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions")})
        found += [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
    return [m for m in found if m["Namespace"] == "ImageAnalysis"]


def _dashboard_rows(stack: _Deployment, **names: str) -> list[list[Any]]:
    widgets = _dashboard(stack, **names)["widgets"]
    rows = [row for w in widgets for row in w["properties"].get("metrics", [])]
    return [row for row in rows if row[0] == "ImageAnalysis"]


def test_the_function_names_its_metrics_service_after_the_stack(sam, deployment):
    assert sam["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == {
        "Ref": "AWS::StackName"
    }
    variables = deployment().resources["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}


def test_every_alarm_watches_this_stacks_service_only(deployment):
    watched = _custom_alarm_metrics(deployment())
    assert {m["MetricName"] for m in watched} >= {"ProviderQuotaExhausted", "ImagesFailed", "ProviderAuthFailed"}
    for metric in watched:
        assert metric["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}], metric["MetricName"]


def test_every_dashboard_metric_is_this_stacks_service_only(deployment):
    stack = deployment()
    rows = _dashboard_rows(stack)
    assert len(rows) > 30
    for row in rows:
        dimensions = [v for v in row[2:] if not isinstance(v, dict)]
        assert dimensions == ["service", STACK], row
    expressions = [
        r[0]["expression"]
        for w in _dashboard(stack)["widgets"]
        for r in w["properties"].get("metrics", [])
        if isinstance(r[0], dict) and "SEARCH(" in r[0]["expression"]
    ]
    assert expressions
    for expression in expressions:
        # Quoted: an exact match, so that stack "photos" does not also show "photos-prod".
        assert f'service="{STACK}"' in expression, expression
    # Another stack's dashboard shows none of this one's metrics.
    other = {json.dumps(row[:4]) for row in _dashboard_rows(stack, **{"AWS::StackName": "photos-staging"})}
    assert other and not other & {json.dumps(row[:4]) for row in rows}


def test_the_metrics_the_function_emits_carry_the_dimensions_its_alarms_watch(deployment, monkeypatch):
    from local.driver import load_function_module

    stack = deployment()
    variables = stack.resources["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", PSEUDO[variables["POWERTOOLS_SERVICE_NAME"]["Ref"]])
    metrics = load_function_module().metrics
    try:
        metrics.add_metric(name="ProviderQuotaExhausted", unit="Count", value=1)
        document = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()
    (emitted,) = document["_aws"]["CloudWatchMetrics"]
    emitted_dimensions = [{"Name": n, "Value": document[n]} for n in emitted["Dimensions"][0]]
    (quota,) = [m for m in _custom_alarm_metrics(stack) if m["MetricName"] == "ProviderQuotaExhausted"]
    watched = [{"Name": d["Name"], "Value": PSEUDO[d["Value"]["Ref"]]} for d in quota["Dimensions"]]
    assert emitted["Namespace"] == quota["Namespace"]
    assert emitted_dimensions == watched == [{"Name": "service", "Value": STACK}]


def test_operations_topic_accepts_only_this_stacks_alarms(deployment):
    stack = deployment()
    (statement,) = stack.resources["OperationsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    pattern = stack.sub(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    assert pattern == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{STACK}-*"
    assert not fnmatch.fnmatchcase(f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:other-stack-error-rate", pattern)


# -- checkov suppressions ---------------------------------------------------------------------------------


def test_every_checkov_suppression_is_an_accepted_one_with_its_reason(sam):
    accepted = {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173", "CKV_AWS_27", "CKV_AWS_21"}
    accepted |= {"CKV_AWS_119", "CKV_AWS_149"}
    accepted |= {"CKV_AWS_309"}  # the console's page and its files: public on purpose, no data
    for name, resource in sam["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"] in accepted, f"{name}: {skip['id']} is not an accepted suppression"
            assert len(skip["comment"].split()) >= 8, f"{name}: {skip['id']} needs its reason"


# -- retention, outputs, environments ------------------------------------------------------------------


def test_results_survive_stack_deletion_and_replacement(sam):
    table = sam["Resources"]["ResultsTable"]
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("parameters", [{}, EXISTING], ids=["created-bucket", "existing-bucket"])
def test_outputs_name_everything_an_operator_needs(deployment, parameters):
    outputs = deployment(**parameters).outputs
    assert {
        "UploadsBucketName",
        "ResultsTableName",
        "AlertsTopicArn",
        "AnalyzeQueueUrl",
        "AnalyzeQueueArn",
        "DeadLetterQueueUrl",
        "DeadLetterQueueArn",
        "ProviderSecretArn",
        "CacheTableName",
        "UsageTableName",
        "OperationsTopicArn",
        "DashboardName",
        "AnalyzeFunctionName",
    } <= set(outputs)
    assert outputs["AnalyzeQueueArn"] == {"Fn::GetAtt": ["AnalyzeQueue", "Arn"]}
    assert outputs["DeadLetterQueueArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert outputs["DashboardName"] == {"Ref": "Dashboard"}


def test_translates_for_python_313(deployment):
    function = deployment().resources["AnalyzeFunction"]["Properties"]
    assert function["Runtime"] == "python3.13"
    assert function["Handler"] == "app.lambda_handler"


@dataclass(frozen=True)
class _Environment:
    name: str
    deploy: dict[str, Any]
    stack_name: str

    @property
    def overrides(self) -> dict[str, str]:
        return dict(pair.split("=", 1) for pair in self.deploy.get("parameter_overrides", "").split())


def _environments() -> dict[str, _Environment]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    return {
        name: _Environment(name, section["deploy"]["parameters"], section["global"]["parameters"]["stack_name"])
        for name, section in config.items()
        if isinstance(section, dict)
    }


def test_samconfig_has_default_and_prod_that_deploy_safely_to_different_stacks(sam):
    environments = _environments()
    assert {"default", "prod"} <= set(environments)
    assert environments["default"].stack_name != environments["prod"].stack_name
    for environment in environments.values():
        assert environment.deploy["resolve_s3"] is True, environment.name
        assert environment.deploy["confirm_changeset"] is True, environment.name
        assert "CAPABILITY_IAM" in environment.deploy["capabilities"].split(), environment.name
    assert "MaximumConcurrency" in environments["prod"].overrides
    assert "environment=prod" in environments["prod"].deploy["tags"]


def test_samconfig_overrides_are_parameters_with_allowed_values(sam):
    declared = sam["Parameters"]
    for environment in _environments().values():
        for name, value in environment.overrides.items():
            assert name in declared, f"{environment.name}: {name} is not a template parameter"
            parameter = declared[name]
            if "AllowedValues" in parameter:
                assert value in [str(v) for v in parameter["AllowedValues"]], f"{environment.name}: {name}={value}"
            if parameter["Type"] == "Number":
                assert (
                    parameter.get("MinValue", float("-inf")) <= float(value) <= parameter.get("MaxValue", float("inf"))
                )


def test_the_function_gives_freed_image_buffers_back_to_the_system(sam):
    # Without a fixed mmap threshold glibc keeps freed decode buffers in per-thread heaps (B8: 1.1 GB).
    variables = sam["Resources"]["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]
    assert int(variables["MALLOC_MMAP_THRESHOLD_"]) <= 4 * 1024 * 1024


def test_every_function_variable_is_one_the_code_reads_and_vendor_options_reach_it(sam):
    variables = sam["Resources"]["AnalyzeFunction"]["Properties"]["Environment"]["Variables"]
    code = "\n".join(p.read_text() for p in LAYER.rglob("*.py"))
    # Read by the SDK, by Powertools or by the C library rather than by the layer.
    external = {"AWS_ENDPOINT_URL", "MALLOC_MMAP_THRESHOLD_"} | {
        name for name in variables if name.startswith("POWERTOOLS_")
    }
    unread = [name for name in variables if name not in external and f'"{name}"' not in code]
    assert unread == []
    # The one place a deployed stack sets <VENDOR>_* options (endpoints, caps, prices, metadata).
    assert variables["PROVIDER_OPTIONS"] == {"Ref": "ProviderOptions"}
    assert sam["Parameters"]["ProviderOptions"]["Default"] == ""


# -- raw vendor answers in the artifacts bucket --------------------------------------------------------
def _lifecycle(stack: _Deployment) -> dict[str, dict[str, Any]]:
    rules = stack.resources["ArtifactsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    return {rule["Prefix"]: rule for rule in rules}


def test_raw_answers_are_kept_while_results_are_and_prepared_copies_expire_in_a_day(deployment):
    kept = _lifecycle(deployment())
    assert set(kept) == {"prepared/", "thumbnails/"}, "with ResultTtlDays=0 results are kept: so are their raw answers"
    assert kept["thumbnails/"]["ExpirationInDays"] == 90  # the console's thumbnails of images under review
    assert kept["prepared/"]["ExpirationInDays"] == 1
    expiring = _lifecycle(deployment(ResultTtlDays="30"))
    assert expiring["raw/"]["ExpirationInDays"] == "30" and expiring["raw/"]["Status"] == "Enabled"
    assert expiring["prepared/"]["ExpirationInDays"] == 1
    # Distinct prefixes: neither rule reaches the other's objects.
    assert not any(a != b and a.startswith(b) for a in expiring for b in expiring)


def test_the_function_may_write_and_delete_raw_answers_but_only_under_raw(deployment):
    stack = deployment()
    operations = _calls(LAYER / "raw_archive.py", "_s3")
    assert operations == {"PutObject", "DeleteObject"}, "raw_archive.py calls S3 in a way this test does not know"
    for operation in operations:
        raw = [r for r in stack.allowed(f"s3:{operation}") if "/raw/" in json.dumps(r)]
        assert raw == [{"Fn::Sub": "${ArtifactsBucket.Arn}/raw/*"}], operation
    # Read back only by tools, with their own credentials.
    assert not [r for r in stack.allowed("s3:GetObject") if "/raw/" in json.dumps(r)]


# -- hash banks --------------------------------------------------------------------------------------------


def test_the_function_reads_the_hash_banks_and_their_snapshots_and_may_change_neither(deployment):
    stack = deployment()
    banks = {"Fn::GetAtt": ["BanksTable", "Arn"]}
    # The matcher's reads (store.list and store.deltas query; the registry item is read by key).
    for action in ("dynamodb:GetItem", "dynamodb:Query"):
        assert banks in stack.allowed(action), action
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
        assert banks not in stack.allowed(action), action
    snapshots = [r for r in stack.allowed("s3:GetObject") if "BanksBucket" in json.dumps(r)]
    assert [stack.sub(r) for r in snapshots] == ["${BanksBucket.Arn}/banks/*"]
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not [r for r in stack.allowed(action) if "BanksBucket" in json.dumps(r)], action


def test_known_bad_has_its_sparse_monthly_index_like_the_other_flags(deployment):
    indexes = {
        i["IndexName"]: i for i in deployment().resources["ResultsTable"]["Properties"]["GlobalSecondaryIndexes"]
    }
    keys = [(k["AttributeName"], k["KeyType"]) for k in indexes["FlaggedKnownBad"]["KeySchema"]]
    assert keys == [("flag_known_bad", "HASH"), ("analyzed_at", "RANGE")]
    assert indexes["FlaggedKnownBad"]["Projection"] == indexes["FlaggedNsfw"]["Projection"]


def test_banks_survive_the_stack_and_replaced_snapshots_expire(sam):
    resources = sam["Resources"]
    for name in ("BanksTable", "BanksBucket"):
        assert resources[name]["DeletionPolicy"] == "Retain", name
    bucket = resources["BanksBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireReplacedSnapshots"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    outputs = sam["Outputs"]
    assert outputs["BanksTableName"]["Value"] == {"Ref": "BanksTable"}
    assert outputs["BanksBucketName"]["Value"] == {"Ref": "BanksBucket"}
