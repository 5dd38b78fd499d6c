"""What counts as proof that an image is AI-made, enough to skip a paid AI-detection call."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from image_analysis.analyzers.provenance import C2paFindings, MetadataFindings, SourceType, assess
from image_analysis.imaging import decode
from image_analysis.orchestration import Orchestrator
from image_analysis.providers.base import AnalysisRequest, Deadline
from image_analysis.providers.builtin import BuiltinProvider
from image_analysis.routing import parse_routing
from tests.unit.test_orchestration import Fake, settings

GENERATIVE = SourceType("trainedAlgorithmicMedia", "c2pa")


def manifest(*types: SourceType, valid: bool = True) -> C2paFindings:
    return C2paFindings(
        manifest=True, valid=valid, validation_state="Valid" if valid else "Invalid", source_types=types
    )


@pytest.mark.parametrize(
    ("c2pa", "meta", "proof"),
    [
        (manifest(GENERATIVE), MetadataFindings(), True),
        (manifest(SourceType("compositeWithTrainedAlgorithmicMedia", "c2pa")), MetadataFindings(), True),
        (manifest(GENERATIVE, valid=False), MetadataFindings(), False),  # signature did not validate
        (manifest(SourceType("trainedAlgorithmicMedia", "c2pa ingredient")), MetadataFindings(), False),
        (C2paFindings(), MetadataFindings(source_types=("trainedAlgorithmicMedia",)), False),  # unsigned XMP
        (manifest(SourceType("digitalCapture", "c2pa")), MetadataFindings(), False),  # "human 0.2"
        (manifest(SourceType("algorithmicMedia", "c2pa")), MetadataFindings(), False),
    ],
)
def test_only_a_validated_active_manifest_with_a_generative_source_type_is_a_proof(c2pa, meta, proof):
    provenance, _ = assess(c2pa, meta)
    assert provenance.c2pa_proves_ai is proof


def _request(data: bytes) -> AnalysisRequest:
    return AnalysisRequest(image=decode(data, 10**8), object_id="id", deadline=Deadline(60))


def generator_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1")
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 200)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def xmp_jpeg() -> bytes:
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        "<rdf:Description Iptc4xmpExt:DigitalSourceType="
        '"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/></rdf:RDF></x:xmpmeta>'
    )
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 90, 30)).save(out, format="JPEG", xmp=xmp.encode())
    return out.getvalue()


@pytest.mark.parametrize("data", [generator_png(), xmp_jpeg()], ids=["a1111-parameters", "unsigned-xmp"])
@pytest.mark.parametrize("skip", ["", "true"])
def test_generator_metadata_or_unsigned_xmp_never_stops_the_paid_call(data, skip):
    builtin = BuiltinProvider()
    assert builtin.analyze(_request(data)).ai_generated.verdict == "ai"  # builtin does suspect it
    detector = Fake("aiornot", ("ai_generated",), verdict="ai", confidence=0.97)
    routing = "ai_generated=builtin,aiornot"
    config = settings(ROUTING=routing, AI_SKIP_WHEN_PROVEN=skip)
    routes = parse_routing(routing, ["builtin", "aiornot"])
    plan = Orchestrator({"builtin": builtin, "aiornot": detector}, config, routes=routes).run(_request(data))
    assert detector.calls == [frozenset({"ai_generated"})]
    assert plan.answered_by == {"ai_generated": "aiornot"}
