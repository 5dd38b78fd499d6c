"""Meta's PDQ perceptual hash (256 bits) and its quality score, with Pillow and the standard library.

The steps of Meta's reference (``pdq/cpp/hashing/pdqhashing.cpp`` in facebook/ThreatExchange):

1. luminance ``0.299 R + 0.587 G + 0.114 B`` in floating point: Pillow's RGB -> ``F`` conversion computes
   exactly ``(299 R + 587 G + 114 B) / 1000`` in float (its ``L`` conversion rounds to integers instead);
2. the Jarosz filter: a box filter of window ``ceil(dimension / 128)`` along each axis, applied twice per
   axis, whose windows shrink at the edges (an edge value is the mean of the pixels the window covers);
3. decimation to 64 x 64, sampling the filtered image at ``int((i + 0.5) * N / 64)``;
4. the quality score: the sum of the quantized gradients of that 64 x 64 image, divided by 90, at most 100;
5. a 16 x 16 DCT of the 64 x 64 image that skips the DC row and column (frequencies 1..16);
6. a bit per coefficient, set when it exceeds the median of the 256; bit ``16 i + j`` is row ``i``,
   column ``j``, and the hex text is the 256-bit number, most significant digit first (row 15 first).

Steps 2 and 3 are done together: the filter is linear and separable, and only 64 x 64 of its values are
kept, so each kept value is a weighted sum of the at most ``2 w - 1`` input pixels around it per axis,
with weights that follow from the two box passes (edges included). Pillow's C operations take the
weighted sums (a nearest-neighbour resize samples the shifted columns at exactly PDQ's positions), so a
512-pixel image hashes in a few milliseconds without numpy.

The eight dihedral variants (rotations and flips) come from the same DCT without hashing the pixels
again: a flip changes the sign of the odd frequencies along its axis, a quarter turn transposes.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from functools import cache
from itertools import compress
from operator import mul
from typing import TYPE_CHECKING

from PIL import Image, ImageMath

if TYPE_CHECKING:
    from image_analysis.imaging import DecodedImage

HASH_BITS = 256
# PDQ's documented match threshold: a Hamming distance of at most 31 out of 256 bits.
MATCH_DISTANCE = 31
# Hashes of less quality are unreliable (flat or tiny images): never matched, never banked.
MIN_QUALITY = 50
# Meta's reference leaves images smaller than this unhashed (hash 0, quality 0).
MIN_HASHABLE_SIDE = 5
# The side images are reduced to before hashing (Meta's Python port does the same): the Jarosz filter
# already averages ceil(side / 128) pixels per axis, so a larger input changes few bits and costs more.
HASHING_SIDE = 512
_GRID = 64
_DCT = 16

# The dihedral variants, in the reference's order and under its names: what the hash of the image
# would be after each transform. Each is (transpose, negate where the row index is even, negate where the
# column index is even), applied to the 16 x 16 DCT (index i stands for frequency i + 1).
DIHEDRAL = {
    "original": (False, False, False),
    "rotate90": (True, False, True),
    "rotate180": (False, True, True),
    "rotate270": (True, True, False),
    "flipx": (False, True, False),
    "flipy": (False, False, True),
    "flip_plus1": (True, False, False),
    "flip_minus1": (True, True, True),
}


@dataclass(frozen=True)
class PdqHash:
    """One frame's hash (``value``: a 256-bit integer), its quality 0..100, the frame (None for an
    image of one frame) and the DCT it came from (for the rotations and flips)."""

    value: int
    quality: int
    frame: int | None = None
    dct: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def hex(self) -> str:
        return to_hex(self.value)

    @property
    def usable(self) -> bool:
        """Good enough to match or to bank (quality of at least MIN_QUALITY)."""
        return self.quality >= MIN_QUALITY

    def dihedral(self) -> tuple[int, ...]:
        """The hashes of the image's eight rotations and flips, in ``DIHEDRAL`` order (the first is
        ``value``). Without a DCT (a hash read from text) only the hash itself."""
        if not self.dct:
            return (self.value,)
        return tuple(_bits(list(map(mul, map(self.dct.__getitem__, moves), signs))) for moves, signs in _plans())


def dihedral_from_bits(value: int) -> tuple[int, ...]:
    """The eight variants of a hash known only as bits (a stored ``pdq``), in ``DIHEDRAL`` order: bit
    ``k`` moved where its coefficient goes, and flipped where the coefficient's sign flips. An estimate:
    the median the bits were cut at moves too, so a variant lands some bits away from the exact one
    (up to about 14 on the reference images); whoever needs the exact variants hashes the image again."""
    variants = []
    for transpose, even_rows, even_columns in DIHEDRAL.values():
        out = 0
        for i in range(_DCT):
            for j in range(_DCT):
                bit = (value >> (i * _DCT + j)) & 1
                if (even_rows and i % 2 == 0) != (even_columns and j % 2 == 0):
                    bit ^= 1
                out |= bit << (j * _DCT + i if transpose else i * _DCT + j)
        variants.append(out)
    return tuple(variants)


def to_hex(value: int) -> str:
    return f"{value:064x}"


def parse_hex(text: str) -> int:
    """A PDQ hash as written by the reference (64 hex digits, either case); ValueError otherwise."""
    cleaned = text.strip().lower()
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError(f"{text.strip()[:70]!r} is not a PDQ hash (64 hexadecimal digits)")
    return int(cleaned, 16)


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


# The transpose that undoes each EXIF orientation (``decode`` made the working copy upright with
# ``ImageOps.exif_transpose``; PDQ hashes the pixels as stored, and the rotations cover the rest).
_UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
# Modes whose working copy is not a plain reduction of ``convert("RGB")``: with transparency it is laid
# on white (the reference keeps the colour under each pixel), palettes and bilevel images are resized by
# nearest neighbour, and 16/32-bit grey is scaled where ``convert("RGB")`` clips. These read the file.
_FROM_ORIGINAL = frozenset({"RGBA", "LA", "PA", "P", "RGBa", "La", "1", "I", "I;16", "I;16B", "I;16L", "F"})


def stored_pixels(image: DecodedImage) -> Image.Image:
    """The frame's pixels as stored, with its EXIF rotation undone: the working copy, or, for the modes
    the working copy changes, the small ``convert("RGB")`` copy the decode made for PDQ (``pdq_source``)
    from its bounded copy: never a second decode of the file."""
    source = image.pdq_source if image.mode in _FROM_ORIGINAL and image.pdq_source is not None else image.working
    undo = _UNDO_ORIENTATION.get(image.orientation or 1)
    return source.transpose(undo) if undo is not None else source


def image_hash(image: DecodedImage) -> PdqHash:
    """The hash of a decoded image or of one frame of a file (``frame`` set for a frame), computed once:
    later calls, and those on its vendor copies, get the same hash."""
    if not image._pdq:
        image._pdq.append(pdq_hash(stored_pixels(image), frame=image.frame_index if image.source is not None else None))
    return image._pdq[0]


def pdq_hash(image: Image.Image, frame: int | None = None) -> PdqHash:
    """The PDQ hash of one frame, of its pixels as they are (no EXIF rotation applied). Transparency is
    dropped the reference's way (``convert("RGB")`` keeps the colour under each pixel); larger images
    are reduced to HASHING_SIDE first."""
    width, height = image.size
    if min(width, height) < MIN_HASHABLE_SIDE:
        return PdqHash(0, 0, frame)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if max(width, height) > HASHING_SIDE:
        image = image.resize(_fitted(image.size, HASHING_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return hash_luma(image.convert("F"), frame)


def hash_luma(luma: Image.Image, frame: int | None = None) -> PdqHash:
    """The hash of a luminance image (mode ``F``, 0..255), at the size given."""
    width, height = luma.size
    if min(width, height) < MIN_HASHABLE_SIDE:
        return PdqHash(0, 0, frame)
    # Along the rows first (64 columns kept), then along the columns of that narrow image.
    narrow = _filter_and_sample(luma)
    grid = _filter_and_sample(narrow.transpose(Image.Transpose.TRANSPOSE)).transpose(Image.Transpose.TRANSPOSE)
    dct = _dct16(grid)
    return PdqHash(_bits(dct), _quality(grid), frame, dct)


# -- the Jarosz filter and the decimation ------------------------------------------------------------


def window_size(dimension: int) -> int:
    """The reference's ``computeJaroszFilterWindowSize``: ceil(dimension / 128)."""
    return (dimension + 2 * _GRID - 1) // (2 * _GRID)


