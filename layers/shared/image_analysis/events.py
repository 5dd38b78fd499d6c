"""Turn every event shape the function accepts into a flat list of object references.

Accepted (see the contract): SQS messages whose bodies are S3 notifications or EventBridge S3 events
(the deployed paths), direct S3 notifications (``sam local invoke``), and EventBridge "Object Created"
events. Keys arrive form-URL-encoded in S3 notifications (``+`` is a space, ``%2B`` a plus) and plain in
EventBridge events. Permanent deletions come through as references with ``removed`` set (their results
must not outlive them); test events, delete markers and other events are kept as ``ignored`` with the
reason, so the handler can log and acknowledge them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

# S3 sequencers are hexadecimal strings of varying length; AWS says to pad the shorter one with zeros
# and compare lexicographically. We right-pad to one fixed width so the stored value compares in a
# DynamoDB condition too.
SEQUENCER_WIDTH = 32


def padded_sequencer(sequencer: str | None) -> str:
    return (sequencer or "").upper().ljust(SEQUENCER_WIDTH, "0")


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str | None
    event_name: str
    event_time: str | None = None
    # Set by ``image-analysis reprocess``: run again on purpose, once per request id.
    reprocess_id: str | None = None
    reprocess_reason: str | None = None
    reprocess_requested_at: str | None = None

    @property
    def removed(self) -> bool:
        """A permanent deletion of this object version (not a delete marker, which keeps the data)."""
        return self.event_name.startswith("ObjectRemoved:") and self.event_name != "ObjectRemoved:DeleteMarkerCreated"

    @property
    def pk(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def sk(self) -> str:
        return self.version_id or "null"

    @property
    def sequence(self) -> str:
        return padded_sequencer(self.sequencer)


@dataclass(frozen=True)
class SourceRecord:
    """One unit the event source may retry: an SQS message, or the whole direct event."""

    message_id: str | None
    receive_count: int
    objects: tuple[ObjectRef, ...]
    ignored: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ParsedEvent:
    is_sqs: bool
    records: tuple[SourceRecord, ...]


def _clean_etag(etag: Any) -> str | None:
    return str(etag).strip('"') if etag else None


def _from_s3_record(record: dict[str, Any]) -> ObjectRef | str:
    name = record.get("eventName", "")
    s3 = record.get("s3") or {}
    obj = s3.get("object") or {}
    bucket = (s3.get("bucket") or {}).get("name")
    if name == "ObjectRemoved:DeleteMarkerCreated":
        return "delete marker created: the object's versions and their results remain"
    if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
        return f"not a create or delete event ({name or 'no eventName'})"
    if not bucket or not obj.get("key"):
        return "S3 record without bucket or key"
    return ObjectRef(
        bucket=bucket,
        key=unquote_plus(obj["key"]),
        version_id=obj.get("versionId") or None,
        etag=_clean_etag(obj.get("eTag")),
        size=obj.get("size"),
        sequencer=obj.get("sequencer") or None,
        event_name=name,
        event_time=record.get("eventTime"),
    )


def _from_eventbridge(event: dict[str, Any]) -> ObjectRef | str:
    detail_type = event.get("detail-type", "")
    detail = event.get("detail") or {}
    if detail_type == "Object Deleted" and detail.get("deletion-type") == "Delete Marker Created":
        return "delete marker created: the object's versions and their results remain"
    if detail_type not in ("Object Created", "Object Deleted"):
        return f"not a create or delete event ({detail_type or 'no detail-type'})"
    obj = detail.get("object") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    if not bucket or not obj.get("key"):
        return "EventBridge event without bucket or key"
    # EventBridge sends the key as it is, not URL-encoded.
    return ObjectRef(
        bucket=bucket,
        key=obj["key"],
        version_id=obj.get("version-id") or None,
        etag=_clean_etag(obj.get("etag")),
        size=obj.get("size"),
        sequencer=obj.get("sequencer") or None,
        event_name=(
            f"ObjectCreated:{detail.get('reason', 'EventBridge')}"
            if detail_type == "Object Created"
            else "ObjectRemoved:Delete"
        ),
        event_time=event.get("time"),
    )


def _with_request(ref: ObjectRef | str, payload: dict[str, Any]) -> ObjectRef | str:
    """Our own tools add ``imageAnalysis.reprocess`` beside the S3 records they send."""
    request = (payload.get("imageAnalysis") or {}).get("reprocess") or {}
    if isinstance(ref, str) or not request.get("id"):
        return ref
    return replace(
        ref,
        reprocess_id=str(request["id"]),
        reprocess_reason=str(request.get("reason") or "reprocess requested"),
        reprocess_requested_at=request.get("requested_at"),
    )


def _objects_in(payload: Any) -> Iterator[ObjectRef | str]:
    """Objects (or reasons to ignore) in an S3 notification or EventBridge event."""
    if isinstance(payload, list):  # a bare list of S3 records, as some tools print them
        payload = {"Records": payload}
    if not isinstance(payload, dict):
        yield "not a JSON object"
        return
    if payload.get("Event") == "s3:TestEvent":
        yield "s3:TestEvent"
        return
    if payload.get("source") == "aws.s3" and "detail" in payload:
        yield _from_eventbridge(payload)
        return
    records = payload.get("Records")
    if not isinstance(records, list) or not records:
        yield "no S3 records"
        return
    for record in records:
        yield (
            _with_request(_from_s3_record(record), payload)
            if isinstance(record, dict)
            else "S3 record is not an object"
        )


def _source_record(message_id: str | None, receive_count: int, payload: Any) -> SourceRecord:
    objects: list[ObjectRef] = []
    ignored: list[str] = []
    for item in _objects_in(payload):
        (objects if isinstance(item, ObjectRef) else ignored).append(item)  # type: ignore[arg-type]
    return SourceRecord(message_id, receive_count, tuple(objects), tuple(ignored))


def parse_event(event: Any) -> ParsedEvent:
    records = event.get("Records") if isinstance(event, dict) else None
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    ):
        parsed = []
        for message in records:
            receive_count = int((message.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
            try:
                body = json.loads(message.get("body") or "")
            except ValueError:
                parsed.append(SourceRecord(message.get("messageId"), receive_count, (), error="SQS body is not JSON"))
                continue
            parsed.append(_source_record(message.get("messageId"), receive_count, body))
        return ParsedEvent(is_sqs=True, records=tuple(parsed))
    return ParsedEvent(is_sqs=False, records=(_source_record(None, 1, event),))
