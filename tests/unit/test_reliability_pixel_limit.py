"""MAX_PIXELS is the limit, exactly: an image of that many pixels is analyzed, one more is rejected, and
the check holds while other records of the batch are decoded at the same time."""

from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from image_analysis.errors import InputRejected
from image_analysis.imaging import decode
from image_analysis.settings import Settings


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose pixel data is absent: only the header is read."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


LIMIT = 100 * 120  # 12,000 pixels


@pytest.mark.parametrize(("width", "height"), [(100, 120), (120, 100), (12_000, 1), (1, 12_000)])
def test_an_image_of_exactly_max_pixels_is_analyzed(width, height):
    image = decode(png(width, height), LIMIT)
    assert (image.width, image.height) == (width, height)


@pytest.mark.parametrize(("width", "height"), [(12_001, 1), (1, 12_001), (109, 111)])  # 109 x 111 = 12,099
def test_one_pixel_more_is_rejected_as_too_many_pixels(width, height):
    with pytest.raises(InputRejected) as rejected:
        decode(png(width, height), LIMIT)
    assert rejected.value.code == "too_many_pixels"
    assert "12,000 pixels" in rejected.value.message


def test_the_default_limit_is_the_documented_100_megapixels_not_half_of_it():
    limit = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a"}).max_pixels
    assert limit == 100_000_000
    # 60 MP is above half the limit (and above Pillow's own 89 MP warning at twice that): still analyzed
    # as far as the limit goes; the missing pixel data then makes it truncated, not too big.
    with pytest.raises(InputRejected) as big:
        decode(header_only_png(10_000, 6_000), limit)
    assert big.value.code == "truncated"
    with pytest.raises(InputRejected) as over:
        decode(header_only_png(10_001, 10_000), limit)
    assert over.value.code == "too_many_pixels"


def test_the_limit_holds_for_every_record_decoded_at_once():
    small, big = png(100, 120), png(109, 111)

    def outcome(data: bytes) -> str:
        try:
            decode(data, LIMIT)
        except InputRejected as exc:
            return exc.code
        return "ok"

    inputs = [small, big] * 40
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(outcome, inputs))
    assert outcomes == ["ok", "too_many_pixels"] * 40
