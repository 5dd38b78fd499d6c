"""AI or Not v2 (https://api.aiornot.com/v2/image/sync): AI-generated, deepfake, NSFW and quality reports.

One POST per image: the file goes up as the multipart field ``image`` (the documented
``--form 'image=@image.jpeg'``), named by the opaque object id, never the S3 key; ``external_id`` (the
same opaque id) and the report selection go in the query string. Auth is
``Authorization: Bearer <api_key>`` (OpenAPI ``securitySchemes.HTTPBearer``).

Which reports run (seed: "By default, it runs ``ai_generated``, ``deepfake``, ``nsfw``, and ``quality``
reports. You can select which reports to run by using the ``only`` and ``excluding`` parameters. Please
note that ``ai_generated`` and ``deepfake`` reports both have their own costs."):

- ``AIORNOT_ONLY`` (comma list of ai_generated, deepfake, nsfw, quality, reverse_search), default
  ``ai_generated,deepfake,nsfw``: quality is left out by default because the offline ``builtin``
  provider already fills the result's quality section, which the merge takes from the first provider.
- ``AIORNOT_EXCLUDING`` instead: the vendor's four defaults minus these. Setting both is an error.
- ``AIORNOT_BASE_URL`` (scheme://host[:port], default https://api.aiornot.com), ``AIORNOT_API_KEY``
  (local use; otherwise the ``aiornot`` entry of the provider secret).

Uploads: "Supported formats: jpg, jpeg, png, webp, heic, heif, tiff". The page gives two sizes: the
"Limitations" list says "Maximum file size: 50MB", the ``image`` field itself "Max file size: 10MB". The
field's own limit is the one the request is checked against, so the smaller one is kept, read as
10,000,000 bytes (the smaller reading of "MB"): a larger image is downscaled and re-encoded until it
fits, never refused for its size. Within that limit the original bytes go as they are: an AI detector
reads compression and sensor-noise traces that re-encoding or downscaling would erase, and the vendor
documents no smaller size it needs. Other formats are converted to JPEG. An EXIF-rotated image is
re-encoded upright only when deepfake regions can come back, so that their boxes refer to the pixels as
displayed.

Normalization is pure (``normalize``): payload -> private payload struct -> house models, checked. It
reads the v2 shape and, because it is the same data one level up, the v1 ``/v1/reports/image`` shape
(``report.{verdict, ai, human, generator}`` plus ``facets.{nsfw, quality}``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from image_analysis.errors import BadImageError, BadResponseError, ServerError
from image_analysis.models import (
    AIGenerated,
    Box,
    Deepfake,
    DeepfakeRegion,
    HouseCategory,
    ModerationCategory,
    Quality,
    Verdict,
)
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
    from image_analysis.imaging import DecodedImage
    from image_analysis.providers.http import VendorResponse

PROVIDER = "aiornot"
PATH = "/v2/image/sync"
# The key under which the vendor's answer is kept in ProviderOutput.raw.
RAW_KEY = "image_sync"

# OpenAPI ``only``/``excluding`` enum, and the capability each report fills (reverse_search has no house
# section: it is kept in ``raw`` only).
REPORTS: Mapping[str, Capability | None] = {
    "ai_generated": "ai_generated",
    "deepfake": "deepfake",
    "nsfw": "moderation",
    "quality": "quality",
    "reverse_search": None,
}
# What the vendor runs when neither ``only`` nor ``excluding`` is sent.
VENDOR_DEFAULT_REPORTS = ("ai_generated", "deepfake", "nsfw", "quality")
DEFAULT_ONLY = ("ai_generated", "deepfake", "nsfw")

# The ``image`` field: "Max file size: 10MB" (see the module docstring for the other, larger figure).
MAX_UPLOAD_BYTES = 10_000_000
# Pillow names (``imaging.decode`` reports HEIF files as "heic").
ACCEPTED_FORMATS = frozenset({"jpeg", "png", "webp", "heic", "heif", "tiff"})
_EXTENSIONS: Mapping[str, str] = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/tiff": ".tiff",
}

# ---------------------------------------------------------------------------------------------------
# Moderation mapping: the NSFW report is one boolean (``NSFWReportScheme.is_detected``: "True if NSFW
# content found in the image. Please note that for us, the mere presence of a child is enough to trigger
# this flag."). A flag that a family photo raises is not a finding of explicit content: it is kept as what
# it is, house category "other" with source label "nsfw", 1.0 when raised and 0.0 when not. It flags
# nothing unless the user asks for it per provider label (MODERATION_THRESHOLDS=aiornot.nsfw:0.5).
NSFW_CATEGORY: HouseCategory = "other"
NSFW_SOURCE_LABEL = "nsfw"

# ``processing_status`` values (``ReportStatus`` enum).
PROCESSED, REJECTED, ERRORED = "processed", "rejected", "errored"

# ---------------------------------------------------------------------------------------------------
# HTTP profile


def _body_status(body: Any) -> int | None:
    """A FastAPI validation error (422) about our query string is our request's fault, not the image's.

    ``HTTPValidationError.detail[].loc`` starts with where the bad value was: ``["query", "only", 0]``
    means a report name the API does not know (a refused request, 400); ``["body", "image"]`` is about
    the file and stays a 422 (bad image).
    """
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list) or not body["detail"]:
        return None
    places = [entry.get("loc", [None])[0] if isinstance(entry, dict) else None for entry in body["detail"]]
    return 400 if all(place == "query" for place in places) else None


PROFILE = VendorProfile(
    provider=PROVIDER,
    hints={
        "auth": "check the api_key in the provider secret's aiornot entry (AIORNOT_API_KEY locally)",
        "quota_exhausted": "the AI or Not plan has no credits left (ai_generated and deepfake each cost "
        "credits): top it up, narrow AIORNOT_ONLY, or route these capabilities to another provider",
        "rate_limited": "AI or Not is rate limiting: lower the function's concurrency or raise the plan; "
        "the record will be retried",
        "bad_image": "AI or Not cannot analyze this image (it takes jpg, png, webp, heic, heif and tiff up to "
        "10 MB); it is not retried",
        "refused": "AI or Not refused the request: check AIORNOT_ONLY, AIORNOT_EXCLUDING and AIORNOT_BASE_URL; "
        "it is not retried",
    },
    body_status=_body_status,
    base_url_setting="AIORNOT_BASE_URL",
)

# ---------------------------------------------------------------------------------------------------
# Private payload models: tolerant of added fields; every field the normalizer reads is typed.


class _Prediction(_Loose):
    # The free tier leaves ``confidence`` out (the SDK fills in -1).
    is_detected: bool | None = None
    confidence: float | None = None


class _AiGenerated(_Loose):
    # Required by the schema, yet an answer without it still says something: read as "unknown".
    verdict: str | None = None
    ai: _Prediction | None = None
    human: _Prediction | None = None
    # v2: bare numbers; v1: {confidence, is_detected}; ``{}`` for human images; absent on the free tier.
    # "We may add new generators at any time": each value is read on its own (``_generator_score``).
    generator: dict[str, Any] | None = None


class _BBox(_Loose):
    x1: float | None = None
    y1: float | None = None
    x2: float | None = None
    y2: float | None = None


class _Roi(_Loose):
    is_detected: bool | None = True
    confidence: float | None = None
    # A region whose box is null or incomplete says "somewhere": it is left out of the regions.
    bbox: _BBox | None = None


class _Deepfake(_Loose):
    is_detected: bool | None = None
    confidence: float | None = None
    rois: list[_Roi] | None = None


class _Detected(_Loose):
    """NSFW and quality reports: one boolean each; null means the report says nothing."""

    is_detected: bool | None = None


class _Meta(_Loose):
    width: int | None = None
    height: int | None = None
    # ``ReportStatus`` is processed, rejected or errored today; an unknown value (``not_requested``) or
    # null is read as "no statement about that report".
    processing_status: dict[str, str | None] | None = None


class _Report(_Loose):
    ai_generated: _AiGenerated | None = None
    deepfake: _Deepfake | None = None
    nsfw: _Detected | None = None
    quality: _Detected | None = None
    reverse_search: Any = None
    meta: _Meta | None = None


class _Facets(_Loose):
    nsfw: _Detected | None = None
    quality: _Detected | None = None


class _V1Response(_Loose):
    report: _AiGenerated
    facets: _Facets | None = None


class _V2Response(_Loose):
    report: _Report


@dataclass(frozen=True)
class SentImage:
    """The pixel size of the image as uploaded: deepfake boxes come back in these pixels."""

    width: int
    height: int


# ---------------------------------------------------------------------------------------------------
# Pure normalization


def _parse[M](payload: Any, model: type[M]) -> M:
    try:
        return parse(payload, model)
    except PayloadError as exc:
        raise unexpected_payload(PROVIDER, exc, where="the body") from None


def _unit(value: float | None, what: str) -> float | None:
    """A 0..1 confidence; ``None`` when absent or the free tier's -1. Rounding noise is clamped."""
    if value is None or value == -1:
        return None
    if not math.isfinite(value) or not -1e-6 <= value <= 1 + 1e-6:
        raise BadResponseError(PROVIDER, f"{what} {value!r} is outside 0..1; the API may have changed")
    return min(max(value, 0.0), 1.0)


