"""A 64-bit difference hash (dHash) for near-duplicate search, with Pillow only.

dHash shrinks a grey copy to 9x8 and sets one bit per pair of horizontal neighbours (is the left one
brighter?). It survives resizing, recompression and small color or brightness changes, which is what
finding re-uploads needs, and it needs no DCT (so no numpy or scipy in the layer). Two hashes of the same
picture usually differ in a handful of bits; unrelated pictures differ in about 32.
"""

from __future__ import annotations

from PIL import Image

HASH_BITS = 64
# Up to this many differing bits, two hashes are treated as the same picture.
NEAR_DUPLICATE_DISTANCE = 10


def dhash(image: Image.Image) -> str:
    """The 64-bit difference hash of ``image`` as 16 lower-case hex digits, row by row, MSB first."""
    # BOX averages every source pixel into the 9x8 grid, which is what makes the hash stable under resizing.
    grid = image.convert("L").resize((9, 8), Image.Resampling.BOX)
    pixels = grid.tobytes()
    value = 0
    for row in range(8):
        line = pixels[row * 9 : row * 9 + 9]
        for col in range(8):
            value = (value << 1) | (line[col] > line[col + 1])
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    """The number of differing bits between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length: {len(a)} and {len(b)} hex digits")
    return (int(a, 16) ^ int(b, 16)).bit_count()


def is_near_duplicate(a: str, b: str, max_distance: int = NEAR_DUPLICATE_DISTANCE) -> bool:
    return hamming(a, b) <= max_distance
