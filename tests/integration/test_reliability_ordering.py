"""Events without a sequencer (the emulator's own notifications carry none) are still ordered: a
re-upload replaces the result, a delete forgets it, and duplicates or late copies change nothing."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from local.driver import LambdaContext
from tests.integration.conftest import SAMPLES
from tests.integration.test_pipeline_end_to_end import forgotten, item, s3_event, sqs_event

pytestmark = pytest.mark.integration


@pytest.fixture
def notifications_with_deletes(stack):
    """The template's notification (creates and deletes); the local stack wires creates only."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    before = s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    before.pop("ResponseMetadata", None)
    arn = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=stack.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
        },
    )
    yield
    s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration=before)


def unsequenced(event, event_time):
    """``event`` as the emulator sends it: no sequencer, only the event time."""
    event = copy.deepcopy(event)
    record = event["Records"][0]
    del record["s3"]["object"]["sequencer"]
    record["eventTime"] = event_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


def test_upload_overwrite_and_delete_without_sequencers(
    stack, s3, table, drain, handler, prefix, notifications_with_deletes
):
    key = f"{prefix}reused name.png"
    first, second = (SAMPLES / "skimage-chelsea.png").read_bytes(), (SAMPLES / "skimage-coffee.png").read_bytes()

    first_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=first)["ETag"].strip('"')
    assert drain().failed_messages == 0
    assert item(table, stack.bucket, key)["etag"] == first_etag
    uploaded_at = datetime.now(UTC)

    # The same key again, new bytes: a newer object, not a duplicate of the first.
    second_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=second)["ETag"].strip('"')
    assert drain().failed_messages == 0
    stored = item(table, stack.bucket, key)
    assert (stored["status"], stored["etag"]) == ("succeeded", second_etag)
    assert stored["sha256"] == hashlib.sha256(second).hexdigest()

    # A late copy of the first upload's event and a duplicate of the second change nothing.
    late = unsequenced(s3_event(stack.bucket, key, first_etag, len(first), "-"), uploaded_at - timedelta(seconds=5))
    duplicate = unsequenced(s3_event(stack.bucket, key, second_etag, len(second), "-"), datetime.now(UTC))
    assert handler(sqs_event(late, duplicate), LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key) == stored

    # The delete forgets the result.
    s3.delete_object(Bucket=stack.bucket, Key=key)
    assert drain().failed_messages == 0
    assert forgotten(item(table, stack.bucket, key))

    # A re-upload after the delete is analyzed, and a late replay of the delete does not remove it.
    deleted_at = datetime.now(UTC)
    third_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=first)["ETag"].strip('"')
    assert drain().failed_messages == 0
    assert item(table, stack.bucket, key)["etag"] == third_etag
    replay = unsequenced(s3_event(stack.bucket, key, second_etag, len(second), "-"), deleted_at)
    replay["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert handler(sqs_event(replay), LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key)["etag"] == third_etag


def test_emulator_notifications_really_carry_no_sequencer(stack, s3, prefix):
    """The premise of the test above: what the emulator sends has no sequencer."""
    from local.stack import empty_queue

    empty_queue(stack.queue_url)
    s3.put_object(Bucket=stack.bucket, Key=f"{prefix}probe.png", Body=(SAMPLES / "skimage-chelsea.png").read_bytes())
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1)["Messages"]
    sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    record = json.loads(message["Body"])["Records"][0]
    assert "sequencer" not in record["s3"]["object"] and record["eventTime"]
