"""Merge what every provider found into one result, and decide the flags by thresholds.

Pure functions: no AWS, no HTTP. The rules a subscriber relies on live here:
- labels from every provider, highest confidence first, bounded;
- ``moderation.nsfw_score`` is the highest confidence among ``explicit`` categories;
- an ``unknown`` AI verdict never overrides a provider's ``ai`` or ``human``;
- a flag is raised when a score reaches its threshold (``>=``).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from image_analysis.models import (
    AIGenerated,
    Deepfake,
    Flag,
    Moderation,
    ModerationCategory,
    ProviderRun,
)
from image_analysis.providers.base import ProviderOutput
from image_analysis.settings import Settings

MAX_LABELS = 50
MAX_LIST = 100


@dataclass(frozen=True)
class Thresholds:
    nsfw: float = 0.8
    ai_generated: float = 0.8
    deepfake: float = 0.8
    # Per house category, e.g. {"explicit": 0.8, "suggestive": 0.95}; any of them reached flags nsfw.
    categories: dict[str, float] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            nsfw=settings.nsfw_threshold,
            ai_generated=settings.ai_generated_threshold,
            deepfake=settings.deepfake_threshold,
            categories=dict(settings.moderation_thresholds),
        )


def merge_moderation(outputs: Sequence[ProviderOutput]) -> Moderation | None:
    categories: list[ModerationCategory] = []
    answered = False
    for output in outputs:
        if output.moderation is not None:
            answered = True
            categories.extend(output.moderation)
    if not answered:
        return None
    categories.sort(key=lambda c: c.confidence, reverse=True)
    nsfw_score = max((c.confidence for c in categories if c.name == "explicit"), default=0.0)
    return Moderation(nsfw_score=nsfw_score, categories=categories[:MAX_LIST])


def merge_ai_generated(outputs: Sequence[ProviderOutput]) -> AIGenerated | None:
    verdicts = [o.ai_generated for o in outputs if o.ai_generated is not None]
    if not verdicts:
        return None
    decided = [v for v in verdicts if v.verdict != "unknown"]
    if not decided:
        # Keep every piece of evidence even when nobody could decide.
        evidence = [e for v in verdicts for e in v.evidence]
        return verdicts[0].model_copy(update={"evidence": evidence})
    # The most confident decided verdict wins; a missing confidence (a vendor's free tier) ranks last.
    return max(decided, key=lambda v: -1.0 if v.confidence is None else v.confidence)


def merge_deepfake(outputs: Sequence[ProviderOutput]) -> Deepfake | None:
    found = [o.deepfake for o in outputs if o.deepfake is not None]
    return max(found, key=lambda d: d.confidence) if found else None


def decide_flags(
    moderation: Moderation | None,
    ai_generated: AIGenerated | None,
    deepfake: Deepfake | None,
    thresholds: Thresholds,
) -> list[Flag]:
    flags: list[Flag] = []
    if moderation is not None:
        per_category = thresholds.categories or {}
        over_category = any(
            c.confidence >= per_category[c.name] for c in moderation.categories if c.name in per_category
        )
        if moderation.nsfw_score >= thresholds.nsfw or over_category:
            flags.append("nsfw")
    # A vendor that says "ai" without a confidence (free tiers) is taken at its word.
    if (
        ai_generated is not None
        and ai_generated.verdict == "ai"
        and (ai_generated.confidence is None or ai_generated.confidence >= thresholds.ai_generated)
    ):
        flags.append("ai_generated")
    if deepfake is not None and deepfake.detected and deepfake.confidence >= thresholds.deepfake:
        flags.append("deepfake")
    return flags


def pack_raw(raw_by_provider: dict[str, Any], budget_bytes: int) -> dict[str, Any]:
    """Vendor answers as base64 of zlib-compressed JSON, smallest first, within the item budget.

    What does not fit is recorded by size, so the item never nears DynamoDB's 400 KB limit.
    """
    packed: dict[str, Any] = {}
    encoded = {
        name: base64.b64encode(zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 9)).decode()
        for name, value in raw_by_provider.items()
        if value
    }
    used = 0
    for name, blob in sorted(encoded.items(), key=lambda kv: len(kv[1])):
        if used + len(blob) <= budget_bytes:
            packed[name] = blob
            used += len(blob)
        else:
            packed[name] = {"omitted_bytes": len(blob)}
    return packed


def unpack_raw(blob: str) -> Any:
    return json.loads(zlib.decompress(base64.b64decode(blob)))


def merged_sections(outputs: Sequence[ProviderOutput]) -> dict[str, Any]:
    """Every list section concatenated and ordered; single sections from the first provider with one."""
    sections: dict[str, Any] = {}
    labels = sorted((lab for o in outputs for lab in o.labels), key=lambda lab: lab.confidence, reverse=True)
    sections["labels"] = labels[:MAX_LABELS]
    for name in ("objects", "faces", "celebrities", "text", "alt_texts", "colors"):
        items = [item for o in outputs for item in getattr(o, name)]
        if name in ("objects", "faces", "celebrities", "alt_texts"):
            items.sort(key=lambda item: item.confidence, reverse=True)
        sections[name] = items[:MAX_LIST]
    for name in ("classification", "quality", "provenance"):
        sections[name] = next((getattr(o, name) for o in outputs if getattr(o, name) is not None), None)
    sections["moderation"] = merge_moderation(outputs)
    sections["ai_generated"] = merge_ai_generated(outputs)
    sections["deepfake"] = merge_deepfake(outputs)
    return sections


def overall_status(runs: Sequence[ProviderRun]) -> str:
    """``partial`` when any provider had no answer: a capability the user configured is missing."""
    return "succeeded" if all(r.status in ("succeeded", "cached") for r in runs) else "partial"
