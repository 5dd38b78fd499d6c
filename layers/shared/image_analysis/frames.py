"""Judging every analyzed frame of a file, and the one result their answers make.

    run_frames(orchestrator, request, prefetched)   each analyzed frame through builtin and every vendor;
                                                    frames whose bytes are equal are sent once
    judge(frames, thresholds)                       -> Judgement: the result's sections and flags

A file of one frame is one plan, merged exactly as before. For an animation (``DecodedImage.views``):

- any frame reaching a threshold flags the file; ``frames_analyzed`` lists the sampled frames and
  ``frames_flagged`` those that flagged;
- moderation categories of every frame are kept, each with its ``frame``; ``nsfw_score`` is the highest
  ``explicit`` confidence of any frame;
- the AI and deepfake sections are the ones that flagged (the most certain), else the most certain of any
  frame; labels are the union of every frame's (a name once per provider, at its best); the other
  sections (colors, quality, provenance, objects, text, …) are the first frame's;
- provider runs add up over the frames: calls, bytes and cost are what was sent, so the daily caps and
  the cost metrics see every frame.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from image_analysis.merge import (
    MAX_LABELS,
    Keep,
    Thresholds,
    capped,
    certainty,
    decide_flags,
    merged_sections,
)
from image_analysis.models import ErrorInfo, Flag, Moderation, ProviderRun, Usage

if TYPE_CHECKING:
    from image_analysis.imaging import DecodedImage
    from image_analysis.orchestration import CacheTraffic, Orchestration, Orchestrator
    from image_analysis.providers.base import AnalysisRequest

# Frames of one file asked at once (each asks every vendor): enough to hide the vendors' latency without
# letting one animation take all of a vendor's concurrency.
FRAMES_AT_ONCE = 4
_pool = ThreadPoolExecutor(max_workers=FRAMES_AT_ONCE, thread_name_prefix="frame")

# Order of severity when one provider's runs over several frames differ.
_WORST_FIRST = ("failed", "rejected", "skipped", "partial", "succeeded", "cached")


@dataclass
class FramePlans:
    """The analyzed frames (in order) and each one's plan; equal frames share a plan."""

    frames: tuple[DecodedImage, ...]
    plans: list[Orchestration]

    @property
    def multi(self) -> bool:
        """Frames of an animation (even one sampled frame), not a file of one frame."""
        return self.frames[0].source is not None

    @property
    def unique(self) -> list[Orchestration]:
        return list({id(plan): plan for plan in self.plans}.values())

    def settle(self, timeout: float | None = None) -> None:
        for plan in self.unique:
            plan.settle(timeout=timeout)

    def transient_error(self) -> ErrorInfo | None:
        return next((error for plan in self.unique if (error := plan.transient_error()) is not None), None)


def run_frames(
    orchestrator: Orchestrator,
    request: AnalysisRequest,
    prefetched: CacheTraffic | None = None,
    skip_vendors: Any = None,
) -> FramePlans:
    """Every analyzed frame of ``request.image`` through the orchestrator. A frame has no S3 origin of its
    own: adapters that could read the object from S3 send the frame's bytes instead. ``skip_vendors``: the
    hash banks' test of builtin's output (SKIP_VENDORS_ON_MATCH), passed to every frame's plan; for an
    animation it answers for the whole image (``Screening.skip_vendors_for``)."""
    options = {"skip_vendors": skip_vendors} if skip_vendors is not None else {}
    frames = request.image.analyzed
    if len(frames) == 1 and frames[0] is request.image:
        return FramePlans(frames, [orchestrator.run(request, prefetched, **options)])
    first_of: dict[str, int] = {}
    for position, frame in enumerate(frames):
        first_of.setdefault(frame.sha256, position)
    distinct = sorted(set(first_of.values()))

    def run(position: int) -> Orchestration:
        frame = frames[position]
        frame_request = replace(request, image=frame, bucket="", key="", version_id=None)
        return orchestrator.run(frame_request, prefetched, **options)

    futures = {position: _pool.submit(run, position) for position in distinct[1:]}
    plans = {distinct[0]: run(distinct[0])}  # the calling thread takes the first frame itself
    plans.update({position: future.result() for position, future in futures.items()})
    return FramePlans(frames, [plans[first_of[frame.sha256]] for frame in frames])


@dataclass
class Judgement:
    sections: dict[str, Any]
    flags: list[Flag]
    runs: list[ProviderRun]
    usage: Usage
    raw: dict[str, Any]
    answered_by: dict[str, str | None] = field(default_factory=dict)
    frames_analyzed: list[int] = field(default_factory=list)
    frames_flagged: list[int] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [cap for cap, answerer in self.answered_by.items() if answerer is None]


def judge(plans: FramePlans, thresholds: Thresholds, keep: Keep | None = None) -> Judgement:
    """``keep``: what the item keeps of the labels (all the merge's, without it)."""
    judgement = _judge(plans, thresholds)
    if keep is not None:
        judgement.sections["labels"] = keep.labels(judgement.sections["labels"])
    return judgement


