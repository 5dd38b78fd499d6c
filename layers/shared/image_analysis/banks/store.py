"""Where banks live: a registry and a delta log in DynamoDB, immutable snapshots in S3.

Items of the banks table (``BANKS_TABLE``):

- ``pk = "banks"``, ``sk = <name>``: the bank (distance, flag, ``seq`` = its last change, ``snapshot`` =
  the current snapshot's key, the change it includes, entry count, size);
- ``pk = "bank#<name>"``, ``sk = "d#<seq, 12 digits>"``: one change (add or remove a hash), kept as
  the bank's history.

A change is written in one transaction with the bank's ``seq`` going from n to n + 1 (conditional on n),
so the log has no gaps and a reader that sees ``seq = n`` finds every change up to n. Running functions
read the registry (one query) every poll, and only the changes after the ones they have; they reload a
snapshot only when compaction replaced it. Compaction (``compact``: the command line, or the schedule)
writes a new snapshot with everything up to the bank's ``seq`` and points the bank at it, conditional on
the snapshot it started from. An import is a compaction with the imported entries added: a million
hashes go into one file, not a million log items.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from image_analysis.analyzers.pdq import MIN_QUALITY, parse_hex, to_hex
from image_analysis.banks.index import HashIndex, build
from image_analysis.banks.model import (
    DEFAULT_DISTANCE,
    Bank,
    BankConflict,
    BankExists,
    BankNotFound,
    Delta,
    Entry,
    LowQuality,
    Snapshot,
    check_distance,
    check_flag,
    check_name,
)

REGISTRY = "banks"
# Snapshots are read with this many ranged GETs at once (S3 serves each connection at tens of MB/s).
READ_PART_BYTES = 16 * 1024 * 1024
READ_CONNECTIONS = 8
PARALLEL_ABOVE_BYTES = 256 * 1024 * 1024
_APPEND_TRIES = 10
MAX_LABEL_CHARS = 256
# What a transaction that lost to another writer of the same bank answers.
_LOST_RACE = ("TransactionCanceledException", "TransactionConflictException")


def _delta_key(seq: int) -> str:
    return f"d#{seq:012d}"


class BankStore:
    def __init__(
        self,
        table_name: str,
        dynamodb_client: Any,
        s3_client: Any = None,
        bucket: str = "",
        *,
        prefix: str = "banks/",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self._s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self._clock = clock
        import boto3.dynamodb.types as types

        self._serializer = types.TypeSerializer()
        self._deserializer = types.TypeDeserializer()

    # -- the registry ------------------------------------------------------------------------------
    def get(self, name: str) -> Bank | None:
        response = self._client.get_item(TableName=self.table_name, Key=self._key(REGISTRY, name), ConsistentRead=True)
        return _bank(self._plain(response["Item"])) if "Item" in response else None

    def require(self, name: str) -> Bank:
        bank = self.get(check_name(name))
        if bank is None:
            raise BankNotFound(f"no bank named {name!r} (create it with `image-analysis bank create {name}`)")
        return bank

    def list(self) -> list[Bank]:
        """Every bank, by name (one query: what running functions poll)."""
        banks: list[Bank] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": REGISTRY}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            banks.extend(_bank(self._plain(item)) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return banks
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def create(self, name: str, distance: int = DEFAULT_DISTANCE, flag: str = "none") -> Bank:
        bank = Bank(check_name(name), check_distance(distance), check_flag(flag), created_at=self._now())
        item = {"pk": REGISTRY, "sk": bank.name, "distance": bank.distance, "flag": bank.flag, "seq": 0}
        item["created_at"] = bank.created_at
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=self._marshal(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise BankExists(f"a bank named {name!r} exists already") from None
            raise
        return bank

    def ensure(self, name: str, distance: int = DEFAULT_DISTANCE, flag: str = "none") -> Bank:
        """The bank, created with these settings if it does not exist (two callers at once: one creates)."""
        bank = self.get(check_name(name))
        if bank is not None:
            return bank
        try:
            return self.create(name, distance, flag)
        except BankExists:
            return self.require(name)

    # -- the delta log -----------------------------------------------------------------------------
    def add(self, name: str, entries: Iterable[Entry], source: str | None = None) -> list[Delta]:
        """Append each entry as a change (visible to running functions at their next poll). An entry
        whose quality is known and under MIN_QUALITY is refused before anything is written."""
        entries = list(entries)
        for entry in entries:
            if entry.quality is not None and entry.quality < MIN_QUALITY:
                raise LowQuality(entry.quality, f"hash {to_hex(entry.hash)}")
        return [self._append(name, "add", e.hash, e.label, e.quality, source) for e in entries]

    def remove(self, name: str, value: int, source: str | None = None) -> Delta:
        return self._append(name, "remove", value, None, None, source)

    def _append(
        self, name: str, op: str, value: int, label: str | None, quality: int | None, source: str | None
    ) -> Delta:
        # Labels end up in results and alerts (up to 20 matches each): kept short.
        label = label[:MAX_LABEL_CHARS] if label else None
        for attempt in range(_APPEND_TRIES):
            bank = self.require(name)
            delta = Delta(bank.seq + 1, op, value, label, quality, self._now(), source)  # type: ignore[arg-type]
            item: dict[str, Any] = {
                "pk": f"bank#{bank.name}",
                "sk": _delta_key(delta.seq),
                "seq": delta.seq,
                "op": op,
                "hash": to_hex(value),
                "at": delta.at,
            }
            item.update(
                {k: v for k, v in (("label", label), ("quality", quality), ("source", source)) if v is not None}
            )
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.table_name,
                                "Key": self._key(REGISTRY, bank.name),
                                "UpdateExpression": "SET seq = :next",
                                "ConditionExpression": "seq = :current",
                                "ExpressionAttributeValues": self._marshal({":next": delta.seq, ":current": bank.seq}),
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.table_name,
                                "Item": self._marshal(item),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
                return delta
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in (
                    "TransactionCanceledException",
                    "TransactionConflictException",
                ):
                    raise
                time.sleep(min(0.5, 0.01 * 2**attempt))  # another writer took this number: take the next
        raise BankConflict(f"bank {name!r} kept changing under this write ({_APPEND_TRIES} tries); run it again")

    def deltas(self, name: str, after: int, upto: int | None = None) -> list[Delta]:
        """The bank's changes after ``after`` (up to ``upto``), in order."""
        condition = "pk = :pk AND sk > :after"
        values: dict[str, Any] = {":pk": f"bank#{name}", ":after": _delta_key(after)}
        if upto is not None:
            condition = "pk = :pk AND sk BETWEEN :first AND :last"
            values = {":pk": f"bank#{name}", ":first": _delta_key(after + 1), ":last": _delta_key(upto)}
            if upto <= after:
                return []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": self._marshal(values),
            "ConsistentRead": True,
        }
        found: list[Delta] = []
        while True:
            page = self._client.query(**kwargs)
            found.extend(_delta(self._plain(item)) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- snapshots ---------------------------------------------------------------------------------
    def read_snapshot(self, snapshot: Snapshot) -> bytearray:
        """The snapshot's bytes, read into one buffer (never held twice). Up to PARALLEL_ABOVE_BYTES in
        one GET; larger ones in parts over several connections at once, as S3 serves each connection
        at tens of MB/s (the emulator answers a ranged GET at the cost of a whole one, so its snapshots
        are read in one)."""
        buffer = bytearray(snapshot.size)
        if snapshot.size <= PARALLEL_ABOVE_BYTES:
            body = self._s3.get_object(Bucket=self.bucket, Key=snapshot.key)["Body"]
            position = 0
            while chunk := body.read(READ_PART_BYTES):
                buffer[position : position + len(chunk)] = chunk
                position += len(chunk)
            if position != snapshot.size:
                raise ValueError(f"snapshot {snapshot.key} is {position} bytes, not {snapshot.size}")
            return buffer

        def fetch(start: int) -> None:
            end = min(snapshot.size, start + READ_PART_BYTES) - 1
            part = self._s3.get_object(Bucket=self.bucket, Key=snapshot.key, Range=f"bytes={start}-{end}")
            buffer[start : end + 1] = part["Body"].read()

        with ThreadPoolExecutor(max_workers=READ_CONNECTIONS, thread_name_prefix="bank-read") as pool:
            list(pool.map(fetch, range(0, snapshot.size, READ_PART_BYTES)))
        return buffer

    def download_snapshot(self, snapshot: Snapshot, path: Path) -> Path:
        """The snapshot as a local file (for ``HashIndex.open``), fetched once: the name is its key's."""
        if path.exists() and path.stat().st_size == snapshot.size:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        # Straight to disk in ranged parts over several connections (boto3's transfer manager): the
        # file never passes through the heap.
        self._s3.download_file(self.bucket, snapshot.key, str(partial))
        if partial.stat().st_size != snapshot.size:
            raise ValueError(f"snapshot {snapshot.key} is {partial.stat().st_size} bytes, not {snapshot.size}")
        partial.replace(path)
        return path

    def load(self, name: str) -> tuple[Bank, dict[int, str | None]]:
        """The bank as it is now: every entry (hash -> label) of its snapshot and changes, in order."""
        bank = self.require(name)
        entries: dict[int, str | None] = {}
        if bank.snapshot is not None:
            index = HashIndex.from_bytes(self.read_snapshot(bank.snapshot))
            entries.update(zip(index.hashes(), index.labels(), strict=True))
        for delta in self.deltas(bank.name, bank.snapshot.seq if bank.snapshot else 0, bank.seq):
            if delta.op == "add":
                entries.setdefault(delta.hash, delta.label)
            else:
                entries.pop(delta.hash, None)
        return bank, entries

    def compact(self, name: str, extra: Sequence[Entry] = (), *, min_pending: int = 1) -> Bank | None:
        """Write a new snapshot with every change up to now (and ``extra`` entries: an import), and point
        the bank at it. None when there was nothing to do (fewer than ``min_pending`` changes, nothing
        extra). Refused (BankConflict) when another compaction replaced the snapshot meanwhile."""
        bank = self.require(name)
        if not extra and bank.pending < max(1, min_pending):
            return None
        bank, entries = self.load(name)
        for entry in extra:
            entries.setdefault(entry.hash, entry.label[:MAX_LABEL_CHARS] if entry.label else None)
        built_at = self._now()
        data = build(list(entries), list(entries.values()), bank=bank.name, seq=bank.seq, built_at=built_at)
        key = f"{self.prefix}{bank.name}/{bank.seq:012d}-{uuid.uuid4().hex[:12]}.pdqidx"
        self._s3.upload_fileobj(io.BytesIO(data), self.bucket, key)
        snapshot = Snapshot(key, bank.seq, len(entries), len(data), built_at)
        previous = bank.snapshot.key if bank.snapshot else None
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._key(REGISTRY, bank.name),
                UpdateExpression="SET #snapshot = :snapshot",
                ConditionExpression="attribute_not_exists(#snapshot)"
                if previous is None
                else "#snapshot.#key = :previous",
                ExpressionAttributeNames={"#snapshot": "snapshot", **({"#key": "key"} if previous else {})},
                ExpressionAttributeValues=self._marshal(
                    {":snapshot": _snapshot_item(snapshot), **({":previous": previous} if previous else {})}
                ),
            )
        except ClientError as exc:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise BankConflict(f"bank {name!r} was compacted by someone else meanwhile; run it again") from None
            raise
        self._prune(bank.name, keep={key, previous})
        return Bank(bank.name, bank.distance, bank.flag, bank.seq, snapshot, bank.created_at)

    def _prune(self, name: str, keep: set[str | None]) -> None:
        """Delete older snapshots of the bank; the one just replaced stays, for functions still loading it."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{name}/"):
            for item in page.get("Contents", []):
                if item["Key"] not in keep:
                    self._s3.delete_object(Bucket=self.bucket, Key=item["Key"])

    # -- helpers -------------------------------------------------------------------------------------
    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _marshal(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(v) for k, v in item.items()}

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._deserializer.deserialize(v) for k, v in item.items()}


def _snapshot_item(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "key": snapshot.key,
        "seq": snapshot.seq,
        "count": snapshot.count,
        "size": snapshot.size,
        "built_at": snapshot.built_at,
    }


def _bank(item: dict[str, Any]) -> Bank:
    raw = item.get("snapshot")
    snapshot = (
        Snapshot(str(raw["key"]), int(raw["seq"]), int(raw["count"]), int(raw["size"]), str(raw["built_at"]))
        if raw
        else None
    )
    return Bank(
        name=item["sk"],
        distance=int(item.get("distance", DEFAULT_DISTANCE)),
        flag=item.get("flag", "none"),
        seq=int(item.get("seq", 0)),
        snapshot=snapshot,
        created_at=item.get("created_at", ""),
    )


def _delta(item: dict[str, Any]) -> Delta:
    return Delta(
        seq=int(item["seq"]),
        op=item["op"],
        hash=parse_hex(item["hash"]),
        label=item.get("label"),
        quality=int(item["quality"]) if "quality" in item else None,
        at=item.get("at", ""),
        source=item.get("source"),
    )
