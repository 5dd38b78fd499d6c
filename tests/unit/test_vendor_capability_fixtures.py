"""Every capability every registered provider declares is backed by at least one golden fixture.

``COVERAGE`` maps (provider, capability) to the saved answers (or, for the offline ``builtin``, the
images) that exercise it. The test fails when a provider in the registry declares a capability the
table does not list, when a listed fixture is missing, and when a fixture does not normalize to its
golden output with that capability's section filled. A fixture whose name contains ``synthetic`` was
written from the documented schema (see the SOURCES.md beside it): the capability is then unverified
against a real answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from image_analysis.imaging import decode
from image_analysis.providers import (
    REGISTRY,
    aiornot,
    coreviz,
    imagerecognize,
    imageseo,
    imagga,
    provider_class,
    rekognition,
)
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderOutput
from image_analysis.providers.builtin import BuiltinProvider

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

COVERAGE: dict[tuple[str, str], tuple[str, ...]] = {
    ("builtin", "image_facts"): ("images/skimage-rocket.jpg", "images/skimage-chelsea.png"),
    ("builtin", "colors"): ("images/skimage-rocket.jpg", "images/skimage-chelsea.png"),
    ("builtin", "quality"): ("images/skimage-rocket.jpg",),
    ("builtin", "provenance"): ("images/c2pa-C.jpg", "images/skimage-rocket.jpg"),
    ("builtin", "ai_generated"): ("images/c2pa-C.jpg",),
    ("imagga", "labels"): (
        "imagga/tags_1.json",
        "imagga/tags_2.json",
        "imagga/tags_3.json",
        "imagga/v1_tagging_1.json",
    ),
    ("imagga", "moderation"): ("imagga/nsfw_beta_docs.json",),
    ("imagga", "colors"): ("imagga/colors_1.json", "imagga/colors_2.json", "imagga/colors_3.json"),
    ("imagga", "faces"): ("imagga/faces_detections_docs.json",),
    ("imagga", "text"): ("imagga/text_docs.json",),
    ("aiornot", "ai_generated"): (
        "aiornot/v2_image_sync_1.json",
        "aiornot/v2_image_sync_2.json",
        "aiornot/v2_image_sync_docs.json",
        "aiornot/v1_reports_image_1.json",
        "aiornot/v1_reports_image_2.json",
    ),
    ("aiornot", "deepfake"): ("aiornot/v2_image_sync_1.json", "aiornot/v2_image_sync_docs.json"),
    ("aiornot", "moderation"): ("aiornot/v2_image_sync_1.json", "aiornot/v2_image_sync_3.json"),
    ("aiornot", "quality"): ("aiornot/v2_image_sync_1.json", "aiornot/v1_reports_image_1.json"),
    ("imageseo", "labels"): ("imageseo/image_report_docs.json",),
    ("imageseo", "alt_texts"): ("imageseo/image_report_docs.json",),
    ("imagerecognize", "labels"): ("imagerecognize/objects_docs.json",),
    ("imagerecognize", "objects"): ("imagerecognize/objects_docs.json",),
    ("imagerecognize", "celebrities"): ("imagerecognize/celebrities_synthetic.json",),
    ("imagerecognize", "faces"): ("imagerecognize/detect_faces_synthetic.json",),
    ("imagerecognize", "text"): ("imagerecognize/detect_text_synthetic.json",),
    ("imagerecognize", "moderation"): ("imagerecognize/nsfw_synthetic.json",),
    ("coreviz", "labels"): (
        "coreviz/tags_docs.json",
        "coreviz/tags_strings_synthetic.json",
        "coreviz/result_strings_synthetic.json",
        "coreviz/tag_single_synthetic.json",
    ),
    ("coreviz", "classification"): (
        "coreviz/classification_docs.json",
        "coreviz/classification_all_scores_synthetic.json",
        "coreviz/classification_single_bare_synthetic.json",
    ),
    ("rekognition", "labels"): ("rekognition/detect_labels.json",),
    ("rekognition", "objects"): ("rekognition/detect_labels.json",),
    ("rekognition", "moderation"): (
        "rekognition/detect_moderation_labels.json",
        "rekognition/detect_moderation_labels_level3.json",
    ),
    ("rekognition", "text"): ("rekognition/detect_text.json",),
}

DECLARED = sorted((name, cap) for name in REGISTRY for cap in provider_class(name).capabilities)


def _golden(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.name.replace(".json", ".expected.json")).read_text())


def _sent(golden: dict[str, Any], module: Any) -> Any:
    size = golden.get("sent_image")
    return module.SentImage(size["width"], size["height"]) if size else None


def _imagga(path: Path, payload: Any, golden: dict[str, Any]) -> ProviderOutput:
    sent = _sent(golden, imagga) or imagga.SentImage(1, 1)
    return imagga.normalize(golden["endpoint"], payload, sent=sent, language=golden["language"])


def _rekognition(path: Path, payload: Any, golden: dict[str, Any] | None) -> ProviderOutput:
    feature = {"detect_labels": "labels", "detect_text": "text"}.get(path.stem, "moderation")
    return rekognition.normalize(feature, payload)


NORMALIZERS: dict[str, Callable[[Path, Any, Any], ProviderOutput]] = {
    "imagga": _imagga,
    "aiornot": lambda path, payload, golden: aiornot.normalize(payload, sent=_sent(golden, aiornot)),
    "imageseo": lambda path, payload, golden: imageseo.normalize(payload),
    "imagerecognize": lambda path, payload, golden: imagerecognize.normalize(golden["type"], payload),
    "coreviz": lambda path, payload, golden: coreviz.normalize(golden["mode"], payload),
    "rekognition": _rekognition,
}
# Rekognition's fixtures are pinned value by value in test_rekognition.py instead of golden files.
WITHOUT_GOLDEN = {"rekognition"}


def _builtin(path: Path) -> tuple[ProviderOutput, Any]:
    image = decode(path.read_bytes(), 100_000_000)
    request = AnalysisRequest(image=image, object_id="0" * 64, deadline=Deadline(30.0))
    return BuiltinProvider().analyze(request), image


def _filled(output: ProviderOutput, capability: str) -> bool:
    value = getattr(output, capability)
    return bool(value) if isinstance(value, list) else value is not None


def test_the_table_covers_exactly_what_the_registry_declares() -> None:
    assert sorted(COVERAGE) == DECLARED


@pytest.mark.parametrize(("provider", "capability"), DECLARED, ids=[f"{p}-{c}" for p, c in DECLARED])
def test_every_declared_capability_has_a_fixture_that_fills_its_section(provider: str, capability: str) -> None:
    paths = [FIXTURES / name for name in COVERAGE.get((provider, capability), ())]
    assert paths, f"{provider} declares {capability} but no fixture backs it: add one to COVERAGE"
    for path in paths:
        assert path.is_file(), f"{path} is listed but missing"
        if provider == "builtin":
            output, image = _builtin(path)
            if capability == "image_facts":
                assert image.width > 0 and image.height > 0 and image.format and len(image.sha256) == 64
            else:
                assert _filled(output, capability), f"{path.name} gives builtin no {capability}"
            continue
        payload = json.loads(path.read_text())
        golden = None if provider in WITHOUT_GOLDEN else _golden(path)
        output = NORMALIZERS[provider](path, payload, golden)
        assert _filled(output, capability), f"{path.name} normalizes to an empty {capability} section"
        if golden is not None:
            assert output.model_dump(exclude={"raw"}, exclude_defaults=True) == golden["output"]
