"""Imagga v2 (https://api.imagga.com/v2): tags, NSFW categories, colors, faces and text.

The image goes up as the multipart field ``image`` of a POST to each selected endpoint (the documented
``curl -F "image=@/path/to/image.jpg"`` form), named by the opaque object id, never the S3 key. Options
(``language``, ``limit``, ``threshold``, ``extract_object_colors``) go where the docs list them: in the
query string of the POST. Auth is HTTP Basic with ``api_key:api_secret`` (docs, "Authentication":
"Currently the only supported method for authentication is Basic").

Settings (environment): ``IMAGGA_BASE_URL`` (scheme://host[:port], default https://api.imagga.com),
``IMAGGA_ENDPOINTS`` (comma list of tags, nsfw, colors, faces, text; default ``tags,nsfw``),
``IMAGGA_LANGUAGE`` (default en), ``IMAGGA_TAGS_LIMIT`` (integer), ``IMAGGA_TAGS_THRESHOLD`` (Imagga's own
0-100 scale; "you cannot go lower than" 7), ``IMAGGA_MAX_CONCURRENCY`` (default 2).

The selected endpoints are called concurrently on the shared client (``fanout.fan_out``: the endpoints
that answered are kept when another fails, and the provider is ``partial``), at most ``IMAGGA_MAX_CONCURRENCY``
of one image's requests at a time: with the default two endpoints the provider takes one round trip
instead of two. Each image of a batch has its own allowance, so a batch's images wait for Imagga
side by side rather than in a queue (the time a container is billed for). Imagga's 429 means "You have
reached the concurrency limit of your current subscription plan" (``/usage`` reports a plan's
``concurrency.max``): ``IMAGGA_MAX_IN_FLIGHT`` caps the images a container has at Imagga at once, and
the trigger's ``MaximumConcurrency`` the containers. Set ``IMAGGA_MAX_CONCURRENCY`` to 1 for sequential
calls on a plan with a concurrency of one.

Normalization is pure (``normalize_*``): payload -> private payload struct -> house models.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from PIL import Image

from image_analysis.errors import BadImageError, BadResponseError
from image_analysis.models import Box, Color, Detection, HouseCategory, Label, ModerationCategory, TextItem
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
    base_url,
    guarded,
    parse,
    unexpected_payload,
)
from image_analysis.providers.common import VendorPayload as _Loose
from image_analysis.providers.common import opaque_name as _opaque_name
from image_analysis.providers.fanout import EndpointPool, combine, fan_out
from image_analysis.providers.http import VendorClient, VendorProfile

if TYPE_CHECKING:
    from image_analysis.credentials import Credentials
    from image_analysis.imaging import DecodedImage

PROVIDER = "imagga"

# ---------------------------------------------------------------------------------------------------
# Endpoints


@dataclass(frozen=True)
class _Endpoint:
    path: str
    capability: Capability


ENDPOINTS: Mapping[str, _Endpoint] = {
    "tags": _Endpoint("/v2/tags", "labels"),
    "nsfw": _Endpoint("/v2/categories/nsfw_beta", "moderation"),
    "colors": _Endpoint("/v2/colors", "colors"),
    "faces": _Endpoint("/v2/faces/detections", "faces"),
    "text": _Endpoint("/v2/text", "text"),
}
DEFAULT_ENDPOINTS = ("tags", "nsfw")

# Docs, "Best Practices / Images Size": "The API doesn't need more that 300px on the shortest side to
# provide you with the same great results." OCR (/text, "experimental") reads small print, so it gets
# the image at full size (within the byte limit) instead.
UPLOAD_SHORT_SIDE: Mapping[str, int | None] = {"tags": 300, "nsfw": 300, "colors": 300, "faces": 300, "text": None}

# /v2/tags "threshold": "By default all tags with confidence above 7 are being returned and you cannot go
# lower than that." A lower IMAGGA_TAGS_THRESHOLD would promise tags the vendor never sends.
TAGS_THRESHOLD_FLOOR = 7

# The seed documents no upload size or format list; JPEG and PNG are what every example sends.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

# ---------------------------------------------------------------------------------------------------
# Moderation mapping: nsfw_beta category name (``name.en``) -> house category.
#
# Docs, "Categorizers / NSFW Beta": "The three available categories are nsfw which means pornographic
# content, underwear which, as the name suggests, detects people in underwear, and safe which should
# mean there isn't any kind of nudity in the photo." (also /categorizers: labels nsfw, safe, underwear).
# "explicit" and "suggestive" are the classes of Imagga's newer Adult Content Detection model (Imagga
# blog, noted in shared/fixtures/SOURCES.md "Documented quirks"); mapped so a switch does not land
# them in "other". Anything else is kept as "other" with its source label.
NSFW_CATEGORIES: Mapping[str, HouseCategory] = {
    "nsfw": "explicit",
    "underwear": "suggestive",
    "safe": "safe",
    "explicit": "explicit",
    "suggestive": "suggestive",
}

# ---------------------------------------------------------------------------------------------------
# Status handling shared by the HTTP profile and the normalizers


def _status_of(body: Any) -> tuple[str | None, str]:
    """(status.type, status.text) of an Imagga body; type is None when there is no status object."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
        return None, ""
    status = body["status"]
    kind = status.get("type")
    text = status.get("text")
    return (kind.strip().lower() if isinstance(kind, str) else None), (text if isinstance(text, str) else "")


