"""``image-analysis bank rescan NAME``: a bank's newer entries over the results stored before them.

Two halves:

- the command line reads the stored results (their ``pdq``) and keeps those the bank may match now and
  did not before (``candidates``). The stored hash is exact for the image as stored; its seven rotations
  and flips can only be estimated from its bits (``dihedral_from_bits``, within about 14 bits), so those
  are looked up with a wider distance and only say "maybe". An animation's stored hash is its first
  frame's alone, so every animation is a "maybe";
- each candidate goes through the analysis queue as a ``rematch`` request: the function reads the object
  again, hashes every frame the pipeline analyzes, matches them against the banks as they are now
  (exactly, every rotation and flip) and records what is new on the stored result (``rematch``). A new
  ``known_bad`` match adds the flag with a conditional write that only one delivery wins, and the
  pipeline alerts and quarantines once, through its usual path; the alert's id follows the new set of
  flags, so it is a new alert.

Old entries matched nothing when the result was written and match nothing now, so only entries added
since (or a larger distance) change anything: that is what "newer entries" means here, without any
per-entry time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from image_analysis.analyzers.pdq import MIN_QUALITY, dihedral_from_bits, parse_hex
from image_analysis.banks.matcher import MAX_MATCHES, BankView
from image_analysis.banks.screening import frame_hashes
from image_analysis.errors import InputRejected, ObjectSkipped, ObjectUnreadable
from image_analysis.imaging import FrameLimits, decode, probe
from image_analysis.models import AnalysisResult, BankMatch
from image_analysis.store import FINAL_STATUSES, result_of

if TYPE_CHECKING:
    from image_analysis.banks.screening import BankScreening
    from image_analysis.events import ObjectRef
    from image_analysis.memory import Hold as MemoryHold
    from image_analysis.objects import ObjectReader
    from image_analysis.store import ResultStore

# How much further the estimated rotations and flips are looked up than the bank's distance.
ESTIMATE_MARGIN = 16
MAX_LOOKUP_DISTANCE = 63


@dataclass(frozen=True)
class Rematched:
    """What a rematch did. ``result``: set when it added known_bad (the pipeline alerts and tags)."""

    status: Literal["rematched", "unchanged", "skipped", "duplicate"]
    detail: str
    result: AnalysisResult | None = None
    sequence: str = ""
    # The result is known_bad already: an alert a crash left unpublished may need publishing.
    heal: bool = False


def rematch(
    ref: ObjectRef,
    existing: dict[str, Any] | None,
    *,
    reader: ObjectReader,
    store: ResultStore,
    banks: BankScreening,
    max_pixels: int,
    frame_limits: FrameLimits | None = None,
    memory: MemoryHold | None = None,
) -> Rematched:
    """The stored result of ``ref`` matched again against ``ref.rematch_banks`` (all banks if empty).
    ``frame_limits``: the pipeline's (FRAME_SAMPLES, FRAME_SCAN_LIMIT), so that an animation's frames
    are the ones its analysis hashed, and a match in any of them is found. ``memory``: the record's share
    of the batch's memory budget, grown to the decoded size before the decode, as an analysis does."""
    matcher = banks.matcher
    if matcher is None:
        return Rematched("skipped", "no hash banks are configured")
    if existing is None or existing.get("status") not in FINAL_STATUSES or existing.get("deleted_at"):
        return Rematched("skipped", "no stored result to match again")
    if ref.etag and existing.get("etag") and existing["etag"] != ref.etag:
        return Rematched("skipped", "the stored result is of other bytes than the request names")
    if "known_bad" in (existing.get("flags") or []):
        return Rematched("duplicate", "the result is known_bad already", heal=True)
    try:
        data = reader.read(ref)
        if memory is not None:
            # Counted in decoded bytes: a rescan lists every stored animation, and a batch of them must stay
            # inside the same bound as a batch of uploads.
            memory.resize(len(data) + probe(data, max_pixels).decoded_bytes)
        image = decode(data, max_pixels, frames=frame_limits or FrameLimits())
    except (ObjectSkipped, ObjectUnreadable, InputRejected) as exc:
        return Rematched("skipped", f"the object cannot be hashed again: {exc}")
    hashes = frame_hashes(image.analyzed)
    matcher.refresh(force=True)  # the request may be about a change seconds old
    outcome = matcher.match(hashes)
    if outcome.skipped:
        return Rematched("unchanged", outcome.skipped)
    wanted = set(ref.rematch_banks or ())
    found = [m for m in outcome.matches if not wanted or m.bank in wanted]
    before = [BankMatch.model_validate(m) for m in existing.get("matches") or []]
    merged = _merged(before, found)
    if merged == before:
        return Rematched("unchanged", "no new match")
    views = matcher.views()
    known_bad = any(m.bank in views and views[m.bank].bank.known_bad for m in found)
    item = store.add_matches(
        existing["pk"],
        existing["sk"],
        existing["seq"],
        [m.model_dump(exclude_none=True) for m in merged],
        known_bad,
        # The flag indexes list an item under the month it was analyzed (their sort key is analyzed_at).
        month=str(existing.get("analyzed_at", ""))[:7],
    )
    if item is None:
        return Rematched("duplicate", "the stored result changed meanwhile")
    if not known_bad:
        return Rematched("rematched", "new matches recorded")
    return Rematched("rematched", "known_bad added", result=result_of(item), sequence=existing["seq"])


def _merged(before: list[BankMatch], found: list[BankMatch]) -> list[BankMatch]:
    seen = {(m.bank, m.label, m.frame): m for m in before}
    for match in found:
        key = (match.bank, match.label, match.frame)
        if key not in seen or match.distance < seen[key].distance:
            seen[key] = match
    return sorted(seen.values(), key=lambda m: (m.distance, m.bank, m.frame or 0))[:MAX_MATCHES]


def candidates(view: BankView, items: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], str]]:
    """(item, "match" or "maybe") for each stored result the bank may match now and did not before."""
    wider = min(MAX_LOOKUP_DISTANCE, view.bank.distance + ESTIMATE_MARGIN)
    for item in items:
        if not _final(item) or any(m.get("bank") == view.bank.name for m in item.get("matches") or []):
            continue
        usable = int(item.get("pdq_quality") or 0) >= MIN_QUALITY
        value = parse_hex(item["pdq"])
        if usable and view.search([value]):
            yield item, "match"
        elif int(item.get("frames") or 1) > 1:
            # The result stores its first frame's hash only (the others were matched, not kept), so any
            # later frame may be the one the new entries match, whatever the first frame's hash or quality
            # (an animation often opens on a blank frame): only reading it again can tell. Animations are
            # a small share of uploads, and storing every frame's hash would grow every item instead.
            yield item, "maybe"
        elif usable and view.search(dihedral_from_bits(value)[1:], distance=wider):
            yield item, "maybe"


def _final(item: dict[str, Any]) -> bool:
    return bool(item.get("pdq")) and item.get("status") in FINAL_STATUSES and not item.get("deleted_at")
