"""One object version from event to stored result and alert.

    ref -> already final? (finish its tags and alert, stop) -> GET (IfMatch ETag; the size checked from
        its headers before the body is read) -> header probe (reject bad input; hold its decoded bytes
        in the batch's memory budget) -> decode once into bounded copies (and an animation's sampled
        frames) -> providers, concurrently, for every analyzed frame -> merge + flags (any frame)
        -> conditional write -> quarantine tags, then the alert (once per version and flag set)

What a written result does to the world (quarantine tags, then the alert, once per object version and
flag set) is ``flag_actions``'s; a later delivery that finds the result already written finishes what a
crash or a failure left undone (``FlagActions.heal``). Vendor calls stop ``WRITE_RESERVE_SECONDS`` before
the invocation's end, so that the writes, the tags and the alert always have time.

Outcomes: ``done`` (result written or a duplicate acknowledged) or ``retry`` (a transient fault:
the item says ``failed`` with the error and attempt count, and the event source delivers again).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from image_analysis.alert_ledger import Ledger, MemoryAlertLedger
from image_analysis.alerts import AlertPublisher
from image_analysis.banks.matcher import BanksUnavailable
from image_analysis.banks.screening import BankScreening
from image_analysis.errors import InputRejected, ObjectSkipped, ObjectUnreadable
from image_analysis.events import UNSEQUENCED, ObjectRef
from image_analysis.flag_actions import FlagActions
from image_analysis.frames import FramePlans, judge, run_frames
from image_analysis.imaging import FrameLimits, decode, probe
from image_analysis.memory import Hold as MemoryHold
from image_analysis.merge import MAX_LABELS, Keep, Thresholds, fit_result, overall_status, pack_raw
from image_analysis.models import AnalysisResult, ErrorInfo, Reprocess
from image_analysis.objects import ObjectReader, SizeRejected
from image_analysis.orchestration import Orchestrator, RecordAnswers, SharedAnswers
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderOutput
from image_analysis.review.intake import PassiveReview
from image_analysis.store import FINAL_STATUSES, ResultStore, supersedes

# Time kept after the vendors for the result write, the tags and the alert (each a request or two).
WRITE_RESERVE_SECONDS = 5.0


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


def unreadable_frames_error(unreadable: tuple[int, ...], frames: int, error: ErrorInfo | None) -> ErrorInfo:
    """The result's error when sampled frames could not be decoded: ``truncated``, naming them. A provider's
    error already there keeps its code (what a rerun can fix, e.g. ``quota_exhausted``, and what the
    runbook selects results by) and gains the frames in its message."""
    which = ", ".join(str(index) for index in unreadable)
    noun = "frame" if len(unreadable) == 1 else "frames"
    message = f"{noun} {which} of {frames} could not be decoded (the file is cut off or corrupt): not analyzed"
    if error is None:
        return ErrorInfo(code="truncated", message=message)
    return error.model_copy(update={"message": f"{error.message}; {message}"})


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
        frame_limits: FrameLimits | None = None,
        raw_budget_bytes: int = 100_000,
        keep: Keep | None = None,
        ledger: Ledger | None = None,
        clock: Any = time.time,
        sleep: Any = time.sleep,
        logger: Any = None,
        metrics: Any = None,
        review: Any = None,
        delivery_gate: bool = False,
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
        self.frame_limits = frame_limits or FrameLimits()
        self.raw_budget_bytes = raw_budget_bytes
        self.keep = keep or Keep(labels_max=MAX_LABELS, labels_floor=0.0, raw="all")
        self.logger = logger
        self.metrics = metrics
        # Human review (image_analysis.review.intake): opens reviews, and keeps a decision on a result
        # written again for the same bytes.
        self.review = review if review is not None else PassiveReview()
        # The hash banks (PDQ matching, and the flag known_bad); without banks results still carry pdq.
        self.banks = banks or BankScreening()
        self.actions = FlagActions(
            reader=reader,
            store=store,
            publisher=publisher,
            ledger=ledger if ledger is not None else MemoryAlertLedger(clock),
            quarantine_tags=quarantine_tags,
            delivery_gate=delivery_gate,
            clock=clock,
            sleep=sleep,
            logger=logger,
            metrics=metrics,
        )

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
        existing: Any = UNREAD,
        cache_writes: RecordAnswers | None = None,
        memory: MemoryHold | None = None,
    ) -> Outcome:
        """``existing``: the stored item (or None), when the caller has read it
        already (``read_results``); the conditional write guards the result whatever was read.
        ``cache_writes``: this record's part of a batch's ``SharedAnswers`` (``shared_answers``), where its
        fresh vendor answers are collected instead of being cached by the record itself. ``memory``: the
        record's share of the batch's memory budget, grown to the decoded size before the decode and cut
        to what the record keeps after it."""
        if ref.removed:
            return self.forget(ref)
        if existing is UNREAD:
            existing = self.store.get(ref.pk, ref.sk)
        if ref.rematch_banks is not None:
            return self._rematch(ref, existing, deadline, memory)  # type: ignore[arg-type]
        final = existing is not None and existing.get("status") in FINAL_STATUSES
        sequence = ref.sequence
        if ref.reprocess_id:
            # On purpose, bypassing "already analyzed", once per request; never over a newer event's result.
            if final and (existing.get("reprocess") or {}).get("id") == ref.reprocess_id:  # type: ignore[union-attr]
                return self._duplicate(ref, existing, deadline, "this reprocess request was already carried out")  # type: ignore[arg-type]
            sequence = max(sequence, (existing or {}).get("seq", sequence))
        elif final and self._adopts(ref, existing):  # type: ignore[arg-type]
            # Healed as the item now stands: what heal records (the alert id, the quarantine) is conditional
            # on the item's sequence, which the adoption just changed.
            adopted = {**existing, "seq": ref.sequence}  # type: ignore[dict-item]
            if ref.ordering_time:
                adopted["event_time"] = ref.ordering_time
            return self._duplicate(ref, adopted, deadline, "the result of these bytes takes this event's sequencer")
        elif final and not supersedes(existing, sequence, ref.etag, ref.ordering_time):  # type: ignore[arg-type]
            return self._duplicate(ref, existing, deadline, "a result for this or a newer event exists")  # type: ignore[arg-type]
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
        plans: list[FramePlans] = []
        try:
            return self._finish(ref, deadline, base, sequence, existing, plans, cache_writes, memory)
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
        existing: dict[str, Any] | None,
        plans: list[FramePlans],
        cache_writes: RecordAnswers | None,
        memory: MemoryHold | None = None,
    ) -> Outcome:
        try:
            result = self._analyze(ref, deadline, base, plans, cache_writes, memory)
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
        # The frames as decoded: a review that opens gets its thumbnails from them, not from a second decode.
        return self._commit(ref, result, existing, sequence, deadline, plans[0].frames if plans else ())

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
            return bool(self.store.put_failure(fit_result(failed), sequence, ref.ordering_time))
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not record the failure on the item")
            return False

    def forget(self, ref: ObjectRef) -> Outcome:
        """The object version was deleted: its analysis must not outlive it."""
        if not ref.sequencer and self.reader.exists(ref):
            # Without a sequencer the delete cannot be ordered against a re-upload: S3 itself can.
            return Outcome("done", "duplicate", "the object exists again; its result stays")
        # A result without a sequencer (a backfill's) of the bytes an unversioned key holds now may be newer
        # than this deletion: it stays. S3 can tell, and only for such a key.
        kept = self.reader.etag_now(ref) if ref.sequencer and not ref.version_id else None
        forgotten = self.store.forget(ref.pk, ref.sk, ref.sequence, self.on_delete, ref.ordering_time, ref.etag, kept)
        if not forgotten:
            return Outcome("done", "duplicate", "no older result to forget")
        self.review.forget(ref.pk, ref.sk)
        self._count("ResultsForgotten")
        return Outcome("done", "forgotten", "deleted" if self.on_delete == "delete" else "reduced to a tombstone")

    # -- steps ---------------------------------------------------------------------------------
    def _analyze(
        self,
        ref: ObjectRef,
        deadline: Deadline,
        base: dict[str, Any],
        plans: list[FramePlans],
        cache_writes: RecordAnswers | None = None,
        memory: MemoryHold | None = None,
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
        try:
            header = probe(data, self.max_pixels)
        except InputRejected as exc:
            return self._rejected(base, exc, len(data))
        # The vendors' cache lookups need only the bytes: they go out while the image is decoded. An
        # animation's answers are keyed by its frames' bytes, known only once they are decoded.
        prefetched = self.orchestrator.prefetch(sha256, cache_writes, lookups=not header.animated)
        # So does a poll of the hash banks that is due.
        screening = self.banks.for_image()
        if memory is not None:
            # Counted in decoded bytes, not file bytes: a 0.7 MB PNG can decode to 400 MB.
            memory.resize(len(data) + header.decoded_bytes)
        try:
            image = decode(data, self.max_pixels, sha256=sha256, frames=self.frame_limits)
        except InputRejected as exc:
            return self._rejected(base, exc, len(data))
        except MemoryError as exc:
            # Not the file's fault: another delivery, alone or in a larger container, can decode it.
            raise TransientFailure(
                ErrorInfo(code="server_error", message="out of memory while decoding the image; it will be retried")
            ) from exc
        if memory is not None:
            memory.resize(image.retained_bytes)
        request = AnalysisRequest(
            image=image,
            object_id=opaque_id(ref),
            deadline=deadline.reserving(WRITE_RESERVE_SECONDS),
            bucket=ref.bucket,
            key=ref.key,
            version_id=ref.version_id,
        )
        try:
            skip_vendors = screening.skip_vendors_for(image)
            frame_plans = run_frames(self.orchestrator, request, prefetched, skip_vendors=skip_vendors)
            plans.append(frame_plans)
            # Every analyzed frame's hash, in frame order: the first is the result's pdq.
            hashes = [h for plan in frame_plans.plans for output in plan.outputs() for h in output.pdq]
            bank_fields = screening.result_fields([ProviderOutput(pdq=list(dict.fromkeys(hashes)))])
        except BanksUnavailable as exc:
            raise TransientFailure(ErrorInfo(code="server_error", message=str(exc))) from exc
        if cache_writes is not None:
            cache_writes.done()  # the batch's answers may be cached while this result is written
        transient = frame_plans.transient_error()
        if transient is not None:
            raise TransientFailure(transient)
        judged = judge(frame_plans, self.thresholds, self.keep)
        flags = [*judged.flags, *screening.flags]
        runs = judged.runs
        error = None
        if judged.answered_by:
            status = "partial" if judged.missing else "succeeded"
            if judged.missing:
                failed = [r.error for r in runs if r.error is not None]
                error = (
                    failed[0]
                    if failed
                    else ErrorInfo(code="bad_response", message=f"no provider answered: {', '.join(judged.missing)}")
                )
        else:
            status = overall_status(runs)
            failed = [r.error for r in runs if r.error is not None]
            error = failed[0] if status != "succeeded" and failed else None
        if image.frames_unreadable:
            # Sampled frames the file broke off before were never judged: a capability had no answer for
            # them, so the result is partial (never the gate's clean), with the flags of the frames read.
            status, error = "partial", unreadable_frames_error(image.frames_unreadable, image.frames, error)
        omitted = {"frames": len(image.frames_unreadable)} if image.frames_unreadable else {}
        return AnalysisResult(
            **base,
            size_bytes=image.size_bytes,
            content_type=image.content_type,
            format=image.format,
            width=image.width,
            height=image.height,
            orientation=image.orientation if image.orientation in range(1, 9) else None,
            frames=image.frames,
            frames_analyzed=judged.frames_analyzed,
            frames_flagged=judged.frames_flagged,
            sha256=image.sha256,
            status=status,
            error=error,
            providers=runs,
            flags=flags,
            answered_by=judged.answered_by,
            usage=judged.usage,
            raw=pack_raw(
                judged.raw if self.keep.raw_for(flags) else {},
                self.raw_budget_bytes,
                # Answers too big for the item go to the artifacts bucket, when the store has one.
                offload=archive.writer(ref.pk) if (archive := self.store.raw_archive) is not None else None,
            ),
            omitted=omitted,
            analyzed_at=_now(),
            **bank_fields,
            **judged.sections,
        )

    @staticmethod
    def _rejected(base: dict[str, Any], exc: InputRejected, size: int) -> AnalysisResult:
        """Bad input: recorded with its reason, acknowledged, never retried, never sent to a vendor."""
        return AnalysisResult(**base, size_bytes=size, status="rejected", error=exc.info(), analyzed_at=_now())

    def _commit(
        self,
        ref: ObjectRef,
        analyzed: AnalysisResult,
        existing: dict[str, Any] | None,
        sequence: str,
        deadline: Deadline,
        frames: Any = (),
    ) -> Outcome:
        # Whatever the vendors answered, the item stays under DynamoDB's 400 KB: a put that is too big
        # would fail on every delivery. Fitted once before the review is carried over (a review is a couple
        # of KB at most, well inside the budget's margin), so that each write below has the same content.
        analyzed = fit_result(analyzed)
        result, carried_from = self.review.prepare(analyzed, existing)

        def carry_again(stored: dict[str, Any] | None) -> Any:
            # A moderator decided after the review was read: the result carries the decision now stored.
            self._count("ReviewCarriedAgain")
            return self.review.prepare(analyzed, stored)

        written = self.store.put_result(
            result, sequence, ref.ordering_time, carried_from=carried_from, carry_again=carry_again
        )
        if not written:
            existing = self.store.get(ref.pk, ref.sk) or {}
            return self._duplicate(ref, existing, deadline, "a result for this or a newer event exists")
        if written.result is not None:
            result = written.result
        self._count(f"Images{result.status.capitalize()}")
        self.review.record(result, written.replaced, frames)
        settled = self.actions.after_write(ref, result, sequence, deadline, written.replaced)
        if settled.quarantine is not None:
            result = result.model_copy(update={"quarantine": settled.quarantine})
        if settled.retry:
            # The result stands; the next delivery finds it and finishes the rest (``_duplicate``).
            return Outcome("retry", result.status, settled.reason, alerted=settled.alerted, result=result)
        return Outcome("done", result.status, alerted=settled.alerted, result=result)

    def _rematch(
        self, ref: ObjectRef, existing: dict[str, Any] | None, deadline: Deadline, memory: MemoryHold | None = None
    ) -> Outcome:
        """``bank rescan``: the stored result matched again; a new known_bad match tags, alerts (once more,
        with the id of the new flag set) and quarantines through the same steps as a fresh result."""
        from image_analysis.banks.rescan import rematch  # only rescans need it: kept off the cold path

        done = rematch(
            ref,
            existing,
            reader=self.reader,
            store=self.store,
            banks=self.banks,
            max_pixels=self.max_pixels,
            frame_limits=self.frame_limits,
            memory=memory,
        )
        if done.result is None:
            if done.heal and existing:
                return self._duplicate(ref, existing, deadline, done.detail)
            return Outcome("done", done.status, done.detail)
        self._count("RescanFlagged_known_bad")
        settled = self.actions.after_write(ref, done.result, done.sequence, deadline, existing)
        action = "retry" if settled.retry else "done"
        return Outcome(action, done.status, done.detail or settled.reason, alerted=settled.alerted, result=done.result)

    def _adopts(self, ref: ObjectRef, existing: dict[str, Any]) -> bool:
        """The real event of bytes a backfill or reconcile message (no sequencer) already analyzed."""
        if not ref.sequencer or not ref.etag or existing.get("seq") != UNSEQUENCED or existing.get("etag") != ref.etag:
            return False
        return self.store.adopt_sequence(ref.pk, ref.sk, ref.etag, ref.sequence, ref.ordering_time)

    def _duplicate(self, ref: ObjectRef, existing: dict[str, Any], deadline: Deadline, detail: str) -> Outcome:
        """Already analyzed: finish what a crash or a failure left undone (tags, alert, review queue)."""
        self.review.heal(existing)
        settled = self.actions.heal(ref, existing, deadline)
        if settled.retry:
            return Outcome("retry", "duplicate", settled.reason, alerted=settled.alerted)
        return Outcome("done", "duplicate", detail, alerted=settled.alerted)

    # -- metrics -------------------------------------------------------------------------------
    def _count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit=unit, value=value)
