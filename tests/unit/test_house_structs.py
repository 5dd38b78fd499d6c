"""The house models as msgspec structs: built unchecked, checked where values come in, dumped as stored."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from image_analysis.models import AnalysisResult, BankMatch, Label, Moderation, ModerationCategory, Provenance, Review
from image_analysis.providers.base import ProviderOutput
from image_analysis.providers.fanout import combine
from image_analysis.structs import ValidationError, checked


def result(**overrides) -> AnalysisResult:
    return AnalysisResult(bucket="b", key="k", status="succeeded", analyzed_at="2026-12-07T00:00:00.000Z", **overrides)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        (Label(name="cat", confidence=1.5, provider="v"), "confidence"),
        (Label(name="cat", confidence=math.nan, provider="v"), "confidence"),
        (ModerationCategory(name="porn", confidence=0.9, provider="v", source_label="x"), "name"),  # type: ignore[arg-type]
        (BankMatch(bank="b", distance=300), "distance"),
        (Moderation(nsfw_score=0.5, categories=[{"name": "explicit"}]), "categories"),  # type: ignore[list-item]
    ],
)
def test_a_value_out_of_its_schema_is_refused_by_checked_naming_the_field(value, where):
    with pytest.raises(ValidationError, match=where):
        checked(value)


def test_checked_returns_a_fitting_value_and_each_of_a_list():
    labels = [Label(name="cat", confidence=0.5, provider="v"), Label(name="dog", confidence=1.0, provider="v")]
    assert checked(labels) is labels
    with pytest.raises(ValidationError):
        checked([*labels, Label(name="bad", confidence=-0.1, provider="v")])


def test_a_stored_item_with_dynamodb_decimals_reads_back_as_the_model():
    review = Review.model_validate({"status": "approved", "appeals": Decimal("2"), "decided_by": "arn:x"})
    assert (review.status, review.appeals, type(review.appeals)) == ("approved", 2, int)
    stored = result(labels=[Label(name="cat", confidence=0.873, provider="v")]).model_dump(exclude_none=True)
    stored["labels"][0]["confidence"] = Decimal("0.873")
    assert AnalysisResult.model_validate(stored).labels[0].confidence == pytest.approx(0.873)
    with pytest.raises(ValidationError, match="status"):
        AnalysisResult.model_validate({**stored, "status": "done"})
    with pytest.raises(ValidationError, match="unknown field"):
        AnalysisResult.model_validate({**stored, "colour": "red"})


def test_dumps_leave_out_nones_and_defaults_at_every_level_but_not_map_entries():
    item = result(
        answered_by={"labels": None, "moderation": "imagga"},
        provenance=Provenance(c2pa_manifest=True),
        labels=[Label(name="cat", confidence=0.5, provider="v")],
    )
    without_none = item.model_dump(exclude_none=True)
    assert "version_id" not in without_none and "error" not in without_none
    assert without_none["answered_by"] == {"labels": None, "moderation": "imagga"}
    assert without_none["attempts"] == 1 and without_none["schema_version"] == item.schema_version
    assert without_none["labels"] == [{"name": "cat", "confidence": 0.5, "provider": "v"}]
    assert item.provenance is not None
    assert item.provenance.model_dump(exclude_defaults=True) == {"c2pa_manifest": True}
    assert AnalysisResult.model_validate_json(item.model_dump_json(exclude_none=True)) == item


def test_combined_outputs_keep_each_section_an_output_set_and_every_raw_answer():
    tags = ProviderOutput(labels=[Label(name="cat", confidence=0.5, provider="v")], raw={"tags": {"a": 1}})
    nsfw = ProviderOutput(
        moderation=[ModerationCategory(name="safe", confidence=0.9, provider="v", source_label="safe")],
        raw={"nsfw": {"b": 2}},
    )
    merged = combine([tags, nsfw])
    assert merged.labels == tags.labels and merged.moderation == nsfw.moderation
    assert merged.raw == {"tags": {"a": 1}, "nsfw": {"b": 2}}
    assert merged.colors == [] and merged.quality is None
