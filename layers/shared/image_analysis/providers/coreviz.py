"""CoreViz image tagging (https://lab.coreviz.io/api/ai/tag): tags, prompted tags, or a classification.

Docs, "Request Body": ``image`` is the "URL of the image to tag" (required); ``prompt`` a custom prompt;
``choices`` "List of classification choices"; ``single`` "Return only the best match when using
choices". Headers: ``Content-Type: application/json`` and ``x-api-key``.

CoreViz fetches the image itself, so the adapter hands it a **presigned S3 GET URL** (SigV4, regional
endpoint, ``COREVIZ_URL_TTL_SECONDS`` long, default 300):

- of the analyzed object version itself (bucket, key, version id of the request) when CoreViz can be
  handed it as it is: ``encoded_for`` would send its bytes unchanged (JPEG, PNG or WebP, one frame, at
  most ``COREVIZ_MAX_IMAGE_BYTES``, default 10 MB - the docs only say "Maximum file size limits may apply
  (check your plan)" - and, under the house metadata policy, no personal metadata);
- otherwise of the prepared copy ``encoded_for`` makes, put into ``ARTIFACTS_BUCKET`` under
  ``prepared/<object_id>.<ext>``: a bucket that never triggers analysis and whose lifecycle rule expires
  such copies; the adapter deletes the copy after the call (best effort). No artifacts bucket then means
  a ``BadImageError`` that says to set one.

By default (``COREVIZ_URL_SOURCE=copy``) a prepared copy under the opaque name is always sent: the
vendor sees neither the bucket nor the key (the contract: "Never send a vendor anything that identifies
our user beyond the image"). ``original`` saves the copy but puts the bucket and the key in the URL; it
applies only to a versioned object (the URL names the version, so CoreViz reads exactly the bytes that
were hashed here), an unversioned one still goes as a copy.

A presigned URL carries credentials for its lifetime. It is never logged (botocore's own DEBUG records
of the signing are dropped while the adapter presigns), never put into an error message, and scrubbed
from the raw answer kept in the result (``<presigned URL removed>``). Nothing but the analyzed object or
its prepared copy is ever presigned.

Modes: ``tags`` (default), ``prompt`` (``COREVIZ_PROMPT`` set), ``classification`` (``COREVIZ_CHOICES``,
a comma list). ``single`` is sent with every classification, false unless ``COREVIZ_SINGLE=true``: the
per-choice scores (``all_scores``, "Scores for all choices (when single: false)") are what the
classification's ``scores`` hold, and with ``single: true`` only the best match comes back.
Tags come as ``{tag, confidence}`` objects (docs) or
as plain strings: ``{tags: [...]}``, ``{result: [...]}`` or ``{tag: "..."}`` (the official SDK's parser,
shared/fixtures/SOURCES.md "CoreViz"). A plain string has no score: it gets ``UNSCORED_CONFIDENCE``.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

from image_analysis.errors import BadImageError, BadResponseError, ServerError
from image_analysis.models import Classification, ClassScore, Label
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
from image_analysis.providers.http import ErrorKind, VendorClient, VendorProfile

if TYPE_CHECKING:
    from image_analysis.credentials import Credentials
    from image_analysis.providers.http import VendorResponse
    from image_analysis.settings import Settings

logger = logging.getLogger(__name__)

PROVIDER = "coreviz"
PATH = "/api/ai/tag"
PREPARED_PREFIX = "prepared/"
URL_REMOVED = "<presigned URL removed>"

Mode = Literal["tags", "prompt", "classification"]
UrlSource = Literal["original", "copy"]

# A tag given as a plain string carries no score, yet a Label needs one. 0.5 reads "the vendor asserted
# it, its certainty is unknown": it ranks such tags below anything a provider is confident about and above
# what it doubts in the merged label list, and stays under every flag threshold (0.8 by default). The raw
# answer is kept, so a better choice can be re-applied later.
UNSCORED_CONFIDENCE = 0.5

# Docs, "Supported Image Formats": JPEG, PNG, WebP, GIF. GIF goes through the conversion (the pipeline
# analyzes the first frame; an animated GIF would be read whole by the vendor).
ACCEPTED_FORMATS = frozenset({"jpeg", "png", "webp"})
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_URL_TTL_SECONDS = 300

# ---------------------------------------------------------------------------------------------------
# Status codes (docs, "Error Responses"; 402 from the official SDK: "Insufficient credits")
#
#   400 "Invalid image URL or missing required fields"  -> bad_response, not retried (the shared default)
#   401 "Invalid or missing API key"                     -> auth (the shared default)
#   402 "Insufficient credits"                           -> quota_exhausted (the shared default)
#   422 "Unable to process the provided image"           -> bad_image (the shared default)
# Written out so that the table is visible here; everything else falls to the shared table.
STATUS_KINDS: Mapping[int, ErrorKind] = {
    400: "bad_response",
    401: "auth",
    402: "quota_exhausted",
    422: "bad_image",
}


def _error_text(body: Any) -> str | None:
    """``{"error": "Unauthorized", "message": "Invalid or missing API key"}`` -> both, joined."""
    if not isinstance(body, dict):
        return None
    parts = [body[k].strip() for k in ("error", "message") if isinstance(body.get(k), str) and body[k].strip()]
    return ": ".join(parts) or None


def _body_failed(body: Any) -> bool:
    """A 2xx answer that is not an object, or holds an ``error`` and no result (the SDK throws on
    ``data.error``), reports a failure."""
    if not isinstance(body, dict):
        return True
    has_result = any(k in body for k in ("tags", "result", "tag", "classification", "all_scores"))
    return bool(body.get("error")) and not has_result


PROFILE = VendorProfile(
    provider=PROVIDER,
    hints={
        "auth": "check api_key in the provider secret (COREVIZ_API_KEY locally)",
        "quota_exhausted": "the CoreViz account has insufficient credits: top it up or route this capability "
        "to another provider",
        "bad_image": "CoreViz could not process the image; it is not retried",
        "refused": "CoreViz refused the request (400: the image URL or a required field): check that the "
        "function may read the object it presigns (s3:GetObject, s3:GetObjectVersion, the bucket's KMS key), "
        "COREVIZ_URL_TTL_SECONDS, COREVIZ_PROMPT and COREVIZ_CHOICES; it is not retried",
    },
    status_kinds=STATUS_KINDS,
    body_failed=_body_failed,
    error_text=_error_text,
    base_url_setting="COREVIZ_BASE_URL",
)

# ---------------------------------------------------------------------------------------------------
# Private payload models


class _ScoredTag(_Loose):
    # Docs: ``{tag, confidence}``; ``{name, score}`` (and ``label``) are read the same way (``_TAG_NAMES``).
    tag: str | None = None
    confidence: float | None = None


# Field -> the spellings read into it, the first present winning.
_TAG_NAMES = {"tag": ("tag", "name", "label"), "confidence": ("confidence", "score", "probability")}


class _Tags(_Loose):
    tags: list[_ScoredTag | str] | None = None
    result: list[_ScoredTag | str] | None = None
    tag: str | None = None


class _Score(_Loose):
    # Docs: ``all_scores[{choice, score}]``; ``label``/``name`` and ``confidence`` are read the same way
    # (``_SCORE_NAMES``).
    choice: str | None = None
    score: float | None = None


_SCORE_NAMES = {"choice": ("choice", "label", "name", "class"), "score": ("score", "confidence", "probability")}


class _Classified(_Loose):
    classification: str | None = None
    confidence: float | None = None
    all_scores: list[_Score] | None = None


# ---------------------------------------------------------------------------------------------------
# Pure normalization


def _parsed[M](
    payload: dict[str, Any], model: type[M], mode: str, lists: Mapping[str, Mapping[str, tuple[str, ...]]]
) -> M:
    """``payload`` read into ``model``, after the objects in each of ``lists`` (key -> field spellings)
    have their fields under the names the model reads; ``BadResponseError`` when it does not fit."""
    prepared = dict(payload)
    for key, names in lists.items():
        if isinstance(prepared.get(key), list):
            prepared[key] = [aliased(item, names) for item in prepared[key]]
    try:
        return parse(prepared, model)
    except PayloadError as exc:
        raise unexpected_payload(PROVIDER, exc, mode) from None


def _scale(values: list[float | None]) -> float:
    """The scale one answer uses: 1 (docs: "Confidence score (0-1)"), or 100 when any value is above 1.

    The docs promise 0-1, but a model that answers in percent would put every score above 1 but the
    smallest; one answer uses one scale, so a single value above 1 means all of its values are percents.
    """
    present = [v for v in values if v is not None and math.isfinite(v)]
    return 100.0 if any(v > 1.001 for v in present) else 1.0


def _unit(value: float, mode: str, what: str, scale: float = 1.0) -> float:
    """A score on ``scale`` (1 or 100) as 0..1, rounded; a rounding error outside is clamped."""
    if not math.isfinite(value) or not -0.001 * scale <= value <= 1.001 * scale:
        raise BadResponseError(PROVIDER, f"{mode}: {what} {value!r} is outside 0-{scale:g}")
    return round(min(max(value / scale, 0.0), 1.0), 6)


@guarded(PROVIDER, "tags")
def normalize_tags(payload: Any, mode: str = "tags") -> list[Label]:
    """Tags -> labels, highest first (the vendor's order among equals); a name once, at its best score.

    ``{"tags": [...]}`` wins over ``{"result": [...]}`` over ``{"tag": "..."}``, as in the SDK's parser;
    items are ``{tag, confidence}`` objects or plain strings (``UNSCORED_CONFIDENCE``).
    """
    if not isinstance(payload, dict):
        raise BadResponseError(PROVIDER, f"{mode}: the answer is not a JSON object")
    parsed = _parsed(payload, _Tags, mode, {"tags": _TAG_NAMES, "result": _TAG_NAMES})
    if parsed.tags is not None:
        items: list[_ScoredTag | str] = list(parsed.tags)
    elif parsed.result is not None:
        items = list(parsed.result)
    elif parsed.tag is not None:
        items = [parsed.tag]
    else:
        raise BadResponseError(PROVIDER, f"{mode}: the answer has no tags, result or tag; the API may have changed")
    best: dict[str, float] = {}
    scale = _scale([item.confidence for item in items if not isinstance(item, str)])
    for item in items:
        if isinstance(item, str):
            name, confidence = item.strip(), UNSCORED_CONFIDENCE
        else:
            name = (item.tag or "").strip()
            confidence = (
                UNSCORED_CONFIDENCE if item.confidence is None else _unit(item.confidence, mode, "confidence", scale)
            )
        if name:
            best[name] = max(confidence, best.get(name, 0.0))
    ordered = sorted(best.items(), key=lambda kv: -kv[1])  # stable: the vendor's order among equals
    return [Label(name=name, confidence=conf, provider=PROVIDER) for name, conf in ordered]


@guarded(PROVIDER, "classification")
def normalize_classification(payload: Any) -> Classification:
    """``{classification, confidence, all_scores[{choice, score}]}`` -> Classification.

    With ``single`` the docs give ``classification`` and ``confidence``; without it ``all_scores``, whose
    best choice is then the label. A classification without a confidence takes its score from
    ``all_scores``, else ``UNSCORED_CONFIDENCE``. An answer in one of the tag shapes (the SDK parses
    ``options`` answers as ``{tags}``/``{result}``/``{tag}``) takes its best tag as the label, with no scores.
    """
    if not isinstance(payload, dict):
        raise BadResponseError(PROVIDER, "classification: the answer is not a JSON object")
    parsed = _parsed(payload, _Classified, "classification", {"all_scores": _SCORE_NAMES})
    scale = _scale([parsed.confidence, *(s.score for s in parsed.all_scores or [])])
    scores = [
        ClassScore(label=s.choice.strip(), score=_unit(s.score, "classification", "score", scale))
        for s in parsed.all_scores or []
        if s.choice and s.choice.strip() and s.score is not None
    ]
    scores.sort(key=lambda s: -s.score)
    label = (parsed.classification or "").strip()
    if label:
        if parsed.confidence is not None:
            confidence = _unit(parsed.confidence, "classification", "confidence", scale)
        else:
            confidence = next((s.score for s in scores if s.label == label), UNSCORED_CONFIDENCE)
    elif scores:
        label, confidence = scores[0].label, scores[0].score
    elif any(k in payload for k in ("tags", "result", "tag")):
        labels = normalize_tags(payload, "classification")
        if not labels:
            raise BadResponseError(PROVIDER, "classification: the answer names no choice")
        label, confidence = labels[0].name, labels[0].confidence
    else:
        raise BadResponseError(
            PROVIDER, "classification: the answer has neither classification nor all_scores; the API may have changed"
        )
    return Classification(label=label, confidence=confidence, scores=scores, provider=PROVIDER)


def normalize(mode: str, payload: Any) -> ProviderOutput:
    """One answer as a ProviderOutput (with the payload kept in ``raw`` under the mode)."""
    raw = {mode: payload}
    if mode in ("tags", "prompt"):
        output = ProviderOutput(labels=normalize_tags(payload, mode), raw=raw)
    elif mode == "classification":
        output = ProviderOutput(classification=normalize_classification(payload), raw=raw)
    else:
        raise ValueError(f"unknown CoreViz mode {mode!r}")
    return output  # its sections were checked as the normalizers returned them


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every string that contains one of ``secrets`` replaced by ``URL_REMOVED``."""
    if not secrets:
        return value
    if isinstance(value, str):
        return URL_REMOVED if any(s in value for s in secrets) else value
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    return value


def url_secrets(url: str) -> tuple[str, ...]:
    """What of a presigned URL must never be shown: the URL (as sent and decoded), its path-only form,
    the signature and the session token (raw and encoded)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    found = [url, unquote(url), f"{parts.scheme}://{parts.netloc}{parts.path}"]
    for name in ("X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Credential"):
        for value in query.get(name, []):
            found += [value, quote(value, safe="")]
    return tuple(dict.fromkeys(s for s in found if len(s) >= 8))


# ---------------------------------------------------------------------------------------------------
# Configuration


def _bool_setting(raw: str, name: str, default: bool) -> bool:
    if not raw:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _choices(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))


def presign_client(region: str, session: Any = None) -> Any:
    """An S3 client for presigning: SigV4 (``s3v4``), virtual-hosted on the regional endpoint.

    ``us_east_1_regional_endpoint`` keeps us-east-1 off the legacy global host; an explicit ``virtual``
    style keeps other regions off it too (botocore's ``auto`` presigns ``bucket.s3.amazonaws.com``).
    Buckets with dots, and the local emulator (``AWS_ENDPOINT_URL``), fall back to path style by
    themselves.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",
        region_name=region,
        s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"},
        connect_timeout=5,
        read_timeout=20,
        retries={"mode": "standard", "max_attempts": 3},
    )
    return (session or boto3.session.Session()).client("s3", config=config)


def _region(settings: Settings, s3: Any) -> str | None:
    """The function's region (the uploads and artifacts buckets live there): ``AWS_REGION`` as Lambda sets
    it, else the injected S3 client's; ``None`` leaves it to the SDK's own configuration on first use."""
    region = settings.env.get("AWS_REGION") or settings.env.get("AWS_DEFAULT_REGION")
    if not region and s3 is not None:
        region = getattr(getattr(s3, "meta", None), "region_name", None)
    return region or None


# ---------------------------------------------------------------------------------------------------
# The provider


class CoreVizProvider(Provider):
    name: ClassVar[str] = PROVIDER
    env_prefix: ClassVar[str] = "COREVIZ_"
    default_base_url: ClassVar[str] = "https://lab.coreviz.io"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"labels", "classification"})
    enabled_by: ClassVar[str] = "COREVIZ_CHOICES (set: classification; empty: labels)"
    price_per_call: ClassVar[float] = 0.0  # the seed documents no price: COREVIZ_PRICE_PER_CALL
    accepted_formats: ClassVar[frozenset[str]] = ACCEPTED_FORMATS
    max_upload_bytes: ClassVar[int] = DEFAULT_MAX_IMAGE_BYTES
    # 2: classifications ask for every choice's score (single=false) by default.
    normalizer_version: ClassVar[str] = "2"

    def __init__(
        self,
        client: VendorClient,
        credentials: Credentials,
        *,
        artifacts_bucket: str = "",
        region: str | None = None,
        s3: Any = None,
        prompt: str = "",
        choices: tuple[str, ...] = (),
        single: bool = False,
        url_ttl_seconds: int = DEFAULT_URL_TTL_SECONDS,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        url_source: UrlSource = "copy",
    ) -> None:
        self.client = client
        self.artifacts_bucket = artifacts_bucket
        self.region = region
        self.prompt = prompt
        self.choices = choices
        self.single = single
        self.url_ttl_seconds = url_ttl_seconds
        self.max_image_bytes = max_image_bytes
        self.url_source: UrlSource = url_source
        self.mode: Mode = "classification" if choices else ("prompt" if prompt else "tags")
        self.enabled: frozenset[Capability] = frozenset({"classification" if choices else "labels"})
        self._keys = ProviderKeys(credentials, PROVIDER, self.env_prefix, self.credential_fields)
        self._s3 = s3
        self._lock = threading.Lock()

    @classmethod
    def create(cls, deps: ProviderDeps) -> CoreVizProvider:
        settings = deps.settings
        prefix = cls.env_prefix
        base_url = _base_url(settings.vendor(prefix, "BASE_URL", cls.default_base_url))
        prompt = settings.vendor(prefix, "PROMPT")
        if len(prompt) > 2000:
            raise ValueError("COREVIZ_PROMPT must be at most 2000 characters")
        choices = _choices(settings.vendor(prefix, "CHOICES"))
        # Default "copy": a presigned URL of the original names its bucket and key, which the contract
        # keeps from vendors; the copy sits under the opaque object id and is deleted after the call.
        source = settings.vendor(prefix, "URL_SOURCE", "copy").lower()
        if source not in ("original", "copy"):
            raise ValueError(f"COREVIZ_URL_SOURCE must be original or copy, got {source!r}")
        return cls(
            VendorClient.from_deps(PROFILE, deps, base_url),
            deps.credentials,
            artifacts_bucket=settings.artifacts_bucket,
            region=_region(settings, deps.s3),
            # Tests may inject the presigning client; otherwise it is built on first use.
            s3=deps.extra.get("coreviz_s3"),
            prompt=prompt,
            choices=choices,
            single=_bool_setting(settings.vendor(prefix, "SINGLE"), "COREVIZ_SINGLE", False),
            # Long enough for the call and its retries; SigV4 allows up to 7 days, which nobody needs.
            url_ttl_seconds=_int_setting(
                settings.vendor(prefix, "URL_TTL_SECONDS"), "COREVIZ_URL_TTL_SECONDS", 30, 3600, DEFAULT_URL_TTL_SECONDS
            ),
            max_image_bytes=_int_setting(
                settings.vendor(prefix, "MAX_IMAGE_BYTES"),
                "COREVIZ_MAX_IMAGE_BYTES",
                1024,
                100 * 1024 * 1024,
                DEFAULT_MAX_IMAGE_BYTES,
            ),
            url_source=source,  # type: ignore[arg-type]
        )

    # -- analyze ---------------------------------------------------------------------------------------

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        asked = getattr(request, "capabilities", None)
        if asked is not None and not self.enabled & asked:
            return ProviderOutput()  # nothing this provider was asked for: no paid call
        with self._image_url(request) as url:
            hidden = url_secrets(url)

            def send(keys: dict[str, str]) -> VendorResponse:
                key = keys["api_key"]
                return self.client.send(
                    "POST",
                    PATH,
                    deadline=request.deadline,
                    json_body=self.body(url),
                    headers={"x-api-key": key, "Content-Type": "application/json"},
                    secrets=(key, *hidden),
                )

            response = self._keys.call(send)
        # A vendor that echoes the image URL must not get it into the stored result.
        return normalize(self.mode, scrub(response.body, hidden))

    def body(self, url: str) -> dict[str, Any]:
        """The JSON body: the image URL and the mode's fields (docs, "Request Body")."""
        body: dict[str, Any] = {"image": url}
        if self.prompt:
            body["prompt"] = self.prompt
        if self.choices:
            body["choices"] = list(self.choices)
            body["single"] = self.single
        return body

    def prepared(self, request: AnalysisRequest) -> tuple[bytes, str] | None:
        """The copy CoreViz must get instead of the analyzed object, or None when the object itself will do.

        The object itself goes when ``encoded_for`` would send its bytes unchanged: a format CoreViz reads
        (JPEG, PNG, WebP), one frame, within ``COREVIZ_MAX_IMAGE_BYTES`` and, under the house metadata
        policy, no personal metadata. Otherwise the converted copy it returns goes. Without an S3 origin,
        or with ``COREVIZ_URL_SOURCE=copy``, always a copy (of the original bytes when they would do).
        """
        image = request.image
        payload, mime = image.encoded_for(ACCEPTED_FORMATS, self.max_image_bytes)
        unchanged = payload is image.data
        # Only a version id pins the bytes CoreViz fetches to the ones hashed and analyzed here: in an
        # unversioned bucket the key may hold newer bytes by then, whose verdict would be cached under these.
        if unchanged and request.bucket and request.key and request.version_id and self.url_source == "original":
            return None
        return payload, mime

    @contextmanager
    def _image_url(self, request: AnalysisRequest) -> Iterator[str]:
        """A presigned GET URL of the analyzed object, or of its prepared copy (deleted afterwards)."""
        prepared = self.prepared(request)
        if prepared is None:
            yield self._presign(request.bucket, request.key, request.version_id)
            return
        if not self.artifacts_bucket:
            raise BadImageError(
                PROVIDER,
                f"CoreViz cannot be handed this {request.image.format} image as it is and no ARTIFACTS_BUCKET is "
                "configured for a prepared copy: set ARTIFACTS_BUCKET (a bucket that never triggers analysis) "
                "or route this capability to another provider; it is not retried",
            )
        payload, mime = prepared
        extension = _EXTENSIONS.get(mime, "jpg")
        # A name of this call's own: copies of one event in one batch must not delete each other's copy.
        key = f"{PREPARED_PREFIX}{_opaque_name(request.object_id)}-{uuid.uuid4().hex[:12]}.{extension}"
        s3 = self._client()
        try:
            s3.put_object(Bucket=self.artifacts_bucket, Key=key, Body=payload, ContentType=mime)
        except Exception as exc:
            raise _s3_error(
                exc, f"cannot store the prepared copy in ARTIFACTS_BUCKET {self.artifacts_bucket!r}"
            ) from None
        try:
            yield self._presign(self.artifacts_bucket, key, None)
        finally:
            try:
                s3.delete_object(Bucket=self.artifacts_bucket, Key=key)
            except Exception as exc:  # best effort: the bucket's lifecycle rule expires it anyway
                logger.warning(
                    "coreviz: could not delete the prepared copy s3://%s/%s (%s); the artifacts bucket's "
                    "lifecycle rule will expire it",
                    self.artifacts_bucket,
                    key,
                    type(exc).__name__,
                )

    def _presign(self, bucket: str, key: str, version_id: str | None) -> str:
        """The only place a URL is presigned; callers pass the analyzed object or its prepared copy."""
        params = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        client = self._client()
        _quiet_botocore_auth()
        _presigning.active = True
        try:
            return client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.url_ttl_seconds)
        except Exception as exc:
            raise _s3_error(exc, "cannot presign the image URL") from None
        finally:
            _presigning.active = False

    def _client(self) -> Any:
        """The presigning S3 client: injected, or built on first use (boto3 only on this path)."""
        with self._lock:
            if self._s3 is None:
                region = self.region
                if not region:
                    import boto3

                    region = boto3.session.Session().region_name
                if not region:
                    error = ServerError(PROVIDER, "no AWS region to presign the image URL in: set AWS_REGION")
                    error.retryable = False  # type: ignore[misc]
                    raise error
                self._s3 = presign_client(region)
            return self._s3


