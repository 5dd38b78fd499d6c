"""Identify an upload by its bytes (never its name), enforce the limits, and prepare copies for vendors.

``probe`` reads the header only: format, size, mode, and the bytes a decode will take (``decoded_bytes``),
which the batch's memory budget counts before any pixel is decoded. ``decode`` either returns a
``DecodedImage`` or raises ``InputRejected`` with the contract's code: ``empty_object``, ``not_an_image``,
``unsupported_format``, ``truncated``, ``too_many_pixels``. Whatever a decoder raises on a file (libheif's
RuntimeError, a plugin's IndexError or struct.error) is a ``truncated`` rejection; only a ``MemoryError``
is left to the caller, since it says nothing about the file.

The file is decoded once, into copies of bounded size: a working copy (at most ``WORKING_SIDE``) for the
offline analysis, and a master (at most ``MASTER_MAX_PIXELS``) that every vendor copy is made from. A
JPEG is decoded at a reduced scale (draft mode) for the working copy, and its master only when a vendor
needs a copy larger than that. The full-size decode of a huge PNG is dropped as soon as the master is made.

Transparency is judged as a viewer would see it: a transparent image is flattened onto the backdrop
(white or black) that keeps the most contrast, so that content drawn for a dark page does not pass as a
blank one; such an image is never sent as it is.

Files of several frames (animated GIF, WebP and PNG, multi-page TIFF, multi-image HEIF/AVIF) are sampled:
at most ``FrameLimits.samples`` frames, spread evenly over the frame indexes with the first and the last
included, found by decoding at most ``FrameLimits.scan_limit`` frames in order. Each sampled frame is a
``DecodedImage`` of its own (``views``): a PNG of the flattened, bounded frame, whose bytes are what
vendors are sent and what their cached answers are keyed by. Each view owns its pixels (the decoder's
image moves on to the next frame); sampled frames after the file breaks off are ``frames_unreadable``.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property

from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

from image_analysis.errors import InputRejected
from image_analysis.jpeg_metadata import without_metadata

# The working copy the offline analyzer reads: big enough for colors, hashes and quality signals.
WORKING_SIDE = 512
# The one copy vendor copies are made from: 16 megapixels keep every detail a vendor documents a use for
# (Imagga needs 300 px, OCR small print) while a 100-megapixel upload shrinks to a sixth of its decode.
MASTER_MAX_PIXELS = 4096 * 4096
# An analyzed frame of an animation is kept at most this large: eight of them stay under 40 MB.
FRAME_MAX_SIDE = 1280
# Meta's Python port reduces images to this before hashing (analyzers.pdq.HASHING_SIDE).
PDQ_SIDE = 512
# Modes whose working copy is not a plain reduction of ``convert("RGB")`` (analyzers.pdq._FROM_ORIGINAL).
_PDQ_OWN_COPY = frozenset({"RGBA", "LA", "PA", "P", "RGBa", "La", "1", "I", "I;16", "I;16B", "I;16L", "F"})
# Part of a frame's content-cache key (``DecodedImage.cache_id``): answers cached for frames before each
# frame's vendor copies were made from its own pixels may be about another frame of the file (the last one
# decoded), and are never read. Raise it whenever what a frame's cached answer is about changes.
FRAME_CACHE_GENERATION = 2
# Formats whose extra frames are frames of the picture (MPO's second image is a depth map or stereo pair).
MULTI_FRAME_FORMATS = frozenset({"gif", "webp", "png", "tiff", "heic", "heif", "avif"})

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
class FrameLimits:
    """How many frames of an animation are analyzed (FRAME_SAMPLES) and decoded to find them (FRAME_SCAN_LIMIT)."""

    samples: int = 8
    scan_limit: int = 300


def sample_frames(frames: int, limits: FrameLimits) -> list[int]:
    """At most ``limits.samples`` indexes spread evenly over the first ``limits.scan_limit`` frames, the
    first and the last of them included."""
    last = min(frames, max(1, limits.scan_limit)) - 1
    count = min(max(1, limits.samples), last + 1)
    if count == 1:
        return [0]
    return sorted({round(i * last / (count - 1)) for i in range(count)})


# Bytes per pixel of Pillow's decoded modes (what the decoder allocates before any conversion).
# Bytes per pixel as Pillow stores a mode: one for 1, L and P, two for 16-bit grey, and four for everything
# else (RGB included: Pillow keeps it as RGBX).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# An animation of huge frames is scanned only as far as this many decoded pixels (a 100-megapixel
# animated PNG: 20 frames, not FRAME_SCAN_LIMIT's 300).
FRAME_SCAN_PIXELS = 2_000_000_000


@dataclass(frozen=True)
class Probe:
    """What the header says, before any pixel is decoded."""

    format: str
    width: int
    height: int
    mode: str
    frames: int = 1

    @property
    def animated(self) -> bool:
        """Frames after the first will be analyzed too (their bytes, not the file's, key the cache)."""
        return self.frames > 1 and self.format in MULTI_FRAME_FORMATS

    @property
    def decoded_bytes(self) -> int:
        """Memory a decode takes at its peak: width x height x bytes per pixel as Pillow stores the decoded
        mode, plus the full-size RGB(A) copy a palette or bilevel image is converted into, plus the bounded
        master made from it; an animation also keeps the previous frame (delta-coded frames build on it)."""
        pixels = self.width * self.height
        decoded = pixels * _BYTES_PER_PIXEL.get(self.mode, 4)
        if self.animated:
            decoded *= 2
        converted = pixels * 4 if self.mode in ("P", "PA", "1") else 0
        return decoded + converted + min(pixels, MASTER_MAX_PIXELS) * 4


class _Master:
    """A decoded copy made at most once, on first use, even when threads ask at once: the bounded master
    vendor copies are made from, and the working copy."""

    def __init__(
        self,
        image: Image.Image | None = None,
        load: Callable[[], Image.Image] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self._image = image
        self._load = load
        self._lock = threading.Lock()
        # Known before the copy is made (for the working copy), so that asking its size makes nothing.
        self.size = image.size if image is not None else size

    def get(self) -> Image.Image:
        with self._lock:
            if self._image is None:
                assert self._load is not None
                self._image = self._load()
                self._load = None
            return self._image


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
    # The working copy (``working``), made on first use: a vendor's request need not wait for it.
    _working: _Master = field(repr=False, compare=False)
    # Whether copies for vendors drop EXIF (location, camera serials), XMP, comments and text chunks.
    strip_metadata: bool = True
    # A JPEG decoded once at a reduced scale (draft mode), EXIF-rotated: vendor copies up to its size are
    # made from it. None for other formats and small JPEGs.
    draft: Image.Image | None = field(default=None, repr=False, compare=False)
    # "white" or "black" when the image is transparent: the backdrop it is judged and sent on.
    backdrop: str | None = None
    # For PDQ, when the working copy is not a reduction of ``convert("RGB")`` (transparency laid on a
    # backdrop, palettes, 16-bit grey): that conversion, upright, at most PDQ_SIDE.
    pdq_source: Image.Image | None = field(default=None, repr=False, compare=False)
    # This image's frame of the file (0 for the file itself) and, for a frame, the file it comes from.
    frame_index: int = 0
    source: DecodedImage | None = field(default=None, repr=False, compare=False)
    # The sampled frames of a file of several frames (``analyzed``); empty for one frame.
    views: tuple[DecodedImage, ...] = field(default=(), repr=False, compare=False)
    # The indexes of sampled frames that could not be decoded (the file broke off before them).
    frames_unreadable: tuple[int, ...] = ()
    _master: _Master = field(default_factory=_Master, repr=False, compare=False)
    # Vendor copies already made, by (formats, max_bytes, max_side, strip): providers asking for the same
    # copy share one encoding. Shared by the copies ``for_vendor`` makes, guarded by its lock.
    _copies: dict = field(default_factory=dict, repr=False, compare=False)
    _copies_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # This image's PDQ hash once computed (``analyzers.pdq.image_hash``), shared with its vendor copies:
    # the hash banks' screening of an animation and builtin both want it, and it is made once.
    _pdq: list = field(default_factory=list, repr=False, compare=False)

    @property
    def working(self) -> Image.Image:
        """RGB, EXIF-rotated, flattened, this frame, at most WORKING_SIDE on its long side. Made by the
        first to ask (the offline analyzer, in its own thread), not by the decode."""
        return self._working.get()

    def for_vendor(self, keep_metadata: bool) -> DecodedImage:
        """The same image under a vendor's metadata policy (AI detectors may want the metadata)."""
        copy = replace(self, strip_metadata=not keep_metadata)
        if not keep_metadata:
            # Answered once on this image for every vendor copy: the same bytes need no second parse.
            copy.__dict__["has_personal_metadata"] = self.has_personal_metadata
        return copy

    @property
    def analyzed(self) -> tuple[DecodedImage, ...]:
        """What is analyzed: the sampled frames of an animation, else the image itself."""
        return self.views or (self,)

    @property
    def file(self) -> DecodedImage:
        """The uploaded file this image is (or is a frame of): its metadata, its provenance."""
        return self.source or self

    @cached_property
    def has_personal_metadata(self) -> bool:
        """EXIF beyond the file's own structure (GPS, camera and capture details, descriptions), XMP,
        comments or text chunks. TIFF structure tags (sizes, strips, compression) are not personal."""
        if self.format == "png":
            # Pillow finds a PNG's EXIF and text after the image data only by decoding every pixel (a
            # 100-megapixel file: 400 MB, outside the memory budget); the chunk list says it for free.
            return bool(png_chunk_types(self.data) & _PNG_PERSONAL_CHUNKS)
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
    def cache_id(self) -> str:
        """What this image's cached vendor answers are keyed by: the sha256 of its bytes, and for a frame
        of an animation also ``FRAME_CACHE_GENERATION``."""
        return self.sha256 if self.source is None else f"{self.sha256}.f{FRAME_CACHE_GENERATION}"

    @property
    def content_type(self) -> str:
        return MIME_BY_FORMAT.get(self.format, f"image/{self.format}")

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def retained_bytes(self) -> int:
        """Memory this image keeps once decoded: its bytes, the working copy, the draft, the master (or the
        most a JPEG's master, made on demand, can take) and its frames'."""
        working = self._working._image
        # Counted before it is made: it is made from pixels already held, within the same budget.
        held = len(self.data) + (_image_bytes(working) if working is not None else math.prod(self._working.size) * 3)
        held += _image_bytes(self.draft) if self.draft is not None else 0
        master = self._master._image
        if master is not None and master is not working:
            held += _image_bytes(master)
        elif master is None:
            held += min(self.width * self.height, 4 * MASTER_MAX_PIXELS) * 4
        return held + sum(view.retained_bytes for view in self.views)

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

        The original goes as it is when the vendor takes it and it is what a viewer sees (one frame, no
        transparency); an upright JPEG whose personal metadata is to be stripped goes without those
        segments, its pixels untouched (``jpeg_metadata``). Otherwise a copy is made from the master,
        flattened onto the image's backdrop: PNG when the original is PNG and the vendor takes PNG, else
        JPEG; downscaled when asked or when the file would still be too big. Never rejected for a reason
        we can fix.
        """
        fits_side = max_side is None or max(self.width, self.height) <= max_side
        clean = not self.strip_metadata or not self.has_personal_metadata
        as_seen = self.frames == 1 and self.backdrop is None
        as_is = self.format in formats and len(self.data) <= max_bytes and fits_side and as_seen
        if as_is and clean:
            return self.data, self.content_type
        wanted = (formats, max_bytes, max_side, self.strip_metadata)
        with self._copies_lock:
            if wanted in self._copies:
                return self._copies[wanted]
        upright = self.orientation in (None, 1)  # without its EXIF, a turned JPEG would be shown unturned
        if as_is and upright and self.format == "jpeg" and (stripped := without_metadata(self.data)) is not None:
            # Only the metadata stands in the way: dropped from the file, the pixels untouched.
            with self._copies_lock:
                self._copies[wanted] = (stripped, self.content_type)
            return stripped, self.content_type
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
        """The decoded copy to downscale to ``side``, cheapest first: the working copy, the draft, the master.

        The working copy is already flattened RGB; the master may still carry its transparency, which
        ``_reencode`` flattens after resizing."""
        # Shared between threads: _reencode resizes or copies it before saving (save writes encoder
        # settings onto the image it is called on).
        decoded = self.draft if self.draft is not None and side <= max(self.draft.size) else None
        if side <= max(self._working.size):  # the working copy's size is known before it is made
            # Worth waiting for only when it saves a large resize. A decoded copy under twice its side
            # is resized directly, at once, in the vendor's thread, while the offline analyzer makes the
            # working copy in its own: waiting would put that resize on the vendor request's path.
            larger = decoded.size if decoded is not None else self._master.size
            if larger is None or max(larger) >= 2 * max(self._working.size):
                return self.working
        if decoded is not None:
            return decoded
        return self._master.get()

    def _reencode(self, formats: frozenset[str], side: int) -> tuple[bytes, str]:
        image = self._source_for(side)
        # Never larger than the master: a copy of a huge upload is at most MASTER_MAX_PIXELS.
        target = _fitted((self.width, self.height), min(side, max(image.size)))
        if image.size != target:
            # The size follows from the original's, whichever decoded copy it is made from, so a vendor's
            # boxes map back exactly. BOX (area averaging) does not alias when it shrinks and takes two
            # thirds of bilinear's time; unlike the working copy, nothing we measure reads these pixels.
            image = image.resize(target, Image.Resampling.BOX, reducing_gap=2.0)
        elif image is self._working._image or image is self.draft or image is self._master._image:
            image = image.copy()
        image = _to_rgb(image, self.backdrop or "white")
        if self.strip_metadata:
            # Pillow carries a decoded file's comment and XMP on every image made from it and writes them
            # back when one is saved: a copy without personal metadata must not take them along.
            image.info = {k: v for k, v in image.info.items() if k not in ("comment", "xmp", "exif", "photoshop")}
        out = io.BytesIO()
        # A PNG stays a PNG (lossless) when the vendor takes PNG.
        if "png" in formats and (self.format == "png" or "jpeg" not in formats):
            image.save(out, format="PNG", optimize=True)
            return out.getvalue(), "image/png"
        # No optimize pass: it would save about 2% of the bytes for more than twice the encoding time, and
        # a record's time goes on the CPU, not on the upload.
        image.save(out, format="JPEG", quality=88)
        return out.getvalue(), "image/jpeg"


_PNG_PERSONAL_CHUNKS = frozenset({b"eXIf", b"tEXt", b"iTXt", b"zTXt"})


def png_chunk_types(data: bytes) -> set[bytes]:
    """The chunk types of a PNG, read from the chunk headers alone (nothing is decompressed)."""
    types: set[bytes] = set()
    offset = 8
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        types.add(data[offset + 4 : offset + 8])
        offset += 12 + length
    return types


def _image_bytes(image: Image.Image) -> int:
    return image.width * image.height * _BYTES_PER_PIXEL.get(image.mode, 4)


def _fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled down so that its long side is ``side`` (never up), keeping the aspect ratio."""
    width, height = size
    if max(width, height) <= side:
        return width, height
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _within_pixels(size: tuple[int, int], pixels: int) -> tuple[int, int]:
    width, height = size
    if width * height <= pixels:
        return width, height
    scale = (pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def _has_alpha_mode(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def is_transparent(image: Image.Image) -> bool:
    """Whether any pixel is less than opaque (a declared alpha channel that is all opaque is not)."""
    if not _has_alpha_mode(image):
        return False
    if image.mode == "P":
        image = image.convert("RGBA")
    low, _ = image.getchannel("A").getextrema()
    return low < 255


def _on(image: Image.Image, color: str) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255) if color == "white" else (0, 0, 0))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def best_backdrop(image: Image.Image) -> str:
    """The backdrop (white or black) on which a transparent image keeps the most contrast: what is drawn
    for a dark page shows on black and vanishes on white. White on a tie (a page's usual colour)."""
    small = image.copy()
    small.thumbnail((256, 256), Image.Resampling.BOX)
    spread = {color: ImageStat.Stat(_on(small, color).convert("L")).stddev[0] for color in ("white", "black")}
    return "black" if spread["black"] > spread["white"] + 1.0 else "white"


def _to_rgb(image: Image.Image, backdrop: str = "white") -> Image.Image:
    if image.mode == "RGB":
        return image
    if _has_alpha_mode(image):
        return _on(image, backdrop)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit and 32-bit grey: scale to 8 bits instead of clipping everything to white.
        return image.point(lambda v: v / 256).convert("L").convert("RGB")
    return image.convert("RGB")


# Pillow's bomb guard is one process-wide number that warns at that many pixels and fails at twice as
# many; changing it per call (or turning its warning into an error with ``warnings.catch_warnings``) is
# not thread-safe, and records of a batch are decoded at once. So it is set once, out of the way, and
# ``probe`` holds every image to MAX_PIXELS exactly, from the header's width x height, before any pixel
# is decoded.
Image.MAX_IMAGE_PIXELS = None


def probe(data: bytes, max_pixels: int) -> Probe:
    """The header's facts, or the ``InputRejected`` a decode would raise for them (no pixel decoded)."""
    if not data:
        raise InputRejected("empty_object", "the object is empty (0 bytes)")
    with _rejections(data, max_pixels):
        _register_heif_if_needed(data)
        image = Image.open(io.BytesIO(data))  # reads the header only
        width, height = image.size
        if width * height > max_pixels:
            raise Image.DecompressionBombError("too many pixels")
        fmt = (image.format or "").lower()
        return Probe("heic" if fmt == "heif" else fmt, width, height, image.mode, getattr(image, "n_frames", 1))


def decode(data: bytes, max_pixels: int, sha256: str | None = None, frames: FrameLimits | None = None) -> DecodedImage:
    """``sha256``: the bytes' digest when the caller has it already (hashing a large file twice costs).
    ``frames``: how many frames of an animation to sample (default: the first only)."""
    if not data:
        raise InputRejected("empty_object", "the object is empty (0 bytes)")
    with _rejections(data, max_pixels):
        _register_heif_if_needed(data)
        decoded = _decode(data, max_pixels, frames)
    if sha256 is not None:
        decoded.__dict__["sha256"] = sha256  # what the cached_property would compute
    return decoded


@contextmanager
def _rejections(data: bytes, max_pixels: int) -> Iterator[None]:
    """Every way a decoder fails on a file, as the contract's rejection; a MemoryError passes through."""
    try:
        yield
    except (InputRejected, MemoryError):
        raise
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
    except Exception as exc:
        # A decoder's own crash on this file (libheif's RuntimeError, a plugin's IndexError, struct.error):
        # the same bytes would crash it again, so it is a rejection, never a retry.
        reason = " ".join(str(exc).split())[:200] or "no message"
        raise InputRejected(
            "truncated", f"the image cannot be decoded (the decoder failed: {type(exc).__name__}: {reason})"
        ) from None


def _decode(data: bytes, max_pixels: int, limits: FrameLimits | None) -> DecodedImage:
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
    # A JPEG that draft mode decoded at a reduced scale is kept for the vendors' copies; its master is made
    # from the file only if a vendor needs more than that.
    reduced = image.format == "JPEG" and image.size != (width, height)
    first = _bounded_frame(image, orientation, MASTER_MAX_PIXELS)
    animated = frames > 1 and limits is not None and ("heic" if fmt == "heif" else fmt) in MULTI_FRAME_FORMATS
    if animated and first is image:
        # The frame views seek the decoder's image on to later frames: a master that was that image would
        # show the last frame decoded, not the first.
        first = image.copy()
    backdrop = best_backdrop(first) if is_transparent(first) else None
    pdq_source = _pdq_source(first) if mode in _PDQ_OWN_COPY else None
    working_size = _fitted(first.size, WORKING_SIDE)

    def make_working() -> Image.Image:
        return _to_rgb(first.resize(working_size, Image.Resampling.BILINEAR, reducing_gap=1.0), backdrop or "white")

    if reduced:
        draft = _to_rgb(first)
        master = _Master(load=lambda: _jpeg_master(data, orientation))
        working = _Master(load=make_working, size=working_size)
    elif first.size != working_size or first.mode != "RGB":
        draft = None
        master = _Master(first)
        working = _Master(load=make_working, size=working_size)
    else:
        # Already the working size: one copy is both (resizing to the same size copies).
        draft = None
        working = _Master(make_working())
        master = _Master(working.get())
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
        _working=working,
        draft=draft,
        backdrop=backdrop,
        pdq_source=pdq_source,
        _master=master,
    )
    if animated and limits is not None:
        views, unreadable = _frame_views(image, decoded, orientation, limits)
        object.__setattr__(decoded, "views", views)  # built after the file's image, which they point back at
        object.__setattr__(decoded, "frames_unreadable", unreadable)
    return decoded


def _bounded_frame(image: Image.Image, orientation: int | None, pixels: int) -> Image.Image:
    """The loaded frame upright, in a mode that resizes well, within ``pixels``: what copies are made from.

    Palette and bilevel images are converted first (resizing them would pick pixels, not average them).
    A large frame is shrunk by a whole factor (``reduce``: one pass, no intermediate image, a box average),
    so that next to the full-size decode only the bounded copy is ever allocated; it is rotated after."""
    if image.mode in ("P", "PA", "1"):
        image = image.convert("RGBA" if _has_alpha_mode(image) else "RGB")
    width, height = image.size
    if width * height > pixels:
        factor = math.ceil(math.sqrt(width * height / pixels))
        try:
            image = image.reduce(factor)
        except ValueError:  # a mode reduce does not take
            image = image.resize(_within_pixels(image.size, pixels), Image.Resampling.BOX)
    # exif_transpose copies even an upright image: only rotate what needs it.
    if orientation in range(2, 9):
        image = ImageOps.exif_transpose(image)
    return image


def _pdq_source(image: Image.Image) -> Image.Image:
    """What the PDQ reference hashes, ``convert("RGB")`` (transparency dropped, not laid on a backdrop),
    made small from the bounded copy."""
    # Converted first: resizing with an alpha channel would weight each colour by its opacity, and the
    # reference keeps the colour under even a fully transparent pixel.
    rgb = image.convert("RGB")
    return rgb.resize(_fitted(rgb.size, PDQ_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _jpeg_master(data: bytes, orientation: int | None) -> Image.Image:
    """A JPEG's master, decoded on demand at the smallest scale that still holds MASTER_MAX_PIXELS."""
    image = Image.open(io.BytesIO(data))
    side = int(MASTER_MAX_PIXELS**0.5)
    image.draft("RGB", (side, side))
    image.load()
    return _to_rgb(_bounded_frame(image, orientation, MASTER_MAX_PIXELS))


def _frame_views(
    image: Image.Image, file: DecodedImage, orientation: int | None, limits: FrameLimits
) -> tuple[tuple[DecodedImage, ...], tuple[int, ...]]:
    """The sampled frames as images of their own, and the indexes of those that could not be decoded.
    Frames are decoded in order (delta-coded formats need the frames before); a frame that fails to decode
    ends the scan, and it and the sampled frames after it are unreadable rather than failing the file
    whose first frames are fine (the result says so: it is ``partial``)."""
    canvas = max(1, image.width * image.height)
    scan = max(1, min(limits.scan_limit, FRAME_SCAN_PIXELS // canvas))
    wanted = sample_frames(file.frames, FrameLimits(limits.samples, scan))
    views: list[DecodedImage] = []
    for index in wanted:
        try:
            image.seek(index)
            image.load()
        except MemoryError:
            raise
        except Exception:
            if index == 0:
                raise
            break
        views.append(_frame_view(image, file, orientation, index))
    return tuple(views), tuple(wanted[len(views) :])


def _frame_view(image: Image.Image, file: DecodedImage, orientation: int | None, index: int) -> DecodedImage:
    frame = _bounded_frame(image, orientation, FRAME_MAX_SIDE * FRAME_MAX_SIDE)
    if max(frame.size) > FRAME_MAX_SIDE:
        frame = frame.resize(_fitted(frame.size, FRAME_MAX_SIDE), Image.Resampling.BOX, reducing_gap=2.0)
    backdrop = best_backdrop(frame) if is_transparent(frame) else None
    pdq_source = _pdq_source(frame) if frame.mode in _PDQ_OWN_COPY else None
    flat = _to_rgb(frame, backdrop or "white")
    if flat is image:
        # An upright RGB frame within the bounds comes through _bounded_frame and _to_rgb as the decoder's
        # image itself, which _frame_views then seeks on: this view's master (what every vendor copy over
        # the working size is made from) would show the last frame decoded. The view owns its pixels.
        flat = image.copy()
    out = io.BytesIO()
    # Lossless and deterministic: the same frame always gives the same bytes, hence the same cache key.
    flat.save(out, format="PNG", compress_level=1)
    working = flat.resize(_fitted(flat.size, WORKING_SIDE), Image.Resampling.BILINEAR, reducing_gap=1.0)
    return DecodedImage(
        data=out.getvalue(),
        format="png",
        width=flat.width,
        height=flat.height,
        mode=frame.mode,  # as decoded: which copy PDQ reads depends on it
        frames=1,
        orientation=None,
        _working=_Master(working),
        pdq_source=pdq_source,
        frame_index=index,
        source=file,
        _master=_Master(flat),
    )
