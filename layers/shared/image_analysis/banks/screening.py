"""The pipeline's seam to the hash banks: one ``Screening`` per image.

    screening = banks.for_image()
    skip = screening.skip_vendors_for(image)            # None unless asked
    plans = run_frames(orchestrator, request, prefetched, skip_vendors=skip)
    fields = screening.result_fields(outputs)           # pdq, pdq_quality, matches (of every frame)
    flags += screening.flags

With ``SKIP_VENDORS_ON_MATCH`` the orchestrator runs builtin first and asks ``skip_vendors`` with its
output: a match with a ``known_bad`` bank skips every paid call. The rule is per image: an animation one of
whose frames matches sends no frame to a vendor. Its frames run at once, so their hashes are made and
matched before any frame runs (builtin reuses the hashes). Either way the image's hashes are matched
once; a result without banks configured still carries its ``pdq``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from image_analysis.analyzers.pdq import PdqHash, image_hash
from image_analysis.banks.matcher import NOTHING, BankMatcher, MatchOutcome

if TYPE_CHECKING:
    from image_analysis.imaging import DecodedImage
    from image_analysis.providers.base import ProviderOutput


class BankScreening:
    """Built once per container: the matcher (None without banks) and whether a match skips vendors."""

    def __init__(self, matcher: BankMatcher | None = None, skip_vendors_on_match: bool = False, logger: Any = None):
        self.matcher = matcher
        self.skip_vendors_on_match = skip_vendors_on_match and matcher is not None
        self.logger = logger

    def for_image(self) -> Screening:
        """One image's screening; a poll of the banks that is due starts now, in the background."""
        if self.matcher is not None:
            self.matcher.prefetch()
        return Screening(self)


class Screening:
    def __init__(self, owner: BankScreening) -> None:
        self._owner = owner
        self._outcome: MatchOutcome | None = None
        # The hashes ``_outcome`` is of: an outcome stands only for the hashes it matched.
        self._matched: frozenset[PdqHash] | None = None

    def skip_vendors_for(self, image: DecodedImage) -> Callable[[ProviderOutput], bool] | None:
        """For the orchestrator: given builtin's output for a frame of ``image``, whether to skip the
        vendors (None: never). An image of one frame is decided by builtin's hash. For an animation, every
        frame's hash is matched first, so that a match in any frame keeps all of them from the vendors:
        the frames run at once, and a frame that asked its own hash alone would have sent its pixels
        before a later frame matched."""
        if not self._owner.skip_vendors_on_match:
            return None
        if len(image.analyzed) == 1:
            return self._known_bad
        known_bad = self.check(frame_hashes(image.analyzed)).known_bad
        return lambda _output: known_bad

    def _known_bad(self, output: ProviderOutput) -> bool:
        return self.check(output.pdq).known_bad

    def check(self, hashes: Sequence[PdqHash]) -> MatchOutcome:
        """What ``hashes`` match (looked up once for the same hashes)."""
        wanted = frozenset(hashes)
        if self._outcome is None or self._matched != wanted:
            matcher = self._owner.matcher
            self._outcome = matcher.match(hashes) if matcher is not None else NOTHING
            self._matched = wanted
            if self._outcome.skipped and matcher is not None and self._owner.logger is not None:
                self._owner.logger.info("not matched against the hash banks", extra={"reason": self._outcome.skipped})
        return self._outcome

    def result_fields(self, outputs: Sequence[ProviderOutput]) -> dict[str, Any]:
        """``pdq`` and ``pdq_quality`` of the first frame, and ``matches`` of every frame, for the result."""
        hashes = next((o.pdq for o in outputs if o.pdq), [])
        # The hashes matched to decide the skip are the image's too: a frame whose builtin then failed
        # keeps the match that skipped the vendors. The same set is not matched again.
        if self._matched:
            hashes = sorted({*hashes, *self._matched}, key=lambda h: -1 if h.frame is None else h.frame)
        outcome = self.check(hashes)
        first = hashes[0] if hashes else None
        return {
            "pdq": first.hex if first is not None else None,
            "pdq_quality": first.quality if first is not None else None,
            "matches": list(outcome.matches),
        }

    @property
    def flags(self) -> list[str]:
        return ["known_bad"] if self._outcome is not None and self._outcome.known_bad else []


def frame_hashes(frames: Sequence[DecodedImage]) -> list[PdqHash]:
    """The hash of each analyzed frame, in order; frames whose bytes equal an earlier one's are one frame
    (as ``run_frames`` runs them once), named by the first."""
    first: dict[str, DecodedImage] = {}
    for frame in frames:
        first.setdefault(frame.sha256, frame)
    return [image_hash(frame) for frame in first.values()]
