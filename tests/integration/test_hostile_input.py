"""A hostile-input corpus, generated here (no opaque blobs): each case ends with the recorded outcome a user
can read, is acknowledged (never retried) and never reaches a vendor: the rejected cases run with the
Imagga sandbox configured as a provider, and the sandbox must have seen no request for them."""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from urllib.parse import quote_plus

import boto3
import pytest
from PIL import Image

from local.driver import LambdaContext, load_handler
from local.sandbox import VendorSandbox
from tests.integration.conftest import SAMPLES
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG whose header claims width x height; its zero rows compress to almost nothing."""
    raw_row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(raw_row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return encoded(Image.new("RGB", (300, 100), (200, 30, 30)), "JPEG", exif=exif)


def gif_animation() -> bytes:
    frames = [Image.new("RGB", (40, 30), (i * 60, 255 - i * 60, 90)) for i in range(4)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png_16bit() -> bytes:
    return encoded(Image.new("I;16", (64, 48), 40000), "PNG")


def palette_with_alpha() -> bytes:
    image = Image.new("P", (50, 50), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return encoded(image, "PNG", transparency=0)


def cmyk_jpeg() -> bytes:
    return encoded(Image.new("CMYK", (80, 60), (0, 200, 200, 0)), "JPEG")


def process(stack, s3, handler, key: str, body: bytes, sequencer: str = "0055AED6DCD90281E5") -> dict:
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
    event = sqs_event(s3_event(stack.bucket, quote_plus(key, safe="/"), etag, len(body), sequencer))
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}, "bad input must be acknowledged"
    return item(boto3.resource("dynamodb").Table(stack.table), stack.bucket, key)


@pytest.fixture(scope="module")
def imagga_sandbox():
    sandbox = VendorSandbox("imagga")
    with sandbox:
        yield sandbox


@pytest.fixture
def with_imagga(stack, imagga_sandbox, monkeypatch):
    """A fresh container whose providers are builtin and Imagga (the local sandbox); the sandbox's log
    starts empty, so a test can tell whether anything was sent to the vendor."""
    monkeypatch.setenv("PROVIDERS", "builtin,imagga")
    monkeypatch.setenv("IMAGGA_BASE_URL", imagga_sandbox.base_url)
    monkeypatch.setenv("IMAGGA_API_KEY", "sandbox-key")
    monkeypatch.setenv("IMAGGA_API_SECRET", "sandbox-secret")
    imagga_sandbox.clear()
    return load_handler(), imagga_sandbox


REJECTED = {
    "zero bytes": (b"", "empty_object", "empty"),
    "plain text named .jpg": (b"hello world\n" * 10, "not_an_image", "not an image"),
    "html named .png": (b"<!doctype html><html><body>hi</body></html>", "not_an_image", "not an image"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "unsupported_format", "SVG"),
    "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "unsupported_format", "PDF"),
    "zip": (b"PK\x03\x04" + b"\x00" * 100, "unsupported_format", "ZIP"),
    "truncated jpeg": (None, "truncated", "truncated"),
    "decompression bomb": (png_bomb(30_000, 30_000), "too_many_pixels", "pixels"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_bad_input_is_rejected_with_its_code_and_a_readable_message(stack, s3, with_imagga, prefix, case):
    handler, imagga = with_imagga
    body, code, words = REJECTED[case]
    if body is None:
        body = (SAMPLES / "skimage-rocket.jpg").read_bytes()[:30_000]
    stored = process(stack, s3, handler, f"{prefix}{case}.jpg", body)
    assert stored["status"] == "rejected"
    assert stored["error"]["code"] == code
    assert words.lower() in stored["error"]["message"].lower()
    assert not stored.get("providers")
    assert int(stored["size_bytes"]) == len(body)
    assert imagga.requests == []  # never sent to the vendor


def test_a_valid_image_does_reach_the_configured_vendor(stack, s3, with_imagga, prefix):
    """The control for the cases above: with this set-up a readable image is sent to Imagga."""
    handler, imagga = with_imagga
    stored = process(stack, s3, handler, f"{prefix}fine.jpg", (SAMPLES / "skimage-rocket.jpg").read_bytes())
    assert stored["status"] == "succeeded"
    assert [p["name"] for p in stored["providers"]] == ["builtin", "imagga"]
    assert imagga.requests and all(r.path.startswith("/v2/") for r in imagga.requests)


def test_object_over_the_size_limit_is_rejected_without_downloading_it(stack, s3, with_imagga, prefix, monkeypatch):
    monkeypatch.setenv("MAX_OBJECT_BYTES", "100000")
    handler = load_handler()  # a fresh container with the smaller limit (and Imagga configured)
    imagga = with_imagga[1]
    body = (SAMPLES / "skimage-chelsea.png").read_bytes()
    stored = process(stack, s3, handler, f"{prefix}big.png", body)
    assert (stored["status"], stored["error"]["code"]) == ("rejected", "too_large")
    assert "100,000" in stored["error"]["message"]
    assert "sha256" not in stored  # the bytes were never downloaded
    assert imagga.requests == []


IMAGES = {
    "cmyk.jpg": (cmyk_jpeg, ("jpeg", 80, 60)),
    "16bit.png": (png_16bit, ("png", 64, 48)),
    "palette-alpha.png": (palette_with_alpha, ("png", 50, 50)),
    "rotated.jpg": (exif_rotated_jpeg, ("jpeg", 100, 300)),  # displayed size after EXIF rotation
    "animated.gif": (gif_animation, ("gif", 40, 30)),
}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_unusual_but_valid_images_are_analyzed(stack, s3, handler, prefix, name):
    make, (fmt, width, height) = IMAGES[name]
    stored = process(stack, s3, handler, f"{prefix}{name}", make())
    assert stored["status"] == "succeeded", stored.get("error")
    assert (stored["format"], int(stored["width"]), int(stored["height"])) == (fmt, width, height)
    assert stored["colors"], "the working copy was analyzed"
    if name == "rotated.jpg":
        assert int(stored["orientation"]) == 6
    if name == "animated.gif":
        assert int(stored["frames"]) == 4


KEYS = [
    "spaces in a name.png",
    "plus+sign+and%percent.png",
    "ünïcödé/日本語/файл.png",
    "emoji 🐈‍⬛🔥.png",
    "trailing space .png",
    "a" * 900 + ".png",  # S3 keys go up to 1,024 bytes
    "looks like a text file.txt",
]


@pytest.mark.parametrize("suffix", KEYS, ids=[k[:24] for k in KEYS])
def test_any_key_round_trips_and_alerts_with_a_valid_subject(stack, s3, handler, prefix, suffix, alerts):
    from tests.integration.conftest import ai_png

    key = f"{prefix}{suffix}"
    stored = process(stack, s3, handler, key, ai_png())
    assert stored["key"] == key
    assert stored["status"] == "succeeded"
    (alert,) = alerts()
    assert alert["Message"]["key"] == key
    subject = alert["Subject"]
    assert len(subject) < 100 and subject.isascii()  # SNS: "less than 100 characters long"


def test_archived_object_is_unreadable_not_retried_forever(stack, s3, handler, prefix):
    key = f"{prefix}archived.jpg"
    body = (SAMPLES / "skimage-rocket.jpg").read_bytes()
    etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body, StorageClass="GLACIER")["ETag"].strip('"')
    event = sqs_event(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
    assert handler(event, LambdaContext()) == {"batchItemFailures": []}
    stored = item(boto3.resource("dynamodb").Table(stack.table), stack.bucket, key)
    assert stored["error"]["code"] == "object_unreadable"
    assert "GLACIER" in stored["error"]["message"]


class JsonLines(logging.Handler):
    """Formats records with the function's own JSON formatter, as they would reach CloudWatch."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def test_rejections_are_logged_with_the_key_and_code(stack, s3, prefix, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    handler = load_handler()
    service_logger = logging.getLogger("image-analysis")
    capture = JsonLines(service_logger.handlers[0].formatter)
    service_logger.addHandler(capture)
    # Powertools keeps one logging.Logger per service across imports; an earlier test may have raised its level.
    level = service_logger.level
    service_logger.setLevel(logging.INFO)
    try:
        key = f"{prefix}log me.jpg"
        process(stack, s3, handler, key, b"not an image")
    finally:
        service_logger.removeHandler(capture)
        service_logger.setLevel(level)
    processed = [line for line in capture.lines if line.get("object_key") == key]
    assert processed and processed[-1]["message"] == "object processed"
    assert processed[-1]["error"]["code"] == "not_an_image"
    assert processed[-1]["function_request_id"]
