"""The provider seam: every analyzer, offline or vendor, turns one prepared image into a ProviderOutput.

Adding a vendor touches one file (``providers/<vendor>.py`` with one class) and one registry line.
Normalization is a pure function of the vendor payload; request code lives in the class.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from image_analysis.models import (
    AIGenerated,
    AltText,
    Classification,
    Color,
    Deepfake,
    Detection,
    Label,
    ModerationCategory,
    Provenance,
    Quality,
    TextItem,
)

if TYPE_CHECKING:
    import httpx

    from image_analysis.credentials import Credentials
    from image_analysis.imaging import DecodedImage
    from image_analysis.settings import Settings

Capability = Literal[
    "image_facts",
    "labels",
    "moderation",
    "colors",
    "objects",
    "faces",
    "text",
    "alt_texts",
    "classification",
    "ai_generated",
    "deepfake",
    "quality",
    "celebrities",
    "provenance",
]


class ProviderOutput(BaseModel):
    """What one provider found: only the sections it produces are set."""

    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = []
    objects: list[Detection] = []
    faces: list[Detection] = []
    celebrities: list[Detection] = []
    text: list[TextItem] = []
    alt_texts: list[AltText] = []
    colors: list[Color] = []
    classification: Classification | None = None
    moderation: list[ModerationCategory] | None = None
    ai_generated: AIGenerated | None = None
    deepfake: Deepfake | None = None
    quality: Quality | None = None
    provenance: Provenance | None = None
    phash: str | None = None
    # The vendor's own answers, by endpoint, kept for re-normalization.
    raw: dict[str, Any] = {}


class Deadline:
    """Seconds left in this invocation; no call may run past it."""

    def __init__(self, remaining_seconds: float, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + remaining_seconds

    @classmethod
    def from_lambda_context(cls, context: Any, default: float = 900.0) -> Deadline:
        getter = getattr(context, "get_remaining_time_in_millis", None)
        return cls(getter() / 1000.0 if getter else default)

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())


@dataclass(frozen=True)
class AnalysisRequest:
    image: DecodedImage
    # Opaque id for vendors (a hash): never the S3 key, which may identify the user.
    object_id: str
    deadline: Deadline
    bucket: str = ""
    key: str = ""
    version_id: str | None = None


@dataclass
class ProviderDeps:
    """What adapters are built with; tests pass their own clients and transports."""

    settings: Settings
    credentials: Credentials
    http: httpx.Client | None = None
    s3: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    # Formats (Pillow names, lower case) and the largest upload the vendor accepts.
    accepted_formats: ClassVar[frozenset[str]] = frozenset({"jpeg", "png"})
    max_upload_bytes: ClassVar[int] = 10 * 1024 * 1024

    @classmethod
    @abstractmethod
    def create(cls, deps: ProviderDeps) -> Provider:
        """Build the adapter from settings; cheap, no network."""

    @abstractmethod
    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        """Analyze one image; raise ``ProviderError`` subclasses for every failure."""
