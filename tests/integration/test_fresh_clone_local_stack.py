"""``make local-stack`` in a fresh clone, as a newcomer runs it: set-up included, then an upload analyzed.

The clone is of what is committed. ``make local-stack`` sets itself up (``.venv``, DynamoDB Local), a
plain client uploads and waits for the result through the same endpoint, and the stack is stopped once
by SIGTERM to make and once by Ctrl-C (SIGINT to its process group): each time python and DynamoDB
Local's JVM are gone.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from local.emulator import free_port
from tests.integration.localstack_process import LocalStackProcess, running
from tests.integration.test_local_stack import plain_client, wait_for_item

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def stopped(stack: LocalStackProcess, sig: int, whole_group: bool) -> None:
    python, below = stack.python_and_jvm()
    assert below, "DynamoDB Local's JVM runs under python"
    if whole_group:
        stack.stop(sig)
    else:
        stack.process.send_signal(sig)
        stack.process.wait(60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(running(pid) for pid in (python, *below)):
        time.sleep(0.2)
    assert not [pid for pid in (python, *below) if running(pid)], stack.output[-2000:]
    assert "Stopped: the endpoint, DynamoDB Local and the sandboxes are down." in stack.output


def test_make_local_stack_in_a_fresh_clone_analyzes_an_upload(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    stack = LocalStackProcess(clone, free_port())
    try:
        stack.wait_for("one line per object below", timeout=900)  # set-up included
        bucket = next(line.split()[1] for line in stack.lines if line.strip().startswith("UploadsBucketName"))
        table = next(line.split()[1] for line in stack.lines if line.strip().startswith("ResultsTableName"))
        plain_client("s3", stack.endpoint).put_object(
            Bucket=bucket, Key="first/upload.jpg", Body=(ROOT / "samples" / "skimage-rocket.jpg").read_bytes()
        )
        item = wait_for_item(plain_client("dynamodb", stack.endpoint), table, f"{bucket}/first/upload.jpg")
        assert item["status"]["S"] == "succeeded" and item["format"]["S"] == "jpeg"
        stopped(stack, signal.SIGTERM, whole_group=False)
    finally:
        stack.stop(signal.SIGKILL)
    again = LocalStackProcess(clone, free_port())
    try:
        again.wait_for("one line per object below", timeout=300)
        stopped(again, signal.SIGINT, whole_group=True)
    finally:
        again.stop(signal.SIGKILL)
