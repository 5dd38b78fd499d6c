"""What the model uploads, what each upload should be found to be, and the moderation stand-in that finds it.

The flags come from two real analyses: builtin reads generator metadata (``ai_generated``), and a stand-in
moderation provider calls a mostly red picture explicit (``nsfw``). So the model knows each upload's
flags from its bytes alone.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any, ClassVar

from PIL import Image, PngImagePlugin

from image_analysis.models import ModerationCategory
from image_analysis.providers.base import AnalysisRequest, Provider, ProviderDeps, ProviderOutput

RED, BLUE, GREEN = (220, 20, 20), (20, 60, 200), (30, 160, 60)
GENERATOR_TEXT = "a castle on a hill\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234"


def _png(colour: tuple[int, int, int], generated: bool) -> bytes:
    info = PngImagePlugin.PngInfo()
    if generated:
        info.add_text("parameters", GENERATOR_TEXT)
    out = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


@dataclass(frozen=True)
class Content:
    name: str
    body: bytes
    flags: frozenset[str]
    # What the result's status is once analyzed: an image succeeds, anything else is rejected.
    status: str = "succeeded"

    @property
    def etag(self) -> str:
        return hashlib.md5(self.body).hexdigest()  # S3's ETag of a single-part upload

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def clean(self) -> bool:
        return self.status == "succeeded" and not self.flags


CONTENTS: dict[str, Content] = {
    c.name: c
    for c in (
        Content("blue", _png(BLUE, False), frozenset()),
        Content("green", _png(GREEN, False), frozenset()),
        Content("red", _png(RED, False), frozenset({"nsfw"})),
        Content("generated", _png(BLUE, True), frozenset({"ai_generated"})),
        Content("red-generated", _png(RED, True), frozenset({"nsfw", "ai_generated"})),
        Content("junk", b"these bytes are not an image", frozenset(), status="rejected"),
    )
}
BY_SHA256 = {c.sha256: c for c in CONTENTS.values()}
BY_ETAG = {c.etag: c for c in CONTENTS.values()}


class RedScanProvider(Provider):
    """A moderation vendor stand-in: explicit when the picture is mostly red. Its calls pass the model's
    switchboard as ``vendor.redscan``, so the model can make the vendor fail."""

    name: ClassVar[str] = "redscan"
    capabilities: ClassVar[frozenset[Any]] = frozenset({"moderation"})

    def __init__(self, board: Any = None) -> None:
        self.enabled = self.capabilities
        self.board = board

    @classmethod
    def create(cls, deps: ProviderDeps) -> RedScanProvider:
        return cls()

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        if self.board is None:
            return self._look(request)
        return self.board.call("vendor.redscan", {}, lambda: self._look(request))

    def _look(self, request: AnalysisRequest) -> ProviderOutput:
        r, g, b = request.image.working.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        explicit = r > 150 and g < 80 and b < 80
        return ProviderOutput(
            moderation=[
                ModerationCategory(
                    name="explicit" if explicit else "safe",
                    confidence=0.97 if explicit else 0.99,
                    provider=self.name,
                    source_label="red" if explicit else "not-red",
                )
            ],
            raw={"scan": {"explicit": explicit}},
        )
