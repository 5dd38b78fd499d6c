"""Amazon Rekognition: labels with boxes (DetectLabels), moderation (DetectModerationLabels) and text
(DetectText), through boto3 and the function's IAM role: no key.

Bytes go in the request up to Rekognition's 5 MB limit (JPEG or PNG; other formats are converted),
downscaled to fit 1920x1080: the guide ("Guidelines and quotas") sizes what it detects against a
1920x1080 image ("a face must be no smaller than 40x40 pixels in an image with 1920X1080 pixels. Images
with dimensions higher than 1920X1080 pixels will need a larger minimum face size proportionally") and
resizes internally anyway, so more pixels cost upload time without finding more. Boxes come back as
fractions, so the smaller copy changes none of them. A larger JPEG/PNG original is read by Rekognition
from S3 directly (``S3Object``, up to 15 MB), so the function sends no bytes at all.

Confidences are 0..100 and become 0..1. Moderation labels map into the house categories by walking
their ``ParentName`` chain (the answer's own, else the v7 and v6 taxonomy tables below) up to a
top-level category; a label whose chain reaches none is kept as ``other``.

Every call is bounded by the invocation's deadline: botocore's own retries are off and each try gets
a client whose connect and read timeouts fit the time left (less a safety margin); throttling, 5xx
and timeouts are retried here with capped, jittered backoff only while another try still fits. A
worker thread therefore never outlives the deadline.
"""

from __future__ import annotations

import math
import random as _random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from image_analysis.models import Box, Detection, Label, ModerationCategory, TextItem
from image_analysis.providers.base import AnalysisRequest, Capability, Provider, ProviderDeps, ProviderOutput
from image_analysis.providers.common import (
    PayloadError,
    VendorPayload,
    fitted,
    int_setting,
    parse,
    unexpected_payload,
)

if TYPE_CHECKING:
    from image_analysis.imaging import DecodedImage
    from image_analysis.providers.base import Deadline

PROVIDER = "rekognition"
BYTES_LIMIT = 5 * 1024 * 1024
S3_LIMIT = 15 * 1024 * 1024
FEATURES: Mapping[str, Capability] = {"labels": "labels", "moderation": "moderation", "text": "text"}
DEFAULT_FEATURES = ("labels", "moderation")

# The size the bytes are fitted into (see the module docstring), either orientation.
FIT_LONG, FIT_SHORT = 1920, 1080

# Top-level moderation categories (v7, and v6 where its names differ) -> house categories. Every other
# label reaches one of these through its parents.
MODERATION: Mapping[str, str] = {
    # v7
    "explicit": "explicit",
    "non-explicit nudity of intimate parts and kissing": "suggestive",
    "swimwear or underwear": "suggestive",
    "violence": "violence",
    "visually disturbing": "violence",
    "drugs & tobacco": "drugs",
    "alcohol": "drugs",
    "rude gestures": "other",
    "gambling": "other",
    "hate symbols": "hate",
    # v6
    "explicit nudity": "explicit",
    "suggestive": "suggestive",
    "drugs": "drugs",
    "tobacco": "drugs",
}

