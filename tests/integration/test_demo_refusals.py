"""``make demo`` with a setting the function would refuse stops before it starts anything: one line, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.localstack_process import clean_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["PROVIDERS=imaga"], "unknown provider 'imaga'; known providers: aiornot, builtin, coreviz, imagerecognize"),
        (["ROUTING=labels=imagga,nobody"], "ROUTING names unknown provider(s) nobody for labels"),
        (["ROUTING=faces=imagga", "SANDBOX=1"], "ROUTING asks imagga for faces, but imagga has it switched off"),
        (["NSFW_THRESHOLD=1.5"], "NSFW_THRESHOLD='1.5' (template parameter NsfwThreshold) is refused by the template"),
        (["MODERATION_THRESHOLDS=explicit:2"], "MODERATION_THRESHOLDS explicit must be between 0 and 1, got '2'"),
        (
            ["PROVIDERS=builtin,imagga"],
            "imagga needs IMAGGA_API_KEY and IMAGGA_API_SECRET in the environment, or SANDBOX=1 to use the local "
            "vendor sandbox",
        ),
        (["PROVIDERS=aiornot"], "aiornot needs AIORNOT_API_KEY in the environment, or SANDBOX=1"),
        (["PROVIDERS=rekognition"], "rekognition needs AWS: the local emulator has no Rekognition. Run with SANDBOX=1"),
    ],
)
def test_a_configuration_error_stops_the_demo_before_anything_is_uploaded(settings, message):
    done = subprocess.run(
        ["make", "--no-print-directory", "demo", *settings],
        cwd=ROOT,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    refusals = [line for line in done.stderr.splitlines() if line.startswith("make demo: ")]
    assert len(refusals) == 1 and message in refusals[0], done.stderr
    assert "Traceback" not in done.stderr
    # Nothing started, nothing uploaded: the demo printed nothing of its own.
    assert "emulator" not in done.stdout and "Uploaded" not in done.stdout, done.stdout
