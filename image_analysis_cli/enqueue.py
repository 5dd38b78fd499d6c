"""Send objects into the analysis queue the way S3 would: one S3 notification per message.

Backfill, reconcile and reprocess all go through the queue, so concurrency limits, retries and the
dead-letter queue apply exactly as they do to uploads.
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


@dataclass(frozen=True)
class ListedObject:
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None


def s3_notification(obj: ListedObject, reprocess: dict[str, str] | None = None) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": boto3.session.Session().region_name or "us-east-1",
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
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
    return json.dumps(body)


def reprocess_request(reason: str) -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "reason": reason,
        "requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def list_objects(bucket: str, prefix: str, start_after: str = "") -> Iterator[ListedObject]:
    paginator = boto3.client("s3").get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    for page in paginator.paginate(**kwargs):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/") and item["Size"] == 0:
                continue  # a "folder" marker, not an upload
            yield ListedObject(bucket, item["Key"], item["Size"], item["ETag"].strip('"'))


class QueueSender:
    """Batches of ten (SQS's limit); a batch entry that fails is retried, then reported."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self._sqs = boto3.client("sqs")
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
        for _ in range(3):
            response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self.sent += len(response.get("Successful", []))
            failed_ids = {f["Id"] for f in response.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed_ids]
            if not entries:
                return
        raise RuntimeError(f"{len(entries)} message(s) could not be sent to the queue")