# label -> its parent, lower case: the v7 taxonomy (Developer Guide, "Using the image and video
# moderation APIs", three levels), then v6 names that v7 dropped. Where both versions name a label
# (Pills, Drinking, Air Crash, Corpses, ...) the v7 parent is kept; both lead to the same house category.
PARENTS: Mapping[str, str] = {
    # v7 level 2
    "explicit nudity": "explicit",
    "explicit sexual activity": "explicit",
    "sex toys": "explicit",
    "non-explicit nudity": "non-explicit nudity of intimate parts and kissing",
    "obstructed intimate parts": "non-explicit nudity of intimate parts and kissing",
    "kissing on the lips": "non-explicit nudity of intimate parts and kissing",
    "female swimwear or underwear": "swimwear or underwear",
    "male swimwear or underwear": "swimwear or underwear",
    "weapons": "violence",
    "graphic violence": "violence",
    "death and emaciation": "visually disturbing",
    "crashes": "visually disturbing",
    "products": "drugs & tobacco",
    "drugs & tobacco paraphernalia & use": "drugs & tobacco",
    "alcohol use": "alcohol",
    "alcoholic beverages": "alcohol",
    "middle finger": "rude gestures",
    "nazi party": "hate symbols",
    "white supremacy": "hate symbols",
    "extremist": "hate symbols",
    # v7 level 3
    "exposed male genitalia": "explicit nudity",
    "exposed female genitalia": "explicit nudity",
    "exposed buttocks or anus": "explicit nudity",
    "exposed female nipple": "explicit nudity",
    "bare back": "non-explicit nudity",
    "exposed male nipple": "non-explicit nudity",
    "partially exposed buttocks": "non-explicit nudity",
    "partially exposed female breast": "non-explicit nudity",
    "implied nudity": "non-explicit nudity",
    "obstructed female nipple": "obstructed intimate parts",
    "obstructed male genitalia": "obstructed intimate parts",
    "weapon violence": "graphic violence",
    "physical violence": "graphic violence",
    "self-harm": "graphic violence",
    "blood & gore": "graphic violence",
    "explosions and blasts": "graphic violence",
    "emaciated bodies": "death and emaciation",
    "corpses": "death and emaciation",
    "air crash": "crashes",
    "pills": "products",
    "smoking": "drugs & tobacco paraphernalia & use",
    "drinking": "alcohol use",
    # v6 second level
    "nudity": "explicit nudity",
    "graphic male nudity": "explicit nudity",
    "graphic female nudity": "explicit nudity",
    "sexual activity": "explicit nudity",
    "illustrated explicit nudity": "explicit nudity",
    "adult toys": "explicit nudity",
    "partial nudity": "suggestive",
    "barechested male": "suggestive",
    "revealing clothes": "suggestive",
    "sexual situations": "suggestive",
    "graphic violence or gore": "violence",
    "self injury": "violence",
    "hanging": "visually disturbing",
    "drug products": "drugs",
    "drug use": "drugs",
    "drug paraphernalia": "drugs",
    "tobacco products": "tobacco",
}

# botocore error codes -> the error tree, in one place.
ERRORS: Mapping[str, type[ProviderError]] = {
    "AccessDeniedException": AuthError,
    "UnrecognizedClientException": AuthError,
    "InvalidSignatureException": AuthError,
    "ProvisionedThroughputExceededException": RateLimitedError,
    "ThrottlingException": RateLimitedError,
    "LimitExceededException": RateLimitedError,
    "InvalidImageFormatException": BadImageError,
    "ImageTooLargeException": BadImageError,
    "InvalidS3ObjectException": BadImageError,
    "InvalidParameterException": BadImageError,
    "InternalServerError": ServerError,
    "ServiceUnavailableException": ServerError,
}


class _BoundingBox(VendorPayload):
    Left: float = 0.0
    Top: float = 0.0
    Width: float = 0.0
    Height: float = 0.0


class _Instance(VendorPayload):
    BoundingBox: _BoundingBox | None = None
    Confidence: float = 0.0


class _Label(VendorPayload):
    Name: str
    Confidence: float
    Instances: list[_Instance] = []


class _Labels(VendorPayload):
    Labels: list[_Label]


class _ModerationLabel(VendorPayload):
    Name: str
    Confidence: float
    ParentName: str | None = ""
    TaxonomyLevel: int | None = None


class _Moderation(VendorPayload):
    ModerationLabels: list[_ModerationLabel]


class _Geometry(VendorPayload):
    BoundingBox: _BoundingBox | None = None


class _TextDetection(VendorPayload):
    DetectedText: str
    Type: str
    Confidence: float | None = None
    Geometry: _Geometry | None = None


class _Text(VendorPayload):
    TextDetections: list[_TextDetection]


def _box(raw: _BoundingBox) -> Box:
    def clamp(value: float) -> float:
        return min(1.0, max(0.0, value))

    left, top = clamp(raw.Left), clamp(raw.Top)
    return Box(x=left, y=top, width=clamp(min(raw.Width, 1.0 - left)), height=clamp(min(raw.Height, 1.0 - top)))


