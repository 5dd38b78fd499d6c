"""Keys that would drive a terminal (escape sequences, a carriage return, a right-to-left override, a C1
control) reach the operator escaped, in every listing the command prints, and unchanged in its JSON."""

from __future__ import annotations

import hashlib
import json
import uuid

import boto3
import pytest
from click.testing import CliRunner

from image_analysis_cli.main import cli
from local.driver import QueueDriver
from local.stack import empty_queue
from tests.integration.conftest import SAMPLES, ai_png

pytestmark = pytest.mark.integration

AI = ai_png()
KEYS = {
    # Sets the window title, then clears the screen.
    "t/\x1b]0;owned\x07\x1b[2Jai.png": AI,
    # Prints "t/fake.jpg" over its own start.
    "t/real\rt/fake.jpg": (SAMPLES / "skimage-rocket.jpg").read_bytes(),
    # Shows as "t/exe.jpg" read backwards; and an 8-bit CSI.
    "t/\u202egpj.exe": (SAMPLES / "skimage-coffee.png").read_bytes(),
    "t/\x9b31mred.png": AI,
}
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def run(stack, *args) -> str:
    """What the command printed on standard output; standard error (progress, errors) must be safe too."""
    result = CliRunner().invoke(cli, ["--stack-name", stack.name, *args], catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    assert_terminal_safe(result.stderr)
    return result.stdout


@pytest.fixture
def hostile_bucket(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ANALYSIS_STATE_DIR", str(tmp_path / "state"))
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    for key, body in KEYS.items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    for url in stack.queue_urls:
        empty_queue(url)
    yield name
    for url in stack.queue_urls:
        empty_queue(url)


def assert_terminal_safe(output: str) -> None:
    assert not [c for c in RAW_CONTROLS if c in output], repr(output)


def test_every_listing_prints_hostile_keys_escaped(stack, hostile_bucket, handler):
    bucket = hostile_bucket
    drift = run(stack, "reconcile", f"s3://{bucket}/t/")
    assert_terminal_safe(drift)
    assert "t/\\x1b]0;owned\\x07\\x1b[2Jai.png" in drift
    assert "t/real\\rt/fake.jpg" in drift and "t/\\u202egpj.exe" in drift and "t/\\x9b31mred.png" in drift

    report = run(stack, "reconcile", f"s3://{bucket}/t/", "--json")
    assert_terminal_safe(report)
    listed = {entry["key"] for entry in json.loads(report)["objects_without_result"]}
    assert listed == set(KEYS)  # the JSON still holds the keys as they are

    assert_terminal_safe(run(stack, "backfill", f"s3://{bucket}/t/"))
    QueueDriver(handler, stack.queue_urls).drain()

    found = run(stack, "find", "--sha256", hashlib.sha256(AI).hexdigest())
    assert_terminal_safe(found)
    assert f"s3://{bucket}/t/\\x1b]0;owned\\x07\\x1b[2Jai.png" in found
    assert f"s3://{bucket}/t/\\x9b31mred.png" in found

    flagged = run(stack, "flagged", "--flag", "ai_generated", "--limit", "1000")
    assert_terminal_safe(flagged)
    assert f"s3://{bucket}/t/\\x9b31mred.png" in flagged

    for key in KEYS:
        shown = run(stack, "results", f"s3://{bucket}/{key}")
        assert_terminal_safe(shown)
        assert json.loads(shown)["key"] == key
