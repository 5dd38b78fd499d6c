"""The backfill estimate shows what a small job costs, never $0.00 for a price that is not zero."""

from __future__ import annotations

import pytest

from image_analysis_cli.main import usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (2 * 0.002, "$0.004"),
        (3 * 0.0012, "$0.0036"),
        (0.0, "$0.00"),
        (0.0123, "$0.01"),
        (4.0, "$4.00"),
        (1234.5, "$1,234.50"),
    ],
)
def test_dollars(amount, shown):
    assert usd(amount) == shown
