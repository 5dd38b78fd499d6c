"""template.yaml's review resources and the delivery gate's bucket policy.

The emulator enforces no bucket policy (moto evaluates IAM identity policies only, and no condition on
object tags), so the gate's statements are read here: as JSON, and through ``Deny``, a small evaluator of
exactly the condition operators they use, asked what S3 would answer to the requests that matter.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from tests.unit.test_template import (
    ACCOUNT,
    REGION,
    TEMPLATE,
    _Deployment,
    _listed,
    _statements,
    translated_deployments,
)

ANALYZE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stack-AnalyzeFunctionRole-1"
REVIEW_ROLE = f"arn:aws:iam::{ACCOUNT}:role/stack-ReviewFunctionRole-1"
READER = f"arn:aws:iam::{ACCOUNT}:role/moderation-reviewer"
UPLOADER = f"arn:aws:iam::{ACCOUNT}:role/uploader"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
BUCKET = "image-uploads-STACKID"
OUR_TAG_KEYS = {"moderation", "flags", "image-analysis:verdict"}


@pytest.fixture(scope="module")
def deployment():
    return translated_deployments()


def materialize(node: Any) -> Any:
    """The policy as S3 would receive it: the roles' ARNs, the bucket's name, Join/Split/Sub evaluated."""
    if isinstance(node, list):
        return [materialize(v) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::GetAtt"}:
        return {"AnalyzeFunctionRole": ANALYZE_ROLE, "ReviewFunctionRole": REVIEW_ROLE}[node["Fn::GetAtt"][0]]
    if set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        return separator.join(_flat(materialize(parts)))
    if set(node) == {"Fn::Split"}:
        separator, text = node["Fn::Split"]
        return materialize(text).split(separator)
    if set(node) == {"Fn::Sub"}:
        return node["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${UploadsBucket}", BUCKET)
    if set(node) == {"Ref"} and node["Ref"] == "UploadsBucket":
        return BUCKET
    return {k: materialize(v) for k, v in node.items()}


def _flat(parts: list[Any]) -> list[str]:
    return [p for part in parts for p in (part if isinstance(part, list) else [part])]


@dataclass
class Request:
    action: str
    principal: str
    existing_tags: dict[str, str] = field(default_factory=dict)
    request_tag_keys: list[str] = field(default_factory=list)


def _condition_holds(operator: str, key: str, wanted: Any, request: Request) -> bool:
    wanted = _listed(wanted)
    if key == "aws:PrincipalArn":
        present: list[str] | None = [request.principal]
    elif key.startswith("s3:ExistingObjectTag/"):
        tag = request.existing_tags.get(key.split("/", 1)[1])
        present = None if tag is None else [tag]
    elif key == "s3:RequestObjectTagKeys":
        present = request.request_tag_keys or None
    elif key == "aws:SecureTransport":
        present = ["true"]
    elif key in ("s3:x-amz-server-side-encryption-customer-algorithm", "s3:x-amz-storage-class"):
        present = None  # the requests here carry neither a customer key nor a storage class
    else:
        raise AssertionError(f"the evaluator does not know {key}")
    if operator == "StringEquals":
        return present is not None and present[0] in wanted
    if operator == "StringNotEquals":  # a negated operator holds when the key is absent
        return present is None or present[0] not in wanted
    if operator == "ArnNotLike":
        return not any(fnmatch.fnmatchcase(present[0], pattern) for pattern in wanted)  # type: ignore[index]
    if operator == "ForAnyValue:StringEquals":
        return present is not None and any(value in wanted for value in present)
    if operator == "Null":  # "false": holds when the key is present
        return (present is None) == (str(wanted[0]).lower() == "true")
    if operator == "Bool":
        return present is not None and present[0] in [str(w).lower() for w in wanted]
    raise AssertionError(f"the evaluator does not know {operator}")


def denied(policy: list[dict[str, Any]], request: Request) -> list[str]:
    """The Sids of the Deny statements that match the request (any one of them denies it)."""
    matched = []
    for statement in policy:
        actions = _listed(statement["Action"])
        if statement["Effect"] != "Deny" or not any(fnmatch.fnmatchcase(request.action, a) for a in actions):
            continue
        conditions = statement.get("Condition", {})
        if all(
            _condition_holds(operator, key, wanted, request)
            for operator, keys in conditions.items()
            for key, wanted in keys.items()
        ):
            matched.append(statement["Sid"])
    return matched


def bucket_policy(stack: _Deployment) -> list[dict[str, Any]]:
    return materialize(stack.resources["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"])


# -- the delivery gate -------------------------------------------------------------------------------------


def test_the_gate_versions_the_bucket_and_denies_reading_untagged_versions_to_all_but_our_roles(deployment):
    stack = deployment(DeliveryGate="closed")
    assert stack.resources["UploadsBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    deny = _statements(stack, "UploadsBucketPolicy")["DenyReadingVersionsWithoutCleanVerdict"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert set(deny["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert deny["Condition"]["StringNotEquals"] == {"s3:ExistingObjectTag/image-analysis:verdict": "clean"}
    assert materialize(deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]) == [ANALYZE_ROLE, REVIEW_ROLE]
    policy = bucket_policy(stack)
    for action in ("s3:GetObject", "s3:GetObjectVersion"):
        assert denied(policy, Request(action, UPLOADER)) == ["DenyReadingVersionsWithoutCleanVerdict"]
        assert denied(policy, Request(action, ADMIN, {"team": "a"})) == ["DenyReadingVersionsWithoutCleanVerdict"]
        assert denied(policy, Request(action, UPLOADER, {"image-analysis:verdict": "clean"})) == []
        assert denied(policy, Request(action, UPLOADER, {"image-analysis:verdict": "maybe"})) != []
        assert denied(policy, Request(action, ANALYZE_ROLE)) == []
        assert denied(policy, Request(action, REVIEW_ROLE)) == []


def test_with_quarantine_readers_the_gate_lets_them_read_and_a_flagged_clean_version_stays_quarantined(deployment):
    stack = deployment(DeliveryGate="closed", QuarantineReaderArns=READER)
    policy = bucket_policy(stack)
    assert denied(policy, Request("s3:GetObject", READER)) == []
    flagged_clean = {"moderation": "flagged", "image-analysis:verdict": "clean"}
    assert denied(policy, Request("s3:GetObject", UPLOADER, flagged_clean)) == ["DenyReadingFlaggedObjects"]


def test_only_our_roles_may_write_our_tag_keys_so_no_uploader_marks_its_own_upload_clean(deployment):
    stack = deployment(DeliveryGate="closed", QuarantineReaderArns=READER)
    deny = _statements(stack, "UploadsBucketPolicy")["DenyWritingOurTagKeys"]
    assert set(deny["Action"]) == {"s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging"}
    assert set(deny["Condition"]["ForAnyValue:StringEquals"]["s3:RequestObjectTagKeys"]) == OUR_TAG_KEYS
    assert materialize(deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]) == [ANALYZE_ROLE, REVIEW_ROLE]
    policy = bucket_policy(stack)
    for action in deny["Action"]:
        for key in OUR_TAG_KEYS:
            # Neither an uploader nor a quarantine reader nor an administrator: only the stack's functions.
            for principal in (UPLOADER, READER, ADMIN):
                assert denied(policy, Request(action, principal, request_tag_keys=["team", key])) == [
                    "DenyWritingOurTagKeys"
                ], (action, key, principal)
            assert denied(policy, Request(action, ANALYZE_ROLE, request_tag_keys=[key])) == []
            assert denied(policy, Request(action, REVIEW_ROLE, request_tag_keys=[key])) == []
        assert denied(policy, Request(action, UPLOADER, request_tag_keys=["team"])) == []
        assert denied(policy, Request(action, UPLOADER)) == []


def test_the_tag_keys_are_protected_with_the_quarantine_alone_and_nothing_is_added_by_default(deployment):
    assert "DenyWritingOurTagKeys" in _statements(deployment(QuarantineTags="true"), "UploadsBucketPolicy")
    default = deployment()
    assert set(_statements(default, "UploadsBucketPolicy")) == {
        "DenyInsecureTransport",
        "DenyCustomerProvidedKeys",
        "DenyUploadsToArchiveStorage",
    }
    assert "VersioningConfiguration" not in default.resources["UploadsBucket"]["Properties"]


def test_the_code_writes_the_tag_the_policy_reads(deployment):
    from image_analysis.objects import FLAGS_TAG, QUARANTINE_TAG, VERDICT_CLEAN, VERDICT_KEY

    assert {VERDICT_KEY, FLAGS_TAG, *QUARANTINE_TAG} == OUR_TAG_KEYS and VERDICT_CLEAN == "clean"
    variables = deployment(DeliveryGate="closed").resources["AnalyzeFunction"]["Properties"]["Environment"]
    assert variables["Variables"]["DELIVERY_GATE"] == "closed"


def test_an_existing_bucket_gets_no_policy_and_the_docs_give_the_statements(deployment):
    stack = deployment(ExistingBucketName="users-photos", DeliveryGate="closed")
    assert "UploadsBucketPolicy" not in stack.resources
    docs = (TEMPLATE.parent / "docs/review.md").read_text()
    for needle in ("DenyReadingVersionsWithoutCleanVerdict", "DenyWritingOurTagKeys", "s3:RequestObjectTagKeys"):
        assert needle in docs


# -- the review function, its API and the moderators ----------------------------------------------------


def test_the_review_api_is_iam_authorized_with_the_contracts_routes(deployment):
    stack = deployment()
    api = stack.resources["ReviewApi"]["Properties"]["Body"]
    routes = {(path, method) for path, methods in api["paths"].items() for method in methods}
    assert routes == {("/reviews", "get"), ("/reviews/{id}", "get"), ("/reviews/{id}/decision", "post")}
    for methods in api["paths"].values():
        for operation in methods.values():
            assert operation["security"] == [{"AWS_IAM": []}]


def test_the_review_role_may_do_what_its_code_does_and_no_more(deployment):
    stack = deployment()
    allowed = {}
    for statement in stack.role_statements("ReviewFunction"):
        for action in _listed(statement["Action"]):
            allowed.setdefault(action, []).extend(_listed(statement["Resource"]))
    queue_table = {"Fn::GetAtt": ["ReviewQueueTable", "Arn"]}
    audit_table = {"Fn::GetAtt": ["AuditTable", "Arn"]}
    results_table = {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert results_table in allowed["dynamodb:UpdateItem"] and queue_table in allowed["dynamodb:UpdateItem"]
    assert audit_table in allowed["dynamodb:PutItem"] and results_table not in allowed["dynamodb:PutItem"]
    assert "dynamodb:DeleteItem" not in allowed
    assert allowed["dynamodb:Scan"] == [audit_table]  # the console's stats read every decision, nothing else
    assert {"Fn::Sub": "${ArtifactsBucket.Arn}/thumbnails/*"} in allowed["s3:GetObject"]  # of the artifacts: thumbnails
    assert allowed["cloudwatch:GetMetricData"] == ["*"]  # the API takes no resource
    assert allowed["sns:Publish"] == [{"Ref": "DecisionsTopic"}]
    assert allowed["sqs:ReceiveMessage"] == [{"Fn::GetAtt": ["ReviewEffectsQueue", "Arn"]}]
    objects = [stack.sub(r, UploadsBucket=BUCKET) for r in allowed["s3:PutObjectVersionTagging"]]
    assert objects == [f"arn:aws:s3:::{BUCKET}/*"]
    assert "s3:DeleteObjectVersion" not in allowed, "deleting is granted only with RejectAction=delete"
    deleting = deployment(RejectAction="delete")
    versions = [s for s in deleting.role_statements("ReviewFunction") if "s3:DeleteObjectVersion" in s["Action"]]
    assert versions and all("*" not in json.dumps(s["Action"]) for s in versions)


def test_the_moderator_policy_grants_the_routes_and_the_command_line_only(deployment):
    stack = deployment()
    statements = stack.resources["ModeratorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    routes = [
        stack.sub(r, ReviewApi="api1")
        for s in statements
        if s["Action"] == "execute-api:Invoke"
        for r in _listed(s["Resource"])
    ]
    assert routes == [
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:api1/*/GET/reviews",
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:api1/*/GET/reviews/*",
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:api1/*/POST/reviews/*/decision",
    ]
    by_sid = {s["Sid"]: s for s in statements}
    # A moderator may set a result's review, never its analysis; and the audit log's outbox flag only.
    results = by_sid["RecordTheReviewOnTheResult"]
    assert results["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"] == [
        "pk",
        "sk",
        "review",
        "etag",
        "deleted_at",
    ]
    outbox = by_sid["ClearTheOutboxFlagOnceTheDecisionIsPublished"]
    assert "outbox" in outbox["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert not [s for s in statements if "s3:" in json.dumps(s["Action"])], "moderators never touch the bucket"
    assert not [s for s in statements if "dynamodb:DeleteItem" in _listed(s["Action"])]


def test_decisions_reach_the_review_function_through_its_own_queue(deployment):
    stack = deployment()
    subscription = stack.resources["ReviewEffectsSubscription"]["Properties"]
    assert subscription["TopicArn"] == {"Ref": "DecisionsTopic"} and subscription["RawMessageDelivery"] is True
    policy = stack.resources["ReviewEffectsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in policy] == [{"Ref": "DecisionsTopic"}]
    queue = stack.resources["ReviewEffectsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * stack.resources["ReviewFunction"]["Properties"]["Timeout"]
    events = {
        r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: r["Properties"]
        for r in stack.resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    assert events["ReviewEffectsQueue"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_audit_log_survives_the_stack_and_the_outputs_are_the_contracts(deployment):
    stack = deployment()
    audit = stack.resources["AuditTable"]
    assert audit["DeletionPolicy"] == "Retain" and audit["UpdateReplacePolicy"] == "Retain"
    assert {
        "ReviewApiUrl",
        "AuditTableName",
        "ReviewQueueTableName",
        "DecisionsTopicArn",
        "ModeratorPolicyArn",
    } <= set(stack.outputs)
    assert stack.outputs["ModeratorPolicyArn"] == {"Ref": "ModeratorPolicy"}
    indexes = {
        name: [i["IndexName"] for i in stack.resources[name]["Properties"]["GlobalSecondaryIndexes"]]
        for name in ("ResultsTable", "ReviewQueueTable", "AuditTable")
    }
    # The results table gains no index for review: the queue lists by status, the log finds its outbox.
    assert "ByStatus" not in indexes["ResultsTable"] and indexes["ReviewQueueTable"] == ["ByStatus"]
    assert indexes["AuditTable"] == ["Outbox"]


def test_a_schedule_sweeps_the_outbox_every_five_minutes_with_a_role_that_may_only_invoke_the_function(deployment):
    stack = deployment()
    (schedule,) = [r["Properties"] for r in stack.resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert json.loads(schedule["Target"]["Input"]) == {"sweep": True}
    assert schedule["Target"]["RoleArn"] == {"Fn::GetAtt": ["ReviewSweepScheduleRole", "Arn"]}
    role = stack.resources["ReviewSweepScheduleRole"]["Properties"]
    (statement,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert (statement["Action"], statement["Resource"]) == (
        "lambda:InvokeFunction",
        {"Fn::GetAtt": ["ReviewFunction", "Arn"]},
    )
    # Not an EventBridge rule: a rule without a pattern would be matched against the bus's events locally.
    assert not [r for r in stack.resources.values() if r["Type"] == "AWS::Events::Rule"]


def test_the_console_signs_in_with_cognito_without_a_cycle_and_its_data_routes_need_a_token(deployment):
    stack = deployment()
    resources = stack.resources

    def refs(node: Any) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            if "Ref" in node:
                found.add(node["Ref"])
            if "Fn::GetAtt" in node:
                found.add(node["Fn::GetAtt"][0])
            if "Fn::Sub" in node:
                text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
                found.update(name.split(".")[0] for name in re.findall(r"\$\{([^}]+)\}", text))
            for value in node.values():
                found |= refs(value)
        elif isinstance(node, list):
            for value in node:
                found |= refs(value)
        return {name for name in found if name in resources}

    # The cycle broken: the client names the API's URL, the authorizer names the client, the API neither.
    assert refs(resources["ConsoleApi"]) == set()
    assert "ConsoleApi" in refs(resources["ConsoleUserPoolClient"]["Properties"]["CallbackURLs"])
    assert {"ConsoleUserPoolClient", "ConsoleUserPool"} <= refs(resources["ConsoleAuthorizer"])
    client = resources["ConsoleUserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False and client["AllowedOAuthFlows"] == ["code"]
    assert resources["ConsoleUserPool"]["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert resources["ConsoleModeratorsGroup"]["Properties"]["GroupName"] == "moderators"

    routes = {r["Properties"]["RouteKey"]: r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    assert routes["ANY /console/api/{proxy+}"]["Properties"]["AuthorizationType"] == "JWT"
    public = {key for key, r in routes.items() if r["Properties"]["AuthorizationType"] == "NONE"}
    assert public == {"GET /", "GET /console/{name}"}
    for key in public:  # each unauthenticated route says why, for checkov
        skips = routes[key]["Metadata"]["checkov"]["skip"]
        assert [s["id"] for s in skips] == ["CKV_AWS_309"] and "no data" in skips[0]["comment"]
    environment = resources["ReviewFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["CONSOLE_SIGN_IN"] == "cognito" and environment["CONSOLE_CLIENT_ID"] == {
        "Ref": "ConsoleUserPoolClient"
    }
    assert {"ConsoleUrl", "UserPoolId"} <= set(stack.outputs)
    # The analysis function writes thumbnails and nothing else of the console's.
    assert {"Fn::Sub": "${ArtifactsBucket.Arn}/thumbnails/*"} in stack.allowed("s3:PutObject")

    off = deployment(ConsoleSignIn="none")
    assert not {"ConsoleUserPool", "ConsoleApi", "ConsoleAuthorizer"} & set(off.resources)
    assert not {"ConsoleUrl", "UserPoolId"} & set(off.outputs)
    assert off.resources["ReviewFunction"]["Properties"]["Environment"]["Variables"]["CONSOLE_CLIENT_ID"] == ""


# What Cognito accepts as a prefix domain (CreateUserPoolDomain's pattern, at most 63 characters) and the
# words it refuses in one.
COGNITO_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
COGNITO_RESERVED = ("aws", "amazon", "cognito")


def _evaluate(node: Any, pseudo: dict[str, str]) -> Any:
    """A value as CloudFormation computes it in one stack: Ref to pseudo parameters, Sub, Select, Split."""
    if isinstance(node, str):
        return node
    ((function, argument),) = node.items()
    if function == "Ref":
        return pseudo[argument]
    if function == "Fn::Split":
        return _evaluate(argument[1], pseudo).split(argument[0])
    if function == "Fn::Select":
        return _evaluate(argument[1], pseudo)[int(argument[0])]
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = pseudo | {name: _evaluate(value, pseudo) for name, value in variables.items()}
        return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], text)
    raise AssertionError(f"unexpected {function}")


@pytest.mark.parametrize(
    "stack_name", ["Photos-Prod", "aws-image-analysis", "cognito-moderation", "image-analysis-" + "x" * 100]
)
def test_the_default_sign_in_domain_is_valid_whatever_the_stack_name_and_unique_to_the_stack(deployment, stack_name):
    # With such names <stack name>-<account id>, the earlier default, was a prefix Cognito refuses: the
    # create failed, and so did the upgrade that gave an existing stack its console.
    domain = deployment().resources["ConsoleUserPoolDomain"]["Properties"]["Domain"]
    prefixes = []
    for uuid in ("1c2fa620-982a-11e3-aff7-50e2416294e0", "e722ae60-fe62-11e8-9a0e-0ae8cc519968"):
        stack_id = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/{uuid}"
        pseudo = {"AWS::StackId": stack_id, "AWS::StackName": stack_name, "AWS::AccountId": ACCOUNT}
        prefixes.append(_evaluate(domain, pseudo))
    assert prefixes == [
        "moderation-1c2fa620-982a-11e3-aff7-50e2416294e0",
        "moderation-e722ae60-fe62-11e8-9a0e-0ae8cc519968",
    ]
    for prefix in prefixes:
        assert COGNITO_PREFIX.match(prefix) and len(prefix) <= 63
        assert not [word for word in COGNITO_RESERVED if word in prefix]


def test_a_sign_in_domain_prefix_of_ones_own_is_used_as_given(deployment):
    own = deployment(ConsoleDomainPrefix="acme-moderation")
    assert own.resources["ConsoleUserPoolDomain"]["Properties"]["Domain"] == "acme-moderation"
    pattern = re.compile(yaml_parse(TEMPLATE.read_text())["Parameters"]["ConsoleDomainPrefix"]["AllowedPattern"])
    assert pattern.match("acme-moderation") and pattern.match("")
    assert not pattern.match("Acme-Moderation") and not pattern.match("acme-") and not pattern.match("a" * 64)