def _judge(plans: FramePlans, thresholds: Thresholds) -> Judgement:
    if not plans.multi:
        plan = plans.plans[0]
        sections = merged_sections(plan.outputs())
        return Judgement(
            sections=sections,
            flags=decide_flags(sections["moderation"], sections["ai_generated"], sections["deepfake"], thresholds),
            runs=plan.runs,
            usage=plan.usage(),
            raw={name: r.output.raw for name, r in plan.results.items()},
            answered_by=dict(plan.answered_by),
        )
    indexes = [frame.frame_index for frame in plans.frames]
    per_frame = [
        _framed(merged_sections(plan.outputs()), index) for plan, index in zip(plans.plans, indexes, strict=True)
    ]
    flags_by_frame = [decide_flags(s["moderation"], s["ai_generated"], s["deepfake"], thresholds) for s in per_frame]
    sections = dict(per_frame[0])
    sections["labels"] = _union_labels(per_frame)
    sections["moderation"] = _all_categories(per_frame)
    sections["ai_generated"] = _decisive(per_frame, flags_by_frame, "ai_generated", certainty)
    sections["deepfake"] = _decisive(per_frame, flags_by_frame, "deepfake", lambda d: d.confidence)
    sections = {name: capped(value) for name, value in sections.items()}
    unique = plans.unique
    return Judgement(
        sections=sections,
        flags=decide_flags(sections["moderation"], sections["ai_generated"], sections["deepfake"], thresholds),
        runs=_added_up([plan.runs for plan in unique]),
        usage=_usage(unique),
        raw=_raw_by_frame(plans),
        answered_by=_answered_by(unique),
        frames_analyzed=indexes,
        frames_flagged=[index for index, flags in zip(indexes, flags_by_frame, strict=True) if flags],
    )


def _framed(sections: dict[str, Any], index: int) -> dict[str, Any]:
    moderation = sections["moderation"]
    if moderation is not None:
        categories = [c.model_copy(update={"frame": index}) for c in moderation.categories]
        sections = {**sections, "moderation": moderation.model_copy(update={"categories": categories})}
    return sections


def _union_labels(per_frame: list[dict[str, Any]]) -> list[Any]:
    best: dict[tuple[str, str], Any] = {}
    for sections in per_frame:
        for label in sections["labels"]:
            key = (label.provider, label.name)
            if key not in best or label.confidence > best[key].confidence:
                best[key] = label
    return sorted(best.values(), key=lambda label: label.confidence, reverse=True)[:MAX_LABELS]


def _all_categories(per_frame: list[dict[str, Any]]) -> Moderation | None:
    answered = [s["moderation"] for s in per_frame if s["moderation"] is not None]
    if not answered:
        return None
    categories = sorted((c for m in answered for c in m.categories), key=lambda c: c.confidence, reverse=True)
    nsfw_score = max((c.confidence for c in categories if c.name == "explicit"), default=0.0)
    return Moderation(nsfw_score=nsfw_score, categories=categories)


def _decisive(per_frame: list[dict[str, Any]], flags: list[list[Flag]], name: str, rank: Any) -> Any:
    """The section of the frames that raised the flag, else of any frame; the strongest by ``rank``."""
    flagged = [s[name] for s, f in zip(per_frame, flags, strict=True) if name in f and s[name] is not None]
    if flagged:
        return max(flagged, key=rank)
    found = [s[name] for s in per_frame if s[name] is not None]
    if name == "ai_generated":
        decided = [v for v in found if v.verdict != "unknown"]
        return max(decided, key=rank) if decided else (found[0] if found else None)
    return max(found, key=rank) if found else None


def _added_up(runs_by_frame: list[list[ProviderRun]]) -> list[ProviderRun]:
    """One run per provider over every frame: the worst status (and its error), the longest wait, the sums."""
    by_name: dict[str, list[ProviderRun]] = {}
    for runs in runs_by_frame:
        for run in runs:
            by_name.setdefault(run.name, []).append(run)
    added = []
    for name, runs in by_name.items():
        worst = min(runs, key=lambda r: _WORST_FIRST.index(r.status))
        costs = [r.cost_units for r in runs if r.cost_units is not None]
        saved = [r.calls_saved for r in runs if r.calls_saved is not None]
        added.append(
            ProviderRun(
                name=name,
                status=worst.status,
                latency_ms=max(r.latency_ms for r in runs),
                error=worst.error,
                calls=sum(r.calls or 0 for r in runs),
                calls_saved=sum(saved) if saved else None,
                bytes_sent=sum(r.bytes_sent or 0 for r in runs),
                cost_units=round(sum(costs), 6) if costs else None,
                capabilities=sorted({c for r in runs for c in r.capabilities}),
            )
        )
    return added


def _usage(plans: list[Orchestration]) -> Usage:
    usages = [plan.usage() for plan in plans]
    return Usage(
        calls_made=sum(u.calls_made for u in usages),
        calls_saved=sum(u.calls_saved for u in usages),
        bytes_sent=sum(u.bytes_sent for u in usages),
        estimated_cost=round(sum(u.estimated_cost for u in usages), 6),
    )


def _answered_by(plans: list[Orchestration]) -> dict[str, str | None]:
    """With ROUTING: a capability counts as answered only when every frame had an answer."""
    answered: dict[str, str | None] = {}
    for plan in plans:
        for capability, answerer in plan.answered_by.items():
            answered[capability] = answerer if answered.get(capability, answerer) is not None else None
    return answered


def _raw_by_frame(plans: FramePlans) -> dict[str, Any]:
    """Each provider's answers, by ``<endpoint>@<frame>``: the part before ``@`` is what re-normalizes it."""
    raw: dict[str, dict[str, Any]] = {}
    done: set[int] = set()
    for frame, plan in zip(plans.frames, plans.plans, strict=True):
        if id(plan) in done:
            continue
        done.add(id(plan))
        for name, result in plan.results.items():
            for endpoint, payload in result.output.raw.items():
                raw.setdefault(name, {})[f"{endpoint}@{frame.frame_index}"] = payload
    return raw
