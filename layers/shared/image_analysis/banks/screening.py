"""The pipeline's seam to the hash banks: one ``Screening`` per image.

    screening = banks.for_image()
    plan = orchestrator.run(request, prefetched, skip_vendors=screening.skip_vendors)  # None unless asked
    fields = screening.result_fields(plan.outputs())   # pdq, pdq_quality, matches
    flags += screening.flags

With ``SKIP_VENDORS_ON_MATCH`` the orchestrator runs builtin first and asks ``skip_vendors`` with its
output: a match with a ``known_bad`` bank skips every paid call. Either way the image is matched once,
with the hashes builtin computed; a result without banks configured still carries its ``pdq``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from image_analysis.analyzers.pdq import PdqHash
from image_analysis.banks.matcher import NOTHING, BankMatcher, MatchOutcome

if TYPE_CHECKING:
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

    @property
    def skip_vendors(self) -> Callable[[ProviderOutput], bool] | None:
        """For the orchestrator: given builtin's output, whether to skip the vendors (None: never)."""
        return self._known_bad if self._owner.skip_vendors_on_match else None

    def _known_bad(self, output: ProviderOutput) -> bool:
        return self.check(output.pdq).known_bad

    def check(self, hashes: Sequence[PdqHash]) -> MatchOutcome:
        """The image's matches (looked up once per image)."""
        if self._outcome is None:
            matcher = self._owner.matcher
            self._outcome = matcher.match(hashes) if matcher is not None else NOTHING
            if self._outcome.skipped and matcher is not None and self._owner.logger is not None:
                self._owner.logger.info("not matched against the hash banks", extra={"reason": self._outcome.skipped})
        return self._outcome

    def result_fields(self, outputs: Sequence[ProviderOutput]) -> dict[str, Any]:
        """``pdq`` and ``pdq_quality`` of the first frame, and ``matches``, for the result."""
        hashes = next((o.pdq for o in outputs if o.pdq), [])
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
