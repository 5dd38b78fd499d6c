"""What a written result does to the world, each part exactly once and in a safe order.

    after_write(ref, result, sequence, deadline, replaced)   a result just written
    heal(ref, item, deadline)                                 a final item found by a later delivery

For a flagged result: first the quarantine tags go on the object (QUARANTINE_TAGS; not when a person
approved these bytes already), then the delivery gate's verdict (DELIVERY_GATE: ``verdict=clean`` only on
what may be served, taken off otherwise), then the alert is published (``alert_ledger``: once per
object version and flag set), then its id is recorded on the item. An unflagged result gets the gate's
verdict too. Tagging first means a failed publish never leaves a flagged object readable; a crash or failure between
any two steps leaves the item final but unfinished, and the next delivery of the event (which finds it
already analyzed) finishes it with ``heal``: tags if they are not recorded, the alert if it has not gone
out. A failure that ``heal`` must finish hands the record back (``Settled.retry``), so that there is a
next delivery; a publish that failed gives its ledger claim back first, so that the next delivery is
not kept waiting by it.

An object deleted before its tags went on has nothing left to quarantine: that is no failure to come
back for.

For an unflagged complete result: our quarantine tags come off the object when the item this write
replaced was flagged (a reprocess, or new bytes under the key) or was a result of the same bytes (whose
own untag may have failed), never on the word of an item read before the write. A partial or rejected
result decided nothing, so it leaves the tags alone. Tags that could not come off hand the record back
too: ``heal`` takes them off any object whose final result for the same bytes is a clean ``succeeded`` (a
clean image must not stay quarantined for good).

Unversioned buckets are tagged by key, and the key may be overwritten while we tag: after tagging, the
object's ETag is checked again, and tags that landed on other bytes are taken off unless that object's
own result is flagged.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from image_analysis.alert_ledger import Ledger
from image_analysis.alerts import AlertPublisher, alert_id_for, build_alert
from image_analysis.errors import ObjectSkipped
from image_analysis.events import ObjectRef
from image_analysis.models import AnalysisResult, Quarantine
from image_analysis.objects import ObjectReader, clean_verdict
from image_analysis.providers.base import Deadline
from image_analysis.store import FINAL_STATUSES, ResultStore, result_of

# How long past its writer's deadline a ledger claim is still respected: the clocks of two containers.
CLAIM_SLACK_SECONDS = 5.0
# How long a delivery that finds the alert claimed waits for it to be sent before handing its record back:
# copies of one event in one batch find the claim while its holder publishes, which takes a moment.
CLAIM_WAIT_SECONDS = 3.0
UNTAG_FAILED = "the quarantine tags of a clean object could not be taken off"


@dataclass(frozen=True)
class Settled:
    alerted: bool = False
    # Something could not be finished (a tag, the publish): the record must come back to finish it.
    retry: bool = False
    reason: str = ""
    quarantine: Quarantine | None = None


class FlagActions:
    def __init__(
        self,
        *,
        reader: ObjectReader,
        store: ResultStore,
        publisher: AlertPublisher,
        ledger: Ledger,
        quarantine_tags: bool,
        clock: Any,
        delivery_gate: bool = False,
        sleep: Any = time.sleep,
        logger: Any = None,
        metrics: Any = None,
    ) -> None:
        self.reader = reader
        self.store = store
        self.publisher = publisher
        self.ledger = ledger
        self.quarantine_tags = quarantine_tags
        self.delivery_gate = delivery_gate
        self._clock = clock
        self._sleep = sleep
        self.logger = logger
        self.metrics = metrics

    # -- the two entry points ------------------------------------------------------------------------
    def after_write(
        self,
        ref: ObjectRef,
        result: AnalysisResult,
        sequence: str,
        deadline: Deadline,
        replaced: dict[str, Any] | None,
    ) -> Settled:
        if result.flags:
            return self._finish(ref, result, sequence, deadline, tagged=_approved(result))
        untag_failed = False
        if (
            self.quarantine_tags
            and result.status == "succeeded"
            and _may_carry_tags(replaced, result)
            and not _rejected(result)
        ):
            # No longer flagged by a complete answer: the quarantine must not outlive the flag (unless a
            # person rejected these bytes: a rejection keeps the object quarantined, whatever a reprocess says).
            untag_failed = not self._untag(ref)
        self._gate(ref, result)
        if untag_failed:
            return Settled(retry=True, reason=UNTAG_FAILED)
        return Settled()

    def heal(self, ref: ObjectRef, item: dict[str, Any], deadline: Deadline) -> Settled:
        """A final flagged item whose tags or alert a crash (or a failure) left undone; for a final unflagged
        one, the gate's verdict (with the gate closed) and our tags off when it is clean (``_untag_clean``)."""
        if not item or item.get("status") not in FINAL_STATUSES or item.get("deleted_at"):
            return Settled()
        if not item.get("flags"):
            # Our tags off first, as after a write: while they are on they may hold the slot the verdict needs.
            untagged = self._untag_clean(ref, item)
            if self.delivery_gate and ref.version_id:
                # A crash between the write and the verdict left a clean version unreadable for good. By
                # version id only: by key, the verdict could land on newer bytes than the item's.
                self._gate(ref, result_of(item))
            if not untagged:
                return Settled(retry=True, reason=UNTAG_FAILED)
            return Settled()
        result = result_of(item)
        tagged = not self.quarantine_tags or result.quarantine is not None
        # ``alert_id`` is recorded only once the alert for the item's flags went out, and a rewrite of the
        # item drops it: present means done.
        if tagged and item.get("alert_id"):
            return Settled()
        return self._finish(ref, result, item["seq"], deadline, tagged=tagged)

    # -- steps ---------------------------------------------------------------------------------------
    def _finish(
        self, ref: ObjectRef, result: AnalysisResult, sequence: str, deadline: Deadline, tagged: bool
    ) -> Settled:
        quarantine = None
        tag_failed = False
        if self.quarantine_tags and not tagged:
            quarantine = self._tag(ref, result, sequence)
            tag_failed = quarantine is None
        self._gate(ref, result)
        alerted, publish_retry = self._announce(result, sequence, deadline)
        retry = tag_failed or publish_retry
        reasons = [
            why
            for failed, why in (
                (tag_failed, "the quarantine tags could not be applied"),
                (publish_retry, "another delivery holds the alert's claim"),
            )
            if failed
        ]
        reason = "; ".join(reasons)
        return Settled(alerted=alerted, retry=retry, reason=reason, quarantine=quarantine)

    def _alert_id(self, result: AnalysisResult) -> str:
        return alert_id_for(f"{result.bucket}/{result.key}", result.version_id or "null", result.etag, result.flags)

    def _announce(self, result: AnalysisResult, sequence: str, deadline: Deadline) -> tuple[bool, bool]:
        """(published now, must come back): publishes unless this version's alert for these flags went out."""
        pk, sk = f"{result.bucket}/{result.key}", result.version_id or "null"
        alert_id = self._alert_id(result)
        if self.ledger.is_sent(alert_id):
            self.store.mark_alerted(pk, sk, alert_id, sequence)
            return False, False
        token = uuid.uuid4().hex
        # The claim lives as long as this invocation can: after that, its holder is gone for sure.
        until = self._clock() + deadline.remaining() + CLAIM_SLACK_SECONDS
        if not self.ledger.claim(alert_id, until, token, where=f"{pk}#{sk}"):
            # Another delivery is publishing it (or did). Come back to make sure it went out, unless it goes
            # out while we wait a moment.
            if self._sent_within(alert_id, min(CLAIM_WAIT_SECONDS, deadline.remaining())):
                self.store.mark_alerted(pk, sk, alert_id, sequence)
                return False, False
            return False, True
        alert = build_alert(result, alert_id, self.store.table_name)
        answered = [r.name for r in result.providers if r.status in ("succeeded", "cached", "partial")]
        try:
            self.publisher.publish(alert, answered)
        except Exception:
            # Given back at once: Lambda's retry of a direct invocation comes a minute later, well within
            # this claim's life, and must publish instead of taking the item for done.
            self.ledger.release(alert_id, token)
            self._count("AlertPublishFailed")
            raise
        self.ledger.mark_sent(alert_id, token)
        self.store.mark_alerted(pk, sk, alert_id, sequence)
        for flag in result.flags:
            self._count(f"Flagged_{flag}")
        return True, False

    def _sent_within(self, alert_id: str, seconds: float) -> bool:
        waited = 0.0
        while True:
            if self.ledger.is_sent(alert_id):
                return True
            if waited >= seconds:
                return False
            self._sleep(0.25)
            waited += 0.25

    def _tag(self, ref: ObjectRef, result: AnalysisResult, sequence: str) -> Quarantine | None:
        """Tag the flagged object and record it on the item; None when the tags could not be applied."""
        try:
            tagging = self.reader.tag_flagged(ref, list(result.flags))
            if not ref.version_id and ref.etag and not self.reader.holds(ref):
                # The key was overwritten while we tagged: our tags may sit on the newer object. If they
                # could not come off, the record comes back (and the newer object's own result decides too).
                if not self._untag_unless_flagged(ref):
                    return None
                return Quarantine(applied=[], left_out=[])
        except ObjectSkipped:
            # Deleted before its tags went on: nothing is left to quarantine, and no delivery could tag it.
            return Quarantine(applied=[], left_out=[])
        except Exception:
            self._count("QuarantineTagFailed")
            if self.logger is not None:
                self.logger.exception("could not tag the flagged object; the record will come back to do it")
            return None
        quarantine = Quarantine(applied=list(tagging.applied), left_out=list(tagging.left_out))
        if tagging.left_out:
            # The user's tags are kept; the operator learns which flagged objects the policy may not cover.
            self._count("QuarantineTagsLeftOut")
            if self.logger is not None:
                self.logger.warning(
                    "the object's own tags leave no room for all quarantine tags; theirs are kept",
                    extra={"applied": quarantine.applied, "left_out": quarantine.left_out},
                )
        try:
            self.store.mark_quarantine(ref.pk, ref.sk, sequence, quarantine)
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not record the quarantine tagging on the item")
        return quarantine

    def _gate(self, ref: ObjectRef, result: AnalysisResult) -> None:
        """The delivery gate: ``image-analysis:verdict=clean`` on the object version exactly when its
        result allows it to be served (``objects.clean_verdict``), taken off when a later result of the
        version flags it. A failure is counted (GateTagFailed), not retried: a version never tagged stays
        unreadable; the docs say what to do about one whose verdict could not be taken off."""
        if not self.delivery_gate or result.status == "skipped":
            return
        try:
            changed = self.reader.set_verdict(ref, clean_verdict(result))
        except Exception:
            self._count("GateTagFailed")
            if self.logger is not None:
                self.logger.exception("could not set the delivery gate's verdict tag")
            return
        if changed is None:
            self._count("GateTagLeftOut")
            if self.logger is not None:
                self.logger.warning(
                    "the object's own tags take all ten slots: verdict=clean left out, it stays unreadable"
                )

    def _untag_unless_flagged(self, ref: ObjectRef) -> bool:
        """False when tags that must come off could not."""
        current = self.store.get(ref.pk, ref.sk) or {}
        if current.get("etag") != ref.etag and current.get("flags") and current.get("status") in FINAL_STATUSES:
            return True  # the newer object is flagged itself: the tags are right where they are
        # Its own result, when it comes, decides again from the item it replaces (ours, flagged).
        return self._untag(ref)

    def _untag_clean(self, ref: ObjectRef, item: dict[str, Any]) -> bool:
        """``heal`` of a final unflagged item: our tags off the object when its bytes' complete result is
        clean, in case an earlier untag failed or a crash came between the write and the untag. This costs
        a GetObjectTagging per redelivery of a clean item, and only with QUARANTINE_TAGS; by key only while
        the key still holds the item's bytes, so newer bytes' tags are left to their own result. False when
        tags that must come off could not."""
        if not self.quarantine_tags or item.get("status") != "succeeded" or item.get("etag") != ref.etag:
            return True
        if (item.get("review") or {}).get("status") == "rejected":
            return True  # a person rejected these bytes: they stay quarantined
        if not ref.version_id:
            try:
                if not self.reader.holds(ref):
                    return True
            except Exception:
                return self._untag_failed()
        return self._untag(ref)

    def _untag(self, ref: ObjectRef) -> bool:
        """False when the tags could not be taken off (a deleted object has none left: True)."""
        try:
            if self.reader.remove_quarantine_tags(ref):
                self._count("QuarantineTagsRemoved")
        except ObjectSkipped:
            pass  # deleted: no tags left to take off
        except Exception:
            return self._untag_failed()
        return True

    def _untag_failed(self) -> bool:
        self._count("QuarantineTagFailed")
        if self.logger is not None:
            self.logger.exception("could not remove the quarantine tags of an object no longer flagged; it comes back")
        return False

    def _count(self, name: str, value: float = 1) -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit="Count", value=value)


def _may_carry_tags(replaced: dict[str, Any] | None, result: AnalysisResult) -> bool:
    """Whether our tags may be on the object the clean ``result`` is of: the item it replaced was flagged,
    or was a result of the same bytes (a reprocess or a retry), whose own untag may have failed and been
    handed back before this write replaced it. New bytes under the key come without our tags."""
    if not replaced:
        return False
    return bool(replaced.get("flags")) or replaced.get("etag") == result.etag


def _rejected(result: AnalysisResult) -> bool:
    return result.review is not None and result.review.status == "rejected"


def _approved(result: AnalysisResult) -> bool:
    """A person let these bytes through already: no quarantine tags for them."""
    return result.review is not None and result.review.status == "approved"
