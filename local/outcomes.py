"""What each invocation did to each object, read back from the results table: one line per object.

The handler answers an SQS batch with ``batchItemFailures`` only. What happened to each object is in
its stored result: this reads it after the invocation and says, per object, whether this delivery
analyzed it, found it already analyzed, forgot a deleted one, or handed it back (and whether that was
its last delivery before the dead-letter queue). Messages that name no object (the ``s3:TestEvent`` S3
sends when a bucket's notification is set up) get a line saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TextIO

import boto3

from local.driver import Invocation, _lambda_record

Kind = Literal["analyzed", "already", "forgotten", "retry", "dead_letter", "crashed", "acknowledged"]


@dataclass
class Outcome:
    kind: Kind
    bucket: str | None
    key: str | None
    item: dict[str, Any] | None
    note: str = ""


def _analyzed_at(item: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(item["analyzed_at"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return None


def outcomes_of(invocation: Invocation, table: str) -> list[Outcome]:
    """One entry per object (or per message that names none) of the invocation."""
    from image_analysis.events import parse_event
    from image_analysis.store import from_item

    results = boto3.resource("dynamodb").Table(table)
    found: list[Outcome] = []
    for message in invocation.messages:
        record = parse_event({"Records": [_lambda_record(message, "arn:aws:sqs:local")]}).records[0]
        failed = message["MessageId"] in invocation.failed_ids
        deliveries = invocation.receive_count(message)
        last = invocation.max_receive_count is not None and deliveries >= invocation.max_receive_count
        if not record.objects:
            reasons = [record.error] if record.error else [*record.ignored, *record.malformed]
            note = "; ".join(r for r in reasons if r) or "no object"
            if note == "s3:TestEvent":
                note = "s3:TestEvent (S3 sends one when a bucket's notification is set up)"
            found.append(Outcome("crashed" if invocation.error else "acknowledged", None, None, None, note))
            continue
        for ref in record.objects:
            raw = results.get_item(Key={"pk": ref.pk, "sk": ref.sk}, ConsistentRead=True).get("Item")
            item = from_item(raw) if raw else None
            if invocation.error is not None:
                note = f"the function raised {type(invocation.error).__name__}: {invocation.error}"
                found.append(Outcome("dead_letter" if last else "crashed", ref.bucket, ref.key, item, note))
            elif failed:
                error = (item or {}).get("error") or {}
                note = f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
                kind: Kind = "dead_letter" if last else "retry"
                note += f" (delivery {deliveries}" + (f" of {invocation.max_receive_count})" if last else ")")
                found.append(Outcome(kind, ref.bucket, ref.key, item, note))
            elif ref.removed:
                found.append(Outcome("forgotten", ref.bucket, ref.key, item))
            else:
                when = _analyzed_at(item or {})
                fresh = when is not None and when >= invocation.started_at - 0.001
                found.append(Outcome("analyzed" if fresh else "already", ref.bucket, ref.key, item))
    return found


def _percent(value: Any) -> str:
    return f"{float(value):.0%}"


def describe(item: dict[str, Any]) -> str:
    """A result in a few words: format and size, the best labels, flags, the error."""
    parts = []
    if item.get("format"):
        dims = f" {item['width']}x{item['height']}" if item.get("width") else ""
        parts.append(f"{item['format']}{dims}")
    names: dict[str, float] = {}
    for label in item.get("labels") or []:
        names.setdefault(label["name"], label["confidence"])
    if names:
        parts.append("labels: " + ", ".join(f"{n} {_percent(c)}" for n, c in list(names.items())[:3]))
    parts.append("flags: " + (",".join(item.get("flags") or []) or "-"))
    error = item.get("error")
    if error:
        parts.append(f"{error['code']}: {error['message']}")
    return "  ".join(parts)


class ObjectLines:
    """Prints one line per object of every invocation, flushed as it happens (``on_invocation``)."""

    def __init__(self, table: str, bucket: str, out: TextIO) -> None:
        self.table = table
        self.bucket = bucket
        # Kept from the start: the driver swaps sys.stdout while the handler runs.
        self.out = out
        self.seen: list[Outcome] = []

    def _name(self, outcome: Outcome) -> str:
        if outcome.key is None:
            return "(message)"
        return outcome.key if outcome.bucket == self.bucket else f"s3://{outcome.bucket}/{outcome.key}"

    def line(self, outcome: Outcome) -> str:
        name = self._name(outcome)
        item = outcome.item or {}
        if outcome.kind == "analyzed":
            return f"{item.get('status', '?'):<10} {name}  {describe(item)}"
        if outcome.kind == "already":
            return f"{'unchanged':<10} {name}  already analyzed at {item.get('analyzed_at')}: {item.get('status')}"
        if outcome.kind == "forgotten":
            if item and item.get("sha256"):
                left = "a tombstone is kept"
            else:
                left = "its result was deleted" + (" (a watermark of its key stays 30 days)" if item else "")
            return f"{'deleted':<10} {name}  {left}"
        if outcome.kind == "retry":
            return f"{'retry':<10} {name}  {outcome.note}; handed back to the queue"
        if outcome.kind == "dead_letter":
            return f"{'dead-letter':<10} {name}  {outcome.note}; the queue moves it to the dead-letter queue"
        if outcome.kind == "crashed":
            return f"{'error':<10} {name}  {outcome.note}; the batch goes back to the queue"
        return f"{'ignored':<10} {name}  {outcome.note}: acknowledged"

    def __call__(self, invocation: Invocation) -> None:
        try:
            found = outcomes_of(invocation, self.table)
        except Exception as exc:  # the results could not be read: say so, and keep the stack running
            keys = len(invocation.messages)
            print(f"{time.strftime('%H:%M:%S')}  {'unknown':<10} {keys} message(s): {exc}", file=self.out, flush=True)
            return
        for outcome in found:
            self.seen.append(outcome)
            print(f"{time.strftime('%H:%M:%S')}  {self.line(outcome)}", file=self.out, flush=True)
