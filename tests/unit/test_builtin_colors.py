"""Dominant colors: shares, hex spelling, order and names on synthetic images whose answer is known."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from image_analysis.analyzers.colors import NAMED_COLORS, color_name, dominant_colors, to_hex

FIXTURES = Path(__file__).parent.parent / "fixtures" / "images"


def _bands(width: int, height: int, bands: list[tuple[tuple[int, int, int], int]]) -> Image.Image:
    """Vertical bands of solid colors, each ``columns`` wide."""
    image = Image.new("RGB", (width, height))
    x = 0
    for rgb, columns in bands:
        image.paste(rgb, (x, 0, x + columns, height))
        x += columns
    return image


def test_half_red_half_blue_gives_two_colors_at_fifty_percent() -> None:
    image = _bands(200, 100, [((255, 0, 0), 100), ((0, 0, 255), 100)])

    colors = dominant_colors(image)

    assert sorted(c.hex for c in colors) == ["#0000ff", "#ff0000"]
    assert all(c.percent == pytest.approx(0.5, abs=0.02) for c in colors)
    assert {c.hex: c.name for c in colors} == {"#ff0000": "red", "#0000ff": "blue"}
    assert {c.provider for c in colors} == {"builtin"}


def test_colors_are_ordered_by_share() -> None:
    image = _bands(400, 100, [((0, 160, 0), 40), ((255, 255, 255), 240), ((0, 0, 0), 120)])

    colors = dominant_colors(image, provider="test")

    assert [c.hex for c in colors] == ["#ffffff", "#000000", "#00a000"]
    assert [c.percent for c in colors] == pytest.approx([0.6, 0.3, 0.1], abs=0.02)
    assert [c.name for c in colors] == ["white", "black", "green"]
    assert colors[0].provider == "test"


def test_a_photo_gives_at_most_five_colors_whose_shares_add_up_to_at_most_one() -> None:
    photo = Image.open(FIXTURES / "skimage-chelsea.png").convert("RGB")

    colors = dominant_colors(photo)

    assert len(colors) == 5
    assert sum(c.percent for c in colors) <= 1.0
    assert [c.percent for c in colors] == sorted((c.percent for c in colors), reverse=True)
    # A tabby cat: the biggest cluster is a mid brown-grey, neither black nor white nor saturated.
    r, g, b = (int(colors[0].hex[i : i + 2], 16) for i in (1, 3, 5))
    assert 90 < r < 200 and 60 < g < 170 and 40 < b < 140 and r > b


def test_shares_never_add_up_to_more_than_one_with_three_equal_thirds() -> None:
    image = _bands(300, 30, [((255, 0, 0), 100), ((0, 255, 0), 100), ((0, 0, 255), 100)])

    colors = dominant_colors(image)

    assert len(colors) == 3
    assert sum(c.percent for c in colors) <= 1.0
    assert all(c.percent == pytest.approx(1 / 3, abs=0.02) for c in colors)


def test_top_limits_the_number_of_colors() -> None:
    gradient = Image.linear_gradient("L").convert("RGB")

    assert len(dominant_colors(gradient, top=3)) == 3


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((250, 250, 250), "white"),
        ((10, 10, 12), "black"),
        ((128, 128, 128), "gray"),
        ((200, 30, 30), "red"),
        ((0, 0, 120), "navy"),
        ((255, 165, 0), "orange"),
        ((139, 69, 19), "brown"),
        ((255, 192, 203), "pink"),
        ((135, 206, 235), "sky blue"),
        ((128, 0, 128), "purple"),
    ],
)
def test_color_names_come_from_the_nearest_table_entry(rgb: tuple[int, int, int], name: str) -> None:
    assert color_name(rgb) == name


def test_every_table_color_is_named_after_itself() -> None:
    assert all(color_name(rgb) == name for name, rgb in NAMED_COLORS.items())


def test_hex_is_lower_case_and_zero_padded() -> None:
    assert to_hex((10, 171, 255)) == "#0aabff"
