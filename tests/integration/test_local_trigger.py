"""The local SQS trigger as Lambda runs it: batches, partial failures, redrive, and no swallowed crash."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import boto3
import pytest

from local.driver import InvocationFailed, QueueDriver
from local.outcomes import ObjectLines
from local.stack import LocalStack, Trigger
from local.trigger import SqsTrigger

pytestmark = pytest.mark.integration


def queue_pair(max_receive_count: int) -> tuple[str, str, str]:
    """A queue with a dead-letter queue, as the template makes them: (url, arn, dead-letter url)."""
    sqs = boto3.client("sqs")
    name = f"trigger-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq


def upload_event(bucket: str, key: str) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "eTag": "e"}},
                }
            ]
        }
    )


def visible(url: str) -> list[dict[str, Any]]:
    return (
        boto3.client("sqs")
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0)
        .get("Messages", [])
    )


def test_an_invocation_that_raises_hands_its_batch_back_and_says_so(stack):
    url, _, _ = queue_pair(max_receive_count=5)
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody=upload_event(stack.bucket, "a.png"))

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise ValueError("unknown provider 'imaga'")

    with pytest.raises(InvocationFailed) as raised:
        QueueDriver(handler, url).poll_once()
    assert isinstance(raised.value.__cause__, ValueError)
    assert "unknown provider 'imaga'" in str(raised.value) and "batch of 1 message(s) went back" in str(raised.value)
    back = visible(url)  # at once: the driver made it visible again
    assert len(back) == 1 and back[0]["Attributes"]["ApproximateReceiveCount"] == "2", "the poller's and this one"


def test_batches_partial_failures_and_the_redrive_to_the_dead_letter_queue(stack):
    url, arn, dlq = queue_pair(max_receive_count=3)
    sqs = boto3.client("sqs")
    keys = [f"t/{i}.png" for i in range(7)]
    for key in keys:
        sqs.send_message(QueueUrl=url, MessageBody=upload_event(stack.bucket, key))
    batches: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Lambda hands over at most BatchSize messages and retries only those named in batchItemFailures.
        records = event["Records"]
        batches.append(len(records))
        failing = [r for r in records if json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] == "t/3.png"]
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failing]}

    out = io.StringIO()
    local = LocalStack("test", {}, {}, "", triggers=[Trigger(arn, batch_size=4)])
    lines = ObjectLines(stack.table, stack.bucket, out)
    trigger = SqsTrigger(handler, local, on_invocation=lines, retry_delay_seconds=0)
    for _ in range(12):
        trigger.poll()
    assert max(batches) == 4 and sum(batches) == len(keys) + 2, "t/3.png delivered three times in all"
    lines = out.getvalue().splitlines()
    t3 = [line for line in lines if "t/3.png" in line]
    assert [line.split()[1] for line in t3] == ["retry", "retry", "dead-letter"], lines
    assert "(delivery 3 of 3)" in t3[-1]
    moved = visible(dlq)
    assert len(moved) == 1 and "t/3.png" in moved[0]["Body"]
    assert visible(url) == [], "everything else was deleted from the queue"
