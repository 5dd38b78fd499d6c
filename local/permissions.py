"""Permissions checked before AWS does: every AWS call the function makes, against its role's statements.

The emulator enforces no IAM, so a permission the function lacks would show only after a deploy. Here
each call that the function's own code makes (a frame of ``layers/shared/image_analysis`` or
``functions/analyze`` on its stack, whatever thread it runs in) is turned into the IAM actions and
resource ARNs it needs (``needs_for``) and checked against the ``Allow`` statements of the function's
role, taken from the translated template and resolved with the stack's physical names
(``RolePolicy.from_template``). A call the role does not allow is recorded and, when enforcing, fails
the way AWS fails it: an ``AccessDenied`` error naming the action and the resource, before any request
is sent. A presigned URL is checked when it is made (the vendor's GET uses the function's permissions).

What it does not model: resource policies (bucket, key and queue policies), permission boundaries,
SCPs and statement conditions (a statement with a ``Condition`` is taken as not matching).

    guard = PermissionGuard(enforce=True)
    guard.install()                     # before any client is created
    ...                                 # deploy() registers each stack's role
    guard.denied()                      # [Call(...), ...]
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Code that runs as the function: the layer's package and the handler module.
FUNCTION_CODE = tuple(str(ROOT / folder) + os.sep for folder in ("layers/shared/image_analysis", "functions/analyze"))
HANDLER_CODE = str(ROOT / "functions" / "analyze") + os.sep
# Code that runs with its own credentials, layer functions it calls included (a test reading a raw
# answer back, the command line): never the function.
TOOL_CODE = tuple(str(ROOT / folder) + os.sep for folder in ("tests", "local", "image_analysis_cli"))
ROLE_LOGICAL_ID = "AnalyzeFunctionRole"


@dataclass(frozen=True)
class Need:
    """One IAM action on one resource that a call needs."""

    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}"


@dataclass(frozen=True)
class Statement:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditional: bool = False

    def allows(self, need: Need) -> bool:
        if self.conditional:
            return False
        service, _, action = need.action.partition(":")
        action_ok = any(_action_matches(pattern, service, action) for pattern in self.actions)
        return action_ok and any(_resource_matches(pattern, need.resource) for pattern in self.resources)


def _action_matches(pattern: str, service: str, action: str) -> bool:
    p_service, _, p_action = pattern.partition(":")
    if pattern == "*":
        return True
    # Actions are case-insensitive in IAM.
    return p_service.lower() == service.lower() and fnmatch.fnmatchcase(action.lower(), p_action.lower())


def _resource_matches(pattern: str, resource: str) -> bool:
    # ``*`` and ``?`` are the only wildcards, and match across ``/`` and ``:`` too; the rest is literal.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, resource, flags=re.DOTALL) is not None


@dataclass
class RolePolicy:
    """The ``Allow`` statements of one role, resolved to the stack's names."""

    role_arn: str
    statements: list[Statement]
    results_table: str = ""
    # The same role for a stack whose uploads or artifacts bucket were the given one (see PermissionGuard).
    rebind: Callable[[str], RolePolicy] | None = field(default=None, repr=False, compare=False)

    def names_bucket(self, bucket: str) -> bool:
        arn = f"arn:aws:s3:::{bucket}"
        return any(r == arn or r.startswith(arn + "/") for s in self.statements for r in s.resources)

    def allows(self, need: Need) -> bool:
        return any(statement.allows(need) for statement in self.statements)

    def denied(self, needs: list[Need]) -> list[Need]:
        return [need for need in needs if not self.allows(need)]

    def to_json(self) -> dict[str, Any]:
        return {
            "role_arn": self.role_arn,
            "results_table": self.results_table,
            "statements": [
                {"sid": s.sid, "actions": list(s.actions), "resources": list(s.resources), "conditional": s.conditional}
                for s in self.statements
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolePolicy:
        statements = [
            Statement(s["sid"], tuple(s["actions"]), tuple(s["resources"]), bool(s.get("conditional")))
            for s in data["statements"]
        ]
        return cls(data["role_arn"], statements, data.get("results_table", ""))

    @classmethod
    def from_template(
        cls,
        translated: Mapping[str, Any],
        physical: Mapping[str, str],
        parameters: Mapping[str, str],
        *,
        stack_name: str,
        region: str,
        account: str,
        results_table: str = "",
        role_logical_id: str = ROLE_LOGICAL_ID,
    ) -> RolePolicy:
        """The role's inline policy statements, with every intrinsic function resolved."""
        resolver = _Resolver(translated, physical, parameters, stack_name, region, account)
        role = translated["Resources"][role_logical_id]
        statements: list[Statement] = []
        for policy in role["Properties"].get("Policies", []):
            document = resolver.resolve(policy["PolicyDocument"])
            for index, raw in enumerate(_as_list(document.get("Statement"))):
                if raw is _NO_VALUE or raw is None or raw.get("Effect") != "Allow":
                    continue
                statements.append(
                    Statement(
                        sid=str(raw.get("Sid") or f"{policy.get('PolicyName', 'policy')}[{index}]"),
                        actions=tuple(_as_list(raw.get("Action"))),
                        resources=tuple(_as_list(raw.get("Resource"))),
                        conditional=bool(raw.get("Condition")),
                    )
                )
        role_arn = f"arn:aws:iam::{account}:role/{physical.get(role_logical_id, role_logical_id)}"
        return cls(role_arn, statements, results_table)


def _as_list(value: Any) -> list[Any]:
    if value is None or value is _NO_VALUE:
        return []
    return [v for v in (value if isinstance(value, list) else [value]) if v is not _NO_VALUE]


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()


class _Resolver:
    """The intrinsic functions a role's policy uses, resolved the way CloudFormation does."""

    # GetAtt <resource>.Arn by resource type, from its physical id.
    ARNS = {
        "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{id}",
        "AWS::S3::Bucket": "arn:aws:s3:::{id}",
        "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{id}:*",
        "AWS::IAM::Role": "arn:aws:iam::{account}:role/{id}",
        "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{id}",
        "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{id}",
        "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{id}",
    }

    def __init__(
        self,
        template: Mapping[str, Any],
        physical: Mapping[str, str],
        parameters: Mapping[str, str],
        stack_name: str,
        region: str,
        account: str,
    ) -> None:
        self.template = template
        self.physical = physical
        self.region = region
        self.account = account
        self.pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.parameters: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default", ""))
            if spec.get("Type") == "CommaDelimitedList":
                value = [v.strip() for v in str(value).split(",")] if value != "" else [""]
            self.parameters[name] = value
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical:
            return self.physical[name]
        raise KeyError(f"cannot resolve Ref {name}: no parameter, pseudo parameter or created resource of that name")

    def get_att(self, name: str, attribute: str) -> str:
        resource_type = self.template["Resources"][name]["Type"]
        physical = self.ref(name)
        if attribute == "Arn":
            if resource_type == "AWS::SQS::Queue":
                return f"arn:aws:sqs:{self.region}:{self.account}:{physical.rstrip('/').rsplit('/', 1)[-1]}"
            if resource_type in ("AWS::SNS::Topic", "AWS::SecretsManager::Secret"):
                return physical
            if resource_type in self.ARNS:
                return self.ARNS[resource_type].format(region=self.region, account=self.account, id=physical)
        if resource_type == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical.rstrip("/").rsplit("/", 1)[-1]
        raise KeyError(f"cannot resolve GetAtt {name}.{attribute} ({resource_type})")

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return self.get_att(resource, attribute)
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self.sub(text, variables)
            if key == "Fn::If":
                condition, when_true, when_false = arg
                return self.resolve(when_true if self.condition(condition) else when_false)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(i) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


# -- what a call needs -------------------------------------------------------------------------------


def _s3_object(params: Mapping[str, Any], bucket: str = "Bucket", key: str = "Key") -> str:
    return f"arn:aws:s3:::{params.get(bucket, '')}/{params.get(key, '')}"


def _versioned(params: Mapping[str, Any], action: str, version_key: str = "VersionId") -> str:
    """S3 names another action for a call on a given version (s3:GetObject -> s3:GetObjectVersion)."""
    if not params.get(version_key):
        return action
    stem, _, suffix = action.partition("Object")
    return f"{stem}ObjectVersion{suffix}"


def _queue_arn(url: str, region: str, account: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{url.rstrip('/').rsplit('/', 1)[-1]}"


def _table_arn(table: str, region: str, account: str, index: str | None = None) -> str:
    arn = table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _secret_arn(secret_id: str, region: str, account: str) -> str:
    # A secret named without its ARN gets six random characters after a dash in its ARN.
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
    "DeleteObjectTagging": "s3:DeleteObjectTagging",
    "GetObjectAttributes": "s3:GetObjectAttributes",
}
_S3_BUCKET_ACTIONS = {
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
}
_DYNAMODB_TABLE_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable", "DescribeTimeToLive"}
)
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def needs_for(service: str, operation: str, params: Mapping[str, Any], region: str, account: str) -> list[Need]:
    """The IAM actions and resources one API call needs (``service`` is the IAM prefix, e.g. ``s3``)."""
    if service == "s3":
        if operation in _S3_OBJECT_ACTIONS:
            return [Need(_versioned(params, _S3_OBJECT_ACTIONS[operation]), _s3_object(params))]
        if operation == "CopyObject":
            source = params.get("CopySource")
            if isinstance(source, Mapping):
                source_arn = f"arn:aws:s3:::{source.get('Bucket', '')}/{source.get('Key', '')}"
            else:
                source_arn = f"arn:aws:s3:::{str(source).split('?', 1)[0].lstrip('/')}"
            return [Need("s3:PutObject", _s3_object(params)), Need("s3:GetObject", source_arn)]
        if operation in _S3_BUCKET_ACTIONS:
            return [Need(_S3_BUCKET_ACTIONS[operation], f"arn:aws:s3:::{params.get('Bucket', '')}")]
        resource = _s3_object(params) if "Key" in params else f"arn:aws:s3:::{params.get('Bucket', '')}"
        return [Need(f"s3:{operation}", resource)]
    if service == "dynamodb":
        if operation in _DYNAMODB_TABLE_OPERATIONS:
            table = _table_arn(str(params.get("TableName", "")), region, account, params.get("IndexName"))
            return [Need(f"dynamodb:{operation}", table)]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            tables = params.get("RequestItems", {})
            return [Need(f"dynamodb:{operation}", _table_arn(t, region, account)) for t in tables]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            needs = []
            for item in params.get("TransactItems", []):
                for kind, body in item.items():
                    action = "GetItem" if kind == "Get" else _TRANSACT_ACTIONS.get(kind, kind)
                    needs.append(Need(f"dynamodb:{action}", _table_arn(body.get("TableName", ""), region, account)))
            return needs
        return [Need(f"dynamodb:{operation}", "*")]
    if service == "sns":
        if operation in ("Publish", "PublishBatch"):
            return [Need("sns:Publish", str(params.get("TopicArn") or params.get("TargetArn") or ""))]
        return [Need(f"sns:{operation}", str(params.get("TopicArn", "*")))]
    if service == "sqs":
        queue = _queue_arn(str(params.get("QueueUrl", "")), region, account)
        action = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}.get(operation, operation)
        action = {"ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}.get(action, action)
        return [Need(f"sqs:{action}", queue)]
    if service == "secretsmanager":
        return [Need(f"secretsmanager:{operation}", _secret_arn(str(params.get("SecretId", "")), region, account))]
    if service == "rekognition":
        needs = [Need(f"rekognition:{operation}", "*")]
        # Rekognition reads an S3Object with the caller's permissions.
        location = (params.get("Image") or {}).get("S3Object")
        if location:
            needs.append(
                Need(
                    "s3:GetObjectVersion" if location.get("Version") else "s3:GetObject",
                    f"arn:aws:s3:::{location.get('Bucket', '')}/{location.get('Name', '')}",
                )
            )
        return needs
    if service == "sts" and operation == "GetCallerIdentity":
        return []  # allowed to every principal
    return [Need(f"{service}:{operation}", "*")]


# -- the guard ---------------------------------------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    needs: list[Need]
    denied: list[Need] = field(default_factory=list)
    role_arn: str | None = None  # None: no registered stack's function was configured
    presigned: bool = False

    def describe(self) -> str:
        what = "a presigned URL for " if self.presigned else ""
        missing = "; ".join(str(n) for n in self.denied)
        return f"{what}{self.service}.{self.operation}: {self.role_arn} does not allow {missing}"


# Every deployed stack's role, by its results table (the function's RESULTS_TABLE says which runs).
_POLICIES: dict[str, RolePolicy] = {}


def register(policy: RolePolicy) -> None:
    _POLICIES[policy.results_table] = policy


@contextmanager
def policy_replaced(policy: RolePolicy) -> Iterator[None]:
    """Use ``policy`` for its results table while the block runs (a test's edited template)."""
    saved = _POLICIES.get(policy.results_table)
    _POLICIES[policy.results_table] = policy
    try:
        yield
    finally:
        if saved is None:
            _POLICIES.pop(policy.results_table, None)
        else:
            _POLICIES[policy.results_table] = saved


def _running_as_function() -> bool:
    """The call comes from the handler (through its module), or from layer code on a thread of its own
    (the handler's record and provider pools); layer code that a tool calls is the tool's."""
    frame = sys._getframe(1)
    layer = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename == __file__:
            pass  # this guard's own handlers
        elif filename.startswith(HANDLER_CODE):
            return True
        elif filename.startswith(FUNCTION_CODE):
            layer = True
        elif filename.startswith(TOOL_CODE):
            return False
        frame = frame.f_back
    return layer


def _access_denied(call: Call, service: str) -> tuple[Any, dict[str, Any]]:
    need = call.denied[0]
    role_name = (call.role_arn or "").rsplit("/", 1)[-1]
    message = (
        f"User: arn:aws:sts::{(call.role_arn or '::::').split(':')[4]}:assumed-role/{role_name}/AnalyzeFunction "
        f"is not authorized to perform: {need.action} on resource: {need.resource} because no identity-based "
        f"policy allows the {need.action} action (checked locally against the template's role)"
    )
    codes = {"s3": "AccessDenied", "sqs": "AccessDenied", "sns": "AuthorizationError"}
    code = codes.get(service, "AccessDeniedException")

    class _Response:
        status_code = 403
        headers: dict[str, str] = {}  # read by botocore's after-call handlers
        content = b""
        text = ""

    return _Response(), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}, "RetryAttempts": 0},
    }


