"""``image-analysis``: operate the pipeline on buckets that already hold images.

Every command finds the stack's table and queue from its CloudFormation outputs (``--stack-name``,
default ``image-analysis``) or takes them explicitly (``--table``, ``--queue-url``). AWS credentials,
region and endpoints come from the usual SDK settings (profiles, ``AWS_ENDPOINT_URL`` for an emulator).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from image_analysis_cli import queries
from image_analysis_cli.enqueue import (
    ListedObject,
    QueueSender,
    list_objects,
    reprocess_request,
    s3_notification,
)
from image_analysis_cli.resources import CliError, StackResources, client_error_message, parse_s3_url
from image_analysis_cli.state import BackfillState

FLAGS = ("nsfw", "ai_generated", "deepfake")


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


@click.group(
    help="Operate the image-analysis pipeline: backfill, reprocess, reconcile and query results.\n\n"
    "The stack's table and queue come from its CloudFormation outputs (--stack-name) or are given with "
    "--table and --queue-url. Credentials, region and endpoints are the AWS SDK's usual settings."
)
@click.option("--stack-name", default="image-analysis", show_default=True, envvar="IMAGE_ANALYSIS_STACK")
@click.option("--table", help="The results table (instead of reading the stack's outputs).")
@click.option("--queue-url", help="The analysis queue (instead of reading the stack's outputs).")
@click.pass_context
def cli(ctx: click.Context, stack_name: str, table: str | None, queue_url: str | None) -> None:
    ctx.obj = Context(stack_name, table, queue_url)


def main() -> None:
    """Entry point: user errors are one clear line and exit code 2, never a stack trace."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CliError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except ClientError as exc:
        click.echo(f"Error: AWS said {client_error_message(exc)}", err=True)
        sys.exit(2)
    except BotoCoreError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


# -- backfill ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option("--dry-run", is_flag=True, help="Count what would be enqueued and estimate the vendor cost.")
@click.option(
    "--price",
    "prices",
    multiple=True,
    metavar="PROVIDER=USD",
    help="Price per analysis of a provider for the estimate, e.g. --price imagga=0.0012 (repeatable).",
)
@click.option("--state-file", type=click.Path(path_type=Path), help="Where progress is kept (resumable).")
@click.option("--restart", is_flag=True, help="Ignore saved progress and start from the first key.")
@click.pass_obj
def backfill(
    obj: Context, url: str, dry_run: bool, prices: tuple[str, ...], state_file: Path | None, restart: bool
) -> None:
    """Enqueue every object under s3://BUCKET/PREFIX for analysis, as if it had just been uploaded.

    Objects go through the analysis queue (the same path as an upload: concurrency limits, retries, the
    dead-letter queue). Objects that already have a result are acknowledged without a second analysis.
    Progress is saved after every batch; run the same command again to resume after an interruption.
    """
    bucket, prefix = parse_s3_url(url)
    price_per_image = _prices(prices)
    if dry_run:
        count, size = 0, 0
        with click.progressbar(list_objects(bucket, prefix), label="Listing", show_pos=True) as objects:
            for listed in objects:
                count, size = count + 1, size + listed.size
        click.echo(f"{count} object(s), {size / 1e9:.2f} GB under s3://{bucket}/{prefix}")
        if price_per_image:
            for provider, price in price_per_image.items():
                click.echo(f"  {provider}: {count} call(s) x ${price:g} = ${count * price:,.2f}")
            click.echo(f"Estimated vendor cost: ${count * sum(price_per_image.values()):,.2f} (before cache hits)")
        else:
            click.echo("Pass --price PROVIDER=USD to estimate the vendor cost.")
        return
    state = BackfillState.for_target(bucket, prefix, state_file)
    if restart:
        state.reset()
    if state.last_key:
        click.echo(f"Resuming after {state.last_key!r} ({state.enqueued} already enqueued)")
    sender = QueueSender(obj.resources.queue_url)
    batch: list[ListedObject] = []
    with click.progressbar(length=0, label="Enqueuing", show_pos=True) as bar:
        for listed in list_objects(bucket, prefix, start_after=state.last_key):
            batch.append(listed)
            if len(batch) == 10:
                _send_batch(sender, batch, state, bar)
                batch = []
        if batch:
            _send_batch(sender, batch, state, bar)
    state.finish()
    click.echo(f"Enqueued {state.enqueued} object(s) from s3://{bucket}/{prefix} into {obj.resources.queue_url}")


