"""ImageRecognize API v2 (https://imagerecognize.com/api/v2/): objects, celebrities, faces, text and NSFW.

One ``POST /api/v2/`` (with its trailing slash: without it the API answers 300 "Invalid request, no data
received") per recognizer: the docs take exactly one ``type`` per request, so every selected type is a
request of its own. The multipart form carries ``apikey``, ``type``, the image as ``file`` (named by the
opaque object id, never the S3 key) and the options the docs require for that type:
``max_labels``/``min_confidence`` for ``objects``, ``nsfw_min_confidence`` for ``nsfw``.

Docs, "file": "The image must be in PNG, JPG or JPEG format." and 413: "Max size is 50Mb." Other formats,
and anything larger, are converted first (``DecodedImage.encoded_for``).

Settings (environment): ``IMAGERECOGNIZE_BASE_URL`` (scheme://host[:port], default
https://imagerecognize.com), ``IMAGERECOGNIZE_TYPES`` (comma list of objects, celebrities, detect_faces,
detect_text, nsfw; default ``objects,nsfw``), ``IMAGERECOGNIZE_MAX_LABELS`` (int > 0, default 20),
``IMAGERECOGNIZE_MIN_CONFIDENCE`` and ``IMAGERECOGNIZE_NSFW_MIN_CONFIDENCE`` (int 0..100, defaults 55 and
50), ``IMAGERECOGNIZE_MAX_CONCURRENCY`` (default 2: the selected types of one image are sent concurrently, at
most that many at a time, on the shared client; each image in flight has its own allowance).

Every answer carries its status in the body (``{"status": 401, "status_message": "APIkey invalid",
"data": null}``; success ``{"status": 200, "message": "Success", "data": {...}}``). The body status wins
over the HTTP one and is mapped once, in ``STATUS_KINDS``.

Normalization is pure (``normalize_*``): payload -> private payload model -> house models. Confidences
are on the vendor's 0-100 scale (the example: 99.87); boxes are already fractions of the image (the
example: ``{"x": 0.35, "y": 0.88, "width": 0.07, "height": 0.11}``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from image_analysis.errors import BadImageError, BadResponseError, ServerError
from image_analysis.models import Box, Detection, HouseCategory, Label, ModerationCategory, TextItem
from image_analysis.providers.base import (
    AnalysisRequest,
    Capability,
    Provider,
    ProviderDeps,
    ProviderOutput,
)
from image_analysis.providers.common import (
    PayloadError,
    ProviderKeys,
    aliased,
    base_url,
    guarded,
    parse,
    unexpected_payload,
)
from image_analysis.providers.common import VendorPayload as _Loose
from image_analysis.providers.common import int_setting as _int_setting
from image_analysis.providers.common import opaque_name as _opaque_name
from image_analysis.providers.fanout import EndpointPool, combine, fan_out
from image_analysis.providers.http import ErrorKind, VendorClient, VendorProfile

if TYPE_CHECKING:
    from image_analysis.credentials import Credentials
    from image_analysis.imaging import DecodedImage

PROVIDER = "imagerecognize"
PATH = "/api/v2/"

# Docs, "413": "Max size is 50Mb." Read as 50,000,000 bytes, the smaller of the two readings of "Mb".
MAX_UPLOAD_BYTES = 50_000_000

# ---------------------------------------------------------------------------------------------------
# Types (the docs' "type" table; ``cache`` is GET-only and not an analysis)


@dataclass(frozen=True)
class _Type:
    capabilities: frozenset[Capability]


TYPES: Mapping[str, _Type] = {
    "objects": _Type(frozenset({"labels", "objects"})),
    "celebrities": _Type(frozenset({"celebrities"})),
    "detect_faces": _Type(frozenset({"faces"})),
    "detect_text": _Type(frozenset({"text"})),
    "nsfw": _Type(frozenset({"moderation"})),
}
DEFAULT_TYPES = ("objects", "nsfw")

# Required options (docs: "If 'type' is 'objects'" / "If 'type' is 'nsfw'"). The docs give no defaults;
# these are Amazon Rekognition's DetectLabels (55) and DetectModerationLabels (50) defaults, whose
# parameters (MaxLabels, MinConfidence) and label names these resemble. The house thresholds decide flags.
DEFAULT_MAX_LABELS = 20
DEFAULT_MIN_CONFIDENCE = 55
DEFAULT_NSFW_MIN_CONFIDENCE = 50

# ---------------------------------------------------------------------------------------------------
# Status codes: the one table (docs, "2. Response"; the body status wins over the HTTP one)
#
#   300 "Invalid request, no data received"  "Did you call the correct URL? Note the slash at the end"
#                                            -> bad_response, not retried: our URL is wrong
#   400 "APIkey missing"                     -> auth: no key was sent (an empty secret entry)
#   401 "APIkey invalid"                     -> auth
#   402 "Quota limit reached"                -> quota_exhausted
#   412 "Invalid file"                       -> bad_image ("an invalid coded file")
#   413 "Image size too large"               -> bad_image ("Max size is 50Mb")
#   415 "Invalid file format"                -> bad_image ("Only PNG, JPG and JPEG files are supported")
#   420 "Invalid type"                       -> bad_response, not retried: the adapter sent a bad type
#   430 <a message naming the parameter>     -> bad_response, not retried: "an invalid or missing
#                                               parameter for the specified type"
# Anything else falls to the shared table (429 rate_limited, 5xx server_error, other 4xx bad_response).
STATUS_KINDS: Mapping[int, ErrorKind] = {
    300: "bad_response",
    400: "auth",
    401: "auth",
    402: "quota_exhausted",
    412: "bad_image",
    413: "bad_image",
    415: "bad_image",
    420: "bad_response",
    430: "bad_response",
}

# ---------------------------------------------------------------------------------------------------
# Moderation mapping: NSFW recognizer label (lower case) -> house category.
#
# The docs show no nsfw answer. The API's shape (type names, max_labels/min_confidence, 0-100
# confidences, label names such as "Car"/"Pedestrian", boxes as fractions) matches Amazon Rekognition, so
# the table covers Rekognition's moderation taxonomy: the top-level categories of v6 and v7 and the
# common second-level ones. Unverified against a real answer: anything else is kept as "other" with its
# source label (``normalize_nsfw``), never dropped. Rude gestures and gambling have no house category.
NSFW_CATEGORIES: Mapping[str, HouseCategory] = {
    # explicit
    "explicit nudity": "explicit",
    "explicit": "explicit",
    "nudity": "explicit",
    "graphic male nudity": "explicit",
    "graphic female nudity": "explicit",
    "sexual activity": "explicit",
    "illustrated explicit nudity": "explicit",
    "adult toys": "explicit",
    "exposed male genitalia": "explicit",
    "exposed female genitalia": "explicit",
    "exposed buttocks or anus": "explicit",
    "exposed female nipple": "explicit",
    "explicit sexual activity": "explicit",
    "nsfw": "explicit",
    # suggestive
    "suggestive": "suggestive",
    "non-explicit nudity of intimate parts and kissing": "suggestive",
    "non-explicit nudity": "suggestive",
    "swimwear or underwear": "suggestive",
    "female swimwear or underwear": "suggestive",
    "male swimwear or underwear": "suggestive",
    "partial nudity": "suggestive",
    "barechested male": "suggestive",
    "revealing clothes": "suggestive",
    "sexual situations": "suggestive",
    "kissing on the lips": "suggestive",
    # violence (graphic and disturbing content)
    "violence": "violence",
    "graphic violence": "violence",
    "graphic violence or gore": "violence",
    "physical violence": "violence",
    "weapon violence": "violence",
    "weapons": "violence",
    "self injury": "violence",
    "visually disturbing": "violence",
    "death and emaciation": "violence",
    "emaciated bodies": "violence",
    "corpses": "violence",
    "crashes": "violence",
    "air crash": "violence",
    "explosions and blasts": "violence",
    # drugs, tobacco and alcohol
    "drugs": "drugs",
    "drugs & tobacco": "drugs",
    "drug products": "drugs",
    "drug use": "drugs",
    "pills": "drugs",
    "drug paraphernalia": "drugs",
    "tobacco": "drugs",
    "tobacco products": "drugs",
    "smoking": "drugs",
    "alcohol": "drugs",
    "drinking": "drugs",
    "alcoholic beverages": "drugs",
    # hate
    "hate symbols": "hate",
    "nazi party": "hate",
    "white supremacy": "hate",
    "extremist": "hate",
    # no house category of their own
    "rude gestures": "other",
    "middle finger": "other",
    "gambling": "other",
    # safe
    "safe": "safe",
}

# ---------------------------------------------------------------------------------------------------
# Body hooks for the HTTP layer


def _body_status(body: Any) -> int | None:
    """The ``status`` a body carries (docs: "status - HTTP response status code"), as an int."""
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if isinstance(status, bool):
        return None
    if isinstance(status, int):
        return status
    if isinstance(status, str) and status.strip().isdigit():
        return int(status.strip())
    return None


def _data_error(body: Any) -> str | None:
    """``data.error`` when it reports a failure: docs, "either '0' if there was no error or it contains a
    brief error description"."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None
    error = data.get("error", 0)
    if error in (0, "0", None, "", False):
        return None
    return str(error)


