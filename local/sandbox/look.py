"""What the sandbox "sees" in an image: a few cheap measurements of its pixels. **Not a model.**

The image-driven answers of the sandbox (``answers="image"``, the default) are made-up functions of
these numbers, so that two different images get two different answers, the same image always gets the
same one, and a demo does not flag every upload alike. They say nothing true about what an image shows:

- ``skin``: the share of pixels in a classic skin-tone colour range (RGB and YCbCr rules); it drives the
  NSFW-ish scores, the faces and the "person" tags, so a warm brown table can score as "skin";
- ``brightness``, ``saturation``, ``detail`` (mean edge strength; near 0 for a flat fill or a smooth
  gradient), the shares of green, blue and sky-blue pixels, ``ink`` (dark strokes on a light,
  colourless page) and the dominant ``palette``: they drive the tags, colours, quality and text answers;
- ``chance(salt)``: a number in [0, 1) hashed from an 8x8 average hash and the mean colour. It stands
  in for what no pixel statistic can guess (AI-likelihood, deepfakes, celebrities). Built from the
  pixels rather than the bytes, it usually stays the same when an adapter resizes, re-encodes or strips
  the metadata of an image.

An image the sandbox cannot decode (a format Pillow does not read here, or more than ``MAX_PIXELS``)
gets a neutral look whose ``chance`` is hashed from its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from dataclasses import dataclass, field

from PIL import Image, ImageFilter

# The look decodes every image a vendor receives; beyond this many pixels it does not (a 100-megapixel
# PNG is 300 MB decoded) and the look is neutral instead.
MAX_PIXELS = 40_000_000
# The long side of the thumbnail everything is measured on.
SIDE = 64

with contextlib.suppress(ImportError):  # HEIC/AVIF, as the layer reads them
    import pillow_heif

    pillow_heif.register_heif_opener()


@dataclass(frozen=True)
class Look:
    decoded: bool
    width: int
    height: int
    format: str | None  # Pillow's name, lower case ("jpeg", "png", "heif", ...)
    size_bytes: int
    md5: str
    brightness: float = 0.5
    saturation: float = 0.0
    detail: float = 0.0
    skin: float = 0.0
    # Where the skin-toned pixels are, as fractions (x, y, width, height) of the image; None without any.
    skin_box: tuple[float, float, float, float] | None = None
    green: float = 0.0
    blue: float = 0.0
    sky: float = 0.0
    ink: float = 0.0
    # Dominant colours, largest share first: ((r, g, b), share 0..1).
    palette: tuple[tuple[tuple[int, int, int], float], ...] = ()
    key: bytes = field(default=b"", repr=False)

    def chance(self, salt: str) -> float:
        """A number in [0, 1) that depends only on the picture and ``salt``."""
        digest = hashlib.sha256(self.key + b"\0" + salt.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


_SEEN: dict[bytes, Look] = {}
_SEEN_LOCK = threading.Lock()
_SEEN_MAX = 256


def look_at(data: bytes) -> Look:
    """Measure ``data`` (any format Pillow reads here; the first frame of an animation), once per content:
    an adapter sends the same upload to several endpoints."""
    digest = hashlib.sha256(data).digest()
    with _SEEN_LOCK:
        seen = _SEEN.get(digest)
    if seen is not None:
        return seen
    look = _look(data, digest)
    with _SEEN_LOCK:
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.pop(next(iter(_SEEN)))
        _SEEN[digest] = look
    return look


def _look(data: bytes, digest: bytes) -> Look:
    size_bytes, md5 = len(data), hashlib.md5(data, usedforsecurity=False).hexdigest()
    blank = Look(False, 0, 0, None, size_bytes, md5, key=digest)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height, fmt = image.width, image.height, (image.format or "").lower() or None
            if width * height > MAX_PIXELS:
                return Look(False, width, height, fmt, size_bytes, md5, key=blank.key)
            image.draft("RGB", (SIDE * 2, SIDE * 2))  # JPEG: decode at a fraction of the size
            thumb = _flat(image)
    except Exception:  # anything Pillow cannot read gets the neutral look
        return blank
    thumb.thumbnail((SIDE, SIDE))
    return _measure(thumb, width, height, fmt, size_bytes, md5)


def _flat(image: Image.Image) -> Image.Image:
    """The first frame as RGB, transparency shown on white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    return image.convert("RGB")


