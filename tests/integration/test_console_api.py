"""The console's side of the review function against the emulator: thumbnails made when a review opens,
the console's routes behind a moderator's token (401, 403, who decided), the queue's filters and counts,
the stats, and the page with its Content-Security-Policy."""

from __future__ import annotations

import io
import json
import urllib.request
from datetime import UTC, datetime

import boto3
import pytest

from image_analysis.review.ids import ReviewId
from local.driver import LambdaContext
from tests.integration.review_support import ALICE, Uploads, ai_png, call, http_event, plain_png, published

pytestmark = pytest.mark.integration

COGNITO = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"


@pytest.fixture
def flagged_mode(monkeypatch, review):
    monkeypatch.setenv("REVIEW_MODE", "flagged")
    published(review)


@pytest.fixture
def uploads(stack):
    return Uploads(stack.bucket)


def console_event(method, path, *, claims=None, query=None, body=None, route="ANY /console/api/{proxy+}"):
    """A ConsoleApi request as its JWT authorizer hands it on (payload 2.0), with ``claims`` or none."""
    event = http_event(method, route.split(" ", 1)[1], path, user=None, query=query, body=body)
    event["routeKey"] = event["requestContext"]["routeKey"] = route
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


def moderator(username="alice", groups="[moderators]"):
    return {"iss": COGNITO, "cognito:username": username, "cognito:groups": groups, "email": f"{username}@example.com"}


def queue_item(review, rid):
    from image_analysis.review.queue import ReviewQueue

    return ReviewQueue(review.queue_table, boto3.client("dynamodb")).get(rid)


def test_a_review_that_opens_gets_a_webp_thumbnail_served_only_through_a_presigned_url(
    stack, review, review_handler, uploads, prefix, flagged_mode
):
    from PIL import Image

    flagged, clean = f"{prefix}flagged.png", f"{prefix}clean.png"
    uploads.put(flagged, ai_png(41))
    uploads.put(clean, plain_png(41))
    item = queue_item(review, ReviewId(stack.bucket, flagged))
    assert item["thumbnail"].startswith("thumbnails/") and flagged not in item["thumbnail"]
    assert item["providers"] == ["builtin"]  # the provider whose answer raised the flag
    assert queue_item(review, ReviewId(stack.bucket, clean)) is None  # no review, no thumbnail

    artifacts = stack.function_env["ARTIFACTS_BUCKET"]
    stored = boto3.client("s3").get_object(Bucket=artifacts, Key=item["thumbnail"])
    assert stored["ContentType"] == "image/webp"
    thumbnail = Image.open(io.BytesIO(stored["Body"].read()))
    assert thumbnail.format == "WEBP" and thumbnail.size == (200, 150)  # the upload is 200x150: never enlarged

    status, page = call(review_handler, console_event("GET", "/console/api/reviews", claims=moderator()))
    listed = next(i for i in page["items"] if i["key"] == flagged)
    assert status == 200 and "thumbnail" not in listed  # the key stays inside; the browser gets a link
    assert "X-Amz-Signature=" in listed["thumbnail_url"] and "X-Amz-Expires=300" in listed["thumbnail_url"]
    with urllib.request.urlopen(listed["thumbnail_url"]) as response:
        assert Image.open(io.BytesIO(response.read())).format == "WEBP"


def test_console_routes_need_a_moderators_token_and_record_the_signed_in_user(
    stack, review, review_handler, uploads, prefix, flagged_mode
):
    key = f"{prefix}decided.png"
    uploads.put(key, ai_png(42))
    rid = ReviewId(stack.bucket, key).encoded
    path = f"/console/api/reviews/{rid}/decision"
    body = {"decision": "reject", "reason": "explicit", "from_status": "pending"}

    assert call(review_handler, console_event("POST", path, body=body))[0] == 401  # no verified claims
    outsider = moderator("mallory", groups="[viewers]")
    status, answer = call(review_handler, console_event("POST", path, claims=outsider, body=body))
    assert (status, answer["error"]) == (403, "the signed-in user is not in the moderators group")
    assert queue_item(review, ReviewId(stack.bucket, key))["status"] == "pending"  # nothing was decided

    two_groups = moderator("alice", groups="[admins moderators]")
    status, answer = call(review_handler, console_event("POST", path, claims=two_groups, body=body))
    assert status == 200 and answer["review"]["decided_by"] == "cognito:alice"
    assert [m["by"] for m in published(review)] == ["cognito:alice"]
    status, me = call(review_handler, console_event("GET", "/console/api/me", claims=two_groups))
    assert me == {"user": "cognito:alice", "email": "alice@example.com", "groups": ["admins", "moderators"]}

    # The IAM routes are as they were: the principal's ARN decides, and no token is asked for.
    other = f"{prefix}iam.png"
    uploads.put(other, ai_png(43))
    other_id = ReviewId(stack.bucket, other).encoded
    event = http_event(
        "POST",
        "/reviews/{id}/decision",
        f"/reviews/{other_id}/decision",
        body={"decision": "approve", "from_status": "pending"},
        path_parameters={"id": other_id},
    )
    status, answer = call(review_handler, event)
    assert status == 200 and answer["review"]["decided_by"] == ALICE


