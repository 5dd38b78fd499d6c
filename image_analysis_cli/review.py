"""``image-analysis review`` and ``image-analysis calibrate``: decide on flagged images, from a terminal.

A decision is written with the caller's own AWS credentials (the stack's ModeratorPolicy grants what
it needs) and recorded under the caller's identity as STS reports it, never a name typed in. What it
does to the object (tags, the delivery gate, deletion) is applied by the stack's review function when
the decision's ``image.reviewed`` message reaches it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import click
from botocore.exceptions import BotoCoreError, ClientError

from image_analysis.review.audit import AuditLog
from image_analysis.review.calibration import calibrate as calibrate_decisions
from image_analysis.review.decisions import SWEEP_AFTER_SECONDS, Decisions
from image_analysis.review.errors import ReviewError
from image_analysis.review.ids import ReviewId
from image_analysis.review.publisher import DecisionPublisher
from image_analysis.review.queue import ReviewQueue
from image_analysis_cli.resources import CliError, parse_s3_url

STATUSES = ("pending", "escalated", "approved", "rejected")
OUTPUTS = ("ResultsTableName", "ReviewQueueTableName", "AuditTableName", "DecisionsTopicArn")
# Stack parameters that hold the thresholds calibration measures against, and their defaults.
THRESHOLD_PARAMETERS = {
    "NsfwThreshold": "nsfw",
    "AiGeneratedThreshold": "ai_generated",
    "DeepfakeThreshold": "deepfake",
}


@dataclass
class ReviewResources:
    outputs: dict[str, str]
    parameters: dict[str, str]

    @classmethod
    def resolve(cls, stack_name: str) -> ReviewResources:
        try:
            stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
        except ClientError as exc:
            raise CliError(
                f"stack {stack_name!r} not found ({exc.response['Error']['Message']}); pass --stack-name"
            ) from None
        except BotoCoreError as exc:
            raise CliError(f"cannot reach AWS: {exc}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = [name for name in OUTPUTS if not outputs.get(name)]
        if missing:
            raise CliError(f"stack {stack_name!r} has no {', '.join(missing)} output: deploy this release's template")
        parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        return cls(outputs, parameters)

    def decisions(self) -> Decisions:
        dynamodb = boto3.client("dynamodb")
        return Decisions(
            results_table=self.outputs["ResultsTableName"],
            queue=ReviewQueue(self.outputs["ReviewQueueTableName"], dynamodb),
            audit=AuditLog(self.outputs["AuditTableName"], dynamodb),
            publisher=DecisionPublisher(self.outputs["DecisionsTopicArn"], boto3.client("sns")),
            dynamodb_client=dynamodb,
        )

    def thresholds(self, overrides: tuple[str, ...]) -> dict[str, float]:
        from image_analysis.settings import parse_category_thresholds

        values = {name: 0.8 for name in THRESHOLD_PARAMETERS.values()}
        for parameter, name in THRESHOLD_PARAMETERS.items():
            if self.parameters.get(parameter):
                values[name] = float(self.parameters[parameter])
        try:
            values.update(parse_category_thresholds(self.parameters.get("ModerationThresholds", "")))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        for pair in overrides:
            name, sep, value = pair.partition("=")
            try:
                values[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not name.strip() or not 0 <= values.get(name.strip(), -1) <= 1:
                raise click.BadParameter(f"{pair!r} is not NAME=THRESHOLD (0..1)", param_hint="--threshold")
        return values


def _resources(ctx: click.Context) -> ReviewResources:
    obj = ctx.find_root().obj
    cached = getattr(obj, "_review_resources", None)
    if cached is None:
        cached = ReviewResources.resolve(obj.stack_name)
        obj._review_resources = cached
    return cached


def caller_identity() -> str:
    """Who decides: the AWS principal of the credentials in use, as STS reports it."""
    try:
        return boto3.client("sts").get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as exc:
        raise CliError(f"cannot tell who you are (sts get-caller-identity failed: {exc})") from None


def _review_id(url: str, version: str | None) -> ReviewId:
    bucket, key = parse_s3_url(url)
    if not key:
        raise CliError(f"{url!r} names no key")
    return ReviewId(bucket, key, version)


def _version_option(function: Any) -> Any:
    return click.option("--version", "version", metavar="V", help="The object version (a versioned bucket).")(function)


def _where(row: dict[str, Any]) -> str:
    version = f" (version {row['version_id']})" if row.get("version_id") else ""
    return f"s3://{row['bucket']}/{row['key']}{version}"


@click.group(short_help="Decide on flagged images: list, show, approve, reject, escalate, appeal, history.")
def review() -> None:
    """The review queue and its decisions (REVIEW_MODE puts flagged results in the queue).

    A decision is taken from the status the review has when the command reads it, and refused (exit 2,
    one line saying who decided what and when) if someone else decided first. Every decision is
    recorded in the audit log under your AWS identity and announced on the decisions topic.

    \b
    Examples:
      image-analysis review list
      image-analysis review approve s3://photos/2024/cat.jpg
      image-analysis review reject s3://photos/2024/x.png --reason "explicit"
      image-analysis review history s3://photos/2024/x.png
    """


@review.command("list", short_help="The queue, oldest first.")
@click.option("--status", type=click.Choice(STATUSES), default="pending", show_default=True)
@click.option("--limit", default=25, show_default=True, type=click.IntRange(1, 100), help="Reviews per page.")
@click.option("--next", "next_token", metavar="TOKEN", help="Go on from where the previous page stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON ({items, next}).")
@click.pass_context
def list_reviews(ctx: click.Context, status: str, limit: int, next_token: str | None, as_json: bool) -> None:
    """List reviews with a status (default pending), oldest first, a page at a time."""
    queue = _resources(ctx).decisions().queue
    try:
        page = queue.page(status, limit, next_token)
    except ValueError as exc:
        raise CliError(f"--next: {exc}") from None
    if as_json:
        items = [{"id": ReviewId(i["bucket"], i["key"], i.get("version_id")).encoded, **i} for i in page["items"]]
        click.echo(json.dumps({"items": items, "next": page["next"]}, indent=2, ensure_ascii=False, default=str))
        return
    for row in page["items"]:
        decided = f"  by {row['decided_by']}" if row.get("decided_by") else ""
        flags = ",".join(row.get("flags") or []) or "-"
        click.echo(f"{row['analyzed_at']}  {row['status']:<9}  {flags:<14}  {_where(row)}{decided}")
    if not page["items"]:
        click.echo(f"No reviews {status}.")
    if page["next"]:
        click.echo(f"More: --next {page['next']}")


@review.command(short_help="One review: its status, the result and the history, as JSON.")
@click.argument("url", metavar="s3://BUCKET/KEY")
@_version_option
@click.pass_context
def show(ctx: click.Context, url: str, version: str | None) -> None:
    """Print the review of one object version, its result (without raw vendor answers) and its history."""
    try:
        shown = _resources(ctx).decisions().show(_review_id(url, version))
    except ReviewError as exc:
        raise CliError(str(exc)) from None
    click.echo(json.dumps(shown, indent=2, ensure_ascii=False, default=str))


def _decide(ctx: click.Context, decision: str, url: str, version: str | None, reason: str | None) -> None:
    rid = _review_id(url, version)
    decisions = _resources(ctx).decisions()
    try:
        outcome = decisions.decide(rid, decision, by=caller_identity(), reason=reason)
    except ReviewError as exc:
        raise CliError(str(exc)) from None
    record = outcome.record
    click.echo(f"{outcome.review.status}: {rid.url} by {record['by']} (decision {record['decision_id']})")
    if outcome.note:
        click.echo(f"Note: {outcome.note}")
    if not outcome.published:
        click.echo(
            "The decision is recorded, but its image.reviewed message could not be published now: the "
            "stack's sweep publishes it within minutes (or run `image-analysis review sweep`).",
            err=True,
        )


@review.command(short_help="Let the image through: the quarantine comes off.")
@click.argument("url", metavar="s3://BUCKET/KEY")
@_version_option
@click.option("--reason", help="Why (optional).")
@click.pass_context
def approve(ctx: click.Context, url: str, version: str | None, reason: str | None) -> None:
    """Approve a pending or escalated review: the quarantine tags come off (and, with the delivery gate
    closed, the version is tagged clean and becomes readable)."""
    _decide(ctx, "approve", url, version, reason)


@review.command(short_help="Keep the image out (REJECT_ACTION=delete deletes it).")
@click.argument("url", metavar="s3://BUCKET/KEY")
@_version_option
@click.option("--reason", required=True, help="Why (required; recorded and published).")
@click.pass_context
def reject(ctx: click.Context, url: str, version: str | None, reason: str) -> None:
    """Reject a pending or escalated review: the object stays quarantined, or with RejectAction=delete
    that version is deleted (its result stays, whatever OnDelete says)."""
    _decide(ctx, "reject", url, version, reason)


@review.command(short_help="Hand a pending review to a senior moderator.")
@click.argument("url", metavar="s3://BUCKET/KEY")
@_version_option
@click.option("--reason", help="Why (optional).")
@click.pass_context
def escalate(ctx: click.Context, url: str, version: str | None, reason: str | None) -> None:
    """Escalate a pending review: status escalated, still in the queue (`review list --status escalated`)."""
    _decide(ctx, "escalate", url, version, reason)


@review.command(short_help="Send a rejected image back to pending.")
@click.argument("url", metavar="s3://BUCKET/KEY")
@_version_option
@click.option("--reason", required=True, help="Why (required; e.g. the uploader's appeal).")
@click.pass_context
def appeal(ctx: click.Context, url: str, version: str | None, reason: str) -> None:
    """Appeal a rejection: the review goes back to pending with one more appeal. A version deleted on
    rejection cannot come back: its appeal is recorded, and approving it says so."""
    _decide(ctx, "appeal", url, version, reason)


@review.command(short_help="Every decision on one object version, oldest first.")
@click.argument("url", metavar="s3://BUCKET/KEY")
@_version_option
@click.option("--json", "as_json", is_flag=True, help="Print the audit records as JSON.")
@click.pass_context
def history(ctx: click.Context, url: str, version: str | None, as_json: bool) -> None:
    """The audit log of one object version: who decided what, when and why."""
    rid = _review_id(url, version)
    records = _resources(ctx).decisions().history(rid)
    if as_json:
        click.echo(json.dumps(records, indent=2, ensure_ascii=False, default=str))
        return
    if not records:
        click.echo(f"No decisions on {rid.url}.")
    for record in records:
        reason = f"  {record['reason']!r}" if record.get("reason") else ""
        unpublished = "" if record.get("published") else "  (not yet published)"
        click.echo(
            f"{record['decided_at']}  {record['decision']:<8}  {record['previous']} -> "
            f"{_status_after(record['decision'])}  by {record['by']}{reason}{unpublished}"
        )


def _status_after(decision: str) -> str:
    from image_analysis.review.decisions import TRANSITIONS

    return TRANSITIONS[decision][0]


@review.command(short_help="Publish decisions whose message a crash left unpublished.")
@click.option(
    "--older-than",
    default=SWEEP_AFTER_SECONDS,
    show_default=True,
    type=click.FloatRange(0),
    help="Only decisions taken at least this many seconds ago (younger ones may still be publishing).",
)
@click.pass_context
def sweep(ctx: click.Context, older_than: float) -> None:
    """Publish the image.reviewed message of every decision still flagged in the audit log's outbox.

    The stack's review function does the same every five minutes; this is for an operator who cannot
    wait, or a stack whose schedule is off. Each message goes out once, even with a sweep running at
    the same time.
    """
    published = _resources(ctx).decisions().sweep(older_than)
    click.echo(f"Published {published} decision(s).")


@click.command(short_help="Precision of flags from review decisions, and thresholds that would reach a target.")
@click.option("--target", default=0.9, show_default=True, type=click.FloatRange(0, 1), help="Target precision.")
@click.option(
    "--threshold",
    "overrides",
    multiple=True,
    metavar="NAME=T",
    help="Measure against this threshold instead of the stack's (nsfw, ai_generated, deepfake or a "
    "moderation category, e.g. suggestive=0.9; repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.pass_context
def calibrate(ctx: click.Context, target: float, overrides: tuple[str, ...], as_json: bool) -> None:
    """How often flags were right, per provider and category, from the review decisions.

    An approval of a flagged image counts as a false positive, a rejection as a true positive (the
    latest of the two per object version). For each provider and category: the precision of its flags
    at the current threshold, and the lowest threshold at or above it that would have reached --target.
    Thresholds below the current one cannot be estimated: images scored under it were never flagged, so
    no one reviewed them.
    """
    resources = _resources(ctx)
    thresholds = resources.thresholds(overrides)
    rows = calibrate_decisions(resources.decisions().audit.all(), thresholds, target)
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    if not rows:
        click.echo("No approved or rejected review reached a threshold yet: nothing to calibrate.")
        return
    header = (
        "provider",
        "category",
        "threshold",
        "decided",
        "rejected",
        "approved",
        "precision",
        f"reaches {target:g} at",
    )
    table = [header] + [
        (
            row.provider,
            row.category,
            f"{row.threshold:g}",
            str(row.decided),
            str(row.rejected),
            str(row.approved),
            f"{row.precision:.2f}" if row.precision is not None else "-",
            f"{row.suggested:g}" if row.suggested is not None else "not reached",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for index, line in enumerate(table):
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if index == 0:
            click.echo("  ".join("-" * w for w in widths))
    click.echo(
        "\nThresholds under the current ones cannot be estimated from these decisions: images scored "
        "under a threshold were never flagged, so no one reviewed them."
    )
