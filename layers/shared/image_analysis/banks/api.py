"""Changing a bank from elsewhere in the system: the review's rejections feed the bank ``rejected``, and an
approval after an appeal takes the hash out again.

    store = BankStore(settings.banks_table, dynamodb, s3, settings.banks_bucket)
    add_to_rejected(store, result["pdq"], result["pdq_quality"], label="s3://bucket/key", source=caller_arn)
    remove_from_rejected(store, result["pdq"], source=caller_arn)

Both write one change to the bank's log; running functions see it within a minute. Callers need
``dynamodb:GetItem``, ``dynamodb:PutItem``, ``dynamodb:UpdateItem`` (the transaction's parts) on the
banks table.
"""

from __future__ import annotations

from image_analysis.analyzers.pdq import parse_hex
from image_analysis.banks.model import DEFAULT_DISTANCE, REJECTED, Delta, Entry, InvalidHash, LowQuality
from image_analysis.banks.store import BankStore


def _value(pdq: str) -> int:
    try:
        return parse_hex(pdq)
    except ValueError as exc:
        raise InvalidHash(str(exc)) from None


def add_hash(
    store: BankStore,
    bank: str,
    pdq: str,
    quality: int | None,
    label: str | None = None,
    source: str | None = None,
) -> Delta:
    """Add one hash (64 hex digits) to an existing bank. LowQuality when ``quality`` is under 50."""
    value = _value(pdq)
    [delta] = store.add(bank, [Entry(value, label, quality)], source)
    return delta


def remove_hash(store: BankStore, bank: str, pdq: str, source: str | None = None) -> Delta:
    return store.remove(bank, _value(pdq), source)


def add_to_rejected(
    store: BankStore, pdq: str | None, quality: int | None, label: str | None = None, source: str | None = None
) -> Delta:
    """A rejected image's hash joins the bank ``rejected`` (flag known_bad, created on first use).
    LowQuality (nothing written) for a hash of quality under 50, or for a result without a hash."""
    if not pdq:
        raise LowQuality(0, "the result has no PDQ hash: it")
    store.ensure(REJECTED, DEFAULT_DISTANCE, "known_bad")
    return add_hash(store, REJECTED, pdq, quality, label, source)


def remove_from_rejected(store: BankStore, pdq: str | None, source: str | None = None) -> Delta | None:
    """An approval after an appeal: the hash leaves the bank ``rejected`` (None when there is nothing to
    take out: no hash, or no such bank)."""
    if not pdq or store.get(REJECTED) is None:
        return None
    return remove_hash(store, REJECTED, pdq, source)


__all__ = ["LowQuality", "add_hash", "add_to_rejected", "remove_from_rejected", "remove_hash"]