def _send_batch(sender: QueueSender, batch: list[ListedObject], state: BackfillState, bar: Any) -> None:
    sender.send(s3_notification(listed) for listed in batch)
    state.advance(batch[-1].key, len(batch))
    bar.update(len(batch))


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


@cli.command()
@click.option("--key", "keys", multiple=True, metavar="s3://BUCKET/KEY", help="One object (repeatable).")
@click.option("--prefix", metavar="s3://BUCKET/PREFIX", help="Every object under a prefix.")
@click.option("--flagged", "flagged", type=click.Choice(FLAGS), help="Every object flagged so (see --since).")
@click.option("--failed", is_flag=True, help="Every object whose result is 'failed'.")
@click.option("--since", default="1970-01-01", show_default=True, help="With --flagged: flagged on or after.")
@click.option("--reason", required=True, help="Why: recorded on each new result (e.g. 'thresholds changed').")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def reprocess(
    obj: Context,
    keys: tuple[str, ...],
    prefix: str | None,
    flagged: str | None,
    failed: bool,
    since: str,
    reason: str,
    yes: bool,
) -> None:
    """Analyze chosen objects again on purpose, bypassing the "already analyzed" guard.

    Each object gets its own request id: the result is replaced once per request (a repeated delivery
    does nothing more), never over the result of a newer upload, and records why.
    """
    if not (keys or prefix or flagged or failed):
        raise click.UsageError("choose objects: --key, --prefix, --flagged or --failed")
    resources = obj.resources
    targets = list(_reprocess_targets(resources, keys, prefix, flagged, failed, since))
    if not targets:
        click.echo("Nothing to reprocess.")
        return
    if not yes:
        click.confirm(f"Reprocess {len(targets)} object(s) ({reason!r})?", abort=True)
    sender = QueueSender(resources.queue_url)
    with click.progressbar(targets, label="Enqueuing", show_pos=True) as bar:
        sender.send(s3_notification(target, reprocess_request(reason)) for target in bar)
    click.echo(f"Enqueued {sender.sent} reprocess request(s).")


def _reprocess_targets(
    resources: StackResources,
    keys: tuple[str, ...],
    prefix: str | None,
    flagged: str | None,
    failed: bool,
    since: str,
) -> Iterator[ListedObject]:
    seen: set[tuple[str, str]] = set()

    def once(items: Iterator[ListedObject]) -> Iterator[ListedObject]:
        for item in items:
            if (item.bucket, item.key) not in seen:
                seen.add((item.bucket, item.key))
                yield item

    for url in keys:
        bucket, key = parse_s3_url(url)
        if not key:
            raise CliError(f"{url!r} names no key")
        yield from once(iter([queries.head(bucket, key)]))
    if prefix:
        bucket, key_prefix = parse_s3_url(prefix)
        yield from once(list_objects(bucket, key_prefix))
    if flagged:
        for row in queries.flagged(resources.results_table, flagged, since, limit=None):
            yield from once(iter([queries.head(row["bucket"], row["key"])]))
    if failed:
        for row in queries.with_status(resources.results_table, "failed"):
            yield from once(iter([queries.head(row["bucket"], row["key"])]))


