"""ImageSEO (https://api.imageseo.io): labels and alternative texts from one image report.

One ``POST /v1/external/projects/images`` per image (docs, "Generate Image Report"): the file goes up as
the multipart field ``imageFile`` ("Image FILE ( Corresponds to a file )"), named by the opaque object id,
never the S3 key, with the form field ``lang``. The URL mode (``src``) is not used: it would need a public
URL of the user's object. Auth is the header the docs name, ``Authentication``, whose value is the key
itself (``{YOUR_API_KEY}``, no scheme). (ImageSEO's own PHP client, ImageSEO/seoimage-php, sends the key
as ``Authorization`` instead; the seed document is followed here.)

Settings (environment): ``IMAGESEO_BASE_URL`` (scheme://host[:port], default https://api.imageseo.io),
``IMAGESEO_LANG`` (default en; the docs: "Example : 'fr'. You can find the list of languages supported on
/public/langs"), ``IMAGESEO_API_KEY`` (local use; otherwise the ``imageseo`` entry of the provider secret).

Scores: the documented example has ``labels[].score`` 99.427... and ``alts[].score`` 71.44 next to
``alts[].scoring`` 0.7144, so ``score`` is a percentage (0-100) and is divided by 100; an alt without a
score falls back to ``scoring`` (0..1). An entry with neither is left out, as ImageSEO's WordPress plugin
does (it uses only entries whose rounded score lies between 1 and 101).

Failures: the documented one is HTTP 404 ``{"success": false, "code": "no_report"}``: no report could be
made for this image, a ``BadImageError`` (not retried). Any other ``success: false`` is a
``BadResponseError`` naming the vendor's code. The docs name no accepted formats or size limit: JPEG and
PNG up to 10 MB are sent (the formats every client example uses); anything else is converted to JPEG.

Normalization is pure (``normalize``): payload -> private payload model -> house models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from image_analysis.errors import BadImageError, BadResponseError
from image_analysis.models import AltText, Label
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
from image_analysis.providers.http import VendorClient, VendorProfile

if TYPE_CHECKING:
    from image_analysis.credentials import Credentials
    from image_analysis.providers.http import VendorResponse

PROVIDER = "imageseo"
PATH = "/v1/external/projects/images"
# The key under which the vendor's answer is kept in ProviderOutput.raw.
RAW_KEY = "images"
AUTH_HEADER = "Authentication"

# What is sent: the original whenever it is JPEG/PNG within this cap, else a converted copy. The docs
# state no size the analysis needs and no upload limit (10 MB is this adapter's own cap), and the report
# describes the file itself (its documented ``width``, ``height`` and ``weight`` in bytes are SEO facts
# about the image as published), so a downscaled copy would make the report describe another file.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
ACCEPTED_FORMATS = frozenset({"jpeg", "png"})

# ``code`` of a ``{"success": false, ...}`` body -> the HTTP status whose error kind it means; codes not
# listed keep the kind of the HTTP status they came with (or bad_response on a 2xx).
FAILURE_STATUS: Mapping[str, int] = {
    "no_report": 422,  # docs: 404 {"success": false, "code": "no_report"}: the image gets no report
}

# ---------------------------------------------------------------------------------------------------
# HTTP profile


def _failure_code(body: Any) -> str | None:
    """The ``code`` of a ``{"success": false, "code": ...}`` body, if that is what ``body`` is."""
    if isinstance(body, dict) and body.get("success") is False:
        code = body.get("code")
        return code if isinstance(code, str) and code.strip() else "(no code)"
    return None


def _body_status(body: Any) -> int | None:
    code = _failure_code(body)
    return FAILURE_STATUS.get(code) if code else None


def _error_text(body: Any) -> str | None:
    code = _failure_code(body)
    return f"success false, code {code}" if code else None


PROFILE = VendorProfile(
    provider=PROVIDER,
    hints={
        "auth": "check the api_key in the provider secret's imageseo entry (IMAGESEO_API_KEY locally); it is "
        "sent as the Authentication header",
        "quota_exhausted": "the ImageSEO plan's credits are used up: top it up or route labels and alt_texts "
        "to another provider",
        "bad_image": "ImageSEO made no report for this image; it is not retried",
        "refused": "ImageSEO refused the request: check IMAGESEO_BASE_URL and IMAGESEO_LANG; it is not retried",
    },
    body_status=_body_status,
    body_failed=lambda body: _failure_code(body) is not None,
    error_text=_error_text,
    base_url_setting="IMAGESEO_BASE_URL",
)

# ---------------------------------------------------------------------------------------------------
# Private payload models: tolerant of added and deprecated fields (``alt``, ``a_vision``).


class _Entry(_Loose):
    # The docs' example shows every entry with a ``name``; nothing says it is never null. An entry without
    # one is left out. ``text`` is read when ``name`` is missing, in case an alt comes as a text.
    name: str | None = None
    text: str | None = None
    score: float | None = None
    scoring: float | None = None

    @property
    def shown(self) -> str:
        return " ".join((self.name or self.text or "").split())


class _Result(_Loose):
    # The docs guarantee neither list: a report with no labels, or no alternative texts, is a report.
    labels: list[_Entry] | None = None
    alts: list[_Entry] | None = None


class _Body(_Loose):
    # ``success`` is in both documented answers; a body that has a result but no flag is read as a success.
    success: bool | None = None
    code: str | None = None
    result: _Result | None = None
    # Read when there is no ``result`` object (the report's lists one level up).
    labels: list[_Entry] | None = None
    alts: list[_Entry] | None = None


# ---------------------------------------------------------------------------------------------------
# Pure normalization


def _confidence(entry: _Entry, section: str) -> float | None:
    """``score`` (0-100) as 0..1, else ``scoring`` (0..1), else None; values a rounding error out are clamped."""
    if entry.score is not None:
        value, scale = entry.score, 100.0
    elif entry.scoring is not None:
        value, scale = entry.scoring, 1.0
    else:
        return None
    if not math.isfinite(value) or not -0.0001 * scale <= value <= 1.0001 * scale:
        field = "score" if scale == 100.0 else "scoring"
        raise BadResponseError(
            PROVIDER, f"{section}: {field} {value!r} is outside 0-{scale:g}; the API may have changed"
        )
    return round(min(max(value / scale, 0.0), 1.0), 6)


def _best(entries: list[_Entry] | None, section: str) -> list[tuple[str, float]]:
    """(name, confidence) highest first; a name repeated keeps its highest; no name or no score: left out."""
    best: dict[str, float] = {}
    for entry in entries or []:
        name = entry.shown
        confidence = _confidence(entry, section)
        if not name or confidence is None:
            continue
        best[name] = max(confidence, best.get(name, 0.0))
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))


@guarded(PROVIDER)
def normalize(payload: Any) -> ProviderOutput:
    """The image report as labels and alt texts (with the payload kept in ``raw``).

    ``{"success": false, "code": "no_report"}`` raises ``BadImageError``; other failures and changed
    payloads raise ``BadResponseError``.
    """
    try:
        body = parse(payload, _Body)
    except PayloadError as exc:
        raise unexpected_payload(PROVIDER, exc, where="the body") from None
    if body.success is False:
        code = (body.code or "").strip()[:50] or "(no code)"
        if FAILURE_STATUS.get(code) == 422:
            raise BadImageError(PROVIDER, f'ImageSEO made no report for this image (code "{code}"); it is not retried')
        raise BadResponseError(
            PROVIDER, f'ImageSEO answered success false with code "{code}"; the record will be retried'
        )
    result = body.result
    if result is None and (body.labels is not None or body.alts is not None):
        result = _Result(labels=body.labels, alts=body.alts)
    if result is None:
        raise BadResponseError(PROVIDER, "the answer has no result; the API may have changed")
    labels = [Label(name=n, confidence=c, provider=PROVIDER) for n, c in _best(result.labels, "labels")]
    alts = [AltText(text=n, confidence=c, provider=PROVIDER) for n, c in _best(result.alts, "alts")]
    return ProviderOutput(labels=labels, alt_texts=alts, raw={RAW_KEY: payload})


# ---------------------------------------------------------------------------------------------------
# Configuration

# Two or three letters, optionally a region or script ("en", "fr", "pt-br", "zh_hans"); the docs' list
# (/public/langs) is not known here, so the vendor has the last word.
_LANGUAGE = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]{2,4})?$")


# ---------------------------------------------------------------------------------------------------
# The provider


class ImageSeoProvider(Provider):
    name: ClassVar[str] = PROVIDER
    env_prefix: ClassVar[str] = "IMAGESEO_"
    default_base_url: ClassVar[str] = "https://api.imageseo.io"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"labels", "alt_texts"})
    price_per_call: ClassVar[float] = 0.0  # the seed documents no price: IMAGESEO_PRICE_PER_CALL
    accepted_formats: ClassVar[frozenset[str]] = ACCEPTED_FORMATS
    max_upload_bytes: ClassVar[int] = MAX_UPLOAD_BYTES

    def __init__(self, client: VendorClient, credentials: Credentials, *, language: str = "en") -> None:
        self.client = client
        self.language = language
        # One report carries both labels and alternative texts: nothing to switch.
        self.enabled: frozenset[Capability] = self.capabilities
        self._keys = ProviderKeys(credentials, PROVIDER, self.env_prefix, self.credential_fields)

    @classmethod
    def create(cls, deps: ProviderDeps) -> ImageSeoProvider:
        settings = deps.settings
        prefix = cls.env_prefix
        base_url = _base_url(settings.vendor(prefix, "BASE_URL", cls.default_base_url))
        language = settings.vendor(prefix, "LANG", "en").lower()
        if not _LANGUAGE.match(language):
            raise ValueError(f"IMAGESEO_LANG must be one language code such as en or fr, got {language!r}")
        return cls(VendorClient.from_deps(PROFILE, deps, base_url), deps.credentials, language=language)

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        payload, mime = request.image.encoded_for(ACCEPTED_FORMATS, MAX_UPLOAD_BYTES)
        extension = ".png" if mime == "image/png" else ".jpg"
        files = {"imageFile": (_opaque_name(request.object_id) + extension, payload, mime)}

        def send(keys: dict[str, str]) -> VendorResponse:
            key = keys["api_key"]
            return self.client.send(
                "POST",
                PATH,
                deadline=request.deadline,
                data={"lang": self.language},
                files=files,
                headers={AUTH_HEADER: key},
                secrets=(key,),
            )

        return normalize(self._keys.call(send).body)


def _base_url(raw: str) -> str:
    return base_url(raw, "IMAGESEO_BASE_URL", PATH)
