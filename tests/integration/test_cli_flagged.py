"""``flagged`` against DynamoDB Local: how many queries a listing costs, and where it stops."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from click.testing import CliRunner

from image_analysis_cli import queries
from image_analysis_cli.main import cli
from local.driver import QueueDriver
from local.stack import empty_queue
from tests.integration.conftest import ai_png

pytestmark = pytest.mark.integration


@pytest.fixture
def count_queries():
    """The Query calls boto3's default session makes (the command's table resource uses it)."""
    calls: list[dict] = []

    def record(params, **_):
        calls.append(json.loads(params["body"]))  # the request as sent

    events = boto3._get_default_session().events
    events.register("before-call.dynamodb.Query", record)
    yield calls
    events.unregister("before-call.dynamodb.Query", record)


@pytest.fixture
def three_flagged(stack, handler, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGE_ANALYSIS_STATE_DIR", str(tmp_path / "state"))
    bucket = f"flagged-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"ai/{i}.png", Body=ai_png())
    empty_queue(stack.backfill_queue_url)
    CliRunner().invoke(cli, ["--stack-name", stack.name, "backfill", f"s3://{bucket}/ai/"], catch_exceptions=False)
    QueueDriver(handler, stack.backfill_queue_url).drain()
    return bucket


def flagged(stack, *args):
    result = CliRunner().invoke(cli, ["--stack-name", stack.name, "flagged", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_listing_with_the_default_window_costs_one_query_per_recent_month(stack, count_queries):
    output = flagged(stack, "--flag", "deepfake")  # nothing is flagged so: every month is looked into
    since = queries.default_since()
    assert output.strip() == f"No objects flagged deepfake since {since}."
    months = {json.dumps(call["ExpressionAttributeValues"], sort_keys=True) for call in count_queries}
    assert len(count_queries) == len(months) == len(list(queries._months(since))) <= 4


def test_a_page_stops_querying_once_it_is_full(stack, three_flagged, count_queries):
    output = flagged(stack, "--flag", "ai_generated", "--since", "2000-01-01", "--limit", "2")
    assert len(count_queries) == 1  # this month's partition filled the page: no older month is read
    assert count_queries[0]["Limit"] == 2
    lines = output.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("More: --next ")
    assert all("ai_generated" in line for line in lines[:2])