def normalize_ai_generated(section: _AiGenerated) -> AIGenerated:
    """Verdict, the confidence that the image is AI-made, generator scores.

    The confidence is ``ai.confidence``, else ``1 - human.confidence``, else ``None`` (free tier: never -1).
    A verdict outside ai/human/unknown becomes ``unknown`` with the vendor's word kept in the evidence.
    """
    evidence: list[str] = []
    verdict: Verdict
    given = (section.verdict or "").strip().lower()
    if given in ("ai", "human", "unknown"):
        verdict = given  # type: ignore[assignment]
    else:
        verdict = "unknown"
        said = f"the verdict {section.verdict[:50]!r}, which is not ai, human or unknown" if given else "no verdict"
        evidence.append(f"AI or Not answered {said}")
    confidence = _unit(section.ai.confidence, "ai.confidence") if section.ai else None
    if confidence is None and section.human is not None:
        human = _unit(section.human.confidence, "human.confidence")
        confidence = None if human is None else round(1.0 - human, 6)
    generators: dict[str, float] = {}
    for name, entry in (section.generator or {}).items():
        score = _generator_score(name, entry, evidence)
        if score is not None:
            generators[name] = score
    ordered = dict(sorted(generators.items(), key=lambda kv: (-kv[1], kv[0])))
    return AIGenerated(verdict=verdict, confidence=confidence, generators=ordered, evidence=evidence, provider=PROVIDER)


