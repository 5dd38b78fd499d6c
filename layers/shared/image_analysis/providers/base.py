"""The provider seam: every analyzer, offline or vendor, turns one prepared image into a ProviderOutput.

Adding a vendor touches one file (``providers/<vendor>.py`` with one class) and one registry line.
Normalization is a pure function of the vendor payload; request code lives in the class.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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
from image_analysis.structs import HouseModel

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


class ProviderOutput(HouseModel, kw_only=True, forbid_unknown_fields=True):
    """What one provider found: only the sections it produces are set."""

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
    # PDQ hashes (analyzers.pdq.PdqHash) of the analyzed frames (builtin), matched against the hash banks;
    # never cached or stored, so never read back from JSON.
    pdq: list[Any] = []
    # The vendor's own answers, by endpoint, kept for re-normalization.
    raw: dict[str, Any] = {}


class CallMeter:
    """Vendor requests sent and request bytes, counted where the requests leave (the HTTP layer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.bytes_sent = 0
        # Called once, as the first request leaves (the orchestrator's "this vendor has been asked").
        self.on_first_send: Callable[[], None] | None = None

    def record(self, body_bytes: int) -> None:
        with self._lock:
            self.calls += 1
            self.bytes_sent += body_bytes
            first, self.on_first_send = self.on_first_send, None
        if first is not None:
            first()


class Deadline:
    """Seconds left in this invocation; no call may run past it. Carries the meter of the provider
    whose calls it bounds, so that whatever sends the request can count it."""

    def __init__(self, remaining_seconds: float, clock: Any = time.monotonic, meter: CallMeter | None = None) -> None:
        self._clock = clock
        self._end = clock() + remaining_seconds
        self.meter = meter

    def reserving(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` earlier: what is left after it is kept for the work that follows."""
        child = Deadline(0.0, self._clock, self.meter)
        child._end = self._end - seconds
        return child

    def metered(self) -> Deadline:
        """The same deadline with a fresh meter (one per provider run)."""
        child = Deadline(0.0, self._clock, CallMeter())
        child._end = self._end
        return child

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
    # With ROUTING, the capabilities this provider is asked for (None: all it offers). An adapter may
    # use it to skip endpoints nobody asked for.
    capabilities: frozenset[str] | None = None


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
    # Bumped when the adapter's normalization changes, so cached answers from before are not reused.
    normalizer_version: ClassVar[str] = "1"
    # Whether the provider's ``ai_generated.verdict`` is its own decision (it flags at "ai" whatever the
    # confidence), rather than a reading of a score that AI_GENERATED_THRESHOLD decides.
    verdict_decides: ClassVar[bool] = False
    # Estimated price of one request in US dollars (list price; ``<VENDOR>_PRICE_PER_CALL`` overrides).
    price_per_call: ClassVar[float] = 0.0
    # What this configured instance has switched on (a subset of ``capabilities``): routing asks an
    # adapter only for these, and refuses at start-up a route to one it has not. ``enabled_by`` names the
    # setting that switches them, for that error message.
    enabled: frozenset[Capability]
    enabled_by: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def create(cls, deps: ProviderDeps) -> Provider:
        """Build the adapter from settings; cheap, no network."""

    @abstractmethod
    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        """Analyze one image; raise ``ProviderError`` subclasses for every failure."""
