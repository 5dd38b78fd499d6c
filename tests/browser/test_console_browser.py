"""The moderators' console as a person uses it: headless Chromium (Debian's) against ``make console``.

One console for the module (its stack takes half a minute to seed); each test decides on reviews of its
own, picked by key, so their order does not matter. ``make test-browser`` runs them; CI installs chromium.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.browser import chromium, running_console, wait_for
from local.console_adapter import LOCAL_USER

pytestmark = pytest.mark.browser

CLI_USER = "arn:aws:sts::123456789012:user/moto"  # who the emulator says the command line's caller is


@pytest.fixture(scope="module")
def console() -> Iterator[Any]:
    with running_console() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class Problems:
    """What a person would see go wrong in the developer tools: console errors (a CSP violation and a
    failed favicon are console errors), uncaught exceptions, failed requests and HTTP errors."""

    def __init__(self, page: Any) -> None:
        self.seen: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and self.seen.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.seen.append(f"uncaught: {e}"))
        # A request the browser cancels because the page moved on (net::ERR_ABORTED: a favicon still loading
        # when the test navigates) is not a failure anyone sees; a missing file still shows as its HTTP 404.
        page.on(
            "requestfailed",
            lambda r: r.failure != "net::ERR_ABORTED" and self.seen.append(f"request failed: {r.url} {r.failure}"),
        )
        page.on("response", lambda r: r.status >= 400 and self.seen.append(f"HTTP {r.status}: {r.url}"))


@pytest.fixture
def page(browser, console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.problems = Problems(opened)
    yield opened
    context.close()


def open_queue(page: Any, console: Any, query: str = "") -> None:
    page.goto(console.url + (f"#/queue?{query}" if query else ""))
    settled(page, query)


def settled(page: Any, query: str = "") -> None:
    """The list (of a query holding ``query``) and its counts are up to date: the page marks the list busy
    while it loads or decides."""
    # (An empty *= matches nothing in CSS: no query, no condition on it.)
    page.wait_for_selector(f'#items[aria-busy=false][data-query*="{query}"]' if query else "#items[aria-busy=false]")


def row(page: Any, key: str) -> Any:
    return page.locator("#items .item", has=page.locator(".key", has_text=key))


def keys_shown(page: Any) -> list[str]:
    return page.locator("#items .item .key").all_inner_texts()


def move_to(page: Any, key: str) -> None:
    """j or k until ``key``'s row is the current one: what a moderator's keyboard does."""
    for _ in range(2 * len(keys_shown(page)) + 2):
        shown = keys_shown(page)
        current = page.locator("#items .item.current .key").inner_text()
        if current == key:
            return
        page.keyboard.press("j" if shown.index(key) > shown.index(current) else "k")
    raise AssertionError(f"{key} never became the current row")


def audit_table(console: Any) -> list[dict[str, Any]]:
    """Every record of the stack's audit table, read with boto3 (not through the console)."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=console.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    cloudformation = boto3.client(
        "cloudformation",
        endpoint_url=console.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    outputs = cloudformation.describe_stacks(StackName=console.stack_name)["Stacks"][0]["Outputs"]
    table = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "AuditTableName")
    items = client.scan(TableName=table)["Items"]
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def test_the_queue_opens_oldest_first_with_counts_and_blurred_thumbnails(page, console):
    open_queue(page, console)
    shown = keys_shown(page)
    assert len(shown) >= 5
    assert "uploads/second render.png" in shown and "uploads/coffee.png" not in shown  # unflagged: not queued
    times = page.locator("#items .item time").evaluate_all("nodes => nodes.map(n => n.getAttribute('datetime'))")
    assert times == sorted(times)
    pending = int(page.locator("[data-count=pending]").inner_text())
    assert pending == len(shown)

    thumbnail = row(page, "uploads/second render.png").locator("img.shot")
    wait_for(lambda: thumbnail.evaluate("img => img.complete && img.naturalWidth > 0"))
    assert thumbnail.evaluate("img => new URL(img.src).searchParams.has('X-Amz-Signature')")  # presigned, not public
    assert "blur" in thumbnail.evaluate("img => getComputedStyle(img).filter")
    thumbnail.hover()
    wait_for(lambda: thumbnail.evaluate("img => getComputedStyle(img).filter") == "none")
    page.mouse.move(0, 0)
    wait_for(lambda: "blur" in thumbnail.evaluate("img => getComputedStyle(img).filter"))
    page.locator("#blur-setting").uncheck()  # the setting turns the blur off, and is remembered
    wait_for(lambda: thumbnail.evaluate("img => getComputedStyle(img).filter") == "none")
    page.reload()
    settled(page)
    assert page.locator("#items .item img.shot").first.evaluate("img => getComputedStyle(img).filter") == "none"
    page.locator("#blur-setting").check()
    assert page.problems.seen == []