def _generator_score(name: str, entry: Any, evidence: list[str]) -> float | None:
    """One generator's score: a bare number (v2), ``{confidence, is_detected}`` (v1), or nothing usable."""
    if isinstance(entry, bool) or entry is None:
        return None
    if isinstance(entry, int | float):
        return _unit(float(entry), f"generator.{name}")
    if isinstance(entry, dict):
        try:
            prediction = parse(entry, _Prediction)
        except PayloadError:
            return None
        score = _unit(prediction.confidence, f"generator.{name}.confidence")
        if score is None and prediction.is_detected:
            evidence.append(f"generator {name} detected (no score given)")
        return score
    return None


def _box(bbox: _BBox, sent: SentImage) -> Box | None:
    """Pixel corners (x1, y1, x2, y2) as fractions of the sent image, clamped to it; None when incomplete."""
    if bbox.x1 is None or bbox.y1 is None or bbox.x2 is None or bbox.y2 is None:
        return None
    if bbox.x2 < bbox.x1 or bbox.y2 < bbox.y1:
        raise BadResponseError(PROVIDER, "deepfake: a region's bbox has x2 < x1 or y2 < y1; the API may have changed")

    def frac(value: float, size: int) -> float:
        return min(max(value / size, 0.0), 1.0)

    left, top = frac(bbox.x1, sent.width), frac(bbox.y1, sent.height)
    right, bottom = frac(bbox.x2, sent.width), frac(bbox.y2, sent.height)
    return Box(x=round(left, 6), y=round(top, 6), width=round(right - left, 6), height=round(bottom - top, 6))


