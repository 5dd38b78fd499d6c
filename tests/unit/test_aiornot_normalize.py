"""AI or Not normalization is a pure function: saved payload in, house models out.

Golden files: every ``tests/fixtures/aiornot/<name>.json`` with a ``<name>.expected.json`` next to it. The
explicit tests pin values worked out by hand from the payloads, so that a golden file regenerated from
broken code would not pass unnoticed. The HTTP error mapping runs the adapter over an httpx mock transport
(no sockets); the sandbox tests in tests/integration cover the same over a real socket.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    ProviderError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from image_analysis.imaging import decode
from image_analysis.merge import pack_raw
from image_analysis.providers import provider_class
from image_analysis.providers.aiornot import (
    DEFAULT_ONLY,
    NSFW_CATEGORY,
    NSFW_SOURCE_LABEL,
    AiOrNotProvider,
    SentImage,
    normalize,
    prepare,
)
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "aiornot"
IMAGES = ROOT / "tests" / "fixtures" / "images"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))
KEY = "aiornot-test-key-1234"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def mutated(name: str, change: Callable[[dict], object]) -> dict:
    payload = copy.deepcopy(load(name))
    change(payload)
    return payload


# ---------------------------------------------------------------------------------------------------
# Golden files


def test_every_payload_fixture_has_a_golden_file() -> None:
    payloads = {p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")}
    goldens = {p.name.replace(".expected.json", ".json") for p in GOLDEN}
    assert payloads == goldens
    assert len(GOLDEN) == 6


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
def test_golden(golden: Path) -> None:
    expected = json.loads(golden.read_text())
    payload = load(expected["fixture"])
    size = expected.get("sent_image")
    output = normalize(payload, sent=SentImage(size["width"], size["height"]) if size else None)
    assert output.model_dump(exclude={"raw"}, exclude_defaults=True) == expected["output"]
    assert output.raw == {"image_sync": payload}


# ---------------------------------------------------------------------------------------------------
# Values worked out by hand


def test_v2_premium_answer() -> None:
    output = normalize(load("v2_image_sync_1.json"))
    ai = output.ai_generated
    assert ai is not None
    assert (ai.verdict, ai.confidence, ai.provider) == ("ai", 0.9521987438201904, "aiornot")
    # bare floats, highest first
    assert list(ai.generators.items()) == [
        ("midjourney", 0.002055001212283969),
        ("stable_diffusion", 2.974699054902885e-05),
        ("dall_e", 2.053672869806178e-05),
        ("this_person_does_not_exist", 2.7012615646526683e-06),
    ]
    assert ai.evidence == []
    assert output.deepfake is not None
    assert (output.deepfake.detected, output.deepfake.confidence, output.deepfake.regions) == (False, 0.1, [])
    assert output.moderation is not None
    assert [(c.name, c.confidence, c.source_label) for c in output.moderation] == [("other", 0.0, "nsfw")]
    assert output.quality is not None and output.quality.score == 1.0
    assert output.quality.sharpness is None  # the vendor grades; the offline signals stay builtin's


def test_v1_generator_objects_give_the_same_scores_as_v2_bare_numbers() -> None:
    v1 = normalize(load("v1_reports_image_1.json"))
    v2 = normalize(load("v2_image_sync_1.json"))
    assert v1.ai_generated == v2.ai_generated
    assert v1.moderation == v2.moderation
    assert v1.quality == v2.quality
    assert v1.deepfake is None  # v1 has no deepfake report


def test_free_tier_without_confidences_is_none_never_minus_one() -> None:
    ai = normalize(load("v1_reports_image_2.json")).ai_generated
    assert ai is not None
    assert (ai.verdict, ai.confidence, ai.generators) == ("ai", None, {})
    # The SDK fills missing confidences with -1; read that as "not given" too.
    payload = mutated(
        "v2_image_sync_1.json",
        lambda p: p["report"]["ai_generated"].update(
            ai={"is_detected": True, "confidence": -1},
            human={"is_detected": False, "confidence": -1},
            generator={"midjourney": -1, "flux": 0.4},
        ),
    )
    ai = normalize(payload).ai_generated
    assert ai is not None
    assert (ai.confidence, ai.generators) == (None, {"flux": 0.4})


def test_confidence_falls_back_to_one_minus_human() -> None:
    payload = mutated(
        "v2_image_sync_2.json",
        lambda p: p["report"]["ai_generated"].update(
            verdict="human", ai={"is_detected": False}, human={"is_detected": True, "confidence": 0.875}
        ),
    )
    ai = normalize(payload).ai_generated
    assert ai is not None
    assert (ai.verdict, ai.confidence) == ("human", 0.125)


def test_empty_generator_for_a_human_image() -> None:
    payload = mutated(
        "v2_image_sync_2.json",
        lambda p: p["report"]["ai_generated"].update(
            verdict="human",
            ai={"is_detected": False, "confidence": 0.02},
            human={"is_detected": True, "confidence": 0.98},
        ),
    )
    ai = normalize(payload).ai_generated
    assert ai is not None
    assert (ai.verdict, ai.confidence, ai.generators) == ("human", 0.02, {})


def test_v1_generator_detected_without_a_score_is_kept_as_evidence() -> None:
    payload = mutated(
        "v1_reports_image_1.json",
        lambda p: p["report"]["generator"].update(flux={"is_detected": True}, four_o={"is_detected": False}),
    )
    ai = normalize(payload).ai_generated
    assert ai is not None
    assert "flux" not in ai.generators and "four_o" not in ai.generators
    assert ai.evidence == ["generator flux detected (no score given)"]


def test_sections_left_out_with_only_are_not_set() -> None:
    output = normalize(load("v2_image_sync_3.json"))  # only nsfw and reverse_search
    assert output.ai_generated is None
    assert output.deepfake is None
    assert output.quality is None
    assert output.moderation is not None and output.moderation[0].source_label == "nsfw"
    assert output.raw["image_sync"]["report"]["reverse_search"]["was_found"] is True  # kept in raw only
    only_ai = normalize(load("v2_image_sync_2.json"))
    assert (only_ai.moderation, only_ai.deepfake, only_ai.quality) == (None, None, None)


def test_unknown_verdict_is_unknown_with_the_vendor_word_as_evidence() -> None:
    payload = mutated("v2_image_sync_2.json", lambda p: p["report"]["ai_generated"].update(verdict="likely_ai"))
    ai = normalize(payload).ai_generated
    assert ai is not None
    assert ai.verdict == "unknown"
    assert ai.confidence == 0.95
    assert ai.evidence == ["AI or Not answered the verdict 'likely_ai', which is not ai, human or unknown"]


def test_unknown_fields_and_generators_are_tolerated() -> None:
    def change(p: dict) -> None:
        p["report"]["ai_generated"]["generator"]["imagen_4"] = 0.5
        p["report"]["ai_generated"]["model_version"] = "5.1"
        p["report"]["provenance"] = {"c2pa": None}
        p["report"]["meta"]["processing_status"]["provenance"] = "processed"
        p["billing"] = {"credits": 3}

    ai = normalize(mutated("v2_image_sync_1.json", change)).ai_generated
    assert ai is not None
    assert next(iter(ai.generators.items())) == ("imagen_4", 0.5)


# -- deepfake regions ---------------------------------------------------------------------------------


def test_deepfake_box_is_a_fraction_of_the_sent_image() -> None:
    deepfake = normalize(load("v2_image_sync_docs.json"), sent=SentImage(1280, 960)).deepfake
    assert deepfake is not None
    assert (deepfake.detected, deepfake.confidence) == (True, 0.95)
    [region] = deepfake.regions
    # bbox x1 120, y1 85, x2 380, y2 295 on 1280x960
    assert region.box.x == pytest.approx(120 / 1280, abs=1e-6)
    assert region.box.y == pytest.approx(85 / 960, abs=1e-6)
    assert region.box.width == pytest.approx(260 / 1280, abs=1e-6)
    assert region.box.height == pytest.approx(210 / 960, abs=1e-6)
    assert region.confidence == 0.95


def test_deepfake_box_falls_back_to_the_reported_size() -> None:
    [region] = normalize(load("v2_image_sync_docs.json")).deepfake.regions  # meta: 640x480
    assert (region.box.x, region.box.y, region.box.width, region.box.height) == (0.1875, 0.177083, 0.40625, 0.4375)


def test_deepfake_box_is_clamped_and_undetected_rois_are_left_out() -> None:
    def change(p: dict) -> None:
        rois = p["report"]["deepfake"]["rois"]
        rois.append({"is_detected": False, "confidence": 0.2, "bbox": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}})
        rois.append({"is_detected": True, "confidence": 0.99, "bbox": {"x1": 600, "y1": -5, "x2": 700, "y2": 100}})

    regions = normalize(mutated("v2_image_sync_docs.json", change), sent=SentImage(640, 480)).deepfake.regions
    assert [r.confidence for r in regions] == [0.99, 0.95]
    clamped = regions[0].box
    assert (clamped.x, clamped.y) == (0.9375, 0.0)
    assert clamped.x + clamped.width == pytest.approx(1.0)
    assert clamped.height == pytest.approx(100 / 480, abs=1e-6)


def test_deepfake_without_confidence_takes_the_decision_at_its_word() -> None:
    payload = mutated(
        "v2_image_sync_docs.json",
        lambda p: (p["report"]["deepfake"].pop("confidence"), p["report"]["deepfake"]["rois"][0].update(confidence=-1)),
    )
    deepfake = normalize(payload, sent=SentImage(640, 480)).deepfake
    assert (deepfake.detected, deepfake.confidence, deepfake.regions[0].confidence) == (True, 1.0, 1.0)


# -- NSFW and quality tables --------------------------------------------------------------------------


def test_nsfw_is_never_explicit() -> None:
    # The vendor: "the mere presence of a child is enough to trigger this flag". A category that mixes
    # meanings is kept as what it is, never read as explicit content.
    assert (NSFW_CATEGORY, NSFW_SOURCE_LABEL) == ("other", "nsfw")


@pytest.mark.parametrize(("detected", "confidence"), [(True, 1.0), (False, 0.0)])
def test_nsfw_mapping(detected: bool, confidence: float) -> None:
    payload = mutated("v2_image_sync_3.json", lambda p: p["report"]["nsfw"].update(is_detected=detected))
    [category] = normalize(payload).moderation
    assert (category.name, category.confidence, category.provider, category.source_label) == (
        "other",
        confidence,
        "aiornot",
        "nsfw",
    )


@pytest.mark.parametrize(("detected", "score"), [(True, 1.0), (False, 0.0)])
def test_quality_maps_to_a_score(detected: bool, score: float) -> None:
    payload = mutated("v2_image_sync_1.json", lambda p: p["report"]["quality"].update(is_detected=detected))
    assert normalize(payload).quality.score == score


# -- processing_status -------------------------------------------------------------------------------


def _status(**statuses: str) -> Callable[[dict], None]:
    def change(p: dict) -> None:
        p["report"]["meta"]["processing_status"].update(statuses)
        for name, status in statuses.items():
            if status != "processed":
                p["report"][name] = None

    return change


def test_errored_report_is_a_server_error_to_retry() -> None:
    with pytest.raises(ServerError) as caught:
        normalize(mutated("v2_image_sync_1.json", _status(deepfake="errored")))
    assert caught.value.retryable is True
    assert caught.value.message == (
        "aiornot: the deepfake report errored at AI or Not (processing_status); the record will be retried"
    )


def test_every_report_rejected_is_a_bad_image() -> None:
    with pytest.raises(BadImageError) as caught:
        normalize(mutated("v2_image_sync_2.json", _status(ai_generated="rejected")))
    assert caught.value.retryable is False
    assert caught.value.code == "bad_image"
    assert "rejected the image for the ai_generated report" in caught.value.message
    assert "not retried" in caught.value.message


def test_some_reports_rejected_keep_the_processed_ones() -> None:
    output = normalize(mutated("v2_image_sync_1.json", _status(deepfake="rejected", quality="rejected")))
    assert output.deepfake is None and output.quality is None
    assert output.ai_generated is not None and output.ai_generated.confidence == 0.9521987438201904
    assert output.moderation is not None


def test_a_rejected_section_that_still_has_content_is_ignored() -> None:
    payload = mutated(
        "v2_image_sync_1.json", lambda p: p["report"]["meta"]["processing_status"].update(deepfake="rejected")
    )
    assert normalize(payload).deepfake is None


@pytest.mark.parametrize("status", ["not_requested", None, "pending"])
def test_a_status_outside_the_enum_is_no_statement(status: str | None) -> None:
    payload = mutated("v2_image_sync_1.json", lambda p: p["report"]["meta"]["processing_status"].update(nsfw=status))
    output = normalize(payload, asked=("ai_generated", "deepfake", "nsfw"))
    assert output.moderation is not None and output.moderation[0].source_label == "nsfw"
    assert output.ai_generated is not None and output.deepfake is not None


def test_processing_status_null_is_read_as_no_statuses() -> None:
    payload = mutated("v2_image_sync_1.json", lambda p: p["report"]["meta"].update(processing_status=None))
    output = normalize(payload)
    assert output.ai_generated is not None and output.ai_generated.verdict == "ai"
    assert output.quality is not None


def test_an_errored_report_nobody_asked_for_is_ignored() -> None:
    payload = mutated("v2_image_sync_2.json", _status(quality="errored", reverse_search="errored"))
    output = normalize(payload, asked=("ai_generated",))
    assert output.ai_generated is not None and output.ai_generated.verdict == "ai"
    with pytest.raises(ServerError, match="the quality report errored"):
        normalize(payload, asked=("ai_generated", "quality"))


def test_a_region_without_a_box_is_left_out_and_the_verdict_kept() -> None:
    payload = mutated(
        "v2_image_sync_docs.json",
        lambda p: p["report"]["deepfake"]["rois"].extend(
            [{"is_detected": True, "confidence": 0.7, "bbox": None}, {"is_detected": True, "confidence": 0.6}]
        ),
    )
    deepfake = normalize(payload).deepfake
    assert deepfake is not None and deepfake.detected is True
    assert [(r.confidence, r.box.x) for r in deepfake.regions] == [(0.95, 0.1875)]  # 120 / 640
    bbox_null = mutated("v2_image_sync_docs.json", lambda p: p["report"]["deepfake"]["rois"][0].update(bbox=None))
    assert normalize(bbox_null).deepfake.regions == []


def test_sections_that_say_nothing_are_left_out_not_fatal() -> None:
    def change(p: dict) -> None:
        p["report"]["quality"].pop("is_detected")
        p["report"]["nsfw"].update(is_detected=None)
        p["report"]["deepfake"].pop("is_detected")
        p["report"]["ai_generated"]["generator"].update(flux="high", new_model={"is_detected": False})

    output = normalize(mutated("v2_image_sync_1.json", change))
    assert output.quality is None and output.moderation is None
    assert output.deepfake is not None and output.deepfake.detected is False  # from its confidence 0.0145
    assert "flux" not in output.ai_generated.generators and output.ai_generated.generators["midjourney"] > 0


def test_a_missing_verdict_is_unknown_and_says_so() -> None:
    payload = mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"].pop("verdict"))
    ai = normalize(payload).ai_generated
    assert ai is not None and ai.verdict == "unknown" and ai.evidence == ["AI or Not answered no verdict"]
    assert ai.confidence == 0.9521987438201904


def test_processed_but_missing_sections_are_just_missing_unless_nothing_asked_came_back() -> None:
    payload = mutated("v2_image_sync_1.json", lambda p: p["report"].pop("ai_generated"))
    output = normalize(payload, asked=("ai_generated", "deepfake"))
    assert output.ai_generated is None and output.deepfake is not None
    with pytest.raises(BadResponseError, match="none of the asked reports"):
        normalize(mutated("v2_image_sync_3.json", lambda p: p["report"].pop("nsfw")), asked=("nsfw",))


# -- malformed payloads ------------------------------------------------------------------------------

MALFORMED = [
    None,
    [],
    "not json at all",
    {"report": None},
    {"id": "x"},
    mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"].update(verdict=5)),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"]["ai"].update(confidence="high")),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"]["ai"].update(confidence=1.5)),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"]["ai"].update(confidence=float("nan"))),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"]["generator"].update(flux=-0.5)),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["ai_generated"].update(generator=[0.1, 0.2])),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["deepfake"].update(rois="none")),
    mutated("v2_image_sync_docs.json", lambda p: p["report"]["deepfake"]["rois"][0]["bbox"].update(x2=10)),
    mutated(
        "v2_image_sync_docs.json", lambda p: p["report"]["meta"].update(width=None, height=None)
    ),  # regions, no size
    mutated("v2_image_sync_1.json", lambda p: p["report"]["nsfw"].update(is_detected="maybe")),
    mutated("v2_image_sync_1.json", lambda p: p["report"]["meta"].update(processing_status=["processed"])),
]


@pytest.mark.parametrize("payload", MALFORMED, ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
def test_malformed_payloads_raise_bad_response(payload: object) -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize(payload)
    assert caught.value.message.startswith("aiornot: ")
    assert caught.value.code == "bad_response"


def test_a_non_finite_number_in_a_field_not_read_leaves_the_answer_usable() -> None:
    # Python's json reads Infinity and NaN. A field the adapter never reads is no reason to refuse (and
    # retry, and pay for) the answer: raw keeps it as it came, packed as text, which can carry it.
    payload = mutated("v2_image_sync_1.json", lambda p: p.update(credits_used=float("inf")))
    output = normalize(payload)
    assert output.ai_generated == normalize(mutated("v2_image_sync_1.json", lambda p: None)).ai_generated
    assert output.raw["image_sync"]["credits_used"] == float("inf")
    assert isinstance(pack_raw(output.raw, budget_bytes=100_000)["image_sync"], str)


# ---------------------------------------------------------------------------------------------------
# Documented HTTP errors -> typed errors (the adapter over an httpx mock transport)

IMAGE = decode((IMAGES / "skimage-rocket.jpg").read_bytes(), max_pixels=100_000_000)


def _provider(handler: Callable[[httpx.Request], httpx.Response], **env: str) -> AiOrNotProvider:
    settings = Settings.from_env(
        {"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "AIORNOT_API_KEY": KEY, "HTTP_MAX_ATTEMPTS": "2", **env}
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings),
        http=new_client(5.0, transport=httpx.MockTransport(handler)),
        extra={"retry_policy": RetryPolicy(base_delay=0.0, safety_margin=0.0), "sleep": lambda _s: None},
    )
    built = provider_class("aiornot").create(deps)
    assert isinstance(built, AiOrNotProvider)
    return built


def _request() -> AnalysisRequest:
    return AnalysisRequest(image=IMAGE, object_id="0123abcd", deadline=Deadline(30), key="users/bob/a.jpg")


def _answer(status: int, body: object) -> Callable[[httpx.Request], httpx.Response]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json=body)

    handler.calls = calls  # type: ignore[attr-defined]
    return handler


VALIDATION_IMAGE = {"detail": [{"loc": ["body", "image"], "msg": "Field required", "type": "missing"}]}
VALIDATION_QUERY = {"detail": [{"loc": ["query", "only", 0], "msg": "Input should be ...", "type": "enum"}]}


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable", "tries"),
    [
        (401, {"detail": "Not authenticated"}, AuthError, False, 1),
        (403, {"detail": "Not authenticated"}, AuthError, False, 1),
        (402, {"detail": "Payment Required"}, QuotaExhaustedError, False, 1),
        (422, VALIDATION_IMAGE, BadImageError, False, 1),
        (422, VALIDATION_QUERY, BadResponseError, False, 1),
        (429, {"detail": "Too Many Requests"}, RateLimitedError, True, 2),
        (500, {"detail": "Internal Server Error"}, ServerError, True, 2),
    ],
    ids=["401", "403", "402", "422-image", "422-query", "429", "500"],
)
def test_http_errors_map_to_typed_errors(
    status: int, body: object, error: type[ProviderError], retryable: bool, tries: int
) -> None:
    handler = _answer(status, body)
    with pytest.raises(error) as caught:
        _provider(handler).analyze(_request())
    assert type(caught.value) is error
    assert caught.value.retryable is retryable
    assert len(handler.calls) == tries  # type: ignore[attr-defined]
    message = caught.value.message
    assert message.startswith("aiornot: ")
    assert KEY not in message


def test_auth_error_says_what_to_fix() -> None:
    with pytest.raises(AuthError) as caught:
        _provider(_answer(401, {"detail": "Invalid authentication credentials"})).analyze(_request())
    assert "AIORNOT_API_KEY" in caught.value.message
    assert 'the vendor said: "Invalid authentication credentials"' in caught.value.message


def test_query_validation_error_points_at_the_settings() -> None:
    with pytest.raises(BadResponseError) as caught:
        _provider(_answer(422, VALIDATION_QUERY)).analyze(_request())
    assert "check AIORNOT_ONLY, AIORNOT_EXCLUDING" in caught.value.message


def test_the_request_on_the_wire() -> None:
    handler = _answer(200, load("v2_image_sync_1.json"))
    output = _provider(handler).analyze(_request())
    [sent] = handler.calls  # type: ignore[attr-defined]
    assert sent.method == "POST"
    assert sent.url.path == "/v2/image/sync"
    assert sent.url.host == "api.aiornot.com"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.url.params.get_list("only") == ["ai_generated", "deepfake", "nsfw"]
    assert sent.url.params["external_id"] == "0123abcd"
    body = sent.read()
    assert b'name="image"; filename="0123abcd.jpg"' in body
    assert b"users/bob" not in body and b"users" not in str(sent.url).encode()
    assert output.ai_generated is not None and output.ai_generated.verdict == "ai"


ROUTED = pytest.mark.skipif(
    "capabilities" not in {f.name for f in dataclasses.fields(AnalysisRequest)},
    reason="AnalysisRequest has no capabilities field (ROUTING) in this tree",
)


@ROUTED
@pytest.mark.parametrize(
    ("env", "asked", "query"),
    [
        ({}, {"ai_generated", "labels"}, [("only", "ai_generated")]),
        ({}, {"moderation", "deepfake"}, [("only", "deepfake"), ("only", "nsfw")]),
        (
            {},
            {"ai_generated", "deepfake", "moderation"},
            [("only", "ai_generated"), ("only", "deepfake"), ("only", "nsfw")],
        ),
        ({"AIORNOT_EXCLUDING": "quality"}, {"ai_generated", "deepfake", "moderation"}, [("excluding", "quality")]),
        ({"AIORNOT_EXCLUDING": "deepfake"}, {"moderation"}, [("only", "nsfw")]),
        (
            {"AIORNOT_ONLY": "ai_generated,reverse_search"},
            {"ai_generated"},
            [("only", "ai_generated"), ("only", "reverse_search")],
        ),
    ],
)
def test_routing_narrows_the_paid_reports(env: dict[str, str], asked: set[str], query: list[tuple[str, str]]) -> None:
    handler = _answer(200, load("v2_image_sync_1.json"))
    request = dataclasses.replace(_request(), capabilities=frozenset(asked))
    _provider(handler, **env).analyze(request)
    [sent] = handler.calls  # type: ignore[attr-defined]
    assert [(k, v) for k, v in sent.url.params.multi_items() if k != "external_id"] == query


@ROUTED
def test_routing_that_asks_nothing_of_this_provider_sends_nothing() -> None:
    handler = _answer(200, load("v2_image_sync_1.json"))
    request = dataclasses.replace(_request(), capabilities=frozenset({"labels"}))
    output = _provider(handler, AIORNOT_ONLY="nsfw,reverse_search").analyze(request)
    assert handler.calls == []  # type: ignore[attr-defined]
    assert output.model_dump(exclude_defaults=True) == {}


# ---------------------------------------------------------------------------------------------------
# Configuration


def _create(**env: str) -> AiOrNotProvider:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})
    return AiOrNotProvider.create(
        ProviderDeps(settings=settings, credentials=Credentials(settings), http=httpx.Client())
    )


def test_defaults() -> None:
    provider = _create()
    assert provider.client.base_url == "https://api.aiornot.com"
    assert (provider.selector, provider.selected, provider.reports) == ("only", DEFAULT_ONLY, DEFAULT_ONLY)
    assert DEFAULT_ONLY == ("ai_generated", "deepfake", "nsfw")
    assert provider.enabled == {"ai_generated", "deepfake", "moderation"}
    # The image field's own "Max file size: 10MB", not the Limitations list's 50MB.
    assert AiOrNotProvider.max_upload_bytes == 10_000_000
    assert AiOrNotProvider.accepted_formats == {"jpeg", "png", "webp", "heic", "heif", "tiff"}


def test_only_and_excluding() -> None:
    only = _create(AIORNOT_ONLY=" Quality, nsfw ,reverse_search,nsfw")
    assert (only.selector, only.selected) == ("only", ("quality", "nsfw", "reverse_search"))
    assert only.enabled == {"quality", "moderation"}
    excluding = _create(AIORNOT_EXCLUDING="deepfake")
    assert (excluding.selector, excluding.selected) == ("excluding", ("deepfake",))
    # the vendor's defaults (ai_generated, deepfake, nsfw, quality) minus deepfake
    assert excluding.reports == ("ai_generated", "nsfw", "quality")
    assert excluding.enabled == {"ai_generated", "moderation", "quality"}


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"AIORNOT_BASE_URL": "https://api.aiornot.com/v2"}, "scheme://host[:port] only"),
        ({"AIORNOT_BASE_URL": "api.aiornot.com"}, "scheme://host[:port] only"),
        ({"AIORNOT_ONLY": "ai_generated,faces"}, "AIORNOT_ONLY has unknown faces"),
        ({"AIORNOT_EXCLUDING": "everything"}, "AIORNOT_EXCLUDING has unknown everything"),
        ({"AIORNOT_ONLY": "nsfw", "AIORNOT_EXCLUDING": "deepfake"}, "not both"),
        ({"AIORNOT_EXCLUDING": "ai_generated,deepfake,nsfw,quality"}, "leaves no report"),
    ],
)
def test_bad_configuration_fails_at_create(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        _create(**env)


# ---------------------------------------------------------------------------------------------------
# What is uploaded


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def test_accepted_formats_go_as_they_are() -> None:
    # Metadata-free files: the layer may re-encode files with personal metadata before any vendor sees them.
    for fmt, mime in (("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("PNG", "image/png")):
        clean = decode(_encoded(Image.new("RGB", (90, 60), (10, 20, 30)), fmt), max_pixels=10**8)
        payload, sent_mime, sent = prepare(clean, 50_000_000, upright=True)
        assert (payload == clean.data, sent_mime, sent) == (True, mime, SentImage(90, 60))


def test_other_formats_become_jpeg() -> None:
    for fmt in ("GIF", "BMP"):
        other = decode(_encoded(Image.new("P", (80, 50), 3), fmt), max_pixels=10**8)
        payload, mime, sent = prepare(other, 50_000_000, upright=False)
        assert payload.startswith(b"\xff\xd8\xff")
        assert (mime, sent) == ("image/jpeg", SentImage(80, 50))


def test_rotated_image_goes_upright_when_deepfake_boxes_can_come_back() -> None:
    source = Image.open(IMAGES / "skimage-rocket.jpg").resize((400, 266))
    exif = source.getexif()
    exif[0x0112] = 6
    rotated = decode(_encoded(source, "JPEG", exif=exif), max_pixels=10**8)
    assert (rotated.width, rotated.height) == (266, 400)
    payload, _, sent = prepare(rotated, 50_000_000, upright=True)
    assert payload != rotated.data
    assert sent.width < sent.height  # portrait, as displayed
    uploaded = Image.open(io.BytesIO(payload))
    assert uploaded.size == (sent.width, sent.height)
    assert uploaded.getexif().get(0x0112) in (None, 1)


class _Recorder:
    """Stands in for a DecodedImage to see what ``prepare`` asks of ``encoded_for``."""

    def __init__(self, orientation: int | None) -> None:
        self.data, self.width, self.height, self.orientation = b"original", 300, 200, orientation
        self.asked: list[tuple[frozenset[str], int, int | None]] = []

    def encoded_for(self, formats: frozenset[str], max_bytes: int, max_side: int | None = None) -> tuple[bytes, str]:
        self.asked.append((formats, max_bytes, max_side))
        return self.data, "image/jpeg"


@pytest.mark.parametrize(
    ("orientation", "upright", "max_side"),
    [(6, True, 299), (6, False, None), (1, True, None), (None, True, None)],
)
def test_only_rotated_images_with_boxes_to_come_are_re_encoded(
    orientation: int | None, upright: bool, max_side: int | None
) -> None:
    image = _Recorder(orientation)
    payload, _, sent = prepare(image, 1234, upright=upright)  # type: ignore[arg-type]
    [(formats, max_bytes, asked_side)] = image.asked
    assert (formats, max_bytes, asked_side) == (AiOrNotProvider.accepted_formats, 1234, max_side)
    assert (payload, sent) == (b"original", SentImage(300, 200))


def test_too_large_is_downscaled_under_the_limit() -> None:
    payload, mime, sent = prepare(IMAGE, 20_000, upright=False)
    assert len(payload) <= 20_000
    assert mime == "image/jpeg"
    assert sent.width < 640 and Image.open(io.BytesIO(payload)).size == (sent.width, sent.height)