# ``data.error`` is "a brief error description" of what went wrong with this request. Unless it reads as a
# passing fault of the vendor's, it is about the image or the request, which another try cannot change.
_TRANSIENT_WORDS = (
    "timeout", "timed out", "temporar", "try again", "retry", "unavailable", "overload", "busy",
    "rate limit", "too many", "server error", "internal error", "maintenance", "later",
)  # fmt: skip


def _is_transient(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _TRANSIENT_WORDS)


def _data_error_kind(body: Any) -> ErrorKind | None:
    failure = _data_error(body)
    if failure is None:
        return None
    return "server_error" if _is_transient(failure) else "bad_image"


def _body_failed(body: Any) -> bool:
    """A 2xx answer that is not a JSON object, or whose ``data.error`` is not 0, reports a failure. A
    success without data (null or absent) is an empty answer, left to the normalizers."""
    if not isinstance(body, dict):
        return True
    return _data_error(body) is not None


def _error_text(body: Any) -> str | None:
    """Errors put their reason in ``status_message``; a failed 2xx in ``data.error``. ``message`` (what
    success uses, "Success") comes last, so that it never hides a reason."""
    if not isinstance(body, dict):
        return None
    value = body.get("status_message")
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict | list) and value:
        return str(value)[:300]
    failure = _data_error(body)
    if failure is not None:
        return failure
    message = body.get("message")
    return message if isinstance(message, str) and message.strip() else None