def test_approve_with_the_keyboard_and_reject_with_a_reason_then_the_audit_table_shows_both(page, console):
    approved, rejected = "uploads/stable-diffusion render.png", "uploads/scanned page.png"
    open_queue(page, console)
    move_to(page, approved)
    page.keyboard.press("a")
    wait_for(lambda: approved not in keys_shown(page))
    settled(page)
    assert page.locator(".notice.success", has_text=f"Approved: {approved}").count() == 1

    move_to(page, rejected)
    page.keyboard.press("r")
    dialog = page.locator("#reason-dialog")
    dialog.wait_for(state="visible")
    page.keyboard.type("a render passed off as a scan")
    page.keyboard.press("Enter")
    wait_for(lambda: rejected not in keys_shown(page))
    settled(page)
    assert int(page.locator("[data-count=approved]").inner_text()) >= 1
    assert int(page.locator("[data-count=rejected]").inner_text()) >= 1

    # The review's own page shows its audit history ...
    page.locator(".status-tabs a", has_text="Rejected").click()
    settled(page, "status=rejected")
    row(page, rejected).locator("a.key").click()
    history = page.locator("#history tbody tr")
    history.first.wait_for()
    cells = history.first.locator("td").all_inner_texts()
    assert cells[1:5] == ["reject", "pending → rejected", LOCAL_USER, "a render passed off as a scan"]

    # ... and the audit table holds both decisions, by the signed-in (local) user.
    records = {r["key"]: r for r in audit_table(console) if r["key"] in (approved, rejected)}
    assert records[approved]["decision"] == "approve" and records[approved]["by"] == LOCAL_USER
    assert records[rejected]["decision"] == "reject" and records[rejected]["reason"] == "a render passed off as a scan"
    assert records[rejected]["previous"] == "pending"
    assert page.problems.seen == []


