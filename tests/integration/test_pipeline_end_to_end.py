"""The handler end to end against the stack created from template.yaml in the emulator, over HTTP."""

from __future__ import annotations

import copy
import hashlib
import json
import time

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from local.driver import LambdaContext
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES, ai_png

pytestmark = pytest.mark.integration


def item(table, bucket, key, sk="null"):
    return table.get_item(Key={"pk": f"{bucket}/{key}", "sk": sk}, ConsistentRead=True).get("Item")


def items_for(table, bucket, key):
    return table.query(KeyConditionExpression=Key("pk").eq(f"{bucket}/{key}"), ConsistentRead=True)["Items"]


def s3_event(bucket, key_encoded, etag, size, sequencer, version_id=None):
    obj = {"key": key_encoded, "size": size, "eTag": etag, "sequencer": sequencer}
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-22T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def sqs_event(*bodies, receive_count=1):
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def test_upload_through_the_queue_lands_one_result_with_image_facts(stack, s3, table, drain, prefix):
    data = (SAMPLES / "skimage-rocket.jpg").read_bytes()
    key = f"{prefix}my rocket+launch.jpg"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=data)
    report = drain()
    assert report.failed_messages == 0
    stored = item(table, stack.bucket, key)
    assert stored["status"] == "succeeded"
    assert stored["key"] == key  # decoded from the notification's "my+rocket%2Blaunch.jpg"
    assert (stored["format"], int(stored["width"]), int(stored["height"])) == ("jpeg", 640, 427)
    assert stored["content_type"] == "image/jpeg"
    assert int(stored["size_bytes"]) == len(data)
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["etag"] == s3.head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
    assert [p["name"] for p in stored["providers"]] == ["builtin"]
    assert stored["colors"] and all(c["hex"].startswith("#") for c in stored["colors"])
    assert stored["ai_generated"]["verdict"] == "unknown"
    assert stored["flags"] == []
    assert stored["schema_version"] == 2
    assert stored["analyzed_at"].endswith("Z")
    # The queue is empty and nothing went to the dead-letter queue.
    sqs = boto3.client("sqs")
    for url in (stack.queue_url, stack.dlq_url):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_flagged_image_alerts_once_however_often_its_event_arrives(stack, s3, table, handler, alerts, prefix):
    key = f"{prefix}render.png"
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
    for _ in range(3):  # S3 duplicate, SQS redelivery, a replay
        assert handler(copy.deepcopy(event), LambdaContext()) == {"batchItemFailures": []}
    stored = item(table, stack.bucket, key)
    assert stored["flags"] == ["ai_generated"]
    assert stored["ai_generated"]["verdict"] == "ai"
    received = alerts()
    assert len(received) == 1
    alert = received[0]
    assert alert["Message"]["alert_id"] == stored["alert_id"]
    assert alert["Message"]["key"] == key
    assert alert["Message"]["result"] == {"table": stack.table, "pk": f"{stack.bucket}/{key}", "sk": "null"}
    assert json.loads(alert["MessageAttributes"]["flags"]["Value"]) == ["ai_generated"]
    assert len(items_for(table, stack.bucket, key)) == 1


def test_a_crash_between_write_and_publish_is_healed_by_the_next_delivery(stack, s3, table, handler, alerts, prefix):
    key = f"{prefix}healed.png"
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
    handler(copy.deepcopy(event), LambdaContext())
    first = alerts()
    # Simulate the crash: the item is written, the alert never went out and no claim is left on it (the
    # crashed invocation's claim lived only until its deadline).
    table.update_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"}, UpdateExpression="REMOVE alert_id")
    boto3.client("dynamodb").delete_item(
        TableName=stack.outputs["AlertLedgerTableName"], Key={"pk": {"S": first[0]["Message"]["alert_id"]}}
    )
    handler(copy.deepcopy(event), LambdaContext())
    second = alerts()
    assert len(first) == 1 and len(second) == 1
    assert second[0]["Message"]["alert_id"] == first[0]["Message"]["alert_id"]  # subscribers can drop it
    assert item(table, stack.bucket, key)["alert_id"] == first[0]["Message"]["alert_id"]
    handler(copy.deepcopy(event), LambdaContext())
    assert alerts() == []


