"""Threshold calibration from human decisions: how often a flag at the current threshold was right.

An approval of a flagged result is a false positive, a rejection a true positive; each object version
counts once, with its latest approval or rejection (an approval after an appeal replaces the rejection).
For each provider and category, among the decided versions whose score reached the current threshold:

- ``precision`` = rejected / (rejected + approved);
- ``suggested``: the lowest threshold at or above the current one whose flags would have reached the
  target precision. Only scores of decided versions can change the precision, so the candidates are the
  current threshold and each decided score above it; the suggestion is the lowest candidate that works.

Thresholds under the current one cannot be estimated: versions scored under it were never flagged, so
no one decided on them (borderline review sees only its margin, and is not a sample of the rest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

FINAL = {"approve": False, "reject": True}  # decision -> was the flag right


@dataclass(frozen=True)
class Calibration:
    provider: str
    category: str
    threshold: float
    decided: int  # decided versions scored at or above the threshold
    rejected: int
    approved: int
    precision: float | None
    target: float
    suggested: float | None  # None: no threshold at or above the current one reaches the target

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latest_labels(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The latest approve or reject of each object version (audit records, any order)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("decision") not in FINAL:
            continue
        known = latest.get(record["pk"])
        if known is None or record["sk"] > known["sk"]:
            latest[record["pk"]] = record
    return list(latest.values())


def threshold_for(category: str, thresholds: Mapping[str, float]) -> float | None:
    """The bar a category is held to (as ``merge.decide_flags`` does): ``explicit`` its own entry or
    ``nsfw``; ``ai_generated`` and ``deepfake`` theirs; any other category only with an entry of its own."""
    if category == "explicit":
        return thresholds.get("explicit", thresholds.get("nsfw"))
    return thresholds.get(category)


def calibrate(
    records: Iterable[Mapping[str, Any]], thresholds: Mapping[str, float], target: float = 0.9
) -> list[Calibration]:
    """One row per provider and category that has a threshold and a decided version reaching it."""
    scores: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for record in latest_labels(records):
        right = FINAL[record["decision"]]
        for signal in record.get("signals") or []:
            scores.setdefault((signal["provider"], signal["category"]), []).append((float(signal["score"]), right))
    rows = []
    for (provider, category), points in sorted(scores.items()):
        bar = threshold_for(category, thresholds)
        if bar is None:
            continue
        flagged = [(score, right) for score, right in points if score >= bar]
        if not flagged:
            continue
        rejected = sum(1 for _, right in flagged if right)
        candidates = sorted({bar, *(score for score, _ in flagged if score > bar)})
        suggested = next((t for t in candidates if _precision(flagged, t) >= target), None)
        rows.append(
            Calibration(
                provider=provider,
                category=category,
                threshold=bar,
                decided=len(flagged),
                rejected=rejected,
                approved=len(flagged) - rejected,
                precision=rejected / len(flagged),
                target=target,
                suggested=suggested,
            )
        )
    return rows


def _precision(points: list[tuple[float, bool]], threshold: float) -> float:
    kept = [right for score, right in points if score >= threshold]
    return sum(kept) / len(kept) if kept else 0.0