def normalize_deepfake(section: _Deepfake, sent: SentImage | None) -> Deepfake | None:
    """Detected, confidence and the regions found to be fake (``rois`` with ``is_detected``).

    The house model needs a number: a missing confidence (-1 or absent) is the vendor's decision taken at
    its word, 1.0 when detected and 0.0 when not; without ``is_detected`` the confidence decides (0.5 or
    more), and a section with neither says nothing (None). Regions not detected as fake, or without a
    usable box, are left out (raw keeps them).
    """
    confidence = _unit(section.confidence, "deepfake.confidence")
    detected = section.is_detected
    if detected is None:
        if confidence is None:
            return None
        detected = confidence >= 0.5
    if confidence is None:
        confidence = 1.0 if detected else 0.0
    regions = []
    for roi in section.rois or []:
        if roi.is_detected is False or roi.bbox is None:
            continue
        if sent is None or sent.width <= 0 or sent.height <= 0:
            raise BadResponseError(PROVIDER, "deepfake: regions came back but the image size is unknown")
        box = _box(roi.bbox, sent)
        if box is None:
            continue
        roi_confidence = _unit(roi.confidence, "deepfake.rois.confidence")
        regions.append(DeepfakeRegion(box=box, confidence=1.0 if roi_confidence is None else roi_confidence))
    regions.sort(key=lambda r: -r.confidence)
    return Deepfake(detected=detected, confidence=confidence, regions=regions, provider=PROVIDER)


def normalize_nsfw(section: _Detected) -> list[ModerationCategory] | None:
    """The NSFW boolean as house category "other" (source label "nsfw"); None when it is null."""
    detected = section.is_detected
    if detected is None:
        return None
    return [
        ModerationCategory(
            name=NSFW_CATEGORY,
            confidence=1.0 if detected else 0.0,
            provider=PROVIDER,
            source_label=NSFW_SOURCE_LABEL,
        )
    ]


def normalize_quality(section: _Detected) -> Quality | None:
    """``is_detected`` "Indicates whether the image is of high quality": 1.0 high, 0.0 low (artifacts)."""
    if section.is_detected is None:
        return None
    return Quality(score=1.0 if section.is_detected else 0.0, provider=PROVIDER)


def _check_status(statuses: Mapping[str, str | None], asked: frozenset[str] | None) -> set[str]:
    """The reports to leave out; raise when the reports asked for cannot be had from this answer.

    Only reports that were asked for and fill a house section count (``asked`` None: every such report
    the answer names): a status on a report nobody asked for (``quality: errored`` when only
    ai_generated was run), on reverse_search (kept in raw only), or a value outside the ``ReportStatus``
    enum (``not_requested``, null) says nothing about what we need and is ignored.

    ``errored`` on an asked report: a ``ServerError`` (a later try can succeed; the capability would be
    missing otherwise). ``rejected`` for every asked report: a ``BadImageError``. ``rejected`` for some:
    those sections are left out and the processed ones kept (retrying cannot change a rejection).
    """
    known = {
        name: status
        for name, status in statuses.items()
        if status in (PROCESSED, REJECTED, ERRORED)
        and REPORTS.get(name) is not None
        and (asked is None or name in asked)
    }
    errored = sorted(r for r, s in known.items() if s == ERRORED)
    if errored:
        raise ServerError(
            PROVIDER,
            f"the {', '.join(errored)} report errored at AI or Not (processing_status); the record will be retried",
        )
    rejected = {r for r, s in known.items() if s == REJECTED}
    wanted = {r for r in REPORTS if REPORTS[r] is not None and (r in asked if asked is not None else r in known)}
    if rejected and rejected >= wanted:
        raise BadImageError(
            PROVIDER,
            f"AI or Not rejected the image for the {', '.join(sorted(rejected))} report "
            "(processing_status); it cannot analyze this image and it is not retried",
        )
    return {r for r, s in statuses.items() if s == REJECTED}


def _is_v1(payload: Any) -> bool:
    report = payload.get("report") if isinstance(payload, dict) else None
    return isinstance(report, dict) and "verdict" in report and "ai_generated" not in report and "meta" not in report