def _body_failed(body: Any) -> bool:
    """A 2xx whose ``status.type`` is not "success" reports a failure (retried: Imagga's own fault).

    A body without a status object is left to the normalizers: the legacy v1 envelope has none, and its
    ``unsuccessful`` list is a refusal of the image that another try cannot change.
    """
    kind, _ = _status_of(body)
    return kind is not None and kind != "success"


PROFILE = VendorProfile(
    provider=PROVIDER,
    hints={
        "auth": "check api_key/api_secret in the provider secret (IMAGGA_API_KEY/IMAGGA_API_SECRET locally)",
        "quota_exhausted": "a subscription limit of the Imagga plan was reached: raise the plan or route "
        "this capability to another provider",
        "rate_limited": "the plan's concurrency limit was reached: lower IMAGGA_MAX_CONCURRENCY or the "
        "function's concurrency, or raise the plan",
    },
    # Docs, "Errors": "403 Forbidden - You have reached one of your subscription limits therefore you are
    # temporarily not allowed to perform this type of request." That is quota, not a bad key.
    status_kinds={403: "quota_exhausted"},
    body_failed=_body_failed,
    base_url_setting="IMAGGA_BASE_URL",
)

# ---------------------------------------------------------------------------------------------------
# Private payload models: tolerant of added fields and of v1-era strings for numbers.


class _Tag(_Loose, kw_only=True):
    confidence: float
    tag: dict[str, str | None] | str | None = None


class _TagsResult(_Loose, kw_only=True):
    tags: list[_Tag]


class _Category(_Loose, kw_only=True):
    confidence: float
    name: dict[str, str | None] | str | None = None


class _CategoriesResult(_Loose, kw_only=True):
    categories: list[_Category]


class _ColorEntry(_Loose, kw_only=True):
    r: int | None = None
    g: int | None = None
    b: int | None = None
    html_code: str | None = None
    percent: float
    closest_palette_color: str | None = None
    html_color_name: str | None = None


class _Colors(_Loose, kw_only=True):
    image_colors: list[_ColorEntry] = []
    background_colors: list[_ColorEntry] = []
    foreground_colors: list[_ColorEntry] = []


class _ColorsResult(_Loose, kw_only=True):
    colors: _Colors


class _Coordinates(_Loose, kw_only=True):
    xmin: float | None = None
    ymin: float | None = None
    xmax: float | None = None
    ymax: float | None = None
    width: float | None = None
    height: float | None = None


class _Face(_Loose, kw_only=True):
    confidence: float
    coordinates: _Coordinates | None = None


class _FacesResult(_Loose, kw_only=True):
    faces: list[_Face]


class _TextEntry(_Loose, kw_only=True):
    data: str | None = None
    coordinates: _Coordinates | None = None


class _TextResult(_Loose, kw_only=True):
    text: list[_TextEntry]


@dataclass(frozen=True)
class SentImage:
    """The pixel size of the image as uploaded: boxes come back in these pixels."""

    width: int
    height: int


# ---------------------------------------------------------------------------------------------------
# Pure normalization