def moderation_category(name: str, parent: str | None, parents: Mapping[str, str] | None = None) -> str:
    """The house category of a label: the first top-level category up its parent chain.

    The chain is the label's own ``ParentName``, then, for each ancestor, the parent that the same answer
    gives it (``parents``, lower case), else the taxonomy's (``PARENTS``). No top-level category on the
    way (an unknown label, a loop): ``other``.
    """
    current = name.strip().lower()
    given = (parent or "").strip().lower()
    seen: set[str] = set()
    while current and current not in seen:
        if current in MODERATION:
            return MODERATION[current]
        seen.add(current)
        current = given or (parents or {}).get(current) or PARENTS.get(current, "")
        given = ""
    return "other"


def normalize(feature: str, payload: Any) -> ProviderOutput:
    """Pure: one API answer -> the house schema. An answer that does not fit its payload model, or a value
    the house models refuse (a confidence above 100), is a bad response: constructing a house model
    checks nothing, so the output is checked here."""
    try:
        output = _normalize(feature, payload)
    except PayloadError as exc:
        raise unexpected_payload(PROVIDER, exc, feature) from None
    return fitted(PROVIDER, output, feature)


def _normalize(feature: str, payload: Any) -> ProviderOutput:
    if feature == "labels":
        labels = parse(payload, _Labels).Labels
        return ProviderOutput(
            labels=[Label(name=lab.Name.lower(), confidence=lab.Confidence / 100, provider=PROVIDER) for lab in labels],
            objects=[
                Detection(
                    name=lab.Name.lower(), confidence=i.Confidence / 100, box=_box(i.BoundingBox), provider=PROVIDER
                )
                for lab in labels
                for i in lab.Instances
                if i.BoundingBox is not None
            ],
        )
    if feature == "moderation":
        found = parse(payload, _Moderation).ModerationLabels
        answered = {m.Name.strip().lower(): (m.ParentName or "").strip().lower() for m in found if m.ParentName}
        return ProviderOutput(
            moderation=[
                ModerationCategory(
                    name=moderation_category(m.Name, m.ParentName, answered),  # type: ignore[arg-type]
                    confidence=m.Confidence / 100,
                    provider=PROVIDER,
                    source_label=m.Name if not m.ParentName else f"{m.ParentName}/{m.Name}",
                )
                for m in found
            ]
        )
    if feature == "text":
        lines = [t for t in parse(payload, _Text).TextDetections if t.Type == "LINE"]
        return ProviderOutput(
            text=[
                TextItem(
                    text=t.DetectedText,
                    confidence=None if t.Confidence is None else t.Confidence / 100,
                    box=_box(t.Geometry.BoundingBox) if t.Geometry and t.Geometry.BoundingBox else None,
                    provider=PROVIDER,
                )
                for t in lines
            ]
        )
    raise ValueError(f"unknown Rekognition feature {feature!r}")


def error_for(exc: Exception) -> ProviderError:
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return ProviderTimeoutError(PROVIDER, f"no answer in time ({type(exc).__name__})")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        cls = ERRORS.get(
            code,
            ServerError
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) >= 500
            else BadResponseError,
        )
        if cls is AuthError:
            return AuthError(PROVIDER, f"{code}: the function's role needs rekognition:Detect* ({message})")
        return cls(PROVIDER, f"{code}: {message}")
    if isinstance(exc, BotoCoreError):
        return ServerError(PROVIDER, f"{type(exc).__name__}: {exc}")
    return BadResponseError(PROVIDER, f"unexpected {type(exc).__name__}: {exc}")


# Per try: botocore's own defaults would be 60 s each; these are the longest a try may take when time is
# plentiful. Near the deadline a try gets what is left (less SAFETY_MARGIN), in quarter seconds.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
SAFETY_MARGIN = 1.0
MIN_TRY_SECONDS = 0.5
MAX_BACKOFF = 8.0
_CACHED_CLIENTS = 8

ClientFactory = Callable[[float, float], Any]