def _box_windows(length: int, window: int) -> list[tuple[int, int]]:
    """For each output index, the input range [first, last] one box pass averages (the reference's
    ``box1DFloat``: ``(window + 2) // 2 - 1`` behind, the rest ahead, cut at the edges)."""
    half = (window + 2) // 2
    return [(max(0, o - (window - half)), min(length - 1, o + half - 1)) for o in range(length)]


@cache
def _sampling_weights(length: int) -> dict[int, tuple[float, ...]]:
    """Offset -> the weight of input ``sample + offset`` in each of the 64 kept values, for two box
    passes over ``length`` values followed by the decimation (zero where the offset leaves the image)."""
    window = window_size(length)
    windows = _box_windows(length, window)
    by_offset: dict[int, list[float]] = {}
    for j in range(_GRID):
        sample = int((j + 0.5) * length / _GRID)
        first, last = windows[sample]
        weights: dict[int, float] = {}
        for p in range(first, last + 1):  # the second pass averages first-pass values ...
            lo, hi = windows[p]
            share = 1.0 / ((last - first + 1) * (hi - lo + 1))
            for q in range(lo, hi + 1):  # ... each of which averaged input values
                weights[q] = weights.get(q, 0.0) + share
        for q, weight in weights.items():
            by_offset.setdefault(q - sample, [0.0] * _GRID)[j] = weight
    return {offset: tuple(weights) for offset, weights in sorted(by_offset.items())}