_presigning = threading.local()


class _QuietWhilePresigning(logging.Filter):
    """Drops ``botocore.auth`` records logged by this thread while it presigns a URL.

    At DEBUG level botocore logs the canonical request (with the session token) and the signature: with
    the URL's other parts, that is the URL. Records from other threads and other calls pass untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_presigning, "active", False)


_QUIET = _QuietWhilePresigning()


def _quiet_botocore_auth() -> None:
    auth_logger = logging.getLogger("botocore.auth")
    if _QUIET not in auth_logger.filters:
        auth_logger.addFilter(_QUIET)


def _s3_error(exc: Exception, what: str) -> ServerError:
    """Our own S3 failing: retried when it may pass (throttling, 5xx, network), not when it is refused."""
    code = ""
    status = 0
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    reason = code or type(exc).__name__
    refused = 400 <= status < 500 and code not in ("SlowDown", "RequestTimeout", "Throttling")
    hint = (
        "grant the function s3:PutObject, s3:GetObject and s3:DeleteObject on prepared/* in ARTIFACTS_BUCKET; "
        "it is not retried"
        if refused
        else "the record will be retried"
    )
    error = ServerError(PROVIDER, f"{what} ({reason}): {hint}")
    if refused:
        error.retryable = False  # type: ignore[misc]
    return error


def _base_url(raw: str) -> str:
    return base_url(raw, "COREVIZ_BASE_URL", PATH)
