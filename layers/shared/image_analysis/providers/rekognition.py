"""Amazon Rekognition: labels with boxes (DetectLabels), moderation (DetectModerationLabels) and text
(DetectText), through boto3 and the function's IAM role: no key.

Bytes go in the request up to Rekognition's 5 MB limit (JPEG or PNG; other formats are converted);
a larger JPEG/PNG original is read by Rekognition from S3 directly (``S3Object``, up to 15 MB), so the
function does not send the bytes again. Confidences are 0..100 and become 0..1; boxes are already
fractions of the image. Moderation labels map through an explicit table into the house categories,
second-level labels through their top-level parent; an unknown label is kept as ``other``.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from pydantic import ValidationError

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
from image_analysis.providers.common import VendorPayload, int_setting

PROVIDER = "rekognition"
BYTES_LIMIT = 5 * 1024 * 1024
S3_LIMIT = 15 * 1024 * 1024
FEATURES: Mapping[str, Capability] = {"labels": "labels", "moderation": "moderation", "text": "text"}
DEFAULT_FEATURES = ("labels", "moderation")

# Rekognition's moderation taxonomy (v6 top-level names and v7's) -> house categories.
MODERATION: Mapping[str, str] = {
    "explicit nudity": "explicit",
    "explicit": "explicit",
    "explicit sexual activity": "explicit",
    "sex toys": "explicit",
    "nudity": "explicit",
    "suggestive": "suggestive",
    "non-explicit nudity of intimate parts and kissing": "suggestive",
    "swimwear or underwear": "suggestive",
    "violence": "violence",
    "visually disturbing": "violence",
    "graphic violence": "violence",
    "weapons": "violence",
    "drugs": "drugs",
    "tobacco": "drugs",
    "alcohol": "drugs",
    "drugs & tobacco": "drugs",
    "drugs & tobacco paraphernalia & use": "drugs",
    "hate symbols": "hate",
    "rude gestures": "other",
    "gambling": "other",
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


def moderation_category(name: str, parent: str | None) -> str:
    """The house category of a label, through its top-level parent when it has one."""
    for candidate in (name, parent or ""):
        category = MODERATION.get(candidate.strip().lower())
        if category:
            return category
    return "other"


def normalize(feature: str, payload: Any) -> ProviderOutput:
    """Pure: one API answer -> the house schema."""
    try:
        if feature == "labels":
            labels = _Labels.model_validate(payload).Labels
            return ProviderOutput(
                labels=[
                    Label(name=lab.Name.lower(), confidence=lab.Confidence / 100, provider=PROVIDER) for lab in labels
                ],
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
            found = _Moderation.model_validate(payload).ModerationLabels
            return ProviderOutput(
                moderation=[
                    ModerationCategory(
                        name=moderation_category(m.Name, m.ParentName),  # type: ignore[arg-type]
                        confidence=m.Confidence / 100,
                        provider=PROVIDER,
                        source_label=m.Name if not m.ParentName else f"{m.ParentName}/{m.Name}",
                    )
                    for m in found
                ]
            )
        if feature == "text":
            lines = [t for t in _Text.model_validate(payload).TextDetections if t.Type == "LINE"]
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
    except ValidationError as exc:
        raise BadResponseError(PROVIDER, f"unexpected {feature} answer: {exc.errors()[0]['msg']}") from None
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


class RekognitionProvider(Provider):
    name: ClassVar[str] = PROVIDER
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"labels", "moderation", "text", "objects"})
    accepted_formats: ClassVar[frozenset[str]] = frozenset({"jpeg", "png"})
    max_upload_bytes: ClassVar[int] = BYTES_LIMIT
    price_per_call: ClassVar[float] = 0.001  # list price per image analysed, first tier, per API

    def __init__(self, client: Any, features: tuple[str, ...], max_labels: int, min_confidence: int) -> None:
        self.client = client
        self.features = features
        self.max_labels = max_labels
        self.min_confidence = min_confidence
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(features)), thread_name_prefix="rekognition")

    @classmethod
    def create(cls, deps: ProviderDeps) -> RekognitionProvider:
        settings = deps.settings
        client = deps.extra.get("rekognition_client")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "rekognition",
                config=Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3}),
            )
        raw = settings.vendor("REKOGNITION_", "FEATURES", ",".join(DEFAULT_FEATURES))
        features = tuple(dict.fromkeys(f.strip().lower() for f in raw.split(",") if f.strip()))
        unknown = [f for f in features if f not in FEATURES]
        if unknown or not features:
            raise ValueError(f"REKOGNITION_FEATURES must name some of {', '.join(FEATURES)}, got {raw!r}")
        return cls(
            client,
            features,
            int_setting(settings.vendor("REKOGNITION_", "MAX_LABELS"), "REKOGNITION_MAX_LABELS", 1, 1000, 25),
            int_setting(settings.vendor("REKOGNITION_", "MIN_CONFIDENCE"), "REKOGNITION_MIN_CONFIDENCE", 0, 100, 55),
        )

    def image_parameter(self, request: AnalysisRequest) -> dict[str, Any]:
        image = request.image
        if image.format in self.accepted_formats and BYTES_LIMIT < image.size_bytes <= S3_LIMIT and request.bucket:
            location = {"Bucket": request.bucket, "Name": request.key}
            if request.version_id:
                location["Version"] = request.version_id
            return {"S3Object": location}
        payload, _ = image.encoded_for(self.accepted_formats, BYTES_LIMIT)
        return {"Bytes": payload}

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        asked = request.capabilities
        wanted = [
            f for f in self.features if asked is None or FEATURES[f] in asked or (f == "labels" and "objects" in asked)
        ]
        if not wanted:
            return ProviderOutput()
        image = self.image_parameter(request)
        if "Bytes" in image and request.deadline.meter is not None:
            for _ in wanted:
                request.deadline.meter.record(len(image["Bytes"]))
        timeout = request.deadline.remaining()
        if timeout <= 1.0:
            raise ProviderTimeoutError(PROVIDER, "no time left in this invocation")
        futures = {feature: self._pool.submit(self._call, feature, image) for feature in wanted}
        outputs, raw, errors = [], {}, []
        for feature, future in futures.items():
            try:
                answer = future.result(timeout=timeout)
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

    def _call(self, feature: str, image: dict[str, Any]) -> dict[str, Any]:
        try:
            if feature == "labels":
                return self.client.detect_labels(
                    Image=image, MaxLabels=self.max_labels, MinConfidence=self.min_confidence
                )
            if feature == "moderation":
                return self.client.detect_moderation_labels(Image=image, MinConfidence=self.min_confidence)
            return self.client.detect_text(Image=image)
        except (ClientError, BotoCoreError) as exc:
            raise error_for(exc) from None