def _v1_result(payload: dict[str, Any], endpoint: str) -> Any:
    """The legacy v1 envelope ``{"results": [{...}], "unsuccessful": [{image, message}]}`` as a v2 result.

    v1 answered every request with HTTP 200 and listed the images it could not process in
    ``unsuccessful`` (shared/fixtures/vendors/imagga_v1_tagging_error_1.json: "Could not download URL");
    with one image sent, that is a refusal of this image. A v1 item holds ``tags`` or ``categories`` as v2's
    ``result`` does, and colors under ``info``.
    """
    results = [r for r in payload.get("results") or [] if isinstance(r, dict)]
    if results:
        item = results[0]
        if "colors" not in item and isinstance(item.get("info"), dict):
            return {"colors": item["info"]}
        return item
    refused = [u for u in payload.get("unsuccessful") or [] if isinstance(u, dict)]
    if refused:
        reason = refused[0].get("message") or refused[0].get("error") or "no reason given"
        reason = " ".join(str(reason).split())[:200]
        raise BadImageError(PROVIDER, f'{endpoint}: Imagga could not process the image ("{reason}"); it is not retried')
    raise BadResponseError(PROVIDER, f"{endpoint}: the answer has neither results nor unsuccessful images")


def _result[M](payload: Any, model: type[M], endpoint: str) -> M:
    """The ``result`` of a v2 answer (or the v1 equivalent) parsed into ``model``.

    A ``status`` whose type is not "success" is a failure. A body without a status object is read when it
    still holds a ``result`` (v2) or ``results`` (v1); only a body with none of them is unusable.
    """
    kind, text = _status_of(payload)
    if kind is not None and kind != "success":
        reason = " ".join(text.split())[:200] or "no reason given"
        raise BadResponseError(PROVIDER, f'{endpoint}: the API answered status "{kind}": {reason}')
    if not isinstance(payload, dict):
        raise BadResponseError(PROVIDER, f"{endpoint}: the answer is not a JSON object; the API may have changed")
    if isinstance(payload.get("result"), dict):
        result = payload["result"]
    elif kind is None and isinstance(payload.get("results"), list):
        result = _v1_result(payload, endpoint)
    elif kind is None:
        raise BadResponseError(
            PROVIDER, f"{endpoint}: the answer has no status object and no result; the API may have changed"
        )
    else:
        raise BadResponseError(PROVIDER, f"{endpoint}: the answer says success but holds no result")
    try:
        return parse(result, model)
    except PayloadError as exc:
        raise unexpected_payload(PROVIDER, exc, endpoint, what="result", where="result") from None


def _unit(percent: float, endpoint: str, what: str) -> float:
    """Imagga's 0-100 scale as 0..1, rounded; values a rounding error outside the range are clamped."""
    if not math.isfinite(percent) or not -0.01 <= percent <= 100.01:
        raise BadResponseError(PROVIDER, f"{endpoint}: {what} {percent!r} is outside 0-100")
    return round(min(max(percent, 0.0), 100.0) / 100.0, 6)


