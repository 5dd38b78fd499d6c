"""Merging provider answers and deciding flags: the rules subscribers rely on."""

from __future__ import annotations

import pytest

from image_analysis.merge import (
    Thresholds,
    decide_flags,
    merge_ai_generated,
    merge_moderation,
    merged_sections,
    overall_status,
    pack_raw,
    unpack_raw,
)
from image_analysis.models import AIGenerated, Deepfake, Label, ModerationCategory, ProviderRun
from image_analysis.providers.base import ProviderOutput
from image_analysis.settings import Settings


def category(name, confidence, provider="imagga", source=None):
    return ModerationCategory(name=name, confidence=confidence, provider=provider, source_label=source or name)


def test_nsfw_score_is_the_highest_explicit_confidence_across_providers():
    outputs = [
        ProviderOutput(moderation=[category("explicit", 0.42), category("safe", 0.58)]),
        ProviderOutput(moderation=[category("explicit", 0.91, "aiornot"), category("suggestive", 0.97, "aiornot")]),
    ]
    moderation = merge_moderation(outputs)
    assert moderation.nsfw_score == pytest.approx(0.91)
    assert [c.confidence for c in moderation.categories] == sorted(
        [c.confidence for c in moderation.categories], reverse=True
    )


def test_no_moderation_answer_is_none_not_zero():
    assert merge_moderation([ProviderOutput(), ProviderOutput()]) is None


def test_unknown_never_overrides_a_decided_verdict():
    unknown = AIGenerated(verdict="unknown", evidence=["no provenance metadata"], provider="builtin")
    human = AIGenerated(verdict="human", confidence=0.1, provider="aiornot")
    merged = merge_ai_generated([ProviderOutput(ai_generated=unknown), ProviderOutput(ai_generated=human)])
    assert merged.verdict == "human" and merged.provider == "aiornot"


def test_most_confident_decided_verdict_wins():
    ai = AIGenerated(verdict="ai", confidence=0.99, provider="builtin", evidence=["c2pa"])
    human = AIGenerated(verdict="human", confidence=0.3, provider="aiornot")
    assert (
        merge_ai_generated([ProviderOutput(ai_generated=human), ProviderOutput(ai_generated=ai)]).provider == "builtin"
    )


@pytest.mark.parametrize(
    ("nsfw", "categories", "expected"),
    [
        (0.79, {}, []),
        (0.80, {}, ["nsfw"]),  # the threshold itself flags
        (0.10, {"suggestive": 0.95}, []),
        (0.10, {"suggestive": 0.90}, ["nsfw"]),  # per-category threshold reached
    ],
)
def test_nsfw_flag_thresholds(nsfw, categories, expected):
    outputs = [ProviderOutput(moderation=[category("explicit", nsfw), category("suggestive", 0.93)])]
    flags = decide_flags(merge_moderation(outputs), None, None, Thresholds(nsfw=0.8, categories=categories))
    assert flags == expected


@pytest.mark.parametrize(
    ("explicit", "suggestive", "categories", "expected"),
    [
        # A category's own threshold replaces NSFW_THRESHOLD (0.8 here) for it: a higher bar holds.
        (0.90, 0.10, {"explicit": 0.95}, []),
        (0.96, 0.10, {"explicit": 0.95}, ["nsfw"]),
        (0.50, 0.10, {"explicit": 0.4}, ["nsfw"]),  # and a lower one flags earlier
        # Categories without their own threshold: explicit keeps NSFW_THRESHOLD, the others do not flag.
        (0.85, 0.10, {"suggestive": 0.99}, ["nsfw"]),
        (0.10, 0.97, {}, []),
        (0.90, 0.93, {"explicit": 0.95, "suggestive": 0.9}, ["nsfw"]),  # suggestive reached its own
        (0.90, 0.93, {"explicit": 0.95, "suggestive": 0.95}, []),
    ],
)
def test_per_category_thresholds_are_overrides_not_extra_lower_bars(explicit, suggestive, categories, expected):
    outputs = [ProviderOutput(moderation=[category("explicit", explicit), category("suggestive", suggestive)])]
    flags = decide_flags(merge_moderation(outputs), None, None, Thresholds(nsfw=0.8, categories=categories))
    assert flags == expected


