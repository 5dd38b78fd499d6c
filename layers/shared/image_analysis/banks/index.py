"""Multi-index hashing over PDQ hashes, in one flat, immutable file (a bank's snapshot).

The 256 bits are cut into 16 segments of 16 bits, paired (0-1, 2-3, ...). If two hashes are within
``d`` bits, one of the 8 pairs differs in at most ``R = d // 8`` bits (the pairs' distances add up to at
most ``d``), and then one segment of that pair in at most ``r = R // 2``. So a query looks up, in each
segment's table, the entries whose segment is within ``r`` bits of its own (17 buckets for d = 31), keeps
those whose partner segment is within ``R`` bits (a filter that drops about 99 % of chance candidates
without touching their hashes), and checks the full 256 bits of what is left. Nothing within ``d`` is
missed; with ``d = 31`` a million random hashes leave a few hundred full checks for eight query hashes.

Everything a query reads is a flat array, laid out for the lookups (``build`` writes it, once, from the
command line or a schedule); the function reads the file into memory or maps it, and never builds an
index itself. The 16 tables lie end to end ("slots" number their entries, table by table). Little-endian:

- the magic number, then from byte 64 ``partners``: per slot, the 16-bit value of the partner segment
  (table T's entries carry segment T xor 1), 2 bytes each, in bucket order;
- ``offsets``: 16 x 65,536 + 1 uint32: where bucket ``v`` of table T starts, as a byte position in the
  file (``(T << 16) | v``; a bucket ends where the next one starts);
- ``ids``: per slot, the entry (3 or 4 bytes, ``id_bytes``);
- ``hashes``: per entry, its big-endian 256-bit number (the hex digits as bytes), 32 bytes;
- ``label_offsets`` and ``labels``: optional UTF-8 labels, read only for the entries that match;
- the header (JSON: count, sections, what the bank says of itself), and its length in the last 8 bytes.

Only chance candidates' partner values are read in bulk, and they sit next to each other in bucket
order: a query touches a few hundred kilobytes in order and a few hundred hashes at random, which is
why it stays in milliseconds in pure Python.
"""

from __future__ import annotations

import json
import sys
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate, combinations
from operator import itemgetter, sub
from pathlib import Path
from typing import Any

MAGIC = b"PDQBANK\x01"
SEGMENTS = 16
SEGMENT_BITS = 16
BUCKETS = 1 << SEGMENT_BITS
HASH_BYTES = 32
FORMAT_VERSION = 1
# Where the partner values start: a fixed place, so that offsets can be byte positions in the file.
PARTNERS_AT = 64
# Offsets are uint32 byte positions: the file stays under 4 GiB (about 30 million entries).
MAX_ENTRIES = 30_000_000

# Bit count of every byte value, for ``bytes.translate``.
_POPCOUNT = bytes(bin(value).count("1") for value in range(256))


def radii(distance: int) -> tuple[int, int]:
    """(bits a looked-up segment may differ, bits its pair may differ) for matches within ``distance``."""
    pair = max(0, distance) // (SEGMENTS // 2)
    return pair // 2, pair


@cache
def _masks(weight: int) -> tuple[int, ...]:
    """Every 16-bit mask with exactly ``weight`` bits set."""
    return tuple(sum(1 << b for b in chosen) for chosen in combinations(range(SEGMENT_BITS), weight))


@cache
def _at_most(limit: int) -> bytes:
    """A translate table: 1 for byte values up to ``limit``, 0 above."""
    return bytes(1 if value <= limit else 0 for value in range(256))


@dataclass(frozen=True)
class Hit:
    """An entry within the distance of one of the query hashes (``query``: its position)."""

    entry: int
    distance: int
    query: int