def _filter_and_sample(luma: Image.Image) -> Image.Image:
    """Two box passes along each row, keeping the 64 columns PDQ samples: a (64, height) ``F`` image."""
    width, height = luma.size
    weights = _sampling_weights(width)
    reach_left, reach_right = -min(weights), max(weights)
    padded = Image.new("F", (width + reach_left + reach_right, height), 0.0)
    padded.paste(luma, (reach_left, 0))
    terms = {}
    for n, (offset, column_weights) in enumerate(weights.items()):
        left = reach_left + offset
        # Nearest-neighbour sampling of a shifted box reads input column int((j + 0.5) * width / 64) + offset.
        shifted = padded.resize((_GRID, height), Image.Resampling.NEAREST, box=(left, 0, left + width, height))
        row = Image.frombytes("F", (_GRID, 1), array("f", column_weights).tobytes())
        terms[f"s{n}"] = shifted
        terms[f"w{n}"] = row.resize((_GRID, height), Image.Resampling.NEAREST)
    count = len(weights)
    return ImageMath.lambda_eval(lambda a: _weighted_sum(a, count), **terms)


def _weighted_sum(a: dict[str, object], count: int) -> object:
    total = a["s0"] * a["w0"]  # type: ignore[operator]
    for n in range(1, count):
        total = total + a[f"s{n}"] * a[f"w{n}"]  # type: ignore[operator]
    return total


# -- quality, DCT, bits --------------------------------------------------------------------------------