PROFILE = VendorProfile(
    provider=PROVIDER,
    hints={
        "auth": "check api_key in the provider secret (IMAGERECOGNIZE_API_KEY locally): 400 means no key was "
        "sent, 401 that it is invalid",
        "quota_exhausted": "the account's quota (the plan's preselected quota) is used up: raise the plan or "
        "route this capability to another provider",
        "bad_image": "ImageRecognize refused the file (412 invalid file, 413 larger than 50 MB, 415 not PNG or "
        "JPEG); it is not retried",
        "refused": "the request does not match the API: 300 means no data arrived (IMAGERECOGNIZE_BASE_URL must "
        "be scheme://host only; the adapter posts to /api/v2/ with its trailing slash), 420 an invalid type "
        "(IMAGERECOGNIZE_TYPES), 430 an invalid or missing parameter (IMAGERECOGNIZE_MAX_LABELS, "
        "IMAGERECOGNIZE_MIN_CONFIDENCE, IMAGERECOGNIZE_NSFW_MIN_CONFIDENCE); it is not retried",
    },
    status_kinds=STATUS_KINDS,
    body_status=_body_status,
    body_failed=_body_failed,
    body_failure_kind=_data_error_kind,
    error_text=_error_text,
    base_url_setting="IMAGERECOGNIZE_BASE_URL",
)

