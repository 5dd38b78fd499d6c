"""The offline provider that always runs: colors, quality, near-duplicate hashes, provenance and an AI verdict.

It needs no key and no network, so every result has these sections even when every vendor is down.
Pixel work reads the <=512 px working copy (PDQ reads it with its EXIF rotation undone, and the file's
first frame for transparent, palette and 16-bit images); provenance reads the original bytes' metadata.
"""

from __future__ import annotations

from typing import ClassVar

from image_analysis.analyzers.colors import dominant_colors
from image_analysis.analyzers.pdq import pdq_hash, stored_pixels
from image_analysis.analyzers.phash import dhash
from image_analysis.analyzers.provenance import inspect
from image_analysis.analyzers.quality import measure_quality
from image_analysis.providers.base import AnalysisRequest, Capability, Provider, ProviderDeps, ProviderOutput


class BuiltinProvider(Provider):
    name: ClassVar[str] = "builtin"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {"image_facts", "colors", "quality", "provenance", "ai_generated"}
    )

    price_per_call: ClassVar[float] = 0.0  # offline

    def __init__(self) -> None:
        self.enabled: frozenset[Capability] = self.capabilities

    @classmethod
    def create(cls, deps: ProviderDeps) -> BuiltinProvider:
        return cls()

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        image = request.image
        working = image.working
        provenance, ai_generated = inspect(image, provider=self.name)
        return ProviderOutput(
            colors=dominant_colors(working, provider=self.name),
            quality=measure_quality(working, provider=self.name),
            phash=dhash(working),
            # The first frame; the hash banks match it (``frame`` is set for files of several frames).
            pdq=[pdq_hash(stored_pixels(image), frame=0 if image.frames > 1 else None)],
            provenance=provenance,
            ai_generated=ai_generated,
        )