def is_skin(r: int, g: int, b: int, cb: int, cr: int) -> bool:
    """Skin-tone rules of thumb: uniform daylight in RGB, and the usual box in YCbCr."""
    return (r > 95 and g > 40 and b > 20 and r > g and r > b and r - min(g, b) > 15 and r - g > 15) and (
        135 <= cr <= 173 and 77 <= cb <= 127
    )


def _measure(thumb: Image.Image, width: int, height: int, fmt: str | None, size_bytes: int, md5: str) -> Look:
    tw, th = thumb.size
    count = tw * th
    gray = thumb.convert("L")
    lumas = gray.tobytes()
    rgb = thumb.tobytes()
    hsv = thumb.convert("HSV").tobytes()  # Pillow's hue runs 0..255 for 0..360 degrees
    ycc = thumb.convert("YCbCr").tobytes()
    skin = green = blue = sky = dark = light = 0
    saturation = 0
    box = [tw, th, -1, -1]
    sky_rows = th / 3
    for index in range(count):
        at = index * 3
        hue, sat, value = hsv[at], hsv[at + 1], hsv[at + 2]
        saturation += sat
        if sat > 64 and value > 51:
            if 51 <= hue < 115:
                green += 1
            elif 128 <= hue < 179:
                blue += 1
                if index // tw < sky_rows:
                    sky += 1
        luma = lumas[index]
        if luma < 90:
            dark += 1
        elif luma > 170:
            light += 1
        if is_skin(rgb[at], rgb[at + 1], rgb[at + 2], ycc[at + 1], ycc[at + 2]):
            skin += 1
            x, y = index % tw, index // tw
            box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
    mean_saturation = saturation / count / 255
    # Ink: dark strokes on a light page without colour (a scan, a screenshot of text).
    ink = 0.0
    if mean_saturation < 0.15 and light / count > 0.5 and 0.02 < dark / count < 0.45:
        ink = min(1.0, light / count * 1.2) * min(1.0, dark / count * 8)
    skin_box = None
    if skin:
        skin_box = (box[0] / tw, box[1] / th, (box[2] + 1 - box[0]) / tw, (box[3] + 1 - box[1]) / th)
    # The filter sees an edge all along the border of any image: leave the border out.
    inner = gray.filter(ImageFilter.FIND_EDGES).crop((1, 1, max(2, tw - 1), max(2, th - 1)))
    edges = inner.tobytes()
    return Look(
        decoded=True,
        width=width,
        height=height,
        format=fmt,
        size_bytes=size_bytes,
        md5=md5,
        brightness=sum(lumas) / count / 255,
        saturation=mean_saturation,
        detail=min(1.0, sum(edges) / len(edges) / 64),
        skin=skin / count,
        skin_box=skin_box,
        green=green / count,
        blue=blue / count,
        sky=sky / count,
        ink=ink,
        palette=_palette(thumb),
        key=_coarse_key(thumb),
    )


def _palette(thumb: Image.Image, colours: int = 5) -> tuple[tuple[tuple[int, int, int], float], ...]:
    quantized = thumb.quantize(colors=colours, method=Image.Quantize.FASTOCTREE)
    palette = quantized.getpalette() or []
    total = thumb.width * thumb.height
    found = []
    for count, index in sorted(quantized.getcolors() or [], reverse=True):
        r, g, b = palette[index * 3 : index * 3 + 3]
        found.append(((r, g, b), count / total))
    return tuple(found)


def _coarse_key(thumb: Image.Image) -> bytes:
    """An average hash (8x8 grey, one bit per cell: above the mean or not) and the mean colour in four
    levels a channel: the same, but for a cell near the mean, when the picture is resized or re-encoded."""
    small = thumb.convert("L").resize((8, 8), Image.Resampling.BOX).tobytes()
    mean = sum(small) / len(small)
    bits = sum(1 << i for i, v in enumerate(small) if v > mean)
    colour = thumb.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    return bits.to_bytes(8, "big") + bytes(v >> 6 for v in colour)
