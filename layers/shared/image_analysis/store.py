"""The results table: one item per object version, written only forward in S3's event order.

The durable guard against duplicates and reordering is the conditional write: an item is written when
none exists, when the event is newer (S3 ``sequencer``, padded to one width and kept in ``seq``), or
when the same event had only failed before. A ``skipped`` or ``failed`` write never replaces a final
result of other bytes (another ETag): it says nothing about them; nor a deleted object's watermark or
tombstone, unless it is for a newer event. A tombstone is never the failed item a retry completes, even
when the result it keeps had failed. ``alert_id`` is set after the alert
went out (who may publish it is the alert ledger's to decide, ``alert_ledger``), so a later delivery can
publish what a crash left unpublished.

A result of the same bytes written again (a duplicate, a reprocess) carries over the human review the item
had (``review.intake``); its write holds only while the item still carries that review, so that a
moderator's decision taken in between is never overwritten: the result then carries the decision now
stored and is written again (``put_result``).

A result written without a sequencer (a backfill or reconcile message) is adopted by the real S3 event
of the same bytes when it arrives (``adopt_sequence``), instead of being analyzed and alerted again. A
deletion keeps a watermark even when results are deleted (``OnDelete=delete``): a content-free item that
expires after ``DELETE_WATERMARK_DAYS``, so that a late or redelivered create event of the deleted object
is recognized as older instead of writing a result for an object that is gone.

Raw vendor answers too big for the item live in the artifacts bucket (``raw_archive``); the store deletes
the ones an item referenced when a write replaces that item, when the object's result is forgotten or
reduced to a tombstone, and the ones a write that lost its condition carried (each write has objects of
its own, so they are nobody else's). A write that fails otherwise keeps them: it may have been applied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from image_analysis.events import UNSEQUENCED
from image_analysis.models import AnalysisResult, Quarantine
from image_analysis.raw_archive import RawArchive, referenced_objects
from image_analysis.structs import checked, plain_numbers

FINAL_STATUSES = ("succeeded", "partial", "rejected", "skipped")
# A failed item that a retry of its event completes. A deleted object's item never is, whatever status
# its tombstone kept: a tombstone of a failed upload says ``failed`` and must still stay a tombstone.
RETRYABLE = "(#status = :failed AND attribute_not_exists(deleted_at))"
# Writes of one result when moderators' decisions keep landing between the read of the review it carries
# over and the write (each a human action: a second one within milliseconds is already rare).
REVIEW_WRITE_ATTEMPTS = 4
# How long a deleted object's watermark outlives it with OnDelete=delete: longer than a message can live
# in the queue and its dead-letter queue (14 days each) before it could be redriven.
DELETE_WATERMARK_DAYS = 30


class WriteOutcome:
    """Whether a result write landed, the item it replaced (None when there was none), and the result
    written when it is not the one given (it carries a decision taken meanwhile; None otherwise)."""

    def __init__(
        self, written: bool, replaced: dict[str, Any] | None = None, result: AnalysisResult | None = None
    ) -> None:
        self.written = written
        self.replaced = replaced
        self.result = result

    def __bool__(self) -> bool:
        return self.written


# Empty sections kept in the item all the same: what every reader looks at (the flags) and what a rescan
# appends to (the matches).
KEPT_WHEN_EMPTY = frozenset({"flags", "matches"})


def compact_document(result: AnalysisResult) -> dict[str, Any]:
    """The result as stored: without Nones, empty sections and the provenance's unset fields. Every
    attribute is bytes of every write (DynamoDB bills a write unit per KB; DynamoDB Local counts about 30
    bytes more per attribute than AWS documents), and a reader gets the schema's defaults back."""
    document = result.model_dump(exclude_none=True)
    document = {name: value for name, value in document.items() if name in KEPT_WHEN_EMPTY or value not in ([], {})}
    if result.provenance is not None:
        found = result.provenance.model_dump(exclude_defaults=True)
        document["provenance"] = {**found, "provider": result.provenance.provider}
    for run in document.get("providers", []):
        if not run.get("capabilities"):
            run.pop("capabilities", None)
    return document


