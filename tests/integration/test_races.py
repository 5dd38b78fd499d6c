"""The interleavings that used to break the promises, each replayed against the emulator through the real
handler: an alert or a quarantine lost to a failed publish, a reprocess wiping a newer upload, a backfill
and the real event alerting twice."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from image_analysis.alerts import alert_id_for
from image_analysis.runtime import aws_clients, build_runtime
from image_analysis_cli.enqueue import ListedObject, reprocess_request, s3_notification
from local.driver import LambdaContext, load_function_module, load_handler
from tests.integration.conftest import SAMPLES, ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


def message(body: str) -> dict:
    """An SQS record carrying a message the command line sent to the backfill queue."""
    return {"Records": [{"messageId": "b0", "body": body, "eventSource": "aws:sqs", "attributes": {}}]}


def tags_of(s3, bucket, key) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def handler_with_sns(before_publish):
    module = load_function_module()
    clients = aws_clients()
    clients["sns"].meta.events.register("before-call.sns.Publish", before_publish)
    module._runtime = build_runtime(clients=clients, logger=module.logger, metrics=module.metrics)
    return module.lambda_handler


def test_a_failed_publish_never_leaves_the_flagged_object_readable(stack, s3, table, alerts, prefix, monkeypatch):
    """Quarantine tags go on before the alert: SNS down still leaves the object quarantined."""
    monkeypatch.setenv("QUARANTINE_TAGS", "true")
    key, body = f"{prefix}quarantined.png", ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body, Tagging=urlencode({"team": "a"}))["ETag"]
    event = sqs_event(s3_event(stack.bucket, key, etag.strip('"'), len(body), "0055AED6DCD90281E5"))

    def sns_down(**_):
        raise RuntimeError("SNS is unavailable")

    assert handler_with_sns(sns_down)(event, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert tags_of(s3, stack.bucket, key) == {"team": "a", "moderation": "flagged", "flags": "ai_generated"}
    assert alerts() == []
    # The redelivery finishes the alert and leaves the tags as they are.
    assert handler_with_sns(lambda **_: None)(event, LambdaContext()) == {"batchItemFailures": []}
    (alert,) = alerts()
    assert alert["Message"]["alert_id"] == item(table, stack.bucket, key)["alert_id"]
    assert tags_of(s3, stack.bucket, key) == {"team": "a", "moderation": "flagged", "flags": "ai_generated"}


def test_a_reprocess_of_older_bytes_never_wipes_the_newer_uploads_result(stack, s3, table, alerts, prefix):
    key = f"{prefix}overwritten.png"
    clean = (SAMPLES / "skimage-chelsea.png").read_bytes()
    etag_a = s3.put_object(Bucket=stack.bucket, Key=key, Body=clean)["ETag"].strip('"')
    handler = load_handler()
    handler(sqs_event(s3_event(stack.bucket, key, etag_a, len(clean), "0055AED6DCD90281E5")), LambdaContext())
    # A reprocess is queued for A; then the key is overwritten with B (flagged) and B's result is written.
    queued = s3_notification(ListedObject(stack.bucket, key, len(clean), etag_a), reprocess_request("bar raised"))
    flagged = ai_png()
    etag_b = s3.put_object(Bucket=stack.bucket, Key=key, Body=flagged)["ETag"].strip('"')
    handler(sqs_event(s3_event(stack.bucket, key, etag_b, len(flagged), "0055AED6DCD90281F0")), LambdaContext())
    assert item(table, stack.bucket, key)["flags"] == ["ai_generated"]
    alerts()
    # The reprocess runs: its GET (IfMatch A) finds B. It must leave B's result as it is.
    assert handler(message(queued), LambdaContext()) == {"batchItemFailures": []}
    stored = item(table, stack.bucket, key)
    assert (stored["etag"], stored["status"], stored["flags"]) == (etag_b, "succeeded", ["ai_generated"])
    assert alerts() == []


def test_a_backfill_that_came_first_is_adopted_by_the_real_event_one_alert_one_id(stack, s3, table, alerts, prefix):
    key, body = f"{prefix}backfilled.png", ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    handler = load_handler()
    listed = ListedObject(stack.bucket, key, len(body), etag, last_modified="2026-12-07T10:00:00.000Z")
    assert handler(message(s3_notification(listed)), LambdaContext()) == {"batchItemFailures": []}
    (first,) = alerts()
    # The real S3 event arrives later: same bytes, now with a sequencer.
    real = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
    assert handler(real, LambdaContext()) == {"batchItemFailures": []}
    assert alerts() == []  # no second analysis, no second alert under another id
    stored = item(table, stack.bucket, key)
    assert stored["seq"].startswith("0055AED6DCD90281E5")  # the result took the event's sequencer
    assert stored["alert_id"] == first["Message"]["alert_id"]
    assert first["Message"]["alert_id"] == alert_id_for(f"{stack.bucket}/{key}", "null", etag, ["ai_generated"])
    # Its redrive is a plain duplicate.
    assert handler(real, LambdaContext()) == {"batchItemFailures": []}
    assert alerts() == []


def test_each_flag_set_of_a_version_alerts_once_whatever_results_come_and_go(
    stack, s3, table, alerts, prefix, monkeypatch
):
    key, body = f"{prefix}flip.png", ai_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    upload = s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")

    def run(reprocess_id: str | None, threshold: str) -> None:
        monkeypatch.setenv("AI_GENERATED_THRESHOLD", threshold)
        event = upload if reprocess_id is None else {**upload, "imageAnalysis": {"reprocess": {"id": reprocess_id}}}
        assert load_handler()(sqs_event(event), LambdaContext()) == {"batchItemFailures": []}

    run(None, "0.8")  # the generator metadata's 0.85 flags it
    (first,) = alerts()
    run("bar-raised", "0.9")  # no longer flagged
    assert item(table, stack.bucket, key)["flags"] == [] and alerts() == []
    run("bar-lowered", "0.8")  # flagged again with the same flags: that alert went out already
    assert item(table, stack.bucket, key)["flags"] == ["ai_generated"]
    assert alerts() == []
    assert item(table, stack.bucket, key)["alert_id"] == first["Message"]["alert_id"]


def test_a_result_carrying_a_review_is_written_again_only_when_the_review_alone_moved(stack, table, prefix):
    """The write of a result that carries a review over holds only while the item carries that review. A
    newer result still wins whatever its review; a review that changes before every write gives up."""
    from image_analysis.models import AnalysisResult, Review
    from image_analysis.store import REVIEW_WRITE_ATTEMPTS, ResultStore, ReviewKeptChanging

    store = ResultStore(stack.table, aws_clients()["dynamodb"])
    key = f"{prefix}carried.png"
    pending = {"status": "pending", "appeals": 0}
    approved = {"status": "approved", "decided_by": "arn:aws:iam::1:user/a", "decided_at": "2026-12-07T10:00:00.000Z"}
    approved = {**approved, "appeals": 0}

    def result(review: dict, analyzed_at: str) -> AnalysisResult:
        return AnalysisResult(
            bucket=stack.bucket,
            key=key,
            status="succeeded",
            sha256="a" * 64,
            flags=["ai_generated"],
            review=Review.model_validate(review),
            analyzed_at=analyzed_at,
        )

    newer, older = "2" * 32, "1" * 32
    assert store.put_result(result(pending, "2026-12-07T10:00:02.000Z"), newer)
    calls = []

    def carry_again(stored):
        calls.append(stored["review"])
        return result(stored["review"], "2026-12-07T10:00:01.000Z"), stored["review"]

    # Older than the stored result, same review: lost, as any older write is; nothing written again.
    assert not store.put_result(
        result(pending, "2026-12-07T10:00:01.000Z"), older, carried_from=pending, carry_again=carry_again
    )
    assert calls == []
    # A decision was taken meanwhile, and the stored result is newer: written again with the decision,
    # which still loses to the newer result.
    table.update_item(
        Key={"pk": f"{stack.bucket}/{key}", "sk": "null"},
        UpdateExpression="SET review = :r",
        ExpressionAttributeValues={":r": approved},
    )
    assert not store.put_result(
        result(pending, "2026-12-07T10:00:01.000Z"), older, carried_from=pending, carry_again=carry_again
    )
    assert calls == [approved]
    stored = item(table, stack.bucket, key)
    assert (stored["seq"], stored["analyzed_at"], stored["review"]) == (newer, "2026-12-07T10:00:02.000Z", approved)

    # A review that is another one before every write (here: each write carries a stale one over).
    calls.clear()

    def stale_again(stored):
        calls.append(stored["review"])
        return result(pending, "2026-12-07T10:00:03.000Z"), pending

    with pytest.raises(ReviewKeptChanging):
        store.put_result(
            result(pending, "2026-12-07T10:00:03.000Z"), "3" * 32, carried_from=pending, carry_again=stale_again
        )
    assert len(calls) == REVIEW_WRITE_ATTEMPTS - 1
    assert item(table, stack.bucket, key)["seq"] == newer  # nothing was written
