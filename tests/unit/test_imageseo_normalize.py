"""ImageSEO normalization is a pure function: saved payload in, house models out.

Golden files: every ``tests/fixtures/imageseo/<name>.json`` with a ``<name>.expected.json`` next to it
(``no_report_docs.json`` has none: it raises). The explicit tests pin values worked out by hand. The HTTP
error mapping runs the adapter over an httpx mock transport (no sockets).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

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
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.providers.imageseo import FAILURE_STATUS, ImageSeoProvider, normalize
from image_analysis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "imageseo"
IMAGES = ROOT / "tests" / "fixtures" / "images"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))
KEY = "imageseo-test-key-5678"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def mutated(change: Callable[[dict], object], name: str = "image_report_docs.json") -> dict:
    payload = copy.deepcopy(load(name))
    change(payload)
    return payload


def test_every_payload_fixture_has_a_golden_file() -> None:
    payloads = {p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")}
    goldens = {p.name.replace(".expected.json", ".json") for p in GOLDEN}
    assert payloads - goldens == {"no_report_docs.json"}  # the failure body has no normalized form: it raises
    assert len(GOLDEN) == 1


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
def test_golden(golden: Path) -> None:
    expected = json.loads(golden.read_text())
    payload = load(expected["fixture"])
    output = normalize(payload)
    assert output.model_dump(exclude={"raw"}, exclude_defaults=True) == expected["output"]
    assert output.raw == {"images": payload}


def test_the_documented_example_was_invalid_json_and_only_a_comma_was_added() -> None:
    # The example exactly as the vendor document shows it (copied from shared/seeds/imageseo-image-reports.md).
    documented = (FIXTURES / "image_report_docs.original.txt").read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(documented)
    saved = (FIXTURES / "image_report_docs.json").read_text()
    assert saved == documented.replace('        ]\n        "src"', '        ],\n        "src"')


# ---------------------------------------------------------------------------------------------------
# Values worked out by hand


def test_scores_are_percentages_scaled_to_unit() -> None:
    output = normalize(load("image_report_docs.json"))
    assert [(lbl.name, lbl.confidence, lbl.provider) for lbl in output.labels] == [
        ("Moths and butterflies", 0.994273, "imageseo"),  # 99.42726492881775 / 100
    ]
    assert [(alt.text, alt.confidence, alt.provider) for alt in output.alt_texts] == [
        ("Operations management", 0.7144, "imageseo"),  # 71.43999934196472 / 100 (scoring 0.7143999934196472)
        ("Management", 0.6335, "imageseo"),  # 63.349997997283936 / 100
    ]
    # Nothing else is filled in.
    assert output.model_dump(exclude={"raw", "labels", "alt_texts"}, exclude_defaults=True) == {}


def test_alt_without_score_falls_back_to_scoring() -> None:
    payload = mutated(lambda p: p["result"]["alts"][1].update(score=None, scoring=0.9))
    assert [(a.text, a.confidence) for a in normalize(payload).alt_texts] == [
        ("Management", 0.9),
        ("Operations management", 0.7144),
    ]


def test_entries_without_any_score_or_name_are_left_out() -> None:
    def change(p: dict) -> None:
        p["result"]["alts"][0].update(score=None, scoring=None)
        p["result"]["labels"].append({"name": "   ", "score": 50})
        p["result"]["labels"].append({"name": "no score", "score": None})

    output = normalize(mutated(change))
    assert [a.text for a in output.alt_texts] == ["Management"]
    assert [lbl.name for lbl in output.labels] == ["Moths and butterflies"]


def test_repeated_names_keep_the_highest_and_order_is_by_confidence() -> None:
    def change(p: dict) -> None:
        p["result"]["labels"] += [
            {"name": "Insect", "score": 100},
            {"name": "Moths  and butterflies", "score": 12.5},
            {"name": "Wing", "score": 0},
        ]

    labels = normalize(mutated(change)).labels
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [
        ("Insect", 1.0),
        ("Moths and butterflies", 0.994273),
        ("Wing", 0.0),
    ]


def test_deprecated_and_unknown_fields_are_ignored() -> None:
    def change(p: dict) -> None:
        p["result"]["alt"] = "old alt"
        p["result"]["a_vision"] = {"anything": 1}
        p["result"]["labels"][0]["new_field"] = [1, 2]
        p["credits_left"] = 12

    output = normalize(mutated(change))
    assert [a.text for a in output.alt_texts] == ["Operations management", "Management"]


def test_empty_report() -> None:
    output = normalize({"success": True, "result": {"labels": [], "alts": []}})
    assert (output.labels, output.alt_texts) == ([], [])


# ---------------------------------------------------------------------------------------------------
# Valid but different: only what the docs guarantee is required


@pytest.mark.parametrize("missing", ["absent", "null"])
def test_a_report_without_alts_keeps_its_labels(missing: str) -> None:
    payload = mutated(lambda p: p["result"].pop("alts") if missing == "absent" else p["result"].update(alts=None))
    output = normalize(payload)
    assert output.alt_texts == []
    assert [(lbl.name, lbl.confidence) for lbl in output.labels] == [("Moths and butterflies", 0.994273)]


def test_a_report_without_labels_keeps_its_alts() -> None:
    output = normalize(mutated(lambda p: p["result"].update(labels=None)))
    assert output.labels == []
    assert [(a.text, a.confidence) for a in output.alt_texts] == [
        ("Operations management", 0.7144),
        ("Management", 0.6335),
    ]


def test_entries_with_a_null_or_missing_name_are_left_out() -> None:
    def change(p: dict) -> None:
        p["result"]["alts"][0].update(name=None)
        p["result"]["labels"][0].pop("name")

    output = normalize(mutated(change))
    assert output.labels == []
    assert [a.text for a in output.alt_texts] == ["Management"]


def test_an_alt_given_as_text_and_a_body_without_the_success_flag_are_read() -> None:
    body = {"result": {"alts": [{"text": "A moth on a leaf", "scoring": 0.81}]}}
    (alt,) = normalize(body).alt_texts
    assert (alt.text, alt.confidence) == ("A moth on a leaf", 0.81)


def test_lists_one_level_up_are_read_when_there_is_no_result_object() -> None:
    output = normalize({"success": True, "labels": [{"name": "Moth", "score": "88.5"}]})
    assert [(lbl.name, lbl.confidence) for lbl in output.labels] == [("Moth", 0.885)]


# ---------------------------------------------------------------------------------------------------
# Failures in the body


def test_no_report_is_a_bad_image() -> None:
    with pytest.raises(BadImageError) as caught:
        normalize(load("no_report_docs.json"))
    assert (
        caught.value.message == 'imageseo: ImageSEO made no report for this image (code "no_report"); it is not retried'
    )
    assert caught.value.retryable is False


def test_failure_table_is_exactly_the_documented_code() -> None:
    assert dict(FAILURE_STATUS) == {"no_report": 422}


def test_other_failure_codes_are_bad_responses_naming_the_code() -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize({"success": False, "code": "quota_exceeded"})
    assert caught.value.message == (
        'imageseo: ImageSEO answered success false with code "quota_exceeded"; the record will be retried'
    )


MALFORMED = [
    None,
    [],
    "text",
    {},
    {"success": "maybe", "result": {"labels": [], "alts": []}},
    {"success": True},  # no result
    {"success": True, "result": None},
    mutated(lambda p: p["result"].update(labels={"name": "x"})),
    mutated(lambda p: p["result"]["labels"].append("Insect")),
    mutated(lambda p: p["result"]["labels"][0].update(score="high")),
    mutated(lambda p: p["result"]["labels"][0].update(score=250)),
    mutated(lambda p: p["result"]["labels"][0].update(score=-3)),
    mutated(lambda p: p["result"]["alts"][0].update(score=float("nan"))),
    mutated(lambda p: p["result"]["alts"][0].update(score=None, scoring=1.7)),
]


@pytest.mark.parametrize("payload", MALFORMED, ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
def test_malformed_payloads_raise_bad_response(payload: object) -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize(payload)
    assert caught.value.message.startswith("imageseo: ")
    assert caught.value.code == "bad_response"


def test_a_non_finite_number_in_a_field_not_read_leaves_the_answer_usable() -> None:
    # A field the adapter never reads is no reason to refuse (and retry, and pay for) the answer: raw keeps
    # it as it came, packed as text, which can carry it.
    output = normalize(mutated(lambda p: p.update(credits_left=float("inf"))))
    assert output.labels == normalize(mutated(lambda p: None)).labels and output.labels
    assert isinstance(pack_raw(output.raw, budget_bytes=100_000)["images"], str)


# ---------------------------------------------------------------------------------------------------
# HTTP answers -> typed errors (the adapter over an httpx mock transport)

IMAGE = decode((IMAGES / "skimage-rocket.jpg").read_bytes(), max_pixels=100_000_000)


def _provider(handler: Callable[[httpx.Request], httpx.Response], **env: str) -> ImageSeoProvider:
    settings = Settings.from_env(
        {"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "IMAGESEO_API_KEY": KEY, "HTTP_MAX_ATTEMPTS": "2", **env}
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings),
        http=new_client(5.0, transport=httpx.MockTransport(handler)),
        extra={"retry_policy": RetryPolicy(base_delay=0.0, safety_margin=0.0), "sleep": lambda _s: None},
    )
    built = provider_class("imageseo").create(deps)
    assert isinstance(built, ImageSeoProvider)
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


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable", "tries"),
    [
        (404, {"success": False, "code": "no_report"}, BadImageError, False, 1),  # documented
        (200, {"success": False, "code": "no_report"}, BadImageError, False, 1),
        (200, {"success": False, "code": "something_new"}, BadResponseError, True, 2),
        (404, {"success": False, "code": "something_new"}, BadResponseError, False, 1),
        (401, {"success": False, "code": "unauthorized"}, AuthError, False, 1),
        (402, {"success": False, "code": "payment_required"}, QuotaExhaustedError, False, 1),
        (429, {"success": False, "code": "too_many_requests"}, RateLimitedError, True, 2),
        (503, {"success": False, "code": "service_unavailable"}, ServerError, True, 2),
    ],
    ids=["404-no_report", "200-no_report", "200-unknown", "404-unknown", "401", "402", "429", "503"],
)
def test_http_answers_map_to_typed_errors(
    status: int, body: object, error: type[ProviderError], retryable: bool, tries: int
) -> None:
    handler = _answer(status, body)
    with pytest.raises(error) as caught:
        _provider(handler).analyze(_request())
    assert type(caught.value) is error
    assert caught.value.retryable is retryable
    assert len(handler.calls) == tries  # type: ignore[attr-defined]
    assert caught.value.message.startswith("imageseo: ")
    assert KEY not in caught.value.message
    assert f"code {body['code']}" in caught.value.message  # type: ignore[index]


def test_auth_error_says_what_to_fix() -> None:
    with pytest.raises(AuthError) as caught:
        _provider(_answer(401, {"success": False, "code": "unauthorized"})).analyze(_request())
    assert "IMAGESEO_API_KEY" in caught.value.message and "Authentication header" in caught.value.message


def test_the_request_on_the_wire() -> None:
    handler = _answer(200, load("image_report_docs.json"))
    output = _provider(handler, IMAGESEO_LANG="FR").analyze(_request())
    [sent] = handler.calls  # type: ignore[attr-defined]
    assert (sent.method, sent.url.host, sent.url.path) == ("POST", "api.imageseo.io", "/v1/external/projects/images")
    assert sent.headers["authentication"] == KEY  # the key itself, as documented
    assert "authorization" not in sent.headers
    assert str(sent.url.params) == ""
    body = sent.read()
    assert b'name="lang"\r\n\r\nfr\r\n' in body
    assert b'name="imageFile"; filename="0123abcd.jpg"' in body
    assert b"users/bob" not in body
    assert [lbl.name for lbl in output.labels] == ["Moths and butterflies"]


# ---------------------------------------------------------------------------------------------------
# Configuration


def _create(**env: str) -> ImageSeoProvider:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})
    return ImageSeoProvider.create(
        ProviderDeps(settings=settings, credentials=Credentials(settings), http=httpx.Client())
    )


def test_defaults() -> None:
    provider = _create()
    assert provider.client.base_url == "https://api.imageseo.io"
    assert provider.language == "en"
    assert ImageSeoProvider.capabilities == {"labels", "alt_texts"}
    assert ImageSeoProvider.accepted_formats == {"jpeg", "png"}


@pytest.mark.parametrize("lang", ["fr", "pt-br", "zh_hans", "DE"])
def test_language_codes(lang: str) -> None:
    assert _create(IMAGESEO_LANG=lang).language == lang.lower()


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"IMAGESEO_BASE_URL": "https://api.imageseo.io/v1"}, "scheme://host[:port] only"),
        ({"IMAGESEO_BASE_URL": "https://user@api.imageseo.io"}, "scheme://host[:port] only"),
        ({"IMAGESEO_LANG": "en,fr"}, "one language code"),
        ({"IMAGESEO_LANG": "english"}, "one language code"),
    ],
)
def test_bad_configuration_fails_at_create(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        _create(**env)
