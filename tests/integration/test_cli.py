"""The ``image-analysis`` command against the stack in the emulator, as an operator would run it."""

from __future__ import annotations

import hashlib
import json
import uuid
from urllib.parse import unquote_plus

import boto3
import pytest
from click.testing import CliRunner

from image_analysis_cli import enqueue
from image_analysis_cli.main import cli
from local.driver import QueueDriver
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES, ai_png

pytestmark = pytest.mark.integration


def run(stack, *args, input=None):
    result = CliRunner().invoke(cli, ["--stack-name", stack.name, *args], input=input, catch_exceptions=False)
    return result


def run_main(stack, *args, monkeypatch):
    """Through main(), which turns user errors into one line and exit code 2."""
    from image_analysis_cli.main import main

    monkeypatch.setattr("sys.argv", ["image-analysis", "--stack-name", stack.name, *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code


def drain_queue_bodies(queue_url):
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def keys_of(bodies):
    return [unquote_plus(b["Records"][0]["s3"]["object"]["key"]) for b in bodies]


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ANALYSIS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def prefilled(stack):
    """A bucket that already holds images and sends no notifications: what a team attaches to."""
    name = f"prefilled-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def quiet_queue(stack):
    """The backfill queue, where the command sends (both queues start and end empty)."""
    for url in stack.queue_urls:
        empty_queue(url)
    yield stack.backfill_queue_url
    for url in stack.queue_urls:
        empty_queue(url)


def test_backfill_enqueues_every_object_once_and_resumes_after_an_interruption(stack, prefilled, tmp_path, monkeypatch):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    keys = [f"photos/{i:05d} img+{i}.jpg" for i in range(1001)]  # two listing pages: 1000 and 1
    for key in keys:
        s3.put_object(Bucket=prefilled, Key=key, Body=b"x")
    s3.put_object(Bucket=prefilled, Key="elsewhere/skip.jpg", Body=b"x")
    # A queue of its own, so the count below is this backfill's alone.
    queue = sqs.create_queue(QueueName=f"backfill-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    state = tmp_path / "state.json"

    def backfill(*extra):
        return CliRunner().invoke(
            cli, ["--stack-name", stack.name, "--queue-url", queue, "backfill", f"s3://{prefilled}/photos/", *extra]
        )

    dry = backfill("--dry-run", "--price", "imagga=0.002")
    assert dry.exit_code == 0, dry.output
    assert "1001 object(s)" in dry.output
    assert "$2.00" in dry.output

    sent: list[str] = []
    interrupt = {"armed": True}
    original = enqueue.QueueSender._flush

    def recording_flush(self, batch):
        if interrupt["armed"] and len(sent) >= 600:  # the operator presses Ctrl-C after 600 objects
            interrupt["armed"] = False
            raise KeyboardInterrupt
        original(self, batch)
        sent.extend(keys_of([json.loads(body) for body in batch]))

    monkeypatch.setattr(enqueue.QueueSender, "_flush", recording_flush)
    assert backfill("--state-file", str(state)).exit_code != 0  # aborted
    saved = json.loads(state.read_text())
    assert saved["enqueued"] == 600 and saved["done"] is False

    resumed = backfill("--state-file", str(state))
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming after" in resumed.output
    assert len(sent) == 1001 and set(sent) == set(keys)  # every object, none twice
    count = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert count["Attributes"]["ApproximateNumberOfMessages"] == "1001"


def test_backfilled_objects_are_analyzed_and_already_analyzed_ones_are_not_redone(
    stack, prefilled, quiet_queue, handler, tmp_path
):
    s3 = boto3.client("s3")
    for name in ("skimage-rocket.jpg", "skimage-coffee.png"):
        s3.put_object(Bucket=prefilled, Key=f"old/{name}", Body=(SAMPLES / name).read_bytes())
    state = tmp_path / "s.json"
    assert run(stack, "backfill", f"s3://{prefilled}/old/", "--state-file", str(state)).exit_code == 0
    QueueDriver(handler, quiet_queue).drain()
    table = boto3.resource("dynamodb").Table(stack.table)
    first = table.get_item(Key={"pk": f"{prefilled}/old/skimage-rocket.jpg", "sk": "null"})["Item"]
    assert first["status"] == "succeeded"
    # A second backfill of the same prefix analyzes nothing again.
    assert run(stack, "backfill", f"s3://{prefilled}/old/", "--state-file", str(state)).exit_code == 0
    QueueDriver(handler, quiet_queue).drain()
    again = table.get_item(Key={"pk": f"{prefilled}/old/skimage-rocket.jpg", "sk": "null"})["Item"]
    assert again["analyzed_at"] == first["analyzed_at"]


def test_reprocess_replaces_a_result_once_per_request_and_records_why(stack, prefilled, quiet_queue, handler):
    s3 = boto3.client("s3")
    key = "again/render.png"
    s3.put_object(Bucket=prefilled, Key=key, Body=ai_png())
    run(stack, "backfill", f"s3://{prefilled}/again/", "--restart")
    QueueDriver(handler, quiet_queue).drain()
    table = boto3.resource("dynamodb").Table(stack.table)
    before = table.get_item(Key={"pk": f"{prefilled}/{key}", "sk": "null"})["Item"]

    result = run(stack, "reprocess", "--key", f"s3://{prefilled}/{key}", "--reason", "thresholds changed", "--yes")
    assert result.exit_code == 0, result.output
    bodies = drain_queue_bodies(quiet_queue)
    assert len(bodies) == 1 and bodies[0]["imageAnalysis"]["reprocess"]["reason"] == "thresholds changed"
    sqs = boto3.client("sqs")
    for _ in range(3):  # the same request delivered three times
        sqs.send_message(QueueUrl=quiet_queue, MessageBody=json.dumps(bodies[0]))
    QueueDriver(handler, quiet_queue).drain()
    after = table.get_item(Key={"pk": f"{prefilled}/{key}", "sk": "null"})["Item"]
    assert after["reprocess"]["reason"] == "thresholds changed"
    assert after["reprocess"]["id"] == bodies[0]["imageAnalysis"]["reprocess"]["id"]
    assert after["analyzed_at"] > before["analyzed_at"]
    # The same bytes and the same flags: the alert that went out stands, no second one under another id.
    assert after["alert_id"] == before["alert_id"]


def test_reconcile_finds_both_kinds_of_drift_and_can_enqueue_the_missing(stack, prefilled, quiet_queue, handler):
    s3 = boto3.client("s3")
    body = (SAMPLES / "skimage-rocket.jpg").read_bytes()
    for key in ("r/analyzed.jpg", "r/gone.jpg"):
        s3.put_object(Bucket=prefilled, Key=key, Body=body)
    run(stack, "backfill", f"s3://{prefilled}/r/", "--restart")
    QueueDriver(handler, quiet_queue).drain()
    s3.delete_object(Bucket=prefilled, Key="r/gone.jpg")
    s3.put_object(Bucket=prefilled, Key="r/new one.jpg", Body=body)

    report = run(stack, "reconcile", f"s3://{prefilled}/r/", "--json")
    assert report.exit_code == 1  # drift found
    data = json.loads(report.stdout)  # progress goes to standard error
    assert data["objects_without_result"] == [{"key": "r/new one.jpg", "version_id": None}]
    assert data["results_without_object"] == [{"key": "r/gone.jpg", "version_id": None}]
    assert data["stale_results"] == []

    fixed = run(stack, "reconcile", f"s3://{prefilled}/r/", "--enqueue")
    assert "Enqueued 1 object(s)" in fixed.output
    assert keys_of(drain_queue_bodies(quiet_queue)) == ["r/new one.jpg"]


def test_flagged_lists_newest_first_in_pages_and_find_groups_identical_bytes(stack, prefilled, quiet_queue, handler):
    s3 = boto3.client("s3")
    body = ai_png()
    keys = [f"f/{i}.png" for i in range(5)]
    for key in keys:
        s3.put_object(Bucket=prefilled, Key=key, Body=body)
        run(stack, "backfill", f"s3://{prefilled}/{key}", "--restart")
        QueueDriver(handler, quiet_queue).drain()  # one at a time: distinct analyzed_at, in key order
    first = run(stack, "flagged", "--flag", "ai_generated", "--limit", "3", "--json")
    assert first.exit_code == 0, first.output
    page = json.loads(first.stdout)
    ours = [row["key"] for row in page["items"] if row["bucket"] == prefilled]
    assert ours == ["f/4.png", "f/3.png", "f/2.png"]  # newest first
    second = json.loads(
        run(stack, "flagged", "--flag", "ai_generated", "--limit", "3", "--json", "--next", page["next"]).stdout
    )
    assert [r["key"] for r in second["items"] if r["bucket"] == prefilled][:2] == ["f/1.png", "f/0.png"]
    # Other tests share the table (and may flag images nsfw): none of this bucket's images is.
    listing = run(stack, "flagged", "--flag", "nsfw", "--since", "2026-01-01", "--limit", "1000", "--json")
    nsfw = json.loads(listing.stdout)
    assert [row["key"] for row in nsfw["items"] if row["bucket"] == prefilled] == []

    found = run(stack, "find", "--sha256", hashlib.sha256(body).hexdigest())
    for key in keys:
        assert f"s3://{prefilled}/{key}" in found.output


def test_results_prints_one_result(stack, prefilled, quiet_queue, handler):
    boto3.client("s3").put_object(Bucket=prefilled, Key="one.jpg", Body=(SAMPLES / "skimage-rocket.jpg").read_bytes())
    run(stack, "backfill", f"s3://{prefilled}/one.jpg", "--restart")
    QueueDriver(handler, quiet_queue).drain()
    shown = json.loads(run(stack, "results", f"s3://{prefilled}/one.jpg").stdout)
    assert shown["format"] == "jpeg" and shown["key"] == "one.jpg"
    assert "pk" not in shown and "seq" not in shown and "raw" not in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["results", "s3://no-such-bucket/x.jpg"], "no result for s3://no-such-bucket/x.jpg"),
        (["backfill", "photos/"], "is not an s3://bucket[/prefix] URL"),
        (["find", "--sha256", "abc"], "must be 64 hexadecimal digits"),
        (["reprocess", "--reason", "x", "--yes"], "choose objects"),
        (["reprocess", "--key", "s3://no-such-bucket/k.jpg", "--reason", "x", "--yes"], "does not exist"),
        (["backfill", "s3://no-such-bucket/photos/"], "NoSuchBucket"),
        (["backfill", "s3://no-such-bucket/photos/", "--dry-run"], "NoSuchBucket"),
        (["reconcile", "s3://no-such-bucket/"], "NoSuchBucket"),
        (["flagged", "--flag", "nsfw", "--next", "garbage"], "is not a token printed by a previous page"),
        (["--table", "no-such-table", "results", "s3://b/k.jpg"], "ResourceNotFoundException"),
    ],
)
def test_bad_arguments_and_missing_resources_give_a_clear_message(stack, args, message, monkeypatch, capsys):
    code = run_main(stack, *args, monkeypatch=monkeypatch)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_queue_that_refuses_messages_stops_the_backfill_with_one_line_and_it_resumes(
    stack, prefilled, tmp_path, monkeypatch, capsys
):
    from tests.unit.test_cli_arguments import RefusingQueue

    s3 = boto3.client("s3")
    for i in range(30):
        s3.put_object(Bucket=prefilled, Key=f"q/{i:02d}.jpg", Body=b"x")
    queue = RefusingQueue(accept=20)
    monkeypatch.setattr("image_analysis_cli.main.QueueSender", lambda url: enqueue.QueueSender(url, sqs_client=queue))
    state = tmp_path / "state.json"
    code = run_main(stack, "backfill", f"s3://{prefilled}/q/", "--state-file", str(state), monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "the queue refused 10 message(s) after 3 tries (Rate exceeded)" in err
    assert "run the same command again to resume" in err
    assert json.loads(state.read_text())["last_key"] == "q/19.jpg"

    queue.accept = 1000  # the queue is back
    assert run_main(stack, "backfill", f"s3://{prefilled}/q/", "--state-file", str(state), monkeypatch=monkeypatch) == 0
    assert sorted(keys_of([json.loads(b) for b in queue.received])) == [f"q/{i:02d}.jpg" for i in range(30)]


def test_an_unknown_stack_is_a_clear_error(monkeypatch, capsys, stack):
    monkeypatch.setattr("sys.argv", ["image-analysis", "--stack-name", "nope", "results", "s3://b/k"])
    from image_analysis_cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "stack 'nope' not found" in capsys.readouterr().err
