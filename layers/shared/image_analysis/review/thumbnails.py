"""Thumbnails of images under review, for the moderators' console.

Made once, when a review opens, from the bounded copy the pipeline decoded already
(``DecodedImage.working``, at most 512 px): no second decode, no second read of the object. They live
in the artifacts bucket, which never triggers analysis, under a key named by the content's sha256
(``thumbnails/<sha256>.webp``; an animation also gets ``thumbnails/<sha256>.frames.webp``, its analyzed
frames side by side in cells of ``FRAME_CELL`` px), so the key holds nothing of the user's key, and
equal bytes share one. The console reads them only through short-lived presigned URLs from the review
API; the bucket stays private. They expire with the bucket's lifecycle rule (``thumbnails/``).

Best effort: a thumbnail that cannot be made or written is logged and left out; the review opens anyway.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL import Image

    from image_analysis.imaging import DecodedImage

PREFIX = "thumbnails/"
THUMBNAIL_SIDE = 256  # the queue shows them at 96 px; 256 stays sharp on a high-density screen
FRAME_CELL = 128
WEBP_QUALITY = 70
# What a browser may keep of a thumbnail it was handed (its presigned URL expires sooner anyway).
CACHE_CONTROL = "private, max-age=300"


def thumbnail_key(sha256: str) -> str:
    return f"{PREFIX}{sha256}.webp"


def frames_key(sha256: str) -> str:
    return f"{PREFIX}{sha256}.frames.webp"


def _webp(image: Image.Image) -> bytes:
    out = io.BytesIO()
    # method 4: Pillow's default speed/size trade-off; a 256 px thumbnail takes a few milliseconds.
    image.save(out, format="WEBP", quality=WEBP_QUALITY, method=4)
    return out.getvalue()


def thumbnail_webp(working: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A WebP of at most ``side`` px on its long side, from an already decoded RGB copy."""
    image = working.copy()
    image.thumbnail((side, side))  # in place, keeps the aspect ratio, never enlarges
    return _webp(image)


def frame_strip_webp(frames: Sequence[Image.Image], cell: int = FRAME_CELL) -> bytes:
    """The frames side by side, each fitted (centred) in a ``cell`` x ``cell`` square: one request for the
    console's frame strip, whose n-th cell is the n-th analyzed frame."""
    from PIL import Image

    strip = Image.new("RGB", (cell * len(frames), cell), (24, 24, 27))
    for position, frame in enumerate(frames):
        fitted = frame.copy()
        fitted.thumbnail((cell, cell))
        left = position * cell + (cell - fitted.width) // 2
        strip.paste(fitted, (left, (cell - fitted.height) // 2))
    return _webp(strip)


class Thumbnails:
    """Writes a reviewed image's thumbnails into the artifacts bucket (``s3:PutObject`` on ``thumbnails/*``)."""

    def __init__(self, bucket: str, s3_client: Any, logger: Any = None) -> None:
        self.bucket = bucket
        self._s3 = s3_client
        self.logger = logger

    def write(self, sha256: str | None, frames: Sequence[DecodedImage]) -> dict[str, Any]:
        """The queue item's thumbnail attributes (``thumbnail`` and, for an animation, ``frames_strip``),
        or ``{}`` when there is nothing to show or it could not be written."""
        if not sha256 or not frames:
            return {}
        try:
            first = frames[0].file if frames[0].source is not None else frames[0]
            written = {"thumbnail": self._put(thumbnail_key(sha256), thumbnail_webp(first.working))}
            if frames[0].source is not None:
                written["frames_strip"] = self._put(
                    frames_key(sha256), frame_strip_webp([frame.working for frame in frames])
                )
                written["strip_frames"] = [frame.frame_index for frame in frames]
            return written
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not write the thumbnail of an image under review")
            return {}

    def _put(self, key: str, body: bytes) -> str:
        self._s3.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="image/webp", CacheControl=CACHE_CONTROL
        )
        return key
