"""The command line run by a script: an estimate for two images, and reprocess without --yes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from image_analysis_cli.main import cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def test_a_dry_run_for_two_images_prices_them_to_the_tenth_of_a_cent(stack, s3, prefix):
    for name in ("skimage-rocket.jpg", "skimage-coffee.png"):
        s3.put_object(Bucket=stack.bucket, Key=f"{prefix}{name}", Body=(SAMPLES / name).read_bytes())
    args = ["backfill", f"s3://{stack.bucket}/{prefix}", "--dry-run", "--price", "imagga=0.002"]
    done = CliRunner().invoke(cli, ["--stack-name", stack.name, *args])
    assert done.exit_code == 0, done.output
    assert "imagga: 2 image(s) x $0.002 = $0.004" in done.output
    assert "Estimated vendor cost: $0.004 (before cache hits)" in done.output


def test_reprocess_without_yes_and_without_a_terminal_says_to_pass_yes(stack, s3, prefix, drain):
    key = f"{prefix}rocket.jpg"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=(SAMPLES / "skimage-rocket.jpg").read_bytes())
    drain()
    target = ["--key", f"s3://{stack.bucket}/{key}", "--reason", "new threshold"]
    done = subprocess.run(
        [sys.executable, "-m", "image_analysis_cli.main", "--stack-name", stack.name, "reprocess", *target],
        cwd=ROOT,
        env=os.environ.copy(),  # this session's emulator
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: reprocess asks before sending 1 object(s), and standard input gave no answer: "
        "pass --yes to send them without asking"
    )
    assert "Aborted" not in done.stderr
