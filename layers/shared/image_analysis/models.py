"""The public data contract: one result item per analyzed object version, and the alert.

These models are the single source of the JSON Schema in ``docs/schema/`` (``make schema``) and of what
the store writes. Vendor payloads never appear here: each adapter parses its own private model and maps
it into these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from image_analysis.structs import HouseModel

# 2: provider status ``partial``; ``frames_analyzed``/``frames_flagged`` and a category's ``frame``; ``pdq``,
# ``pdq_quality``, ``matches`` and the flag ``known_bad`` (hash banks); ``review`` (human review).
SCHEMA_VERSION = 2

Status = Literal["succeeded", "partial", "failed", "rejected", "skipped"]
ProviderStatus = Literal["succeeded", "partial", "failed", "rejected", "skipped", "cached"]
Verdict = Literal["ai", "human", "unknown"]
Flag = Literal["nsfw", "ai_generated", "deepfake", "known_bad"]
ReviewStatus = Literal["pending", "approved", "rejected", "escalated"]
HouseCategory = Literal["explicit", "suggestive", "violence", "drugs", "hate", "other", "safe"]
ErrorCode = Literal[
    "empty_object",
    "not_an_image",
    "truncated",
    "too_large",
    "too_many_pixels",
    "unsupported_format",
    "object_gone",
    "object_unreadable",
    "auth",
    "quota_exhausted",
    "rate_limited",
    "timeout",
    "bad_image",
    "bad_response",
    "server_error",
]

Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]

# ``raw`` entries stay plain JSON values in code (merge.pack_raw and fit_result build and shed them);
# the published schema names their three shapes.
RAW_ENTRY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "base64 of the zlib-compressed JSON answer"},
        {
            "type": "object",
            "description": "The answer as an object in the artifacts bucket (raw/ prefix), gzip JSON.",
            "properties": {
                "s3": {"type": "string", "pattern": r"^s3://[^/]+/raw/.+\.json\.gz$"},
                "bytes": {"type": "integer", "minimum": 0, "description": "Size of the stored object."},
            },
            "required": ["s3", "bytes"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "description": "Neither kept nor stored: the size of its encoded answer (see omitted).",
            "properties": {"omitted_bytes": {"type": "integer", "minimum": 0}},
            "required": ["omitted_bytes"],
            "additionalProperties": False,
        },
    ]
}


class _Model(HouseModel, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ErrorInfo(_Model, kw_only=True):
    code: ErrorCode
    message: str


class Box(_Model, kw_only=True):
    """A rectangle in fractions (0..1) of the image's width and height, origin top left."""

    x: Annotated[float, Meta(ge=0.0, le=1.0)]
    y: Annotated[float, Meta(ge=0.0, le=1.0)]
    width: Annotated[float, Meta(ge=0.0, le=1.0)]
    height: Annotated[float, Meta(ge=0.0, le=1.0)]


class Label(_Model, kw_only=True):
    name: str
    confidence: Confidence
    provider: str


class Detection(_Model, kw_only=True):
    """An object or a face found at a place in the image."""

    name: str | None = None
    confidence: Confidence
    box: Box
    provider: str


class TextItem(_Model, kw_only=True):
    text: str
    confidence: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    box: Box | None = None
    provider: str


class AltText(_Model, kw_only=True):
    text: str
    confidence: Confidence
    provider: str


class Color(_Model, kw_only=True):
    hex: Annotated[str, Meta(pattern=r"^#[0-9a-f]{6}$")]
    percent: Annotated[float, Meta(ge=0.0, le=1.0)]
    name: str | None = None
    provider: str


class ClassScore(_Model, kw_only=True):
    label: str
    score: Confidence


class Classification(_Model, kw_only=True):
    label: str
    confidence: Confidence
    scores: list[ClassScore] = []
    provider: str


class ModerationCategory(_Model, kw_only=True):
    name: HouseCategory
    confidence: Confidence
    provider: str
    source_label: str
    frame: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(description="For a file of several frames: the 0-based frame this answer is about."),
    ] = None


class Moderation(_Model, kw_only=True):
    nsfw_score: Confidence
    categories: list[ModerationCategory] = []


class AIGenerated(_Model, kw_only=True):
    verdict: Verdict
    confidence: Annotated[
        Annotated[float, Meta(ge=0.0, le=1.0)] | None, Meta(description="That the image is AI-made.")
    ] = None
    generators: dict[str, float] = {}
    evidence: list[str] = []
    provider: str


class DeepfakeRegion(_Model, kw_only=True):
    box: Box
    confidence: Confidence


class Deepfake(_Model, kw_only=True):
    detected: bool
    confidence: Confidence
    regions: list[DeepfakeRegion] = []
    provider: str


