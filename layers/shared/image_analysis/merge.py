"""Merge what every provider found into one result, and decide the flags by thresholds.

Pure functions: no AWS, no HTTP. The rules a subscriber relies on live here:
- labels from every provider, highest confidence first, bounded;
- ``moderation.nsfw_score`` is the highest confidence among ``explicit`` categories;
- an ``unknown`` AI verdict never overrides a provider's ``ai`` or ``human``; among decided verdicts the
  most certain wins (``max(c, 1 - c)``: ``confidence`` is the chance that the image is AI-made), a tie
  going to the provider named first;
- a flag is raised when a score reaches its threshold (``>=``); a provider whose verdict is its own
  decision (``Provider.verdict_decides``: AI or Not) flags ``ai_generated`` at its word.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from image_analysis.models import (
    AIGenerated,
    AnalysisResult,
    Deepfake,
    Flag,
    Moderation,
    ModerationCategory,
    ProviderRun,
)
from image_analysis.providers.base import Provider, ProviderOutput
from image_analysis.settings import Settings
from image_analysis.structs import HouseModel

MAX_LABELS = 50
MAX_LIST = 100


@dataclass(frozen=True)
class Keep:
    """What a result item keeps: most of its size, hence of what each write costs, is labels and raw answers.

    ``labels_max`` labels at least ``labels_floor`` confident (LABELS_MAX, LABELS_MIN_CONFIDENCE): a
    vendor's long tail of 7% tags is what nobody searches for. ``raw`` (RAW_ANSWERS): the vendors' own
    answers for ``flagged`` results only (default; what a reviewer or a re-normalization needs), ``all``
    results, or ``none``."""

    labels_max: int = 20
    labels_floor: float = 0.3
    raw: str = "flagged"

    def labels(self, labels: list[Any]) -> list[Any]:
        return [label for label in labels if label.confidence >= self.labels_floor][: self.labels_max]

    def raw_for(self, flags: Sequence[str]) -> bool:
        return self.raw == "all" or (self.raw == "flagged" and bool(flags))

    def raw_for_answer(self, output: ProviderOutput, thresholds: Thresholds) -> bool:
        """Whether one provider's answer, cached for later images of the same bytes, keeps its raw part:
        with ``flagged``, when that answer alone reaches a threshold."""
        if self.raw != "flagged":
            return self.raw == "all"
        outputs = [output]
        return bool(
            decide_flags(merge_moderation(outputs), merge_ai_generated(outputs), merge_deepfake(outputs), thresholds)
        )

    def cached(self, output: ProviderOutput, thresholds: Thresholds) -> ProviderOutput:
        """What the content cache keeps of one provider's answer: the labels a result would keep of it (the
        top ``labels_max`` of several answers are among their own top ``labels_max`` each, so a result
        merged from cached answers keeps the same labels), and its raw part as ``raw_for_answer`` says."""
        update: dict[str, Any] = {"labels": self.labels(output.labels)}
        if not self.raw_for_answer(output, thresholds):
            update["raw"] = {}
        return output.model_copy(update=update)

    def fingerprint(self) -> str:
        """What the cache key must change with: an answer cached under other label settings kept other labels."""
        return f"labels {self.labels_max} >= {self.labels_floor}"


@dataclass(frozen=True)
class Thresholds:
    nsfw: float = 0.8
    ai_generated: float = 0.8
    deepfake: float = 0.8
    # Per-category overrides, e.g. {"explicit": 0.95, "suggestive": 0.9} (MODERATION_THRESHOLDS). See
    # ``nsfw_reached`` for which category is held to which bar.
    categories: dict[str, float] | None = None
    # Bars for one provider's own labels, {(provider, source label, lower case): t}: ``aiornot.nsfw:0.5``.
    labels: dict[tuple[str, str], float] | None = None
    # Providers whose AI verdict is their decision, whatever its confidence (Provider.verdict_decides).
    verdict_decides: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings, providers: Iterable[Provider] = ()) -> Thresholds:
        """``providers``: the configured adapters, whose ``verdict_decides`` says how their AI verdicts count."""
        return cls(
            nsfw=settings.nsfw_threshold,
            ai_generated=settings.ai_generated_threshold,
            deepfake=settings.deepfake_threshold,
            categories=dict(settings.moderation_thresholds),
            labels=dict(settings.label_thresholds),
            verdict_decides=frozenset(p.name for p in providers if p.verdict_decides),
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


def certainty(verdict: AIGenerated) -> float:
    """How sure a decided verdict is, whichever way it goes; a missing confidence (a free tier's verdict
    without a score) ranks last."""
    return -1.0 if verdict.confidence is None else max(verdict.confidence, 1.0 - verdict.confidence)


def merge_ai_generated(outputs: Sequence[ProviderOutput]) -> AIGenerated | None:
    verdicts = [o.ai_generated for o in outputs if o.ai_generated is not None]
    if not verdicts:
        return None
    decided = [v for v in verdicts if v.verdict != "unknown"]
    if not decided:
        # Keep every piece of evidence even when nobody could decide.
        evidence = [e for v in verdicts for e in v.evidence]
        return verdicts[0].model_copy(update={"evidence": evidence})
    # The most certain decided verdict wins, "human" as well as "ai"; ``max`` keeps the first of equals, and
    # outputs come in the order PROVIDERS names them (builtin first unless named elsewhere).
    return max(decided, key=certainty)


def merge_deepfake(outputs: Sequence[ProviderOutput]) -> Deepfake | None:
    found = [o.deepfake for o in outputs if o.deepfake is not None]
    return max(found, key=lambda d: d.confidence) if found else None


def nsfw_reached(moderation: Moderation, thresholds: Thresholds) -> bool:
    """Whether any category reaches its bar. The most specific bar applies, and only one:

    - a provider's own label with a bar of its own (``aiornot.nsfw:0.5``) is held to that bar, whatever
      house category it maps to;
    - otherwise ``explicit`` is held to its MODERATION_THRESHOLDS entry when there is one, else to
      NSFW_THRESHOLD (default 0.8);
    - any other category counts only with an entry of its own (default: none), at that threshold;
    - ``safe`` never flags.
    """
    return bool(flagging_categories(moderation, thresholds))


def bar_for(category: ModerationCategory, thresholds: Thresholds) -> float | None:
    """The threshold a category is held to (``nsfw_reached``), or None when it cannot flag."""
    label = (category.provider, category.source_label.strip().lower())
    if thresholds.labels and label in thresholds.labels:
        return thresholds.labels[label]
    per_category = thresholds.categories or {}
    if category.name == "explicit":
        return per_category.get("explicit", thresholds.nsfw)
    if category.name == "safe":
        return None
    return per_category.get(category.name)


def flagging_categories(moderation: Moderation, thresholds: Thresholds) -> list[ModerationCategory]:
    return [c for c in moderation.categories if (bar := bar_for(c, thresholds)) is not None and c.confidence >= bar]


def ai_reached(verdict: AIGenerated, thresholds: Thresholds) -> bool:
    """An "ai" verdict flags when its provider decides by verdict, when it has no confidence (a free tier
    saying "ai"), or when its confidence reaches AI_GENERATED_THRESHOLD."""
    if verdict.verdict != "ai":
        return False
    if verdict.provider in thresholds.verdict_decides or verdict.confidence is None:
        return True
    return verdict.confidence >= thresholds.ai_generated


def decide_flags(
    moderation: Moderation | None,
    ai_generated: AIGenerated | None,
    deepfake: Deepfake | None,
    thresholds: Thresholds,
) -> list[Flag]:
    flags: list[Flag] = []
    if moderation is not None and nsfw_reached(moderation, thresholds):
        flags.append("nsfw")
    if ai_generated is not None and ai_reached(ai_generated, thresholds):
        flags.append("ai_generated")
    if deepfake is not None and deepfake.detected and deepfake.confidence >= thresholds.deepfake:
        flags.append("deepfake")
    return flags


def pack_raw(
    raw_by_provider: dict[str, Any],
    budget_bytes: int,
    offload: Callable[[str, bytes], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Vendor answers as base64 of zlib-compressed JSON, smallest first, within the item budget.

    What does not fit goes to ``offload(provider, json_bytes)`` (``RawArchive.writer``: an object in the
    artifacts bucket, referenced as ``{"s3": url, "bytes": n}``); without one, or when it fails (returns
    None), it is recorded by size (``{"omitted_bytes": n}``). So the item never nears DynamoDB's 400 KB.
    """
    packed: dict[str, Any] = {}
    documents = {
        name: json.dumps(value, separators=(",", ":")).encode() for name, value in raw_by_provider.items() if value
    }
    encoded = {name: base64.b64encode(zlib.compress(document, 9)).decode() for name, document in documents.items()}
    used = 0
    for name, blob in sorted(encoded.items(), key=lambda kv: len(kv[1])):
        if used + len(blob) <= budget_bytes:
            packed[name] = blob
            used += len(blob)
            continue
        stored = offload(name, documents[name]) if offload is not None else None
        packed[name] = stored or {"omitted_bytes": len(blob)}
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
    return {name: capped(value) for name, value in sections.items()}


