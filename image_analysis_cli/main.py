"""``image-analysis``: operate the pipeline on buckets that already hold images.

Every command finds the stack's table and queue from its CloudFormation outputs (``--stack-name``,
default ``image-analysis``) or takes them explicitly (``--table``, ``--queue-url``). AWS credentials,
region and endpoints come from the usual SDK settings (profiles, ``AWS_ENDPOINT_URL`` for an emulator).

Progress bars go to standard error, so that ``--json`` output on standard output stays parseable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from image_analysis_cli import queries
from image_analysis_cli import review as review_commands
from image_analysis_cli.enqueue import (
    ListedObject,
    QueueError,
    QueueSender,
    is_versioned,
    list_objects,
    list_versions,
    reprocess_request,
    s3_notification,
)
from image_analysis_cli.resources import (
    CliError,
    ObjectGone,
    StackResources,
    client_error_message,
    parse_s3_url,
)
from image_analysis_cli.state import BackfillState
from image_analysis_cli.terminal import safe_json, shown

FLAGS = ("nsfw", "ai_generated", "deepfake", "known_bad")
SHOWN = 20  # keys listed in text output before "... and N more"


class Context:
    def __init__(self, stack_name: str, table: str | None, queue_url: str | None) -> None:
        self.stack_name = stack_name
        self.table = table
        self.queue_url = queue_url
        self._resources: StackResources | None = None

    @property
    def resources(self) -> StackResources:
        if self._resources is None:
            self._resources = StackResources.resolve(self.stack_name, self.table, self.queue_url)
        return self._resources


class IsoDate(click.ParamType):
    """A date (``2026-11-01``) or a UTC time, kept in the form ``analyzed_at`` compares with as a string."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text).isoformat()
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def progress(label: str, iterable: Iterable[Any] | None = None, length: int | None = None) -> Any:
    """A progress bar on standard error (on a terminal; elsewhere the label is printed once)."""
    return click.progressbar(iterable, length=length, label=label, show_pos=True, file=sys.stderr)


def _listed(keys: Sequence[str], more_hint: str = "") -> None:
    for key in keys[:SHOWN]:
        click.echo(f"    {shown(key)}")
    if len(keys) > SHOWN:
        click.echo(f"    ... and {len(keys) - SHOWN} more{more_hint}")


