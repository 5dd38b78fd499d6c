"""Content cache: a provider's answer for the same bytes, configuration and question is never paid twice.

Key: SHA-256 of the bytes, the provider id, a hash of the provider's configuration (its ``<VENDOR>_*``
settings except keys, its normalizer version, and the schema version of the normalized output) and the
capabilities the answer covers (what it was asked, within what the adapter has switched on). So a changed
option, a new normalizer or a new result schema never reuses a stale answer, and an answer to a narrower
question (routing asked only for moderation) is never taken for a wider one. The bytes are those sent:
the file, or for a frame of an animation that frame's own bytes, with ``imaging.FRAME_CACHE_GENERATION``
(frames' answers cached before a fix to what frames were sent are never read). An entry that does not decompress or
validate against today's model is a miss, never a failure of the record.
The item also keeps how many vendor requests the answer took: a hit saves that
many. Items expire through the table's time-to-live attribute. An entry keeps the labels a result keeps
(LABELS_MAX, LABELS_MIN_CONFIDENCE: part of the key) and, with ``RAW_ANSWERS=flagged`` (the default), the
vendor's own answer only when that answer flags the image by itself: a later result served from the
cache is then flagged with its raw answer, except when thresholds were lowered since or the flag comes
from another provider's answer or a bank (that result's ``raw`` then lacks this vendor's).
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from image_analysis.models import SCHEMA_VERSION
from image_analysis.providers.base import ProviderOutput

# Larger answers are not cached: the item must stay under DynamoDB's 400 KB.
MAX_CACHED_BYTES = 300_000
_SECRET_SUFFIXES = ("API_KEY", "API_SECRET")


def config_fingerprint(provider: str, normalizer_version: str, env: Mapping[str, str], kept: str = "") -> str:
    """``kept``: what the entries keep of an answer (``Keep.fingerprint``)."""
    prefix = provider.upper() + "_"
    options = sorted(
        (name, value) for name, value in env.items() if name.startswith(prefix) and not name.endswith(_SECRET_SUFFIXES)
    )
    document = {"provider": provider, "normalizer": normalizer_version, "schema": SCHEMA_VERSION, "options": options}
    text = json.dumps({**document, "kept": kept} if kept else document)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedAnswer:
    output: ProviderOutput
    # Vendor requests the answer took when it was fresh: what a hit saves.
    calls: int


class ContentCache:
    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        ttl_seconds: int,
        clock: Any = time.time,
        kept: Callable[[ProviderOutput], ProviderOutput] | None = None,
    ) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        # What an answer's cached copy keeps (``Keep.cached``): the labels a result keeps, and the vendor's
        # own answer as the results do (RAW_ANSWERS). The long tail of labels and the raw answer were
        # most of an entry, hence of its write units. None: the whole answer.
        self.kept = kept

    @staticmethod
    def key(sha256: str, provider: str, fingerprint: str, covers: Iterable[str]) -> str:
        return f"{sha256}#{provider}#{fingerprint}#{'+'.join(sorted(covers))}"

    def get(self, key: str) -> CachedAnswer | None:
        try:
            item = self._client.get_item(TableName=self.table_name, Key={"pk": {"S": key}}).get("Item")
        except (ClientError, BotoCoreError):  # throttled, timed out, unreachable
            return None  # a cache that cannot answer is a miss, never a failure
        if not item or int(item.get("expires_at", {}).get("N", "0")) < self._clock():
            return None
        try:
            output = ProviderOutput.model_validate_json(zlib.decompress(item["output"]["B"]))
            calls = int(item["calls"]["N"]) if "calls" in item else max(1, len(output.raw))
        except (KeyError, TypeError, ValueError, zlib.error):  # ValidationError is a ValueError
            # Written by another version, or damaged: asking the vendor again beats a record that never ends.
            return None
        return CachedAnswer(output, calls)

    def _item(self, key: str, output: ProviderOutput, calls: int) -> dict[str, Any] | None:
        kept = self.kept(output) if self.kept is not None else output
        blob = zlib.compress(kept.model_dump_json(exclude_defaults=True).encode(), 6)
        if len(blob) > MAX_CACHED_BYTES:
            return None
        return {
            "pk": {"S": key},
            "output": {"B": blob},
            "calls": {"N": str(calls)},
            "expires_at": {"N": str(int(self._clock()) + self.ttl_seconds)},
        }

    def put(self, key: str, output: ProviderOutput, calls: int) -> bool:
        item = self._item(key, output, calls)
        if item is None:
            return False
        try:
            self._client.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError):  # the answer stands; only its reuse is lost
            return False
        return True

    def put_many(self, answers: Iterable[tuple[str, ProviderOutput, int]], tries: int = 3) -> int:
        """Several answers with one request per 25 (BatchWriteItem); returns how many were stored. What
        DynamoDB leaves unprocessed (throttling) is sent again, ``tries`` times in all. When one key
        comes twice (the same bytes twice in a batch), its last answer is stored."""
        items = {key: item for key, output, calls in answers if (item := self._item(key, output, calls)) is not None}
        requests = [{"PutRequest": {"Item": item}} for item in items.values()]
        stored = 0
        for start in range(0, len(requests), 25):
            pending = requests[start : start + 25]
            for attempt in range(tries):
                try:
                    response = self._client.batch_write_item(RequestItems={self.table_name: pending})
                except (ClientError, BotoCoreError):
                    break  # the answers stand; only their reuse is lost
                left = response.get("UnprocessedItems", {}).get(self.table_name, [])
                stored += len(pending) - len(left)
                pending = left
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)
        return stored
