"""Turn every event shape the function accepts into a flat list of object references.

Accepted (see the contract): SQS messages whose bodies are S3 notifications or EventBridge S3 events
(the deployed paths), direct S3 notifications (``sam local invoke``), and EventBridge "Object Created"
events; and, wrapping any of those, the record Lambda's on-failure destination keeps of a failed direct
invocation (``requestPayload``), which is what a dead-letter redrive brings back. Keys arrive
form-URL-encoded in S3 notifications (``+`` is a space, ``%2B`` a plus) and plain in
EventBridge events. Permanent deletions come through as references with ``removed`` set (their results
must not outlive them); test events, delete markers and other events are kept as ``ignored`` with the
reason, so the handler can log and acknowledge them. A record of the wrong shape (``"key": 5``,
``"s3": "x"``) is ``malformed``: it can never succeed, so it is acknowledged and logged as an error, and
it never fails the other records of its message or batch.

The shapes are read through Powertools' event data classes (``SQSEvent``, ``S3Event``,
``S3EventBridgeNotificationEvent``). They are thin views that trust their input, so every value is
type-checked here before it is used, and three of their accessors are bypassed on purpose (each says why
where it happens). The parser's pydantic models are not used: they cost about three times the import time
for checks this module needs to make itself anyway (a malformed record must not hide its neighbours).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

# Importing a submodule still runs the package's __init__ (all data classes, about 13 ms and 38 modules);
# the two submodules named here are what this module uses.
from aws_lambda_powertools.utilities.data_classes.s3_event import (
    S3Event,
    S3EventBridgeNotificationEvent,
    S3EventRecord,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent, SQSRecord

# S3 sequencers are hexadecimal strings of varying length; AWS says to pad the shorter one with zeros
# and compare lexicographically. We right-pad to one fixed width so the stored value compares in a
# DynamoDB condition too.
SEQUENCER_WIDTH = 32


def padded_sequencer(sequencer: str | None) -> str:
    return (sequencer or "").upper().ljust(SEQUENCER_WIDTH, "0")


# What an event without a sequencer pads to. S3 always sends one; the emulator's own notifications,
# hand-made events and the backfill tool do not. Such events are ordered by the object's identity
# (ETag) and the event time instead (see ``ResultStore``).
UNSEQUENCED = padded_sequencer(None)

DELETE_MARKER_REASON = "delete marker created: the object's versions and their results remain"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical_time(value: str | None) -> str | None:
    """An event time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC), so that times compare as strings."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _iso(parsed)


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
    # Set by ``image-analysis bank rescan``: match the stored result against these banks again (no new
    # analysis); None for every other event.
    rematch_banks: tuple[str, ...] | None = None

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

    @property
    def ordering_time(self) -> str | None:
        """The event time, comparable as a string; what orders events that carry no sequencer."""
        return canonical_time(self.event_time)


@dataclass(frozen=True)
class SourceRecord:
    """One unit the event source may retry: an SQS message, or the whole direct event."""

    message_id: str | None
    receive_count: int
    objects: tuple[ObjectRef, ...]
    ignored: tuple[str, ...] = ()
    error: str | None = None
    # Records that can never be processed (a field of the wrong type): acknowledged and logged as errors.
    malformed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedEvent:
    is_sqs: bool
    records: tuple[SourceRecord, ...]


class MalformedRecord(ValueError):
    """A record that no delivery can make work (a field of the wrong type): acknowledged and logged."""


# -- value checks: the data classes hand back whatever the event holds --------------------------------
def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedRecord(f"{what} is {'missing' if value in (None, '') else 'not a string'}")
    return value


