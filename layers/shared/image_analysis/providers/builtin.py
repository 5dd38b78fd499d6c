"""The offline provider that always runs: colors, quality, a near-duplicate hash, provenance and an AI verdict.

It needs no key and no network, so every result has these sections even when every vendor is down.
Pixel work reads only the <=512 px working copy; provenance reads the original bytes' metadata. For a
file of several frames it runs on each analyzed frame: the pixel work per frame, provenance (a property of
the file) with the first.
"""

from __future__ import annotations

from typing import ClassVar

from image_analysis.analyzers.colors import dominant_colors
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
        provenance, ai_generated = inspect(image.file, provider=self.name) if image.frame_index == 0 else (None, None)
        return ProviderOutput(
            colors=dominant_colors(working, provider=self.name),
            quality=measure_quality(working, provider=self.name),
            phash=dhash(working),
            provenance=provenance,
            ai_generated=ai_generated,
        )
