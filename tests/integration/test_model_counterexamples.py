"""Interleavings the model (``tests/model``) found, each replayed as it was minimized, against the stack in
the emulator. Each test is named after the promise it holds the pipeline to."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from image_analysis_cli.enqueue import ListedObject, reprocess_request, s3_notification
from local.driver import LambdaContext, load_function_module
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES, ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


def removal(bucket, key, sequencer, version_id=None):
    event = s3_event(bucket, key, None, None, sequencer, version_id)
    record = event["Records"][0]
    record["eventName"] = "ObjectRemoved:Delete"
    record["s3"]["object"] = {k: v for k, v in record["s3"]["object"].items() if v is not None}
    return event


@pytest.mark.parametrize("on_delete", ["delete", "tombstone"])
def test_a_reprocess_that_runs_after_the_delete_leaves_the_deleted_objects_record_alone(
    stack, s3, table, prefix, monkeypatch, on_delete
):
    """Found by the model: ``reprocess --key`` (or reconcile) enqueued, then the object deleted and its delete
    processed, then the reprocess. Its read finds nothing, and its ``skipped`` result used to replace the
    watermark (or tombstone) with a result that never expires and no longer says the object was deleted."""
    from local.driver import load_handler

    monkeypatch.setenv("ON_DELETE", on_delete)
    handler = load_handler()
    key, body = f"{prefix}deleted before its reprocess.png", (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    assert handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD9000001")), LambdaContext()) == {
        "batchItemFailures": []
    }
    request = s3_notification(ListedObject(stack.bucket, key, len(body), etag), reprocess_request("new threshold"))

    s3.delete_object(Bucket=stack.bucket, Key=key)
    assert handler(sqs_event(removal(stack.bucket, key, "0055AED6DCD9000002")), LambdaContext()) == {
        "batchItemFailures": []
    }
    deleted = item(table, stack.bucket, key)
    assert deleted["deleted_at"]

    assert handler(sqs_event(json.loads(request)), LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key) == deleted


def test_a_late_retry_of_a_failed_upload_leaves_its_tombstone_alone(stack, s3, table, prefix, monkeypatch):
    """Found by the model, with OnDelete=tombstone: an upload's first delivery fails (the item says
    ``failed``), the object is deleted and the delete keeps the item as a tombstone (still ``failed``),
    then the upload's event comes back. The tombstone used to pass for the failed item a retry completes:
    the retry took the deletion's sequence and replaced the tombstone with a ``skipped`` result that no
    longer says the object was deleted."""
    from local.driver import load_handler

    monkeypatch.setenv("ON_DELETE", "tombstone")
    handler = load_handler()
    key, body = f"{prefix}failed then deleted.png", (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    upload = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD9000001"))
    # Too little time left: handed back, and the item says why.
    assert handler(upload, LambdaContext(timeout_seconds=5)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert item(table, stack.bucket, key)["status"] == "failed"

    s3.delete_object(Bucket=stack.bucket, Key=key)
    assert handler(sqs_event(removal(stack.bucket, key, "0055AED6DCD9000002")), LambdaContext()) == {
        "batchItemFailures": []
    }
    tombstone = item(table, stack.bucket, key)
    assert tombstone["deleted_at"] and tombstone["seq"].startswith("0055AED6DCD9000002")

    # The upload's event again: once more without time (its failure is recorded), then with time.
    handler(upload, LambdaContext(timeout_seconds=5))
    assert item(table, stack.bucket, key) == tombstone
    assert handler(upload, LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key) == tombstone


def test_a_late_delete_of_the_previous_object_leaves_the_backfilled_result_of_the_new_one(stack, s3, table, prefix):
    """Found by the model: an object is deleted and the key uploaded again; a backfill (or reconcile)
    analyzes the new object before the delete's event arrives. The backfill's result has no sequencer, so
    the late delete took it for older and replaced it with the deletion's watermark: the new object had
    no result until its own event came, and none at all if that event was the one lost."""
    from image_analysis_cli.enqueue import last_modified
    from local.driver import load_handler

    handler = load_handler()
    key = f"{prefix}deleted and uploaded again.png"
    first, second = (SAMPLES / "skimage-chelsea.png").read_bytes(), (SAMPLES / "skimage-coffee.png").read_bytes()
    first_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=first)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    created = sqs_event(s3_event(stack.bucket, key, first_etag, len(first), "0055AED6DCD9000001"))
    assert handler(created, LambdaContext()) == {"batchItemFailures": []}

    s3.delete_object(Bucket=stack.bucket, Key=key)
    second_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=second)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    listed = s3.head_object(Bucket=stack.bucket, Key=key)
    backfill = s3_notification(
        ListedObject(stack.bucket, key, len(second), second_etag, last_modified=last_modified(listed["LastModified"]))
    )
    assert handler(sqs_event(json.loads(backfill)), LambdaContext()) == {"batchItemFailures": []}
    backfilled = item(table, stack.bucket, key)
    assert (backfilled["etag"], backfilled["status"]) == (second_etag, "succeeded")

    # The delete's event, late: it is about the first object, not the one the backfill analyzed.
    assert handler(sqs_event(removal(stack.bucket, key, "0055AED6DCD9000002")), LambdaContext()) == {
        "batchItemFailures": []
    }
    assert item(table, stack.bucket, key) == backfilled
    # The new object's own event adopts the result instead of analyzing it again.
    uploaded = sqs_event(s3_event(stack.bucket, key, second_etag, len(second), "0055AED6DCD9000003"))
    assert handler(uploaded, LambdaContext()) == {"batchItemFailures": []}
    adopted = item(table, stack.bucket, key)
    assert adopted["seq"].startswith("0055AED6DCD9000003") and adopted["analyzed_at"] == backfilled["analyzed_at"]


def test_a_flagged_object_deleted_before_its_quarantine_is_done_not_retried_for_tags(
    stack, s3, table, alerts, prefix, monkeypatch
):
    """Found by the model: the result of a flagged upload is written, but the invocation fails before its
    quarantine tags (the write's answer was lost). The object is deleted, then the event comes back: the
    tags can never go on a deleted object, yet the delivery counted QuarantineTagFailed and handed the
    record back on every delivery, until the dead-letter queue."""
    from tests.integration.test_reliability_failures import handler_with

    monkeypatch.setenv("QUARANTINE_TAGS", "true")
    key, body = f"{prefix}flagged then deleted.png", ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    upload = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD9000001"))
    lost = []

    def first_answer_lost(**_):
        if not lost:
            lost.append(1)
            raise RuntimeError("the connection dropped after the write")

    failing = handler_with({("dynamodb", "after-call.dynamodb.PutItem"): first_answer_lost})
    assert failing(upload, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    written = item(table, stack.bucket, key)
    assert written["flags"] == ["ai_generated"] and "quarantine" not in written and "alert_id" not in written

    s3.delete_object(Bucket=stack.bucket, Key=key)
    metrics: list[dict] = []
    module = load_function_module()
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert module.lambda_handler(upload, LambdaContext()) == {"batchItemFailures": []}
    metrics = [json.loads(line) for line in printed.getvalue().splitlines() if '"_aws"' in line]
    assert not any("QuarantineTagFailed" in document for document in metrics)
    (alert,) = alerts()  # the alert still goes out: the object was flagged while it existed
    assert item(table, stack.bucket, key)["alert_id"] == alert["Message"]["alert_id"]


def test_a_failure_of_the_next_upload_after_a_delete_is_on_the_item(stack, s3, table, prefix):
    """Found by the model: an object is deleted (its item becomes the deletion's watermark, which keeps the
    deleted object's ETag), new bytes are uploaded under the key, and every delivery of their event fails.
    The ``failed`` write was refused as if the watermark were a result of other bytes, so the message
    ended in the dead-letter queue with the deletion on the item instead of its reason."""
    from local.driver import load_handler

    handler = load_handler()
    key = f"{prefix}deleted then failing.png"
    first, second = (SAMPLES / "skimage-chelsea.png").read_bytes(), (SAMPLES / "skimage-coffee.png").read_bytes()
    first_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=first)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    assert handler(
        sqs_event(s3_event(stack.bucket, key, first_etag, len(first), "0055AED6DCD9000001")), LambdaContext()
    ) == {"batchItemFailures": []}
    s3.delete_object(Bucket=stack.bucket, Key=key)
    assert handler(sqs_event(removal(stack.bucket, key, "0055AED6DCD9000002")), LambdaContext()) == {
        "batchItemFailures": []
    }
    assert item(table, stack.bucket, key)["deleted_at"]

    second_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=second)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    upload = sqs_event(s3_event(stack.bucket, key, second_etag, len(second), "0055AED6DCD9000003"))
    # Too little time left: handed back, and the item must say why.
    assert handler(upload, LambdaContext(timeout_seconds=5)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    failed = item(table, stack.bucket, key)
    assert (failed["etag"], failed["status"], failed["error"]["code"]) == (second_etag, "failed", "timeout")
    assert "deleted_at" not in failed
    # A late event of the deleted object changes nothing; the next delivery completes the new one.
    assert handler(
        sqs_event(s3_event(stack.bucket, key, first_etag, len(first), "0055AED6DCD9000001")), LambdaContext()
    ) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key)["etag"] == second_etag
    assert handler(upload, LambdaContext()) == {"batchItemFailures": []}
    done = item(table, stack.bucket, key)
    assert (done["etag"], done["status"]) == (second_etag, "succeeded")


def test_a_failed_delivery_of_the_real_event_keeps_the_backfilled_result_of_its_bytes(stack, s3, table, prefix):
    """Found by the model: a backfill (or reprocess) analyzed an object before its S3 event came; the
    event's delivery then failed (here: too little time left; in the model, a read of the item) and its
    ``failed`` write, under the event's sequencer, replaced the final result of the same bytes. The item
    said ``failed`` for bytes already analyzed, and would have ended so had every retry failed too."""
    from image_analysis_cli.enqueue import last_modified
    from local.driver import load_handler

    handler = load_handler()
    key, body = f"{prefix}backfilled then failing.png", (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    listed = s3.head_object(Bucket=stack.bucket, Key=key)
    backfill = s3_notification(
        ListedObject(stack.bucket, key, len(body), etag, last_modified=last_modified(listed["LastModified"]))
    )
    assert handler(sqs_event(json.loads(backfill)), LambdaContext()) == {"batchItemFailures": []}
    backfilled = item(table, stack.bucket, key)
    assert backfilled["status"] == "succeeded"

    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD9000001"))
    assert handler(event, LambdaContext(timeout_seconds=5)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert item(table, stack.bucket, key) == backfilled
    # Its next delivery adopts the result.
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    adopted = item(table, stack.bucket, key)
    assert adopted["seq"].startswith("0055AED6DCD9000001") and adopted["analyzed_at"] == backfilled["analyzed_at"]


def test_a_failure_of_new_bytes_replaces_the_result_of_the_old(stack, s3, table, prefix):
    """Found by the model: a key is overwritten and every delivery of the new object's event fails. The
    ``failed`` write was refused because the item held a final result of other bytes (the rule that keeps
    a reprocess of old bytes from wiping a newer result), so the message went to the dead-letter queue
    with the old object's result on its item instead of its reason. S3 sequenced the new event after the
    stored one: its failure is recorded."""
    from local.driver import load_handler

    handler = load_handler()
    key = f"{prefix}overwritten then failing.png"
    first, second = (SAMPLES / "skimage-chelsea.png").read_bytes(), (SAMPLES / "skimage-coffee.png").read_bytes()
    first_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=first)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    created = sqs_event(s3_event(stack.bucket, key, first_etag, len(first), "0055AED6DCD9000001"))
    assert handler(created, LambdaContext()) == {"batchItemFailures": []}
    second_etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=second)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    overwritten = sqs_event(s3_event(stack.bucket, key, second_etag, len(second), "0055AED6DCD9000002"))
    assert handler(overwritten, LambdaContext(timeout_seconds=5)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    failed = item(table, stack.bucket, key)
    assert (failed["etag"], failed["status"], failed["error"]["code"]) == (second_etag, "failed", "timeout")
    # The old object's event, again: it is older, and changes nothing; the next delivery completes the new one.
    assert handler(created, LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key)["status"] == "failed"
    assert handler(overwritten, LambdaContext()) == {"batchItemFailures": []}
    assert item(table, stack.bucket, key)["etag"] == second_etag
    assert item(table, stack.bucket, key)["status"] == "succeeded"


def test_the_real_event_that_adopts_a_backfilled_result_records_the_alert_it_sends(stack, s3, table, alerts, prefix):
    """Found by the model: a backfill message (no sequencer) analyzes flagged bytes but its alert does not
    go out (here SNS is down). The real S3 event then adopts the result (it takes the event's sequencer)
    and its heal publishes the alert, but recorded it on the item under the sequence read before the
    adoption: the conditional write failed, and the item never said which alert went out."""
    from tests.integration.test_reliability_alert_claim import handler_with_sns

    key = f"{prefix}backfilled then adopted.png"
    body = ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    empty_queue(stack.queue_url)
    backfill = json.loads(s3_notification(ListedObject(stack.bucket, key, len(body), etag)))

    def sns_down(**_):
        raise RuntimeError("SNS is unavailable")

    assert handler_with_sns(sns_down)(sqs_event(backfill), LambdaContext())["batchItemFailures"]
    assert item(table, stack.bucket, key)["flags"] and alerts() == []
    real = s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD9000003")
    assert handler_with_sns(lambda **_: None)(sqs_event(real), LambdaContext()) == {"batchItemFailures": []}
    (alert,) = alerts()
    stored = item(table, stack.bucket, key)
    assert stored["alert_id"] == alert["Message"]["alert_id"]
    assert stored["seq"].startswith("0055AED6DCD9000003")
