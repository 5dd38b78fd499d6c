"""BuiltinProvider end to end: decode() then analyze() on real fixtures and awkward formats."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from image_analysis.analyzers.phash import dhash, hamming
from image_analysis.credentials import Credentials
from image_analysis.imaging import DecodedImage, decode
from image_analysis.models import AnalysisResult
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps, ProviderOutput
from image_analysis.providers.builtin import BuiltinProvider
from image_analysis.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "images"
MAX_PIXELS = 100_000_000


def _analyze(data: bytes) -> tuple[DecodedImage, ProviderOutput]:
    image = decode(data, MAX_PIXELS)
    request = AnalysisRequest(image=image, object_id="0" * 64, deadline=Deadline(30.0))
    return image, BuiltinProvider().analyze(request)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _hexes(output: ProviderOutput) -> dict[str, float]:
    return {c.hex: c.percent for c in output.colors}


def test_identity_and_creation_need_no_keys() -> None:
    settings = Settings(results_table="results", alerts_topic_arn="arn:aws:sns:eu-west-1:123456789012:alerts")
    provider = BuiltinProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings)))

    assert isinstance(provider, BuiltinProvider)
    assert provider.name == "builtin"
    assert provider.capabilities == {"image_facts", "colors", "quality", "provenance", "ai_generated"}
    assert provider_class("builtin") is BuiltinProvider


def test_a_photo_gets_every_section() -> None:
    image, output = _analyze((FIXTURES / "skimage-rocket.jpg").read_bytes())

    assert output.phash is not None and re.fullmatch(r"[0-9a-f]{16}", output.phash)
    assert output.phash == dhash(image.working)
    assert 1 <= len(output.colors) <= 5
    assert output.quality is not None
    assert output.quality.is_blurry is False and output.quality.exposure == "normal"
    assert output.provenance is not None and output.provenance.c2pa_manifest is False
    assert output.ai_generated is not None and output.ai_generated.verdict == "unknown"
    assert {c.provider for c in output.colors} | {output.quality.provider, output.ai_generated.provider} == {"builtin"}
    # The vendor sections stay empty: this provider does not produce them.
    assert output.labels == [] and output.moderation is None and output.raw == {}


def test_c2pa_fixture_reports_its_manifest() -> None:
    _, output = _analyze((FIXTURES / "c2pa-C.jpg").read_bytes())

    assert output.provenance is not None
    assert output.provenance.c2pa_manifest is True
    assert output.provenance.digital_source_type == "algorithmicMedia"


def test_generated_png_is_flagged_ai_through_the_provider() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42")
    _, output = _analyze(_save(Image.new("RGB", (64, 64), "purple"), "PNG", pnginfo=info))

    assert output.ai_generated is not None
    assert output.ai_generated.verdict == "ai"
    assert output.ai_generated.generators == {"Automatic1111": 0.85}


def test_result_item_takes_the_hash() -> None:
    _, output = _analyze((FIXTURES / "skimage-rocket.jpg").read_bytes())

    result = AnalysisResult(
        bucket="uploads", key="a.jpg", status="succeeded", analyzed_at="2025-01-01T00:00:00Z", phash=output.phash
    )

    assert result.phash == output.phash


# --- awkward inputs: every one goes through decode() and analyze() ------------------------------------------


def test_animated_gif_uses_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 48), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    image, output = _analyze(data)

    assert image.frames == 3
    assert _hexes(output) == {"#ff0000": 1.0}
    assert output.quality is not None and output.quality.sharpness == 0.0


def test_palette_png_with_alpha_is_composited_on_white() -> None:
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.paste(1, (32, 0, 64, 64))  # the right half uses the transparent palette entry

    image, output = _analyze(_save(palette, "PNG", transparency=1))

    assert image.mode == "P"
    hexes = _hexes(output)
    assert set(hexes) == {"#ff0000", "#ffffff"}
    assert all(share == pytest.approx(0.5, abs=0.02) for share in hexes.values())


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    ramp = Image.linear_gradient("L").resize((256, 256)).point(lambda v: v * 257, mode="I").convert("I;16")

    image, output = _analyze(_save(ramp, "PNG"))

    assert image.mode == "I;16"
    assert output.quality is not None
    # A black-to-white ramp: mid-grey on average, wide spread; clipping would have made it white.
    assert output.quality.brightness == pytest.approx(0.5, abs=0.03)
    assert output.quality.contrast is not None and output.quality.contrast > 0.25
    assert len(output.colors) == 5


def test_cmyk_jpeg_colors_come_out_in_rgb() -> None:
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # full magenta + yellow: red
    cmyk.paste((255, 255, 0, 0), (32, 0, 64, 64))  # full cyan + magenta: blue

    image, output = _analyze(_save(cmyk, "JPEG", quality=95))

    assert image.mode == "CMYK"
    names = {c.name: c.percent for c in output.colors}
    assert set(names) == {"red", "blue"}
    assert all(share == pytest.approx(0.5, abs=0.05) for share in names.values())


def test_exif_rotated_jpeg_is_analyzed_upright() -> None:
    upright = Image.new("RGB", (32, 64), (255, 0, 0))
    upright.paste((0, 0, 255), (0, 32, 32, 64))  # red on top, blue below
    upright.paste((255, 255, 255), (0, 0, 8, 8))  # a marker in the top left corner
    # Stored rotated 90 degrees counter-clockwise, with orientation 6 telling viewers to turn it back.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6

    image, output = _analyze(_save(stored, "JPEG", quality=95, exif=exif))

    assert image.orientation == 6
    assert image.working.size == (32, 64)
    assert output.phash is not None
    assert hamming(output.phash, dhash(upright)) <= 4
    assert hamming(output.phash, dhash(stored)) > 10


def test_a_measure_out_of_its_range_fails_the_builtin_run_not_the_records_write(monkeypatch) -> None:
    # Models are not checked when built: the provider checks its own sections, as a vendor's adapter does,
    # so that a bad measure is this provider's failure (a partial result), never an item the store refuses.
    from image_analysis.models import Quality
    from image_analysis.providers import builtin
    from image_analysis.structs import ValidationError

    monkeypatch.setattr(
        builtin, "measure_quality", lambda working, provider: Quality(brightness=1.5, provider=provider)
    )
    with pytest.raises(ValidationError, match=r"quality\.brightness"):
        _analyze(_save(Image.new("RGB", (64, 48), "grey"), "PNG"))
