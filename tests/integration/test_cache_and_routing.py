"""The content cache and routing through the deployed path: the stack's own cache table, the Imagga sandbox."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from local.driver import LambdaContext, load_handler
from local.sandbox import Fault, FaultPlan, VendorSandbox
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
    assert [int(i["usage"]["calls_saved"]) for i in items] == [0, 2, 2]  # each hit saves both endpoint calls
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


def test_an_answer_to_a_narrower_question_is_not_reused_for_a_wider_one(stack, s3, table, imagga, monkeypatch, prefix):
    body = (SAMPLES / "skimage-chelsea.png").read_bytes()
    monkeypatch.setenv("ROUTING", "moderation=imagga")
    upload_and_process(stack, s3, load_handler(), f"{prefix}narrow.png", body)
    assert [r.path for r in imagga.requests] == ["/v2/categories/nsfw_beta"]
    monkeypatch.setenv("ROUTING", "labels=imagga;moderation=imagga")
    upload_and_process(stack, s3, load_handler(), f"{prefix}wide.png", body)
    assert sorted(r.path for r in imagga.requests[1:]) == ["/v2/categories/nsfw_beta", "/v2/tags"]
    stored = item(table, stack.bucket, f"{prefix}wide.png")
    assert {p["name"]: p["status"] for p in stored["providers"]}["imagga"] == "succeeded"
    assert stored["answered_by"] == {"labels": "imagga", "moderation": "imagga"}
    assert stored["labels"] and all(label["provider"] == "imagga" for label in stored["labels"])


@pytest.mark.parametrize(
    "fault",
    [FaultPlan(unavailable=1.0), FaultPlan(slow=1.0, slow_seconds=3.0)],
    ids=["503", "timeout"],
)
def test_a_first_provider_down_or_too_slow_falls_back_to_the_second(stack, s3, table, monkeypatch, prefix, fault):
    # Saved answers: the moderation section must hold what imagerecognize found (the rocket has no
    # skin-toned pixels to make an image-driven nsfw answer of).
    recognize = VendorSandbox("imagerecognize", answers="saved")
    with VendorSandbox("imagga", faults=fault) as imagga_url, recognize as recognize_url:
        monkeypatch.setenv("ROUTING", "labels=imagga,imagerecognize;moderation=imagga,imagerecognize")
        monkeypatch.setenv("IMAGGA_BASE_URL", imagga_url)
        monkeypatch.setenv("IMAGGA_API_KEY", "sandbox-key")
        monkeypatch.setenv("IMAGGA_API_SECRET", "sandbox-secret")
        monkeypatch.setenv("IMAGERECOGNIZE_BASE_URL", recognize_url)
        monkeypatch.setenv("IMAGERECOGNIZE_API_KEY", "sandbox-key")
        monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "0.5")
        monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
        monkeypatch.setenv("RETRY_BASE_DELAY_SECONDS", "0.01")
        key = f"{prefix}fallback.jpg"
        upload_and_process(stack, s3, load_handler(), key, (SAMPLES / "skimage-rocket.jpg").read_bytes())
    stored = item(table, stack.bucket, key)
    assert stored["status"] == "succeeded"
    assert stored["answered_by"] == {"labels": "imagerecognize", "moderation": "imagerecognize"}
    runs = {p["name"]: p for p in stored["providers"]}
    assert runs["imagga"]["status"] == "failed"
    assert runs["imagga"]["error"]["code"] == ("server_error" if fault.unavailable else "timeout")
    assert runs["imagerecognize"]["status"] == "succeeded"
    assert stored["labels"] and {label["provider"] for label in stored["labels"]} == {"imagerecognize"}
    assert stored["moderation"]["categories"]


def jpeg_with_location() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 80, 40)).save(out, format="JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def uploaded(sandbox, field):
    return [upload.data for request in sandbox.requests for upload in request.files.get(field, [])]


def test_send_metadata_keeps_it_for_that_vendor_only(stack, s3, imagga, monkeypatch, prefix):
    aiornot = VendorSandbox("aiornot")
    with aiornot as aiornot_url:
        monkeypatch.setenv("PROVIDERS", "builtin,imagga,aiornot")
        monkeypatch.setenv("AIORNOT_BASE_URL", aiornot_url)
        monkeypatch.setenv("AIORNOT_API_KEY", "sandbox-key")
        # Through the one template parameter that carries vendor options.
        monkeypatch.setenv("PROVIDER_OPTIONS", "AIORNOT_SEND_METADATA=true;AIORNOT_ONLY=ai_generated")
        body = jpeg_with_location()
        upload_and_process(stack, s3, load_handler(), f"{prefix}located.jpg", body)
    (to_aiornot,) = uploaded(aiornot, "image")
    to_imagga = uploaded(imagga, "image")
    assert to_aiornot == body  # the original, its EXIF location included
    assert len(to_imagga) == 2
    for sent in to_imagga:
        with Image.open(io.BytesIO(sent)) as image:
            exif = image.getexif()
            assert 0x010F not in exif and not exif.get_ifd(0x8825), "Imagga received the camera and GPS tags"


def test_a_route_the_configured_adapter_cannot_answer_stops_the_function_with_the_setting_to_change(
    stack, s3, imagga, monkeypatch, prefix
):
    monkeypatch.setenv("ROUTING", "faces=imagga,imagerecognize")  # Imagga's default endpoints: tags, nsfw
    body = (SAMPLES / "skimage-rocket.jpg").read_bytes()
    key = f"{prefix}faces.jpg"
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
    with pytest.raises(ValueError, match="IMAGGA_ENDPOINTS") as raised:
        load_handler()(event, LambdaContext())
    assert "imagga" in str(raised.value) and "faces" in str(raised.value)
    assert imagga.requests == []
