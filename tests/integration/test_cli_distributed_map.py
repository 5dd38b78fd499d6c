"""scale/backfill-distributed-map.yaml run by the emulator's Step Functions interpreter (moto's copy of
LocalStack's), its messages then processed by the real handler.

Two things the emulator does not do as AWS does, and how the test stands in for them: it has no
``ItemBatcher``, and its S3 item reader returns boto3's shape (``ETag``, datetimes) instead of Step
Functions' (``Etag``, epoch seconds). So the test lists the bucket itself, in the shape Step Functions
documents for the ``listObjectsV2`` reader, and passes each item straight to the per-object states that
the template runs inside each batch. Everything else (the versioning check, the ItemSelector, the folder
marker rule, the HEAD of the current version, the message bodies) is the template's own definition.
"""

from __future__ import annotations

import copy
import json
import os
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from image_analysis.events import parse_event
from image_analysis.handler import START_MARGIN_SECONDS
from local.driver import QueueDriver, load_handler
from local.stack import translate
from tests.integration.conftest import SAMPLES
from tests.integration.test_cli_ordering import real_event

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "scale" / "backfill-distributed-map.yaml"
ROCKET = (SAMPLES / "skimage-rocket.jpg").read_bytes()
COFFEE = (SAMPLES / "skimage-coffee.png").read_bytes()


def _moto_config(execute: bool) -> None:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": execute}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request).read()


