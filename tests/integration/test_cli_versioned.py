"""The command line on a versioned bucket: results keyed by version, as the pipeline keys them."""

from __future__ import annotations

import json
import uuid
from urllib.parse import unquote_plus

import boto3
import pytest
from click.testing import CliRunner

from image_analysis_cli.enqueue import ListedObject, s3_notification
from image_analysis_cli.main import cli
from local.driver import QueueDriver, load_handler
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES, ai_png
from tests.integration.test_pipeline_end_to_end import forgotten

pytestmark = pytest.mark.integration

ROCKET = (SAMPLES / "skimage-rocket.jpg").read_bytes()
COFFEE = (SAMPLES / "skimage-coffee.png").read_bytes()


def run(stack, *args):
    return CliRunner().invoke(cli, ["--stack-name", stack.name, *args], catch_exceptions=False)


def drain_bodies(queue_url):
    sqs = boto3.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def send(queue_url, bodies):
    for body in bodies:
        boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)


def version_deleted(bucket, key, version_id, sequencer):
    """The notification S3 sends when a version is deleted for good (not a delete marker)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventTime": "2026-11-23T10:00:00.000Z",
                    "eventName": "ObjectRemoved:Delete",
                    "s3": {
                        "bucket": {"name": bucket},
                        "object": {"key": key, "versionId": version_id, "sequencer": sequencer},
                    },
                }
            ]
        }
    )


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ANALYSIS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def versioned(stack):
    name = f"versioned-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def queue(stack):
    """The backfill queue, where the command sends (both queues start and end empty)."""
    for url in stack.queue_urls:
        empty_queue(url)
    yield stack.backfill_queue_url
    for url in stack.queue_urls:
        empty_queue(url)


def test_backfill_sends_the_current_version_and_a_versioned_delete_removes_its_result(stack, versioned, queue, table):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=versioned, Key="v/rocket.jpg", Body=COFFEE)
    current = s3.put_object(Bucket=versioned, Key="v/rocket.jpg", Body=ROCKET)
    s3.put_object(Bucket=versioned, Key="v/folder/", Body=b"")  # a console's folder marker
    s3.put_object(Bucket=versioned, Key="v/removed.jpg", Body=ROCKET)
    s3.delete_object(Bucket=versioned, Key="v/removed.jpg")  # its current version is a delete marker

    result = run(stack, "backfill", f"s3://{versioned}/v/")
    assert result.exit_code == 0, result.output
    assert "Enqueued 1 object(s)" in result.output
    bodies = drain_bodies(queue)
    sent = [json.loads(b)["Records"][0]["s3"]["object"] for b in bodies]
    assert [(unquote_plus(o["key"]), o["versionId"], o["eTag"]) for o in sent] == [
        ("v/rocket.jpg", current["VersionId"], current["ETag"].strip('"'))
    ]

    send(queue, bodies)
    QueueDriver(load_handler(), queue).drain()
    pk = f"{versioned}/v/rocket.jpg"
    item = table.get_item(Key={"pk": pk, "sk": current["VersionId"]}).get("Item")
    assert item is not None and item["status"] == "succeeded" and item["format"] == "jpeg"
    assert "Item" not in table.get_item(Key={"pk": pk, "sk": "null"})  # nothing under the unversioned key

    # The version is deleted for good; the pipeline hears of it and the result goes with it.
    s3.delete_object(Bucket=versioned, Key="v/rocket.jpg", VersionId=current["VersionId"])
    send(queue, [version_deleted(versioned, "v/rocket.jpg", current["VersionId"], "0066F0A1B2C3D4E5F6")])
    QueueDriver(load_handler(), queue).drain()
    assert forgotten(table.get_item(Key={"pk": pk, "sk": current["VersionId"]}).get("Item"))


def test_reconcile_compares_versions_and_does_not_count_tombstones_as_drift(
    stack, versioned, queue, table, monkeypatch
):
    s3 = boto3.client("s3")
    older = s3.put_object(Bucket=versioned, Key="r/a.jpg", Body=COFFEE)
    s3.put_object(Bucket=versioned, Key="r/a.jpg", Body=ROCKET)
    s3.put_object(Bucket=versioned, Key="r/b.png", Body=ai_png())
    gone = s3.put_object(Bucket=versioned, Key="r/gone.jpg", Body=ROCKET)
    run(stack, "backfill", f"s3://{versioned}/r/")
    # The older version of a.jpg was analyzed when it was uploaded, as its own event would have done.
    older_object = ListedObject(versioned, "r/a.jpg", len(COFFEE), older["ETag"].strip('"'), older["VersionId"])
    send(queue, [s3_notification(older_object)])
    QueueDriver(load_handler(), queue).drain()

    clean = run(stack, "reconcile", f"s3://{versioned}/r/", "--json")
    report = json.loads(clean.stdout)
    assert clean.exit_code == 0, clean.output
    assert (report["objects"], report["versions"], report["results"]) == (3, 4, 4)

    # gone.jpg is deleted for good with OnDelete=tombstone: a tombstone stays, which is not drift.
    monkeypatch.setenv("ON_DELETE", "tombstone")
    s3.delete_object(Bucket=versioned, Key="r/gone.jpg", VersionId=gone["VersionId"])
    send(queue, [version_deleted(versioned, "r/gone.jpg", gone["VersionId"], "0066F0A1B2C3D4E5F7")])
    QueueDriver(load_handler(), queue).drain()
    tombstone = table.get_item(Key={"pk": f"{versioned}/r/gone.jpg", "sk": gone["VersionId"]})["Item"]
    assert "deleted_at" in tombstone
    # The older version of a.jpg is deleted for good, and no event says so: its result is drift.
    s3.delete_object(Bucket=versioned, Key="r/a.jpg", VersionId=older["VersionId"])

    drift = run(stack, "reconcile", f"s3://{versioned}/r/", "--json")
    report = json.loads(drift.stdout)
    assert drift.exit_code == 1
    assert report["results_without_object"] == [{"key": "r/a.jpg", "version_id": older["VersionId"]}]
    assert report["objects_without_result"] == [] and report["stale_results"] == []
    assert (report["objects"], report["results"], report["tombstones"]) == (2, 3, 1)

    text = run(stack, "reconcile", f"s3://{versioned}/r/")
    assert f"r/a.jpg (version {older['VersionId']})" in text.stdout
    assert "1 tombstone(s) of deleted objects" in text.stdout


def test_reprocess_of_flagged_objects_skips_the_gone_and_keeps_version_ids(stack, versioned, queue, table):
    s3 = boto3.client("s3")
    kept = s3.put_object(Bucket=versioned, Key="p/kept.png", Body=ai_png())
    lost = s3.put_object(Bucket=versioned, Key="p/lost.png", Body=ai_png())
    run(stack, "backfill", f"s3://{versioned}/p/")
    QueueDriver(load_handler(), queue).drain()
    # lost.png's version is deleted for good, and no event reaches the pipeline: its result stays.
    s3.delete_object(Bucket=versioned, Key="p/lost.png", VersionId=lost["VersionId"])

    result = run(stack, "reprocess", "--flagged", "ai_generated", "--reason", "threshold changed", "--yes")
    assert result.exit_code == 0, result.output
    assert "Skipped 1 object(s) that no longer exist" in result.stdout
    assert f"s3://{versioned}/p/lost.png (version {lost['VersionId']})" in result.stdout
    ours = [
        json.loads(b)["Records"][0]["s3"]["object"]
        for b in drain_bodies(queue)
        if json.loads(b)["Records"][0]["s3"]["bucket"]["name"] == versioned
    ]
    assert [(o["key"], o.get("versionId")) for o in ours] == [("p/kept.png", kept["VersionId"])]