# ---------------------------------------------------------------------------------------------------
# Private payload models: tolerant of added fields


class _Coordinates(_Loose):
    # The docs' example: {"x", "y", "width", "height"} as fractions; Rekognition-style names accepted too
    # (``_COORDINATE_NAMES``).
    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None


class _Item(_Loose):
    # Docs: each identified object is {name, confidence, coordinates}. A text, a face or an NSFW label may
    # carry its words or its label under another name (``_ITEM_NAMES``); an item missing what its section
    # needs is left out by the normalizer, not fatal.
    name: str | None = None
    confidence: float | None = None
    coordinates: list[_Coordinates | None] | None = None


# The spellings each field is accepted under, the first present winning (read by ``_item``).
_COORDINATE_NAMES: Mapping[str, tuple[str, ...]] = {
    "x": ("x", "left", "Left"),
    "y": ("y", "top", "Top"),
    "width": ("width", "Width", "w"),
    "height": ("height", "Height", "h"),
}
_ITEM_NAMES: Mapping[str, tuple[str, ...]] = {
    "name": ("name", "label", "Name", "text", "DetectedText", "value", "class"),
    "confidence": ("confidence", "Confidence", "score", "probability"),
    "coordinates": ("coordinates", "box", "bbox", "bounding_box", "BoundingBox"),
}


def _item(raw: Any) -> _Item:
    """One finding read into ``_Item``: its fields under their own names, one box as a list of one."""
    item = aliased(raw, _ITEM_NAMES)
    if isinstance(item, dict):
        boxes = item.get("coordinates")
        if isinstance(boxes, dict):
            boxes = [boxes]
        if isinstance(boxes, list):
            item["coordinates"] = [aliased(box, _COORDINATE_NAMES) for box in boxes]
    return parse(item, _Item)


class _Data(_Loose):
    error: int | float | str | bool | None = 0
    # Docs: "type - Returns the requested type"; an answer without it is read as the type asked for.
    type: str | None = None
    quota: int | float | str | None = None


class _Envelope(_Loose):
    status: int | str | None = None
    # An answer whose status says success but whose data is null or absent found nothing.
    data: dict[str, Any] | None = None


# Docs, "2.1 data": "objects - The results containing an array of identified objects", the only key
# documented, for every type. The other names are where a recognizer's own findings would plausibly sit
# (its type, or what Rekognition, whose names these types follow, calls them); the first present wins.
RESULT_KEYS: Mapping[str, tuple[str, ...]] = {
    "objects": ("objects", "labels", "results"),
    "celebrities": ("objects", "celebrities", "celebrity_faces", "faces", "results"),
    "detect_faces": ("objects", "faces", "detect_faces", "face_details", "results"),
    "detect_text": ("objects", "text", "texts", "detect_text", "text_detections", "lines", "words", "results"),
    "nsfw": ("objects", "nsfw", "labels", "moderation_labels", "categories", "results"),
}
# ``data.type`` echoes the type; these other spellings of the same type are accepted.
TYPE_ALIASES: Mapping[str, frozenset[str]] = {
    "objects": frozenset({"objects", "object", "labels"}),
    "celebrities": frozenset({"celebrities", "celebrity"}),
    "detect_faces": frozenset({"detect_faces", "faces", "face", "detect_face"}),
    "detect_text": frozenset({"detect_text", "text", "texts"}),
    "nsfw": frozenset({"nsfw", "moderation"}),
}


# ---------------------------------------------------------------------------------------------------
# Pure normalization


