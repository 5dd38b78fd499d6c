"""What a bank is, what changes it, and the errors of the banks package.

Errors, all ``BankError`` (a problem the caller can act on; none is worth retrying as it is):

- ``BankNotFound``: no bank of that name;
- ``BankExists``: ``create`` for a name that is taken;
- ``InvalidBank``: a bad name, distance or flag;
- ``InvalidHash``: text that is not a PDQ hash;
- ``LowQuality``: a hash whose PDQ quality is under 50 (never banked: unreliable);
- ``BankConflict``: another writer changed the bank at the same moment, too often (run it again).

AWS faults (throttling, a network error) propagate as botocore's own exceptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from image_analysis.analyzers.pdq import MATCH_DISTANCE, MIN_QUALITY

BankFlag = Literal["known_bad", "none"]
FLAGS: tuple[BankFlag, ...] = ("known_bad", "none")
# The bank that review rejections feed (created on first use, flag known_bad).
REJECTED = "rejected"
DEFAULT_DISTANCE = MATCH_DISTANCE
# Beyond 63 bits a PDQ "match" means little (unrelated images average 128) and lookups grow fast.
MAX_DISTANCE = 63
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class BankError(Exception):
    """A bank operation refused for a reason the caller can fix."""


class BankNotFound(BankError):
    pass


class BankExists(BankError):
    pass


class InvalidBank(BankError):
    pass


class InvalidHash(BankError):
    pass


class LowQuality(BankError):
    """The hash is not banked: its quality is under MIN_QUALITY."""

    def __init__(self, quality: int, what: str = "the image") -> None:
        super().__init__(
            f"{what} has PDQ quality {quality}, under {MIN_QUALITY}: too flat or too small to hash reliably, "
            "so it is neither banked nor matched"
        )
        self.quality = quality


class BankConflict(BankError):
    pass


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidBank(
            f"{name!r} is not a bank name: 1 to 63 characters, lower-case letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return name


def check_distance(distance: int) -> int:
    if not 0 <= distance <= MAX_DISTANCE:
        raise InvalidBank(f"distance must be 0..{MAX_DISTANCE} bits, not {distance}")
    return distance


def check_flag(flag: str) -> BankFlag:
    if flag not in FLAGS:
        raise InvalidBank(f"flag must be one of {', '.join(FLAGS)}, not {flag!r}")
    return flag  # type: ignore[return-value]


@dataclass(frozen=True)
class Snapshot:
    """An immutable index file of the bank's entries up to delta ``seq`` (``banks.index``)."""

    key: str
    seq: int
    count: int
    size: int
    built_at: str


@dataclass(frozen=True)
class Bank:
    name: str
    distance: int = DEFAULT_DISTANCE
    flag: BankFlag = "none"
    # The last change appended to the bank's delta log.
    seq: int = 0
    snapshot: Snapshot | None = None
    created_at: str = ""

    @property
    def known_bad(self) -> bool:
        return self.flag == "known_bad"

    @property
    def pending(self) -> int:
        """Changes not yet in the snapshot."""
        return self.seq - (self.snapshot.seq if self.snapshot else 0)


@dataclass(frozen=True)
class Delta:
    """One change of a bank, in order: an entry added or a hash removed."""

    seq: int
    op: Literal["add", "remove"]
    hash: int
    label: str | None = None
    quality: int | None = None
    at: str = ""
    source: str | None = None


@dataclass(frozen=True)
class Entry:
    """A hash to bank, with an optional label (e.g. where it came from)."""

    hash: int
    label: str | None = None
    quality: int | None = None
