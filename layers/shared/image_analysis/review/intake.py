"""The pipeline's seam: which results need review, and what a result written again keeps.

``PassiveReview`` (REVIEW_MODE=off) queues nothing and makes no request: a result written again for the
same bytes only keeps the decision the stored item already carries. ``ReviewIntake`` (flagged,
borderline) also opens reviews and keeps the queue table in step with the results; a review it opens
gets the console's thumbnails (``thumbnails``), made from the frames the pipeline decoded.

``prepare`` also says which stored review a result carries over (``Prepared.carried_from``): the store
writes the result only while the item still carries it, and otherwise prepares it again from the item
then stored, so that a decision taken during the analysis is kept instead of reverted.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from image_analysis.merge import Thresholds, ai_reached, bar_for, flagging_categories
from image_analysis.models import AnalysisResult, Review

REVIEWABLE_STATUSES = ("succeeded", "partial")


def within_margin(result: AnalysisResult, thresholds: Thresholds, margin: float) -> bool:
    """A score within ``margin`` under the bar it is held to (the same bars as ``merge.decide_flags``:
    a provider label's own, a category's, NSFW_THRESHOLD for explicit; AI_GENERATED_THRESHOLD for an AI
    verdict that is a score, not its provider's decision)."""
    moderation = result.moderation
    if moderation is not None:
        for category in moderation.categories:
            bar = bar_for(category, thresholds)
            if bar is not None and category.confidence >= bar - margin:
                return True
    ai = result.ai_generated
    if (
        ai is not None
        and ai.verdict == "ai"
        and ai.provider not in thresholds.verdict_decides
        and (ai.confidence or 0.0) >= thresholds.ai_generated - margin
    ):
        return True
    deepfake = result.deepfake
    return deepfake is not None and deepfake.detected and deepfake.confidence >= thresholds.deepfake - margin


def flagged_by(result: AnalysisResult, thresholds: Thresholds) -> list[str]:
    """The providers whose answers reached a threshold (the queue's provider filter); for a borderline
    result that reached none, those whose answers came within the margin: every provider that scored."""
    names: set[str] = set()
    if result.moderation is not None:
        names.update(c.provider for c in flagging_categories(result.moderation, thresholds))
    if result.ai_generated is not None and ai_reached(result.ai_generated, thresholds):
        names.add(result.ai_generated.provider)
    deepfake = result.deepfake
    if deepfake is not None and deepfake.detected and deepfake.confidence >= thresholds.deepfake:
        names.add(deepfake.provider)
    if not names:
        from image_analysis.review.audit import signals_of

        names.update(signal["provider"] for signal in signals_of(result))
    return sorted(names)


class Prepared(NamedTuple):
    """A result ready to be written, and the stored review its own was carried over from (None: none
    was): the write holds only while the item still carries that review (``ResultStore.put_result``)."""

    result: AnalysisResult
    carried_from: dict[str, Any] | None = None


def carried(result: AnalysisResult, prior: dict[str, Any] | None) -> Review | None:
    """The decision a stored item carries over to a new result of the same bytes (a duplicate, a
    reprocess); None for other bytes. An approval does not cover a flag it never saw: a new flag reopens
    the review (pending, appeals kept)."""
    if not prior or not prior.get("review") or prior.get("deleted_at"):
        return None
    if not result.sha256 or prior.get("sha256") != result.sha256:
        return None
    review = Review.model_validate(prior["review"])
    if review.status == "approved" and set(result.flags) - set(prior.get("flags") or []):
        return Review(status="pending", appeals=review.appeals)
    return review


class PassiveReview:
    """REVIEW_MODE=off: keeps earlier decisions on a result written again, from the item already read."""

    def prepare(self, result: AnalysisResult, existing: dict[str, Any] | None) -> Prepared:
        kept = carried(result, existing)
        if kept is None:
            return Prepared(result)
        return Prepared(result.model_copy(update={"review": kept}), existing["review"])  # type: ignore[index]

    def record(self, result: AnalysisResult, existing: dict[str, Any] | None, frames: Any = ()) -> None:
        return None

    def heal(self, existing: dict[str, Any] | None) -> None:
        return None

    def forget(self, pk: str, sk: str) -> None:
        return None


class ReviewIntake:
    """REVIEW_MODE=flagged or borderline."""

    def __init__(
        self,
        *,
        mode: str,
        margin: float,
        thresholds: Thresholds,
        queue: Any,
        read_item: Any,
        thumbnails: Any = None,
        logger: Any = None,
    ) -> None:
        self.mode = mode
        self.margin = margin
        self.thresholds = thresholds
        self.queue = queue
        # (pk, sk) -> the stored item now: a decision may have been taken while the vendors answered.
        self._read_item = read_item
        # image_analysis.review.thumbnails.Thumbnails, or None (no artifacts bucket: no thumbnails).
        self.thumbnails = thumbnails
        self.logger = logger

    def needs_review(self, result: AnalysisResult) -> bool:
        if result.status not in REVIEWABLE_STATUSES:
            return False
        if result.flags:
            return True
        return self.mode == "borderline" and within_margin(result, self.thresholds, self.margin)

    def prepare(self, result: AnalysisResult, existing: dict[str, Any] | None) -> Prepared:
        prior = existing
        if existing is not None and existing.get("review"):
            prior = self._read_item(existing["pk"], existing["sk"]) or existing
        kept = carried(result, prior)
        if kept is not None:
            return Prepared(result.model_copy(update={"review": kept}), prior["review"])  # type: ignore[index]
        if self.needs_review(result):
            return Prepared(result.model_copy(update={"review": Review(status="pending")}))
        return Prepared(result.model_copy(update={"review": None}))

    def record(self, result: AnalysisResult, existing: dict[str, Any] | None, frames: Any = ()) -> None:
        """After the result was written: open, reopen or close the queue item. Best effort: a crash or
        an error here is healed by the next delivery of the same event (``heal``). ``frames``: the
        analyzed frames as decoded (``FramePlans.frames``), from which an opened review's thumbnails are
        made."""
        from image_analysis.review.ids import ReviewId

        try:
            stored = (existing or {}).get("review")
            same_bytes = bool(existing) and existing.get("sha256") == result.sha256 and not existing.get("deleted_at")
            if result.review is None:
                if stored:
                    self.queue.close(ReviewId.of_result(existing["pk"], existing["sk"]))  # type: ignore[index]
            elif not (stored and same_bytes and Review.model_validate(stored) == result.review):
                shown = self.thumbnails.write(result.sha256, frames) if self.thumbnails is not None else {}
                self.queue.open(result, {**shown, "providers": flagged_by(result, self.thresholds)})
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not update the review queue")

    def heal(self, existing: dict[str, Any] | None) -> None:
        """A duplicate delivery of a result under review: its queue item exists (a crash may have kept
        the first delivery from writing it)."""
        if not existing or (existing.get("review") or {}).get("status") not in ("pending", "escalated"):
            return
        try:
            from image_analysis.store import result_of

            self.queue.heal(result_of(existing))
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not heal the review queue item")

    def forget(self, pk: str, sk: str) -> None:
        """The object version is gone and its result forgotten: nothing is left to review."""
        from image_analysis.review.ids import ReviewId

        try:
            self.queue.close(ReviewId.of_result(pk, sk))
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not remove the review queue item of a deleted object")