class Quality(_Model, kw_only=True):
    """Cheap signals computed offline; vendors that grade quality add their own score."""

    sharpness: Annotated[
        Annotated[float, Meta(ge=0.0)] | None, Meta(description="Variance of the Laplacian on a 512 px grey copy.")
    ] = None
    brightness: Annotated[
        Annotated[float, Meta(ge=0.0, le=1.0)] | None, Meta(description="Mean luminance, 0 black .. 1 white.")
    ] = None
    contrast: Annotated[
        Annotated[float, Meta(ge=0.0, le=1.0)] | None, Meta(description="Luminance standard deviation, 0..1.")
    ] = None
    is_blurry: bool | None = None
    exposure: Literal["under", "normal", "over"] | None = None
    score: Annotated[
        Annotated[float, Meta(ge=0.0, le=1.0)] | None, Meta(description="A vendor's overall quality score.")
    ] = None
    provider: str


class Provenance(_Model, kw_only=True):
    """What the file says about its own origin (C2PA, IPTC/XMP, generator metadata)."""

    c2pa_manifest: bool = False
    c2pa_remote_manifest: Annotated[bool, Meta(description="The file points at a remote manifest (never fetched).")] = (
        False
    )
    claim_generator: str | None = None
    digital_source_type: str | None = None
    software: str | None = None
    generator_metadata: Annotated[list[str], Meta(description="Names of generator metadata fields found.")] = []
    evidence: list[str] = []
    provider: str = "builtin"
    c2pa_proves_ai: Annotated[
        bool,
        Meta(
            description="The active C2PA manifest's signature validated and it declares a generative digitalSourceType."
        ),
    ] = False


class ProviderRun(_Model, kw_only=True):
    name: str
    status: Annotated[
        ProviderStatus,
        Meta(description="partial: some of the provider's endpoints answered; error names the missing sections."),
    ]
    latency_ms: Annotated[int, Meta(ge=0)]
    error: ErrorInfo | None = None
    calls: Annotated[Annotated[int, Meta(ge=0)] | None, Meta(description="Requests sent (tries included).")] = None
    calls_saved: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(description="Vendor requests a content-cache hit saved (those its answer took)."),
    ] = None
    bytes_sent: Annotated[
        Annotated[int, Meta(ge=0)] | None, Meta(description="Request bytes that left the account.")
    ] = None
    cost_units: Annotated[
        Annotated[float, Meta(ge=0)] | None, Meta(description="Estimated price of the calls, US dollars.")
    ] = None
    capabilities: Annotated[list[str], Meta(description="With ROUTING: what it was asked for.")] = []


class Usage(_Model, kw_only=True):
    calls_made: int = 0
    calls_saved: Annotated[int, Meta(description="Vendor requests saved by content-cache hits.")] = 0
    bytes_sent: int = 0
    estimated_cost: Annotated[float, Meta(description="US dollars, at the configured prices.")] = 0.0


class Reprocess(_Model, kw_only=True):
    """Why this result replaced an earlier one on purpose (``image-analysis reprocess``)."""

    id: str
    reason: str
    requested_at: str | None = None


class Quarantine(_Model, kw_only=True):
    """What QUARANTINE_TAGS did to the flagged object's tags."""

    applied: Annotated[list[str], Meta(description="Our tags now on the object: moderation, flags.")] = []
    left_out: Annotated[
        list[str],
        Meta(
            description="Our tags left off because the object's own tags took S3's 10 (theirs are never dropped); "
            "without moderation a quarantine policy does not cover the object."
        ),
    ] = []


class BankMatch(_Model, kw_only=True):
    """A hash-bank entry within the bank's distance of the image's PDQ hash (any rotation or flip)."""

    bank: str
    distance: Annotated[int, Meta(ge=0, le=256, description="Hamming distance between the two 256-bit PDQ hashes.")]
    label: str | None = None
    frame: Annotated[
        Annotated[int, Meta(ge=0)] | None, Meta(description="For an animation: the frame that matched.")
    ] = None


class Review(_Model, kw_only=True):
    """Human review of a flagged (or borderline) result; absent when no review is needed."""

    status: ReviewStatus
    reason: str | None = None
    decided_by: Annotated[
        Annotated[str, Meta()] | None, Meta(description="The deciding caller's identity (IAM ARN or user).")
    ] = None
    decided_at: str | None = None
    appeals: Annotated[int, Meta(ge=0)] = 0


class ResultLocation(_Model, kw_only=True):
    table: str
    pk: str
    sk: str