class HashIndex:
    """A snapshot's index, on bytes in memory or on a mapped file. Thread-safe: it is never changed."""

    def __init__(self, buffer: Any, header: dict[str, Any]) -> None:
        self._buffer = buffer  # bytes or mmap: both slice into bytes, which is what queries join
        self.header = header
        self.count: int = header["count"]
        self.id_bytes: int = header["id_bytes"]
        view = memoryview(buffer)
        sections = header["sections"]

        def part(name: str) -> memoryview:
            start, length = sections[name]
            return view[start : start + length]

        # The offsets (4 MB whatever the bank's size) as an array: a query reads 4,000 of them.
        self._offsets = array("I", bytes(part("offsets")))
        if sys.byteorder == "big":
            self._offsets.byteswap()
        self._ends = self._offsets[1:]  # where each bucket ends: the next one's start
        # Entries and hashes are read as byte positions in the buffer itself (bytes or mmap slices are
        # quicker to take than memoryview ones, and a query takes a few hundred).
        self._ids_at = sections["ids"][0]
        self._hashes_at = sections["hashes"][0]
        self._hashes = part("hashes")
        self._label_offsets = _native(part("label_offsets"), "I") if "label_offsets" in sections else None
        self._labels = part("labels") if "labels" in sections else None

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> HashIndex:
        return cls(data, read_header(data))

    @classmethod
    def open(cls, path: Path) -> HashIndex:
        """Map a snapshot file instead of reading it: pages are read as queries touch them, and the
        kernel may drop them again under memory pressure (the 10-million-entry path)."""
        import mmap  # only banks too large for the heap are mapped

        with path.open("rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        # Lookups jump across the file: reading ahead of each fault would only fill memory.
        mapped.madvise(mmap.MADV_RANDOM)
        return cls(mapped, read_header(mapped))

    @property
    def size_bytes(self) -> int:
        return len(self._buffer)

    # -- entries -----------------------------------------------------------------------------------
    def hash_of(self, entry: int) -> int:
        start = self._hashes_at + entry * HASH_BYTES
        return int.from_bytes(self._buffer[start : start + HASH_BYTES])

    def label_of(self, entry: int) -> str | None:
        if self._label_offsets is None or self._labels is None:
            return None
        start, end = self._label_offsets[entry], self._label_offsets[entry + 1]
        return bytes(self._labels[start:end]).decode() if end > start else None

    def hashes(self) -> Iterator[int]:
        for start in range(0, self.count * HASH_BYTES, HASH_BYTES):
            yield int.from_bytes(self._hashes[start : start + HASH_BYTES])

    def labels(self) -> Iterator[str | None]:
        for entry in range(self.count):
            yield self.label_of(entry)

    # -- queries -----------------------------------------------------------------------------------
    def search(self, queries: Sequence[int], distance: int) -> list[Hit]:
        """Every entry within ``distance`` bits of any of ``queries`` (e.g. an image's eight dihedral
        hashes), with the query it is nearest to; one hit per entry, nearest first."""
        if not self.count or not queries:
            return []
        near, pair = radii(distance)
        # Per (query, table): its segment's bucket number in the offsets, and its partner segment.
        tops = [
            (table << SEGMENT_BITS) | ((query >> (SEGMENT_BITS * table)) & (BUCKETS - 1))
            for query in queries
            for table in range(SEGMENTS)
        ]
        partners = [
            ((query >> (SEGMENT_BITS * (table ^ 1))) & (BUCKETS - 1)).to_bytes(2, sys.byteorder)
            for query in queries
            for table in range(SEGMENTS)
        ]
        best: dict[int, Hit] = {}
        # One pass per number of bits the looked-up segment differs by: the pair may differ by the rest.
        for spent in range(near + 1):
            for slot, number in self._candidates(tops, partners, _masks(spent), pair - spent):
                entry = self._entry(slot)
                found = (self.hash_of(entry) ^ queries[number]).bit_count()
                if found <= distance and (entry not in best or found < best[entry].distance):
                    best[entry] = Hit(entry, found, number)
        return sorted(best.values(), key=lambda hit: (hit.distance, hit.entry))

    def _candidates(
        self, tops: list[int], partners: list[bytes], masks: tuple[int, ...], limit: int
    ) -> Iterator[tuple[int, int]]:
        """(slot, query number) of the entries in the buckets ``top ^ mask`` whose partner segment is
        within ``limit`` bits of the query's. Bulk work is in C: the buckets' partner values are joined,
        XORed with the query's, their bits counted per byte (``translate``), each entry's two bytes
        added (no carry: at most 16) and the sums held to ``limit``."""
        keys = [top ^ mask for top in tops for mask in masks]
        # itemgetter takes thousands of items in one call: half the time of a map over them.
        starts, ends = itemgetter(*keys)(self._offsets), itemgetter(*keys)(self._ends)
        sizes = list(map(sub, ends, starts))  # in bytes: two per entry
        width = sum(sizes)
        if not width:
            return
        candidates = b"".join(itemgetter(*map(slice, starts, ends))(self._buffer))
        per_top = len(masks)
        totals = [sum(sizes[n : n + per_top]) // 2 for n in range(0, len(sizes), per_top)]
        targets = b"".join(map(bytes.__mul__, partners, totals))
        differing = (int.from_bytes(candidates) ^ int.from_bytes(targets)).to_bytes(width)
        counts = int.from_bytes(differing.translate(_POPCOUNT))
        passed = (counts + (counts >> 8)).to_bytes(width)[1::2].translate(_at_most(limit))
        bounds = list(accumulate(sizes))  # where each bucket ends among the candidates, in bytes
        position = passed.find(1)
        while position >= 0:
            chunk = bisect_right(bounds, 2 * position)
            offset = starts[chunk] + 2 * position - (bounds[chunk] - sizes[chunk])
            yield (offset - PARTNERS_AT) // 2, chunk // per_top // SEGMENTS
            position = passed.find(1, position + 1)

    def _entry(self, slot: int) -> int:
        start = self._ids_at + slot * self.id_bytes
        return int.from_bytes(self._buffer[start : start + self.id_bytes], "little")


def _native(view: memoryview, code: str) -> memoryview:
    """A little-endian section as native numbers (every Lambda CPU is little-endian; a big-endian
    machine gets a swapped copy)."""
    if sys.byteorder == "little":
        return view.cast(code)
    swapped = array(code, bytes(view))
    swapped.byteswap()
    return memoryview(swapped)


# -- the file --------------------------------------------------------------------------------------


def read_header(data: Any) -> dict[str, Any]:
    if len(data) < PARTNERS_AT + 8 or bytes(data[: len(MAGIC)]) != MAGIC:
        raise ValueError("not a PDQ bank snapshot (bad magic)")
    length = int.from_bytes(data[len(data) - 8 :], "little")
    header = json.loads(bytes(data[len(data) - 8 - length : len(data) - 8]))
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"snapshot format {header.get('version')} is not {FORMAT_VERSION}")
    return header


def build(hashes: Sequence[int], labels: Sequence[str | None] | None = None, **meta: Any) -> bytes:
    """The snapshot of ``hashes`` (and their labels), with ``meta`` kept in its header.

    Sorting each segment's entries is the slow part (about a second per million per segment): the
    command line and the schedule build snapshots, never the analysis function."""
    count = len(hashes)
    if count > MAX_ENTRIES:
        raise ValueError(f"a snapshot holds at most {MAX_ENTRIES:,} entries, not {count:,}")
    blob = b"".join(value.to_bytes(HASH_BYTES) for value in hashes)
    id_bytes = 3 if count < (1 << 24) else 4
    values = [_segment_values(blob, count, number) for number in range(SEGMENTS)]
    offsets = array("I")
    ids: list[bytes] = []
    partners = array("H")
    for number in range(SEGMENTS):
        own, partner = values[number], values[number ^ 1]
        order = sorted(range(count), key=own.__getitem__)  # stable: entries ascend within a bucket
        counted = Counter(own)
        base = PARTNERS_AT + 2 * number * count  # byte positions of this table's partner values
        offsets.extend(accumulate((2 * counted.get(value, 0) for value in range(BUCKETS - 1)), initial=base))
        ids.append(_packed_ids(order, id_bytes))
        partners.extend(map(partner.__getitem__, order))
    offsets.append(PARTNERS_AT + 2 * SEGMENTS * count)
    sections: list[tuple[str, bytes]] = [
        ("partners", _little(partners)),
        ("offsets", _little(offsets)),
        ("ids", b"".join(ids)),
        ("hashes", blob),
    ]
    if labels is not None and any(labels):
        encoded = [(label or "").encode() for label in labels]
        sections += [
            ("label_offsets", _little(array("I", [0, *accumulate(len(e) for e in encoded)]))),
            ("labels", b"".join(encoded)),
        ]
    return _assemble(sections, {"version": FORMAT_VERSION, "count": count, "id_bytes": id_bytes, **meta})


def _segment_values(blob: bytes, count: int, number: int) -> array:
    """Segment ``number`` of every hash: its two bytes sit at a fixed place in each 32-byte record."""
    position = HASH_BYTES - 2 * (number + 1)
    pairs = bytearray(2 * count)
    pairs[0::2] = blob[position + 1 :: HASH_BYTES]
    pairs[1::2] = blob[position::HASH_BYTES]
    values = array("H")
    values.frombytes(bytes(pairs))
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _packed_ids(order: list[int], width: int) -> bytes:
    """Entry numbers as ``width``-byte little-endian integers (3 bytes up to 16.7 million entries)."""
    wide = _little(array("I", order))
    if width == 4:
        return wide
    packed = bytearray(3 * len(order))
    for byte in range(3):
        packed[byte::3] = wide[byte::4]
    return bytes(packed)


def _little(values: array) -> bytes:
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _assemble(sections: list[tuple[str, bytes]], header: dict[str, Any]) -> bytes:
    placed: dict[str, list[int]] = {}
    position = PARTNERS_AT
    for name, payload in sections:
        placed[name] = [position, len(payload)]
        position = _aligned(position + len(payload))
    encoded = json.dumps({**header, "sections": placed}, separators=(",", ":")).encode()
    out = bytearray(position + len(encoded) + 8)
    out[: len(MAGIC)] = MAGIC
    for name, payload in sections:
        start, length = placed[name]
        out[start : start + length] = payload
    out[position : position + len(encoded)] = encoded
    out[-8:] = len(encoded).to_bytes(8, "little")
    return bytes(out)


def _aligned(position: int) -> int:
    return (position + 7) & ~7


__all__ = ["HashIndex", "Hit", "build", "radii", "read_header"]
