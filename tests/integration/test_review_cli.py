"""Review through the command line against the emulator: the queue, every decision and its refusals, the
audit history, the decisions topic, and what the review function then does to the object."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.client import BaseClient

from image_analysis.review.ids import ReviewId
from image_analysis.runtime import aws_clients, build_runtime
from local.driver import LambdaContext, load_function_module
from tests.integration.review_support import MODERATOR, Uploads, ai_png, cli, plain_png, published
from tests.integration.test_pipeline_end_to_end import sqs_event

pytestmark = pytest.mark.integration


@pytest.fixture
def flagged_mode(monkeypatch, review):
    monkeypatch.setenv("REVIEW_MODE", "flagged")
    monkeypatch.setenv("QUARANTINE_TAGS", "true")
    published(review)  # start with an empty observer queue


@pytest.fixture
def uploads(stack):
    return Uploads(stack.bucket)


def result_item(stack, key, sk="null"):
    from image_analysis.store import from_item

    table = boto3.resource("dynamodb").Table(stack.table)
    return from_item(table.get_item(Key={"pk": f"{stack.bucket}/{key}", "sk": sk}, ConsistentRead=True)["Item"])


def queue_item(review, bucket, key, version=None):
    from image_analysis.store import from_item

    table = boto3.resource("dynamodb").Table(review.queue_table)
    found = table.get_item(Key={"pk": ReviewId(bucket, key, version).plain}, ConsistentRead=True).get("Item")
    return from_item(found) if found else None


def test_a_flagged_upload_waits_pending_and_approval_takes_its_quarantine_off(
    stack, review, review_handler, uploads, prefix, capsys, flagged_mode, monkeypatch
):
    monkeypatch.setenv("DELIVERY_GATE", "closed")
    key = f"{prefix}generated.png"
    uploads.put(key, ai_png(1), tags="team=blue")
    assert result_item(stack, key)["review"] == {"status": "pending", "appeals": 0}
    assert queue_item(review, stack.bucket, key)["status"] == "pending"
    assert uploads.tags(key) == {"team": "blue", "moderation": "flagged", "flags": "ai_generated"}

    code, out, _ = cli(stack, capsys, "review", "list", "--limit", "100")
    assert code == 0 and f"s3://{stack.bucket}/{key}" in out and "ai_generated" in out

    code, out, err = cli(stack, capsys, "review", "approve", f"s3://{stack.bucket}/{key}")
    assert code == 0, err
    assert out.startswith(f"approved: s3://{stack.bucket}/{key} by {MODERATOR}")
    review_after = result_item(stack, key)["review"]
    assert review_after["status"] == "approved" and review_after["decided_by"] == MODERATOR
    assert queue_item(review, stack.bucket, key)["status"] == "approved"

    (message,) = published(review)
    assert message["type"] == "image.reviewed" and message["decision"] == "approve"
    assert (message["previous"], message["by"], message["key"]) == ("pending", MODERATOR, key)
    # The review function applies it: the quarantine comes off, the gate's clean goes on, theirs stay.
    assert review.drain_effects(review_handler) >= 1
    assert uploads.tags(key) == {"team": "blue", "image-analysis:verdict": "clean"}

    code, out, _ = cli(stack, capsys, "review", "history", f"s3://{stack.bucket}/{key}")
    assert code == 0 and f"approve   pending -> approved  by {MODERATOR}" in out
    code, out, _ = cli(stack, capsys, "review", "history", f"s3://{stack.bucket}/{key}", "--json")
    import json

    (record,) = json.loads(out)
    assert record["decision_id"] == message["decision_id"] and record["published"] is True


def test_every_refusal_is_one_line_and_exit_code_2(stack, review, uploads, prefix, capsys, flagged_mode):
    key = f"{prefix}refused.png"
    uploads.put(key, ai_png(2))
    url = f"s3://{stack.bucket}/{key}"

    code, _, err = cli(stack, capsys, "review", "reject", url)
    assert code == 2 and "--reason" in err
    code, _, err = cli(stack, capsys, "review", "appeal", url, "--reason", "mine")
    assert code == 2 and err.strip() == "Error: appeal is refused: the review is pending, not rejected"
    code, _, err = cli(stack, capsys, "review", "approve", f"s3://{stack.bucket}/{prefix}nothing.png")
    assert code == 2 and err.strip() == f"Error: no result for s3://{stack.bucket}/{prefix}nothing.png"

    assert cli(stack, capsys, "review", "escalate", url, "--reason", "unsure")[0] == 0
    code, _, err = cli(stack, capsys, "review", "escalate", url)
    assert code == 2 and err.startswith(f"Error: already decided by {MODERATOR} (escalated at ")
    assert len(err.strip().splitlines()) == 1

    code, out, _ = cli(stack, capsys, "review", "list", "--status", "escalated", "--limit", "100")
    assert f"s3://{stack.bucket}/{key}" in out
    assert cli(stack, capsys, "review", "reject", url, "--reason", "explicit")[0] == 0
    for decision in ("approve", "reject", "escalate"):
        code, _, err = cli(stack, capsys, "review", decision, url, "--reason", "again")
        assert code == 2 and err.startswith(f"Error: already decided by {MODERATOR} (rejected at "), decision
    decisions = [m["decision"] for m in published(review)]
    assert decisions == ["escalate", "reject"]  # a refusal publishes nothing


def test_an_unflagged_upload_needs_no_review_and_new_bytes_reopen_it(
    stack, review, uploads, prefix, capsys, flagged_mode
):
    plain = f"{prefix}plain.png"
    uploads.put(plain, plain_png(1))
    assert "review" not in result_item(stack, plain) and queue_item(review, stack.bucket, plain) is None

    key = f"{prefix}changing.png"
    first = uploads.put(key, ai_png(3))
    assert cli(stack, capsys, "review", "reject", f"s3://{stack.bucket}/{key}", "--reason", "no")[0] == 0
    # The same bytes again (a duplicate event, and a reprocess) keep the decision.
    uploads.redeliver(first["event"])
    uploads.redeliver(first["event"], reprocess=str(uuid.uuid4()))
    assert result_item(stack, key)["review"]["status"] == "rejected"
    assert queue_item(review, stack.bucket, key)["status"] == "rejected"
    # New bytes under the key reopen review; bytes that need none take the key out of the queue.
    uploads.put(key, ai_png(4))
    assert result_item(stack, key)["review"] == {"status": "pending", "appeals": 0}
    assert queue_item(review, stack.bucket, key)["status"] == "pending"
    uploads.put(key, plain_png(2))
    assert "review" not in result_item(stack, key) and queue_item(review, stack.bucket, key) is None


@pytest.mark.parametrize("mode", ["flagged", "off"])
def test_an_approval_taken_while_a_reprocess_writes_its_result_is_kept(
    stack, review, review_handler, uploads, prefix, capsys, flagged_mode, monkeypatch, mode
):
    key = f"{prefix}raced-{mode}.png"
    first = uploads.put(key, ai_png(8))
    before = result_item(stack, key)
    assert before["review"] == {"status": "pending", "appeals": 0}
    assert uploads.tags(key)["moderation"] == "flagged"
    # With review off the reprocess carries the review it read before the vendor calls; with it on, the
    # review read again after them. Either way a moderator can decide before the result is written.
    monkeypatch.setenv("REVIEW_MODE", mode)
    pk, url, rid = f"{stack.bucket}/{key}", f"s3://{stack.bucket}/{key}", str(uuid.uuid4())
    decided = []

    def approve_before_the_write(params, **_):
        body = json.loads(params["body"])
        if decided or body["TableName"] != stack.table or body["Item"]["pk"]["S"] != pk:
            return
        decided.append("approve")  # first: the command line's own calls pass here too
        decided.append(cli(stack, capsys, "review", "approve", url)[0])

    # A fresh container whose DynamoDB client approves just before the result's write goes out.
    module = load_function_module()
    clients = aws_clients()
    clients["dynamodb"].meta.events.register("before-call.dynamodb.PutItem", approve_before_the_write)
    module._runtime = build_runtime(clients=clients, logger=module.logger, metrics=module.metrics)
    reprocess = {**first["event"], "imageAnalysis": {"reprocess": {"id": rid, "reason": "calibrated"}}}
    assert module.lambda_handler(sqs_event(reprocess), LambdaContext()) == {"batchItemFailures": []}
    assert decided == ["approve", 0]

    after = result_item(stack, key)
    assert after["review"]["status"] == "approved" and after["review"]["decided_by"] == MODERATOR
    # The rest of the item is the reprocess's own analysis.
    assert after["reprocess"]["id"] == rid and after["analyzed_at"] > before["analyzed_at"]
    assert after["flags"] == ["ai_generated"] and after["sha256"] == before["sha256"]
    queued = queue_item(review, stack.bucket, key)
    assert (queued["status"], queued["decided_by"]) == ("approved", MODERATOR)  # not reopened
    assert [m["decision"] for m in published(review)] == ["approve"]
    # The review function applies the approval to what the item says: the quarantine comes off.
    review.drain_effects(review_handler)
    assert "moderation" not in uploads.tags(key)


def test_with_review_off_the_pipeline_makes_no_request_for_review(stack, review, uploads, prefix, monkeypatch):
    monkeypatch.setenv("REVIEW_MODE", "off")
    calls, seen = [], []
    real_call = BaseClient._make_api_call

    def recorded(client, operation, params):
        # Every request of every client in this process: the function builds its own botocore clients.
        seen.append(operation)
        if review.queue_table in repr(params):
            calls.append(operation)
        return real_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    uploads.put(f"{prefix}off.png", ai_png(5))
    monkeypatch.undo()
    assert "PutItem" in seen  # the function's own requests were seen
    assert calls == []
    assert "review" not in result_item(stack, f"{prefix}off.png")


def test_an_appeal_after_a_rejection_that_deleted_the_version(stack, review, prefix, capsys, flagged_mode, monkeypatch):
    monkeypatch.setenv("REJECT_ACTION", "delete")
    bucket = f"review-versions-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    uploads = Uploads(bucket)
    key = f"{prefix}appealed.png"
    first = uploads.put(key, ai_png(6))
    second = uploads.put(key, ai_png(7))  # a newer version of the key, also flagged
    version = first["version_id"]
    url = f"s3://{bucket}/{key}"

    from image_analysis.review.handler import build_review_runtime, handle
    from tests.integration.review_support import LOGGER

    class Hooks:
        def __init__(self):
            self.rejected, self.approved_after_appeal = [], []

        def on_rejected(self, item):
            self.rejected.append(item)

        def on_approved_after_appeal(self, item):
            self.approved_after_appeal.append(item)

    hooks = Hooks()
    runtime = build_review_runtime(hooks=hooks)

    def apply_effects():
        from local.driver import QueueDriver

        QueueDriver(lambda event, context: handle(event, context, runtime, LOGGER), review.effects_queue_url).drain()

    assert cli(stack, capsys, "review", "reject", url, "--version", version, "--reason", "explicit")[0] == 0
    apply_effects()
    versions = {v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]}
    assert versions == {second["version_id"]}, "that version, and only it, is deleted"
    # Its delete event reaches the pipeline: the result stays, whatever OnDelete says.
    from local.driver import LambdaContext, load_handler
    from tests.integration.test_pipeline_end_to_end import sqs_event

    delete = {**first["event"]}
    record = {**delete["Records"][0], "eventName": "ObjectRemoved:Delete"}
    record["s3"] = {**record["s3"], "object": {**record["s3"]["object"], "sequencer": "0055AED6DCD9FFFFFFFF"}}
    assert load_handler()(sqs_event({"Records": [record]}), LambdaContext()) == {"batchItemFailures": []}
    kept = boto3.resource("dynamodb").Table(stack.table).get_item(Key={"pk": f"{bucket}/{key}", "sk": version})
    assert kept["Item"]["status"] == "succeeded" and kept["Item"]["review"]["status"] == "rejected"
    # (The effects queue may hold other tests' decisions: only this object's count here.)
    mine = [h for h in hooks.rejected if h["pk"] == f"{bucket}/{key}"]
    assert [h["sk"] for h in mine] == [version] and mine[0]["sha256"] and mine[0]["review"]["status"] == "rejected"

    code, out, _ = cli(stack, capsys, "review", "appeal", url, "--version", version, "--reason", "it is art")
    assert code == 0 and out.startswith("pending:")
    code, out, _ = cli(stack, capsys, "review", "approve", url, "--version", version)
    assert code == 0 and "cannot bring the bytes back" in out
    apply_effects()
    assert [h["sk"] for h in hooks.approved_after_appeal if h["pk"] == f"{bucket}/{key}"] == [version]
    code, out, _ = cli(stack, capsys, "review", "history", url, "--version", version)
    assert [line.split()[1] for line in out.splitlines()] == ["reject", "appeal", "approve"]
    assert "rejected -> pending" in out.splitlines()[1]
    # The other version was never decided on.
    code, out, _ = cli(stack, capsys, "review", "history", url, "--version", second["version_id"])
    assert code == 0 and out.strip() == f"No decisions on {url} (version {second['version_id']})."


def test_calibrate_reads_the_decisions_and_reports_precision_and_the_threshold_reaching_the_target(
    stack, review, capsys
):
    # A made-up decision set for a provider of its own, written as decisions are recorded:
    #   score 0.82 approve (false positive), 0.85 reject, 0.90 reject, 0.95 reject, 0.60 approve (under
    #   the 0.8 threshold: never flagged, left out).
    # At 0.8: 3 rejected of 4 -> precision 0.75. At 0.85: 3 of 3 -> 1.0 >= 0.9, so 0.85 reaches the target.
    table = boto3.resource("dynamodb").Table(review.audit_table)
    run = uuid.uuid4().hex[:8]
    for i, (score, decision) in enumerate(
        [(0.82, "approve"), (0.85, "reject"), (0.9, "reject"), (0.95, "reject"), (0.6, "approve")]
    ):
        from decimal import Decimal

        table.put_item(
            Item={
                "pk": f"calibration-{run}/{i}.jpg#null",
                "sk": f"2026-05-0{i + 1}T00:00:00.000Z#{run}-{i}",
                "decision_id": f"{run}-{i}",
                "decision": decision,
                "signals": [{"provider": f"handmade{run}", "category": "explicit", "score": Decimal(str(score))}],
            }
        )
    code, out, _ = cli(stack, capsys, "calibrate", "--json")
    assert code == 0
    import json

    (row,) = [r for r in json.loads(out) if r["provider"] == f"handmade{run}"]
    assert row == {
        "provider": f"handmade{run}",
        "category": "explicit",
        "threshold": 0.8,
        "decided": 4,
        "rejected": 3,
        "approved": 1,
        "precision": 0.75,
        "target": 0.9,
        "suggested": 0.85,
    }
    code, out, _ = cli(stack, capsys, "calibrate", "--target", "0.7")
    (line,) = [line for line in out.splitlines() if line.startswith(f"handmade{run}")]
    assert line.split() == [f"handmade{run}", "explicit", "0.8", "4", "3", "1", "0.75", "0.8"]
    assert "cannot be estimated" in out
    code, out, _ = cli(stack, capsys, "calibrate", "--json", "--threshold", "nsfw=0.9")
    (row,) = [r for r in json.loads(out) if r["provider"] == f"handmade{run}"]
    assert (row["threshold"], row["decided"], row["precision"]) == (0.9, 2, 1.0)
    assert cli(stack, capsys, "calibrate", "--threshold", "nsfw=high")[0] == 2
