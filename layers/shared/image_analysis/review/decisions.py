"""Decisions on a review: approve, reject, escalate, appeal.

Each decision is one DynamoDB transaction: the result item's ``review`` (conditional on the status the
decision was taken from, and on the bytes the moderator saw when an ETag is given), the queue item, and
a new audit record carrying the outbox flag. Either all three are written or none. The
``image.reviewed`` message goes out after it; when publishing fails (or the caller dies first), the
record keeps its outbox flag and ``sweep`` (the review function's schedule, or ``image-analysis review
sweep``) publishes it later, once.

    approve   pending, escalated -> approved   (the quarantine comes off; with the gate, verdict=clean)
    reject    pending, escalated -> rejected   (stays quarantined; REJECT_ACTION=delete deletes it)
    escalate  pending            -> escalated
    appeal    rejected           -> pending    (appeals + 1)

What a decision does to the object (tags, deletion, hash banks) is applied by the review function when
the message reaches it (``effects``): under its own role, from the item's state, retried by its queue.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from image_analysis.models import Review
from image_analysis.review.audit import AuditLog, signals_of
from image_analysis.review.errors import DecisionRefused, InvalidDecision, ReviewNotFound
from image_analysis.review.ids import ReviewId
from image_analysis.review.publisher import DecisionPublisher
from image_analysis.review.queue import ReviewQueue
from image_analysis.review.table import Table
from image_analysis.store import STORE_ATTRIBUTES, result_of

# decision -> (the status it leads to, the statuses it may be taken from)
TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "approve": ("approved", frozenset({"pending", "escalated"})),
    "reject": ("rejected", frozenset({"pending", "escalated"})),
    "escalate": ("escalated", frozenset({"pending"})),
    "appeal": ("pending", frozenset({"rejected"})),
}
REASON_REQUIRED = frozenset({"reject", "appeal"})
MAX_REASON = 1000
# How old an unpublished record must be before the sweep publishes it: longer than a deciding caller
# takes to publish its own (SDK retries included), so the two never overlap.
SWEEP_AFTER_SECONDS = 300.0


def now_iso(clock: Callable[[], float] = time.time) -> str:
    moment = datetime.fromtimestamp(clock(), UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class DecisionOutcome:
    record: dict[str, Any]
    review: Review
    published: bool
    note: str = ""


def current_of(review: Review | None) -> dict[str, Any]:
    """The contract's ``current`` of a refusal."""
    if review is None:
        return {"status": None, "decided_by": None, "decided_at": None}
    return {"status": review.status, "decided_by": review.decided_by, "decided_at": review.decided_at}


def refusal(decision: str, review: Review, seen: str | None = None) -> str:
    if review.decided_by:
        return f"already decided by {review.decided_by} ({review.status} at {review.decided_at}); {decision} is refused"
    if seen and seen != review.status:
        return f"{decision} is refused: the review is {review.status}, not {seen}"
    allowed = " or ".join(sorted(TRANSITIONS[decision][1]))
    return f"{decision} is refused: the review is {review.status}, not {allowed}"


