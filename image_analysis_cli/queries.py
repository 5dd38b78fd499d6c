"""Reads of the results table through its keys and indexes (no scans except where noted)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from image_analysis.store import STORE_ATTRIBUTES, from_item
from image_analysis_cli.enqueue import ListedObject
from image_analysis_cli.resources import CliError

FLAG_INDEXES = {"nsfw": "FlaggedNsfw", "ai_generated": "FlaggedAiGenerated", "deepfake": "FlaggedDeepfake"}


def _table(name: str) -> Any:
    return boto3.resource("dynamodb").Table(name)


def head(bucket: str, key: str) -> ListedObject:
    try:
        response = boto3.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            raise CliError(f"s3://{bucket}/{key} does not exist") from None
        raise
    return ListedObject(bucket, key, response["ContentLength"], response["ETag"].strip('"'))


def result(table: str, bucket: str, key: str, version_id: str | None = None) -> dict[str, Any] | None:
    item = _table(table).get_item(Key={"pk": f"{bucket}/{key}", "sk": version_id or "null"}, ConsistentRead=True)
    if "Item" not in item:
        return None
    return {k: v for k, v in from_item(item["Item"]).items() if k not in STORE_ATTRIBUTES}


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


def flagged_page(table: str, flag: str, since: str, limit: int, token: str | None) -> dict[str, Any]:
    """One page, newest first; ``next`` resumes where this page stopped (month and position)."""
    state = json.loads(base64.urlsafe_b64decode(token)) if token else {}
    items: list[dict[str, Any]] = []
    months = list(_months(since))
    if state.get("month") in months:
        months = months[months.index(state["month"]) :]
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
            token_out = (
                base64.urlsafe_b64encode(json.dumps(following, default=str).encode()).decode() if following else None
            )
            return {"items": items, "next": token_out}
        start_key = None
    return {"items": items, "next": None}


def _after(months: list[str], month: str) -> dict[str, Any] | None:
    index = months.index(month)
    return {"month": months[index + 1]} if index + 1 < len(months) else None


def flagged(table: str, flag: str, since: str, limit: int | None) -> Iterator[dict[str, Any]]:
    token = None
    count = 0
    while True:
        page = flagged_page(table, flag, since, 100, token)
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


def _scan(table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """A full scan: used for reconcile and --failed only, which read the whole prefix anyway."""
    while True:
        page = _table(table).scan(**kwargs)
        yield from (from_item(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def with_status(table: str, status: str) -> Iterator[dict[str, Any]]:
    return _scan(
        table,
        FilterExpression=Attr("status").eq(status),
        ProjectionExpression="#b, #k",
        ExpressionAttributeNames={"#b": "bucket", "#k": "key"},
    )


def results_under(table: str, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    return _scan(
        table,
        FilterExpression=Attr("pk").begins_with(f"{bucket}/{prefix}"),
        ProjectionExpression="#k, etag, #s",
        ExpressionAttributeNames={"#k": "key", "#s": "status"},
    )