def to_item(result: AnalysisResult, sequence: str, expires_at: int | None = None) -> dict[str, Any]:
    """The DynamoDB item: JSON numbers become Decimal (floats are refused by boto3), Nones dropped.

    The result is checked against its schema first (``ValidationError``): models are not checked when
    built, and NaN or a value out of range must never reach the table."""
    document = compact_document(checked(result))
    item = json.loads(json.dumps(document), parse_float=Decimal)
    item["pk"] = f"{result.bucket}/{result.key}"
    item["sk"] = result.version_id or "null"
    item["seq"] = sequence
    for flag in result.flags:
        # Sparse index keys: the month the flag was raised partitions the "flagged, newest first" indexes.
        item[f"flag_{flag}"] = result.analyzed_at[:7]
    if expires_at is not None:
        item["expires_at"] = expires_at
    return item


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item as plain JSON types (Decimal -> int or float)."""
    return plain_numbers(item)


# Attributes the store adds for its own keys, guards and indexes; not part of the result document.
STORE_ATTRIBUTES = frozenset(
    {
        "pk",
        "sk",
        "seq",
        "expires_at",
        "deleted_at",
        "alert_claimed_at",
        "event_time",
        "flag_nsfw",
        "flag_ai_generated",
        "flag_deepfake",
        "flag_known_bad",
    }
)


def result_of(item: dict[str, Any]) -> AnalysisResult:
    """The stored item as the contract's result (store-only attributes left out)."""
    document = {k: v for k, v in from_item(item).items() if k not in STORE_ATTRIBUTES}
    return AnalysisResult.model_validate(document)


class ReviewKeptChanging(RuntimeError):
    """Every write of a result found a review other than the one it carried over (REVIEW_WRITE_ATTEMPTS
    decisions in a row): nothing was written, and the event is delivered again."""


