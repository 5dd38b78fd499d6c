"""The banks as a running function sees them, and the matching of an image's hashes against them.

Each bank is its snapshot's index plus the changes logged after it (entries added, hashes removed). The
view is refreshed at most every ``poll_seconds`` (30 s by default, so a change reaches every running
function within a minute): one query of the registry, then only the changes after those already
applied; a snapshot is read again only when compaction replaced it. A refresh that fails keeps the view
it had (logged and counted as ``BankRefreshFailed``); without any view yet (the first load failed) an
image cannot be matched, and ``match`` raises ``BanksUnavailable``, which the pipeline retries, as a
known-bad image must not slip through because a table was unreachable for a moment.

A hash of quality under 50 is never matched (``MatchOutcome.skipped`` says so). Every usable hash is
looked up with its eight rotations and flips, so a turned or mirrored copy matches too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from image_analysis.analyzers.pdq import MIN_QUALITY, PdqHash
from image_analysis.banks.index import SEGMENT_BITS, SEGMENTS, HashIndex, radii
from image_analysis.banks.model import Bank, Delta
from image_analysis.banks.store import BankStore
from image_analysis.models import BankMatch

POLL_SECONDS = 30.0
# Snapshots larger than this are downloaded to local disk and mapped instead of read into the heap.
MAP_ABOVE_BYTES = 512 * 1024 * 1024
# Matches kept on a result, nearest first.
MAX_MATCHES = 20


class BanksUnavailable(Exception):
    """The banks could not be read at all yet: the image cannot be matched now (retry it)."""


@dataclass(frozen=True)
class MatchOutcome:
    matches: tuple[BankMatch, ...] = ()
    known_bad: bool = False
    # Why nothing was looked up (no hash, or only hashes of too little quality).
    skipped: str | None = None


NOTHING = MatchOutcome()


class AddedEntries:
    """Entries logged after the snapshot: few (compaction folds them in), looked up by segment."""

    def __init__(self, entries: dict[int, str | None]) -> None:
        self.entries = entries
        self._tables: list[dict[int, list[int]]] = [{} for _ in range(SEGMENTS)]
        for value in entries:
            for table in range(SEGMENTS):
                self._tables[table].setdefault((value >> (SEGMENT_BITS * table)) & 0xFFFF, []).append(value)

    def search(self, queries: Sequence[int], distance: int) -> list[tuple[int, int, int]]:
        """(distance, query number, entry hash) for every entry within ``distance`` of a query."""
        if not self.entries:
            return []
        if len(self.entries) <= 64:  # a few entries: checking each is quicker than looking them up
            best_few: dict[int, tuple[int, int, int]] = {}
            for number, query in enumerate(queries):
                for value in self.entries:
                    found = (value ^ query).bit_count()
                    if found <= distance and (value not in best_few or found < best_few[value][0]):
                        best_few[value] = (found, number, value)
            return list(best_few.values())
        near, _pair = radii(distance)
        masks = [sum(1 << b for b in bits) for w in range(near + 1) for bits in combinations(range(SEGMENT_BITS), w)]
        best: dict[int, tuple[int, int, int]] = {}
        for number, query in enumerate(queries):
            for table, buckets in enumerate(self._tables):
                own = (query >> (SEGMENT_BITS * table)) & 0xFFFF
                for mask in masks:
                    for value in buckets.get(own ^ mask, ()):
                        found = (value ^ query).bit_count()
                        if found <= distance and (value not in best or found < best[value][0]):
                            best[value] = (found, number, value)
        return list(best.values())


@dataclass(frozen=True)
class BankView:
    bank: Bank
    index: HashIndex | None
    added: AddedEntries
    removed: frozenset[int]
    # The bank's changes applied so far.
    seq: int

    def search(self, queries: Sequence[int], distance: int | None = None) -> list[tuple[int, str | None, int]]:
        """(distance, label, entry hash) of every entry within the bank's distance (or ``distance``) of a
        query."""
        limit = self.bank.distance if distance is None else distance
        found: dict[int, tuple[int, str | None]] = {}
        if self.index is not None:
            for hit in self.index.search(queries, limit):
                value = self.index.hash_of(hit.entry)
                if value not in self.removed:
                    found[value] = (hit.distance, self.index.label_of(hit.entry))
        for near, _number, value in self.added.search(queries, limit):
            if value not in found or near < found[value][0]:
                found[value] = (near, self.added.entries[value])
        return [(near, label, value) for value, (near, label) in found.items()]

    def advanced(self, bank: Bank, deltas: Sequence[Delta]) -> BankView:
        """The view with ``deltas`` applied (a new object: readers of this one are never disturbed)."""
        if not deltas:
            return BankView(bank, self.index, self.added, self.removed, self.seq)
        added = dict(self.added.entries)
        removed = set(self.removed)
        for delta in deltas:
            if delta.op == "add":
                added.setdefault(delta.hash, delta.label)
                removed.discard(delta.hash)
            else:
                added.pop(delta.hash, None)
                removed.add(delta.hash)
        return BankView(bank, self.index, AddedEntries(added), frozenset(removed), deltas[-1].seq)


@dataclass
class _Views:
    banks: dict[str, BankView] = field(default_factory=dict)
    loaded: bool = False


class BankMatcher:
    """Thread-safe: records of a batch match at once; one of them refreshes while the others read."""

    def __init__(
        self,
        store: BankStore,
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        map_dir: Path | None = None,
        map_above_bytes: int = MAP_ABOVE_BYTES,
        logger: Any = None,
        metric: Callable[[str, float, str], None] | None = None,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._map_dir = map_dir
        self._map_above = map_above_bytes
        self._logger = logger
        self._metric = metric
        self._views = _Views()
        self._next_poll = float("-inf")
        self._lock = threading.Lock()

    # -- matching ------------------------------------------------------------------------------------
    def match(self, hashes: Sequence[PdqHash]) -> MatchOutcome:
        """Every bank entry within its bank's distance of one of ``hashes`` (an image's analyzed frames),
        in any rotation or flip, nearest first."""
        if not hashes:
            return MatchOutcome(skipped="the image has no PDQ hash")
        usable = [h for h in hashes if h.usable]
        if not usable:
            worst = max(h.quality for h in hashes)
            return MatchOutcome(
                skipped=f"PDQ quality {worst} is under {MIN_QUALITY}: the hash is unreliable and is not matched"
            )
        views = self.views()
        if not views:
            return NOTHING
        nearest: dict[tuple[str, int], BankMatch] = {}
        for pdq in usable:
            queries = pdq.dihedral()
            for view in views.values():
                for distance, label, value in view.search(queries):
                    key = (view.bank.name, value)
                    if key not in nearest or distance < nearest[key].distance:
                        nearest[key] = BankMatch(bank=view.bank.name, distance=distance, label=label, frame=pdq.frame)
        matches = sorted(nearest.values(), key=lambda m: (m.distance, m.bank, m.frame or 0))[:MAX_MATCHES]
        known_bad = any(views[m.bank].bank.known_bad for m in matches)
        if matches:
            self._count("BankMatched", 1)
        if known_bad:
            self._count("KnownBadMatched", 1)
        return MatchOutcome(tuple(matches), known_bad)

    def prefetch(self) -> None:
        """Start a refresh that is due on a thread of its own, so that it overlaps the record's read and
        decode instead of following them (``match`` then finds it done, or waits for the first one)."""
        if self._clock() >= self._next_poll and not self._lock.locked():
            threading.Thread(target=self._refresh_quietly, name="bank-refresh", daemon=True).start()

    def _refresh_quietly(self) -> None:
        # A failure is counted and logged; ``match`` tries again and reports it to its record.
        with contextlib.suppress(BanksUnavailable):
            self.refresh()

    def views(self) -> dict[str, BankView]:
        """The banks as of the last refresh (refreshed first when it is due)."""
        if self._clock() >= self._next_poll:
            self.refresh()
        return self._views.banks

    # -- refreshing ----------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Bring the views up to date. One thread refreshes; the others keep reading the previous views,
        unless there are none yet (they wait for the first) or ``force`` asks for the latest."""
        asked_at = self._clock()
        if not self._lock.acquire(blocking=force or not self._views.loaded):
            return
        try:
            if self._views.loaded and (
                self._next_poll - self.poll_seconds > asked_at if force else asked_at < self._next_poll
            ):
                return  # another thread refreshed while this one waited
            started = time.perf_counter()
            try:
                self._views = _Views(self._refreshed(self._views.banks), loaded=True)
            except Exception as exc:
                self._count("BankRefreshFailed", 1)
                if self._logger is not None:
                    self._logger.warning("could not refresh the hash banks; matching with the last view", exc_info=True)
                if not self._views.loaded:
                    raise BanksUnavailable(f"the hash banks could not be read: {exc}") from exc
            else:
                self._count("BankRefreshMilliseconds", (time.perf_counter() - started) * 1000, "Milliseconds")
            self._next_poll = self._clock() + self.poll_seconds
        finally:
            self._lock.release()

    def _refreshed(self, current: dict[str, BankView]) -> dict[str, BankView]:
        views: dict[str, BankView] = {}
        for bank in self.store.list():
            view = current.get(bank.name)
            snapshot_key = bank.snapshot.key if bank.snapshot else None
            known_key = view.bank.snapshot.key if view is not None and view.bank.snapshot else None
            if view is None or snapshot_key != known_key:
                view = self._load(bank)
            elif bank.seq > view.seq:
                view = view.advanced(bank, self.store.deltas(bank.name, view.seq, bank.seq))
            else:
                view = view.advanced(bank, ())  # distance or flag may have changed
            views[bank.name] = view
        return views

    def _load(self, bank: Bank) -> BankView:
        index = None
        base = 0
        if bank.snapshot is not None:
            snapshot = bank.snapshot
            if self._map_dir is not None and snapshot.size > self._map_above:
                path = self._map_dir / bank.name / snapshot.key.rsplit("/", 1)[-1]
                index = HashIndex.open(self.store.download_snapshot(snapshot, path))
                for older in path.parent.iterdir():
                    if older != path:
                        # The disk holds one snapshot per bank (a view still mapping it keeps its pages).
                        older.unlink(missing_ok=True)
            else:
                index = HashIndex.from_bytes(self.store.read_snapshot(snapshot))
            base = snapshot.seq
        empty = BankView(bank, index, AddedEntries({}), frozenset(), base)
        return empty.advanced(bank, self.store.deltas(bank.name, base, bank.seq)) if bank.seq > base else empty

    def _count(self, name: str, value: float, unit: str = "Count") -> None:
        if self._metric is not None:
            self._metric(name, value, unit)


def describe(match: BankMatch) -> str:
    label = f" ({match.label})" if match.label else ""
    frame = f" in frame {match.frame}" if match.frame is not None else ""
    return f"{match.bank}: {match.distance} bits{label}{frame}"


__all__ = ["NOTHING", "BankMatcher", "BankView", "BanksUnavailable", "MatchOutcome", "describe"]
