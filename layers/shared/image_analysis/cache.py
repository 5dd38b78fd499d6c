"""Content cache: a provider's answer for the same bytes and the same configuration is never paid twice.

Key: SHA-256 of the bytes, the provider id and a hash of the provider's configuration (its
``<VENDOR>_*`` settings except keys, and its normalizer version), so a changed option or a new
normalizer never reuses a stale answer. Items expire through the table's time-to-live attribute.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from image_analysis.providers.base import ProviderOutput

# Larger answers are not cached: the item must stay under DynamoDB's 400 KB.
MAX_CACHED_BYTES = 300_000
_SECRET_SUFFIXES = ("API_KEY", "API_SECRET")


def config_fingerprint(provider: str, normalizer_version: str, env: Mapping[str, str]) -> str:
    prefix = provider.upper() + "_"
    options = sorted(
        (name, value) for name, value in env.items() if name.startswith(prefix) and not name.endswith(_SECRET_SUFFIXES)
    )
    text = json.dumps({"provider": provider, "normalizer": normalizer_version, "options": options})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ContentCache:
    def __init__(self, table_name: str, dynamodb_client: Any, ttl_seconds: int, clock: Any = time.time) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    @staticmethod
    def key(sha256: str, provider: str, fingerprint: str) -> str:
        return f"{sha256}#{provider}#{fingerprint}"

    def get(self, key: str) -> ProviderOutput | None:
        try:
            item = self._client.get_item(TableName=self.table_name, Key={"pk": {"S": key}}).get("Item")
        except ClientError:
            return None  # a cache that cannot answer is a miss, never a failure
        if not item or int(item.get("expires_at", {}).get("N", "0")) < self._clock():
            return None
        return ProviderOutput.model_validate_json(zlib.decompress(item["output"]["B"]))

    def put(self, key: str, output: ProviderOutput) -> bool:
        blob = zlib.compress(output.model_dump_json().encode(), 6)
        if len(blob) > MAX_CACHED_BYTES:
            return False
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": key},
                    "output": {"B": blob},
                    "expires_at": {"N": str(int(self._clock()) + self.ttl_seconds)},
                },
            )
        except ClientError:
            return False
        return True
