"""The results table: one item per object version, written only forward in S3's event order.

The durable guard against duplicates and reordering is the conditional write: an item is written when
none exists, when the event is newer (S3 ``sequencer``, padded to one width and kept in ``seq``), or
when the same event had only failed before. ``alert_id`` is set once, after the alert went out, so a
later delivery can publish what a crash left unpublished.

Who publishes is decided by a claim, never by reading: the winning write of a flagged result carries
``alert_claimed_at``, and a delivery that finds a flagged item without ``alert_id`` may publish only after
taking the claim over with a conditional update, which succeeds only once the claim is older than a
lease longer than any invocation. So copies of one event processed at the same time publish once, and a
crash between writing and publishing is still healed by the delivery after the visibility timeout.

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

FINAL_STATUSES = ("succeeded", "partial", "rejected", "skipped")


def to_item(result: AnalysisResult, sequence: str, expires_at: int | None = None) -> dict[str, Any]:
    """The DynamoDB item: JSON numbers become Decimal (floats are refused by boto3), Nones dropped."""
    document = result.model_dump(mode="json", exclude_none=True)
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

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(item)


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
        import boto3.dynamodb.types as types

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

    def put_result(self, result: AnalysisResult, sequence: str, event_time: str | None = None) -> bool:
        """Write a result unless a result for the same or a newer event is already final.

        Returns False when the write lost to such an item (a duplicate or an older event). A reprocess
        request may replace the result of the same event, once per request id. A flagged result is
        written with the alert claimed by this writer (``alert_claimed_at``), in the same conditional put.
        ``event_time`` (canonical, see ``events.canonical_time``) orders events that have no sequencer.
        """
        item = self._item(result, sequence, event_time)
        if result.flags:
            item["alert_claimed_at"] = self._now()
        return self._conditional_put(item, result.reprocess, skipped=result.status == "skipped")

    def _item(self, result: AnalysisResult, sequence: str, event_time: str | None) -> dict[str, Any]:
        item = to_item(result, sequence, self._expiry())
        if event_time:
            item["event_time"] = event_time
        return item

    def _now(self) -> Decimal:
        return Decimal(str(round(self._clock(), 3)))

    def _expiry(self) -> int | None:
        return int(self._clock()) + self.ttl_days * 86400 if self.ttl_days > 0 else None

    def put_failure(self, result: AnalysisResult, sequence: str, event_time: str | None = None) -> bool:
        """Record a transient failure (status ``failed``, ``error``, ``attempts``) under the same guard."""
        return self._conditional_put(self._item(result, sequence, event_time))

    def _conditional_put(self, item: dict[str, Any], reprocess: Any = None, skipped: bool = False) -> bool:
        names = {"#status": "status"}
        values: dict[str, Any] = {":seq": item["seq"], ":failed": "failed"}
        if item["seq"] != UNSEQUENCED:
            condition = "attribute_not_exists(pk) OR seq < :seq OR (seq = :seq AND #status = :failed)"
        else:
            condition = _unsequenced_put_condition(item, values, skipped)
        if reprocess is not None:
            condition += " OR (seq = :seq AND (attribute_not_exists(#reprocess.#id) OR #reprocess.#id <> :rid))"
            names.update({"#reprocess": "reprocess", "#id": "id"})
            values[":rid"] = reprocess.id
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
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self._release(item)  # this write's own raw objects: no item will ever point at them
                return False
            raise
        self._release(self._unmarshal((response or {}).get("Attributes")), kept=item)
        return True

    def forget(
        self,
        pk: str,
        sk: str,
        sequence: str,
        mode: str,
        event_time: str | None = None,
        etag: str | None = None,
    ) -> bool:
        """The object version is gone: delete its item, or keep a tombstone without the analysis content.

        Only a newer event may forget: by sequencer, or, for a delete without one, by the event time and
        (when the event names it) the ETag of the object that was deleted.
        """
        plain: dict[str, Any] = {":seq": sequence}
        condition = _forget_condition(sequence, event_time, etag, plain)
        set_time = ", event_time = :time" if ":time" in plain else ""
        if mode != "tombstone":
            plain = {k: v for k, v in plain.items() if k in condition}
        values = self._marshal(plain)
        try:
            if mode == "tombstone":
                from datetime import UTC, datetime

                values.update(self._marshal({":now": datetime.now(UTC).isoformat(timespec="seconds")}))
                response = self._client.update_item(
                    TableName=self.table_name,
                    Key=self._marshal({"pk": pk, "sk": sk}),
                    # Every name through a placeholder: several (text, raw) are DynamoDB reserved words.
                    UpdateExpression=f"REMOVE {', '.join(f'#{a}' for a in CONTENT_ATTRIBUTES)} "
                    f"SET deleted_at = :now, seq = :seq{set_time}",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={f"#{a}": a for a in CONTENT_ATTRIBUTES},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",
                )
            else:
                response = self._client.delete_item(
                    TableName=self.table_name,
                    Key=self._marshal({"pk": pk, "sk": sk}),
                    ConditionExpression=condition,
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

    def claim_alert(self, pk: str, sk: str, sequence: str, lease_seconds: float) -> bool:
        """Take over the right to publish this item's alert; False while another delivery may hold it.

        Succeeds only for the same event's item, not yet alerted, not a tombstone, whose claim is absent or
        older than ``lease_seconds`` (longer than an invocation can run, so its holder is gone).
        """
        now = self._now()
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                UpdateExpression="SET alert_claimed_at = :now",
                ConditionExpression="seq = :seq AND attribute_not_exists(alert_id) AND attribute_not_exists(deleted_at)"
                " AND (attribute_not_exists(alert_claimed_at) OR alert_claimed_at < :stale)",
                ExpressionAttributeValues=self._marshal(
                    {":now": now, ":seq": sequence, ":stale": now - Decimal(str(lease_seconds))}
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
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
                ExpressionAttributeValues=self._marshal(
                    {":quarantine": quarantine.model_dump(mode="json"), ":seq": sequence}
                ),
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
        also the flag, with the alert claimed for this writer and the previous alert's id taken off, so
        that exactly one more alert goes out (its id follows the new set of flags). Conditional on the same
        event's item, not a tombstone, not known_bad already. Returns the updated item, or None when the
        condition failed (superseded, deleted, or flagged by someone else first)."""
        values: dict[str, Any] = {":seq": sequence, ":matches": matches}
        update = "SET matches = :matches"
        condition = "seq = :seq AND attribute_not_exists(deleted_at)"
        names: dict[str, str] = {}
        if known_bad:
            update += (
                ", #flags = list_append(if_not_exists(#flags, :none), :known_bad), flag_known_bad = :month,"
                " alert_claimed_at = :now REMOVE alert_id"
            )
            condition += " AND NOT contains(#flags, :flag)"
            names["#flags"] = "flags"
            values.update(
                {":none": [], ":known_bad": ["known_bad"], ":flag": "known_bad", ":month": month, ":now": self._now()}
            )
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
        """Record that the alert for this exact event went out; False if already recorded or superseded."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._marshal({"pk": pk, "sk": sk}),
                UpdateExpression="SET alert_id = :alert_id",
                ConditionExpression="seq = :seq AND attribute_not_exists(alert_id)",
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


def _forget_condition(sequence: str, event_time: str | None, etag: str | None, values: dict[str, Any]) -> str:
    if sequence != UNSEQUENCED:
        # A delete that S3 sequenced before a re-upload never removes its result.
        return "attribute_exists(pk) AND seq < :seq"
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
        parts.append("(etag = :etag AND #status = :failed)")
        other = "(attribute_not_exists(etag) OR etag <> :etag)"
    else:
        parts.append("(attribute_not_exists(etag) AND #status = :failed)")
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
