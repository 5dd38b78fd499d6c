"""Provenance and the AI verdict: real C2PA fixtures, generated files with generator metadata, and no network."""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from image_analysis.analyzers import provenance
from image_analysis.analyzers.provenance import (
    C2paFindings,
    MetadataFindings,
    SourceType,
    assess,
    c2pa_findings,
    could_carry_c2pa,
    find_generators,
    inspect,
    read_c2pa,
)
from image_analysis.imaging import decode
from image_analysis.models import AIGenerated, Provenance

ROOT = Path(__file__).parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "images"
IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
CLOUD_MANIFEST_URL = "https://cai-manifests.adobe.com/manifests/adobe-urn-uuid-5f37e182-3687-462e-a7fb-573462780391"


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _inspect(data: bytes) -> tuple[Provenance, AIGenerated]:
    return inspect(decode(data, max_pixels=100_000_000))


def _xmp(description: str) -> bytes:
    """An XMP packet whose rdf:Description carries ``description`` (attributes and child elements)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f"{description}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _jpeg(
    *, software: str | None = None, description: str | None = None, xmp: bytes | None = None, comment: bytes = b""
) -> bytes:
    exif = Image.Exif()
    if software:
        exif[0x0131] = software
    if description:
        exif[0x010E] = description
    if comment:
        exif.get_ifd(0x8769)[0x9286] = comment
    out = io.BytesIO()
    options = {"xmp": xmp} if xmp else {}
    Image.new("RGB", (48, 32), (40, 120, 200)).save(out, format="JPEG", exif=exif, **options)
    return out.getvalue()


def _png(text: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 80, 40)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


A1111_PARAMETERS = (
    "a lighthouse at dusk, oil painting\nNegative prompt: blurry\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd_xl_base_1.0"
)
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}}})
COMFY_WORKFLOW = json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []})


# --- the cheap gate that keeps c2pa out of most invocations --------------------------------------------


def test_c2pa_fixtures_carry_the_markers_the_gate_looks_for() -> None:
    for name in ("c2pa-C.jpg", "c2pa-CA.jpg"):
        data = _fixture(name)
        assert b"jumb" in data and b"c2pa" in data, name
        assert could_carry_c2pa(data)
    # The remote reference lives only in XMP: neither JUMBF nor the "c2pa" label is in the file.
    cloud = _fixture("c2pa-cloud.jpg")
    assert b"jumb" not in cloud and b"c2pa" not in cloud and b"dcterms:provenance" in cloud
    assert could_carry_c2pa(cloud)
    assert not could_carry_c2pa(_fixture("skimage-rocket.jpg"))
    assert not could_carry_c2pa(_fixture("skimage-chelsea.png"))


def test_c2pa_is_imported_only_for_files_that_could_carry_a_manifest() -> None:
    script = (
        "import sys\n"
        "from image_analysis.imaging import decode\n"
        "from image_analysis.providers.builtin import BuiltinProvider\n"
        "from image_analysis.analyzers.provenance import inspect\n"
        "for path in sys.argv[1:]:\n"
        "    inspect(decode(open(path, 'rb').read(), 10**8))\n"
        "    print('c2pa' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(FIXTURES / "skimage-rocket.jpg"), str(FIXTURES / "c2pa-C.jpg")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == ["False", "True"]


# --- real C2PA fixtures --------------------------------------------------------------------------------


def test_c2pa_manifest_with_algorithmic_media_is_read_but_not_called_ai() -> None:
    prov, ai = _inspect(_fixture("c2pa-C.jpg"))

    assert prov.c2pa_manifest is True
    assert prov.c2pa_remote_manifest is False
    assert prov.claim_generator == "make_test_images/0.26.0 c2pa-rs/0.26.0"
    assert prov.digital_source_type == "algorithmicMedia"
    # algorithmicMedia is "made by an algorithm without training data": neither AI-generated nor a capture.
    assert ai.verdict == "unknown"
    assert ai.confidence is None
    assert ai.generators == {}
    assert any("algorithmicMedia" in line and "not counted as AI" in line for line in ai.evidence)
    assert any("claim generator make_test_images" in line for line in prov.evidence)


def test_c2pa_manifest_with_an_ingredient_and_no_source_type_is_unknown() -> None:
    prov, ai = _inspect(_fixture("c2pa-CA.jpg"))

    assert prov.c2pa_manifest is True
    assert prov.claim_generator == "make_test_images/0.33.1 c2pa-rs/0.33.1"
    assert prov.digital_source_type is None
    assert ai.verdict == "unknown" and ai.confidence is None
    assert ai.evidence == ["c2pa manifest declares no digitalSourceType"]


def test_plain_photo_without_metadata_is_unknown_never_human() -> None:
    prov, ai = _inspect(_fixture("skimage-rocket.jpg"))

    assert prov == Provenance(evidence=[], provider="builtin")
    assert ai.verdict == "unknown"
    assert ai.confidence is None
    assert ai.evidence == ["no C2PA, IPTC or generator metadata found"]


def test_a_tampered_manifest_is_reported_invalid() -> None:
    data = bytearray(_fixture("c2pa-C.jpg"))
    data[-5000:-4990] = b"\x11" * 10  # change pixels: the manifest's data hash no longer matches

    findings = read_c2pa(bytes(data), "image/jpeg")

    assert findings.manifest is True
    assert findings.valid is False
    assert findings.validation_state == "Invalid"


def test_a_broken_manifest_store_never_raises() -> None:
    data = _fixture("c2pa-C.jpg")
    cut = data[: data.find(b"jumb") + 500]  # the file ends inside the manifest store

    findings = read_c2pa(cut, "image/jpeg")

    assert findings.manifest is False
    assert findings.note is not None and findings.note.startswith("c2pa data present but unreadable")


def test_any_c2pa_error_means_no_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    import c2pa

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("native failure")

    monkeypatch.setattr(c2pa, "Reader", explode)
    prov, ai = _inspect(_fixture("c2pa-C.jpg"))

    assert prov.c2pa_manifest is False
    assert ai.verdict == "unknown"
    assert any("native failure" in line for line in ai.evidence)


def test_without_the_c2pa_library_the_remote_reference_still_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes "import c2pa" raise ImportError

    prov, ai = _inspect(_fixture("c2pa-cloud.jpg"))

    assert prov.c2pa_remote_manifest is True
    assert any(line.startswith("c2pa library unavailable") for line in ai.evidence)


# --- no network ------------------------------------------------------------------------------------------


def test_remote_manifest_is_detected_without_python_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python side: nothing on the way opens a socket (the native side is proven below)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    prov, ai = _inspect(_fixture("c2pa-cloud.jpg"))

    assert prov.c2pa_remote_manifest is True
    assert prov.c2pa_manifest is False
    assert ai.verdict == "unknown" and ai.confidence is None
    assert ai.evidence == ["c2pa manifest is remote (cai-manifests.adobe.com); not fetched"]
    assert read_c2pa(_fixture("c2pa-cloud.jpg"), "image/jpeg").remote_url == CLOUD_MANIFEST_URL


@pytest.fixture
def manifest_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request; answers 404."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/manifest.c2pa", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_native_reader_never_fetches_a_remote_manifest(manifest_server: tuple[str, list[str]]) -> None:
    """The native side: a file pointing at a loopback server is read; the server must see no request.

    The control read with c2pa's default settings does fetch, so the test would notice a fetch.
    """
    import c2pa

    url, requests = manifest_server
    data = _jpeg(xmp=_xmp(f'dcterms:provenance="{url}">'))

    findings = read_c2pa(data, "image/jpeg")
    prov, _ = _inspect(data)

    assert findings.remote_url == url
    assert findings.manifest is False
    assert prov.c2pa_remote_manifest is True
    assert requests == []

    with pytest.raises(c2pa.C2paError), c2pa.Reader("image/jpeg", io.BytesIO(data), context=c2pa.Context()):
        pass
    assert requests == ["/manifest.c2pa"]


def test_a_provenance_pointer_into_the_file_is_not_remote() -> None:
    data = _jpeg(xmp=_xmp('dcterms:provenance="self#jumbf=/c2pa/urn:uuid:1234">'))

    prov, _ = _inspect(data)

    assert prov.c2pa_remote_manifest is False


# --- IPTC digital source type in XMP ---------------------------------------------------------------------


def test_xmp_trained_algorithmic_media_in_a_jpeg_is_ai() -> None:
    data = _jpeg(xmp=_xmp(f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia">'))

    prov, ai = _inspect(data)

    assert prov.digital_source_type == "trainedAlgorithmicMedia"
    assert prov.c2pa_manifest is False
    assert ai.verdict == "ai"
    assert ai.confidence == 0.9
    assert ai.evidence == ["xmp: IPTC digitalSourceType trainedAlgorithmicMedia"]


def test_xmp_composite_with_ai_in_a_png_element_form_is_ai() -> None:
    packet = _xmp(
        f"><Iptc4xmpExt:DigitalSourceType>{IPTC}compositeWithTrainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"
    )
    data = _png({"XML:com.adobe.xmp": packet.decode()})

    prov, ai = _inspect(data)

    assert prov.digital_source_type == "compositeWithTrainedAlgorithmicMedia"
    assert (ai.verdict, ai.confidence) == ("ai", 0.9)


def test_xmp_digital_capture_alone_is_not_enough_for_human() -> None:
    data = _jpeg(xmp=_xmp(f'Iptc4xmpExt:DigitalSourceType="{IPTC}digitalCapture">'))

    prov, ai = _inspect(data)

    assert prov.digital_source_type == "digitalCapture"
    assert ai.verdict == "unknown" and ai.confidence is None
    assert ai.evidence == ["xmp: IPTC digitalSourceType digitalCapture: unsigned, not enough to call it human"]


def test_xmp_creator_tool_naming_a_generator_is_ai() -> None:
    data = _jpeg(xmp=_xmp('xmp:CreatorTool="Adobe Firefly Image 3">'))

    prov, ai = _inspect(data)

    assert prov.software == "Adobe Firefly Image 3"
    assert ai.verdict == "ai"
    assert ai.generators == {"Adobe Firefly": 0.9}


# --- generator metadata ------------------------------------------------------------------------------------


def test_automatic1111_parameters_chunk_is_ai() -> None:
    prov, ai = _inspect(_png({"parameters": A1111_PARAMETERS}))

    assert prov.generator_metadata == ["parameters"]
    assert ai.verdict == "ai"
    assert ai.confidence == 0.85
    assert ai.generators == {"Automatic1111": 0.85}
    assert ai.evidence == ["png text chunk 'parameters' holds Automatic1111 generation metadata"]


def test_a_parameters_chunk_without_generation_fields_is_not_evidence() -> None:
    prov, ai = _inspect(_png({"parameters": "exposure=+0.3; white balance=auto"}))

    assert prov.generator_metadata == []
    assert ai.verdict == "unknown"


def test_comfyui_prompt_and_workflow_chunks_are_ai() -> None:
    prov, ai = _inspect(_png({"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}))

    assert prov.generator_metadata == ["prompt", "workflow"]
    assert ai.verdict == "ai"
    assert ai.generators == {"ComfyUI": 0.85}
    assert len(ai.evidence) == 2


@pytest.mark.parametrize("key", ["Dream", "sd-metadata", "invokeai_metadata"])
def test_invokeai_chunks_are_ai(key: str) -> None:
    prov, ai = _inspect(_png({key: '{"prompt": "a red fox", "steps": 30}'}))

    assert prov.generator_metadata == [key]
    assert ai.generators == {"InvokeAI": 0.85}


def test_png_software_and_source_from_novelai_are_ai() -> None:
    prov, ai = _inspect(_png({"Software": "NovelAI", "Source": "Stable Diffusion XL C1E1DE52"}))

    assert prov.software == "NovelAI"
    assert ai.verdict == "ai"
    assert ai.confidence == 0.9
    assert ai.generators == {"NovelAI": 0.9, "Stable Diffusion": 0.9}


@pytest.mark.parametrize(
    ("software", "generator"),
    [
        ("Midjourney", "Midjourney"),
        ("DALL-E 3", "DALL-E"),
        ("Adobe Firefly", "Adobe Firefly"),
        ("Stable Diffusion 3.5", "Stable Diffusion"),
        ("FLUX.1 [dev]", "Flux"),
        ("Ideogram", "Ideogram"),
    ],
)
def test_exif_software_naming_a_generator_is_ai(software: str, generator: str) -> None:
    prov, ai = _inspect(_jpeg(software=software))

    assert prov.software == software
    assert ai.verdict == "ai"
    assert ai.confidence == 0.9
    assert ai.generators == {generator: 0.9}
    assert ai.evidence == [f"software names {generator}: {software}"]


def test_exif_software_of_an_editor_is_not_evidence() -> None:
    prov, ai = _inspect(_jpeg(software="Adobe Photoshop 25.0 (Macintosh)"))

    assert prov.software == "Adobe Photoshop 25.0 (Macintosh)"
    assert ai.verdict == "unknown"


def test_image_description_counts_only_specific_generator_names() -> None:
    _, named = _inspect(_jpeg(description="Made with Midjourney v6"))
    _, insect = _inspect(_jpeg(description="A firefly glowing in a jar, in flux"))

    assert (named.verdict, named.confidence, named.generators) == ("ai", 0.7, {"Midjourney": 0.7})
    assert insect.verdict == "unknown"


def test_automatic1111_user_comment_in_a_jpeg_is_ai() -> None:
    comment = b"UNICODE\x00" + A1111_PARAMETERS.encode("utf-16-be")

    prov, ai = _inspect(_jpeg(comment=comment))

    assert prov.generator_metadata == ["UserComment"]
    assert ai.generators == {"Automatic1111": 0.85}


def test_find_generators_keeps_ordinary_words_to_software_fields() -> None:
    assert find_generators("Firefly", software_field=True) == ["Adobe Firefly"]
    assert find_generators("DALL·E 3 via ChatGPT", software_field=False) == ["DALL-E"]
    assert find_generators("a firefly at night", software_field=False) == []
    assert find_generators("Leonardo.Ai Phoenix", software_field=False) == ["Leonardo"]
    assert find_generators("Portrait of Leonardo", software_field=False) == []
    assert find_generators(None, software_field=True) == []


# --- the verdict rules on C2PA findings --------------------------------------------------------------------


def _c2pa(*types: SourceType, valid: bool = True, generator: str = "Adobe Firefly") -> C2paFindings:
    return C2paFindings(
        manifest=True,
        valid=valid,
        validation_state="Valid" if valid else "Invalid",
        claim_generator=generator,
        source_types=types,
    )


def test_signed_trained_algorithmic_media_is_ai_with_high_confidence() -> None:
    prov, ai = assess(_c2pa(SourceType("trainedAlgorithmicMedia", "c2pa")), MetadataFindings())

    assert ai.verdict == "ai"
    assert ai.confidence == 0.99
    assert ai.evidence[0] == "c2pa manifest: digitalSourceType trainedAlgorithmicMedia (claim generator Adobe Firefly)"
    assert ai.generators == {"Adobe Firefly": 0.9}  # named by the claim generator
    assert prov.digital_source_type == "trainedAlgorithmicMedia"


def test_ai_in_an_invalid_manifest_or_an_ingredient_is_less_certain() -> None:
    _, invalid = assess(
        _c2pa(SourceType("trainedAlgorithmicMedia", "c2pa"), valid=False, generator="x"), MetadataFindings()
    )
    _, ingredient = assess(
        _c2pa(
            SourceType("digitalCapture", "c2pa"),
            SourceType("trainedAlgorithmicMedia", "c2pa ingredient"),
            generator="x",
        ),
        MetadataFindings(),
    )

    assert (invalid.verdict, invalid.confidence) == ("ai", 0.95)
    assert invalid.evidence[0].endswith("; manifest failed validation")
    assert (ingredient.verdict, ingredient.confidence) == ("ai", 0.95)
    assert "c2pa ingredient manifest: digitalSourceType trainedAlgorithmicMedia" in ingredient.evidence[0]


def test_signed_capture_is_human_with_modest_confidence() -> None:
    findings = _c2pa(SourceType("digitalCapture", "c2pa", agent="Leica M11-P"), generator="Leica Camera")

    prov, ai = assess(findings, MetadataFindings())

    assert ai.verdict == "human"
    assert ai.confidence == 0.2
    assert ai.evidence == ["c2pa manifest: digitalSourceType digitalCapture (software agent Leica M11-P)"]
    assert prov.digital_source_type == "digitalCapture"


def test_capture_is_not_human_when_invalid_mixed_or_contradicted() -> None:
    capture = SourceType("digitalCapture", "c2pa")
    _, invalid = assess(_c2pa(capture, valid=False, generator="Cam"), MetadataFindings())
    _, mixed = assess(_c2pa(capture, SourceType("digitalArt", "c2pa"), generator="Cam"), MetadataFindings())
    _, contradicted = assess(
        _c2pa(capture, generator="Cam"), MetadataFindings(generator_fields=(("parameters", "Automatic1111"),))
    )

    assert invalid.verdict == "unknown"
    assert mixed.verdict == "unknown"
    assert contradicted.verdict == "ai"


def test_c2pa_findings_reads_v2_claims_and_ingredient_manifests() -> None:
    store = {
        "active_manifest": "urn:active",
        "validation_state": "Trusted",
        "manifests": {
            "urn:active": {
                "claim_generator_info": [{"name": "Adobe Firefly", "version": "3.0"}],
                "assertions": [
                    {
                        "label": "c2pa.actions.v2",
                        "data": {
                            "actions": [
                                {
                                    "action": "c2pa.created",
                                    "softwareAgent": {"name": "Adobe Firefly"},
                                    "digitalSourceType": f"{IPTC}trainedAlgorithmicMedia",
                                }
                            ]
                        },
                    }
                ],
            },
            "urn:parent": {
                "claim_generator": "Camera X",
                "assertions": [
                    {"label": "c2pa.actions", "data": {"actions": [{"digitalSourceType": f"{IPTC}digitalCapture"}]}}
                ],
            },
        },
    }

    findings = c2pa_findings(store)
    prov, ai = assess(findings, MetadataFindings())

    assert findings.valid is True
    assert findings.claim_generator == "Adobe Firefly 3.0"
    assert findings.source_types == (
        SourceType("trainedAlgorithmicMedia", "c2pa", "Adobe Firefly"),
        SourceType("digitalCapture", "c2pa ingredient", None),
    )
    assert ai.verdict == "ai" and ai.confidence == 0.99
    assert ai.generators == {"Adobe Firefly": 0.99}
    assert ai.evidence[0] == "c2pa manifest: digitalSourceType trainedAlgorithmicMedia (software agent Adobe Firefly)"
    assert prov.claim_generator == "Adobe Firefly 3.0"


def test_c2pa_settings_turn_every_fetch_off() -> None:
    assert provenance.C2PA_SETTINGS["verify"]["remote_manifest_fetch"] is False
    assert provenance.C2PA_SETTINGS["verify"]["ocsp_fetch"] is False
    assert provenance.C2PA_SETTINGS["core"]["allowed_network_hosts"] == []