def _quality(grid: Image.Image) -> int:
    """The reference's ``computePDQImageDomainQualityMetric``: each neighbour difference times 100, over
    255, truncated toward zero (float arithmetic, then a C cast, as there), its absolute value summed over
    both directions, divided by 90, at most 100."""
    side = _GRID
    total = 0
    for first, second in (
        ((0, 0, side, side - 1), (0, 1, side, side)),  # vertical neighbours
        ((0, 0, side - 1, side), (1, 0, side, side)),  # horizontal neighbours
    ):
        gradients = ImageMath.lambda_eval(
            lambda a: abs(a["int"]((a["u"] - a["v"]) * 100 / 255)), u=grid.crop(first), v=grid.crop(second)
        )
        total += sum(array("i", gradients.tobytes()))
    return min(100, total // 90)


@cache
def _dct_matrix() -> tuple[tuple[float, ...], ...]:
    """16 x 64: rows for frequencies 1..16 (the DC row skipped), as the reference builds it."""
    scale = math.sqrt(2.0 / _GRID)
    return tuple(
        tuple(scale * math.cos((math.pi / 2 / _GRID) * (i + 1) * (2 * j + 1)) for j in range(_GRID))
        for i in range(_DCT)
    )


@cache
def _dct_weights() -> tuple[Image.Image, Image.Image]:
    """The DCT matrix laid out for the two products ``_dct16`` takes with Pillow: 16 blocks of 64 rows
    (block ``i``, row ``k``: D[i][k] in every column), and 16 blocks of 64 columns (block ``j``, column
    ``k``: D[j][k] in every row). Each times 64, so that a BOX average over a block is the sum."""
    matrix = _dct_matrix()
    # The 1,024 weights once each, repeated across (or down) by Pillow: a nearest-neighbour resize copies
    # each value exactly, where building the 65,536 of each image in Python costs a cold start 10 ms.
    weights = array("f", (64 * matrix[i][k] for i in range(_DCT) for k in range(_GRID)))
    column = Image.frombytes("F", (1, _GRID * _DCT), weights.tobytes())
    row = Image.frombytes("F", (_GRID * _DCT, 1), weights.tobytes())
    return (
        column.resize((_GRID, _GRID * _DCT), Image.Resampling.NEAREST),
        row.resize((_GRID * _DCT, _DCT), Image.Resampling.NEAREST),
    )


def _dct16(grid: Image.Image) -> tuple[float, ...]:
    """D A D^T for the 64 x 64 image A, as 256 values, row-major. Both products are Pillow operations:
    A stacked 16 times, times the weights, BOX-averaged over each block of 64."""
    by_rows, by_columns = _dct_weights()
    stacked = Image.new("F", by_rows.size)
    for block in range(_DCT):
        stacked.paste(grid, (0, block * _GRID))
    partial = ImageMath.lambda_eval(lambda a: a["x"] * a["w"], x=stacked, w=by_rows)
    partial = partial.resize((_GRID, _DCT), Image.Resampling.BOX)  # 16 x 64: D A
    stacked = Image.new("F", by_columns.size)
    for block in range(_DCT):
        stacked.paste(partial, (block * _GRID, 0))
    product = ImageMath.lambda_eval(lambda a: a["x"] * a["w"], x=stacked, w=by_columns)
    return tuple(array("f", product.resize((_DCT, _DCT), Image.Resampling.BOX).tobytes()))


@cache
def _plans() -> tuple[tuple[list[int], list[float]], ...]:
    """Per dihedral variant: where each of its coefficients comes from, and the sign it takes."""
    plans = []
    for transpose, even_rows, even_columns in DIHEDRAL.values():
        moves, signs = [0] * (_DCT * _DCT), [1.0] * (_DCT * _DCT)
        for i in range(_DCT):
            for j in range(_DCT):
                target = j * _DCT + i if transpose else i * _DCT + j
                moves[target] = i * _DCT + j
                signs[target] = -1.0 if (even_rows and i % 2 == 0) != (even_columns and j % 2 == 0) else 1.0
        plans.append((moves, signs))
    return tuple(plans)


_POWERS = tuple(1 << k for k in range(_DCT * _DCT))


def _bits(dct: tuple[float, ...] | list[float]) -> int:
    """Bit ``k`` set when coefficient ``k`` exceeds the median: the 128th smallest of the 256, as the
    reference's Torben median returns for an even count."""
    median = sorted(dct)[len(dct) // 2 - 1]
    return sum(compress(_POWERS, map(median.__lt__, dct)))


def _fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    width, height = size
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


__all__ = [
    "DIHEDRAL",
    "HASH_BITS",
    "MATCH_DISTANCE",
    "MIN_QUALITY",
    "PdqHash",
    "dihedral_from_bits",
    "distance",
    "hash_luma",
    "parse_hex",
    "pdq_hash",
    "to_hex",
    "window_size",
]
