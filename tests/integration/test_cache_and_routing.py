"""The content cache and routing through the deployed path: the stack's own cache table, the Imagga sandbox."""

from __future__ import annotations

import pytest

from local.driver import LambdaContext, load_handler
from local.sandbox import Fault, VendorSandbox
from tests.integration.conftest import SAMPLES, ai_png
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


@pytest.fixture
def imagga(stack, monkeypatch):
    sandbox = VendorSandbox("imagga")
    with sandbox as base_url:
        monkeypatch.setenv("PROVIDERS", "builtin,imagga")
        monkeypatch.setenv("IMAGGA_BASE_URL", base_url)
        monkeypatch.setenv("IMAGGA_API_KEY", "sandbox-key")
        monkeypatch.setenv("IMAGGA_API_SECRET", "sandbox-secret")
        yield sandbox


def upload_and_process(stack, s3, handler, key, body, sequencer="0055AED6DCD90281E5"):
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    response = handler(sqs_event(s3_event(stack.bucket, key, etag, len(body), sequencer)), LambdaContext())
    assert response == {"batchItemFailures": []}


def test_identical_bytes_under_other_keys_reuse_the_answer_but_get_their_own_item_and_alert(
    stack, s3, table, imagga, alerts, prefix
):
    handler = load_handler()
    body = ai_png()
    keys = [f"{prefix}copy-{i}.png" for i in range(3)]
    for key in keys:
        upload_and_process(stack, s3, handler, key, body)
    vendor_calls = len(imagga.requests)
    assert vendor_calls == 2  # tags + nsfw_beta, once, for the first key only
    items = [item(table, stack.bucket, key) for key in keys]
    statuses = [{p["name"]: p["status"] for p in i["providers"]}["imagga"] for i in items]
    assert statuses == ["succeeded", "cached", "cached"]
    assert [int(i["usage"]["calls_saved"]) for i in items] == [0, 1, 1]
    assert all(i["labels"] for i in items)  # the cached answer is a full answer
    assert sorted(a["Message"]["key"] for a in alerts()) == keys  # flagged again, under each key


def test_a_changed_configuration_calls_the_vendor_again(stack, s3, table, imagga, monkeypatch, prefix):
    body = (SAMPLES / "skimage-rocket.jpg").read_bytes()
    upload_and_process(stack, s3, load_handler(), f"{prefix}a.jpg", body)
    first = len(imagga.requests)
    monkeypatch.setenv("IMAGGA_TAGS_LIMIT", "5")
    upload_and_process(stack, s3, load_handler(), f"{prefix}b.jpg", body)
    assert len(imagga.requests) > first
    stored = item(table, stack.bucket, f"{prefix}b.jpg")
    assert {p["name"]: p["status"] for p in stored["providers"]}["imagga"] == "succeeded"


def test_routing_with_a_vendor_down_records_partial_with_the_missing_capability(
    stack, s3, table, imagga, monkeypatch, prefix
):
    monkeypatch.setenv("ROUTING", "labels=imagga;ai_generated=builtin")
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    imagga.faults.enqueue(Fault("error", status=401))
    key = f"{prefix}routed.jpg"
    upload_and_process(stack, s3, load_handler(), key, (SAMPLES / "skimage-coffee.png").read_bytes())
    stored = item(table, stack.bucket, key)
    assert stored["status"] == "partial"
    assert stored["answered_by"] == {"labels": None, "ai_generated": None}
    assert stored["error"]["code"] == "auth"
    assert "imagga" in stored["error"]["message"]


def test_routing_calls_only_the_imagga_endpoints_it_needs(stack, s3, table, imagga, monkeypatch, prefix):
    monkeypatch.setenv("ROUTING", "moderation=imagga")
    key = f"{prefix}moderation-only.jpg"
    upload_and_process(stack, s3, load_handler(), key, (SAMPLES / "skimage-rocket.jpg").read_bytes())
    assert [r.path for r in imagga.requests] == ["/v2/categories/nsfw_beta"]  # no /v2/tags call to pay for
    stored = item(table, stack.bucket, key)
    assert stored["answered_by"] == {"moderation": "imagga"}
    assert stored["moderation"]["categories"] and not stored.get("labels")
