"""Quality signals: the Laplacian variance is exact, blur lowers it, and brightness/exposure follow the pixels."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter

from image_analysis.analyzers.quality import BLUR_THRESHOLD, exposure, laplacian_variance, measure_quality

FIXTURES = Path(__file__).parent.parent / "fixtures" / "images"


def _reference_laplacian_variance(grey: Image.Image) -> float:
    """The definition, pixel by pixel in Python: what the Pillow-only version must reproduce."""
    px = grey.load()
    width, height = grey.size
    values = [
        px[x - 1, y] + px[x + 1, y] + px[x, y - 1] + px[x, y + 1] - 4 * px[x, y]
        for y in range(1, height - 1)
        for x in range(1, width - 1)
    ]
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)


def _checkerboard(side: int = 256, cell: int = 8) -> Image.Image:
    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    for y in range(0, side, cell):
        for x in range(0, side, cell):
            if (x // cell + y // cell) % 2:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill="black")
    return image


@pytest.fixture(scope="module")
def rocket() -> Image.Image:
    image = Image.open(FIXTURES / "skimage-rocket.jpg").convert("RGB")
    image.thumbnail((512, 512))
    return image


def test_laplacian_variance_matches_the_definition_on_noise() -> None:
    rng = random.Random(7)
    noise = Image.new("L", (40, 30))
    noise.putdata([rng.randrange(256) for _ in range(40 * 30)])

    assert laplacian_variance(noise) == pytest.approx(_reference_laplacian_variance(noise), rel=1e-6)


def test_laplacian_variance_is_not_clipped_on_hard_edges() -> None:
    # One-pixel stripes: every Laplacian is +-510, far outside what an 8-bit filter could hold.
    stripes = Image.new("L", (64, 64), 0)
    for y in range(0, 64, 2):
        stripes.paste(255, (0, y, 64, y + 1))

    assert laplacian_variance(stripes) == pytest.approx(510.0**2)
    assert laplacian_variance(stripes) == pytest.approx(_reference_laplacian_variance(stripes))


def test_flat_and_tiny_images_have_no_sharpness() -> None:
    assert laplacian_variance(Image.new("L", (50, 50), 128)) == 0.0
    assert laplacian_variance(Image.new("L", (2, 2), 128)) == 0.0


def test_blurring_lowers_sharpness_and_flags_blur(rocket: Image.Image) -> None:
    sharp = measure_quality(rocket)
    soft = measure_quality(rocket.filter(ImageFilter.GaussianBlur(2)))

    assert sharp.sharpness is not None and soft.sharpness is not None
    assert soft.sharpness < sharp.sharpness / 10
    assert sharp.sharpness > BLUR_THRESHOLD and sharp.is_blurry is False
    assert soft.sharpness < BLUR_THRESHOLD and soft.is_blurry is True


def test_checkerboard_is_sharp_until_blurred() -> None:
    board = _checkerboard()
    sharp = measure_quality(board)
    soft = measure_quality(board.filter(ImageFilter.GaussianBlur(4)))

    assert sharp.is_blurry is False
    assert soft.is_blurry is True
    assert soft.sharpness is not None and sharp.sharpness is not None and soft.sharpness < sharp.sharpness


def test_brightness_and_contrast_of_known_images() -> None:
    black, white = Image.new("RGB", (64, 64), "black"), Image.new("RGB", (64, 64), "white")
    half = Image.new("RGB", (64, 64), "black")
    half.paste((255, 255, 255), (32, 0, 64, 64))

    assert measure_quality(black).brightness == 0.0
    assert measure_quality(white).brightness == 1.0
    assert measure_quality(Image.new("RGB", (64, 64), (128, 128, 128))).brightness == pytest.approx(128 / 255, abs=1e-3)
    assert measure_quality(black).contrast == 0.0
    # Luminance is 0 or 1 in equal parts: standard deviation 0.5, the most there can be.
    assert measure_quality(half).brightness == pytest.approx(0.5, abs=0.01)
    assert measure_quality(half).contrast == pytest.approx(0.5, abs=0.01)


def test_exposure_follows_brightness_and_clipping(rocket: Image.Image) -> None:
    assert measure_quality(Image.new("RGB", (64, 64), (20, 20, 20))).exposure == "under"
    assert measure_quality(Image.new("RGB", (64, 64), (240, 240, 240))).exposure == "over"
    assert measure_quality(Image.new("RGB", (64, 64), (120, 120, 120))).exposure == "normal"
    assert measure_quality(rocket).exposure == "normal"


def test_exposure_counts_crushed_shadows_even_when_the_mean_is_moderate() -> None:
    # 60 % of pixels at 10 and 40 % at 250: mean 0.42, but most of the picture is crushed black.
    histogram = [0] * 256
    histogram[10], histogram[250] = 60, 40

    assert exposure(histogram, brightness=(0.6 * 10 + 0.4 * 250) / 255) == "under"


def test_quality_names_its_provider(rocket: Image.Image) -> None:
    assert measure_quality(rocket, provider="builtin").provider == "builtin"
    assert measure_quality(rocket).score is None
