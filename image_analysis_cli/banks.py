"""``image-analysis bank ...``: hash banks, named sets of PDQ hashes every upload is matched against.

The banks live in the stack's banks table and bucket (outputs ``BanksTableName``, ``BanksBucketName``,
or ``--banks-table`` / ``--banks-bucket``). Changes (``add``, ``remove``) reach running functions within a
minute; ``import`` and ``compact`` write a new snapshot, which functions load at their next poll.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import click

from image_analysis.analyzers.pdq import MIN_QUALITY, PdqHash, parse_hex, pdq_hash, stored_pixels, to_hex
from image_analysis.banks.formats import parse_lines
from image_analysis.banks.matcher import BankMatcher, describe
from image_analysis.banks.model import DEFAULT_DISTANCE, FLAGS, REJECTED, BankError, Entry
from image_analysis.banks.rescan import candidates
from image_analysis.banks.store import BankStore
from image_analysis.errors import InputRejected
from image_analysis.imaging import decode
from image_analysis_cli import queries
from image_analysis_cli.enqueue import ListedObject, QueueSender, s3_notification
from image_analysis_cli.resources import CliError, parse_s3_url

# The largest image ``add`` and ``match`` read (the function's default MAX_PIXELS).
MAX_PIXELS = 100_000_000


class BankContext:
    def __init__(self, parent: Any, table: str | None, bucket: str | None) -> None:
        self.parent = parent
        self._table = table
        self._bucket = bucket
        self._store: BankStore | None = None

    @property
    def store(self) -> BankStore:
        if self._store is None:
            table, bucket = self._table, self._bucket
            if not (table and bucket):
                resources = self.parent.resources
                table, bucket = table or resources.banks_table, bucket or resources.banks_bucket
            if not (table and bucket):
                raise CliError(
                    "the stack has no hash banks (outputs BanksTableName, BanksBucketName): deploy this version, "
                    "or pass --banks-table and --banks-bucket"
                )
            self._store = BankStore(table, boto3.client("dynamodb"), boto3.client("s3"), bucket)
        return self._store


@click.group(
    short_help="Hash banks: named sets of PDQ hashes uploads are matched against.",
    help="Hash banks: named sets of PDQ hashes (Meta's 256-bit perceptual hash) every upload is matched "
    "against, in any rotation or flip. A bank has a distance (default 31 bits) and a flag: known_bad "
    "(a match flags the image known_bad, alerts and quarantines it) or none (the match is only recorded).\n\n"
    "Changes reach running functions within a minute. Hashes of PDQ quality under 50 are neither banked "
    "nor matched. The bank 'rejected' (known_bad) is created on first use and fed by review rejections.\n\n"
    "Exit codes: 0 done, 1 some file was not added (each is named, with the reason), 2 a bad argument or a "
    "missing resource.",
)
@click.option("--banks-table", help="The banks table (instead of the stack's output BanksTableName).")
@click.option("--banks-bucket", help="The snapshots bucket (instead of the stack's output BanksBucketName).")
@click.pass_context
def bank(ctx: click.Context, banks_table: str | None, banks_bucket: str | None) -> None:
    ctx.obj = BankContext(ctx.obj, banks_table, banks_bucket)


def _fail(exc: BankError) -> CliError:
    return CliError(str(exc))


@bank.command(short_help="Create a bank.")
@click.argument("name")
@click.option(
    "--distance",
    default=DEFAULT_DISTANCE,
    show_default=True,
    type=click.IntRange(0, 63),
    help="Bits two hashes may differ by and still match (PDQ's documented threshold is 31).",
)
@click.option(
    "--flag",
    type=click.Choice(FLAGS),
    default="none",
    show_default=True,
    help="known_bad: a match flags, alerts and quarantines the image; none: it is only recorded.",
)
@click.pass_obj
def create(obj: BankContext, name: str, distance: int, flag: str) -> None:
    """Create the bank NAME.

    \b
    Example:
      image-analysis bank create csam-list --flag known_bad
    """
    try:
        created = obj.store.create(name, distance, flag)
    except BankError as exc:
        raise _fail(exc) from None
    click.echo(f"Created bank {created.name} (distance {created.distance}, flag {created.flag}).")


@bank.command(short_help="Hash images (files or s3:// URLs) and add them to a bank.")
@click.argument("name")
@click.argument("sources", nargs=-1, required=True, metavar="FILE_OR_S3_URL...")
@click.option("--label", help="The label of every entry added [default: the file's name or URL].")
@click.pass_obj
def add(obj: BankContext, name: str, sources: tuple[str, ...], label: str | None) -> None:
    """Hash each image (local files and s3://bucket/key URLs) and add it to the bank NAME.

    Images whose PDQ quality is under 50 (too flat or too small to hash reliably) are not added; each is
    named with its quality. The bank 'rejected' is created (known_bad) when it does not exist yet.

    \b
    Example:
      image-analysis bank add rejected s3://uploads/2026/bad.jpg ./also-bad.png
    """
    store = obj.store
    try:
        if name == REJECTED:
            store.ensure(REJECTED, DEFAULT_DISTANCE, "known_bad")
        store.require(name)
    except BankError as exc:
        raise _fail(exc) from None
    refused = 0
    caller = _caller()
    for source in sources:
        hashed = _hash_source(source)
        if not hashed.usable:
            refused += 1
            click.echo(
                f"Not added: {source}: PDQ quality {hashed.quality} is under {MIN_QUALITY} (too flat or too small "
                "to hash reliably; such hashes are neither banked nor matched)"
            )
            continue
        try:
            [delta] = store.add(name, [Entry(hashed.value, label or source, hashed.quality)], source=caller)
        except BankError as exc:
            raise _fail(exc) from None
        click.echo(f"Added {hashed.hex} (quality {hashed.quality}) from {source} to {name} (change {delta.seq}).")
    if refused:
        click.get_current_context().exit(1)


@bank.command(name="import", short_help="Add a list of hashes to a bank (one new snapshot).")
@click.argument("name")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_(obj: BankContext, name: str, path: Path) -> None:
    """Add the hashes listed in FILE to the bank NAME, written as one new snapshot.

    \b
    Formats (one entry per line):
      HASH[,label]   64 hex digits; further columns are part of the label
                     (so HMA 1.x .pdq.te files import as they are)
      the CSV of `threatexchange dataset --print-signals --csv`
                     (header collab,signal_type,signal_str,category,tags;
                     rows of signal type pdq)
    Blank lines and lines starting with # are skipped; other lines are named and skipped.
    """
    with path.open(encoding="utf-8", errors="replace") as handle:
        parsed = parse_lines(handle)
    for number, reason in parsed.rejected[:20]:
        click.echo(f"  line {number}: {reason}", err=True)
    if len(parsed.rejected) > 20:
        click.echo(f"  ... and {len(parsed.rejected) - 20} more lines skipped", err=True)
    if not parsed.entries:
        raise CliError(f"{path} holds no PDQ hash in a format `bank import` reads (see --help)")
    try:
        updated = obj.store.compact(name, parsed.entries)
    except BankError as exc:
        raise _fail(exc) from None
    assert updated is not None and updated.snapshot is not None
    other = f"; {parsed.other_signals} row(s) of other signal types left out" if parsed.other_signals else ""
    click.echo(
        f"Imported {len(parsed.entries)} hash(es) into {name}: {updated.snapshot.count} entries in its new "
        f"snapshot ({len(parsed.rejected)} line(s) skipped{other}). Running functions load it within a minute."
    )


@bank.command(short_help="Remove a hash from a bank.")
@click.argument("name")
@click.argument("value", metavar="HASH")
@click.pass_obj
def remove(obj: BankContext, name: str, value: str) -> None:
    """Remove the hash HASH (64 hex digits) from the bank NAME."""
    try:
        delta = obj.store.remove(name, _parse(value), source=_caller())
    except BankError as exc:
        raise _fail(exc) from None
    click.echo(f"Removed {to_hex(delta.hash)} from {name} (change {delta.seq}).")


@bank.command(name="list", short_help="List the banks.")
@click.option("--json", "as_json", is_flag=True, help="Print the banks as JSON.")
@click.pass_obj
def list_(obj: BankContext, as_json: bool) -> None:
    """List the banks: flag, distance, entries in the snapshot and changes since."""
    banks = obj.store.list()
    if as_json:
        rows = [
            {
                "name": b.name,
                "flag": b.flag,
                "distance": b.distance,
                "snapshot_entries": b.snapshot.count if b.snapshot else 0,
                "snapshot_built_at": b.snapshot.built_at if b.snapshot else None,
                "changes_since_snapshot": b.pending,
                "created_at": b.created_at,
            }
            for b in banks
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not banks:
        click.echo("No banks yet (image-analysis bank create NAME).")
    for b in banks:
        entries = f"{b.snapshot.count} in its snapshot of {b.snapshot.built_at}" if b.snapshot else "no snapshot"
        click.echo(f"{b.name}  flag {b.flag}  distance {b.distance}  {entries}, {b.pending} change(s) since")


@bank.command(short_help="Match an image (file or s3:// URL) against every bank.")
@click.argument("source", metavar="FILE_OR_S3_URL")
@click.option("--json", "as_json", is_flag=True, help="Print the hash and the matches as JSON.")
@click.pass_obj
def match(obj: BankContext, source: str, as_json: bool) -> None:
    """Hash an image and list the bank entries it matches (any rotation or flip), nearest first."""
    hashed = _hash_source(source)
    outcome = BankMatcher(obj.store).match([hashed])
    if as_json:
        document = {
            "pdq": hashed.hex,
            "pdq_quality": hashed.quality,
            "matches": [m.model_dump(exclude_none=True) for m in outcome.matches],
            "known_bad": outcome.known_bad,
            **({"skipped": outcome.skipped} if outcome.skipped else {}),
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"{source}: PDQ {hashed.hex} (quality {hashed.quality})")
    if outcome.skipped:
        click.echo(f"Not matched: {outcome.skipped}.")
    elif not outcome.matches:
        click.echo("No bank entry within its bank's distance.")
    for found in outcome.matches:
        click.echo(f"  {describe(found)}")


@bank.command(short_help="Match a bank's newer entries against the stored results.")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Only list what would be matched again; send nothing.")
@click.pass_obj
def rescan(obj: BankContext, name: str, dry_run: bool) -> None:
    """Match the bank NAME against every stored result it has not matched yet.

    Results whose hash is within the bank's distance (or whose rotations or flips may be) are sent
    through the backfill queue to be matched again exactly, by the function: the match is recorded on
    the result, and for a known_bad bank the result gains the flag, which alerts (once, with a new alert
    id) and quarantines. No vendor is asked anything again. Reads the whole results table.
    """
    store = obj.store
    try:
        store.require(name)
    except BankError as exc:
        raise _fail(exc) from None
    view = BankMatcher(store).views()[name]
    resources = obj.parent.resources
    found: list[tuple[dict[str, Any], str]] = []
    scanned = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal scanned
        for item in queries.results_with_pdq(resources.results_table):
            scanned += 1
            yield item

    found = list(candidates(view, counted()))
    certain = sum(1 for _, kind in found if kind == "match")
    click.echo(
        f"Scanned {scanned} result(s) with a PDQ hash: {len(found)} may match {name} now "
        f"({certain} within its distance as stored, {len(found) - certain} in some rotation or flip "
        "or in an animation's later frames)."
    )
    for item, kind in found[:20]:
        version = f" (version {item['version_id']})" if item.get("version_id") else ""
        click.echo(f"    {kind:5s}  s3://{item['bucket']}/{item['key']}{version}")
    if len(found) > 20:
        click.echo(f"    ... and {len(found) - 20} more")
    if dry_run or not found:
        return
    sender = QueueSender(resources.queue_url)
    request = {
        "banks": [name],
        "id": str(uuid.uuid4()),
        "requested_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    sender.send(s3_notification(_listed(item), rematch=request) for item, _ in found)
    click.echo(f"Sent {sender.sent} result(s) to be matched again; matches are recorded on each result.")


@bank.command(short_help="Fold a bank's changes into a new snapshot.")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.pass_obj
def compact(obj: BankContext, names: tuple[str, ...]) -> None:
    """Write a new snapshot of each bank (default: every bank) with its changes folded in. Running
    functions load it at their next poll; until then they apply the changes themselves."""
    store = obj.store
    for name in names or tuple(b.name for b in store.list()):
        try:
            done = store.compact(name)
        except BankError as exc:
            raise _fail(exc) from None
        if done is None:
            click.echo(f"{name}: nothing to fold in.")
        else:
            assert done.snapshot is not None
            click.echo(f"{name}: new snapshot with {done.snapshot.count} entries (changes up to {done.seq}).")


# -- helpers ---------------------------------------------------------------------------------------------


def _parse(value: str) -> int:
    try:
        return parse_hex(value)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _hash_source(source: str) -> PdqHash:
    """The PDQ hash of an image file or s3:// object (its first frame, pixels as stored)."""
    if source.startswith("s3://"):
        bucket, key = parse_s3_url(source)
        if not key:
            raise CliError(f"{source!r} names no key")
        data = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        image = decode(data, MAX_PIXELS)
    except InputRejected as exc:
        raise CliError(f"{source}: {exc}") from None
    return pdq_hash(stored_pixels(image), frame=0 if image.frames > 1 else None)


def _listed(item: dict[str, Any]) -> ListedObject:
    return ListedObject(
        item["bucket"], item["key"], int(item.get("size_bytes") or 0), item.get("etag") or "", item.get("version_id")
    )


def _caller() -> str | None:
    """Who makes the change: the caller's IAM identity, recorded on the bank's change log."""
    try:
        return boto3.client("sts").get_caller_identity()["Arn"]
    except Exception:
        return None


__all__ = ["bank"]
