"""What a result item and its cached answers keep (LABELS_MAX, LABELS_MIN_CONFIDENCE, RAW_ANSWERS), through
the deployed path: Imagga's saved real answers (115 tags, 5 of them at 30% or more; explicit at 0.12)."""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib

import boto3
import pytest
from boto3.dynamodb.conditions import Attr

from local.driver import LambdaContext, load_handler
from local.sandbox import VendorSandbox
from tests.integration.conftest import SAMPLES
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


@pytest.fixture
def imagga(stack, monkeypatch):
    with VendorSandbox("imagga", answers="saved") as base_url:
        monkeypatch.setenv("PROVIDERS", "builtin,imagga")
        monkeypatch.setenv("IMAGGA_BASE_URL", base_url)
        monkeypatch.setenv("IMAGGA_API_KEY", "sandbox-key")
        monkeypatch.setenv("IMAGGA_API_SECRET", "sandbox-secret")
        yield


def analyzed(stack, s3, table, prefix, body=None):
    """A photo, with bytes of its own unless given (no cached answer), analyzed: (its item, its cached
    Imagga answer)."""
    body = body or (SAMPLES / "skimage-rocket.jpg").read_bytes() + uuid.uuid4().bytes
    key = f"{prefix}{uuid.uuid4().hex[:8]}.jpg"
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    response = load_handler()(
        sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext()
    )
    assert response == {"batchItemFailures": []}
    cache = boto3.resource("dynamodb").Table(stack.function_env["CACHE_TABLE"])
    sha256 = hashlib.sha256(body).hexdigest()
    entries = cache.scan(FilterExpression=Attr("pk").begins_with(f"{sha256}#imagga#"))["Items"]
    answers = [json.loads(zlib.decompress(entry["output"].value)) for entry in entries]
    # Several entries for the same bytes only under other settings: the one with the most labels.
    return item(table, stack.bucket, key), max(answers, key=lambda answer: len(answer.get("labels", [])))


def test_by_default_an_unflagged_result_keeps_its_best_labels_and_no_raw_answer(stack, s3, table, imagga, prefix):
    stored, cached = analyzed(stack, s3, table, prefix)
    assert stored["flags"] == []
    confidences = [float(label["confidence"]) for label in stored["labels"]]
    assert 0 < len(confidences) <= 20
    assert min(confidences) >= 0.3
    assert confidences == sorted(confidences, reverse=True)
    assert not stored.get("raw")
    # The cache keeps the normalized answer (a later image of these bytes is judged afresh) with the labels
    # a result keeps of it, but not the vendor's own answer: no result of this configuration would keep it.
    assert [label["name"] for label in cached["labels"]] == [
        label["name"] for label in stored["labels"] if label["provider"] == "imagga"
    ]
    assert "explicit" in {category["name"] for category in cached["moderation"]}
    assert not cached.get("raw")


def test_a_flagged_result_keeps_the_raw_answers_and_so_does_its_cached_answer(
    stack, s3, table, imagga, prefix, monkeypatch
):
    monkeypatch.setenv("NSFW_THRESHOLD", "0.1")
    stored, cached = analyzed(stack, s3, table, prefix)
    assert stored["flags"] == ["nsfw"]
    assert set(stored["raw"]) == {"imagga"}
    assert set(cached["raw"]) == {"tags", "nsfw"}


def test_raw_answers_all_keeps_them_unflagged_and_none_drops_them_flagged(
    stack, s3, table, imagga, prefix, monkeypatch
):
    monkeypatch.setenv("RAW_ANSWERS", "all")
    stored, cached = analyzed(stack, s3, table, prefix)
    assert stored["flags"] == [] and set(stored["raw"]) == {"imagga"} and cached["raw"]
    monkeypatch.setenv("RAW_ANSWERS", "none")
    monkeypatch.setenv("NSFW_THRESHOLD", "0.1")
    stored, cached = analyzed(stack, s3, table, prefix)
    assert stored["flags"] == ["nsfw"] and not stored.get("raw") and not cached.get("raw")


def test_labels_max_and_floor_are_settings_and_part_of_the_cache_key(stack, s3, table, imagga, prefix, monkeypatch):
    body = (SAMPLES / "skimage-rocket.jpg").read_bytes() + uuid.uuid4().bytes
    analyzed(stack, s3, table, prefix, body)
    monkeypatch.setenv("LABELS_MAX", "30")
    monkeypatch.setenv("LABELS_MIN_CONFIDENCE", "0.1")
    # The same bytes: the answer cached with 20 labels at 0.3 does not serve a result that keeps more.
    stored, cached = analyzed(stack, s3, table, prefix, body)
    imagga_run = next(run for run in stored["providers"] if run["name"] == "imagga")
    assert imagga_run["status"] == "succeeded"
    assert len(stored["labels"]) == 30
    assert len([label for label in stored["labels"] if label["provider"] == "imagga"]) == len(cached["labels"]) > 20