class AnalysisResult(_Model, kw_only=True):
    """One item of the results table: everything known about one object version."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None
    format: str | None = None
    width: Annotated[Annotated[int, Meta()] | None, Meta(description="As displayed: after the EXIF orientation.")] = (
        None
    )
    height: Annotated[Annotated[int, Meta()] | None, Meta(description="As displayed: after the EXIF orientation.")] = (
        None
    )
    orientation: Annotated[
        Annotated[int, Meta(ge=1, le=8)] | None, Meta(description="EXIF orientation tag, when present.")
    ] = None
    frames: Annotated[Annotated[int, Meta(ge=1)] | None, Meta(description="Frames in the file.")] = None
    frames_analyzed: Annotated[
        list[int],
        Meta(
            description="For more than one frame: the 0-based indexes of the frames analyzed. A sampled frame "
            "that could not be decoded (the file is cut off) is not among them, and the result is partial."
        ),
    ] = []
    frames_flagged: Annotated[
        list[int], Meta(description="For more than one frame: the 0-based indexes of those that reached a threshold.")
    ] = []
    sha256: str | None = None
    phash: Annotated[
        Annotated[str, Meta()] | None, Meta(description="64-bit difference hash as 16 hex digits, for near-duplicates.")
    ] = None
    pdq: Annotated[
        Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")] | None,
        Meta(description="Meta's PDQ perceptual hash (256 bits, 64 hex digits) of the image as stored (first frame)."),
    ] = None
    pdq_quality: Annotated[
        Annotated[int, Meta(ge=0, le=100)] | None,
        Meta(description="PDQ's quality score; under 50 the hash is neither matched nor banked."),
    ] = None
    matches: Annotated[
        list[BankMatch], Meta(description="Hash-bank entries within their bank's distance, nearest first.")
    ] = []
    status: Annotated[
        Status,
        Meta(
            description="succeeded; partial: a capability had no answer (a provider or a routed capability, or "
            "sampled frames of an animation that could not be decoded; error says which); failed (transient, "
            "retries exhausted); rejected (bad input); skipped (object gone or overwritten). The delivery gate's "
            "verdict=clean goes only on a succeeded result without flags (or a human approval)."
        ),
    ]
    error: Annotated[
        ErrorInfo | None,
        Meta(
            description="When status is not succeeded. Sampled frames that could not be decoded: code truncated, "
            "the message naming them (a provider's error, when there is one too, keeps its code and gains them)."
        ),
    ] = None
    attempts: int = 1
    providers: list[ProviderRun] = []
    labels: list[Label] = []
    objects: list[Detection] = []
    faces: list[Detection] = []
    celebrities: Annotated[list[Detection], Meta(description="Recognized public figures: name, confidence, box.")] = []
    text: list[TextItem] = []
    alt_texts: list[AltText] = []
    colors: list[Color] = []
    classification: Classification | None = None
    moderation: Moderation | None = None
    ai_generated: AIGenerated | None = None
    deepfake: Deepfake | None = None
    quality: Quality | None = None
    provenance: Provenance | None = None
    flags: list[Flag] = []
    answered_by: Annotated[
        dict[str, str | None],
        Meta(description="With ROUTING: the provider that answered each capability (null: none did)."),
    ] = {}
    usage: Usage | None = None
    reprocess: Reprocess | None = None
    quarantine: Quarantine | None = None
    review: Review | None = None
    raw: Annotated[
        dict[str, Annotated[Any, Meta(extra_json_schema=RAW_ENTRY_SCHEMA)]],
        Meta(
            description="Vendor responses kept for re-normalization, by provider: base64 of zlib-compressed JSON "
            "within the item's budget; a larger one as a gzip JSON object in the artifacts bucket (which never "
            "triggers analysis), deleted with the result; or, when that could not be stored, its size. Kept by "
            "default for flagged results only (RAW_ANSWERS=flagged; all: every result, none: no result); an "
            "unflagged result's raw is empty."
        ),
    ] = {}
    omitted: Annotated[
        dict[str, int],
        Meta(
            description="What was left out: to keep the item under DynamoDB's 400 KB, raw answers by provider "
            "(raw.<provider>, bytes) and section entries (e.g. labels, moderation.categories; entries dropped); "
            "frames: sampled frames of an animation that could not be decoded (the result is partial)."
        ),
    ] = {}
    analyzed_at: str
    schema_version: int = SCHEMA_VERSION
    alert_id: str | None = None


class Alert(_Model, kw_only=True):
    """The body of the SNS message sent once per flagged object version."""

    type: Literal["image.flagged"] = "image.flagged"
    alert_id: str
    flags: list[Flag]
    bucket: str
    key: str
    version_id: str | None = None
    sha256: str | None = None
    moderation: Moderation | None = None
    ai_generated: AIGenerated | None = None
    deepfake: Deepfake | None = None
    matches: Annotated[list[BankMatch] | None, Meta(description="With known_bad: the bank entries matched.")] = None
    analyzed_at: str
    result: ResultLocation
