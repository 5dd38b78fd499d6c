"""The Lambda entry point's logic, kept out of ``functions/`` so that tests and tools call it directly.

For SQS it processes every message and returns ``batchItemFailures`` for exactly the messages to
retry; for a direct invocation a failure raises, so Lambda's own retries and the on-failure
destination apply. It stops starting new objects when the invocation is nearly out of time and hands
those back instead of being killed mid-write.
"""

from __future__ import annotations

from typing import Any

from image_analysis.events import parse_event
from image_analysis.pipeline import Outcome
from image_analysis.providers.base import Deadline
from image_analysis.runtime import Runtime

# Time kept in hand: enough to finish the writes and the alert of the object in progress.
START_MARGIN_SECONDS = 10.0


class RecordsFailed(Exception):
    """A direct invocation had objects to retry."""


def handle(event: Any, context: Any, runtime: Runtime, logger: Any) -> dict[str, Any]:
    parsed = parse_event(event)
    deadline = Deadline.from_lambda_context(context)
    failures: list[str] = []
    summary: list[dict[str, Any]] = []
    for record in parsed.records:
        if record.error:
            # Not an S3 event at all: retrying cannot fix it, so it is acknowledged and logged.
            logger.error(
                "unreadable message acknowledged", extra={"message_id": record.message_id, "reason": record.error}
            )
            continue
        for reason in record.ignored:
            logger.info("event ignored", extra={"message_id": record.message_id, "reason": reason})
        retry = False
        for ref in record.objects:
            if deadline.remaining() < START_MARGIN_SECONDS:
                logger.warning("too little time left; handing the record back", extra={"key": ref.key})
                retry = True
                break
            with logger.append_context_keys(bucket=ref.bucket, object_key=ref.key, version_id=ref.version_id):
                try:
                    outcome = runtime.pipeline.process(ref, deadline, attempts=record.receive_count)
                except Exception:
                    logger.exception("processing failed; will retry")
                    retry = True
                    summary.append({"bucket": ref.bucket, "key": ref.key, "status": "error"})
                    continue
                _log_outcome(logger, outcome)
                retry = retry or outcome.action == "retry"
                summary.append(
                    {"bucket": ref.bucket, "key": ref.key, "status": outcome.status, "flags": _flags(outcome)}
                )
        if retry:
            failures.append(record.message_id or "direct")
    if parsed.is_sqs:
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
    if failures:
        raise RecordsFailed(f"{len(summary)} object(s) processed; some must be retried: {summary}")
    return {"results": summary}


def _flags(outcome: Outcome) -> list[str]:
    return list(outcome.result.flags) if outcome.result is not None else []


def _log_outcome(logger: Any, outcome: Outcome) -> None:
    extra = {"status": outcome.status, "flags": _flags(outcome), "alerted": outcome.alerted}
    if outcome.result is not None and outcome.result.error is not None:
        extra["error"] = outcome.result.error.model_dump()
    if outcome.action == "retry":
        logger.warning("transient failure; will retry", extra=extra)
    else:
        logger.info("object processed", extra=extra)
