"""Reads of the results table through its keys and indexes (no scans except where noted)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from image_analysis.store import STORE_ATTRIBUTES, from_item
from image_analysis_cli.enqueue import ListedObject, last_modified
from image_analysis_cli.resources import CliError, ObjectGone

FLAG_INDEXES = {
    "nsfw": "FlaggedNsfw",
    "ai_generated": "FlaggedAiGenerated",
    "deepfake": "FlaggedDeepfake",
    "known_bad": "FlaggedKnownBad",
}


def _table(name: str) -> Any:
    return boto3.resource("dynamodb").Table(name)


def head(bucket: str, key: str, version_id: str | None = None) -> ListedObject:
    """The object as S3 holds it now (or the version named), with its version id; ObjectGone if absent."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        response = boto3.client("s3").head_object(**kwargs)
    except ClientError as exc:
        # 405: the version named is a delete marker.
        if exc.response["Error"]["Code"] in ("404", "405", "NoSuchKey", "NoSuchVersion", "NotFound"):
            version = f" version {version_id}" if version_id else ""
            raise ObjectGone(f"s3://{bucket}/{key}{version} does not exist") from None
        raise
    found = response.get("VersionId")
    return ListedObject(
        bucket,
        key,
        response["ContentLength"],
        response["ETag"].strip('"'),
        version_id=found if found and found != "null" else None,
        last_modified=last_modified(response.get("LastModified")),
    )


def result(table: str, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
    item = _table(table).get_item(Key={"pk": f"{bucket}/{key}", "sk": version_id or "null"}, ConsistentRead=True)
    if "Item" not in item:
        return None
    return {k: v for k, v in from_item(item["Item"]).items() if k not in STORE_ATTRIBUTES}


# The flag indexes are partitioned by month, so a listing costs one query per month it spans: a short
# default window keeps "what was flagged lately" to a handful of queries.
DEFAULT_SINCE_DAYS = 90


def default_since() -> str:
    return (datetime.now(UTC).date() - timedelta(days=DEFAULT_SINCE_DAYS)).isoformat()


def _months(since: str) -> Iterator[str]:
    """``YYYY-MM`` from this month back to the month of ``since``: the flag indexes' partitions."""
    try:
        start = date.fromisoformat(since[:10])
    except ValueError:
        raise CliError(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    today = datetime.now(UTC).date()
    year, month = today.year, today.month
    while (year, month) >= (start.year, start.month):
        yield f"{year:04d}-{month:02d}"
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)


def _encode_token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, default=str).encode()).decode()


def _decode_token(token: str) -> dict[str, Any]:
    """A token this command printed; anything else is a clear error, not a traceback."""
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError):  # binascii.Error and JSONDecodeError are ValueErrors
        state = None
    month = state.get("month") if isinstance(state, dict) else None
    key = state.get("key") if isinstance(state, dict) else None
    if not isinstance(month, str) or not (key is None or isinstance(key, dict)):
        raise CliError(f"--next {token[:40]!r} is not a token printed by a previous page of this listing")
    return state


def flagged_page(table: str, flag: str, since: str, limit: int, token: str | None) -> dict[str, Any]:
    """One page, newest first; ``next`` resumes where this page stopped (month and position).

    Queries stop as soon as the page is full: a page costs one query per month it had to look into.
    """
    state = _decode_token(token) if token else {}
    items: list[dict[str, Any]] = []
    months = list(_months(since))
    if state.get("month") in months:
        months = months[months.index(state["month"]) :]
    elif state:
        raise CliError(f"--next was printed for a listing with another --since than {since!r}")
    start_key = state.get("key")
    for month in months:
        while len(items) < limit:
            kwargs: dict[str, Any] = {
                "IndexName": FLAG_INDEXES[flag],
                "KeyConditionExpression": Key(f"flag_{flag}").eq(month) & Key("analyzed_at").gte(since),
                "ScanIndexForward": False,
                "Limit": limit - len(items),
            }
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            page = _table(table).query(**kwargs)
            items.extend(from_item(i) for i in page["Items"])
            start_key = page.get("LastEvaluatedKey")
            if not start_key:
                break
        if len(items) >= limit:
            following = {"month": month, "key": start_key} if start_key else _after(months, month)
            return {"items": items, "next": _encode_token(following) if following else None}
        start_key = None
    return {"items": items, "next": None}


def _after(months: list[str], month: str) -> dict[str, Any] | None:
    index = months.index(month)
    return {"month": months[index + 1]} if index + 1 < len(months) else None


def flagged(table: str, flag: str, since: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    token = None
    count = 0
    while True:
        size = 100 if limit is None else min(100, limit - count)
        page = flagged_page(table, flag, since, size, token)
        for item in page["items"]:
            yield item
            count += 1
            if limit is not None and count >= limit:
                return
        token = page["next"]
        if not token:
            return


def by_sha256(table: str, sha256: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"IndexName": "BySha256", "KeyConditionExpression": Key("sha256").eq(sha256)}
    while True:
        page = _table(table).query(**kwargs)
        rows.extend(from_item(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def approximate_item_count(table: str) -> int:
    """DynamoDB's own count (refreshed about every six hours): enough for a progress bar."""
    return int(_table(table).item_count or 0)


def _scan(table: str, on_page: Callable[[int], None] | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """A full scan: used for reconcile and --failed only, which read the whole prefix anyway.

    ``on_page`` hears how many items each page read (before the filter), for a progress bar.
    """
    while True:
        page = _table(table).scan(**kwargs)
        if on_page is not None:
            on_page(page.get("ScannedCount", 0))
        yield from (from_item(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def with_status(table: str, status: str, on_page: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    return _scan(
        table,
        on_page,
        FilterExpression=Attr("status").eq(status) & Attr("deleted_at").not_exists(),
        ProjectionExpression="#b, #k, version_id",
        ExpressionAttributeNames={"#b": "bucket", "#k": "key"},
    )


def results_under(
    table: str, bucket: str, prefix: str, on_page: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item for objects under the prefix, tombstones included (``deleted_at`` tells them apart)."""
    return _scan(
        table,
        on_page,
        FilterExpression=Attr("pk").begins_with(f"{bucket}/{prefix}"),
        ProjectionExpression="#k, #sk, etag, #s, deleted_at",
        ExpressionAttributeNames={"#k": "key", "#sk": "sk", "#s": "status"},
    )


def results_with_pdq(table: str, on_page: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """Every result that carries a PDQ hash, with what ``bank rescan`` needs (a full scan)."""
    names = {
        "#b": "bucket",
        "#k": "key",
        "#s": "status",
        "#m": "matches",
        "#f": "flags",
        "#n": "frames",
    }
    return _scan(
        table,
        on_page,
        FilterExpression=Attr("pdq").exists(),
        ProjectionExpression=(
            "pk, sk, #b, #k, version_id, etag, size_bytes, pdq, pdq_quality, #m, #f, #s, deleted_at, #n"
        ),
        ExpressionAttributeNames=names,
    )