class Decisions:
    def __init__(
        self,
        *,
        results_table: str,
        queue: ReviewQueue,
        audit: AuditLog,
        publisher: DecisionPublisher,
        dynamodb_client: Any,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        logger: Any = None,
    ) -> None:
        self.results = Table(results_table, dynamodb_client)
        self.queue = queue
        self.audit = audit
        self.publisher = publisher
        self._client = dynamodb_client
        self._clock = clock
        self._new_id = new_id
        self.logger = logger

    # -- reading ------------------------------------------------------------------------------------
    def result_item(self, rid: ReviewId) -> dict[str, Any]:
        item = self.results.get({"pk": rid.result_pk, "sk": rid.result_sk})
        if item is None or item.get("deleted_at"):
            raise ReviewNotFound(f"no result for {rid.url}")
        if not item.get("review"):
            raise ReviewNotFound(f"{rid.url} is not under review")
        return item

    def show(self, rid: ReviewId) -> dict[str, Any]:
        """The review, the result it is about (without the raw vendor answers) and its history."""
        item = self.result_item(rid)
        result = {k: v for k, v in item.items() if k not in STORE_ATTRIBUTES and k != "raw"}
        return {
            "id": rid.encoded,
            "review": item["review"],
            "queue": self.queue.get(rid),
            "result": result,
            "history": self.history(rid),
        }

    def history(self, rid: ReviewId) -> list[dict[str, Any]]:
        return [_public_record(r) for r in self.audit.history(rid)]

    # -- deciding -----------------------------------------------------------------------------------
    def decide(
        self,
        rid: ReviewId,
        decision: str,
        *,
        by: str,
        reason: str | None = None,
        from_status: str | None = None,
        etag: str | None = None,
    ) -> DecisionOutcome:
        """Take ``decision``; ``from_status`` is the status the caller saw (default: the current one).

        Raises DecisionRefused when the review is not in a status the decision can be taken from, or
        changed meanwhile (another moderator's decision, or new bytes under the key when ``etag`` is
        given); InvalidDecision for a bad argument; ReviewNotFound.
        """
        if decision not in TRANSITIONS:
            raise InvalidDecision(f"decision must be one of {', '.join(TRANSITIONS)}, not {decision!r}")
        reason = (reason or "").strip() or None
        if decision in REASON_REQUIRED and not reason:
            raise InvalidDecision(f"{decision} needs a reason")
        if reason and len(reason) > MAX_REASON:
            raise InvalidDecision(f"the reason is {len(reason)} characters; at most {MAX_REASON}")
        if not by:
            raise InvalidDecision("the caller's identity is unknown")
        target, sources = TRANSITIONS[decision]
        item = self.result_item(rid)
        result = result_of(item)
        review = result.review
        assert review is not None  # result_item refused items without one
        seen = from_status or review.status
        if seen != review.status or review.status not in sources:
            raise DecisionRefused(refusal(decision, review, seen), current_of(review))
        if etag and item.get("etag") != etag:
            raise DecisionRefused(
                f"the object changed since it was shown (ETag {item.get('etag')}); look at it again",
                current_of(review),
            )
        decided_at = now_iso(self._clock)
        decision_id = self._new_id()
        new_review = Review(
            status=target,  # type: ignore[arg-type]
            reason=reason,
            decided_by=by,
            decided_at=decided_at,
            appeals=review.appeals + (1 if decision == "appeal" else 0),
        )
        record = {
            "pk": rid.plain,
            "sk": f"{decided_at}#{decision_id}",
            "decision_id": decision_id,
            "decision": decision,
            "previous": review.status,
            "by": by,
            "reason": reason,
            "decided_at": decided_at,
            "bucket": rid.bucket,
            "key": rid.key,
            "version_id": rid.version_id,
            "etag": result.etag,
            "sha256": result.sha256,
            "flags": list(result.flags),
            "signals": signals_of(result),
            "appeals": new_review.appeals,
        }
        # Guarded by the bytes the caller saw, or else by those just read: new bytes under the key between
        # this read and the write reopen the review, and this decision is then refused, not applied to them.
        self._transact(rid, seen, etag or result.etag, new_review, result.analyzed_at, record, decision)
        note = ""
        if decision == "approve" and new_review.appeals:
            queued = self.queue.get(rid) or {}
            if queued.get("object_deleted_at"):
                note = (
                    f"the object version was deleted when it was rejected ({queued['object_deleted_at']}); "
                    "approving it records the decision but cannot bring the bytes back"
                )
        published = self.publish(record)
        shown = _public_record({**record, "outbox": None if published else "pending"})
        return DecisionOutcome(record=shown, review=new_review, published=published, note=note)

    def _transact(
        self,
        rid: ReviewId,
        seen: str,
        etag: str | None,
        review: Review,
        analyzed_at: str,
        record: dict[str, Any],
        decision: str,
    ) -> None:
        guard = "attribute_exists(pk) AND attribute_not_exists(deleted_at) AND #review.#status = :from"
        guard_values: dict[str, Any] = {":from": seen, ":review": review.model_dump(exclude_none=True)}
        if etag:
            guard += " AND etag = :etag"
            guard_values[":etag"] = etag
        queue_set = {
            "#status": ("status", review.status),
            "#decided_by": ("decided_by", review.decided_by),
            "#decided_at": ("decided_at", review.decided_at),
            "#appeals": ("appeals", review.appeals),
            "#flags": ("flags", record["flags"]),
            "#result_pk": ("result_pk", rid.result_pk),
            "#result_sk": ("result_sk", rid.result_sk),
            "#bucket": ("bucket", rid.bucket),
            "#key": ("key", rid.key),
        }
        sets = [f"{name} = :{name[1:]}" for name in queue_set]
        # The listing's order stays the time the review opened; a missing item (a crash) is recreated.
        sets.append("#analyzed_at = if_not_exists(#analyzed_at, :analyzed_at)")
        names = {name: attribute for name, (attribute, _) in queue_set.items()} | {"#analyzed_at": "analyzed_at"}
        values = {f":{name[1:]}": value for name, (_, value) in queue_set.items()} | {":analyzed_at": analyzed_at}
        removes = []
        for attribute, value in (("reason", review.reason), ("version_id", rid.version_id)):
            names[f"#{attribute}"] = attribute
            if value is None:
                removes.append(f"#{attribute}")
            else:
                sets.append(f"#{attribute} = :{attribute}")
                values[f":{attribute}"] = value
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        results, queue = self.results, self.queue.table
        items = [
            {
                "Update": {
                    "TableName": results.name,
                    "Key": results.marshal({"pk": rid.result_pk, "sk": rid.result_sk}),
                    "UpdateExpression": "SET #review = :review",
                    "ConditionExpression": guard,
                    "ExpressionAttributeNames": {"#review": "review", "#status": "status"},
                    "ExpressionAttributeValues": results.marshal(guard_values),
                }
            },
            {
                "Update": {
                    "TableName": queue.name,
                    "Key": queue.marshal({"pk": rid.plain}),
                    "UpdateExpression": update,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": queue.marshal(values),
                }
            },
            self.audit.put_request(record),
        ]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            # Someone decided between our read and our write, or new bytes reopened the review.
            now = result_of(self.result_item(rid))
            current = now.review
            assert current is not None
            if current.status != seen:
                raise DecisionRefused(refusal(decision, current, seen), current_of(current)) from None
            if etag and now.etag != etag:
                raise DecisionRefused(
                    f"the object changed since it was shown (ETag {now.etag}); look at it again", current_of(current)
                ) from None
            raise

    # -- the outbox ---------------------------------------------------------------------------------
    def publish(self, record: dict[str, Any]) -> bool:
        """Publish a record's message and clear its outbox flag; False (logged) when publishing failed,
        in which case the flag stays and the sweep publishes it later."""
        try:
            message_id = self.publisher.publish(record)
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not publish the decision; the sweep will", extra=_ids(record))
            return False
        self.audit.mark_published(record, message_id)
        return True

    def sweep(self, older_than_seconds: float = SWEEP_AFTER_SECONDS, limit: int = 100) -> int:
        """Publish every decision still flagged in the outbox and decided over ``older_than_seconds``
        ago; each is claimed first, so two sweeps at once publish it once. Returns how many went out."""
        before = now_iso(lambda: self._clock() - older_than_seconds)
        published = 0
        for record in self.audit.unpublished(before, limit):
            if not self.audit.claim(record, lease_seconds=max(older_than_seconds, 1.0)):
                continue
            if self.publish(record):
                published += 1
        return published


def _ids(record: dict[str, Any]) -> dict[str, Any]:
    return {"decision_id": record.get("decision_id"), "review": record.get("pk")}


# What a history entry shows: the record without the outbox's bookkeeping.
_BOOKKEEPING = {"outbox", "outbox_claimed_at", "published_message_id"}


def _public_record(record: dict[str, Any]) -> dict[str, Any]:
    public = {k: v for k, v in record.items() if k not in _BOOKKEEPING and v is not None}
    public["published"] = "outbox" not in record or record.get("outbox") is None
    return public
