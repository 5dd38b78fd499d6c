"""The stack attached to a bucket the user already has (ExistingBucketName), deployed from template.yaml.

The user's bucket exists before the stack, already holds objects, and has a bucket policy and a
notification of its own; the stack must leave all of that as it is and receive the bucket's events
through its EventBridge rule once the owner turns EventBridge notifications on (docs/deploy.md).

The emulator (moto) delivers S3 -> EventBridge -> rule -> SQS for real, which the wiring test uses. Its
events are not quite AWS's, though: the ETag field is spelled ``eTag``, an unversioned object comes with
``"version-id": "null"`` (which moto's own GetObject then refuses), the time is a number and every event
carries the same sequencer, so they cannot drive the handler through an object's life. For that test the
emulator's events are discarded and the events AWS sends (the shape of
tests/fixtures/events/powertools_s3EventBridgeNotification*.json) are put on the default event bus with
PutEvents, as S3 would: the rule's pattern, its target and the queue are still the template's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from local.driver import QueueDriver, load_handler
from local.stack import LocalStack, deploy, empty_queue
from tests.integration.test_pipeline_end_to_end import forgotten

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
PREFIX, SUFFIX = "incoming/", ".png"


@pytest.fixture(scope="module")
def users_bucket(stack) -> dict[str, Any]:
    """A bucket of the user's, filled and configured before the image-analysis stack exists."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    name = f"users-photos-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key=f"{PREFIX}before.png", Body=(SAMPLES / "skimage-coffee.png").read_bytes())
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnersOwnRule",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteBucket",
                "Resource": f"arn:aws:s3:::{name}",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    audit_url = sqs.create_queue(QueueName=f"{name}-owners-audit")["QueueUrl"]
    audit_arn = sqs.get_queue_attributes(QueueUrl=audit_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": audit_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return {"name": name, "policy": policy, "audit_url": audit_url, "audit_arn": audit_arn}


@pytest.fixture(scope="module")
def attached(stack, users_bucket) -> LocalStack:
    created = deploy(
        "image-analysis-existing",
        parameters={
            "Architecture": "x86_64",
            "ExistingBucketName": users_bucket["name"],
            "ExistingBucketPrefix": PREFIX,
            "ExistingBucketSuffix": SUFFIX,
        },
    )
    # What docs/deploy.md has the bucket's owner do once: EventBridge on, the other notifications kept.
    s3 = boto3.client("s3")
    current = s3.get_bucket_notification_configuration(Bucket=users_bucket["name"])
    current.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(
        Bucket=users_bucket["name"], NotificationConfiguration={**current, "EventBridgeConfiguration": {}}
    )
    return created


@pytest.fixture
def attached_handler(attached, monkeypatch) -> Iterator[Any]:
    """The handler as the attached stack's function: its own table, queue and topic."""
    for name, value in attached.function_env.items():
        monkeypatch.setenv(name, value)
    yield load_handler()


def _bodies(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _item(attached: LocalStack, bucket: str, key: str) -> dict[str, Any] | None:
    table = boto3.resource("dynamodb").Table(attached.table)
    return table.get_item(Key={"pk": f"{bucket}/{key}", "sk": "null"}).get("Item")


def test_the_users_bucket_keeps_its_objects_policy_and_notifications(attached, users_bucket):
    s3 = boto3.client("s3")
    name = users_bucket["name"]
    assert attached.bucket == name
    assert attached.outputs["UploadsRuleArn"].startswith("arn:aws:events:")
    assert json.loads(s3.get_bucket_policy(Bucket=name)["Policy"]) == users_bucket["policy"]
    notifications = s3.get_bucket_notification_configuration(Bucket=name)
    assert [q["QueueArn"] for q in notifications["QueueConfigurations"]] == [users_bucket["audit_arn"]]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == [f"{PREFIX}before.png"]
    resources = boto3.client("cloudformation").list_stack_resources(StackName=attached.name)["StackResourceSummaries"]
    logical = {r["LogicalResourceId"] for r in resources}
    assert "UploadsRule" in logical and not logical & {"UploadsBucket", "UploadsBucketPolicy"}


def test_the_rule_feeds_the_queue_only_uploads_within_prefix_and_suffix(attached, users_bucket):
    s3 = boto3.client("s3")
    name = users_bucket["name"]
    empty_queue(attached.queue_url)
    body = (SAMPLES / "skimage-chelsea.png").read_bytes()
    uploaded = (f"{PREFIX}cat.png", f"{PREFIX}notes.txt", f"elsewhere/cat{SUFFIX}")
    for key in uploaded:
        s3.put_object(Bucket=name, Key=key, Body=body)
    sqs = boto3.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=attached.queue_url, MaxNumberOfMessages=10)["Messages"]
    arrived = json.loads(message["Body"])
    assert (arrived["source"], arrived["detail-type"]) == ("aws.s3", "Object Created")
    assert (arrived["detail"]["bucket"]["name"], arrived["detail"]["object"]["key"]) == (name, f"{PREFIX}cat.png")
    sqs.delete_message(QueueUrl=attached.queue_url, ReceiptHandle=message["ReceiptHandle"])
    # The owner's own notification still gets every upload.
    audited = [
        unquote_plus(r["s3"]["object"]["key"]) for b in _bodies(users_bucket["audit_url"]) for r in b.get("Records", [])
    ]
    assert sorted(audited) == sorted(uploaded)


def _s3_event(detail_type: str, bucket: str, key: str, sequencer: str, **extra: Any) -> dict[str, Any]:
    fixture = "Created" if detail_type == "Object Created" else "Deleted"
    event = json.loads((FIXTURES / f"powertools_s3EventBridgeNotificationObject{fixture}Event.json").read_text())
    detail = event["detail"]
    detail["bucket"]["name"] = bucket
    detail["object"] = {"key": key, "sequencer": sequencer, **extra.pop("object", {})}
    detail.update(extra)
    return {
        "Source": "aws.s3",
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": [f"arn:aws:s3:::{bucket}"],
        "EventBusName": "default",
    }


def test_an_objects_life_through_eventbridge_ends_with_its_result_deleted(attached, users_bucket, attached_handler):
    s3, events = boto3.client("s3"), boto3.client("events")
    name, key = users_bucket["name"], f"{PREFIX}life.png"
    body = (SAMPLES / "skimage-coffee.png").read_bytes()
    etag = s3.put_object(Bucket=name, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(attached.queue_url)  # the emulator's own event (see the module docstring)

    def deliver(entry: dict[str, Any]) -> None:
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        report = QueueDriver(attached_handler, attached.queue_url).drain()
        assert (report.messages, report.failed_messages) == (1, 0), "the rule did not deliver exactly one event"

    created = {"object": {"size": len(body), "etag": etag}, "reason": "PutObject"}
    deliver(_s3_event("Object Created", name, key, "0055AED6DCD90281E5", **created))
    assert _item(attached, name, key)["status"] == "succeeded"
    # A delete marker keeps the object's data, so its result stays.
    deliver(_s3_event("Object Deleted", name, key, "0055AED6DCD90281E6", **{"deletion-type": "Delete Marker Created"}))
    assert _item(attached, name, key)["status"] == "succeeded"
    s3.delete_object(Bucket=name, Key=key)
    empty_queue(attached.queue_url)
    deliver(_s3_event("Object Deleted", name, key, "0055AED6DCD90281F0", **{"deletion-type": "Permanently Deleted"}))
    assert forgotten(_item(attached, name, key))