# -- reconcile ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option("--enqueue", is_flag=True, help="Enqueue the objects that have no result (or a stale one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def reconcile(obj: Context, url: str, enqueue: bool, as_json: bool) -> None:
    """Compare s3://BUCKET/PREFIX with the results table.

    Reports objects with no result, results whose object is gone, and results for older bytes than the
    object holds now (a stale ETag). Exit code 1 when there is drift, 0 when there is none.
    """
    bucket, prefix = parse_s3_url(url)
    resources = obj.resources
    objects = {o.key: o for o in list_objects(bucket, prefix)}
    results = {row["key"]: row for row in queries.results_under(resources.results_table, bucket, prefix)}
    missing = sorted(k for k in objects if k not in results)
    orphaned = sorted(k for k in results if k not in objects)
    stale = sorted(
        k for k, row in results.items() if k in objects and row.get("etag") and row["etag"] != objects[k].etag
    )
    report = {
        "bucket": bucket,
        "prefix": prefix,
        "objects": len(objects),
        "results": len(results),
        "objects_without_result": missing,
        "results_without_object": orphaned,
        "stale_results": stale,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(f"s3://{bucket}/{prefix}: {len(objects)} object(s), {len(results)} result(s)")
        for title, keys in (
            ("objects without a result", missing),
            ("results whose object is gone", orphaned),
            ("results for older bytes", stale),
        ):
            click.echo(f"  {title}: {len(keys)}")
            for key in keys[:20]:
                click.echo(f"    {key}")
            if len(keys) > 20:
                click.echo(f"    ... and {len(keys) - 20} more (--json lists all)")
    if enqueue and (missing or stale):
        sender = QueueSender(resources.queue_url)
        sender.send(s3_notification(objects[k]) for k in [*missing, *stale])
        click.echo(f"Enqueued {sender.sent} object(s).", err=as_json)
    if missing or orphaned or stale:
        sys.exit(1)


# -- queries ------------------------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option("--version-id", help="A version of a versioned bucket (default: the unversioned item).")
@click.option("--raw", "with_raw", is_flag=True, help="Also print the kept vendor answers, decoded.")
@click.pass_obj
def results(obj: Context, url: str, version_id: str | None, with_raw: bool) -> None:
    """Print the result of s3://BUCKET/KEY as JSON."""
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
    click.echo(json.dumps(item, indent=2, ensure_ascii=False, default=str))


@cli.command()
@click.option("--flag", required=True, type=click.Choice(FLAGS))
@click.option("--since", default="1970-01-01", show_default=True, help="ISO date: flagged on or after.")
@click.option("--limit", default=25, show_default=True, type=click.IntRange(1, 1000))
@click.option("--next", "next_token", help="The token a previous page printed.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def flagged(obj: Context, flag: str, since: str, limit: int, next_token: str | None, as_json: bool) -> None:
    """List flagged objects, newest first, a page at a time."""
    page = queries.flagged_page(obj.resources.results_table, flag, since, limit, next_token)
    if as_json:
        click.echo(json.dumps(page, indent=2, ensure_ascii=False, default=str))
        return
    for row in page["items"]:
        click.echo(f"{row['analyzed_at']}  {','.join(row.get('flags', []))}  s3://{row['bucket']}/{row['key']}")
    if not page["items"]:
        click.echo(f"No objects flagged {flag} since {since}.")
    if page["next"]:
        click.echo(f"More: --next {page['next']}")


@cli.command()
@click.option("--sha256", required=True, help="The SHA-256 of the bytes, 64 hex digits.")
@click.pass_obj
def find(obj: Context, sha256: str) -> None:
    """Every key holding the same bytes."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
        raise click.BadParameter("must be 64 hexadecimal digits", param_hint="--sha256")
    rows = queries.by_sha256(obj.resources.results_table, sha256.lower())
    for row in rows:
        version = f" (version {row['version_id']})" if row.get("version_id") else ""
        click.echo(f"s3://{row['bucket']}/{row['key']}{version}  {row.get('status', '')}  {row.get('analyzed_at', '')}")
    if not rows:
        click.echo("No object holds these bytes.")


if __name__ == "__main__":
    main()
