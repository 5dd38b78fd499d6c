"""Rekognition locally: the sandbox behind the emulator's endpoint, in the API's documented shape."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from local.sandboxes import start_sandboxes

pytestmark = pytest.mark.integration


@pytest.fixture
def rekognition(stack) -> Iterator[Any]:
    with ExitStack() as resources:
        assert start_sandboxes(resources, ["rekognition"]) == {}, "reached through the endpoint, no setting"
        yield boto3.client("rekognition")  # the emulator's endpoint, as the function's client


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"]


def test_moderation_answers_in_the_v7_taxonomy_filtered_by_min_confidence(rekognition):
    answer = rekognition.detect_moderation_labels(Image={"Bytes": image("JPEG")})
    assert answer["ModerationModelVersion"] == "7.0"
    levels = {label["Name"]: label["TaxonomyLevel"] for label in answer["ModerationLabels"]}
    assert levels["Bare Back"] == 3 and levels["Non-Explicit Nudity"] == 2
    assert {label["ParentName"] for label in answer["ModerationLabels"] if label["Name"] == "Air Crash"} == {"Crashes"}
    strict = rekognition.detect_moderation_labels(Image={"Bytes": image("PNG")}, MinConfidence=85)
    assert strict["ModerationLabels"] and all(label["Confidence"] >= 85 for label in strict["ModerationLabels"])
    assert len(strict["ModerationLabels"]) < len(answer["ModerationLabels"])


def test_labels_keep_the_highest_max_labels(rekognition):
    answer = rekognition.detect_labels(Image={"Bytes": image("PNG")}, MaxLabels=2)
    assert [label["Name"] for label in answer["Labels"]] == ["Car", "Vehicle"]
    assert answer["Labels"][0]["Instances"][0]["BoundingBox"]["Width"] == 0.1


def test_documented_refusals(rekognition, s3, stack, prefix):
    detect = rekognition.detect_labels
    assert error_code(detect, Image={"Bytes": image("GIF")}) == "InvalidImageFormatException"
    assert error_code(detect, Image={"Bytes": image("PNG")}, MinConfidence=150) == "InvalidParameterException"
    both = {"Bytes": image("PNG"), "S3Object": {"Bucket": stack.bucket, "Name": "x.png"}}
    assert error_code(detect, Image=both) == "InvalidParameterException"
    missing = {"S3Object": {"Bucket": stack.bucket, "Name": f"{prefix}nothing-here.png"}}
    assert error_code(detect, Image=missing) == "InvalidS3ObjectException"
    s3.put_object(Bucket=stack.bucket, Key=f"{prefix}there.png", Body=image("PNG"))
    present = {"S3Object": {"Bucket": stack.bucket, "Name": f"{prefix}there.png"}}
    assert detect(Image=present)["Labels"]


def test_an_unsigned_request_is_refused(rekognition):
    answer = httpx.post(
        os.environ["AWS_ENDPOINT_URL"],
        content=b"{}",
        headers={"X-Amz-Target": "RekognitionService.DetectLabels", "Content-Type": "application/x-amz-json-1.1"},
        timeout=10,
    )
    assert answer.status_code == 403 and answer.json()["__type"] == "UnrecognizedClientException"


def test_the_pipeline_maps_answers_into_house_categories(rekognition, monkeypatch, s3, stack, drain, prefix):
    monkeypatch.setenv("PROVIDERS", "builtin,rekognition")
    key = f"{prefix}photo.jpg"
    s3.put_object(Bucket=stack.bucket, Key=key, Body=image("JPEG"))
    drain()
    item = boto3.resource("dynamodb").Table(stack.table).get_item(Key={"pk": f"{stack.bucket}/{key}", "sk": "null"})
    result = item["Item"]
    assert result["status"] == "succeeded"
    categories = {c["source_label"]: c["name"] for c in result["moderation"]["categories"]}
    assert categories["Non-Explicit Nudity/Bare Back"] == "suggestive"
    assert categories["Crashes/Air Crash"] == "violence" and categories["Products/Pills"] == "drugs"
    assert "car" in {label["name"] for label in result["labels"]}