def overall_status(runs: Sequence[ProviderRun]) -> str:
    """``partial`` when any provider had no answer: a capability the user configured is missing."""
    return "succeeded" if all(r.status in ("succeeded", "cached") for r in runs) else "partial"


# -- size bounds -------------------------------------------------------------------------------------
# Counting entries is not enough: a vendor may answer anything, and 60 tags of 20 KB make a 1 MB item
# that DynamoDB refuses on every delivery. Every vendor-supplied string is capped where it lands, and the
# item as a whole is measured and packed (``fit_result``).
MAX_NAME_CHARS = 256  # names, labels, source labels, generator names, software, colors
MAX_TEXT_CHARS = 2_000  # recognized text, alt texts, evidence entries, error messages
MAX_STRINGS = 50  # entries of a list of strings (evidence, metadata names) or of a name -> score map
# Nested lists (classification scores, deepfake regions) are held to MAX_LIST entries, as sections are.
_TEXT_FIELDS = frozenset({"text", "evidence", "message"})
# DynamoDB refuses items over 400 KB (names and values in UTF-8); the store adds keys, guards and indexes.
ITEM_BUDGET_BYTES = 350_000
# The sections that come from vendors (and the provider runs, whose errors quote them).
VENDOR_FIELDS = (
    "labels",
    "objects",
    "faces",
    "celebrities",
    "text",
    "alt_texts",
    "colors",
    "classification",
    "moderation",
    "ai_generated",
    "deepfake",
    "quality",
    "provenance",
    "providers",
    "error",
)
# What is given up, in this order, when the measured item is still too big (raw answers go first).
_TRIM_ORDER = (
    ("text", None),
    ("alt_texts", None),
    ("objects", None),
    ("faces", None),
    ("celebrities", None),
    ("colors", None),
    ("classification", "scores"),
    ("provenance", "evidence"),
    ("provenance", "generator_metadata"),
    ("ai_generated", "evidence"),
    ("deepfake", "regions"),
    ("labels", None),
    ("moderation", "categories"),
)