def test_an_alert_that_went_out_is_not_sent_again_when_only_its_record_on_the_item_was_lost(
    stack, s3, table, handler, alerts, prefix
):
    key = f"{prefix}recorded.png"
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
    handler(copy.deepcopy(event), LambdaContext())
    (first,) = alerts()
    table.update_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"}, UpdateExpression="REMOVE alert_id")
    handler(copy.deepcopy(event), LambdaContext())
    assert alerts() == []  # the ledger says it went out
    assert item(table, stack.bucket, key)["alert_id"] == first["Message"]["alert_id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "empty_object"),
        (b"shopping list: milk, eggs\n", "not_an_image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "unsupported_format"),
        ((SAMPLES / "skimage-rocket.jpg").read_bytes()[:20000], "truncated"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_code_and_acknowledged(stack, s3, table, drain, prefix, body, code):
    key = f"{prefix}upload.jpg"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
    report = drain()
    assert report.failed_messages == 0
    stored = item(table, stack.bucket, key)
    assert stored["status"] == "rejected"
    assert stored["error"]["code"] == code
    assert stored["error"]["message"]
    assert "providers" not in stored or stored["providers"] == []


def test_one_bad_record_does_not_fail_its_batch_mates(stack, s3, table, handler, prefix):
    good_key, gone_key = f"{prefix}good.jpg", f"{prefix}gone.jpg"
    data = (SAMPLES / "skimage-rocket.jpg").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=good_key, Body=data)["ETag"].strip('"')
    event = sqs_event(
        s3_event(stack.bucket, gone_key, "d41d8cd98f00b204e9800998ecf8427e", 10, "0055AED6DCD90281E5"),
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": stack.bucket},
        "not an s3 event at all",
        s3_event(stack.bucket, good_key, etag, len(data), "0055AED6DCD90281E5"),
    )
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, good_key)["status"] == "succeeded"
    gone = item(table, stack.bucket, gone_key)
    assert (gone["status"], gone["error"]["code"]) == ("skipped", "object_gone")


def test_an_older_event_never_overwrites_a_newer_result(stack, s3, table, handler, prefix):
    key = f"{prefix}overwritten.png"
    first = (SAMPLES / "skimage-chelsea.png").read_bytes()
    second = (SAMPLES / "skimage-coffee.png").read_bytes()
    old_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=first)["ETag"].strip('"')
    new_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=second)["ETag"].strip('"')
    newer = sqs_event(s3_event(stack.bucket, key, new_etag, len(second), "0055AED6DCD90281F0"))
    older = sqs_event(s3_event(stack.bucket, key, old_etag, len(first), "0055AED6DCD90281E5"))
    handler(newer, LambdaContext())
    assert handler(older, LambdaContext()) == {"batchItemFailures": []}
    stored = item(table, stack.bucket, key)
    assert stored["etag"] == new_etag
    assert stored["sha256"] == hashlib.sha256(second).hexdigest()


def test_new_bytes_never_land_under_an_old_etag(stack, s3, table, handler, prefix):
    key = f"{prefix}replaced.png"
    old = (SAMPLES / "skimage-chelsea.png").read_bytes()
    old_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=old)["ETag"].strip('"')
    s3.put_object(Bucket=stack.bucket, Key=key, Body=(SAMPLES / "skimage-coffee.png").read_bytes())
    handler(sqs_event(s3_event(stack.bucket, key, old_etag, len(old), "0055AED6DCD90281E5")), LambdaContext())
    stored = item(table, stack.bucket, key)
    assert (stored["status"], stored["error"]["code"]) == ("skipped", "object_gone")


def test_direct_s3_and_eventbridge_invocations(stack, s3, table, handler, prefix):
    key = f"{prefix}café menu+1/cat 🐈.png"
    data = (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=data)["ETag"].strip('"')
    from urllib.parse import quote_plus

    direct = s3_event(stack.bucket, quote_plus(key, safe="/"), etag, len(data), "0055AED6DCD90281E5")
    response = handler(direct, LambdaContext())
    assert response["results"][0]["key"] == key
    assert item(table, stack.bucket, key)["status"] == "succeeded"
    eventbridge_key = f"{prefix}eventbridge.png"
    s3.put_object(Bucket=stack.bucket, Key=eventbridge_key, Body=data)
    eventbridge = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": stack.bucket},
            "object": {"key": eventbridge_key, "size": len(data), "etag": etag, "sequencer": "0055AED6DCD90281E5"},
            "reason": "PutObject",
        },
    }
    assert handler(eventbridge, LambdaContext())["results"][0]["status"] == "succeeded"


def test_every_sample_format_is_identified_by_its_bytes(stack, s3, table, drain, prefix):
    expected = {
        "c2pa-sample1.heic": ("heic", 1440, 960),
        "c2pa-sample1.avif": ("avif", 1204, 800),
        "c2pa-sample1.webp": ("webp", 1050, 700),
        "c2pa-sample1.gif": ("gif", 135, 135),
        "c2pa-TUSCANY.TIF": ("tiff", 2550, 3300),
        "skimage-page.png": ("png", 384, 191),
    }
    for name in expected:
        # The extension lies on purpose: identification is by content.
        s3.put_object(Bucket=stack.bucket, Key=f"{prefix}{name}.bin", Body=(SAMPLES / name).read_bytes())
    drain()
    for name, (fmt, width, height) in expected.items():
        stored = item(table, stack.bucket, f"{prefix}{name}.bin")
        assert (stored["status"], stored["format"], int(stored["width"]), int(stored["height"])) == (
            "succeeded",
            fmt,
            width,
            height,
        ), name


