"""The offline provider that always runs: colors, quality, near-duplicate hashes, provenance and an AI verdict.

It needs no key and no network, so every result has these sections even when every vendor is down.
Pixel work reads the <=512 px working copy (PDQ reads it with its EXIF rotation undone, or, for
transparent, palette and 16-bit images, the small ``convert("RGB")`` copy the decode made for it);
provenance reads the original bytes' metadata. For a file of several frames it runs on each analyzed
frame: the pixel work and the PDQ hash per frame (each with its ``frame``), provenance (a property of the
file) with the first.
"""

from __future__ import annotations

from typing import ClassVar

from image_analysis.analyzers.colors import dominant_colors
from image_analysis.analyzers.pdq import image_hash
from image_analysis.analyzers.phash import dhash
from image_analysis.analyzers.provenance import inspect
from image_analysis.analyzers.quality import measure_quality
from image_analysis.providers.base import AnalysisRequest, Capability, Provider, ProviderDeps, ProviderOutput
from image_analysis.structs import checked


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
        # Checked as a vendor's answer is: a value out of its range (a metadata field, a measure of an odd
        # image) fails this provider's run, not the record's write.
        sections = checked(
            ProviderOutput(
                colors=dominant_colors(working, provider=self.name),
                quality=measure_quality(working, provider=self.name),
                phash=dhash(working),
                provenance=provenance,
                ai_generated=ai_generated,
            )
        )
        # This frame's hash; ``frame`` is set for the frames of a file of several (the banks say which).
        # Made once per frame: the hash banks' screening of an animation may have made it already.
        return sections.model_copy(update={"pdq": [image_hash(image)]})