def _bucket_of(resource: str) -> str | None:
    if not resource.startswith("arn:aws:s3:::"):
        return None
    return resource[len("arn:aws:s3:::") :].split("/", 1)[0]


class PermissionGuard:
    """Checks the function's AWS calls against its role; ``enforce`` makes a denied call fail as AWS would.

    ``other_buckets_as_stacks``: a call on a bucket the role does not name is checked against the role a
    stack would have whose uploads bucket (``ExistingBucketName``) or artifacts bucket it were. For tests
    that create buckets beside the stack (a command-line test's own bucket): the actions must still be
    the role's, only the bucket's name is taken as the stack's.
    """

    _CONTEXT_KEY = "image_analysis_permission_check"

    def __init__(self, enforce: bool = True, on_denied: Any = None, other_buckets_as_stacks: bool = False) -> None:
        self.enforce = enforce
        self.other_buckets_as_stacks = other_buckets_as_stacks
        self.calls: list[Call] = []
        self._on_denied = on_denied
        self._lock = threading.Lock()

    def install(self) -> None:
        """Every botocore session created from now on checks the function's calls (and boto3's default one)."""
        import boto3
        import botocore.handlers

        handlers = [("before-parameter-build", self._before_parameter_build), ("before-call", self._before_call)]
        botocore.handlers.BUILTIN_HANDLERS.extend(handlers)
        if boto3.DEFAULT_SESSION is not None:
            for event, handler in handlers:
                boto3.DEFAULT_SESSION._session.register(event, handler)

    def denied(self) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.denied]

    def take(self) -> list[Call]:
        """The calls recorded so far, forgotten here."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def _check(self, model: Any, params: Mapping[str, Any], presigned: bool) -> Call | None:
        if not _running_as_function():
            return None
        service = model.service_model.signing_name
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        policy = _POLICIES.get(os.environ.get("RESULTS_TABLE", ""))
        account = (policy.role_arn.split(":")[4] if policy else "") or "123456789012"
        call = Call(service, model.name, needs_for(service, model.name, params, region, account), presigned=presigned)
        if policy is not None:
            call.role_arn = policy.role_arn
            call.denied = policy.denied(call.needs)
            if call.denied and self.other_buckets_as_stacks and policy.rebind is not None:
                call.denied = [need for need in call.denied if not self._allowed_elsewhere(policy, need)]
        with self._lock:
            self.calls.append(call)
        if call.denied and self._on_denied is not None:
            self._on_denied(call)
        return call

    def _allowed_elsewhere(self, policy: RolePolicy, need: Need) -> bool:
        bucket = _bucket_of(need.resource)
        if bucket is None or policy.names_bucket(bucket) or policy.rebind is None:
            return False
        return policy.rebind(bucket).allows(need)

    def _before_parameter_build(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        presigned = bool(context.get("is_presign_request"))
        call = self._check(model, params, presigned)
        if call is not None and not presigned:
            context[self._CONTEXT_KEY] = call

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        call = context.pop(self._CONTEXT_KEY, None)
        if call is not None and call.denied and self.enforce:
            return _access_denied(call, call.service)
        return None
