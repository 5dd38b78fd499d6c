"""Backfill and reconcile events against results that real S3 events left.

A backfill message carries no sequencer (only S3 issues those); it names the exact ETag and, as its
event time, the object's LastModified as S3 listed it. The pipeline orders such an event by ETag and
event time, and reads the object only while its ETag still matches.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from click.testing import CliRunner

from image_analysis.events import padded_sequencer
from image_analysis.models import AnalysisResult, ErrorInfo
from image_analysis.store import ResultStore
from image_analysis_cli.enqueue import ListedObject, s3_notification
from image_analysis_cli.main import cli
from local.driver import QueueDriver
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES

pytestmark = pytest.mark.integration

ROCKET = (SAMPLES / "skimage-rocket.jpg").read_bytes()
COFFEE = (SAMPLES / "skimage-coffee.png").read_bytes()
REAL_SEQUENCER = "0066F0A1B2C3D4E5F6"  # the shape S3 gives: hexadecimal, compared after padding


def run(stack, *args):
    result = CliRunner().invoke(cli, ["--stack-name", stack.name, *args], catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result


def queued_bodies(queue_url):
    sqs = boto3.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        break
    return bodies


def real_event(bucket: str, key: str, etag: str, size: int) -> str:
    """The notification S3 sends for an upload: with its sequencer."""
    body = json.loads(s3_notification(ListedObject(bucket, key, size, etag)))
    body["Records"][0]["s3"]["object"]["sequencer"] = REAL_SEQUENCER
    return json.dumps(body)


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ANALYSIS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def bucket(stack):
    name = f"ordering-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def queue(stack):
    """The backfill queue, where the command sends (both queues start and end empty)."""
    for url in stack.queue_urls:
        empty_queue(url)
    yield stack.backfill_queue_url
    for url in stack.queue_urls:
        empty_queue(url)


def test_backfill_messages_carry_no_sequencer_and_the_objects_own_time(stack, bucket, queue):
    s3 = boto3.client("s3")
    put = s3.put_object(Bucket=bucket, Key="m/one.jpg", Body=ROCKET)
    written = s3.head_object(Bucket=bucket, Key="m/one.jpg")["LastModified"]
    time.sleep(1.1)  # the listing comes a second later: its time is not the object's
    run(stack, "backfill", f"s3://{bucket}/m/")
    assert queued_bodies(stack.queue_url) == []  # live uploads' queue: nothing from the command
    (body,) = queued_bodies(queue)
    record = body["Records"][0]
    assert "sequencer" not in record["s3"]["object"]
    assert record["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    # LastModified as S3 listed it (whole seconds, S3's clock): never later than a newer upload's event.
    assert record["eventTime"] == written.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert datetime.fromisoformat(record["eventTime"]) < datetime.now(UTC) - timedelta(seconds=1)


def test_backfill_completes_a_failed_result_that_a_real_event_left(stack, bucket, queue, handler, table):
    put = boto3.client("s3").put_object(Bucket=bucket, Key="f/photo.jpg", Body=ROCKET)
    etag = put["ETag"].strip('"')
    # The upload's own event ran out of retries (a vendor outage): the item says failed, under its sequencer.
    failed = AnalysisResult(
        bucket=bucket,
        key="f/photo.jpg",
        etag=etag,
        sequencer=REAL_SEQUENCER,
        status="failed",
        error=ErrorInfo(code="server_error", message="the vendor answered 503"),
        attempts=3,
        analyzed_at="2026-11-20T10:00:00.000Z",
    )
    ResultStore(stack.table, boto3.client("dynamodb")).put_failure(failed, padded_sequencer(REAL_SEQUENCER))

    run(stack, "backfill", f"s3://{bucket}/f/")
    QueueDriver(handler, queue).drain()
    item = table.get_item(Key={"pk": f"{bucket}/f/photo.jpg", "sk": "null"})["Item"]
    assert item["status"] == "succeeded" and item["etag"] == etag
    assert item["format"] == "jpeg"
    # The result keeps the real event's sequence: that event redriven from the dead-letter queue later
    # is a duplicate, not a second (paid) analysis.
    assert item["seq"] == padded_sequencer(REAL_SEQUENCER)
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=real_event(bucket, "f/photo.jpg", etag, len(ROCKET)))
    QueueDriver(handler, queue).drain()
    again = table.get_item(Key={"pk": f"{bucket}/f/photo.jpg", "sk": "null"})["Item"]
    assert again["analyzed_at"] == item["analyzed_at"]


def test_backfill_after_an_overwrite_analyzes_the_new_bytes_once(stack, bucket, queue, handler, table):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="o/photo", Body=COFFEE)
    run(stack, "backfill", f"s3://{bucket}/o/")
    QueueDriver(handler, queue).drain()
    time.sleep(1.1)  # the listing's time has whole seconds: the next one is later
    # Overwritten while no notification reached the pipeline (the bucket was not attached yet).
    newer = s3.put_object(Bucket=bucket, Key="o/photo", Body=ROCKET)
    run(stack, "backfill", f"s3://{bucket}/o/")
    QueueDriver(handler, queue).drain()
    item = table.get_item(Key={"pk": f"{bucket}/o/photo", "sk": "null"})["Item"]
    assert item["etag"] == newer["ETag"].strip('"') and item["format"] == "jpeg"
    analyzed_at = item["analyzed_at"]
    run(stack, "backfill", f"s3://{bucket}/o/")  # the same bytes again: acknowledged, not analyzed
    QueueDriver(handler, queue).drain()
    assert table.get_item(Key={"pk": f"{bucket}/o/photo", "sk": "null"})["Item"]["analyzed_at"] == analyzed_at


def test_reconcile_replaces_a_real_events_result_for_older_bytes(stack, bucket, queue, handler, table):
    s3 = boto3.client("s3")
    older = s3.put_object(Bucket=bucket, Key="s/photo", Body=COFFEE)
    boto3.client("sqs").send_message(
        QueueUrl=queue, MessageBody=real_event(bucket, "s/photo", older["ETag"].strip('"'), len(COFFEE))
    )
    QueueDriver(handler, queue).drain()
    # Overwritten, and that upload's event never reached the pipeline.
    newer = s3.put_object(Bucket=bucket, Key="s/photo", Body=ROCKET)

    report = json.loads(run(stack, "reconcile", f"s3://{bucket}/s/", "--json").stdout)
    assert report["stale_results"] == [{"key": "s/photo", "version_id": None}]
    fixed = run(stack, "reconcile", f"s3://{bucket}/s/", "--enqueue")
    assert "Enqueued 1 object(s)" in fixed.output
    QueueDriver(handler, queue).drain()
    item = table.get_item(Key={"pk": f"{bucket}/s/photo", "sk": "null"})["Item"]
    assert item["etag"] == newer["ETag"].strip('"') and item["format"] == "jpeg"
    assert item["reprocess"]["reason"].startswith("reconcile")
    assert run(stack, "reconcile", f"s3://{bucket}/s/").exit_code == 0