def test_the_queue_filters_by_flag_provider_and_date_and_counts_each_status(
    stack, review, review_handler, uploads, prefix, flagged_mode
):
    key = f"{prefix}filtered.png"
    uploads.put(key, ai_png(44))
    claims = moderator()

    def keys(**query):
        status, page = call(review_handler, console_event("GET", "/console/api/reviews", claims=claims, query=query))
        assert status == 200, page
        return {i["key"] for i in page["items"]}

    today = datetime.now(UTC).date().isoformat()
    assert key in keys(flag="ai_generated", limit="100")
    assert key not in keys(flag="nsfw", limit="100")
    assert key in keys(provider="builtin", limit="100")
    assert key not in keys(provider="imagga", limit="100")
    assert key in keys(**{"from": today, "to": today, "limit": "100"})
    assert key not in keys(**{"to": "2020-01-01", "limit": "100"})
    status, bad = call(review_handler, console_event("GET", "/console/api/reviews", claims=claims, query={"from": "x"}))
    assert status == 400 and "from must be a date" in bad["error"]

    status, counted = call(review_handler, console_event("GET", "/console/api/counts", claims=claims))
    pending = keys(limit="100")
    assert (
        status == 200
        and counted["counts"]["pending"] == len(pending)
        and set(counted["counts"])
        == {
            "pending",
            "approved",
            "rejected",
            "escalated",
        }
    )


@pytest.fixture
def long_queue(stack, review, prefix):
    """``fill(provider_of)``: 60 reviews in the queue, opened one second apart on a day in 2001 (older
    than any other test's, so first in their status), the i-th raised by ``provider_of(i)``; removed
    afterwards, so that other tests' listings and counts see the queue as it was."""
    from image_analysis.review.queue import ReviewQueue

    queue = ReviewQueue(review.queue_table, boto3.client("dynamodb"))
    written: list[str] = []

    def fill(provider_of, status="pending"):
        for index in range(60):
            key = f"{prefix}long-{index:02d}.png"
            rid = ReviewId(stack.bucket, key)
            queue.table.put(
                {
                    "pk": rid.plain,
                    "status": status,
                    "flags": ["ai_generated"],
                    "providers": [provider_of(index)],
                    "analyzed_at": f"2001-02-03T04:05:{index:02d}.000Z",
                    "bucket": stack.bucket,
                    "key": key,
                    "version_id": None,
                    "appeals": 0,
                }
            )
            written.append(rid.plain)
        return queue

    yield fill
    for pk in written:
        queue.table.delete({"pk": pk})


def test_a_filter_whose_matches_lie_past_the_first_page_read_finds_them_on_the_first_page(
    stack, review, review_handler, long_queue, prefix
):
    # Only the last three of 60 pending reviews match. DynamoDB filters after it read its Limit (25), so
    # the console used to get an empty page with a next and said the queue was empty for these filters.
    rare = f"rare-{prefix.strip('/').replace('/', '-')}"
    long_queue(lambda index: rare if index >= 57 else "builtin")
    status, page = call(
        review_handler,
        console_event("GET", "/console/api/reviews", claims=moderator(), query={"provider": rare, "limit": "25"}),
    )
    assert status == 200, page
    assert [i["key"] for i in page["items"]] == [f"{prefix}long-{index:02d}.png" for index in (57, 58, 59)]
    assert page["next"] is None and page["read"] >= 60  # the listing was read to its end