class _ReviewMoved(Exception):
    """A write lost only because the item no longer carries the review the result carried over."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("the stored review changed")
        self.current = current


class ResultStore:
    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        ttl_days: int = 0,
        clock: Callable[[], float] = time.time,
        raw_archive: RawArchive | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self._clock = clock
        self.raw_archive = raw_archive
        # Optional time-to-live of results (the table's TTL attribute ``expires_at``); 0 keeps them.
        self.ttl_days = ttl_days
        from image_analysis import dynamo_types as types

        self._serializer = types.TypeSerializer()
        self._deserializer = types.TypeDeserializer()

    def _marshal(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(v) for k, v in item.items()}

    def _unmarshal(self, raw: dict[str, Any] | None) -> dict[str, Any]:
        return {k: self._deserializer.deserialize(v) for k, v in (raw or {}).items()}

    def _release(self, old: dict[str, Any] | None, kept: dict[str, Any] | None = None) -> None:
        """Delete the raw objects ``old`` referenced that ``kept`` (the item now stored) does not."""
        if self.raw_archive is None or not old:
            return
        gone = referenced_objects(old.get("raw")) - referenced_objects((kept or {}).get("raw"))
        if gone:
            self.raw_archive.delete(gone)

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self.table_name, Key=self._marshal({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        raw = response.get("Item")
        return {k: self._deserializer.deserialize(v) for k, v in raw.items()} if raw else None

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """The items of several ``(pk, sk)`` keys, read consistently with one request per 100 keys (a
        batch's records, instead of one read each). A key DynamoDB leaves unprocessed (throttling) is
        absent from the answer, so the caller reads it on its own; a key with no item maps to None."""
        wanted = list(dict.fromkeys(keys))  # BatchGetItem refuses duplicate keys
        found: dict[tuple[str, str], dict[str, Any] | None] = {}
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            response = self._client.batch_get_item(
                RequestItems={
                    self.table_name: {
                        "Keys": [self._marshal({"pk": pk, "sk": sk}) for pk, sk in chunk],
                        "ConsistentRead": True,
                    }
                }
            )
            unprocessed = {
                (key["pk"]["S"], key["sk"]["S"])
                for key in response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            }
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = self._unmarshal(raw)
                found[(item["pk"], item["sk"])] = item
            for key in chunk:
                if key not in found and key not in unprocessed:
                    found[key] = None
        return found

    def put_result(
        self,
        result: AnalysisResult,
        sequence: str,
        event_time: str | None = None,
        carried_from: dict[str, Any] | None = None,
        carry_again: Callable[[dict[str, Any] | None], tuple[AnalysisResult, dict[str, Any] | None]] | None = None,
    ) -> WriteOutcome:
        """Write a result unless a result for the same or a newer event is already final.

        False (``WriteOutcome.written``) when the write lost to such an item (a duplicate or an older
        event); ``replaced`` is the item the write replaced, for what depends on it (taking quarantine tags
        off an object that is no longer flagged). A reprocess request may replace the result of the same
        event, once per request id. ``event_time`` (canonical, see ``events.canonical_time``) orders events
        that have no sequencer. A ``skipped`` result never replaces a final result of another ETag.

        ``carried_from``: the stored review that ``result.review`` was carried over from. The write then
        also needs the item to carry that review still: a decision taken since it was read (a moderator
        approving while a reprocess analyzed the bytes) is never overwritten. When only that fails,
        ``carry_again(item now stored)`` gives the result and what it carries over from the decision now
        stored, and that is written (``WriteOutcome.result``); without ``carry_again`` the write is lost.
        Raises ReviewKeptChanging after REVIEW_WRITE_ATTEMPTS such writes.
        """
        given = result
        for attempt in range(1, REVIEW_WRITE_ATTEMPTS + 1):
            item = self._item(result, sequence, event_time)
            try:
                written = self._conditional_put(
                    item, result.reprocess, skipped=result.status == "skipped", carried_from=carried_from
                )
            except _ReviewMoved as moved:
                if carry_again is not None and attempt < REVIEW_WRITE_ATTEMPTS:
                    # The raw objects stay: the next write of the same answers points at them.
                    result, carried_from = carry_again(moved.current)
                    continue
                self._release(item)
                if carry_again is None:
                    return WriteOutcome(False)
                raise ReviewKeptChanging(
                    f"the review of {item['pk']} ({item['sk']}) changed before each of {attempt} writes"
                ) from None
            if result is not given:
                written.result = result
            return written
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _item(self, result: AnalysisResult, sequence: str, event_time: str | None) -> dict[str, Any]:
        item = to_item(result, sequence, self._expiry())
        if event_time:
            item["event_time"] = event_time
        return item

    def _now(self) -> Decimal:
        return Decimal(str(round(self._clock(), 3)))

    def _expiry(self) -> int | None:
        return int(self._clock()) + self.ttl_days * 86400 if self.ttl_days > 0 else None

    def put_failure(self, result: AnalysisResult, sequence: str, event_time: str | None = None) -> WriteOutcome:
        """Record a transient failure (status ``failed``, ``error``, ``attempts``) under the same guard; it
        never replaces a final result of another ETag, nor one of the same bytes (they are analyzed)."""
        return self._conditional_put(self._item(result, sequence, event_time), skipped=True, failure=True)

    def _conditional_put(
        self,
        item: dict[str, Any],
        reprocess: Any = None,
        skipped: bool = False,
        failure: bool = False,
        carried_from: dict[str, Any] | None = None,
    ) -> WriteOutcome:
        """``skipped``: a write that says nothing about the object's bytes (``skipped``, ``failed``);
        ``failure``: a ``failed`` write; ``carried_from``: the stored review the item's was carried over
        from (raises _ReviewMoved when the write lost because the item no longer carries it)."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":seq": item["seq"], ":failed": "failed"}
        if item["seq"] != UNSEQUENCED:
            condition = f"attribute_not_exists(pk) OR seq < :seq OR (seq = :seq AND {RETRYABLE})"
        else:
            condition = _unsequenced_put_condition(item, values, skipped)
        if reprocess is not None:
            condition += " OR (seq = :seq AND (attribute_not_exists(#reprocess.#id) OR #reprocess.#id <> :rid))"
            names.update({"#reprocess": "reprocess", "#id": "id"})
            values[":rid"] = reprocess.id
        if skipped:
            # Whatever the sequence says, a write that read no bytes never replaces the result of other
            # bytes: a reprocess of ETag A that finds B under the key must not wipe B's flags. Nor does it
            # replace a deleted object's watermark or tombstone, unless it is for a newer event: a reprocess
            # that takes the deletion's sequence and finds the object gone says less than the deletion did.
            # A deletion older than this event is no result of other bytes, whatever ETag it keeps: a failure
            # of the next upload under the key must say so on the item.
            values[":etag"] = item.get("etag") or ""
            condition = (
                f"({condition}) AND (attribute_not_exists(pk) OR {RETRYABLE} OR ((etag = :etag"
                " OR attribute_not_exists(etag)) AND (attribute_not_exists(deleted_at) OR seq < :seq))"
                " OR (attribute_exists(deleted_at) AND seq < :seq)"
                # The failure of a newer event (S3 sequenced both it and the item's): the item's result is of
                # bytes the key no longer holds, and the message may end in the dead-letter queue with its
                # reason here. A backfill's result has no sequencer to say which came first: it stays.
                + (" OR (seq < :seq AND seq <> :unsequenced))" if failure and item["seq"] != UNSEQUENCED else ")")
            )
            values[":unsequenced"] = UNSEQUENCED
        if failure:
            # A failure on the way to a result (the real event adopting a backfill's, a heal) says less than
            # the final result of the same bytes already there: the item keeps it.
            values.update({f":final{i}": status for i, status in enumerate(FINAL_STATUSES)})
            finals = ", ".join(f":final{i}" for i in range(len(FINAL_STATUSES)))
            condition = (
                f"({condition}) AND NOT (etag = :etag AND #status IN ({finals}) AND attribute_not_exists(deleted_at))"
            )
        if carried_from is not None:
            # The whole map, compared as DynamoDB compares maps (every attribute, any order): any decision
            # changes it (status, decided_by, decided_at, appeals).
            condition = f"({condition}) AND #review = :carried"
            names["#review"] = "review"
            values[":carried"] = carried_from
        # DynamoDB refuses placeholders the expression does not use.
        names = {k: v for k, v in names.items() if k in condition}
        values = {k: v for k, v in values.items() if k in condition}
        try:
            response = self._client.put_item(
                TableName=self.table_name,
                Item=self._marshal(item),
                ConditionExpression=condition,
                ExpressionAttributeValues=self._marshal(values),
                ReturnValues="ALL_OLD",
                # The item that made the condition fail: whether it was the review or a newer result.
                **({"ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if carried_from is not None else {}),
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                if carried_from is not None:
                    raw = exc.response.get("Item")
                    # No item in the answer: none is stored, or the database returns none; a read tells.
                    current = self._unmarshal(raw) if raw else self.get(item["pk"], item["sk"])
                    if (current or {}).get("review") != carried_from:
                        raise _ReviewMoved(current) from None
                self._release(item)  # this write's own raw objects: no item will ever point at them
                return WriteOutcome(False)
            raise
        replaced = self._unmarshal((response or {}).get("Attributes")) or None
        self._release(replaced, kept=item)
        return WriteOutcome(True, replaced)

    def adopt_sequence(self, pk: str, sk: str, etag: str | None, sequence: str, event_time: str | None) -> bool:
        """The real S3 event of bytes a backfill or reconcile message already analyzed (no sequencer): the
        result takes the event's sequencer instead of being analyzed, and alerted, a second time. False
        when the item is no longer that unsequenced result of the same bytes."""
        values: dict[str, Any] = {":seq": sequence, ":unsequenced": UNSEQUENCED, ":etag": etag or ""}
        update = "SET seq = :seq"
        if event_time:
            values[":time"] = event_time
            update += ", event_time = :time"
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                UpdateExpression=update,
                ConditionExpression="seq = :unsequenced AND etag = :etag AND attribute_not_exists(deleted_at)",
                ExpressionAttributeValues=self._marshal(values),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def forget(
        self,
        pk: str,
        sk: str,
        sequence: str,
        mode: str,
        event_time: str | None = None,
        etag: str | None = None,
        current_etag: str | None = None,
    ) -> bool:
        """The object version is gone: reduce its item to a tombstone without the analysis content.

        ``mode`` "tombstone" keeps it (with what identifies the bytes: sha256, size, flags); "delete" keeps
        only a watermark (keys, ETag, sequence, times) that expires after ``DELETE_WATERMARK_DAYS`` (the
        table's time-to-live): long enough that a late or redelivered create event of the deleted object
        finds it and is recognized as older, instead of writing a result for an object that is gone. Only a
        newer event may forget: by sequencer, or, for a delete without one, by the event time and (when
        the event names it) the ETag of the object that was deleted. ``current_etag``: what the key holds
        now; a result without a sequencer (a backfill's) of those bytes describes them, whatever the
        deletion's sequencer says, and stays. A result a person rejected stays whatever ``mode`` says: it
        is the record of that decision (REJECT_ACTION=delete deletes the object itself).
        """
        from datetime import UTC, datetime

        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        bucket, _, key = pk.partition("/")
        plain: dict[str, Any] = {
            ":seq": sequence,
            ":now": now,
            ":bucket": bucket,
            ":key": key,
            ":gone": "skipped",
            ":rejected": "rejected",
        }
        condition = f"({_forget_condition(sequence, event_time, etag, plain, current_etag)}){KEEP_REJECTED}"
        # A delete that comes before any result (the object was deleted before it was analyzed) leaves a
        # watermark too: the item is made with the few attributes a result needs.
        sets = [
            "deleted_at = :now",
            "seq = :seq",
            "#bucket = if_not_exists(#bucket, :bucket)",
            "#key = if_not_exists(#key, :key)",
            "analyzed_at = if_not_exists(analyzed_at, :now)",
        ]
        if ":time" in plain:
            sets.append("event_time = :time")
        removed = CONTENT_ATTRIBUTES
        if mode == "tombstone":
            sets.append("#status = if_not_exists(#status, :gone)")
        else:
            plain[":expires"] = int(self._clock()) + DELETE_WATERMARK_DAYS * 86400
            sets += ["expires_at = :expires", "#status = :gone"]
            removed = WATERMARK_REMOVES
        update = "SET " + ", ".join(sets)
        values = self._marshal(plain)
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                # Every name through a placeholder: several (text, raw) are DynamoDB reserved words.
                UpdateExpression=f"REMOVE {', '.join(f'#{a}' for a in removed)} {update}",
                ConditionExpression=condition,
                ExpressionAttributeNames={
                    **{f"#{a}": a for a in removed},
                    "#bucket": "bucket",
                    "#key": "key",
                    "#status": "status",
                    **KEEP_REJECTED_NAMES,
                },
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        # The object is gone: so are the vendor answers kept about it.
        self._release(self._unmarshal((response or {}).get("Attributes")))
        return True

    def mark_quarantine(self, pk: str, sk: str, sequence: str, quarantine: Quarantine) -> bool:
        """Record what the quarantine tagging did, on this exact event's item; False if superseded."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                UpdateExpression="SET #quarantine = :quarantine",
                ConditionExpression="seq = :seq",
                ExpressionAttributeNames={"#quarantine": "quarantine"},
                ExpressionAttributeValues=self._marshal({":quarantine": quarantine.model_dump(), ":seq": sequence}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add_matches(
        self, pk: str, sk: str, sequence: str, matches: list[Any], known_bad: bool, month: str
    ) -> dict[str, Any] | None:
        """A stored result matched again (``bank rescan``): record its new bank matches; with ``known_bad``
        also the flag, and the previous alert's id taken off (it was for the flags before), so that the
        alert of the new flag set goes out once (the alert ledger sees to that). Conditional on the same
        event's item, not a tombstone, not known_bad already. Returns the updated item, or None when the
        condition failed (superseded, deleted, or flagged by someone else first)."""
        values: dict[str, Any] = {":seq": sequence, ":matches": matches}
        update = "SET matches = :matches"
        condition = "seq = :seq AND attribute_not_exists(deleted_at)"
        names: dict[str, str] = {}
        if known_bad:
            update += (
                ", #flags = list_append(if_not_exists(#flags, :none), :known_bad), flag_known_bad = :month"
                " REMOVE alert_id"
            )
            condition += " AND NOT contains(#flags, :flag)"
            names["#flags"] = "flags"
            values.update({":none": [], ":known_bad": ["known_bad"], ":flag": "known_bad", ":month": month})
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=self._marshal(values),
                ReturnValues="ALL_NEW",
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return self._unmarshal(response.get("Attributes"))

    def mark_alerted(self, pk: str, sk: str, alert_id: str, sequence: str) -> bool:
        """Record on this exact event's item the alert that went out for its flags; False if superseded."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                UpdateExpression="SET alert_id = :alert_id",
                ConditionExpression="seq = :seq AND attribute_not_exists(deleted_at)",
                ExpressionAttributeValues=self._marshal({":alert_id": alert_id, ":seq": sequence}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


CONTENT_ATTRIBUTES = (
    "labels", "objects", "faces", "celebrities", "text", "alt_texts", "colors", "classification",
    "moderation", "ai_generated", "deepfake", "quality", "provenance", "raw", "phash", "pdq", "pdq_quality",
    "matches", "frames_analyzed", "frames_flagged",
    "flag_nsfw", "flag_ai_generated", "flag_deepfake", "flag_known_bad",
)  # fmt: skip


# What a watermark keeps (OnDelete=delete): what orders events for the key, nothing about the bytes.
WATERMARK_KEEPS = frozenset(
    {"bucket", "key", "version_id", "etag", "sequencer", "status", "analyzed_at", "schema_version"}
)
WATERMARK_REMOVES = tuple(
    dict.fromkeys(
        [
            *(name for name in AnalysisResult.field_names() if name not in WATERMARK_KEEPS),
            *CONTENT_ATTRIBUTES,
            "alert_claimed_at",
        ]
    )
)
# Appended to the forget condition: an item whose review is ``rejected`` is never forgotten.
KEEP_REJECTED = " AND (attribute_not_exists(#review) OR #review.#review_status <> :rejected)"
KEEP_REJECTED_NAMES = {"#review": "review", "#review_status": "status"}


def _forget_condition(
    sequence: str, event_time: str | None, etag: str | None, values: dict[str, Any], current_etag: str | None = None
) -> str:
    if sequence != UNSEQUENCED:
        # A delete that S3 sequenced before a re-upload never removes its result; one that comes first
        # leaves the watermark a late create event of the deleted object must find.
        if not current_etag:
            return "attribute_not_exists(pk) OR seq < :seq"
        # An unsequenced result orders before every sequencer, yet it may be of the re-upload.
        values[":unsequenced"], values[":current"] = UNSEQUENCED, current_etag
        return "attribute_not_exists(pk) OR (seq < :seq AND NOT (seq = :unsequenced AND etag = :current))"
    condition = "attribute_exists(pk)"
    if etag:
        values[":etag"] = etag  # the emulator names the deleted object; its result alone may go
        condition += " AND etag = :etag"
    if event_time:
        values[":time"] = event_time
        condition += " AND (attribute_not_exists(event_time) OR event_time < :time)"
    return condition


def _unsequenced_put_condition(item: dict[str, Any], values: dict[str, Any], skipped: bool) -> str:
    """When the event has no sequencer: the same object (ETag) is a duplicate unless it had only failed;
    a different object under the key is newer unless its event is older than the stored one's.

    The object was read with ``IfMatch`` on its ETag, so a result describes what the key held at read
    time; the event time closes the window between two reads and their writes. A ``skipped`` result
    (the object was already gone or replaced) never replaces the result of another object.
    """
    parts = ["attribute_not_exists(pk)"]
    etag, event_time = item.get("etag"), item.get("event_time")
    other = None
    if etag:
        values[":etag"] = etag
        parts.append(f"(etag = :etag AND {RETRYABLE})")
        other = "(attribute_not_exists(etag) OR etag <> :etag)"
    else:
        parts.append(f"(attribute_not_exists(etag) AND {RETRYABLE})")
    if not skipped:
        if event_time:
            values[":time"] = event_time
            # A tombstone gives way to any later upload, even of the same bytes.
            parts.append("(attribute_exists(deleted_at) AND event_time < :time)")
            if other:
                parts.append(f"({other} AND (attribute_not_exists(event_time) OR event_time <= :time))")
            else:
                parts.append("event_time < :time")
        elif other:
            parts.append(other)
    return " OR ".join(parts)


def supersedes(existing: dict[str, Any], sequence: str, etag: str | None, event_time: str | None) -> bool:
    """Whether an event may replace ``existing`` (a final result): the same rule as the writes, so that
    a duplicate is recognized before the object is read."""
    if sequence != UNSEQUENCED:
        return existing.get("seq", "") < sequence
    stored_time = existing.get("event_time")
    if existing.get("deleted_at") and event_time and stored_time and stored_time < event_time:
        return True
    if etag and existing.get("etag") == etag:
        return False
    if etag:
        return not (event_time and stored_time and stored_time > event_time)
    return bool(event_time and stored_time and stored_time < event_time)
