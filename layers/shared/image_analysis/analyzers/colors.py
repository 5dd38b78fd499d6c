"""Dominant colors: the biggest clusters of a fast octree quantization, named after the nearest basic color.

The working copy is first shrunk to ``SAMPLE_SIDE`` (a box filter averages, so no color is invented):
the palette hardly changes and quantizing takes well under a millisecond instead of several.
"""

from __future__ import annotations

import math

from PIL import Image

from image_analysis.models import Color

SAMPLE_SIDE = 128
# More clusters than we report, so that each reported one is a tight shade rather than a broad average.
PALETTE_SIZE = 8
TOP = 5
# Smaller clusters are mostly the blends a downscale makes along edges, not colors anyone would name.
MIN_SHARE = 0.01

# A deliberately small, explicit table: names people search by, not the 140 CSS names.
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "dark gray": (64, 64, 64),
    "gray": (128, 128, 128),
    "silver": (192, 192, 192),
    "white": (255, 255, 255),
    "red": (220, 20, 20),
    "maroon": (128, 0, 0),
    "brown": (139, 69, 19),
    "tan": (210, 180, 140),
    "beige": (245, 240, 220),
    "coral": (240, 110, 80),
    "orange": (255, 140, 0),
    "gold": (218, 165, 32),
    "yellow": (255, 235, 0),
    "olive": (128, 128, 0),
    "green": (0, 160, 0),
    "dark green": (0, 80, 0),
    "teal": (0, 128, 128),
    "cyan": (0, 220, 220),
    "sky blue": (135, 190, 235),
    "blue": (0, 60, 255),
    "navy": (0, 0, 128),
    "purple": (128, 0, 128),
    "violet": (180, 110, 230),
    "magenta": (255, 0, 255),
    "pink": (255, 170, 190),
}


def _lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB (D65) to CIELAB, where plain Euclidean distance roughly matches perceived difference."""

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


_NAMED_LAB = {name: _lab(rgb) for name, rgb in NAMED_COLORS.items()}


def color_name(rgb: tuple[int, int, int]) -> str:
    """The nearest entry of ``NAMED_COLORS``."""
    lab = _lab(rgb)
    return min(_NAMED_LAB, key=lambda name: math.dist(lab, _NAMED_LAB[name]))


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def dominant_colors(image: Image.Image, top: int = TOP, provider: str = "builtin") -> list[Color]:
    """The ``top`` largest color clusters (each at least ``MIN_SHARE``), biggest first, with their shares."""
    sample = image if image.mode == "RGB" else image.convert("RGB")
    if max(sample.size) > SAMPLE_SIDE:
        if sample is image:
            sample = image.copy()  # thumbnail shrinks in place, and the working copy is shared
        sample.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.BOX)
    quantized = sample.quantize(colors=PALETTE_SIZE, method=Image.Quantize.FASTOCTREE)
    palette = quantized.getpalette() or []
    total = sample.width * sample.height
    counts = sorted(quantized.getcolors(PALETTE_SIZE * 32) or [], reverse=True)
    colors: list[Color] = []
    for count, index in counts[:top]:
        if count / total < MIN_SHARE:
            break
        r, g, b = palette[index * 3 : index * 3 + 3]
        colors.append(
            Color(
                hex=to_hex((r, g, b)),
                # Rounded down so that the shares never add up to more than 1.
                percent=math.floor(count / total * 10_000) / 10_000,
                name=color_name((r, g, b)),
                provider=provider,
            )
        )
    return colors