def test_filtered_pages_go_on_where_the_last_one_stopped_each_match_once_and_each_read_bounded(long_queue, prefix):
    # Every other review from the 20th on matches: 20 matches among 60, listed five at a time.
    queue = long_queue(lambda index: "imagga" if index >= 20 and index % 2 == 0 else "builtin", status="test-paging")
    expected = [f"{prefix}long-{index:02d}.png" for index in range(20, 60, 2)]

    def listing(budget):
        pages, cursor = [], None
        while True:
            page = queue.page("test-paging", 5, cursor, provider="imagga", budget=budget)
            pages.append(page)
            assert page["read"] <= max(budget, 5)
            cursor = page["next"]
            if cursor is None:
                return pages

    # A page holds its limit even when the read that filled it found more (the next goes on after them).
    pages = listing(1000)
    assert [len(p["items"]) for p in pages] == [5, 5, 5, 5]
    assert [i["key"] for p in pages for i in p["items"]] == expected
    # A read budget under the first match: the first page is empty but says more exist, and the pages
    # after it still find every match once, in order.
    pages = listing(12)
    assert pages[0] == {"items": [], "next": pages[0]["next"], "read": 12} and pages[0]["next"]
    assert [i["key"] for p in pages for i in p["items"]] == expected


def test_the_stats_count_flags_and_decisions_per_day_precision_and_vendor_spend(
    stack, review, review_handler, uploads, prefix, flagged_mode
):
    claims = moderator()
    keys = [f"{prefix}stats-{i}.png" for i in range(3)]
    for index, key in enumerate(keys):
        uploads.put(key, ai_png(50 + index))
    for key, decision in zip(keys, ("reject", "reject", "approve"), strict=True):
        rid = ReviewId(stack.bucket, key).encoded
        body = {"decision": decision, "reason": "seen", "from_status": "pending"}
        assert (
            call(
                review_handler, console_event("POST", f"/console/api/reviews/{rid}/decision", claims=claims, body=body)
            )[0]
            == 200
        )
    # What CloudWatch Logs makes of the analysis function's EMF lines: a cost metric per provider.
    boto3.client("cloudwatch").put_metric_data(
        Namespace="ImageAnalysis",
        MetricData=[
            {
                "MetricName": "EstimatedCost_imagga",
                "Dimensions": [{"Name": "service", "Value": stack.function_env["POWERTOOLS_SERVICE_NAME"]}],
                "Value": 0.25,
                "Unit": "None",
            }
        ],
    )
    status, stats = call(review_handler, console_event("GET", "/console/api/stats", claims=claims, query={"days": "7"}))
    assert status == 200 and len(stats["days"]) == 7 and stats["days"][-1] == datetime.now(UTC).date().isoformat()
    assert stats["flags"]["ai_generated"][-1] >= 3
    assert stats["decisions"]["reject"][-1] >= 2 and stats["decisions"]["approve"][-1] >= 1
    row = next(r for r in stats["precision"] if (r["provider"], r["category"]) == ("builtin", "ai_generated"))
    assert row["decided"] == row["rejected"] + row["approved"] and row["rejected"] >= 2
    assert stats["spend"]["providers"]["imagga"][-1] == pytest.approx(0.25)
    assert (
        call(review_handler, console_event("GET", "/console/api/stats", claims=claims, query={"days": "0"}))[0] == 400
    )


def test_the_page_and_its_files_carry_a_policy_without_inline_code(review, review_handler):
    def get(path, route):
        return review_handler(console_event("GET", path, route=route), LambdaContext("ReviewFunction", 30))

    status_page = get("/", "GET /")
    assert status_page["statusCode"] == 200
    policy = status_page["headers"]["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert status_page["headers"]["Referrer-Policy"] == "no-referrer"
    assert '<script type="module" src="/console/app.js"></script>' in status_page["body"]

    script = get("/console/app.js", "GET /console/{name}")
    assert script["statusCode"] == 200 and script["headers"]["Content-Type"].startswith("text/javascript")
    for name in ("app.py", "..", "%2e%2e%2fapp.py", "missing.js"):
        missing = get(f"/console/{name}", "GET /console/{name}")
        assert missing["statusCode"] == 404, name
    config = get("/console/config.json", "GET /console/{name}")
    settings = json.loads(config["body"])
    assert settings["thresholds"]["nsfw"] == 0.8 and settings["statuses"][0] == "pending"
