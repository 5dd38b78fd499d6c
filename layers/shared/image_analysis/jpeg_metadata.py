"""A JPEG's metadata taken out without touching its pixels.

A vendor that takes the original JPEG is sent a copy without what ``STRIP_METADATA`` keeps from it (EXIF
with GPS and camera details, XMP, comments, Photoshop records), and a photo that needs nothing else is
not decoded and re-encoded for that: the segments are dropped from the file as it is. That is lossless
and takes microseconds where a re-encode costs milliseconds and a generation of JPEG loss.

No library we ship does this (Pillow writes metadata but only removes it by re-encoding), so the marker
walk is here, after ITU-T T.81 annex B: segments up to the first scan, then the scans, whose
entropy-coded data holds no marker but restarts (``FF D0``-``FF D7``) and stuffed ``FF 00``.
"""

from __future__ import annotations

# Kept: JFIF/JFXX (APP0), an ICC colour profile (APP2 "ICC_PROFILE"), Adobe's colour transform (APP14),
# which decoders need to show the colours right. Dropped: every other application segment (APP1 EXIF
# and XMP, APP2 multi-picture data, APP13 Photoshop/IPTC, vendors' own) and comments (COM).
_APP0, _APP2, _APP14, _COM = 0xE0, 0xE2, 0xEE, 0xFE
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and the restarts carry no length


def without_metadata(data: bytes) -> bytes | None:
    """``data`` without its metadata segments and whatever follows the image's end (a trailer, the
    extra pictures of a multi-picture file); None when the file is not a JPEG this walk can read to its
    end, so that the caller re-encodes it instead."""
    if not data.startswith(b"\xff\xd8"):
        return None
    out = bytearray(b"\xff\xd8")
    at, size = 2, len(data)
    while at < size:
        if data[at] != 0xFF:
            return None
        while at < size and data[at] == 0xFF:  # fill bytes may precede a marker
            at += 1
        if at >= size:
            return None
        marker = data[at]
        at += 1
        if marker == _EOI:
            out += b"\xff\xd9"
            return bytes(out)
        if marker in _STANDALONE or marker == _SOI:
            return None  # outside a scan these mean a file this walk does not understand
        if at + 2 > size:
            return None
        length = int.from_bytes(data[at : at + 2])
        end = at + length
        if length < 2 or end > size:
            return None
        if _kept(marker, data[at + 2 : end]):
            out += bytes((0xFF, marker)) + data[at:end]
        at = end
        if marker == _SOS:
            scan_end = _scan_end(data, at)
            if scan_end is None:
                return None
            out += data[at:scan_end]
            at = scan_end
    return None  # no end-of-image marker: cut off


def _kept(marker: int, body: bytes) -> bool:
    if marker == _COM:
        return False
    if 0xE0 <= marker <= 0xEF:
        if marker == _APP2:
            return body.startswith(b"ICC_PROFILE\x00")
        return marker in (_APP0, _APP14)
    return True


def _scan_end(data: bytes, at: int) -> int | None:
    """Where the entropy-coded data that starts at ``at`` ends: the next marker that is not a restart."""
    while True:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= len(data):
            return None
        following = data[at + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            at += 2
            continue
        if following == 0xFF:  # fill before a marker
            at += 1
            continue
        return at
