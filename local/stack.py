"""Create the stack from template.yaml itself in the embedded emulator, then wire what the emulator skips.

The SAM template is translated by aws-sam-translator (the same library ``sam deploy`` relies on) and
created through the emulator's CloudFormation. moto 5 creates the translated resources but skips
S3 bucket notifications, SNS subscriptions and (in some versions) Secrets Manager secrets, and its SQS
event source mapping would try to run the function in Docker. So, after creation:
- the uploads bucket gets its notifications of uploads and deletions to the analysis queue (as the
  template declares them), unless the stack attaches to an existing bucket (``ExistingBucketName``),
  which is left as it is;
- an observer queue is subscribed to the alerts topic, to show what subscribers receive;
- the provider secret is created when the emulator skipped it;
- the event source mappings are disabled: ``local.trigger`` plays the Lambda poller instead, for every
  queue the function is wired to (``LocalStack.triggers``).

The function's role is resolved from the translated template into ``LocalStack.role_policy`` and
registered, so that ``local.permissions`` can check the function's calls against it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from local.emulator import routed
from local.permissions import RolePolicy, register

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ARTIFACTS_BUCKET = "local-sam-artifacts"
FUNCTION_LOGICAL_ID = "AnalyzeFunction"


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class _NoManagedPolicies:
    """The template names no AWS managed policies by name, so nothing needs looking up in IAM."""

    def load(self) -> dict[str, str]:
        return {}


def translate(template_path: Path = TEMPLATE, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """SAM -> CloudFormation, with local code locations replaced by artifacts in the emulator's S3."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    sam = yaml_parse(template_path.read_text())
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://{ARTIFACTS_BUCKET}/{logical_id}.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{ARTIFACTS_BUCKET}/{logical_id}.zip"
    return transform(sam, parameters or {}, _NoManagedPolicies())


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder))
    return buffer.getvalue()


@dataclass(frozen=True)
class Trigger:
    """One SQS event source of the function, as the template declares it."""

    queue_arn: str
    batch_size: int

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]


@dataclass
class LocalStack:
    name: str
    outputs: dict[str, str]
    function_env: dict[str, str]
    observer_queue_url: str
    triggers: list[Trigger] = field(default_factory=list)
    role_policy: RolePolicy | None = None
    # What the stack was created from: the translated template, its physical names and its parameters.
    template: dict[str, Any] = field(default_factory=dict, repr=False)
    physical: dict[str, str] = field(default_factory=dict, repr=False)
    parameters: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def bucket(self) -> str:
        return self.outputs["UploadsBucketName"]

    @property
    def queue_url(self) -> str:
        return self.outputs["AnalyzeQueueUrl"]

    @property
    def dlq_url(self) -> str:
        return self.outputs["DeadLetterQueueUrl"]

    @property
    def backfill_queue_url(self) -> str:
        """Backfill, reprocess and reconcile messages: a queue (and a trigger) of their own."""
        return self.outputs["BackfillQueueUrl"]

    @property
    def queue_urls(self) -> tuple[str, str]:
        """Every queue the function's triggers read, live uploads first: what ``QueueDriver`` drains."""
        return (self.queue_url, self.backfill_queue_url)

    @property
    def table(self) -> str:
        return self.outputs["ResultsTableName"]

    @property
    def topic_arn(self) -> str:
        return self.outputs["AlertsTopicArn"]

    def role_policy_from(
        self,
        template: dict[str, Any],
        parameters: dict[str, str] | None = None,
        physical: dict[str, str] | None = None,
    ) -> RolePolicy:
        """The function role's statements of ``template`` (e.g. an edited copy of ``self.template``),
        resolved with this stack's names (``parameters`` and ``physical`` change some of them)."""
        arn_parts = self.outputs["AlertsTopicArn"].split(":")
        names = {**self.physical, "ProviderSecret": self.outputs["ProviderSecretArn"], **(physical or {})}
        policy = RolePolicy.from_template(
            template,
            names,
            {**self.parameters, **(parameters or {})},
            stack_name=self.name,
            region=arn_parts[3],
            account=arn_parts[4],
            results_table=self.table,
        )

        def as_if_using(bucket: str) -> RolePolicy:
            # The bucket as the stack's existing uploads bucket, or as its artifacts bucket.
            uploads = self.role_policy_from(template, {**(parameters or {}), "ExistingBucketName": bucket}, physical)
            artifacts = self.role_policy_from(template, parameters, {**(physical or {}), "ArtifactsBucket": bucket})
            return RolePolicy(policy.role_arn, uploads.statements + artifacts.statements, self.table)

        policy.rebind = as_if_using
        return policy