@click.group(
    help="Operate the image-analysis pipeline on buckets that already hold images: analyze what is "
    "there (backfill), run chosen objects again (reprocess), compare the bucket with the results "
    "(reconcile), read results (results, flagged, find), and decide on flagged images (review, calibrate).\n\n"
    "The stack's results table and backfill queue come from its CloudFormation outputs "
    "(--stack-name) or are given with --table and --queue-url. Every message goes to the backfill "
    "queue, whose trigger has a concurrency of its own, so live uploads never wait behind it. "
    "Credentials, region and endpoints are the AWS SDK's usual settings (AWS_PROFILE, AWS_REGION, "
    "AWS_ENDPOINT_URL). Global options go before the command; `image-analysis COMMAND --help` "
    "explains each command.\n\n"
    "Exit codes: 0 done, 1 reconcile found drift, 2 a bad argument, a missing resource or a refused "
    "review decision (one line on standard error), 130 interrupted."
)
@click.option(
    "--stack-name",
    default="image-analysis",
    show_default=True,
    envvar="IMAGE_ANALYSIS_STACK",
    help="The deployed image-analysis stack whose outputs name the table and the queue (also IMAGE_ANALYSIS_STACK).",
)
@click.option("--table", help="The results table's name (instead of reading the stack's outputs).")
@click.option(
    "--queue-url",
    help="The queue the commands send to [default: the stack's BackfillQueueUrl output].",
)
@click.pass_context
def cli(ctx: click.Context, stack_name: str, table: str | None, queue_url: str | None) -> None:
    ctx.obj = Context(stack_name, table, queue_url)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors are one clear line and exit code 2, never a stack trace."""
    try:
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="image-analysis", standalone_mode=False
        )
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    # Messages may quote keys and URLs: printed with their control characters escaped, on one line.
    except CliError as exc:
        click.echo(f"Error: {shown(str(exc))}", err=True)
        return 2
    except ClientError as exc:
        click.echo(f"Error: AWS said {shown(client_error_message(exc))}", err=True)
        return 2
    except BotoCoreError as exc:
        click.echo(f"Error: {shown(str(exc))}", err=True)
        return 2
    except OSError as exc:  # a state file that cannot be written, a folder that is a file, ...
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"Error: {shown(f'{exc.strerror or exc}{where}')}", err=True)
        return 2
    return code if isinstance(code, int) else 0


def main() -> None:
    """The ``image-analysis`` console script."""
    sys.exit(run())


# -- backfill ----------------------------------------------------------------------------------------


@cli.command(short_help="Analyze every object already in a bucket or prefix.")
@click.argument("url", metavar="s3://BUCKET[/PREFIX]")
@click.option("--dry-run", is_flag=True, help="Only count the objects and estimate the vendor cost; enqueue nothing.")
@click.option(
    "--price",
    "prices",
    multiple=True,
    metavar="PROVIDER=USD",
    help="With --dry-run: what analyzing one image costs at a provider, all of its calls (Imagga's tags and "
    "nsfw are two), e.g. --price imagga=0.002 (repeatable, one per paid provider).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where progress is saved after every batch of ten [default: .image-analysis/backfill-BUCKET-*.json, "
    "or under IMAGE_ANALYSIS_STATE_DIR].",
)
@click.option("--restart", is_flag=True, help="Forget saved progress and start again from the first key.")
@click.pass_obj
def backfill(
    obj: Context, url: str, dry_run: bool, prices: tuple[str, ...], state_file: Path | None, restart: bool
) -> None:
    """Analyze every object already under s3://BUCKET/PREFIX, as if each had just been uploaded.

    Each object is sent into the backfill queue as an upload event (the path of an upload, with a
    concurrency cap, retries and a dead-letter queue of its own, so live uploads never wait behind
    it). In a versioned bucket the current version of each key is sent with its version id. Objects
    that already have a result for the same bytes are acknowledged by the pipeline without a second
    analysis (no vendor call); empty "dir/" folder markers are left out.

    Progress is saved after every batch of ten: after an interruption (Ctrl-C, a lost connection)
    the same command resumes after the last key sent, so no object is sent twice by one backfill.

    \b
    Examples:
      image-analysis backfill s3://photos/2024/ --dry-run --price imagga=0.0012
      image-analysis backfill s3://photos/2024/
    """
    bucket, prefix = parse_s3_url(url)
    where = shown(f"s3://{bucket}/{prefix}")
    price_per_image = _prices(prices)
    if dry_run:
        versioned = is_versioned(bucket)
        count, size = 0, 0
        with progress(f"Listing {where}", list_objects(bucket, prefix, versioned=versioned)) as objects:
            for listed in objects:
                count, size = count + 1, size + listed.size
        kind = " (current versions)" if versioned else ""
        click.echo(f"{count} object(s){kind}, {size / 1e9:.2f} GB under {where}")
        if price_per_image:
            for provider, price in price_per_image.items():
                click.echo(f"  {provider}: {count} image(s) x ${price:g} = {usd(count * price)}")
            click.echo(f"Estimated vendor cost: {usd(count * sum(price_per_image.values()))} (before cache hits)")
        else:
            click.echo("Pass --price PROVIDER=USD to estimate the vendor cost.")
        return
    queue_url = obj.resources.queue_url
    state = BackfillState.for_target(bucket, prefix, state_file, fresh=restart)
    versioned = is_versioned(bucket)
    before = state.enqueued
    if state.last_key:
        click.echo(f"Resuming after {state.last_key!r} ({state.enqueued} already enqueued)")
    sender = QueueSender(queue_url)
    batch: list[ListedObject] = []
    try:
        with progress(f"Enqueuing {where}", length=0) as bar:
            for listed in list_objects(bucket, prefix, start_after=state.last_key, versioned=versioned):
                batch.append(listed)
                if len(batch) == 10:
                    _send_batch(sender, batch, state, bar)
                    batch = []
            if batch:
                _send_batch(sender, batch, state, bar)
    except QueueError as exc:
        raise CliError(f"{exc}; progress is saved: run the same command again to resume") from None
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: {state.enqueued} object(s) enqueued so far; run the same command to resume.", err=True
        )
        raise
    state.finish()
    this_run = state.enqueued - before
    total = f" ({state.enqueued} in all, with the earlier run)" if before else ""
    click.echo(f"Enqueued {this_run} object(s) from {where}{total} into the backfill queue.")
    if this_run:
        click.echo(
            "The pipeline analyzes them as its concurrency allows; objects that already have a result "
            "for the same bytes are acknowledged without a second analysis."
        )


def _send_batch(sender: QueueSender, batch: list[ListedObject], state: BackfillState, bar: Any) -> None:
    sender.send(s3_notification(listed) for listed in batch)
    state.advance(batch[-1].key, len(batch))
    bar.update(len(batch))


def usd(amount: float) -> str:
    """US dollars to the cent; an amount under a cent with the digits it needs ($0.004, never $0.00)."""
    if 0 < amount < 0.01:
        return f"${amount:.2g}"
    return f"${amount:,.2f}"


def _prices(pairs: tuple[str, ...]) -> dict[str, float]:
    prices = {}
    for pair in pairs:
        provider, sep, value = pair.partition("=")
        try:
            prices[provider.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not provider.strip():
            raise click.BadParameter(f"{pair!r} is not PROVIDER=USD", param_hint="--price")
    return prices


# -- reprocess -----------------------------------------------------------------------------------------


@cli.command(short_help="Analyze chosen objects again, on purpose, with a reason.")
@click.option("--key", "keys", multiple=True, metavar="s3://BUCKET/KEY", help="One object (repeatable); it must exist.")
@click.option("--prefix", metavar="s3://BUCKET/PREFIX", help="Every object under a prefix.")
@click.option(
    "--flagged", "flagged", type=click.Choice(FLAGS), help="Every object with this flag, flagged since --since."
)
@click.option("--failed", is_flag=True, help="Every object whose result is 'failed' (reads the whole table).")
@click.option(
    "--since",
    type=IsoDate(),
    help=f"With --flagged: flagged on or after this date [default: the last {queries.DEFAULT_SINCE_DAYS} days].",
)
@click.option("--reason", required=True, help="Why, recorded on each new result (e.g. 'NSFW threshold 0.8 -> 0.7').")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def reprocess(
    obj: Context,
    keys: tuple[str, ...],
    prefix: str | None,
    flagged: str | None,
    failed: bool,
    since: str | None,
    reason: str,
    yes: bool,
) -> None:
    """Analyze chosen objects again on purpose, bypassing the "already analyzed" guard.

    Each object gets its own request id: its result is replaced once per request (a repeated delivery
    does nothing more), never over the result of a newer upload, and records the reason. Objects found
    through the table (--flagged, --failed) that no longer exist are skipped and listed; a --key that
    does not exist is an error, before anything is sent.

    \b
    Examples:
      image-analysis reprocess --flagged nsfw --since 2026-11-01 --reason "NSFW threshold 0.8 -> 0.7"
      image-analysis reprocess --failed --reason "vendor outage over" --yes
      image-analysis reprocess --key s3://photos/2024/cat.jpg --reason "new provider"
    """
    if not (keys or prefix or flagged or failed):
        raise click.UsageError("choose objects: --key, --prefix, --flagged or --failed")
    resources = obj.resources
    gone: list[str] = []
    with progress("Collecting the objects to reprocess", length=0) as bar:
        targets = []
        for target in _reprocess_targets(
            resources, keys, prefix, flagged, failed, since or queries.default_since(), gone
        ):
            targets.append(target)
            bar.update(1)
    if gone:
        click.echo(f"Skipped {len(gone)} object(s) that no longer exist:")
        _listed(gone)
    if not targets:
        click.echo("Nothing to reprocess.")
        return
    if not yes:
        try:
            confirmed = click.confirm(f"Reprocess {len(targets)} object(s) ({reason!r})?")
        except click.exceptions.Abort:
            if sys.stdin is not None and sys.stdin.isatty():
                raise  # Ctrl-C at the question
            # No terminal and no answer (a script, CI): nothing to interrupt, so not exit code 130.
            raise CliError(
                f"reprocess asks before sending {len(targets)} object(s), and standard input gave no answer: "
                "pass --yes to send them without asking"
            ) from None
        if not confirmed:
            raise click.Abort()
    sender = QueueSender(resources.queue_url)
    with progress("Enqueuing", targets) as bar:
        sender.send(s3_notification(target, reprocess_request(reason)) for target in bar)
    click.echo(f"Enqueued {sender.sent} reprocess request(s).")


def _reprocess_targets(
    resources: StackResources,
    keys: tuple[str, ...],
    prefix: str | None,
    flagged: str | None,
    failed: bool,
    since: str,
    gone: list[str],
) -> Iterator[ListedObject]:
    seen: set[tuple[str, str, str]] = set()

    def once(items: Iterable[ListedObject]) -> Iterator[ListedObject]:
        for item in items:
            if (item.bucket, item.key, item.version) not in seen:
                seen.add((item.bucket, item.key, item.version))
                yield item

    def from_rows(rows: Iterable[dict[str, Any]]) -> Iterator[ListedObject]:
        for row in rows:
            try:
                yield queries.head(row["bucket"], row["key"], row.get("version_id"))
            except ObjectGone:
                version = f" (version {row['version_id']})" if row.get("version_id") else ""
                gone.append(f"s3://{row['bucket']}/{row['key']}{version}")

    named = []
    for url in keys:
        bucket, key = parse_s3_url(url)
        if not key:
            raise CliError(f"{url!r} names no key")
        named.append(queries.head(bucket, key))
    yield from once(named)
    if prefix:
        bucket, key_prefix = parse_s3_url(prefix)
        yield from once(list_objects(bucket, key_prefix, versioned=is_versioned(bucket)))
    if flagged:
        yield from once(from_rows(queries.flagged(resources.results_table, flagged, since)))
    if failed:
        yield from once(from_rows(queries.with_status(resources.results_table, "failed")))


# -- reconcile ----------------------------------------------------------------------------------------


def _name(key: str, version: str) -> str:
    return key if version == "null" else f"{key} (version {version})"


def _entry(key: str, version: str) -> dict[str, str | None]:
    return {"key": key, "version_id": None if version == "null" else version}


@cli.command(short_help="Compare a bucket with the results; exit 1 on drift.")
@click.argument("url", metavar="s3://BUCKET[/PREFIX]")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Also send the objects without a result, and those whose result is for older bytes, to be analyzed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (every key, not the first 20).")
@click.pass_obj
def reconcile(obj: Context, url: str, enqueue: bool, as_json: bool) -> None:
    """Compare s3://BUCKET/PREFIX with the results table and report the drift.

    \b
    Drift is:
      - objects without a result (versioned bucket: current versions);
      - results whose object version is gone (deleted, and no delete
        event reached the pipeline);
      - results for older bytes than the object holds now (another ETag).
    Tombstones (what OnDelete=tombstone keeps of a deleted object's
    result) are counted, not drift.

    Reads the whole bucket prefix and scans the whole table. Exit code 1 when there is drift, 0 when
    there is none, so it can run on a schedule. With --enqueue, results for older bytes are replaced
    through reprocess requests (their result may come from a newer event than a listing can prove).
    """
    bucket, prefix = parse_s3_url(url)
    resources = obj.resources
    where = shown(f"s3://{bucket}/{prefix}")
    versioned = is_versioned(bucket)
    objects: dict[tuple[str, str], ListedObject] = {}
    listing = list_versions(bucket, prefix) if versioned else list_objects(bucket, prefix)
    with progress(f"Listing {where}", listing) as bar:
        for listed in bar:
            objects[(listed.key, listed.version)] = listed
    table = resources.results_table
    with progress(f"Scanning the results table {table}", length=max(queries.approximate_item_count(table), 1)) as bar:
        rows = {(r["key"], r.get("sk", "null")): r for r in queries.results_under(table, bucket, prefix, bar.update)}
    results = {ref: row for ref, row in rows.items() if not row.get("deleted_at")}
    tombstones = [ref for ref, row in rows.items() if row.get("deleted_at")]
    current = {ref for ref, listed in objects.items() if listed.is_latest}
    missing = sorted(ref for ref in current if ref not in results)
    orphaned = sorted(ref for ref in results if ref not in objects)
    stale = sorted(
        ref for ref, row in results.items() if ref in objects and row.get("etag") and row["etag"] != objects[ref].etag
    )
    report = {
        "bucket": bucket,
        "prefix": prefix,
        "versioned": versioned,
        "objects": len(current),
        "versions": len(objects),
        "results": len(results),
        "tombstones": len(tombstones),
        "objects_without_result": [_entry(*ref) for ref in missing],
        "results_without_object": [_entry(*ref) for ref in orphaned],
        "stale_results": [_entry(*ref) for ref in stale],
    }
    if as_json:
        click.echo(safe_json(report, indent=2))
    else:
        versions = f" in {len(objects)} version(s)" if versioned else ""
        click.echo(
            f"{where}: {len(current)} object(s){versions}, {len(results)} result(s), "
            f"{len(tombstones)} tombstone(s) of deleted objects"
        )
        for title, refs in (
            ("objects without a result", missing),
            ("results whose object is gone", orphaned),
            ("results for older bytes", stale),
        ):
            click.echo(f"  {title}: {len(refs)}")
            _listed([_name(*ref) for ref in refs], " (--json lists all)")
        if not (missing or orphaned or stale):
            click.echo("No drift.")
    if enqueue and (missing or stale):
        # A tombstone or a stale result may carry a newer event's order than a plain upload event would:
        # a reprocess request replaces it regardless, once.
        plain = [objects[ref] for ref in missing if ref not in rows]
        replace = [objects[ref] for ref in [*missing, *stale] if ref in rows]
        sender = QueueSender(resources.queue_url)
        sender.send(s3_notification(o) for o in plain)
        reason = "reconcile: the result was missing or for older bytes"
        sender.send(s3_notification(o, reprocess_request(reason)) for o in replace)
        click.echo(f"Enqueued {sender.sent} object(s).", err=as_json)
    if missing or orphaned or stale:
        click.get_current_context().exit(1)


# -- queries ------------------------------------------------------------------------------------------


@cli.command(short_help="Print one object's result as JSON.")
@click.argument("url", metavar="s3://BUCKET/KEY")
@click.option("--version-id", help="A version of a versioned bucket [default: the bucket's unversioned item].")
@click.option("--raw", "with_raw", is_flag=True, help="Also print the vendor answers kept with the result, decoded.")
@click.pass_obj
def results(obj: Context, url: str, version_id: str | None, with_raw: bool) -> None:
    """Print the result of one object as JSON (the data contract's document).

    \b
    Example:
      image-analysis results s3://photos/2024/cat.jpg
    """
    bucket, key = parse_s3_url(url)
    if not key:
        raise CliError(f"{url!r} names no key")
    item = queries.result(obj.resources.results_table, bucket, key, version_id)
    if item is None:
        raise CliError(f"no result for s3://{bucket}/{key}" + (f" version {version_id}" if version_id else ""))
    if with_raw:
        from image_analysis.merge import unpack_raw

        item["raw"] = {k: unpack_raw(v) if isinstance(v, str) else v for k, v in item.get("raw", {}).items()}
    else:
        item.pop("raw", None)
    click.echo(safe_json(item, indent=2, default=str))


@cli.command(short_help="List flagged objects, newest first, paged.")
@click.option("--flag", required=True, type=click.Choice(FLAGS), help="Which flag to list.")
@click.option(
    "--since",
    type=IsoDate(),
    help=f"Flagged on or after this date [default: the last {queries.DEFAULT_SINCE_DAYS} days]. Each month "
    "further back costs one more query of the index.",
)
@click.option("--limit", default=25, show_default=True, type=click.IntRange(1, 1000), help="Objects per page.")
@click.option("--next", "next_token", metavar="TOKEN", help="Go on from where the previous page stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON ({items, next}).")
@click.pass_obj
def flagged(obj: Context, flag: str, since: str | None, limit: int, next_token: str | None, as_json: bool) -> None:
    """List flagged objects, newest first, a page at a time (through the flag's index, no scan).

    Each line: when it was analyzed, its flags, the object. When more objects are flagged than one
    page holds, the last line gives the --next TOKEN for the following page (same --flag and --since).

    \b
    Examples:
      image-analysis flagged --flag ai_generated
      image-analysis flagged --flag nsfw --since 2026-11-01 --limit 50
    """
    since = since or queries.default_since()
    page = queries.flagged_page(obj.resources.results_table, flag, since, limit, next_token)
    if as_json:
        click.echo(safe_json(page, indent=2, default=str))
        return
    for row in page["items"]:
        version = f" (version {row['version_id']})" if row.get("version_id") else ""
        flags = ",".join(row.get("flags", []))
        click.echo(shown(f"{row['analyzed_at']}  {flags}  s3://{row['bucket']}/{row['key']}{version}"))
    if not page["items"]:
        click.echo(f"No objects flagged {flag} since {since}.")
    if page["next"]:
        click.echo(f"More: --next {page['next']}")


@cli.command(short_help="Every object holding the same bytes (by SHA-256).")
@click.option("--sha256", required=True, help="The SHA-256 of the bytes, 64 hex digits (e.g. from sha256sum).")
@click.pass_obj
def find(obj: Context, sha256: str) -> None:
    """Every object holding the same bytes (through the BySha256 index, no scan).

    \b
    Example:
      image-analysis find --sha256 "$(sha256sum cat.jpg | cut -d' ' -f1)"
    """
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
        raise click.BadParameter("must be 64 hexadecimal digits", param_hint="--sha256")
    rows = queries.by_sha256(obj.resources.results_table, sha256.lower())
    for row in rows:
        version = f" (version {row['version_id']})" if row.get("version_id") else ""
        where = f"s3://{row['bucket']}/{row['key']}{version}"
        click.echo(shown(f"{where}  {row.get('status', '')}  {row.get('analyzed_at', '')}"))
    if not rows:
        click.echo("No object holds these bytes.")


# -- review and calibration (image_analysis_cli/review.py) -----------------------------------------------
cli.add_command(review_commands.review)
cli.add_command(review_commands.calibrate)

from image_analysis_cli.banks import bank  # noqa: E402  (the group registers on ``cli``)

cli.add_command(bank)

if __name__ == "__main__":
    main()
