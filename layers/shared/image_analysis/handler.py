"""The Lambda entry point's logic, kept out of ``functions/`` so that tests and tools call it directly.

For SQS it processes every message and returns ``batchItemFailures`` for exactly the messages to
retry; for a direct invocation a failure raises, so Lambda's own retries and the on-failure
destination apply. Objects of one batch are processed concurrently (vendor calls are mostly waiting),
bounded by a count and by the decoded bytes they may hold at once (``memory.ByteBudget``). It stops
starting new objects when the invocation is nearly out of time and hands those back instead of being
killed mid-write. A record
handed back for a reason the pipeline did not record itself (time ran out, an unexpected exception)
gets a ``failed`` item with that reason, best effort, so a dead-letter message always has one.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from image_analysis.events import ObjectRef, SourceRecord, parse_event
from image_analysis.memory import ByteBudget
from image_analysis.merge import MAX_TEXT_CHARS, cap_text
from image_analysis.models import ErrorInfo
from image_analysis.pipeline import Outcome
from image_analysis.providers.base import Deadline
from image_analysis.runtime import Runtime

# Time kept in hand: enough to finish the writes and the alert of the objects in progress.
START_MARGIN_SECONDS = 10.0


class RecordsFailed(Exception):
    """A direct invocation had objects to retry."""


@dataclass
class _Work:
    record: SourceRecord
    ref: ObjectRef


@dataclass
class _BatchReads:
    """What the records of one batch share so that they make fewer requests than one each: their stored
    items, read together at the start, and their fresh vendor answers, cached together."""

    known: dict[tuple[str, str], Any]
    answers: Any  # SharedAnswers, or None

    @classmethod
    def of(cls, pipeline: Any, work: list[_Work]) -> _BatchReads:
        if len(work) < 2:
            return cls({}, None)  # one record: it reads its own
        return cls(pipeline.read_results([item.ref for item in work]), pipeline.shared_answers(len(work)))

    def for_record(self, ref: ObjectRef) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if (ref.pk, ref.sk) in self.known:
            extra["existing"] = self.known[(ref.pk, ref.sk)]
        if self.answers is not None:
            extra["cache_writes"] = self.answers.for_record()
        return extra

    def settle(self, deadline: Deadline) -> None:
        if self.answers is not None:
            self.answers.wait(timeout=deadline.remaining())


def handle(event: Any, context: Any, runtime: Runtime, logger: Any) -> dict[str, Any]:
    parsed = parse_event(event)
    deadline = Deadline.from_lambda_context(context)
    work: list[_Work] = []
    for record in parsed.records:
        if record.error:
            # Not an S3 event at all: retrying cannot fix it, so it is acknowledged and logged.
            logger.error(
                "unreadable message acknowledged", extra={"message_id": record.message_id, "reason": record.error}
            )
            continue
        for reason in record.ignored:
            logger.info("event ignored", extra={"message_id": record.message_id, "reason": reason})
        for reason in record.malformed:
            # No delivery can make it work: acknowledged, and logged so the sender can be found and fixed.
            logger.error("malformed record acknowledged", extra={"message_id": record.message_id, "reason": reason})
        work.extend(_Work(record, ref) for ref in record.objects)

    settings = runtime.settings
    budget = ByteBudget(settings.batch_memory_budget_bytes)
    batch = _BatchReads.of(runtime.pipeline, work)

    def run(item: _Work) -> tuple[_Work, Outcome | None]:
        return item, _process_one(item, runtime, deadline, budget, logger, batch)

    workers = max(1, min(settings.record_concurrency, len(work)))
    if workers == 1:
        results = [run(item) for item in work]
    else:
        results = list(_record_pool(settings.record_concurrency).map(run, work))
    batch.settle(deadline)

    failures: list[str] = []
    summary: list[dict[str, Any]] = []
    for item, outcome in results:
        if outcome is None or outcome.action == "retry":
            message_id = item.record.message_id or "direct"
            if message_id not in failures:
                failures.append(message_id)
        summary.append(
            {
                "bucket": item.ref.bucket,
                "key": item.ref.key,
                "status": outcome.status if outcome else "error",
                "flags": _flags(outcome),
            }
        )
    if parsed.is_sqs:
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
    if failures:
        raise RecordsFailed(f"{len(summary)} object(s) processed; some must be retried: {summary}")
    return {"results": summary}


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _record_pool(size: int) -> ThreadPoolExecutor:
    """One pool of record threads per container, kept between invocations: starting ten threads for every
    batch delays its last records' start by milliseconds each, on a CPU the batch is already busy on."""
    with _pools_lock:
        if size not in _pools:
            _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="record")
        return _pools[size]


def _process_one(
    item: _Work,
    runtime: Runtime,
    deadline: Deadline,
    budget: ByteBudget,
    logger: Any,
    batch: _BatchReads,
) -> Outcome | None:
    """One object; ``None`` when it must be retried for a reason the pipeline could not record."""
    ref = item.ref
    shared = batch.for_record(ref)
    turn = shared.get("cache_writes")
    memory = budget.hold()
    try:
        if deadline.remaining() < START_MARGIN_SECONDS:
            logger.warning("too little time left; handing the record back", extra={"object_key": ref.key})
            _record_failure(
                runtime,
                item,
                ErrorInfo(code="timeout", message="the invocation ran out of time before this object; handed back"),
            )
            return None
        logger.thread_safe_append_keys(bucket=ref.bucket, object_key=ref.key, version_id=ref.version_id)
        # The download first; the pipeline grows the hold to the decoded size once the header is read.
        memory.resize(ref.size or 0)
        if turn is not None:
            # After the byte budget, never before: a record waiting for bytes holds no turn.
            turn.take_turn(timeout=deadline.remaining() - START_MARGIN_SECONDS)
        outcome = runtime.pipeline.process(ref, deadline, attempts=item.record.receive_count, memory=memory, **shared)
        _log_outcome(logger, outcome)
        return outcome
    except Exception as exc:
        logger.exception("processing failed; will retry")
        reason = cap_text(f"unexpected error, handed back: {type(exc).__name__}: {exc}", MAX_TEXT_CHARS)
        _record_failure(runtime, item, ErrorInfo(code="server_error", message=reason))
        return None
    finally:
        if turn is not None:
            turn.end_turn()
            turn.done()  # this record asks no vendor anything more
        memory.release()
        logger.thread_safe_clear_keys()


def _record_failure(runtime: Runtime, item: _Work, error: ErrorInfo) -> None:
    """Best effort, never raising: the record goes back to the queue whatever happens here."""
    record_failure = getattr(runtime.pipeline, "record_failure", None)
    if record_failure is None:
        return
    with contextlib.suppress(Exception):
        record_failure(item.ref, error, item.record.receive_count)


def _flags(outcome: Outcome | None) -> list[str]:
    return list(outcome.result.flags) if outcome is not None and outcome.result is not None else []


def _log_outcome(logger: Any, outcome: Outcome) -> None:
    extra: dict[str, Any] = {"status": outcome.status, "flags": _flags(outcome), "alerted": outcome.alerted}
    if outcome.result is not None and outcome.result.error is not None:
        extra["error"] = outcome.result.error.model_dump()
    if outcome.action == "retry":
        logger.warning("transient failure; will retry", extra=extra)
    else:
        logger.info("object processed", extra=extra)
