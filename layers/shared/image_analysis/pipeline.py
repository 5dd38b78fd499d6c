"""One object version from event to stored result and alert.

    ref -> already final? (heal a missing alert, stop) -> GET (IfMatch ETag; the size checked from its
        headers before the body is read) -> decode (reject bad input) -> providers, concurrently
        -> merge + flags -> conditional write (claiming the alert when flagged) -> alert once, then
        record its id on the item

A delivery that finds a flagged item without ``alert_id`` publishes only after taking over the claim
(``ResultStore.claim_alert``), which waits out a lease longer than any invocation: copies of one event in
flight at once never publish twice, and a crash after the write is healed by a later delivery.

Outcomes: ``done`` (result written or a duplicate acknowledged) or ``retry`` (a transient fault:
the item says ``failed`` with the error and attempt count, and the event source delivers again).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from image_analysis.alerts import AlertPublisher, alert_id_for, build_alert
from image_analysis.banks.matcher import BanksUnavailable
from image_analysis.banks.screening import BankScreening
from image_analysis.errors import InputRejected, ObjectSkipped, ObjectUnreadable
from image_analysis.events import ObjectRef
from image_analysis.imaging import decode
from image_analysis.merge import Thresholds, decide_flags, fit_result, merged_sections, overall_status, pack_raw
from image_analysis.models import AnalysisResult, ErrorInfo, Quarantine, Reprocess
from image_analysis.objects import ObjectReader, SizeRejected
from image_analysis.orchestration import Orchestration, Orchestrator, RecordAnswers, SharedAnswers
from image_analysis.providers.base import AnalysisRequest, Deadline
from image_analysis.store import FINAL_STATUSES, ResultStore, result_of, supersedes

# Longer than the function's timeout (120 s in the template) and shorter than the queue's visibility
# timeout (720 s): a claim that old belongs to an invocation that has ended, and the next delivery of a
# crashed one finds it expired. ``ALERT_CLAIM_LEASE_SECONDS`` changes it.
ALERT_LEASE_SECONDS = 300.0


@dataclass(frozen=True)
class Outcome:
    action: Literal["done", "retry"]
    status: str
    detail: str = ""
    alerted: bool = False
    result: AnalysisResult | None = None


# ``process`` without the stored item: it reads it itself.
UNREAD = object()


class TransientFailure(Exception):
    """A fault that a later delivery can fix: the record goes back to the queue."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deliveries_seen(existing: dict[str, Any] | None, ref: ObjectRef, receive_count: int) -> int:
    """Deliveries of this event so far. SQS's ApproximateReceiveCount starts again at 1 when the
    dead-letter queue is redriven, so the count kept on the item carries on from there."""
    same_event = (
        existing is not None
        and existing.get("seq") == ref.sequence
        and (existing.get("etag") or None) == ref.etag
        and not existing.get("deleted_at")
        and (existing.get("reprocess") or {}).get("id") == ref.reprocess_id
    )
    previous = int(existing.get("attempts") or 0) if same_event else 0  # type: ignore[union-attr]
    return max(previous + 1, receive_count, 1)


def opaque_id(ref: ObjectRef) -> str:
    """What vendors see instead of the key: a hash that identifies the version to us alone."""
    return hashlib.sha256(f"{ref.pk}\n{ref.sk}\n{ref.etag or ''}".encode()).hexdigest()[:32]


