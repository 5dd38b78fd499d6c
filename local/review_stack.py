"""The review side of the local stack: what the emulator skips for the review function, wired by hand.

After ``local.stack.deploy``: the review function's SQS trigger is disabled (the emulator would run it in
Docker; ``local.driver.QueueDriver`` plays the poller for it, as for the analysis function), the effects
queue is subscribed to the decisions topic with raw message delivery (as the template's
ReviewEffectsSubscription declares), and the review function's environment is returned. An observer
queue on the decisions topic shows what subscribers receive.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local.driver import ROOT, QueueDriver

REVIEW_FUNCTION_DIR = ROOT / "functions/review"


@dataclass
class LocalReview:
    outputs: dict[str, str]
    function_env: dict[str, str]
    observer_queue_url: str

    @property
    def effects_queue_url(self) -> str:
        return self.outputs["ReviewEffectsQueueUrl"]

    @property
    def topic_arn(self) -> str:
        return self.outputs["DecisionsTopicArn"]

    @property
    def audit_table(self) -> str:
        return self.outputs["AuditTableName"]

    @property
    def queue_table(self) -> str:
        return self.outputs["ReviewQueueTableName"]

    def drain_effects(self, handler: Any) -> int:
        """Apply every decision waiting in the effects queue, as the SQS trigger would; returns messages."""
        return QueueDriver(handler, self.effects_queue_url, batch_size=10).drain().messages


def attach_review(outputs: dict[str, str], stack_name: str) -> LocalReview:
    lambda_client = boto3.client("lambda")
    name = outputs["ReviewFunctionName"]
    for mapping in lambda_client.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
        lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    config = lambda_client.get_function_configuration(FunctionName=name)
    env = {k: str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}
    if not env.get("AWS_ENDPOINT_URL"):
        env.pop("AWS_ENDPOINT_URL", None)
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    topic = outputs["DecisionsTopicArn"]
    effects_arn = _queue_arn(sqs, outputs["ReviewEffectsQueueUrl"])
    subscribed = {s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]}
    if effects_arn not in subscribed:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=effects_arn, Attributes={"RawMessageDelivery": "true"})
    observer = sqs.create_queue(QueueName=f"{stack_name}-decisions-observer")["QueueUrl"]
    observer_arn = _queue_arn(sqs, observer)
    if observer_arn not in subscribed:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=observer_arn, Attributes={"RawMessageDelivery": "true"})
    return LocalReview(outputs, env, observer)


def _queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def load_review_handler(function_dir: Path = REVIEW_FUNCTION_DIR, layer_dir: Path | None = None) -> Any:
    """A fresh import of the review function's ``app`` (a new container, as far as the code can tell)."""
    layer_dir = layer_dir or ROOT / "layers/shared"
    if str(layer_dir) not in sys.path:
        sys.path.insert(0, str(layer_dir))
    spec = importlib.util.spec_from_file_location("review_app", function_dir / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def configure_review_env(review: LocalReview) -> None:
    """The review function's variables beside the analysis function's (the names they share agree)."""
    os.environ.update(review.function_env)