def cap_text(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"


def capped(value: Any, field: str = "") -> Any:
    """The same house model (or list or map of them) with every string, string list and map bounded."""
    if isinstance(value, HouseModel):
        updates = {}
        for name in type(value).field_names():
            current = getattr(value, name)
            new = capped(current, name)
            if new is not current:
                updates[name] = new
        return value.model_copy(update=updates) if updates else value
    if isinstance(value, str):
        return cap_text(value, MAX_TEXT_CHARS if field in _TEXT_FIELDS else MAX_NAME_CHARS)
    if isinstance(value, list):
        kept = value[: MAX_STRINGS if value and isinstance(value[0], str) else MAX_LIST]
        new_list = [capped(item, field) for item in kept]
        same = len(new_list) == len(value) and all(a is b or a == b for a, b in zip(new_list, value, strict=False))
        return value if same else new_list
    if isinstance(value, dict):
        entries = list(value.items())
        if len(entries) > MAX_STRINGS and all(isinstance(v, int | float) for _, v in entries):
            entries = sorted(entries, key=lambda kv: kv[1], reverse=True)  # the strongest scores stay
        new_map = {capped(k, field): capped(v, field) for k, v in entries[:MAX_STRINGS]}
        return value if new_map == value else new_map
    return value


def serialized_bytes(result: AnalysisResult) -> int:
    """The item's size as stored, within a few percent: its JSON, in UTF-8."""
    return len(result.model_dump_json(exclude_none=True).encode())


def fit_result(result: AnalysisResult, budget_bytes: int = ITEM_BUDGET_BYTES) -> AnalysisResult:
    """The result capped and, when still over ``budget_bytes``, packed: raw vendor answers are shed first
    (largest first), then section entries from the least to the most needed, halving a list at a time.
    ``omitted`` records what went: ``raw.<provider>`` in bytes, a section (``labels``,
    ``moderation.categories``) in entries, accumulated with what ``pack_raw`` already left out."""
    omitted = dict(result.omitted)
    raw = dict(result.raw)
    for name, blob in raw.items():
        if isinstance(blob, dict) and "omitted_bytes" in blob:
            omitted[f"raw.{name}"] = int(blob["omitted_bytes"])
    updates: dict[str, Any] = {name: capped(getattr(result, name), name) for name in VENDOR_FIELDS}
    result = result.model_copy(update={**updates, "omitted": dict(omitted)})
    if serialized_bytes(result) <= budget_bytes:
        return result
    for name, blob in sorted(raw.items(), key=lambda kv: -len(kv[1]) if isinstance(kv[1], str) else 0):
        if serialized_bytes(result) <= budget_bytes:
            break
        if isinstance(blob, str):
            raw[name] = {"omitted_bytes": len(blob)}
            omitted[f"raw.{name}"] = len(blob)
            result = result.model_copy(update={"raw": dict(raw), "omitted": dict(omitted)})
    for section, inner in _TRIM_ORDER:
        while serialized_bytes(result) > budget_bytes:
            holder = getattr(result, section)
            entries = holder if inner is None else getattr(holder, inner, None) if holder is not None else None
            if not entries:
                break
            kept = entries[: len(entries) // 2]
            label = section if inner is None else f"{section}.{inner}"
            omitted[label] = omitted.get(label, 0) + len(entries) - len(kept)
            new_value = kept if inner is None else holder.model_copy(update={inner: kept})
            result = result.model_copy(update={section: new_value, "omitted": dict(omitted)})
    return result