class Pipeline:
    def __init__(
        self,
        *,
        reader: ObjectReader,
        store: ResultStore,
        publisher: AlertPublisher,
        orchestrator: Orchestrator,
        thresholds: Thresholds,
        on_delete: str = "delete",
        quarantine_tags: bool = False,
        max_pixels: int,
        raw_budget_bytes: int = 100_000,
        alert_lease_seconds: float = ALERT_LEASE_SECONDS,
        logger: Any = None,
        metrics: Any = None,
        banks: BankScreening | None = None,
    ) -> None:
        self.reader = reader
        self.store = store
        self.publisher = publisher
        self.orchestrator = orchestrator
        self.on_delete = on_delete
        self.quarantine_tags = quarantine_tags
        self.thresholds = thresholds
        self.max_pixels = max_pixels
        self.raw_budget_bytes = raw_budget_bytes
        self.alert_lease_seconds = alert_lease_seconds
        self.logger = logger
        self.metrics = metrics
        # The hash banks (PDQ matching, and the flag known_bad); without banks results still carry pdq.
        self.banks = banks or BankScreening()

    # -- the public steps ------------------------------------------------------------------------
    def read_results(self, refs: list[ObjectRef]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """The stored items of a batch's uploads, read together (one request instead of one per record);
        ``process`` takes each as ``existing``. Best effort: what cannot be read here (throttling, an
        error) is left out, and ``process`` reads it itself."""
        keys = [(ref.pk, ref.sk) for ref in refs if not ref.removed]
        if len(keys) < 2:
            return {}
        try:
            return self.store.get_many(keys)
        except Exception:
            if self.logger is not None:
                self.logger.warning("could not read the batch's results together; each record reads its own")
            return {}

    def process(
        self,
        ref: ObjectRef,
        deadline: Deadline,
        attempts: int = 1,
        alert_lease_seconds: float | None = None,
        existing: Any = UNREAD,
        cache_writes: RecordAnswers | None = None,
    ) -> Outcome:
        """``alert_lease_seconds``: how old another delivery's alert claim must be before this one may
        take it over (default: the pipeline's); the handler passes the configured one, never shorter
        than the invocation itself. ``existing``: the stored item (or None), when the caller has read it
        already (``read_results``); the conditional write guards the result whatever was read.
        ``cache_writes``: this record's part of a batch's ``SharedAnswers`` (``shared_answers``), where its
        fresh vendor answers are collected instead of being cached by the record itself."""
        lease = self.alert_lease_seconds if alert_lease_seconds is None else alert_lease_seconds
        if ref.removed:
            return self.forget(ref)
        if existing is UNREAD:
            existing = self.store.get(ref.pk, ref.sk)
        if ref.rematch_banks is not None:
            return self._rematch(ref, existing, lease)
        final = existing is not None and existing.get("status") in FINAL_STATUSES
        sequence = ref.sequence
        if ref.reprocess_id:
            # On purpose, bypassing "already analyzed", once per request; never over a newer event's result.
            if final and (existing.get("reprocess") or {}).get("id") == ref.reprocess_id:  # type: ignore[union-attr]
                alerted = self._heal_alert(existing, lease)  # type: ignore[arg-type]
                return Outcome("done", "duplicate", "this reprocess request was already carried out", alerted=alerted)
            sequence = max(sequence, (existing or {}).get("seq", sequence))
        elif final and not supersedes(existing, sequence, ref.etag, ref.ordering_time):  # type: ignore[arg-type]
            alerted = self._heal_alert(existing, lease)  # type: ignore[arg-type]
            return Outcome("done", "duplicate", "a result for this or a newer event exists", alerted=alerted)
        elif existing is not None and not final and ref.etag and existing.get("etag") == ref.etag:
            # Completing a failed item for the same bytes (a backfill event has no sequencer): the result
            # keeps the real event's sequence, so that event's redrive finds it instead of paying again.
            sequence = max(sequence, existing.get("seq", sequence))
        base = {
            "bucket": ref.bucket,
            "key": ref.key,
            "version_id": ref.version_id,
            "etag": ref.etag,
            "sequencer": ref.sequencer,
            "attempts": deliveries_seen(existing, ref, attempts),
            "reprocess": Reprocess(
                id=ref.reprocess_id, reason=ref.reprocess_reason or "", requested_at=ref.reprocess_requested_at
            )
            if ref.reprocess_id
            else None,
        }
        plans: list[Orchestration] = []
        try:
            return self._finish(ref, deadline, base, sequence, lease, existing, plans, cache_writes)
        finally:
            for plan in plans:
                # The vendors' answers are paid for: their cache writes get the time the record has left.
                plan.settle(timeout=max(0.0, deadline.remaining()))

    def _finish(
        self,
        ref: ObjectRef,
        deadline: Deadline,
        base: dict[str, Any],
        sequence: str,
        lease: float,
        existing: dict[str, Any] | None,
        plans: list[Orchestration],
        cache_writes: RecordAnswers | None,
    ) -> Outcome:
        try:
            result = self._analyze(ref, deadline, base, plans, cache_writes)
        except ObjectSkipped as exc:
            result = AnalysisResult(**base, status="skipped", error=exc.info(), analyzed_at=_now())
        except ObjectUnreadable as exc:
            # Lasting: retrying cannot help; the item and the metric tell the operator.
            result = AnalysisResult(**base, status="rejected", error=exc.info(), analyzed_at=_now())
            self._count("ObjectUnreadable")
        except TransientFailure as exc:
            failed = fit_result(AnalysisResult(**base, status="failed", error=exc.error, analyzed_at=_now()))
            self.store.put_failure(failed, sequence, ref.ordering_time)
            self._count("ImagesFailed")
            return Outcome("retry", "failed", exc.error.message, result=failed)
        return self._commit(ref, result, sequence, lease, was_flagged=bool((existing or {}).get("flags")))

    def shared_answers(self, records: int) -> SharedAnswers:
        """Where a batch's ``records`` collect their fresh vendor answers, to be cached with one request
        (``process(cache_writes=shared.for_record())``, then ``shared.wait()``)."""
        return self.orchestrator.shared_answers(records)

    def record_failure(self, ref: ObjectRef, error: ErrorInfo, receive_count: int = 1) -> bool:
        """A record handed back for a reason the pipeline did not see (time ran out, an unexpected
        exception): say so on the item, as ``failed`` with the error and the deliveries seen, so that a
        message that ends in the dead-letter queue has its reason on the item. Under the write guard (a
        final result is never replaced). Best effort: returns False instead of raising."""
        try:
            if ref.removed:
                return False
            existing = self.store.get(ref.pk, ref.sk)
            sequence = ref.sequence
            if existing is not None and ref.etag and existing.get("etag") == ref.etag:
                # As in process: an event without a sequencer never wipes the real event's sequence.
                sequence = max(sequence, existing.get("seq", sequence))
            failed = AnalysisResult(
                bucket=ref.bucket,
                key=ref.key,
                version_id=ref.version_id,
                etag=ref.etag,
                sequencer=ref.sequencer,
                attempts=deliveries_seen(existing, ref, receive_count),
                status="failed",
                error=error,
                analyzed_at=_now(),
            )
            return self.store.put_failure(fit_result(failed), sequence, ref.ordering_time)
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not record the failure on the item")
            return False

    def forget(self, ref: ObjectRef) -> Outcome:
        """The object version was deleted: its analysis must not outlive it."""
        if not ref.sequencer and self.reader.exists(ref):
            # Without a sequencer the delete cannot be ordered against a re-upload: S3 itself can.
            return Outcome("done", "duplicate", "the object exists again; its result stays")
        if not self.store.forget(ref.pk, ref.sk, ref.sequence, self.on_delete, ref.ordering_time, ref.etag):
            return Outcome("done", "duplicate", "no older result to forget")
        self._count("ResultsForgotten")
        return Outcome("done", "forgotten", "deleted" if self.on_delete == "delete" else "reduced to a tombstone")

    # -- steps ---------------------------------------------------------------------------------
    def _analyze(
        self,
        ref: ObjectRef,
        deadline: Deadline,
        base: dict[str, Any],
        plans: list[Orchestration],
        cache_writes: RecordAnswers | None = None,
    ) -> AnalysisResult:
        try:
            data = self.reader.read(ref)
        except SizeRejected as exc:
            return self._rejected(base, exc, exc.size)
        except (ObjectSkipped, ObjectUnreadable):
            raise
        except Exception as exc:  # throttling, 5xx, network: the SDK retried already
            raise TransientFailure(ErrorInfo(code="server_error", message=f"reading the object failed: {exc}")) from exc
        sha256 = hashlib.sha256(data).hexdigest()
        # The vendors' cache lookups need only the bytes: they go out while the image is decoded (and so
        # does a poll of the hash banks that is due).
        prefetched = self.orchestrator.prefetch(sha256, cache_writes)
        screening = self.banks.for_image()
        try:
            image = decode(data, self.max_pixels, sha256=sha256)
        except InputRejected as exc:
            return self._rejected(base, exc, len(data))
        request = AnalysisRequest(
            image=image,
            object_id=opaque_id(ref),
            deadline=deadline,
            bucket=ref.bucket,
            key=ref.key,
            version_id=ref.version_id,
        )
        try:
            skip = screening.skip_vendors  # None unless SKIP_VENDORS_ON_MATCH: the plan is then unchanged
            plan = self.orchestrator.run(request, prefetched, **({"skip_vendors": skip} if skip else {}))
            plans.append(plan)
            outputs = plan.outputs()
            bank_fields = screening.result_fields(outputs)
        except BanksUnavailable as exc:
            raise TransientFailure(ErrorInfo(code="server_error", message=str(exc))) from exc
        if cache_writes is not None:
            cache_writes.done()  # the batch's answers may be cached while this result is written
        transient = plan.transient_error()
        if transient is not None:
            raise TransientFailure(transient)
        runs = plan.runs
        sections = merged_sections(outputs)
        flags = decide_flags(sections["moderation"], sections["ai_generated"], sections["deepfake"], self.thresholds)
        flags += screening.flags
        error = None
        if plan.answered_by:
            status = "partial" if plan.missing else "succeeded"
            if plan.missing:
                failed = [r.error for r in runs if r.error is not None]
                error = (
                    failed[0]
                    if failed
                    else ErrorInfo(code="bad_response", message=f"no provider answered: {', '.join(plan.missing)}")
                )
        else:
            status = overall_status(runs)
            failed = [r.error for r in runs if r.error is not None]
            error = failed[0] if status != "succeeded" and failed else None
        return AnalysisResult(
            **base,
            size_bytes=image.size_bytes,
            content_type=image.content_type,
            format=image.format,
            width=image.width,
            height=image.height,
            orientation=image.orientation if image.orientation in range(1, 9) else None,
            frames=image.frames,
            sha256=image.sha256,
            status=status,
            error=error,
            providers=runs,
            flags=flags,
            answered_by=plan.answered_by,
            usage=plan.usage(),
            raw=pack_raw(
                {name: r.output.raw for name, r in plan.results.items()},
                self.raw_budget_bytes,
                # Answers too big for the item go to the artifacts bucket, when the store has one.
                offload=archive.writer(ref.pk) if (archive := self.store.raw_archive) is not None else None,
            ),
            analyzed_at=_now(),
            **bank_fields,
            **sections,
        )

    @staticmethod
    def _rejected(base: dict[str, Any], exc: InputRejected, size: int) -> AnalysisResult:
        """Bad input: recorded with its reason, acknowledged, never retried, never sent to a vendor."""
        return AnalysisResult(**base, size_bytes=size, status="rejected", error=exc.info(), analyzed_at=_now())

    def _commit(
        self, ref: ObjectRef, result: AnalysisResult, sequence: str, lease: float, was_flagged: bool = False
    ) -> Outcome:
        # Whatever the vendors answered, the item stays under DynamoDB's 400 KB: a put that is too big
        # would fail on every delivery.
        result = fit_result(result)
        if not self.store.put_result(result, sequence, ref.ordering_time):
            existing = self.store.get(ref.pk, ref.sk) or {}
            alerted = self._heal_alert(existing, lease)
            return Outcome("done", "duplicate", "a result for this or a newer event exists", alerted=alerted)
        self._count(f"Images{result.status.capitalize()}")
        alerted = False
        if result.flags:
            alerted = self._publish(result, sequence)
            if self.quarantine_tags:
                result = self._tag(ref, result, sequence)
        elif self.quarantine_tags and was_flagged and result.status == "succeeded":
            # Reprocessed (or re-read) and no longer flagged by a complete answer: the quarantine must not
            # outlive the flag. A partial or rejected result decided nothing (a capped or refused
            # moderation provider is no verdict of "safe"); a skipped object is gone or replaced.
            self._untag(ref)
        return Outcome("done", result.status, alerted=alerted, result=result)

    def _publish(self, result: AnalysisResult, sequence: str) -> bool:
        pk, sk = f"{result.bucket}/{result.key}", result.version_id or "null"
        # A reprocessed result is a new decision: its alert gets an id of its own.
        alert_id = alert_id_for(
            pk, sk, result.etag, sequence + (result.reprocess.id if result.reprocess else ""), result.flags
        )
        alert = build_alert(result, alert_id, self.store.table_name)
        self.publisher.publish(alert, [r.name for r in result.providers if r.status in ("succeeded", "cached")])
        self.store.mark_alerted(pk, sk, alert_id, sequence)
        for flag in result.flags:
            self._count(f"Flagged_{flag}")
        return True

    def _tag(self, ref: ObjectRef, result: AnalysisResult, sequence: str) -> AnalysisResult:
        """Tag the flagged object; the result and alert stand whatever happens here (logged, counted)."""
        try:
            tagging = self.reader.tag_flagged(ref, list(result.flags))
        except Exception:  # a missing tag is logged and counted, not retried
            self._count("QuarantineTagFailed")
            if self.logger is not None:
                self.logger.exception("could not tag the flagged object")
            return result
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
        return result.model_copy(update={"quarantine": quarantine})

    def _untag(self, ref: ObjectRef) -> None:
        try:
            if self.reader.remove_quarantine_tags(ref):
                self._count("QuarantineTagsRemoved")
        except Exception:
            self._count("QuarantineTagFailed")
            if self.logger is not None:
                self.logger.exception("could not remove the quarantine tags of an object no longer flagged")

    def _rematch(self, ref: ObjectRef, existing: dict[str, Any] | None, lease: float) -> Outcome:
        """``bank rescan``: the stored result matched again; a new known_bad match alerts and quarantines
        once, through the same steps as a fresh result (``banks.rescan``)."""
        from image_analysis.banks.rescan import rematch  # only rescans need it: kept off the cold path

        done = rematch(
            ref, existing, reader=self.reader, store=self.store, banks=self.banks, max_pixels=self.max_pixels
        )
        if done.result is None:
            alerted = self._heal_alert(existing, lease) if done.heal and existing else False
            return Outcome("done", done.status, done.detail, alerted=alerted)
        self._count("RescanFlagged_known_bad")
        alerted = self._publish(done.result, done.sequence)
        result = self._tag(ref, done.result, done.sequence) if self.quarantine_tags else done.result
        return Outcome("done", done.status, done.detail, alerted=alerted, result=result)

    def _heal_alert(self, item: dict[str, Any], lease: float) -> bool:
        """A flagged item without ``alert_id``: its writer may still be publishing, or may have crashed.

        Publish only after taking over its claim, which succeeds once the claim has outlived any
        invocation; otherwise the writer (or another copy that took the claim) publishes.
        """
        if not item or not item.get("flags") or item.get("alert_id") or item.get("status") not in FINAL_STATUSES:
            return False
        if item.get("deleted_at"):
            return False  # a tombstone: the object is gone, nothing to alert about any more
        if not self.store.claim_alert(item["pk"], item["sk"], item["seq"], lease):
            return False
        return self._publish(result_of(item), item["seq"])

    # -- metrics -------------------------------------------------------------------------------
    def _count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit=unit, value=value)