def try_timeouts(budget: float) -> tuple[float, float]:
    """(connect, read) timeouts for one try that together fit ``budget`` seconds, in quarter seconds.

    botocore's read timeout bounds each wait for bytes, and Rekognition answers with one small JSON body
    once it has finished, so connect + read bounds the try.
    """
    per_try = math.floor(min(CONNECT_TIMEOUT + READ_TIMEOUT, budget) * 4) / 4
    connect = min(CONNECT_TIMEOUT, max(0.25, math.floor(per_try) / 4))  # a quarter, in quarter seconds
    return connect, max(0.25, per_try - connect)


def boto3_client_factory() -> ClientFactory:
    """Rekognition clients with the given timeouts and no botocore retries (the adapter retries)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    lock = threading.Lock()

    def build(connect: float, read: float) -> Any:
        config = Config(
            connect_timeout=connect, read_timeout=read, retries={"mode": "standard", "total_max_attempts": 1}
        )
        with lock:  # a session is not safe to build clients from in several threads at once
            return session.client("rekognition", config=config)

    return build


def fit_side(image: DecodedImage) -> int | None:
    """The long side that fits the image into FIT_LONG x FIT_SHORT (either way up); None when it fits."""
    long, short = max(image.width, image.height), min(image.width, image.height)
    scale = min(FIT_LONG / long, FIT_SHORT / short) if long and short else 1.0
    return None if scale >= 1.0 else max(1, math.floor(long * scale))


class RekognitionProvider(Provider):
    name: ClassVar[str] = PROVIDER
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"labels", "moderation", "text", "objects"})
    accepted_formats: ClassVar[frozenset[str]] = frozenset({"jpeg", "png"})
    max_upload_bytes: ClassVar[int] = BYTES_LIMIT
    price_per_call: ClassVar[float] = 0.001  # list price per image analysed, first tier, per API
    enabled_by: ClassVar[str] = "REKOGNITION_FEATURES"

    def __init__(self, client: Any, features: tuple[str, ...], max_labels: int, min_confidence: int) -> None:
        self.client = client
        self.features = features
        # DetectLabels answers objects (its instances with boxes) as well as labels.
        self.enabled: frozenset[Capability] = frozenset(FEATURES[f] for f in features) | (
            frozenset({"objects"}) if "labels" in features else frozenset()
        )
        self.max_labels = max_labels
        self.min_confidence = min_confidence
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(features)), thread_name_prefix="rekognition")
        # A client per (connect, read) pair: a client's timeouts are fixed when it is built.
        self.client_factory: ClientFactory = lambda connect, read: client
        self.max_attempts = 3
        self.base_delay = 0.5
        self.sleep: Callable[[float], None] = time.sleep
        self.random: Callable[[], float] = _random.random
        self._clients: dict[tuple[float, float], Any] = {}
        self._clients_lock = threading.Lock()

    @classmethod
    def create(cls, deps: ProviderDeps) -> RekognitionProvider:
        settings = deps.settings
        # Tests pass one client (its timeouts are then theirs) or a factory of (connect, read) -> client.
        client = deps.extra.get("rekognition_client")
        factory = deps.extra.get("rekognition_client_factory")
        raw = settings.vendor("REKOGNITION_", "FEATURES", ",".join(DEFAULT_FEATURES))
        features = tuple(dict.fromkeys(f.strip().lower() for f in raw.split(",") if f.strip()))
        unknown = [f for f in features if f not in FEATURES]
        if unknown or not features:
            raise ValueError(f"REKOGNITION_FEATURES must name some of {', '.join(FEATURES)}, got {raw!r}")
        provider = cls(
            client,
            features,
            int_setting(settings.vendor("REKOGNITION_", "MAX_LABELS"), "REKOGNITION_MAX_LABELS", 1, 1000, 25),
            int_setting(settings.vendor("REKOGNITION_", "MIN_CONFIDENCE"), "REKOGNITION_MIN_CONFIDENCE", 0, 100, 55),
        )
        if factory is not None:
            provider.client_factory = factory
        elif client is None:
            provider.client_factory = boto3_client_factory()
        provider.max_attempts = max(1, settings.max_attempts_per_call)
        provider.base_delay = settings.retry_base_delay_seconds
        provider.sleep = deps.extra.get("sleep", time.sleep)
        provider.random = deps.extra.get("random", _random.random)
        return provider

    def image_parameter(self, request: AnalysisRequest) -> dict[str, Any]:
        image = request.image
        # Only with a version id: in an unversioned bucket the key may hold newer bytes by the time Rekognition
        # reads it, and its verdict would be cached under the sha256 of the bytes hashed here.
        if (
            image.format in self.accepted_formats
            and BYTES_LIMIT < image.size_bytes <= S3_LIMIT
            and request.bucket
            and request.version_id
        ):
            return {"S3Object": {"Bucket": request.bucket, "Name": request.key, "Version": request.version_id}}
        payload, _ = image.encoded_for(self.accepted_formats, BYTES_LIMIT, fit_side(image))
        return {"Bytes": payload}

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        asked = request.capabilities
        wanted = [
            f for f in self.features if asked is None or FEATURES[f] in asked or (f == "labels" and "objects" in asked)
        ]
        if not wanted:
            return ProviderOutput()
        image = self.image_parameter(request)
        if request.deadline.meter is not None:
            for _ in wanted:  # one billed request per feature; an S3Object reference sends no image bytes
                request.deadline.meter.record(len(image.get("Bytes", b"")))
        deadline = request.deadline
        if deadline.remaining() - SAFETY_MARGIN < MIN_TRY_SECONDS:
            raise ProviderTimeoutError(PROVIDER, "no time left in this invocation")
        futures = {feature: self._pool.submit(self._call, feature, image, deadline) for feature in wanted}
        outputs, raw, errors = [], {}, []
        for feature, future in futures.items():
            try:
                # Each try is bounded to end before the deadline; this wait is only a backstop.
                answer = future.result(timeout=max(0.0, deadline.remaining()))
            except ProviderError as exc:
                errors.append(exc)
                continue
            except TimeoutError:
                errors.append(ProviderTimeoutError(PROVIDER, f"{feature}: no answer before the invocation's deadline"))
                continue
            answer.pop("ResponseMetadata", None)
            raw[feature] = answer
            outputs.append(normalize(feature, answer))
        if errors:
            lasting = [e for e in errors if not e.retryable]
            raise (lasting or errors)[0]
        merged = ProviderOutput(raw=raw)
        for output in outputs:
            merged.labels += output.labels
            merged.objects += output.objects
            merged.text += output.text
            if output.moderation is not None:
                merged.moderation = (merged.moderation or []) + output.moderation
        return merged

    def _call(self, feature: str, image: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        """One feature's request, retried (throttling, 5xx, timeouts) only while another try fits."""
        attempt = 0
        while True:
            budget = deadline.remaining() - SAFETY_MARGIN
            if budget < MIN_TRY_SECONDS:
                raise ProviderTimeoutError(PROVIDER, f"{feature}: no time left for a try before the deadline")
            attempt += 1
            try:
                return self._invoke(self._client(budget), feature, image)
            except (ClientError, BotoCoreError) as exc:
                error = error_for(exc)
            if not error.retryable or attempt >= self.max_attempts:
                raise error
            delay = self.random() * min(MAX_BACKOFF, self.base_delay * 2 ** (attempt - 1))
            if delay + MIN_TRY_SECONDS > deadline.remaining() - SAFETY_MARGIN:
                raise error
            self.sleep(delay)

    def _client(self, budget: float) -> Any:
        timeouts = try_timeouts(budget)
        with self._clients_lock:
            client = self._clients.get(timeouts)
            if client is None:
                if len(self._clients) >= _CACHED_CLIENTS:
                    self._clients.pop(next(iter(self._clients)))
                client = self._clients[timeouts] = self.client_factory(*timeouts)
            return client

    def _invoke(self, client: Any, feature: str, image: dict[str, Any]) -> dict[str, Any]:
        if feature == "labels":
            return client.detect_labels(Image=image, MaxLabels=self.max_labels, MinConfidence=self.min_confidence)
        if feature == "moderation":
            return client.detect_moderation_labels(Image=image, MinConfidence=self.min_confidence)
        return client.detect_text(Image=image)
