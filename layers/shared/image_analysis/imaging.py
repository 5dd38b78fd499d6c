"""Identify an upload by its bytes (never its name), enforce the limits, and prepare copies for vendors.

``decode`` either returns a ``DecodedImage`` or raises ``InputRejected`` with the contract's code:
``empty_object``, ``not_an_image``, ``unsupported_format``, ``truncated``, ``too_many_pixels``.
Decoding happens once, into a small RGB working copy (JPEG draft mode makes that cheap for big photos);
vendors that need other sizes or formats get a re-encoded copy from ``encoded_for``.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property

from PIL import Image, ImageOps, UnidentifiedImageError

from image_analysis.errors import InputRejected

# The working copy the offline analyzer reads: big enough for colors, hashes and quality signals.
WORKING_SIDE = 512

MIME_BY_FORMAT = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
    "heic": "image/heic",
    "heif": "image/heif",
    "avif": "image/avif",
    "ico": "image/x-icon",
    "mpo": "image/jpeg",
}

# Signatures of things users upload that are not raster images we analyze, for a clearer message.
_KNOWN_NON_RASTER = (
    (b"%PDF", "PDF documents"),
    (b"<svg", "SVG drawings"),
    (b"<?xml", "SVG or other XML documents"),
    (b"PK\x03\x04", "ZIP archives"),
)

# Modes whose pixels may carry transparency (a palette may declare a transparent entry).
_MAY_HAVE_ALPHA = frozenset({"RGBA", "LA", "PA", "P", "RGBa", "La"})

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis")


def _register_heif_if_needed(data: bytes) -> None:
    """pillow-heif costs import time, so it is loaded only for HEIC/HEIF files."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        import pillow_heif

        pillow_heif.register_heif_opener()


# GPS and Exif sub-IFDs, description, make, model, artist, copyright, dates, user comment, XP fields.
_PERSONAL_EXIF_TAGS = frozenset(
    {0x8825, 0x8769, 0x010E, 0x010F, 0x0110, 0x013B, 0x8298, 0x0132, 0x9286, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F}
)


@dataclass(frozen=True)
class DecodedImage:
    data: bytes
    format: str
    # As displayed, i.e. after the EXIF orientation is applied.
    width: int
    height: int
    mode: str
    frames: int
    orientation: int | None
    # RGB, EXIF-rotated, first frame, at most WORKING_SIDE on its long side.
    working: Image.Image = field(repr=False, compare=False)
    # Whether copies for vendors drop EXIF (location, camera serials), XMP, comments and text chunks.
    strip_metadata: bool = True
    # A JPEG decoded once at a reduced scale (draft mode), EXIF-rotated: vendor copies up to its size are
    # made from it instead of decoding the file again. None for other formats and small JPEGs.
    draft: Image.Image | None = field(default=None, repr=False, compare=False)
    # Vendor copies already made, by (formats, max_bytes, max_side, strip): providers asking for the same
    # copy share one encoding. Shared by the copies ``for_vendor`` makes, guarded by its lock.
    _copies: dict = field(default_factory=dict, repr=False, compare=False)
    _copies_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def for_vendor(self, keep_metadata: bool) -> DecodedImage:
        """The same image under a vendor's metadata policy (AI detectors may want the metadata)."""
        copy = replace(self, strip_metadata=not keep_metadata)
        if not keep_metadata:
            # Answered once on this image for every vendor copy: the same bytes need no second parse.
            copy.__dict__["has_personal_metadata"] = self.has_personal_metadata
        return copy

    @cached_property
    def has_personal_metadata(self) -> bool:
        """EXIF beyond the file's own structure (GPS, camera and capture details, descriptions), XMP,
        comments or text chunks. TIFF structure tags (sizes, strips, compression) are not personal."""
        image = self.open()
        exif = image.getexif()
        if any(tag in exif for tag in _PERSONAL_EXIF_TAGS):
            return True
        info_keys = {k.lower() for k in image.info}
        personal = {"exif", "xmp", "xml:com.adobe.xmp", "comment", "parameters", "prompt", "workflow", "photoshop"}
        return bool(info_keys & personal) or bool(getattr(image, "text", None))

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def content_type(self) -> str:
        return MIME_BY_FORMAT.get(self.format, f"image/{self.format}")

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def open(self) -> Image.Image:
        """A fresh Pillow image on the original bytes (for metadata readers)."""
        _register_heif_if_needed(self.data)
        return Image.open(io.BytesIO(self.data))

    def encoded_for(
        self,
        formats: frozenset[str],
        max_bytes: int,
        max_side: int | None = None,
    ) -> tuple[bytes, str]:
        """The bytes to send to a vendor that accepts ``formats`` up to ``max_bytes``.

        The original goes as it is when the vendor takes it; otherwise the first frame is converted to
        JPEG (PNG when it has transparency and the vendor takes PNG), downscaled when asked or when the
        file would still be too big. Never rejected for a reason we can fix.
        """
        fits_side = max_side is None or max(self.width, self.height) <= max_side
        clean = not self.strip_metadata or not self.has_personal_metadata
        if self.format in formats and len(self.data) <= max_bytes and fits_side and self.frames == 1 and clean:
            return self.data, self.content_type
        wanted = (formats, max_bytes, max_side, self.strip_metadata)
        with self._copies_lock:
            if wanted in self._copies:
                return self._copies[wanted]
        side = max_side or max(self.width, self.height)
        while True:
            payload, mime = self._reencode(formats, side)
            if len(payload) <= max_bytes or side <= 256:
                break
            side = int(side * 0.7)
        with self._copies_lock:
            self._copies[wanted] = (payload, mime)
        return payload, mime

    def _source_for(self, side: int) -> Image.Image:
        """The decoded image to downscale to ``side``, cheapest first: the working copy, the draft, the file.

        The working copy is already RGB, so it serves only images without transparency."""
        # Shared between threads: _reencode resizes or copies it before saving (save writes encoder
        # settings onto the image it is called on).
        if side <= max(self.working.size) and self.mode not in _MAY_HAVE_ALPHA:
            return self.working
        if self.draft is not None and side <= max(self.draft.size):
            return self.draft
        image = self.open()
        if image.format == "JPEG":
            image.draft("RGB", (side, side))
        image.seek(0)
        return ImageOps.exif_transpose(image)

    def _reencode(self, formats: frozenset[str], side: int) -> tuple[bytes, str]:
        image = self._source_for(side)
        has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        target = _fitted((self.width, self.height), side)
        if image.size != target:
            # The size follows from the original's, whichever decoded copy it is made from, so a vendor's
            # boxes map back exactly. BOX (area averaging) does not alias when it shrinks and takes two
            # thirds of bilinear's time; unlike the working copy, nothing we measure reads these pixels.
            image = image.resize(target, Image.Resampling.BOX, reducing_gap=2.0)
        elif image is self.working or image is self.draft:
            image = image.copy()
        out = io.BytesIO()
        # A PNG stays a PNG (lossless) when the vendor takes PNG; so does anything with transparency.
        if "png" in formats and (self.format == "png" or (has_alpha and "jpeg" not in formats)):
            image.convert("RGBA" if has_alpha else "RGB").save(out, format="PNG", optimize=True)
            return out.getvalue(), "image/png"
        _to_rgb(image).save(out, format="JPEG", quality=88, optimize=True)
        return out.getvalue(), "image/jpeg"


