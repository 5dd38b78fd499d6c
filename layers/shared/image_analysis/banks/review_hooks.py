"""The review's decisions feed the hash bank ``rejected``: a rejection that stands adds the image's PDQ hash,
an approval after an appeal takes it out again. Called by the review function when it applies a decision
(``review.effects.ReviewHooks``), so a failure is retried by its queue like the decision's other effects.

A hash of quality under 50 (or a result without one) is never banked: it would match unrelated images.
That is logged, not an error: the decision itself stands.
"""

from __future__ import annotations

from typing import Any

from image_analysis.banks.api import add_to_rejected, remove_from_rejected
from image_analysis.banks.model import LowQuality
from image_analysis.banks.store import BankStore


class BankHooks:
    def __init__(self, store: BankStore, logger: Any = None) -> None:
        self.store = store
        self.logger = logger

    def on_rejected(self, item: dict[str, Any]) -> None:
        label = f"s3://{item.get('bucket')}/{item.get('key')}"
        decided_by = (item.get("review") or {}).get("decided_by")
        try:
            add_to_rejected(self.store, item.get("pdq"), item.get("pdq_quality"), label=label, source=decided_by)
        except LowQuality as exc:
            if self.logger is not None:
                self.logger.info("a rejected image's hash is not banked", extra={"reason": str(exc), "image": label})

    def on_approved_after_appeal(self, item: dict[str, Any]) -> None:
        decided_by = (item.get("review") or {}).get("decided_by")
        remove_from_rejected(self.store, item.get("pdq"), source=decided_by)