@guarded(PROVIDER)
def normalize(
    payload: Any, *, sent: SentImage | None = None, asked: frozenset[str] | tuple[str, ...] | None = None
) -> ProviderOutput:
    """One ``/v2/image/sync`` (or v1 ``/v1/reports/image``) answer as a ProviderOutput, raw kept.

    A section missing (``only``/``excluding`` in use), null, or saying nothing is simply not set.
    ``asked`` names the reports the request ran (None when re-normalizing a stored answer): only their
    ``processing_status`` can fail the call. Deepfake boxes are fractions of ``sent``; without it
    (re-normalizing a stored answer) of ``report.meta.width/height``.
    """
    raw = {RAW_KEY: payload}
    if _is_v1(payload):
        v1 = _parse(payload, _V1Response)
        facets = v1.facets or _Facets()
        return ProviderOutput(
            ai_generated=normalize_ai_generated(v1.report),
            moderation=normalize_nsfw(facets.nsfw) if facets.nsfw else None,
            quality=normalize_quality(facets.quality) if facets.quality else None,
            raw=raw,
        )
    report = _parse(payload, _V2Response).report
    statuses = (report.meta.processing_status if report.meta else None) or {}
    skipped = _check_status(statuses, frozenset(asked) if asked is not None else None)

    def usable[T](name: str, section: T | None) -> T | None:
        return None if name in skipped else section

    if sent is None and report.meta and report.meta.width and report.meta.height:
        sent = SentImage(report.meta.width, report.meta.height)
    ai_generated = usable("ai_generated", report.ai_generated)
    deepfake = usable("deepfake", report.deepfake)
    nsfw = usable("nsfw", report.nsfw)
    quality = usable("quality", report.quality)
    fields: dict[str, Any] = {"raw": raw}
    if ai_generated is not None:
        fields["ai_generated"] = normalize_ai_generated(ai_generated)
    if deepfake is not None:
        fields["deepfake"] = normalize_deepfake(deepfake, sent)
    if nsfw is not None:
        fields["moderation"] = normalize_nsfw(nsfw)
    if quality is not None:
        fields["quality"] = normalize_quality(quality)
    fields = {k: v for k, v in fields.items() if v is not None}
    wanted = {r for r in (asked or ()) if REPORTS.get(r) is not None} - skipped
    if wanted and len(fields) == 1:
        raise BadResponseError(
            PROVIDER,
            f"the answer holds none of the asked reports ({', '.join(sorted(wanted))}); the API may have changed",
        )
    return ProviderOutput(**fields)


# ---------------------------------------------------------------------------------------------------
# Configuration