def _fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled down so that its long side is ``side`` (never up), keeping the aspect ratio."""
    width, height = size
    if max(width, height) <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit and 32-bit grey: scale to 8 bits instead of clipping everything to white.
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")


# Pillow's bomb guard is one process-wide number that warns at that many pixels and fails at twice as
# many; changing it per call (or turning its warning into an error with ``warnings.catch_warnings``) is
# not thread-safe, and records of a batch are decoded at once. So it is set once, out of the way, and
# ``decode`` holds every image to MAX_PIXELS exactly, from the header's width x height, before any pixel
# is decoded.
Image.MAX_IMAGE_PIXELS = None


def decode(data: bytes, max_pixels: int, sha256: str | None = None) -> DecodedImage:
    """``sha256``: the bytes' digest when the caller has it already (hashing a large file twice costs)."""
    if not data:
        raise InputRejected("empty_object", "the object is empty (0 bytes)")
    _register_heif_if_needed(data)
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        fmt = (image.format or "").lower()
        width, height = image.size
        if width * height > max_pixels:
            raise Image.DecompressionBombError("too many pixels")
        frames = getattr(image, "n_frames", 1)
        orientation = image.getexif().get(0x0112)
        mode = image.mode
        if image.format == "JPEG":
            image.draft("RGB", (WORKING_SIDE * 2, WORKING_SIDE * 2))
        image.seek(0)
        image.load()
        # A JPEG that draft mode decoded at a reduced scale is kept for the vendors' copies.
        reduced = image.format == "JPEG" and image.size != (width, height)
        # exif_transpose copies even an upright image: only rotate what needs it.
        upright = ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
        draft = upright if reduced else None
        # resize returns a new image: the draft stays as decoded for the vendors' copies.
        working = _to_rgb(
            upright.resize(_fitted(upright.size, WORKING_SIDE), Image.Resampling.BILINEAR, reducing_gap=1.0)
        )
    except Image.DecompressionBombError:
        raise InputRejected(
            "too_many_pixels", f"the image has more than the {max_pixels:,} pixels allowed (MAX_PIXELS)"
        ) from None
    except UnidentifiedImageError:
        head = data[:256].lstrip()
        for signature, what in _KNOWN_NON_RASTER:
            if head.startswith(signature):
                raise InputRejected("unsupported_format", f"{what} are not supported; upload a raster image") from None
        raise InputRejected("not_an_image", "the bytes are not an image in any format we can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports cut-off files as OSError("image file is truncated ...") or broken data streams.
        text = str(exc).lower()
        if "truncated" in text or "broken data stream" in text or isinstance(exc, EOFError):
            raise InputRejected("truncated", "the image is truncated or corrupt and cannot be decoded") from None
        raise InputRejected("truncated", f"the image cannot be decoded: {exc}") from None
    if orientation in (5, 6, 7, 8):
        # Rotated a quarter turn by its EXIF orientation: report the dimensions people see.
        width, height = height, width
    decoded = DecodedImage(
        data=data,
        format="heic" if fmt == "heif" else fmt,
        width=width,
        height=height,
        mode=mode,
        frames=frames,
        orientation=orientation,
        working=working,
        draft=draft,
    )
    if sha256 is not None:
        decoded.__dict__["sha256"] = sha256  # what the cached_property would compute
    return decoded
