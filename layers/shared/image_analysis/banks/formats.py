"""The hash lists ``image-analysis bank import`` reads, one entry per line:

- ``HASH`` or ``HASH,label``: 64 hex digits (the contract's format); any further columns are part of
  the label, so a CSV whose first column is the hash (HMA 1.x's ``.pdq.te`` files:
  ``hash,descriptor id,time,tags``) imports with the rest of its row as the label;
- the CSV of python-threatexchange's ``threatexchange dataset --print-signals --csv``: a header
  ``collab,signal_type,signal_str,category,tags``; rows whose ``signal_type`` is ``pdq`` are imported,
  labelled ``collab: category tags``; rows of other signal types are skipped (and counted);
- the plain output of ``threatexchange dataset --print-signals --signals-only --only-signals pdq``: a
  hash a line, the first format.

Blank lines and lines starting with ``#`` are skipped; a line that is none of these is reported by
number and skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from image_analysis.analyzers.pdq import parse_hex
from image_analysis.banks.model import Entry

THREATEXCHANGE_HEADER = ("collab", "signal_type", "signal_str", "category", "tags")
MAX_LABEL_CHARS = 256


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    # (line number, why) of each line that was not imported.
    rejected: list[tuple[int, str]] = field(default_factory=list)
    other_signals: int = 0


def parse_lines(lines: Iterable[str]) -> Parsed:
    parsed = Parsed()
    rows = iter(enumerate(lines, start=1))
    first = next(rows, None)
    if first is None:
        return parsed
    number, line = first
    header = tuple(cell.strip().lower() for cell in line.strip().split(","))
    if header == THREATEXCHANGE_HEADER:
        _threatexchange_csv(rows, parsed)
    else:
        for number, line in _chain(first, rows):
            _plain(number, line, parsed)
    return parsed


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _plain(number: int, line: str, parsed: Parsed) -> None:
    text = line.strip().lstrip("\ufeff")
    if not text or text.startswith("#"):
        return
    value, _, label = text.partition(",")
    try:
        hashed = parse_hex(value)
    except ValueError as exc:
        parsed.rejected.append((number, str(exc)))
        return
    parsed.entries.append(Entry(hashed, label.strip()[:MAX_LABEL_CHARS] or None))


def _threatexchange_csv(rows: Iterator[tuple[int, str]], parsed: Parsed) -> None:
    for number, line in rows:
        if not line.strip():
            continue
        cells = next(csv.reader([line]), [])
        if len(cells) < 3:
            parsed.rejected.append((number, "fewer columns than the header names"))
            continue
        collab, signal_type, signal = cells[0], cells[1].strip().lower(), cells[2]
        if signal_type != "pdq":
            parsed.other_signals += 1
            continue
        try:
            hashed = parse_hex(signal)
        except ValueError as exc:
            parsed.rejected.append((number, str(exc)))
            continue
        details = " ".join(c.strip() for c in cells[3:5] if c.strip())
        label = f"{collab.strip()}: {details}" if collab.strip() and details else collab.strip() or details
        parsed.entries.append(Entry(hashed, label[:MAX_LABEL_CHARS] or None))