@pytest.fixture
def interpreter(stack, monkeypatch):
    # The interpreter's own AWS calls go to localhost:MOTO_PORT.
    monkeypatch.setenv("MOTO_PORT", os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    _moto_config(True)
    yield
    _moto_config(False)


def definition(parameters: dict[str, str]) -> dict:
    """The state machine definition as CloudFormation would hand it to Step Functions."""
    resource = translate(TEMPLATE, parameters)["Resources"]["BackfillStateMachine"]["Properties"]
    text = "\n".join(resource["DefinitionString"]["Fn::Join"][1])
    for name, value in resource["DefinitionSubstitutions"].items():
        if "Ref" in value:
            resolved = parameters[value["Ref"]]
        else:  # Fn::Sub over template parameters
            resolved = value["Fn::Sub"]
            for parameter, given in parameters.items():
                resolved = resolved.replace("${" + parameter + "}", given)
        text = text.replace("${" + name + "}", resolved)
    return json.loads(text)


def runnable_without_batches(machine: dict) -> dict:
    """EveryObject as an inline Map over a listing given in the input (see the module docstring)."""
    machine = copy.deepcopy(machine)
    machine["States"]["Settings"]["Parameters"]["listed.$"] = "$.listed"
    every = machine["States"]["EveryObject"]
    per_object = every["ItemProcessor"]["States"]["SendEach"]["ItemProcessor"]
    for field in ("ItemReader", "ItemBatcher", "ResultWriter", "ToleratedFailurePercentage"):  # distributed only
        every.pop(field)
    every["ItemsPath"] = "$.listed"
    every["ItemProcessor"] = {**per_object, "ProcessorConfig": {"Mode": "INLINE"}}
    return machine


def reader_items(bucket: str, prefix: str) -> list[dict]:
    """What Step Functions' listObjectsV2 item reader passes on for each object."""
    page = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [
        {
            "Etag": item["ETag"],
            "Key": item["Key"],
            "LastModified": int(item["LastModified"].timestamp()),
            "Size": item["Size"],
            "StorageClass": item.get("StorageClass", "STANDARD"),
        }
        for item in page.get("Contents", [])
    ]


def run_backfill(bucket: str, prefix: str, queue_url: str, listed: list[dict] | None = None) -> list[str]:
    """Run the map over ``listed`` (default: the bucket as it is listed now); the messages it sent."""
    sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    parameters = {
        "BackfillQueueUrl": queue_url,
        "BackfillQueueArn": queue_arn,
        "SourceBucketName": bucket,
        "RunReportsBucketName": "reports",
        "MaxConcurrency": "5",
    }
    machine = runnable_without_batches(definition(parameters))
    arn = sfn.create_state_machine(
        name=f"backfill-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(machine),
        roleArn="arn:aws:iam::123456789012:role/backfill",
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=arn,
        input=json.dumps({"prefix": prefix, "listed": reader_items(bucket, prefix) if listed is None else listed}),
    )["executionArn"]
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the backfill execution did not finish"
        time.sleep(0.2)
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def refs(bodies: list[str]) -> list:
    event = {
        "Records": [
            {"messageId": str(i), "eventSource": "aws:sqs", "body": body, "attributes": {}}
            for i, body in enumerate(bodies)
        ]
    }
    return sorted((ref for record in parse_event(event).records for ref in record.objects), key=lambda r: r.key)


def test_versioned_bucket_sends_current_version_ids_and_skips_folder_markers(stack, interpreter, table):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = f"dmap-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="bf/rocket.jpg", Body=COFFEE)
    rocket = s3.put_object(Bucket=bucket, Key="bf/rocket.jpg", Body=ROCKET)
    coffee = s3.put_object(Bucket=bucket, Key="bf/a b+c%.png", Body=COFFEE)
    s3.put_object(Bucket=bucket, Key="bf/folder/", Body=b"")
    queue = sqs.create_queue(QueueName=f"dmap-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    bodies = run_backfill(bucket, "bf/", queue)
    sent = refs(bodies)
    assert [(r.key, r.version_id, r.etag, r.size) for r in sent] == [
        ("bf/a b+c%.png", coffee["VersionId"], coffee["ETag"].strip('"'), len(COFFEE)),
        ("bf/rocket.jpg", rocket["VersionId"], rocket["ETag"].strip('"'), len(ROCKET)),
    ]
    assert all(r.sequencer is None and r.event_time for r in sent)

    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    QueueDriver(load_handler(), queue).drain()
    item = table.get_item(Key={"pk": f"{bucket}/bf/rocket.jpg", "sk": rocket["VersionId"]}).get("Item")
    assert item is not None and item["status"] == "succeeded" and item["format"] == "jpeg"
    assert "Item" not in table.get_item(Key={"pk": f"{bucket}/bf/rocket.jpg", "sk": "null"})


def test_unversioned_bucket_sends_no_version_id(stack, interpreter):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = f"dmap-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    put = s3.put_object(Bucket=bucket, Key="bf/only.jpg", Body=ROCKET)
    s3.put_object(Bucket=bucket, Key="bf/empty-folder/", Body=b"")
    queue = sqs.create_queue(QueueName=f"dmap-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    sent = refs(run_backfill(bucket, "bf/", queue))
    assert [(r.key, r.version_id, r.etag) for r in sent] == [("bf/only.jpg", None, put["ETag"].strip('"'))]


def _iso_seconds(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_message_sent_after_an_overwrite_never_replaces_the_newer_uploads_result(stack, interpreter, table):
    """The map lists the bucket first and sends each object much later. An object overwritten in between
    is sent with its listed ETag and, as its time, the listing's LastModified: earlier than the newer
    upload's event, so a `failed` write for the listed bytes (an invocation that ran out of time) loses to
    the newer upload's final result. (With the time the send state ran, it replaced that result.)"""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = f"dmap-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    older = s3.put_object(Bucket=bucket, Key="bf/photo.jpg", Body=COFFEE)
    listed = reader_items(bucket, "bf/")  # the run's listing, taken at its start
    time.sleep(1.1)  # LastModified has whole seconds: the overwrite is a later one
    newer = s3.put_object(Bucket=bucket, Key="bf/photo.jpg", Body=ROCKET)
    live = sqs.create_queue(QueueName=f"live-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    event = real_event(bucket, "bf/photo.jpg", newer["ETag"].strip('"'), len(ROCKET))
    sqs.send_message(QueueUrl=live, MessageBody=event)
    QueueDriver(load_handler(), live).drain()
    key = {"pk": f"{bucket}/bf/photo.jpg", "sk": "null"}
    result = table.get_item(Key=key, ConsistentRead=True)["Item"]
    assert result["status"] == "succeeded" and result["etag"] == newer["ETag"].strip('"')

    backfill = sqs.create_queue(QueueName=f"dmap-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    bodies = run_backfill(bucket, "bf/", backfill, listed=listed)
    (ref,) = refs(bodies)
    assert ref.etag == older["ETag"].strip('"')
    assert ref.ordering_time == _iso_seconds(listed[0]["LastModified"]) < result["event_time"]

    # Its invocation runs out of time before the object: the handler hands it back, writing `failed`.
    for body in bodies:
        sqs.send_message(QueueUrl=backfill, MessageBody=body)
    driver = QueueDriver(load_handler(), backfill, timeout_seconds=START_MARGIN_SECONDS / 2)
    assert driver.poll_once() == (1, 1)
    assert table.get_item(Key=key, ConsistentRead=True)["Item"] == result