def deploy(
    stack_name: str = "image-analysis-local",
    parameters: dict[str, str] | None = None,
    template_path: Path = TEMPLATE,
) -> LocalStack:
    """Create the stack in the emulator the SDK environment points at; return its names."""
    parameters = parameters or {}
    s3 = boto3.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # a second stack in the same emulator
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=f"{FUNCTION_LOGICAL_ID}.zip", Body=_zip_of(ROOT / "functions/analyze"))
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key="SharedLayer.zip", Body=_zip_of(ROOT / "layers/shared"))

    cloudformation = boto3.client("cloudformation")
    with warnings.catch_warnings(), _quiet("moto"):
        # moto warns for every resource type it skips, and about Docker for the function; the
        # resources that matter here are wired below, and the function runs in this process.
        warnings.simplefilter("ignore")
        translated = translate(template_path, parameters)
        _create(cloudformation, stack_name, translated, parameters)
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        physical = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
        }
    if os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or routed("DynamoDB_20120810"):
        # DynamoDB lives in DynamoDB Local: create the stack's tables there, from the same definitions.
        from local.dynamodb_local import create_tables

        create_tables(translated, physical)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    # Disable the emulator's trigger before any message arrives (it would try to start Docker).
    function_env, triggers = _function_env_and_disable_triggers(outputs["AnalyzeFunctionName"])
    if not parameters.get("ExistingBucketName"):
        # An existing bucket keeps its own notifications: the template's EventBridge rule (which the
        # emulator creates) feeds the queue once the bucket's owner turns EventBridge notifications on.
        _wire_bucket_notification(outputs)
    _ensure_secret(outputs, stack_name)
    observer = _observe_alerts(outputs["AlertsTopicArn"], stack_name)
    function_env["PROVIDER_SECRET_ARN"] = outputs["ProviderSecretArn"]
    stack = LocalStack(
        stack_name,
        outputs,
        function_env,
        observer,
        triggers=triggers,
        template=translated,
        physical=physical,
        parameters=dict(parameters),
    )
    stack.role_policy = stack.role_policy_from(translated)
    register(stack.role_policy)
    return stack


def _create(cloudformation: Any, stack_name: str, translated: dict[str, Any], parameters: dict[str, str]) -> None:
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def _wire_bucket_notification(outputs: dict[str, str]) -> None:
    sqs = boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=outputs["AnalyzeQueueUrl"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    # The same notifications the template declares on UploadsBucket: uploads and deletions.
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=outputs["UploadsBucketName"],
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]},
                {"QueueArn": queue_arn, "Events": ["s3:ObjectRemoved:*"]},
            ]
        },
    )


def _ensure_secret(outputs: dict[str, str], stack_name: str) -> None:
    secrets = boto3.client("secretsmanager")
    arn = outputs.get("ProviderSecretArn", "")
    try:
        described = secrets.describe_secret(SecretId=arn) if arn.startswith("arn:") else None
    except secrets.exceptions.ResourceNotFoundException:
        described = None
    if described is None:
        created = secrets.create_secret(Name=f"{stack_name}-provider-keys", SecretString="{}")
        outputs["ProviderSecretArn"] = created["ARN"]


def _observe_alerts(topic_arn: str, stack_name: str) -> str:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{stack_name}-alerts-observer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _function_env_and_disable_triggers(function_name: str) -> tuple[dict[str, str], list[Trigger]]:
    lambda_client = boto3.client("lambda")
    config = lambda_client.get_function_configuration(FunctionName=function_name)
    triggers = []
    for mapping in lambda_client.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]:
        lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        if mapping.get("EventSourceArn", "").startswith("arn:aws:sqs:"):
            triggers.append(Trigger(mapping["EventSourceArn"], int(mapping.get("BatchSize") or 10)))
    # Lambda keeps every variable as a string; the emulator may hand back a Number parameter as an int.
    env = {k: str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}
    # The template declares it empty (meaning AWS); locally the emulator's endpoint must win.
    if not env.get("AWS_ENDPOINT_URL"):
        env.pop("AWS_ENDPOINT_URL", None)
    return env, triggers


def empty_queue(queue_url: str) -> int:
    """Delete every message waiting (PurgeQueue would do, but may run only once a minute)."""
    sqs = boto3.client("sqs")
    deleted = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return deleted
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        deleted += len(messages)


def read_alerts(observer_queue_url: str, wait_seconds: int = 0) -> list[dict[str, Any]]:
    """Every alert the observer queue holds: the SNS envelope with Subject, Message and attributes."""
    sqs = boto3.client("sqs")
    alerts = []
    while True:
        response = sqs.receive_message(
            QueueUrl=observer_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        messages = response.get("Messages", [])
        if not messages:
            return alerts
        for message in messages:
            envelope = json.loads(message["Body"])
            envelope["Message"] = json.loads(envelope["Message"])
            alerts.append(envelope)
            sqs.delete_message(QueueUrl=observer_queue_url, ReceiptHandle=message["ReceiptHandle"])
        wait_seconds = 0