def _optional_text(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedRecord(f"{what} is not a string")
    return value


def _section(parent: Any, key: str, what: str) -> None:
    """A nested object must be one before a data class property wraps it."""
    value = parent.get(key)
    if not isinstance(value, dict):
        raise MalformedRecord(f"{what} is {'missing' if value is None else 'not an object'}")


def _size(value: Any) -> int | None:
    """Only a hint (HEAD gives the real size), but a size that is not a number is not from S3."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedRecord("object size is not a non-negative integer")
    return value


def _clean_etag(etag: Any) -> str | None:
    etag = _optional_text(etag, "object eTag")
    return etag.strip('"') if etag else None


def _version_id(value: Any, what: str) -> str | None:
    """``"null"`` is the version id S3 gives objects written while versioning was off: the same item as
    no version at all (``sk`` ``null``), and a VersionId the emulator refuses."""
    version = _optional_text(value, what)
    return None if version == "null" else version


def _event_time(value: Any, what: str) -> str | None:
    """S3 and EventBridge send ISO 8601 text; the emulator's EventBridge sends seconds since the epoch,
    which become the same text so that both order alike."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _iso(datetime.fromtimestamp(value, UTC))
        except (OverflowError, OSError, ValueError):
            raise MalformedRecord(f"{what} is not a time") from None
    return _optional_text(value, what)


# -- the two notification shapes -----------------------------------------------------------------------
def _from_s3_record(record: S3EventRecord) -> ObjectRef | str:
    # ``record.event_name`` and friends raise KeyError when a field is absent: absent is checked here.
    name = _optional_text(record.get("eventName"), "eventName") or ""
    if name == "ObjectRemoved:DeleteMarkerCreated":
        return DELETE_MARKER_REASON
    if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
        return f"not a create or delete event ({name or 'no eventName'})"
    _section(record, "s3", "s3")
    message = record.s3
    _section(message, "bucket", "s3.bucket")
    _section(message, "get_object" if message.get("get_object") else "object", "s3.object")
    obj = message.get_object
    return ObjectRef(
        bucket=_text(message.bucket.get("name"), "bucket name"),
        key=unquote_plus(_text(obj.get("key"), "object key")),
        version_id=_version_id(obj.version_id, "object versionId"),
        etag=_clean_etag(obj.etag),
        # Not ``obj.size``: it would turn "12" or 12.5 into an int, and such a size is not from S3.
        size=_size(obj.get("size")),
        # Not ``obj.sequencer``: it raises when absent (the emulator's and hand-made events have none).
        sequencer=_optional_text(obj.get("sequencer"), "object sequencer"),
        event_name=name,
        event_time=_event_time(record.get("eventTime"), "eventTime"),
    )


def _from_eventbridge(event: S3EventBridgeNotificationEvent) -> ObjectRef | str:
    detail_type = _optional_text(event.get("detail-type"), "detail-type") or ""
    if detail_type not in ("Object Created", "Object Deleted"):
        return f"not a create or delete event ({detail_type or 'no detail-type'})"
    _section(event, "detail", "detail")
    detail = event.detail
    if detail_type == "Object Deleted" and detail.deletion_type == "Delete Marker Created":
        return DELETE_MARKER_REASON
    _section(detail, "object", "detail.object")
    _section(detail, "bucket", "detail.bucket")
    obj = detail.object
    return ObjectRef(
        bucket=_text(detail.bucket.get("name"), "bucket name"),
        # Not ``obj.key``, which URL-decodes: EventBridge sends the key as it is (a ``:`` arrives as ``:``,
        # where an S3 notification has ``%3A``), so decoding would turn a ``+`` in the key into a space.
        key=_text(obj.get("key"), "object key"),
        # AWS spells it ``etag``; the emulator ``eTag``.
        version_id=_version_id(obj.get("version-id"), "object version-id"),
        etag=_clean_etag(obj.get("etag") or obj.get("eTag")),
        size=_size(obj.size),
        sequencer=_optional_text(obj.get("sequencer"), "object sequencer"),
        event_name=(
            f"ObjectCreated:{_optional_text(detail.reason, 'reason') or 'EventBridge'}"
            if detail_type == "Object Created"
            else "ObjectRemoved:Delete"
        ),
        event_time=_event_time(event.get("time"), "time"),
    )


def _with_request(ref: ObjectRef | str, payload: dict[str, Any]) -> ObjectRef | str:
    """Our own tools add ``imageAnalysis.reprocess`` (or ``imageAnalysis.rematch``) beside the S3 records
    they send."""
    tools = payload.get("imageAnalysis")
    if isinstance(ref, str) or tools is None:
        return ref
    if not isinstance(tools, dict):
        raise MalformedRecord("imageAnalysis is not an object")
    rematch = tools.get("rematch")
    if rematch is not None:
        banks = rematch.get("banks") if isinstance(rematch, dict) else None
        if not isinstance(banks, list) or not all(isinstance(b, str) for b in banks):
            raise MalformedRecord("rematch is not an object with a list of bank names")
        return replace(ref, rematch_banks=tuple(banks))
    request = tools.get("reprocess") or {}
    if not isinstance(request, dict):
        raise MalformedRecord("reprocess is not an object")
    if not request.get("id"):
        return ref
    return replace(
        ref,
        reprocess_id=str(request["id"]),
        reprocess_reason=str(request.get("reason") or "reprocess requested"),
        reprocess_requested_at=_optional_text(request.get("requested_at"), "reprocess requested_at"),
    )


Found = ObjectRef | str | MalformedRecord


def _objects_in(payload: Any) -> Iterator[Found]:
    """Objects, reasons to ignore, or what is malformed, in an S3 notification or EventBridge event.

    Each S3 record is judged on its own: a malformed one never hides its neighbours.
    """
    if isinstance(payload, MalformedRecord):
        yield payload
        return
    if isinstance(payload, list):  # a bare list of S3 records, as some tools print them
        payload = {"Records": payload}
    if not isinstance(payload, dict):
        yield MalformedRecord("not a JSON object")
        return
    if payload.get("Event") == "s3:TestEvent":
        yield "s3:TestEvent"
        return
    if payload.get("source") == "aws.s3" and "detail" in payload:
        yield _judged(lambda: _from_eventbridge(S3EventBridgeNotificationEvent(payload)))
        return
    records = payload.get("Records")
    if not isinstance(records, list) or not records:
        yield "no S3 records"
        return
    for record in S3Event(payload).records:
        if isinstance(record.raw_event, dict):
            yield _judged(lambda record=record: _with_request(_from_s3_record(record), payload))
        else:
            yield MalformedRecord("S3 record is not an object")


def _judged(parse: Any) -> Found:
    try:
        return parse()
    except MalformedRecord as exc:
        return exc
    except (LookupError, AttributeError, TypeError, ValueError) as exc:  # a shape nobody foresaw: this record alone
        return MalformedRecord(f"unexpected record shape ({type(exc).__name__}: {exc})")


def _source_record(message_id: str | None, receive_count: int, payload: Any) -> SourceRecord:
    objects: list[ObjectRef] = []
    ignored: list[str] = []
    malformed: list[str] = []
    for item in _objects_in(payload):
        if isinstance(item, ObjectRef):
            objects.append(item)
        elif isinstance(item, MalformedRecord):
            malformed.append(str(item))
        else:
            ignored.append(item)
    return SourceRecord(message_id, receive_count, tuple(objects), tuple(ignored), malformed=tuple(malformed))


def _unwrapped(payload: Any, receive_count: int) -> tuple[Any, int]:
    """A Lambda on-failure destination record (a failed direct invocation, kept in the dead-letter
    queue) holds the original event in ``requestPayload``: a redrive processes that event. Its
    ``approximateInvokeCount`` counts the deliveries it already had. (Powertools has no data class for
    these records.)"""
    if isinstance(payload, dict) and "requestPayload" in payload and isinstance(payload.get("requestContext"), dict):
        invokes = payload["requestContext"].get("approximateInvokeCount")
        count = invokes + receive_count if isinstance(invokes, int) and not isinstance(invokes, bool) else receive_count
        payload = payload["requestPayload"]
        if isinstance(payload, str):  # some tools keep the payload as the JSON text it was sent as
            try:
                payload = json.loads(payload)
            except ValueError:
                return MalformedRecord("the destination record's requestPayload is not JSON"), count
        return payload, max(count, 1)
    return payload, receive_count


def _receive_count(message: SQSRecord) -> int:
    if not isinstance(message.get("attributes"), dict):
        return 1
    try:
        return max(1, int(message.attributes.approximate_receive_count))
    except (KeyError, TypeError, ValueError):
        return 1


def _sqs_record(message: SQSRecord) -> SourceRecord:
    message_id = message.get("messageId")
    receive_count = _receive_count(message)
    if not isinstance(message.get("body"), str):
        return SourceRecord(message_id, receive_count, (), error="SQS body is not a string")
    try:
        payload = message.json_body
    except ValueError:
        return SourceRecord(message_id, receive_count, (), error="SQS body is not JSON")
    payload, receive_count = _unwrapped(payload, receive_count)
    return _source_record(message_id, receive_count, payload)


def parse_event(event: Any) -> ParsedEvent:
    """Never raises: whatever is wrong with a message is recorded on that message alone."""
    records = event.get("Records") if isinstance(event, dict) else None
    if (
        isinstance(records, list)
        and records
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    ):
        return ParsedEvent(is_sqs=True, records=tuple(_sqs_record(message) for message in SQSEvent(event).records))
    payload, receive_count = _unwrapped(event, 1)
    return ParsedEvent(is_sqs=False, records=(_source_record(None, receive_count, payload),))
