"""Cheap quality signals from the working copy: sharpness, brightness, contrast, exposure.

Sharpness is the variance of the 4-neighbour Laplacian of a grey copy, the usual focus measure. It is
computed exactly: on an 8-bit image Pillow's ``ImageFilter.Kernel`` would clip results to 0..255, so it
runs on a 32-bit integer copy, and ``ImageStat`` bins float images into 256 buckets, so means are read by
a BOX resize to one pixel instead, which averages in float.

Brightness and contrast are the mean and the standard deviation of the luminance (``ImageStat`` on the
8-bit grey copy is exact), both on a 0..1 scale, so contrast cannot exceed 0.5.
"""

from __future__ import annotations

from typing import Literal

from PIL import Image, ImageFilter, ImageMath, ImageStat

from image_analysis.models import Quality

# Below this Laplacian variance (on the <=512 px working copy, luminance 0..255) an image counts as blurry.
# The classic OpenCV heuristic; on the sample photos sharp ones score 330..4900 and a 1 px Gaussian blur
# brings them to 20..270. Being a whole-image measure it also calls shallow depth of field and flat
# graphics (gradients, empty skies) blurry.
BLUR_THRESHOLD = 100.0
# Exposure: luminance below DARK or above BRIGHT (0..255) counts as crushed or blown.
DARK, BRIGHT = 32, 224
UNDER_MEAN, OVER_MEAN = 0.2, 0.8
CLIPPED_SHARE = 0.5

Exposure = Literal["under", "normal", "over"]


def _mean(image: Image.Image) -> float:
    return float(image.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0)))  # type: ignore[arg-type]


# The 4-neighbour Laplacian as a Pillow kernel. On a 32-bit integer image the filter sums exactly but
# clips below zero, so the result is lifted by an offset (grey 0..255 gives -1020..1020) and the mean,
# which carries the offset, is taken out before squaring: float32 squares of values near 1024 would lose
# the variance to rounding.
_LAPLACIAN_OFFSET = 1024
_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=_LAPLACIAN_OFFSET)


def laplacian_variance(grey: Image.Image) -> float:
    """The variance of the 4-neighbour Laplacian over the interior pixels of an ``L`` image."""
    width, height = grey.size
    if width < 3 or height < 3:
        return 0.0
    # The filter leaves the border pixels as they were: only the interior is the Laplacian.
    laplacian = grey.convert("I").filter(_LAPLACIAN).crop((1, 1, width - 1, height - 1)).convert("F")
    mean = _mean(laplacian)
    centred = laplacian.point(lambda v: v - mean)
    return max(0.0, _mean(ImageMath.lambda_eval(lambda a: a["x"] * a["x"], x=centred)))


def exposure(histogram: list[int], brightness: float) -> Exposure:
    """``under`` when dark overall or mostly crushed shadows, ``over`` for the mirror case."""
    total = sum(histogram) or 1
    dark = sum(histogram[:DARK]) / total
    bright = sum(histogram[BRIGHT:]) / total
    if brightness < UNDER_MEAN or dark > CLIPPED_SHARE:
        return "under"
    if brightness > OVER_MEAN or bright > CLIPPED_SHARE:
        return "over"
    return "normal"


def measure_quality(image: Image.Image, provider: str = "builtin") -> Quality:
    grey = image.convert("L")
    stat = ImageStat.Stat(grey)
    brightness = stat.mean[0] / 255
    sharpness = laplacian_variance(grey)
    return Quality(
        sharpness=round(sharpness, 2),
        brightness=round(min(1.0, brightness), 4),
        contrast=round(min(1.0, stat.stddev[0] / 255), 4),
        is_blurry=sharpness < BLUR_THRESHOLD,
        exposure=exposure(stat.h, brightness),
        provider=provider,
    )