def _raw_items(found: Any, kind: str) -> list[Any]:
    """The findings as a list: a list as it is, ``{name: confidence}`` as items, text as its lines."""
    if found is None:
        return []
    if isinstance(found, list):
        return found
    if isinstance(found, str):
        return [line for line in found.splitlines() if line.strip()]
    if isinstance(found, dict):
        if found and all(isinstance(v, int | float) and not isinstance(v, bool) for v in found.values()):
            return [{"name": k, "confidence": v} for k, v in found.items()]
        return [found]  # one finding given as an object
    raise BadResponseError(PROVIDER, f"{kind}: the findings are a {type(found).__name__}, not a list")


def _items(payload: Any, kind: str) -> list[_Item | str]:
    """The findings of a successful answer for ``kind``; a failed or unusable answer raises.

    A status other than 2xx or a ``data.type`` that names another type is a ``BadResponseError``; a
    ``data.error`` other than 0 a ``BadImageError`` (or a ``ServerError`` when it reads as a passing fault).
    A result key present with nothing in it (``objects: []`` or null) is an empty answer: the recognizer
    found nothing. ``data`` holding none of the result keys we know (or no ``data`` at all) is a
    ``BadResponseError``, never an empty section: a moderation answer we cannot read is no verdict of "safe".
    """
    if not isinstance(payload, dict):
        raise BadResponseError(PROVIDER, f"{kind}: the answer is not a JSON object; the API may have changed")
    status = _body_status(payload)
    if status is not None and not 200 <= status < 300:
        raise BadResponseError(PROVIDER, f"{kind}: the answer has status {status}, not 200")
    failure = _data_error(payload)
    if failure is not None:
        reason = " ".join(failure.split())[:200]
        error = ServerError if _is_transient(failure) else BadImageError
        raise error(PROVIDER, f'{kind}: the answer reports an error: "{reason}"')
    try:
        envelope = parse(payload, _Envelope)
        data = envelope.data
        if data is None or not any(k in data for k in RESULT_KEYS[kind]):
            held = ", ".join(sorted(data)[:8]) if data else "no data"
            raise BadResponseError(
                PROVIDER,
                f"{kind}: the answer holds none of the result keys we know ({', '.join(RESULT_KEYS[kind])}; "
                f"it has {held}); the API may have changed",
            )
        answered = parse(data, _Data).type
    except PayloadError as exc:
        raise unexpected_payload(PROVIDER, exc, kind) from None
    if answered is not None and answered.strip().lower() not in TYPE_ALIASES[kind]:
        raise BadResponseError(PROVIDER, f"{kind}: the answer is for type {answered[:40]!r}, not the one asked for")
    found = next((data[k] for k in RESULT_KEYS[kind] if data.get(k) is not None), None)
    items: list[_Item | str] = []
    for raw in _raw_items(found, kind):
        if isinstance(raw, str):
            items.append(raw)
            continue
        try:
            items.append(_item(raw))
        except PayloadError as exc:
            raise unexpected_payload(PROVIDER, exc, kind, what="finding", where="item") from None
    return items


def _unit(percent: float, kind: str) -> float:
    """The 0-100 scale as 0..1, rounded; values a rounding error outside the range are clamped."""
    if not math.isfinite(percent) or not -0.01 <= percent <= 100.01:
        raise BadResponseError(PROVIDER, f"{kind}: confidence {percent!r} is outside 0-100")
    return round(min(max(percent, 0.0), 100.0) / 100.0, 6)


def _box(coords: _Coordinates | None) -> Box | None:
    """A box in fractions of the image, clamped to it; None when the coordinates cannot make one (missing
    values, pixel-like values: the image size the vendor measured in is not known here)."""
    if coords is None:
        return None
    x, y, w, h = coords.x, coords.y, coords.width, coords.height
    if x is None or y is None or w is None or h is None or not all(map(math.isfinite, (x, y, w, h))):
        return None
    if not (-0.5 <= x <= 1.0 and -0.5 <= y <= 1.0 and 0.0 <= w <= 1.5 and 0.0 <= h <= 1.5):
        return None
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, 1.0), min(y + h, 1.0)
    if right < left or bottom < top:
        return None
    return Box(x=round(left, 6), y=round(top, 6), width=round(right - left, 6), height=round(bottom - top, 6))


