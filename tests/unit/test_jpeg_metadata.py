"""A JPEG's personal metadata leaves the vendor copy without a re-encode: same pixels, no EXIF/XMP/comment."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from image_analysis.imaging import decode
from image_analysis.jpeg_metadata import without_metadata

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "images"
JPEG = frozenset({"jpeg"})
PERSONAL_INFO = {"exif", "xmp", "comment", "photoshop"}


def _photo(orientation: int = 1, progressive: bool = False, restarts: bool = False, size=(320, 240)) -> bytes:
    """A JPEG with GPS coordinates, a camera, an orientation and a comment, as a phone would write it."""
    image = Image.radial_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = orientation
    exif.get_ifd(0x8825)[2] = (52.0, 22.0, 5.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(
        out,
        format="JPEG",
        quality=90,
        exif=exif,
        comment=b"holiday at home",
        progressive=progressive,
        restart_marker_blocks=4 if restarts else 0,
    )
    return out.getvalue()


def _same_pixels(a: bytes, b: bytes) -> bool:
    with Image.open(io.BytesIO(a)) as first, Image.open(io.BytesIO(b)) as second:
        return first.size == second.size and ImageChops.difference(first, second).getbbox() is None


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("restarts", [False, True])
def test_gps_camera_and_comment_go_and_the_pixels_stay(progressive, restarts):
    data = _photo(progressive=progressive, restarts=restarts)
    stripped = without_metadata(data)
    assert stripped is not None and len(stripped) < len(data)
    assert _same_pixels(data, stripped)
    with Image.open(io.BytesIO(stripped)) as image:
        assert not PERSONAL_INFO & set(image.info) and len(image.getexif()) == 0
    assert b"PhoneMaker" not in stripped and b"holiday" not in stripped


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jpg")) if FIXTURES.exists() else [])
def test_real_files_keep_their_colour_profile_and_lose_xmp_photoshop_and_c2pa(name):
    data = (FIXTURES / name).read_bytes()
    stripped = without_metadata(data)
    assert stripped is not None
    assert _same_pixels(data, stripped)
    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(stripped)) as after:
        assert not PERSONAL_INFO & set(after.info)
        # What decoders need to show the colours: the ICC profile and Adobe's transform, when there.
        assert after.info.get("icc_profile") == before.info.get("icc_profile")
        assert after.info.get("adobe_transform") == before.info.get("adobe_transform")
    assert b"\xff\xeb" not in stripped[: stripped.find(b"\xff\xda")]  # APP11: JUMBF, where C2PA lives


def test_anything_after_the_end_of_image_is_left_behind():
    data = _photo() + b"trailer: owner=jane@example.com"
    stripped = without_metadata(data)
    assert stripped is not None and stripped.endswith(b"\xff\xd9") and b"jane@" not in stripped


@pytest.mark.parametrize("cut", [3, 200, -300])
def test_a_file_the_walk_cannot_read_to_its_end_is_left_to_the_re_encode(cut):
    assert without_metadata(_photo()[:cut]) is None
    assert without_metadata(b"\x89PNG\r\n\x1a\n") is None


def test_a_vendor_copy_of_an_upright_photo_is_the_file_without_its_metadata():
    data = _photo()
    sent, mime = decode(data, 100_000_000).for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000)
    assert (sent, mime) == (without_metadata(data), "image/jpeg")
    kept, _ = decode(data, 100_000_000).for_vendor(keep_metadata=True).encoded_for(JPEG, 5_000_000)
    assert kept == data


def test_a_turned_photo_is_still_re_encoded_upright_its_exif_being_what_turns_it():
    data = _photo(orientation=6)  # 320x240 stored, shown 240x320
    sent, _ = decode(data, 100_000_000).for_vendor(keep_metadata=False).encoded_for(JPEG, 5_000_000)
    assert sent != without_metadata(data)
    with Image.open(io.BytesIO(sent)) as image:
        assert image.size == (240, 320) and not PERSONAL_INFO & set(image.info)
