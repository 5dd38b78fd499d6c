"""An event file for ``make invoke``: read, judged the way the handler judges it, and pointed at the stack.

Anything wrong with the file is one line that names it (``EventFileError``): no such file, not JSON,
a record of the wrong shape (``"key": 5``), an SQS message whose body is not an S3 or EventBridge
event (``sam local generate-event sqs receive-message``), an object the stack does not hold.

Preparing an event for a stack (``prepare``) changes only what a generated event cannot know: a bucket
the emulator does not have becomes the stack's uploads bucket, and each object's ETag and size become
the stored object's, as S3 would have sent them. Each change is reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

ACCEPTED = (
    "the function takes S3 notifications, SQS messages whose bodies are S3 or EventBridge events, "
    "and EventBridge S3 events"
)


class EventFileError(ValueError):
    """What is wrong with an event file, in one line that names it."""


def load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EventFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EventFileError(f"{path}: is a directory, not an event file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EventFileError(f"{path}: cannot be read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def check(path: Path, event: Any) -> int:
    """The number of objects the event names; ``EventFileError`` when the handler could not use a record."""
    from image_analysis.events import parse_event

    if not isinstance(event, dict | list):
        raise EventFileError(f"{path}: a JSON {type(event).__name__}, not an event: {ACCEPTED}")
    parsed = parse_event(event)
    count = 0
    for number, record in enumerate(parsed.records, start=1):
        where = f"SQS message {number}" if parsed.is_sqs else "the event"
        if record.error:
            raise EventFileError(f"{path}: {where}: {record.error}{_body_hint(event, number)}: {ACCEPTED}")
        if record.malformed:
            raise EventFileError(f"{path}: {where}: {'; '.join(record.malformed)}")
        count += len(record.objects)
    return count


def _body_hint(event: Any, number: int) -> str:
    try:
        body = event["Records"][number - 1]["body"]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" ({str(body)[:40]!r})"


@dataclass
class Target:
    """One object the event names, as it will reach the handler."""

    bucket: str
    key: str
    version_id: str | None


def _entries(event: Any) -> list[tuple[dict[str, Any], dict[str, Any], bool, bool]]:
    """(bucket dict, object dict, key is URL-encoded, a deletion) of every object record, in the event."""
    entries: list[tuple[dict[str, Any], dict[str, Any], bool, bool]] = []

    def visit(payload: Any) -> None:
        if isinstance(payload, list):
            for record in payload:
                visit(record)
        elif isinstance(payload, dict):
            if payload.get("eventSource") == "aws:sqs":
                body = json.loads(payload["body"])
                visit(body)
                payload["_body"] = body  # written back as text after the changes
            elif "Records" in payload:
                visit(payload["Records"])
            elif payload.get("source") == "aws.s3" and isinstance(payload.get("detail"), dict):
                removed = payload.get("detail-type") == "Object Deleted"
                entries.append((payload["detail"]["bucket"], payload["detail"]["object"], False, removed))
            elif isinstance(payload.get("s3"), dict):
                removed = str(payload.get("eventName", "")).startswith("ObjectRemoved")
                entries.append((payload["s3"]["bucket"], payload["s3"]["object"], True, removed))

    visit(event)
    return entries


def _reserialize(payload: Any) -> None:
    if isinstance(payload, dict):
        if "_body" in payload:
            payload["body"] = json.dumps(payload.pop("_body"))
        for value in payload.values():
            _reserialize(value)
    elif isinstance(payload, list):
        for value in payload:
            _reserialize(value)


def prepare(
    path: Path,
    event: Any,
    stack_bucket: str,
    endpoint: str,
    provide: Callable[[str, str], bool] | None = None,
    note: Callable[[str], None] = print,
) -> list[Target]:
    """Point ``event`` (changed in place) at objects the emulator holds; the objects it names.

    ``provide(bucket, key)`` may put a missing object there (a throwaway stack's samples) and say whether
    it did; otherwise a missing object is an ``EventFileError``.
    """
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3")
    buckets = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    targets = []
    for bucket_entry, obj, encoded, removed in _entries(event):
        bucket = bucket_entry.get("name")
        if bucket not in buckets:
            note(f"{path}: bucket {bucket!r} is not in the local stack: using its uploads bucket {stack_bucket}")
            bucket = stack_bucket
            bucket_entry["name"] = bucket
            if "arn" in bucket_entry:
                bucket_entry["arn"] = f"arn:aws:s3:::{bucket}"
        key = unquote_plus(obj["key"]) if encoded else obj["key"]
        version = obj.get("versionId") or obj.get("version-id")
        extra = {"VersionId": version} if version and version != "null" else {}
        if removed:  # a deletion names an object that is gone: nothing to look up
            targets.append(Target(bucket, key, extra.get("VersionId")))
            continue
        try:
            head = s3.head_object(Bucket=bucket, Key=key, **extra)
        except ClientError:
            if provide is None:
                raise EventFileError(
                    f"{path}: no object s3://{bucket}/{key} in the local stack: upload it first, e.g. "
                    f"aws --endpoint-url {endpoint} s3 cp FILE {_s3_url(bucket, key)}"
                ) from None
            if not provide(bucket, key):
                # A throwaway stack ends with this command: an upload to it would be gone before a rerun.
                raise EventFileError(
                    f"{path}: no object s3://{bucket}/{key}, and no sample in samples/ named like it: start "
                    "make local-stack, upload the file there (docs/local-invoke.md), then run make invoke again"
                ) from None
            head = s3.head_object(Bucket=bucket, Key=key)
        etag_field = "eTag" if encoded or "eTag" in obj else "etag"
        stored = head["ETag"].strip('"')
        given = str(obj.get(etag_field) or obj.get("etag") or "").strip('"')
        if given and given != stored:
            note(f"{path}: {key}: ETag {given} is not the stored object's: using {stored}, as S3 would send it")
        obj[etag_field] = stored
        obj["size"] = head["ContentLength"]
        obj["key"] = quote_plus(key, safe="/") if encoded else key
        targets.append(Target(bucket, key, extra.get("VersionId")))
    _reserialize(event)
    return targets


def _s3_url(bucket: str, key: str) -> str:
    return f"'s3://{bucket}/{key}'" if any(c in key for c in " '\"") else f"s3://{bucket}/{key}"