def _boxes(item: _Item) -> list[Box]:
    return [box for c in item.coordinates or [] if (box := _box(c)) is not None]


def _scored(items: list[_Item | str], kind: str) -> list[tuple[str, float, _Item]]:
    """(name, 0..1 confidence, item) of the items that have both: the others cannot be a label."""
    scored = []
    for item in items:
        if isinstance(item, str) or item.confidence is None:
            continue
        name = (item.name or "").strip()
        if name:
            scored.append((name, _unit(item.confidence, kind), item))
    return scored


_WHOLE_IMAGE = Box(x=0.0, y=0.0, width=1.0, height=1.0)


@guarded(PROVIDER, "objects")
def normalize_objects(payload: Any) -> tuple[list[Label], list[Detection]]:
    """objects -> labels (a name once, at its highest confidence, highest first) and, for every usable box
    given, an object detection with that name."""
    best: dict[str, float] = {}
    detections = []
    for name, confidence, item in _scored(_items(payload, "objects"), "objects"):
        best[name] = max(confidence, best.get(name, 0.0))
        detections += [Detection(name=name, confidence=confidence, box=b, provider=PROVIDER) for b in _boxes(item)]
    labels = [
        Label(name=name, confidence=conf, provider=PROVIDER)
        for name, conf in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return labels, sorted(detections, key=lambda d: -d.confidence)


@guarded(PROVIDER, "celebrities")
def normalize_celebrities(payload: Any) -> list[Detection]:
    """celebrities -> one detection per box; a recognized person without a box gets the whole image
    (the identity is the finding; the place is unknown)."""
    found = []
    for name, confidence, item in _scored(_items(payload, "celebrities"), "celebrities"):
        boxes = _boxes(item) or [_WHOLE_IMAGE]
        found.extend(Detection(name=name, confidence=confidence, box=box, provider=PROVIDER) for box in boxes)
    return sorted(found, key=lambda d: -d.confidence)


@guarded(PROVIDER, "detect_faces")
def normalize_faces(payload: Any) -> list[Detection]:
    """detect_faces -> face boxes. A face is where it is: one without a usable box or a confidence is left
    out. Names are not kept: a face detection says where a face is, not who (that is ``celebrities``)."""
    faces = []
    for item in _items(payload, "detect_faces"):
        if isinstance(item, str) or item.confidence is None:
            continue
        confidence = _unit(item.confidence, "detect_faces")
        faces += [Detection(name=None, confidence=confidence, box=b, provider=PROVIDER) for b in _boxes(item)]
    return sorted(faces, key=lambda d: -d.confidence)


@guarded(PROVIDER, "detect_text")
def normalize_text(payload: Any) -> list[TextItem]:
    """detect_text -> text items in the order given (reading order): the text in ``name`` (or ``text``),
    or plain strings; confidence and box when given."""
    texts = []
    for item in _items(payload, "detect_text"):
        if isinstance(item, str):
            texts.append(TextItem(text=item.strip(), provider=PROVIDER))
            continue
        text = (item.name or "").strip()
        if not text:
            continue
        confidence = None if item.confidence is None else _unit(item.confidence, "detect_text")
        boxes: list[Box | None] = list(_boxes(item)) or [None]
        texts.extend(TextItem(text=text, confidence=confidence, box=box, provider=PROVIDER) for box in boxes)
    return texts


@guarded(PROVIDER, "nsfw")
def normalize_nsfw(payload: Any) -> list[ModerationCategory]:
    """nsfw -> house categories through ``NSFW_CATEGORIES``; an unknown label lands in "other"."""
    categories = [
        ModerationCategory(
            name=NSFW_CATEGORIES.get(source.lower(), "other"),
            confidence=confidence,
            provider=PROVIDER,
            source_label=source,
        )
        for source, confidence, _ in _scored(_items(payload, "nsfw"), "nsfw")
    ]
    return sorted(categories, key=lambda c: -c.confidence)


def normalize(kind: str, payload: Any) -> ProviderOutput:
    """One type's payload as a ProviderOutput (with the payload kept in ``raw`` under the type)."""
    raw = {kind: payload}
    if kind == "objects":
        labels, objects = normalize_objects(payload)
        return ProviderOutput(labels=labels, objects=objects, raw=raw)
    if kind == "celebrities":
        return ProviderOutput(celebrities=normalize_celebrities(payload), raw=raw)
    if kind == "detect_faces":
        return ProviderOutput(faces=normalize_faces(payload), raw=raw)
    if kind == "detect_text":
        return ProviderOutput(text=normalize_text(payload), raw=raw)
    if kind == "nsfw":
        return ProviderOutput(moderation=normalize_nsfw(payload), raw=raw)
    raise ValueError(f"unknown ImageRecognize type {kind!r}")


def merge_outputs(outputs: list[ProviderOutput]) -> ProviderOutput:
    """Type outputs fill disjoint sections; put them together."""
    return combine(outputs)


# ---------------------------------------------------------------------------------------------------
# Configuration


def _types(raw: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in TYPES]
    if unknown:
        raise ValueError(f"IMAGERECOGNIZE_TYPES has unknown {', '.join(unknown)}; known: {', '.join(TYPES)}")
    return tuple(dict.fromkeys(names)) or DEFAULT_TYPES


# ---------------------------------------------------------------------------------------------------
# The provider


class ImageRecognizeProvider(Provider):
    name: ClassVar[str] = PROVIDER
    env_prefix: ClassVar[str] = "IMAGERECOGNIZE_"
    default_base_url: ClassVar[str] = "https://imagerecognize.com"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"labels", "objects", "celebrities", "faces", "text", "moderation"}
    )
    enabled_by: ClassVar[str] = "IMAGERECOGNIZE_TYPES"
    price_per_call: ClassVar[float] = 0.0  # the seed documents no price: IMAGERECOGNIZE_PRICE_PER_CALL
    accepted_formats: ClassVar[frozenset[str]] = frozenset({"jpeg", "png"})
    max_upload_bytes: ClassVar[int] = MAX_UPLOAD_BYTES
    # 2: an answer without a known result key is a bad response (was an empty section); data.error is about
    # the image unless it reads as passing; partial answers kept.
    normalizer_version: ClassVar[str] = "2"

    def __init__(
        self,
        client: VendorClient,
        credentials: Credentials,
        *,
        types: tuple[str, ...] = DEFAULT_TYPES,
        max_labels: int = DEFAULT_MAX_LABELS,
        min_confidence: int = DEFAULT_MIN_CONFIDENCE,
        nsfw_min_confidence: int = DEFAULT_NSFW_MIN_CONFIDENCE,
        max_concurrency: int = 2,
        analyses: int = 10,
    ) -> None:
        self.client = client
        self.types = types
        self.max_labels = max_labels
        self.min_confidence = min_confidence
        self.nsfw_min_confidence = nsfw_min_confidence
        self.max_concurrency = max(1, max_concurrency)
        self.enabled: frozenset[Capability] = frozenset().union(*(TYPES[t].capabilities for t in types))
        self._keys = ProviderKeys(credentials, PROVIDER, self.env_prefix, self.credential_fields)
        # Requests of one analysis at once; each record in flight (RECORD_CONCURRENCY) has its own allowance.
        self._requests = EndpointPool(PROVIDER, self.max_concurrency, analyses)

    @classmethod
    def create(cls, deps: ProviderDeps) -> ImageRecognizeProvider:
        settings = deps.settings
        prefix = cls.env_prefix
        base_url = _base_url(settings.vendor(prefix, "BASE_URL", cls.default_base_url))
        return cls(
            VendorClient.from_deps(PROFILE, deps, base_url),
            deps.credentials,
            types=_types(settings.vendor(prefix, "TYPES", ",".join(DEFAULT_TYPES))),
            # Docs: "max_labels int > 0"; the upper bound is ours.
            max_labels=_int_setting(
                settings.vendor(prefix, "MAX_LABELS"), "IMAGERECOGNIZE_MAX_LABELS", 1, 1000, DEFAULT_MAX_LABELS
            ),
            # Docs: "min_confidence 0 <= int <= 100", "nsfw_min_confidence 0 <= int <= 100".
            min_confidence=_int_setting(
                settings.vendor(prefix, "MIN_CONFIDENCE"),
                "IMAGERECOGNIZE_MIN_CONFIDENCE",
                0,
                100,
                DEFAULT_MIN_CONFIDENCE,
            ),
            nsfw_min_confidence=_int_setting(
                settings.vendor(prefix, "NSFW_MIN_CONFIDENCE"),
                "IMAGERECOGNIZE_NSFW_MIN_CONFIDENCE",
                0,
                100,
                DEFAULT_NSFW_MIN_CONFIDENCE,
            ),
            max_concurrency=_int_setting(
                settings.vendor(prefix, "MAX_CONCURRENCY"), "IMAGERECOGNIZE_MAX_CONCURRENCY", 1, 16, 2
            ),
            analyses=settings.record_concurrency,
        )

    # -- analyze ---------------------------------------------------------------------------------------

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        types = self.types_for(getattr(request, "capabilities", None))
        if not types:
            return ProviderOutput()  # nothing this provider was asked for: no paid call
        payload, mime = _prepare(request.image)
        file_name = _opaque_name(request.object_id) + (".png" if mime == "image/png" else ".jpg")
        return self._keys.call(lambda keys: self._analyze(types, keys["api_key"], request, payload, mime, file_name))

    def _analyze(
        self, types: tuple[str, ...], key: str, request: AnalysisRequest, payload: bytes, mime: str, file_name: str
    ) -> ProviderOutput:
        def call(kind: str) -> ProviderOutput:
            response = self.client.send(
                "POST",
                PATH,
                deadline=request.deadline,
                data={"apikey": key, **self.form(kind)},
                files={"file": (file_name, payload, mime)},
                secrets=(key,),
            )
            return normalize(kind, response.body)

        return fan_out(
            PROVIDER,
            types,
            call,
            capabilities=lambda kind: TYPES[kind].capabilities,
            executor=self._requests if self.max_concurrency > 1 else None,
        )

    def types_for(self, asked: frozenset[str] | None) -> tuple[str, ...]:
        """The configured types, narrowed to the capabilities routing asks of this provider (if any):
        every type is a paid request of its own."""
        if asked is None:
            return self.types
        return tuple(t for t in self.types if TYPES[t].capabilities & asked)

    def form(self, kind: str) -> dict[str, str]:
        """The form fields for one type besides the key: ``type`` and the options the docs require for it."""
        form = {"type": kind}
        if kind == "objects":
            form["max_labels"] = str(self.max_labels)
            form["min_confidence"] = str(self.min_confidence)
        elif kind == "nsfw":
            form["nsfw_min_confidence"] = str(self.nsfw_min_confidence)
        return form


def _prepare(image: DecodedImage) -> tuple[bytes, str]:
    """The upload: the original when it is PNG/JPEG within 50 MB (and, under the house metadata policy,
    carries no personal metadata), else a converted copy.

    Not downscaled: the docs state no size the recognizers need (only the 50 MB limit), and detect_text
    and detect_faces read small print and small faces that a smaller copy would lose; boxes come back as
    fractions, so they would survive a resize, but nothing documented says which size is enough.

    An image whose EXIF orientation rotates it is always re-encoded upright (an empty format set accepts
    no original), so that the boxes, fractions of what the vendor sees, refer to the image as displayed.
    """
    rotated = image.orientation not in (None, 1)
    formats = frozenset() if rotated else ImageRecognizeProvider.accepted_formats
    return image.encoded_for(formats, ImageRecognizeProvider.max_upload_bytes)


def _base_url(raw: str) -> str:
    return base_url(raw, "IMAGERECOGNIZE_BASE_URL", "/api/v2/")