def _localized(value: dict[str, str | None] | str | None, language: str) -> str:
    """``{"en": "mountain"}`` in the asked language, else English, else the first one (v1: a plain string)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    names = {k: v.strip() for k, v in value.items() if isinstance(v, str) and v.strip()}
    return names.get(language) or names.get("en") or next(iter(names.values()), "")


@guarded(PROVIDER, "tags")
def normalize_tags(payload: Any, language: str = "en") -> list[Label]:
    """/v2/tags -> labels, highest first; a name repeated keeps its highest confidence."""
    result = _result(payload, _TagsResult, "tags")
    best: dict[str, float] = {}
    for item in result.tags:
        name = _localized(item.tag, language)
        if not name:
            continue
        confidence = _unit(item.confidence, "tags", "confidence")
        best[name] = max(confidence, best.get(name, 0.0))
    ordered = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Label(name=name, confidence=conf, provider=PROVIDER) for name, conf in ordered]


@guarded(PROVIDER, "nsfw")
def normalize_nsfw(payload: Any) -> list[ModerationCategory]:
    """/v2/categories/nsfw_beta -> house categories through ``NSFW_CATEGORIES``; unknown -> "other"."""
    result = _result(payload, _CategoriesResult, "nsfw")
    categories = []
    for item in result.categories:
        source = _localized(item.name, "en")
        if not source:
            continue
        categories.append(
            ModerationCategory(
                name=NSFW_CATEGORIES.get(source.lower(), "other"),
                confidence=_unit(item.confidence, "nsfw", "confidence"),
                provider=PROVIDER,
                source_label=source,
            )
        )
    return sorted(categories, key=lambda c: -c.confidence)


_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


@guarded(PROVIDER, "colors")
def normalize_colors(payload: Any) -> list[Color]:
    """/v2/colors -> the overall image colors (``image_colors``), largest share first."""
    result = _result(payload, _ColorsResult, "colors")
    colors = []
    for entry in result.colors.image_colors:
        match = _HEX.match((entry.html_code or "").strip())
        if match:
            hex_code = "#" + match.group(1).lower()
        elif None not in (entry.r, entry.g, entry.b) and all(0 <= v <= 255 for v in (entry.r, entry.g, entry.b)):
            hex_code = f"#{entry.r:02x}{entry.g:02x}{entry.b:02x}"
        else:
            raise BadResponseError(PROVIDER, "colors: a color has neither html_code nor r/g/b in 0-255")
        name = (entry.closest_palette_color or entry.html_color_name or "").strip() or None
        colors.append(
            Color(hex=hex_code, percent=_unit(entry.percent, "colors", "percent"), name=name, provider=PROVIDER)
        )
    return sorted(colors, key=lambda c: -c.percent)


def _usable_box(coords: _Coordinates | None, sent: SentImage, endpoint: str) -> Box | None:
    """The box, or None when the coordinates cannot make one (the item is still worth keeping or skipping)."""
    if coords is None:
        return None
    try:
        return _box(coords, sent, endpoint)
    except BadResponseError:
        return None


def _box(coords: _Coordinates, sent: SentImage, endpoint: str) -> Box:
    """Pixel corners (xmin/ymin/xmax/ymax, or xmin/ymin + width/height) as fractions, clamped to the image."""
    if sent.width <= 0 or sent.height <= 0:
        raise ValueError("the sent image size must be positive")
    x0, y0 = coords.xmin, coords.ymin
    x1 = coords.xmax if coords.xmax is not None else (x0 + coords.width if None not in (x0, coords.width) else None)
    y1 = coords.ymax if coords.ymax is not None else (y0 + coords.height if None not in (y0, coords.height) else None)
    if x0 is None or y0 is None or x1 is None or y1 is None or x1 < x0 or y1 < y0:
        raise BadResponseError(PROVIDER, f"{endpoint}: coordinates without a usable xmin/ymin/xmax/ymax")

    def frac(value: float, size: int) -> float:
        return min(max(value / size, 0.0), 1.0)

    left, top = frac(x0, sent.width), frac(y0, sent.height)
    right, bottom = frac(x1, sent.width), frac(y1, sent.height)
    return Box(x=round(left, 6), y=round(top, 6), width=round(right - left, 6), height=round(bottom - top, 6))


@guarded(PROVIDER, "faces")
def normalize_faces(payload: Any, sent: SentImage) -> list[Detection]:
    """/v2/faces/detections -> face boxes in 0..1 of the sent image; face ids are not kept."""
    result = _result(payload, _FacesResult, "faces")
    # A face without usable coordinates says nothing a face section can hold (a face is a box): left out.
    faces = [
        Detection(name=None, confidence=_unit(face.confidence, "faces", "confidence"), box=box, provider=PROVIDER)
        for face in result.faces
        if (box := _usable_box(face.coordinates, sent, "faces")) is not None
    ]
    return sorted(faces, key=lambda d: -d.confidence)


@guarded(PROVIDER, "text")
def normalize_text(payload: Any, sent: SentImage) -> list[TextItem]:
    """/v2/text -> text items in reading order as given; Imagga gives no confidence for text."""
    result = _result(payload, _TextResult, "text")
    return [
        TextItem(
            text=entry.data.strip(),
            box=_usable_box(entry.coordinates, sent, "text"),
            provider=PROVIDER,
        )
        for entry in result.text
        if entry.data and entry.data.strip()
    ]


def normalize(endpoint: str, payload: Any, *, sent: SentImage, language: str = "en") -> ProviderOutput:
    """One endpoint's payload as a ProviderOutput (with the payload kept in ``raw``)."""
    raw = {endpoint: payload}
    if endpoint == "tags":
        return ProviderOutput(labels=normalize_tags(payload, language), raw=raw)
    if endpoint == "nsfw":
        return ProviderOutput(moderation=normalize_nsfw(payload), raw=raw)
    if endpoint == "colors":
        return ProviderOutput(colors=normalize_colors(payload), raw=raw)
    if endpoint == "faces":
        return ProviderOutput(faces=normalize_faces(payload, sent), raw=raw)
    if endpoint == "text":
        return ProviderOutput(text=normalize_text(payload, sent), raw=raw)
    raise ValueError(f"unknown Imagga endpoint {endpoint!r}")


