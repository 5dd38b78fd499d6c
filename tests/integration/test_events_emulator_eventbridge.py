"""The emulator's own S3 -> EventBridge -> SQS delivery drives the handler to a result.

moto's EventBridge events differ from AWS's in ways the parser accepts: ``eTag`` for ``etag``,
``"version-id": "null"`` for an unversioned bucket (which moto's own GetObject refuses as a VersionId),
and ``time`` as seconds since the epoch where it is not formatted on the way (its SQS targets format it;
tests/unit/test_events_powertools.py covers the number).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from local.driver import QueueDriver

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def eventbridge_bucket(stack):
    """A bucket with EventBridge notifications on, and a rule sending its events to a queue of its own."""
    s3, sqs, events = boto3.client("s3"), boto3.client("sqs"), boto3.client("events")
    name = f"eb-events-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})
    queue_url = sqs.create_queue(QueueName=f"{name}-queue")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"{name}-rule"
    pattern = {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [name]}}}
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    yield name, queue_url
    events.remove_targets(Rule=rule, Ids=["queue"])
    events.delete_rule(Name=rule)


def test_an_upload_delivered_by_the_emulators_eventbridge_is_analyzed(eventbridge_bucket, handler, table):
    bucket, queue_url = eventbridge_bucket
    key = "photos/a+b c.png"  # EventBridge sends the key as it is
    etag = (
        boto3.client("s3")
        .put_object(Bucket=bucket, Key=key, Body=(SAMPLES / "skimage-coffee.png").read_bytes())["ETag"]
        .strip('"')
    )
    (message,) = boto3.client("sqs").receive_message(QueueUrl=queue_url, VisibilityTimeout=0)["Messages"]
    sent = json.loads(message["Body"])["detail"]["object"]
    assert (sent["version-id"], sent["eTag"], "etag" in sent) == ("null", etag, False)

    report = QueueDriver(handler, queue_url).drain()
    assert (report.messages, report.failed_messages) == (1, 0)
    item = table.get_item(Key={"pk": f"{bucket}/{key}", "sk": "null"})["Item"]
    assert (item["status"], item["key"], item["etag"], item["format"]) == ("succeeded", key, etag, "png")
    assert "version_id" not in item
    # The event time is kept as the canonical text that orders events without a usable sequencer.
    assert item["event_time"].endswith(".000Z")
