"""The difference hash: stable under resizing and recompression, far apart for different pictures."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from image_analysis.analyzers.phash import dhash, hamming, is_near_duplicate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "images"


@pytest.fixture(scope="module")
def rocket() -> Image.Image:
    image = Image.open(FIXTURES / "skimage-rocket.jpg").convert("RGB")
    image.thumbnail((512, 512))
    return image


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    image = Image.open(FIXTURES / "skimage-chelsea.png").convert("RGB")
    image.thumbnail((512, 512))
    return image


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def test_hash_is_sixteen_lower_case_hex_digits(rocket: Image.Image) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", dhash(rocket))


def test_flat_image_hashes_to_zero_and_a_right_to_left_ramp_to_all_ones() -> None:
    # Bits say "left neighbour brighter": never on a flat image, always on a ramp falling to the right.
    ramp = Image.linear_gradient("L").rotate(-90)  # white on the left, black on the right
    assert ramp.getpixel((0, 128)) > ramp.getpixel((255, 128))
    assert dhash(Image.new("RGB", (100, 80), (90, 90, 90))) == "0000000000000000"
    assert dhash(ramp) == "ffffffffffffffff"
    assert dhash(ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)) == "0000000000000000"


def test_resized_and_recompressed_copies_are_near_duplicates(rocket: Image.Image) -> None:
    original = dhash(rocket)
    small = rocket.resize((rocket.width // 3, rocket.height // 3), Image.Resampling.BICUBIC)
    recompressed = _jpeg(rocket, quality=40)
    brighter = ImageEnhance.Brightness(rocket).enhance(1.15)

    assert hamming(original, dhash(small)) <= 6
    assert hamming(original, dhash(recompressed)) <= 4
    assert hamming(original, dhash(brighter)) <= 6
    assert is_near_duplicate(original, dhash(small))


def test_different_pictures_are_far_apart(rocket: Image.Image, cat: Image.Image) -> None:
    distance = hamming(dhash(rocket), dhash(cat))

    assert distance >= 20
    assert not is_near_duplicate(dhash(rocket), dhash(cat))


def test_a_mirrored_picture_is_not_a_near_duplicate(cat: Image.Image) -> None:
    assert hamming(dhash(cat), dhash(cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT))) > 20


def test_hamming_counts_differing_bits() -> None:
    assert hamming("0000000000000000", "0000000000000000") == 0
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("00000000000000f1", "0000000000000001") == 4
    assert hamming("8000000000000000", "0000000000000000") == 1


def test_hamming_refuses_hashes_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        hamming("00", "0000")