def test_ci_runs_against_the_official_dynamodb_local(stack):
    """Under CI=true the results table must be DynamoDB Local (it validates like the service does)."""
    import os

    client = boto3.client("dynamodb")
    response = client.describe_table(TableName=stack.table)
    server = response["ResponseMetadata"]["HTTPHeaders"].get("server", "")
    if os.environ.get("CI", "").lower() == "true":
        assert os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"), "DynamoDB Local is not in use"
        assert "Jetty" in server, f"the DynamoDB endpoint is not DynamoDB Local (server {server!r})"
    assert response["Table"]["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]


def delete_event(bucket, key, sequencer):
    event = s3_event(bucket, key, None, None, sequencer)
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    del event["Records"][0]["s3"]["object"]["size"], event["Records"][0]["s3"]["object"]["eTag"]
    return event


def forgotten(stored: dict | None) -> bool:
    """A deleted object's result: gone, or (OnDelete=delete) a content-free watermark that expires."""
    return stored is None or (bool(stored.get("deleted_at")) and "sha256" not in stored and "labels" not in stored)


def test_a_deleted_object_takes_its_result_with_it(stack, s3, table, handler, prefix):
    key = f"{prefix}to-delete.png"
    body = (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    assert item(table, stack.bucket, key)["status"] == "succeeded"
    # A delete sequenced before the upload (arriving late) must not remove the newer result.
    handler(sqs_event(delete_event(stack.bucket, key, "0055AED6DCD90281E0")), LambdaContext())
    assert item(table, stack.bucket, key) is not None
    s3.delete_object(Bucket=stack.bucket, Key=key)
    assert handler(sqs_event(delete_event(stack.bucket, key, "0055AED6DCD90281F0")), LambdaContext()) == {
        "batchItemFailures": []
    }
    # The analysis is gone; a content-free watermark stays until the table's time-to-live removes it.
    watermark = item(table, stack.bucket, key)
    assert watermark["deleted_at"] and int(watermark["expires_at"]) > time.time() + 14 * 86400
    for attribute in ("sha256", "labels", "colors", "quality", "provenance", "flags", "raw"):
        assert attribute not in watermark
    # A redelivered create event of the deleted object finds it and writes no stub.
    handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    assert item(table, stack.bucket, key) == watermark


def test_a_delete_that_comes_before_the_create_event_leaves_a_watermark_too(stack, s3, table, handler, prefix):
    key = f"{prefix}deleted-first.png"
    body = (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    s3.delete_object(Bucket=stack.bucket, Key=key)
    handler(sqs_event(delete_event(stack.bucket, key, "0055AED6DCD90281F0")), LambdaContext())
    handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    stored = item(table, stack.bucket, key)
    assert stored["deleted_at"] and stored["status"] == "skipped"  # no analysis of an object that is gone
    assert stored["seq"].startswith("0055AED6DCD90281F0")


def test_tombstone_mode_keeps_the_fact_but_not_the_analysis(stack, s3, table, prefix, monkeypatch):
    from local.driver import load_handler

    monkeypatch.setenv("ON_DELETE", "tombstone")
    handler = load_handler()
    key = f"{prefix}tombstone.png"
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    handler(sqs_event(delete_event(stack.bucket, key, "0055AED6DCD90281F0")), LambdaContext())
    stored = item(table, stack.bucket, key)
    assert stored["deleted_at"]
    assert stored["sha256"] == hashlib.sha256(body).hexdigest() and stored["flags"] == ["ai_generated"]
    for attribute in ("colors", "ai_generated", "provenance", "raw", "quality", "labels"):
        assert attribute not in stored
    # A late copy of the upload event does not bring the analysis back.
    handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    assert "colors" not in item(table, stack.bucket, key)


def test_quarantine_tags_flagged_objects_and_keeps_their_other_tags(stack, s3, prefix, monkeypatch):
    from local.driver import load_handler

    monkeypatch.setenv("QUARANTINE_TAGS", "true")
    handler = load_handler()
    flagged, clean = f"{prefix}flagged.png", f"{prefix}clean.png"
    for key, body in ((flagged, ai_png()), (clean, (SAMPLES / "skimage-coffee.png").read_bytes())):
        etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body, Tagging="team=uploads")["ETag"].strip('"')
        handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=stack.bucket, Key=flagged)["TagSet"]}
    assert tags == {"team": "uploads", "moderation": "flagged", "flags": "ai_generated"}
    untouched = s3.get_object_tagging(Bucket=stack.bucket, Key=clean)["TagSet"]
    assert untouched == [{"Key": "team", "Value": "uploads"}]