def _report_list(raw: str, setting: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        raise ValueError(f"{setting} has unknown {', '.join(unknown)}; known: {', '.join(REPORTS)}")
    return tuple(dict.fromkeys(names))


def _selection(only_raw: str, excluding_raw: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(query parameter, its values, the reports that will run) from AIORNOT_ONLY / AIORNOT_EXCLUDING."""
    if only_raw and excluding_raw:
        raise ValueError("set AIORNOT_ONLY or AIORNOT_EXCLUDING, not both")
    if excluding_raw:
        excluding = _report_list(excluding_raw, "AIORNOT_EXCLUDING")
        runs = tuple(r for r in VENDOR_DEFAULT_REPORTS if r not in excluding)
        if not runs:
            raise ValueError("AIORNOT_EXCLUDING leaves no report to run")
        return "excluding", excluding, runs
    only = _report_list(only_raw, "AIORNOT_ONLY") if only_raw else DEFAULT_ONLY
    if not only:
        raise ValueError("AIORNOT_ONLY names no report")
    return "only", only, only


# ---------------------------------------------------------------------------------------------------
# The provider


class AiOrNotProvider(Provider):
    name: ClassVar[str] = PROVIDER
    env_prefix: ClassVar[str] = "AIORNOT_"
    default_base_url: ClassVar[str] = "https://api.aiornot.com"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"ai_generated", "deepfake", "moderation", "quality"})
    enabled_by: ClassVar[str] = "AIORNOT_ONLY (or AIORNOT_EXCLUDING)"
    # The seed says only that ai_generated and deepfake reports "have their own costs": AIORNOT_PRICE_PER_CALL.
    price_per_call: ClassVar[float] = 0.0
    accepted_formats: ClassVar[frozenset[str]] = ACCEPTED_FORMATS
    max_upload_bytes: ClassVar[int] = MAX_UPLOAD_BYTES
    # The report's ``verdict`` is the vendor's decision: it decides the ai_generated flag, and its
    # confidence is kept as information (AI_GENERATED_THRESHOLD is for providers that give only a score).
    verdict_decides: ClassVar[bool] = True
    # 2: nsfw is "other"/"nsfw", never "explicit".
    normalizer_version: ClassVar[str] = "2"

    def __init__(
        self,
        client: VendorClient,
        credentials: Credentials,
        *,
        selector: str = "only",
        selected: tuple[str, ...] = DEFAULT_ONLY,
        reports: tuple[str, ...] = DEFAULT_ONLY,
    ) -> None:
        self.client = client
        self.selector = selector
        self.selected = selected
        self.reports = reports
        self.enabled: frozenset[Capability] = frozenset(c for r in reports if (c := REPORTS[r]) is not None)
        self._keys = ProviderKeys(credentials, PROVIDER, self.env_prefix, self.credential_fields)

    @classmethod
    def create(cls, deps: ProviderDeps) -> AiOrNotProvider:
        settings = deps.settings
        prefix = cls.env_prefix
        base_url = _base_url(settings.vendor(prefix, "BASE_URL", cls.default_base_url))
        selector, selected, reports = _selection(settings.vendor(prefix, "ONLY"), settings.vendor(prefix, "EXCLUDING"))
        return cls(
            VendorClient.from_deps(PROFILE, deps, base_url),
            deps.credentials,
            selector=selector,
            selected=selected,
            reports=reports,
        )

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        selector, selected, reports = self._selection_for(getattr(request, "capabilities", None))
        if not reports:
            return ProviderOutput()  # nothing this provider was asked for: no paid call
        payload, mime, sent = prepare(request.image, MAX_UPLOAD_BYTES, upright="deepfake" in reports)
        object_id = _opaque_name(request.object_id)

        def send(keys: dict[str, str]) -> VendorResponse:
            key = keys["api_key"]
            return self.client.send(
                "POST",
                PATH,
                deadline=request.deadline,
                params={selector: list(selected), "external_id": object_id},
                files={"image": (object_id + _EXTENSIONS.get(mime, ".jpg"), payload, mime)},
                headers={"Authorization": f"Bearer {key}"},
                secrets=(key,),
            )

        return normalize(self._keys.call(send).body, sent=sent, asked=reports)

    def _selection_for(self, asked: frozenset[str] | None) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """The configured selection, narrowed to the capabilities routing asks of this provider (if any).

        ai_generated and deepfake are billed per report, so a report nobody asked for is not run;
        reverse_search (no house section) stays when configured.
        """
        if asked is None:
            return self.selector, self.selected, self.reports
        reports = tuple(r for r in self.reports if REPORTS[r] is None or REPORTS[r] in asked)
        if reports == self.reports:
            return self.selector, self.selected, self.reports
        if all(REPORTS[r] is None for r in reports):
            return "only", (), ()
        return "only", reports, reports


def prepare(image: DecodedImage, max_bytes: int, *, upright: bool) -> tuple[bytes, str, SentImage]:
    """The upload, its MIME type, and the pixel size the vendor will measure boxes in.

    The original goes when AI or Not takes it. With ``upright`` an EXIF-rotated image is re-encoded with
    the rotation applied (``encoded_for`` re-encodes only when asked for a smaller side), so that deepfake
    boxes refer to the displayed pixels.
    """
    max_side: int | None = None
    if upright and image.orientation not in (None, 1):
        long = max(image.width, image.height)
        max_side = long - 1 if long > 1 else 1
    payload, mime = image.encoded_for(ACCEPTED_FORMATS, max_bytes, max_side)
    if payload is image.data:
        return payload, mime, SentImage(image.width, image.height)
    with Image.open(io.BytesIO(payload)) as sent:  # re-encoded copies are JPEG or PNG
        width, height = sent.size
    return payload, mime, SentImage(width, height)


def _base_url(raw: str) -> str:
    return base_url(raw, "AIORNOT_BASE_URL", PATH)
