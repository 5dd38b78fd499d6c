"""``make demo`` ends with the command line a newcomer would run: a backfill and a flagged listing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_ends_with_a_backfill_that_analyzes_nothing_twice_and_a_flagged_listing():
    # A process of its own, as `make demo` runs it from a shell: its own emulator, none of this session's
    # settings (the test stack's function environment is in this process's: REVIEW_MODE, RESULTS_TABLE, ...).
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "CI", "TERM")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("LC_")}
    done = subprocess.run(
        [sys.executable, "-m", "local.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    ending = out[out.index("$ image-analysis --stack-name image-analysis-local backfill s3://") :]
    uploads = len(re.findall(r"^uploads/", out[: out.index("Why uploads were rejected")], re.MULTILINE))
    assert uploads == 15
    assert f"Enqueued {uploads} object(s) from s3://" in ending
    drained = f"{uploads} message(s) from the queue: 0 analyzed again, {uploads} acknowledged as already analyzed"
    assert drained in ending
    listing = ending[ending.index("$ image-analysis --stack-name image-analysis-local flagged --flag ai_generated") :]
    flagged = [line for line in listing.splitlines()[1:] if "  ai_generated  s3://" in line]
    assert [line.rsplit("/uploads/", 1)[1] for line in flagged] == ["stable-diffusion render.png"]
    assert not list(ROOT.glob(".image-analysis/backfill-image-uploads-*"))  # progress kept out of the work tree