def merge_outputs(outputs: list[ProviderOutput]) -> ProviderOutput:
    """Endpoint outputs fill disjoint sections; put them together."""
    return combine(outputs)


# ---------------------------------------------------------------------------------------------------
# Configuration


_LANGUAGE = re.compile(r"^[a-z]{2}(_[a-z]{3,4})?$")


def _endpoints(raw: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENDPOINTS]
    if unknown:
        raise ValueError(f"IMAGGA_ENDPOINTS has unknown {', '.join(unknown)}; known: {', '.join(ENDPOINTS)}")
    return tuple(dict.fromkeys(names)) or DEFAULT_ENDPOINTS


def _optional_number[N: (int, float)](raw: str, kind: type[N], name: str, low: float, high: float) -> N | None:
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


# ---------------------------------------------------------------------------------------------------
# The provider


class ImaggaProvider(Provider):
    name: ClassVar[str] = PROVIDER
    env_prefix: ClassVar[str] = "IMAGGA_"
    default_base_url: ClassVar[str] = "https://api.imagga.com"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"labels", "moderation", "colors", "faces", "text"})
    enabled_by: ClassVar[str] = "IMAGGA_ENDPOINTS"
    price_per_call: ClassVar[float] = 0.0  # the seed documents no price: IMAGGA_PRICE_PER_CALL
    accepted_formats: ClassVar[frozenset[str]] = frozenset({"jpeg", "png"})
    max_upload_bytes: ClassVar[int] = MAX_UPLOAD_BYTES
    # 2: options as query parameters, colors without the object split, partial answers kept.
    normalizer_version: ClassVar[str] = "2"

    def __init__(
        self,
        client: VendorClient,
        credentials: Credentials,
        *,
        endpoints: tuple[str, ...] = DEFAULT_ENDPOINTS,
        language: str = "en",
        tags_limit: int | None = None,
        tags_threshold: float | None = None,
        max_concurrency: int = 2,
        analyses: int = 10,
    ) -> None:
        self.client = client
        self.endpoints = endpoints
        self.language = language
        self.tags_limit = tags_limit
        self.tags_threshold = tags_threshold
        self.max_concurrency = max(1, max_concurrency)
        self.enabled: frozenset[Capability] = frozenset(ENDPOINTS[e].capability for e in endpoints)
        self._keys = ProviderKeys(credentials, PROVIDER, self.env_prefix, self.credential_fields)
        # Requests of one analysis at once; each record in flight (RECORD_CONCURRENCY) has its own allowance.
        self._requests = EndpointPool(PROVIDER, self.max_concurrency, analyses)

    @classmethod
    def create(cls, deps: ProviderDeps) -> ImaggaProvider:
        settings = deps.settings
        prefix = cls.env_prefix
        base_url = _base_url(settings.vendor(prefix, "BASE_URL", cls.default_base_url))
        language = settings.vendor(prefix, "LANGUAGE", "en").lower()
        if not _LANGUAGE.match(language):
            raise ValueError(f"IMAGGA_LANGUAGE must be one language code such as en, de or zh_chs, got {language!r}")
        return cls(
            VendorClient.from_deps(PROFILE, deps, base_url),
            deps.credentials,
            endpoints=_endpoints(settings.vendor(prefix, "ENDPOINTS", ",".join(DEFAULT_ENDPOINTS))),
            language=language,
            tags_limit=_optional_number(settings.vendor(prefix, "TAGS_LIMIT"), int, "IMAGGA_TAGS_LIMIT", 1, 10_000),
            # Docs: "all tags with confidence above 7 are being returned and you cannot go lower than that".
            tags_threshold=_optional_number(
                settings.vendor(prefix, "TAGS_THRESHOLD"), float, "IMAGGA_TAGS_THRESHOLD", TAGS_THRESHOLD_FLOOR, 100
            ),
            max_concurrency=_optional_number(
                settings.vendor(prefix, "MAX_CONCURRENCY"), int, "IMAGGA_MAX_CONCURRENCY", 1, 16
            )
            or 2,
            analyses=settings.record_concurrency,
        )

    # -- analyze ---------------------------------------------------------------------------------------

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        asked = request.capabilities
        # With ROUTING only the endpoints for the capabilities asked of Imagga are called (and paid).
        endpoints = [e for e in self.endpoints if asked is None or ENDPOINTS[e].capability in asked]
        if not endpoints:
            return ProviderOutput()
        return self._keys.call(lambda keys: self._analyze(request, endpoints, keys["api_key"], keys["api_secret"]))

    def _analyze(self, request: AnalysisRequest, endpoints: list[str], key: str, secret: str) -> ProviderOutput:
        uploads: dict[int | None, tuple[bytes, str, SentImage]] = {}
        for endpoint in endpoints:
            side = UPLOAD_SHORT_SIDE[endpoint]
            if side not in uploads:
                uploads[side] = _prepare(request.image, side)
        file_stem = _opaque_name(request.object_id)

        def call(endpoint: str) -> ProviderOutput:
            payload, mime, sent = uploads[UPLOAD_SHORT_SIDE[endpoint]]
            extension = ".png" if mime == "image/png" else ".jpg"
            response = self.client.send(
                "POST",
                ENDPOINTS[endpoint].path,
                deadline=request.deadline,
                params=self.query(endpoint),
                files={"image": (file_stem + extension, payload, mime)},
                auth=httpx.BasicAuth(key, secret),
                secrets=(key, secret),
            )
            return normalize(endpoint, response.body, sent=sent, language=self.language)

        return fan_out(
            PROVIDER,
            endpoints,
            call,
            capabilities=lambda endpoint: (ENDPOINTS[endpoint].capability,),
            executor=self._requests if self.max_concurrency > 1 else None,
        )

    def query(self, endpoint: str) -> dict[str, str]:
        """The endpoint's options. The docs list them as query parameters of the POST, beside the file."""
        if endpoint == "colors":
            # Only the overall colors are read (normalize_colors): the object/background split is work the
            # vendor would do for nothing.
            return {"extract_object_colors": "0"}
        if endpoint != "tags":
            # nsfw_beta is asked in English on purpose: NSFW_CATEGORIES matches English names.
            return {}
        query = {"language": self.language}
        if self.tags_limit is not None:
            query["limit"] = str(self.tags_limit)
        if self.tags_threshold is not None:
            query["threshold"] = f"{self.tags_threshold:g}"
        return query


def _prepare(image: DecodedImage, short_side: int | None) -> tuple[bytes, str, SentImage]:
    """The upload for one size target, and the pixel size the vendor will measure boxes in.

    The long-side limit that ``encoded_for`` takes is derived from the short-side target. An image whose
    EXIF orientation rotates it is always re-encoded (upright, orientation dropped), so that boxes refer
    to the pixels as displayed and no vendor's EXIF handling is assumed.
    """
    rotated = image.orientation not in (None, 1)
    short, long = min(image.width, image.height), max(image.width, image.height)  # the same once rotated
    max_side: int | None = None
    if short_side is not None and short > short_side:
        max_side = math.ceil(long * short_side / short)
    if rotated and max_side is None:
        max_side = long - 1 if long > 1 else 1
    payload, mime = image.encoded_for(ImaggaProvider.accepted_formats, ImaggaProvider.max_upload_bytes, max_side)
    with Image.open(io.BytesIO(payload)) as sent:
        width, height = sent.size
    return payload, mime, SentImage(width, height)


def _base_url(raw: str) -> str:
    return base_url(raw, "IMAGGA_BASE_URL", "/v2/...")
