"""``make demo``'s last act, run in this session's stack: one flagged upload approved and another rejected
with the command line, applied by the review function, and the audit history shown."""

from __future__ import annotations

import io

import boto3
import pytest

from local import demo
from local.driver import QueueDriver
from tests.integration.review_support import MODERATOR

pytestmark = pytest.mark.integration


def test_the_demo_ends_by_approving_one_flagged_upload_and_rejecting_another(
    stack, review, handler, monkeypatch, capsys
):
    # The demo's stack has ReviewMode=flagged and QuarantineTags=true; this session's has the defaults, so
    # its environment says so here, and the walkthrough keeps it (the review fixture configured the rest).
    for name, value in {"REVIEW_MODE": "flagged", "QUARANTINE_TAGS": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("local.review_stack.configure_review_env", lambda review: None)
    render = demo.generated_uploads()[demo.APPROVED_KEY]
    boto3.client("s3").put_object(Bucket=stack.bucket, Key=demo.APPROVED_KEY, Body=render)
    QueueDriver(handler, stack.queue_urls).drain()
    out = io.StringIO()

    assert demo.review_walkthrough(stack, handler, out) == 0

    told = out.getvalue()
    printed = capsys.readouterr().out
    approved, rejected = (f"s3://{stack.bucket}/{key}" for key in (demo.APPROVED_KEY, demo.REJECTED_KEY))
    assert f"approved: {approved} by {MODERATOR}" in printed
    assert f"rejected: {rejected} by {MODERATOR}" in printed
    after = told[told.index("applied") :]
    assert f"{demo.APPROVED_KEY}: tags (none)" in after
    assert f"{demo.REJECTED_KEY}: tags moderation=flagged, flags=ai_generated" in after
    assert f"approve   pending -> approved  by {MODERATOR}" in printed
    assert f"reject    pending -> rejected  by {MODERATOR}  'not for this site'" in printed
