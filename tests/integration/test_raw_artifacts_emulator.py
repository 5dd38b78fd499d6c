"""An oversized vendor answer, end to end: kept as an object in the stack's artifacts bucket, referenced from
the item, and deleted with the result when the upload is deleted."""

from __future__ import annotations

import io
import json
import random
import shutil
import string
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from image_analysis.raw_archive import load
from local.driver import LambdaContext, load_handler
from local.sandbox import VendorSandbox
from tests.integration.test_pipeline_end_to_end import forgotten, item, s3_event, sqs_event

pytestmark = pytest.mark.integration
IMAGGA_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imagga"


def huge_tags_answer() -> dict:
    """Imagga's documented tags shape with 4000 tags of random names: over 100 KB however compressed."""
    rng = random.Random(5)
    tags = [
        {"confidence": 90 - i / 100, "tag": {"en": "".join(rng.choice(string.ascii_lowercase) for _ in range(40))}}
        for i in range(4000)
    ]
    return {"result": {"tags": tags}, "status": {"text": "", "type": "success"}}


@pytest.fixture
def imagga(stack, monkeypatch, tmp_path):
    for fixture in IMAGGA_FIXTURES.glob("*.json"):
        shutil.copy(fixture, tmp_path / fixture.name)
    (tmp_path / "tags_huge.json").write_text(json.dumps(huge_tags_answer()))
    sandbox = VendorSandbox("imagga", fixtures_dir=tmp_path, responses={"tags": "tags_huge.json"})
    with sandbox as base_url:
        monkeypatch.setenv("PROVIDERS", "builtin,imagga")
        monkeypatch.setenv("IMAGGA_BASE_URL", base_url)
        monkeypatch.setenv("IMAGGA_API_KEY", "sandbox-key")
        monkeypatch.setenv("IMAGGA_API_SECRET", "sandbox-secret")
        yield sandbox


def unique_png() -> bytes:
    """Bytes of its own, so the content cache cannot answer for the vendor."""
    image = Image.effect_noise((96, 64), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def delete_event(bucket: str, key: str, sequencer: str) -> dict:
    event = s3_event(bucket, key, None, None, sequencer)
    record = event["Records"][0]
    record["eventName"] = "ObjectRemoved:Delete"
    record["s3"]["object"] = {"key": key, "sequencer": sequencer}
    return event


def test_an_oversized_answer_lives_in_the_artifacts_bucket_as_long_as_its_result(
    stack, s3, table, imagga, prefix, monkeypatch
):
    artifacts = stack.function_env["ARTIFACTS_BUCKET"]
    assert artifacts and artifacts != stack.bucket
    # Kept for every result here (the default keeps raw answers of flagged results only), with every label.
    monkeypatch.setenv("RAW_ANSWERS", "all")
    monkeypatch.setenv("LABELS_MAX", "50")
    monkeypatch.setenv("LABELS_MIN_CONFIDENCE", "0")
    handler = load_handler()
    key, body = f"{prefix}noisy.png", unique_png()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    response = handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5")), LambdaContext())
    assert response == {"batchItemFailures": []}

    stored = item(table, stack.bucket, key)
    assert stored["status"] == "succeeded" and len(stored["labels"]) == 50
    reference = stored["raw"]["imagga"]
    assert reference["s3"].startswith(f"s3://{artifacts}/raw/") and reference["s3"].endswith("/imagga.json.gz")
    assert "noisy" not in reference["s3"]
    # The object holds the vendor's answer as it came, every tag of it, not the capped result.
    assert len(load(reference["s3"], s3)["tags"]["result"]["tags"]) == 4000
    object_key = reference["s3"].removeprefix(f"s3://{artifacts}/")
    assert s3.head_object(Bucket=artifacts, Key=object_key)["ContentLength"] == int(reference["bytes"])
    assert "raw.imagga" not in stored.get("omitted", {})

    s3.delete_object(Bucket=stack.bucket, Key=key)
    deleted = handler(sqs_event(delete_event(stack.bucket, key, "0055AED6DCD90281F0")), LambdaContext())
    assert deleted == {"batchItemFailures": []}
    assert forgotten(item(table, stack.bucket, key))
    with pytest.raises(ClientError) as gone:
        boto3.client("s3").head_object(Bucket=artifacts, Key=object_key)
    assert gone.value.response["Error"]["Code"] in ("404", "NoSuchKey")
