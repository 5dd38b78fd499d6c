"""Send objects into the backfill queue the way S3 would: one S3 notification per message.

Backfill, reconcile and reprocess all go through the stack's backfill queue: the handler and its
retries and dead-letter queue are those of uploads, with a concurrency of their own so that live
uploads never wait behind them.

What a message says about ordering: no ``sequencer`` (only S3 can issue one, and a made-up one would
either beat a real event's or never complete a real event's ``failed`` item), the object's exact ETag
and version id, and as ``eventTime`` the object's own ``LastModified`` as S3 listed it (S3's clock, whole
seconds). The pipeline orders an event without a sequencer by ETag and event time: the same bytes are
a duplicate of a final result (no second analysis) and complete a ``failed`` one; the object is read
with ``IfMatch`` on the ETag, so bytes that changed since the listing are never analyzed under the old
ETag. ``LastModified`` is never later than any event of a newer upload under the key, so nothing this
message writes (a ``failed`` item when its delivery runs out of time) replaces such an upload's result;
the time the message is sent could be.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import boto3

from image_analysis_cli.resources import CliError


@dataclass(frozen=True)
class ListedObject:
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None
    # The object's LastModified as S3 reported it, ISO 8601 UTC; None: this machine's clock.
    last_modified: str | None = None
    # In a version listing: whether this is the key's current version.
    is_latest: bool = True

    @property
    def version(self) -> str:
        """The results table's sort key for this object: the version id, or ``null``."""
        return self.version_id or "null"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def last_modified(value: Any) -> str | None:
    """An object's ``LastModified`` (boto3 gives a datetime) as the event time of its message."""
    return _iso(value) if isinstance(value, datetime) else None


def s3_notification(
    obj: ListedObject, reprocess: dict[str, str] | None = None, rematch: dict[str, Any] | None = None
) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": boto3.session.Session().region_name or "us-east-1",
        "eventTime": obj.last_modified or _iso(datetime.now(UTC)),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "image-analysis-cli",
            "bucket": {"name": obj.bucket, "arn": f"arn:aws:s3:::{obj.bucket}"},
            "object": {
                "key": quote_plus(obj.key, safe="/"),
                "size": obj.size,
                "eTag": obj.etag,
                **({"versionId": obj.version_id} if obj.version_id else {}),
            },
        },
    }
    body: dict[str, Any] = {"Records": [record]}
    if reprocess:
        body["imageAnalysis"] = {"reprocess": reprocess}
    if rematch:
        # ``bank rescan``: match the stored result against these banks again, without a new analysis.
        body["imageAnalysis"] = {"rematch": rematch}
    return json.dumps(body)


def reprocess_request(reason: str) -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "reason": reason,
        "requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def is_folder_marker(key: str, size: int) -> bool:
    """The empty ``dir/`` objects consoles create to show a folder: not uploads."""
    return key.endswith("/") and size == 0


def is_versioned(bucket: str) -> bool:
    """Whether objects of the bucket carry version ids (versioning enabled now, or suspended after)."""
    status = boto3.client("s3").get_bucket_versioning(Bucket=bucket).get("Status")
    return status in ("Enabled", "Suspended")


def list_objects(bucket: str, prefix: str, start_after: str = "", *, versioned: bool = False) -> Iterator[ListedObject]:
    """Every object under the prefix in key order, after ``start_after``; in a versioned bucket the
    current version of each key (with its version id), and no key whose current version is deleted."""
    if versioned:
        yield from (o for o in list_versions(bucket, prefix, start_after) if o.is_latest)
        return
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    for page in paginator.paginate(**kwargs):
        for item in page.get("Contents", []):
            if is_folder_marker(item["Key"], item["Size"]):
                continue
            yield ListedObject(
                bucket,
                item["Key"],
                item["Size"],
                item["ETag"].strip('"'),
                last_modified=last_modified(item.get("LastModified")),
            )


def list_versions(bucket: str, prefix: str, key_marker: str = "") -> Iterator[ListedObject]:
    """Every version of every key under the prefix (delete markers left out), keys after ``key_marker``."""
    paginator = boto3.client("s3").get_paginator("list_object_versions")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if key_marker:
        kwargs["KeyMarker"] = key_marker
    for page in paginator.paginate(**kwargs):
        for item in page.get("Versions", []):
            if is_folder_marker(item["Key"], item["Size"]):
                continue
            version_id = item.get("VersionId")
            yield ListedObject(
                bucket,
                item["Key"],
                item["Size"],
                item["ETag"].strip('"'),
                # Objects written before versioning was enabled have the version id "null".
                version_id=version_id if version_id and version_id != "null" else None,
                last_modified=last_modified(item.get("LastModified")),
                is_latest=bool(item.get("IsLatest")),
            )


class QueueError(CliError):
    """Messages the queue refused after retries."""


class QueueSender:
    """Batches of ten (SQS's limit); a batch entry that fails is retried, then reported."""

    def __init__(self, queue_url: str, sqs_client: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs_client or boto3.client("sqs")
        self.sent = 0

    def send(self, bodies: Iterable[str]) -> None:
        batch: list[str] = []
        for body in bodies:
            batch.append(body)
            if len(batch) == 10:
                self._flush(batch)
                batch = []
        if batch:
            self._flush(batch)

    def _flush(self, batch: list[str]) -> None:
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
        failures: list[dict[str, Any]] = []
        for _ in range(3):
            response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self.sent += len(response.get("Successful", []))
            failures = response.get("Failed", [])
            failed_ids = {f["Id"] for f in failures}
            entries = [e for e in entries if e["Id"] in failed_ids]
            if not entries:
                return
        reason = (failures[0].get("Message") or failures[0].get("Code")) if failures else None
        raise QueueError(
            f"the queue refused {len(entries)} message(s) after 3 tries ({reason or 'no reason given'}); "
            f"{self.sent} were sent before that"
        )
