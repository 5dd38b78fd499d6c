"""Vendor answers too big for the result item, kept as objects in the artifacts bucket.

The contract keeps ``raw`` vendor responses "compressed, capped; larger ones go to a results bucket that
never triggers analysis". That bucket is the stack's artifacts bucket (``ARTIFACTS_BUCKET``, no
notifications), under ``raw/<hash of pk>/<write id>/<provider>.json.gz``: gzip JSON, the object key
holding nothing of the user's key. The item references each one as
``raw[provider] = {"s3": "s3://bucket/raw/...", "bytes": <stored size>}``.

Each write gets an id of its own, so two deliveries of one event never share (and never delete) each
other's objects. The store deletes what an item referenced when the item is replaced, forgotten or
reduced to a tombstone, and what a write that lost its condition left behind. Everything here is best
effort: a failed write becomes ``{"omitted_bytes": n}`` (and ``omitted["raw.<provider>"]``), a failed
delete is logged and counted (``RawArchiveFailed``), and neither ever fails the result.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

PREFIX = "raw/"
FAILURE_METRIC = "RawArchiveFailed"

_log = logging.getLogger(__name__)


def referenced_objects(raw: Mapping[str, Any] | None) -> set[str]:
    """The ``s3://`` URLs a stored item's ``raw`` points at."""
    return {
        entry["s3"] for entry in (raw or {}).values() if isinstance(entry, Mapping) and isinstance(entry.get("s3"), str)
    }


class RawArchive:
    def __init__(
        self,
        bucket: str,
        s3_client: Any,
        metric: Callable[[str, float, str], None] | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
    ) -> None:
        self.bucket = bucket
        self._s3 = s3_client
        self._metric = metric
        self._new_id = new_id

    def writer(self, pk: str) -> Callable[[str, bytes], dict[str, Any] | None]:
        """What ``merge.pack_raw`` calls for an answer that does not fit the item: one write id per result."""
        folder = f"{PREFIX}{hashlib.sha256(pk.encode()).hexdigest()[:32]}/{self._new_id()}"

        def store(provider: str, document: bytes) -> dict[str, Any] | None:
            key = f"{folder}/{provider}.json.gz"
            body = gzip.compress(document, compresslevel=6, mtime=0)
            try:
                self._s3.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", ContentEncoding="gzip"
                )
            except Exception as exc:  # the result stands without it: the omission is recorded on the item
                self._failed(f"could not store the raw {provider} answer in s3://{self.bucket}/{key}", exc)
                return None
            return {"s3": f"s3://{self.bucket}/{key}", "bytes": len(body)}

        return store

    def delete(self, urls: Iterable[str]) -> int:
        """Delete these raw objects (ours only: in this bucket, under ``raw/``); returns how many failed."""
        failed = 0
        for url in sorted(set(urls)):
            parts = urlsplit(url)
            key = parts.path.lstrip("/")
            if parts.scheme != "s3" or parts.netloc != self.bucket or not key.startswith(PREFIX):
                continue
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=key)
            except Exception as exc:  # an orphan costs storage, never a result; the bucket's lifecycle may expire it
                failed += 1
                self._failed(f"could not delete the raw answer {url}", exc)
        return failed

    def _failed(self, what: str, exc: Exception) -> None:
        _log.warning("%s (%s: %s)", what, type(exc).__name__, exc)
        if self._metric is not None:
            self._metric(FAILURE_METRIC, 1, "Count")


def load(url: str, s3_client: Any) -> Any:
    """A raw answer stored by ``RawArchive``, decoded (for tools and tests; the function never reads them)."""
    parts = urlsplit(url)
    body = s3_client.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"].read()
    return json.loads(gzip.decompress(body))
