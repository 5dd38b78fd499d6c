"""The review HTTP API's handler, driven with API Gateway HTTP API (payload 2.0) events against the
emulator: listing and paging, a review with its presigned original, every decision and its refusals, two
moderators deciding at once, and a crash between the audit write and the publish."""

from __future__ import annotations

import threading
import urllib.request

import boto3
import pytest

from image_analysis.review.handler import build_review_runtime, handle
from image_analysis.review.ids import ReviewId
from local.driver import LambdaContext
from tests.integration.review_support import (
    ALICE,
    BOB,
    LOGGER,
    MODERATOR,
    Uploads,
    ai_png,
    call,
    cli,
    decide,
    http_event,
    published,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def flagged_mode(monkeypatch, review):
    monkeypatch.setenv("REVIEW_MODE", "flagged")
    published(review)


@pytest.fixture
def uploads(stack):
    return Uploads(stack.bucket)


def review_id(stack, key):
    return ReviewId(stack.bucket, key).encoded


def audit_records(review, stack, key):
    from image_analysis.store import from_item

    table = boto3.resource("dynamodb").Table(review.audit_table)
    pk = ReviewId(stack.bucket, key).plain
    return [
        from_item(i)
        for i in table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": pk})["Items"]
    ]


def test_the_queue_pages_oldest_first_and_a_review_comes_with_a_short_lived_link_to_its_original(
    stack, review, review_handler, uploads, prefix, flagged_mode
):
    keys = [f"{prefix}{i}.png" for i in range(3)]
    bodies = {key: ai_png(10 + i) for i, key in enumerate(keys)}
    for key in keys:
        uploads.put(key, bodies[key])
    seen, token, pages = [], None, 0
    while True:
        query = {"status": "pending", "limit": "1", **({"next": token} if token else {})}
        status, page = call(review_handler, http_event("GET", "/reviews", "/reviews", query=query))
        assert status == 200 and len(page["items"]) <= 1
        seen += [item for item in page["items"] if item["key"] in keys]
        pages += 1
        token = page["next"]
        if not token or pages > 500:
            break
    assert [item["key"] for item in seen] == keys  # oldest first, each once
    assert all(item["id"] == review_id(stack, item["key"]) for item in seen)
    assert seen[0]["flags"] == ["ai_generated"] and seen[0]["status"] == "pending"

    rid = review_id(stack, keys[1])
    status, shown = call(
        review_handler, http_event("GET", "/reviews/{id}", f"/reviews/{rid}", path_parameters={"id": rid})
    )
    assert status == 200
    assert shown["review"]["status"] == "pending" and shown["result"]["key"] == keys[1] and "raw" not in shown["result"]
    assert shown["history"] == [] and shown["original"]["expires_in"] == 300
    with urllib.request.urlopen(shown["original"]["url"]) as response:
        assert response.read() == bodies[keys[1]]

    bad = call(review_handler, http_event("GET", "/reviews", "/reviews", query={"status": "lost"}))
    assert bad[0] == 400 and "status must be one of" in bad[1]["error"]
    bad = call(review_handler, http_event("GET", "/reviews", "/reviews", query={"next": "bm90IGEgdG9rZW4"}))
    assert bad[0] == 400 and "next" in bad[1]["error"]


def test_every_decision_and_its_refusals_through_the_api(stack, review, review_handler, uploads, prefix, flagged_mode):
    key = f"{prefix}decided.png"
    uploads.put(key, ai_png(20))
    rid = review_id(stack, key)

    # Taken from a status the review is not in: refused, saying which it is.
    status, body = decide(review_handler, rid, decision="approve", from_status="escalated")
    assert (status, body["error"]) == (409, "approve is refused: the review is pending, not escalated")
    assert body["current"] == {"status": "pending", "decided_by": None, "decided_at": None}
    status, body = decide(review_handler, rid, decision="reject", from_status="pending")
    assert (status, body["error"]) == (400, "reject needs a reason")
    assert decide(review_handler, rid, decision="ban", from_status="pending")[0] == 400
    assert decide(review_handler, rid, decision="approve")[0] == 400  # from_status is required
    assert decide(review_handler, rid, user=None, decision="approve", from_status="pending")[0] == 403
    assert decide(review_handler, "bm8tc3VjaC1pZA", decision="approve", from_status="pending")[0] == 400
    missing = ReviewId(stack.bucket, f"{prefix}never.png").encoded
    assert decide(review_handler, missing, decision="approve", from_status="pending")[0] == 404

    status, body = decide(review_handler, rid, decision="escalate", from_status="pending", reason="unsure")
    assert status == 200 and body["review"]["status"] == "escalated" and body["review"]["decided_by"] == ALICE
    status, body = decide(review_handler, rid, BOB, decision="reject", from_status="escalated", reason="explicit")
    assert status == 200 and body["decision"]["previous"] == "escalated"
    decided_at = body["review"]["decided_at"]

    # Alice still sees it escalated: refused, with who decided what and when.
    status, body = decide(review_handler, rid, decision="approve", from_status="escalated")
    assert status == 409
    assert body["current"] == {"status": "rejected", "decided_by": BOB, "decided_at": decided_at}
    assert body["error"].startswith(f"already decided by {BOB} (rejected at {decided_at})")

    status, body = decide(review_handler, rid, decision="appeal", from_status="rejected", reason="context")
    assert status == 200 and body["review"] == {
        "status": "pending",
        "reason": "context",
        "decided_by": ALICE,
        "decided_at": body["review"]["decided_at"],
        "appeals": 1,
    }
    status, body = decide(review_handler, rid, decision="approve", from_status="pending")
    assert status == 200 and body["review"]["appeals"] == 1 and "note" not in body

    messages = [m for m in published(review) if m["key"] == key]
    assert [(m["decision"], m["previous"], m["by"]) for m in messages] == [
        ("escalate", "pending", ALICE),
        ("reject", "escalated", BOB),
        ("appeal", "rejected", ALICE),
        ("approve", "pending", ALICE),
    ]
    records = audit_records(review, stack, key)
    assert [r["decision_id"] for r in records] == [m["decision_id"] for m in messages]
    assert all("outbox" not in r for r in records), "each was published and its outbox flag cleared"
    assert {r["signals"][0]["category"] for r in records} == {"ai_generated"}


def test_two_moderators_at_once_one_wins_and_the_other_is_told_who(
    stack, review, uploads, prefix, flagged_mode, capsys
):
    key = f"{prefix}race.png"
    uploads.put(key, ai_png(30))
    rid = review_id(stack, key)
    # Both have read "pending" before either writes: the transactions meet at the barrier.
    barrier = threading.Barrier(2, timeout=30)

    def meet(**_):
        barrier.wait()

    events = boto3._get_default_session().events
    events.register("before-call.dynamodb.TransactWriteItems", meet)
    try:
        runtime = build_review_runtime(
            clients={"s3": boto3.client("s3"), "dynamodb": boto3.client("dynamodb"), "sns": boto3.client("sns")}
        )
        answers = {}

        def api_approve():
            event = http_event(
                "POST",
                "/reviews/{id}/decision",
                f"/reviews/{rid}/decision",
                body={"decision": "approve", "from_status": "pending"},
                path_parameters={"id": rid},
            )
            answers["api"] = handle(event, LambdaContext("ReviewFunction"), runtime, LOGGER)

        thread = threading.Thread(target=api_approve)
        thread.start()
        code, out, err = cli(stack, capsys, "review", "reject", f"s3://{stack.bucket}/{key}", "--reason", "explicit")
        thread.join()
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", meet)

    api_status = answers["api"]["statusCode"]
    assert (api_status, code) in ((200, 2), (409, 0)), (api_status, code, out, err)
    stored = boto3.resource("dynamodb").Table(stack.table).get_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"})
    winner = stored["Item"]["review"]
    (record,) = audit_records(review, stack, key)  # the loser wrote nothing
    if api_status == 200:
        assert winner["status"] == "approved" and winner["decided_by"] == ALICE
        assert err.startswith(f"Error: already decided by {ALICE} (approved at ")
    else:
        import json

        assert winner["status"] == "rejected" and winner["decided_by"] == MODERATOR
        assert json.loads(answers["api"]["body"])["current"]["decided_by"] == MODERATOR
    assert record["by"] == winner["decided_by"]
    assert [m["decision_id"] for m in published(review) if m["key"] == key] == [record["decision_id"]]


class Crash(BaseException):
    """The process dies (a timeout, an out-of-memory kill): nothing after this point runs."""


def test_a_crash_between_the_audit_write_and_the_publish_is_published_once_by_the_sweep(
    stack, review, review_handler, uploads, prefix, flagged_mode, capsys
):
    key = f"{prefix}crash.png"
    uploads.put(key, ai_png(40))
    rid = review_id(stack, key)

    def die(**_):
        raise Crash

    events = boto3._get_default_session().events
    events.register("before-call.sns.Publish", die)
    try:
        runtime = build_review_runtime(
            clients={"s3": boto3.client("s3"), "dynamodb": boto3.client("dynamodb"), "sns": boto3.client("sns")}
        )
        with pytest.raises(Crash):
            event = http_event(
                "POST",
                "/reviews/{id}/decision",
                f"/reviews/{rid}/decision",
                body={"decision": "reject", "from_status": "pending", "reason": "explicit"},
                path_parameters={"id": rid},
            )
            handle(event, LambdaContext("ReviewFunction"), runtime, LOGGER)
    finally:
        events.unregister("before-call.sns.Publish", die)

    (record,) = audit_records(review, stack, key)
    assert record["outbox"] == "pending" and record["decision"] == "reject"
    assert [m for m in published(review) if m["key"] == key] == []
    code, out, _ = cli(stack, capsys, "review", "history", f"s3://{stack.bucket}/{key}")
    assert "(not yet published)" in out

    # The decision is young: the sweep leaves it to the caller that may still be publishing it.
    assert call_sweep(review_handler) == 0
    code, out, _ = cli(stack, capsys, "review", "sweep", "--older-than", "0")
    assert code == 0 and out.strip().startswith("Published ") and out.strip() != "Published 0 decision(s)."
    (message,) = [m for m in published(review) if m["key"] == key]
    assert message["decision_id"] == record["decision_id"] and message["decision"] == "reject"
    # Once: the flag is cleared, so neither a second sweep nor the schedule publishes it again.
    assert cli(stack, capsys, "review", "sweep", "--older-than", "0")[1].strip() == "Published 0 decision(s)."
    assert [m for m in published(review) if m["key"] == key] == []
    (after,) = audit_records(review, stack, key)
    assert "outbox" not in after and after["published_message_id"]


def test_a_failed_publish_from_the_command_line_is_recorded_and_swept(
    stack, review, uploads, prefix, flagged_mode, capsys
):
    key = f"{prefix}unpublished.png"
    uploads.put(key, ai_png(41))
    from botocore.exceptions import EndpointConnectionError

    def refuse(**_):
        raise EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com")

    events = boto3._get_default_session().events
    events.register("before-call.sns.Publish", refuse)
    try:
        code, out, err = cli(stack, capsys, "review", "approve", f"s3://{stack.bucket}/{key}")
    finally:
        events.unregister("before-call.sns.Publish", refuse)
    assert code == 0 and out.startswith("approved:") and "could not be published now" in err
    (record,) = audit_records(review, stack, key)
    assert record["outbox"] == "pending"
    assert cli(stack, capsys, "review", "sweep", "--older-than", "0")[0] == 0
    assert [m["decision_id"] for m in published(review) if m["key"] == key] == [record["decision_id"]]


def call_sweep(handler):
    return handler({"sweep": True}, LambdaContext("ReviewFunction", timeout_seconds=30))["published"]
