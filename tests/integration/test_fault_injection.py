"""Nothing lost, nothing doubled, under a flaky vendor (429s with and without Retry-After among the
faults) and duplicated (some in the same batch), reordered events (local.faultrun)."""

from __future__ import annotations

import os

import pytest

from local.faultrun import run

pytestmark = pytest.mark.integration

UPLOADS = int(os.environ.get("FAULT_RUN_UPLOADS", "500"))


def test_every_upload_is_accounted_for_exactly_once_under_30_percent_vendor_faults():
    report = run(uploads=UPLOADS, fault_rate=0.3)
    print("\n" + report.table())
    # The run really was hostile: about 30% of vendor requests faulted, of every kind, and events repeated.
    faults = sum(report.faults_injected.values())
    assert 0.2 < faults / report.vendor_requests < 0.4
    assert set(report.faults_injected) == {
        "rate_limit",
        "rate_limit_retry_after",
        "server_error",
        "unavailable",
        "slow",
        "drop",
        "malformed",
    }
    assert report.duplicate_events > 0 and report.reordered_pairs > 0
    # Some copies of one event arrived in the same batch and ran at the same time.
    assert report.same_batch_duplicates > 0
    # Every upload ended as a result or in the dead-letter queue with its reason on the item.
    assert report.missing_results == []
    assert report.failed_without_dead_letter == []
    assert report.dead_letter_without_item == []
    finals = sum(report.outcomes.get(s, 0) for s in ("succeeded", "partial", "skipped"))
    assert finals + report.outcomes.get("failed", 0) == report.uploads
    assert report.outcomes.get("failed", 0) <= report.dead_letter_messages
    # Nothing doubled.
    assert report.duplicate_results == 0
    assert report.duplicate_alerts == 0
    assert report.alerts == report.flagged_results > 0