def test_a_safe_category_never_flags_nsfw():
    outputs = [ProviderOutput(moderation=[category("safe", 0.99), category("explicit", 0.01)])]
    assert decide_flags(merge_moderation(outputs), None, None, Thresholds(categories={"safe": 0.5})) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("explict:0.9", "MODERATION_THRESHOLDS names 'explict'"),
        ("safe:0.5", "MODERATION_THRESHOLDS names 'safe'"),
        ("explicit:1.5", "MODERATION_THRESHOLDS explicit must be between 0 and 1"),
    ],
)
def test_moderation_thresholds_that_could_never_work_are_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "MODERATION_THRESHOLDS": raw})


def test_ai_and_deepfake_flags():
    thresholds = Thresholds(ai_generated=0.8, deepfake=0.8)
    ai_low = AIGenerated(verdict="ai", confidence=0.6, provider="aiornot")
    ai_free_tier = AIGenerated(verdict="ai", confidence=None, provider="aiornot")
    deepfake = Deepfake(detected=True, confidence=0.85, provider="aiornot")
    assert decide_flags(None, ai_low, None, thresholds) == []
    assert decide_flags(None, ai_free_tier, deepfake, thresholds) == ["ai_generated", "deepfake"]
    assert decide_flags(None, None, Deepfake(detected=False, confidence=0.9, provider="x"), thresholds) == []


def test_thresholds_come_from_settings():
    settings = Settings.from_env(
        {
            "RESULTS_TABLE": "t",
            "ALERTS_TOPIC_ARN": "a",
            "NSFW_THRESHOLD": "0.6",
            "MODERATION_THRESHOLDS": "explicit:0.5, suggestive:0.95",
        }
    )
    thresholds = Thresholds.from_settings(settings)
    assert thresholds.nsfw == 0.6
    assert thresholds.categories == {"explicit": 0.5, "suggestive": 0.95}


def test_labels_from_all_providers_highest_first():
    outputs = [
        ProviderOutput(labels=[Label(name="cat", confidence=0.7, provider="imagga")]),
        ProviderOutput(labels=[Label(name="sofa", confidence=0.9, provider="other")]),
    ]
    assert [lab.name for lab in merged_sections(outputs)["labels"]] == ["sofa", "cat"]


def test_status_partial_when_a_provider_had_no_answer():
    ok = ProviderRun(name="builtin", status="succeeded", latency_ms=3)
    failed = ProviderRun(name="imagga", status="failed", latency_ms=10)
    assert overall_status([ok]) == "succeeded"
    assert overall_status([ok, failed]) == "partial"


def test_raw_answers_round_trip_and_respect_the_budget():
    small = {"result": {"tags": [{"tag": {"en": "cat"}, "confidence": 80.1}]}}
    big = {"blob": [f"{i:x}" * 50 for i in range(5000)]}
    packed = pack_raw({"imagga": small, "huge": big}, budget_bytes=2000)
    assert unpack_raw(packed["imagga"]) == small
    assert packed["huge"]["omitted_bytes"] > 2000


@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc"])
def test_bad_threshold_settings_fail_with_the_variable_name(value):
    with pytest.raises(ValueError, match="NSFW_THRESHOLD"):
        Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "NSFW_THRESHOLD": value})


def test_builtin_always_runs_and_the_order_named_is_kept_for_the_merges_tie_break():
    def providers(raw: str) -> tuple[str, ...]:
        return Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "PROVIDERS": raw}).providers

    assert providers(" Imagga,imagga , builtin") == ("imagga", "builtin")
    assert providers("aiornot,imagga") == ("builtin", "aiornot", "imagga")  # not named: first