def test_a_stale_decision_shows_who_decided_first(page, console):
    key = "uploads/c2pa-signed.jpg"
    open_queue(page, console)
    move_to(page, key)
    # Another moderator approves it with the command line while this page still shows it pending.
    command = ["--stack-name", console.stack_name, "review", "approve", f"s3://{console.bucket}/{key}"]
    decided = subprocess.run(
        [sys.executable, "-m", "image_analysis_cli.main", *command],
        env=console.aws_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert decided.returncode == 0, decided.stderr
    assert row(page, key).locator(".status").inner_text().lower() == "pending"

    page.keyboard.press("e")  # escalate what is no longer pending
    refusal = row(page, key).locator(".refusal")
    refusal.wait_for()
    assert f"already decided by {CLI_USER}" in refusal.inner_text()
    assert row(page, key).locator(".status").inner_text().lower() == "approved"
    assert page.locator(".notice.error", has_text=CLI_USER).count() == 1
    # A refused decision is not recorded: the audit table has the command line's approval alone.
    assert [(r["decision"], r["by"]) for r in audit_table(console) if r["key"] == key] == [("approve", CLI_USER)]
    # The refusal's HTTP 409 (which Chromium logs as a failed resource) is what the page expects; nothing else.
    assert [p for p in page.problems.seen if "409" not in p] == []


def test_every_page_loads_without_a_console_error_and_with_a_content_security_policy(page, console):
    with urllib.request.urlopen(console.url) as response:
        policy = response.headers["Content-Security-Policy"]
        html = response.read().decode()
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in html and " style=" not in html  # no inline script or style to allow
    with urllib.request.urlopen(console.url + "console/favicon.svg") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("image/svg+xml")

    violations: list[str] = []
    page.expose_function("reportViolation", lambda text: violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => window.reportViolation(e.violatedDirective))"
    )
    open_queue(page, console)
    page.locator("#items .item", has=page.locator(".key", has_text="animated.gif")).locator("a.key").click()
    page.locator(".frames .frame").first.wait_for()
    assert page.locator(".frames .frame").count() >= 2  # the animation's analyzed frames, flagged ones marked
    page.locator(".provider").first.wait_for()
    page.keyboard.press("?")
    page.locator("#help-dialog").wait_for(state="visible")
    page.keyboard.press("Escape")
    page.goto(console.url + "#/stats")
    page.locator(".chart-grid svg.chart").nth(3).wait_for()
    assert page.locator(".chart-grid svg.chart rect").count() > 0
    assert violations == [] and page.problems.seen == []


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (375, 800)])
def test_pages_fit_the_width_without_horizontal_scroll(browser, console, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        for route, ready in (
            ("#/queue", "#items .item"),
            ("#/queue?status=rejected", "#items .item, #queue-end"),
            ("#/stats", ".chart-grid"),
        ):
            page.goto(console.url + route)
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.documentElement.scrollWidth") <= width, route
        page.goto(console.url)
        page.wait_for_selector("#items .item")
        page.locator("#items .item a.key").first.click()
        page.wait_for_selector(".provider")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, "a review"
        if width == 1280:
            # The decision buttons are on the first screen, without scrolling.
            button = page.locator(".detail-actions button").first.bounding_box()
            assert button is not None and button["y"] + button["height"] <= height
    finally:
        context.close()


def test_filters_narrow_the_queue_and_bulk_actions_decide_a_selection(page, console):
    open_queue(page, console, "status=pending&flag=nsfw")
    shown = keys_shown(page)
    assert shown and all("nsfw" in t for t in page.locator("#items .item .chips").all_inner_texts())
    page.select_option("select[name=flag]", "")
    page.select_option("select[name=provider]", "aiornot")
    settled(page, "provider=aiornot")
    assert "flag=" not in page.locator("#items").get_attribute("data-query")
    assert all("aiornot" in t for t in page.locator("#items .item .by").all_inner_texts())

    open_queue(page, console)
    chosen = ["uploads/astronaut.png", "uploads/second render.png"]
    for key in chosen:
        row(page, key).locator("input.pick").check()
    assert page.locator("#selected-count").inner_text() == "2 selected"
    page.locator("[data-bulk=escalate]").click()
    wait_for(lambda: not set(chosen) & set(keys_shown(page)))
    settled(page)
    page.locator(".status-tabs a", has_text="Escalated").click()
    settled(page, "status=escalated")
    assert set(chosen) <= set(keys_shown(page))
    statuses = {r["key"]: r["decision"] for r in audit_table(console) if r["key"] in chosen}
    assert statuses == {key: "escalate" for key in chosen}
    assert json.loads(json.dumps(page.problems.seen)) == []


def test_a_filter_with_no_match_in_what_was_read_says_so_and_reads_on(page, console):
    # The server reads a bounded number of reviews per page; past it, an empty page comes with a next.
    # The page then says what it read, not that nothing matches. (The server's side of this is in
    # tests/integration/test_console_api.py; here its answers are fixed, to read the page's words.)
    answers = [
        {"items": [], "next": "first-thousand", "read": 1000},
        {"items": [], "next": "second-thousand", "read": 1000},
        {"items": [], "next": None, "read": 40},
    ]
    asked: list[str] = []

    def answer(route: Any) -> None:
        asked.append(route.request.url)
        body = answers[min(len(asked), len(answers)) - 1]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/console/api/reviews?*", answer)
    open_queue(page, console, "status=pending&flag=deepfake")
    end = page.locator("#queue-end")
    assert end.inner_text().startswith("No matches in the first 1,000 reviews read")
    assert "Nothing here" not in end.inner_text()
    page.locator("#more").click()
    wait_for(lambda: "first 2,000 reviews" in end.inner_text())
    assert "next=first-thousand" in asked[1] and "flag=deepfake" in asked[1]
    page.locator("#more").click()
    wait_for(lambda: "Nothing here" in end.inner_text())
    assert page.locator("#more").count() == 0 and "next=second-thousand" in asked[2]
    assert page.problems.seen == []
