"""``make demo`` says what happened: when objects end without a result, it says which, and exits non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from local.emulator import free_port
from tests.integration.localstack_process import clean_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_a_vendor_that_never_answers_leaves_objects_without_a_result_and_the_demo_fails():
    # Imagga's keys are given, but nothing listens where it is sent: every call fails as a transient
    # fault, each image is handed back until the queue moves it to the dead-letter queue.
    unreachable = f"http://127.0.0.1:{free_port()}"
    env = clean_env(
        PROVIDERS="builtin,imagga",
        IMAGGA_API_KEY="k",
        IMAGGA_API_SECRET="s",
        IMAGGA_BASE_URL=unreachable,
        HTTP_MAX_ATTEMPTS="1",
        RETRY_BASE_DELAY_SECONDS="0.01",
    )
    done = subprocess.run(
        [sys.executable, "-m", "local.demo"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    first = next(line for line in out.splitlines() if line.startswith("  the pipeline took"))
    assert "0 analyzed, " not in first and "deliveries handed back for retry" in first, first
    assert "12 moved to the dead-letter queue" in first, first
    ended = done.stderr.strip().splitlines()[-1]
    assert ended.startswith("Objects that ended without a result: [") and "uploads/rocket.jpg" in ended, ended
    assert "uploads/empty.png" not in ended, "a rejected upload has its result"
