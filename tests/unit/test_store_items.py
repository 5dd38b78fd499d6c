"""What reaches DynamoDB: Decimal numbers, no NaN, far below 400 KB whatever a vendor returns."""

from __future__ import annotations

import json
import math
import random
import string
from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer

from image_analysis.merge import MAX_LABELS, merged_sections, pack_raw
from image_analysis.models import AnalysisResult, Label, Quality
from image_analysis.providers.base import ProviderOutput
from image_analysis.store import from_item, to_item
from image_analysis.structs import ValidationError

ITEM_LIMIT = 400 * 1024


def item_size(item) -> int:
    """DynamoDB's item size: attribute names plus values, approximated by their serialized JSON."""
    serialized = {k: TypeSerializer().serialize(v) for k, v in item.items()}
    return len(json.dumps(serialized, default=str).encode())


def result(**overrides) -> AnalysisResult:
    return AnalysisResult(bucket="b", key="k", status="succeeded", analyzed_at="2026-11-22T00:00:00.000Z", **overrides)


def test_floats_become_decimal_and_round_trip():
    item = to_item(result(labels=[Label(name="cat", confidence=0.873, provider="imagga")]), "0" * 32)
    assert item["labels"][0]["confidence"] == Decimal("0.873")
    assert (item["pk"], item["sk"]) == ("b/k", "null")
    assert from_item(item)["labels"][0]["confidence"] == pytest.approx(0.873)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_before_they_reach_the_table(bad):
    with pytest.raises(ValidationError, match=r"quality\.sharpness"):
        to_item(result(quality=Quality(sharpness=bad, provider="builtin")), "0" * 32)


def test_a_huge_vendor_answer_never_pushes_the_item_near_400_kb():
    rng = random.Random(1)
    noise = "".join(rng.choice(string.ascii_letters) for _ in range(2_000_000))  # incompressible, ~2 MB
    many_labels = [
        Label(name=f"label-{i}-{noise[i : i + 40]}", confidence=rng.random(), provider="v") for i in range(5000)
    ]
    sections = merged_sections([ProviderOutput(labels=many_labels)])
    assert len(sections["labels"]) == MAX_LABELS
    raw = pack_raw({"vendor": {"blob": noise}, "small": {"ok": True}}, budget_bytes=100_000)
    item = to_item(result(raw=raw, **{k: v for k, v in sections.items() if v is not None}), "0" * 32)
    assert item["raw"]["vendor"] == {"omitted_bytes": pytest.approx(2_000_000, rel=0.3)}
    assert "small" in item["raw"] and isinstance(item["raw"]["small"], str)
    assert item_size(item) < ITEM_LIMIT / 2


def test_a_flagged_item_round_trips_to_the_contract_without_store_attributes():
    from image_analysis.models import AIGenerated
    from image_analysis.store import result_of

    flagged = result(flags=["ai_generated"], ai_generated=AIGenerated(verdict="ai", confidence=0.9, provider="builtin"))
    item = to_item(flagged, "0" * 32, expires_at=123)
    assert item["flag_ai_generated"] == "2026-11"  # the sparse index key: the month it was flagged
    assert "flag_nsfw" not in item
    assert result_of(item) == flagged
