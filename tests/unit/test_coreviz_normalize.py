"""CoreViz normalization is a pure function; the adapter's URL handling never lets a presigned URL out.

Golden files: every ``tests/fixtures/coreviz/<name>.json`` with a ``<name>.expected.json`` next to it.
The explicit tests pin values worked out by hand. Adapter tests run over an httpx MockTransport with a
recording stand-in for the S3 client (no sockets); presigning itself is checked with botocore offline.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
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
    ServerError,
)
from image_analysis.imaging import decode
from image_analysis.merge import pack_raw
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.coreviz import (
    STATUS_KINDS,
    UNSCORED_CONFIDENCE,
    URL_REMOVED,
    CoreVizProvider,
    normalize,
    normalize_classification,
    normalize_tags,
    presign_client,
    scrub,
    url_secrets,
)
from image_analysis.providers.http import RetryPolicy
from image_analysis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "coreviz"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))
ERRORS = sorted(FIXTURES.glob("error_*.json"))
KEY = "cv-key-8d41e8a7b3c6"
OBJECT_ID = "5f2b9c0d41e8a7b3c6d9e0f1a2b3c4d5"
S3_KEY = "users/alice@example.com/holiday/IMG_0001.jpg"
SIGNATURE = "6e3f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/abc+def=="


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_every_payload_fixture_has_a_golden_file_or_is_an_error() -> None:
    payloads = {p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")}
    goldens = {p.name.replace(".expected.json", ".json") for p in GOLDEN}
    assert payloads - goldens == {p.name for p in ERRORS}
    assert len(GOLDEN) == 7
    assert len(ERRORS) == 4


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda p: p.name)
def test_golden(golden: Path) -> None:
    expected = json.loads(golden.read_text())
    payload = load(expected["fixture"])
    output = normalize(expected["mode"], payload)
    assert output.model_dump(exclude={"raw"}, exclude_defaults=True) == expected["output"]
    assert output.raw == {expected["mode"]: payload}


# ---------------------------------------------------------------------------------------------------
# Values worked out by hand


def test_documented_tags_keep_their_confidence_and_order() -> None:
    labels = normalize_tags(load("tags_docs.json"))
    assert [(lbl.name, lbl.confidence, lbl.provider) for lbl in labels] == [
        ("person", 0.95, "coreviz"),
        ("outdoor", 0.87, "coreviz"),
        ("nature", 0.82, "coreviz"),
    ]


def test_plain_string_tags_get_the_documented_default_confidence_in_vendor_order() -> None:
    assert UNSCORED_CONFIDENCE == 0.5
    labels = normalize_tags(load("result_strings_synthetic.json"))
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [("cat", 0.5), ("sofa", 0.5), ("indoor", 0.5)]


def test_mixed_tags_rank_scored_ones_around_the_unscored_and_repeat_at_their_best() -> None:
    payload = {
        "tags": [
            "  beach ",
            {"tag": "sea", "confidence": 0.93},
            {"tag": "sand", "confidence": 0.31},
            {"tag": "sky"},  # an object without a score
            {"tag": "sea", "confidence": 0.4},
            "",
        ],
        "added_later": {"model": "v9"},
    }
    assert [(lbl.name, lbl.confidence) for lbl in normalize_tags(payload)] == [
        ("sea", 0.93),
        ("beach", 0.5),
        ("sky", 0.5),
        ("sand", 0.31),
    ]


def test_tags_win_over_result_and_tag_as_in_the_sdk() -> None:
    payload = {"tags": ["a"], "result": ["b"], "tag": "c"}
    assert [lbl.name for lbl in normalize_tags(payload)] == ["a"]
    assert [lbl.name for lbl in normalize_tags({"result": ["b"], "tag": "c"})] == ["b"]
    assert normalize_tags({"tags": []}) == []


def test_classification_documented_example() -> None:
    result = normalize_classification(load("classification_docs.json"))
    assert (result.label, result.confidence, result.provider) == ("invoice", 0.92, "coreviz")
    assert [(s.label, s.score) for s in result.scores] == [
        ("invoice", 0.92),
        ("receipt", 0.15),
        ("contract", 0.08),
        ("other", 0.05),
    ]


def test_classification_without_its_confidence_takes_its_score() -> None:
    payload = copy.deepcopy(load("classification_docs.json"))
    del payload["confidence"]
    payload["classification"] = "receipt"
    result = normalize_classification(payload)
    assert (result.label, result.confidence) == ("receipt", 0.15)


def test_all_scores_only_picks_the_best_choice() -> None:
    payload = {
        "all_scores": [{"choice": "a", "score": 0.2}, {"choice": "b", "score": 0.7}, {"choice": "c", "score": 0.1}]
    }
    result = normalize_classification(payload)
    assert (result.label, result.confidence) == ("b", 0.7)
    assert [s.label for s in result.scores] == ["b", "a", "c"]


def test_a_classification_in_a_tag_shape_takes_the_best_tag() -> None:
    assert normalize_classification({"tag": "invoice"}).model_dump(exclude={"provider"}) == {
        "label": "invoice",
        "confidence": 0.5,
        "scores": [],
    }
    scored = normalize_classification(
        {"tags": [{"tag": "receipt", "confidence": 0.3}, {"tag": "invoice", "confidence": 0.8}]}
    )
    assert (scored.label, scored.confidence) == ("invoice", 0.8)


def test_url_secrets_and_scrub() -> None:
    url = fake_url("uploads", S3_KEY)
    secrets = url_secrets(url)
    assert url in secrets and SIGNATURE in secrets and TOKEN in secrets
    assert "https://uploads.s3.us-east-1.amazonaws.com/users/alice%40example.com/holiday/IMG_0001.jpg" in secrets
    echoed = {"image": url, "tags": [{"tag": "x", "confidence": 0.5}], "debug": [f"fetched {url} ok"], url: 1}
    assert scrub(echoed, secrets) == {
        "image": URL_REMOVED,
        "tags": [{"tag": "x", "confidence": 0.5}],
        "debug": [URL_REMOVED],
        URL_REMOVED: 1,
    }


# ---------------------------------------------------------------------------------------------------
# Malformed payloads: a BadResponseError, never a KeyError


MALFORMED: list[tuple[str, Any]] = [
    ("tags", None),
    ("tags", []),
    ("tags", "person, outdoor"),
    ("tags", {}),  # none of tags, result, tag
    ("tags", {"labels": ["a"]}),  # a renamed key
    ("tags", {"tags": "person"}),
    ("tags", {"tags": [{"tag": "x", "confidence": "high"}]}),
    ("tags", {"tags": [{"tag": "x", "confidence": 187}]}),  # above 100 on any scale
    ("tags", {"tags": [{"tag": "x", "confidence": float("nan")}]}),
    ("tags", {"tags": [42]}),
    ("prompt", {"result": {"a": 1}}),
    ("classification", None),
    ("classification", {}),
    ("classification", {"classification": 7, "confidence": 0.9}),
    ("classification", {"classification": "a", "confidence": 150}),
    ("classification", {"all_scores": [{"choice": "a"}]}),
    ("classification", {"all_scores": [{"choice": "a", "score": -0.2}]}),
    ("classification", {"tags": []}),  # a tag shape that names no choice
]


# ---------------------------------------------------------------------------------------------------
# Valid but different: other field names and 0-100 scores normalize to the same 0..1 result


def test_tags_as_name_and_score_objects() -> None:
    labels = normalize_tags({"tags": [{"name": "person", "score": 0.95}, {"label": "outdoor", "confidence": 0.87}]})
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [("person", 0.95), ("outdoor", 0.87)]


def test_tags_in_percent_are_scaled_as_one_answer() -> None:
    payload = {"tags": [{"tag": "person", "confidence": 95}, {"tag": "outdoor", "confidence": 87.5}, "nature"]}
    labels = normalize_tags(payload)
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [("person", 0.95), ("outdoor", 0.875), ("nature", 0.5)]
    # One value above 1 puts the whole answer in percent: 0.8 there is 0.8 %, not 80 %.
    mixed = normalize_tags({"tags": [{"tag": "a", "confidence": 40}, {"tag": "b", "confidence": 0.8}]})
    assert [(lbl.name, lbl.confidence) for lbl in mixed] == [("a", 0.4), ("b", 0.008)]


def test_a_tag_object_without_a_name_is_left_out() -> None:
    labels = normalize_tags({"tags": [{"confidence": 0.9}, {"tag": "cat", "confidence": 0.7}]})
    assert [(lbl.name, lbl.confidence) for lbl in labels] == [("cat", 0.7)]


def test_classification_in_percent_with_confidence_in_all_scores() -> None:
    payload = {
        "classification": "invoice",
        "confidence": 92,
        "all_scores": [{"label": "receipt", "confidence": 15}, {"choice": "invoice", "confidence": 92}],
    }
    result = normalize_classification(payload)
    assert (result.label, result.confidence) == ("invoice", 0.92)
    assert [(s.label, s.score) for s in result.scores] == [("invoice", 0.92), ("receipt", 0.15)]
    only_scores = normalize_classification({"all_scores": [{"name": "a", "score": 30}, {"name": "b", "score": 70}]})
    assert (only_scores.label, only_scores.confidence) == ("b", 0.7)


@pytest.mark.parametrize(("mode", "payload"), MALFORMED)
def test_malformed_payloads_raise_bad_response(mode: str, payload: object) -> None:
    with pytest.raises(BadResponseError) as caught:
        normalize(mode, payload)
    assert caught.value.message.startswith("coreviz: ")
    assert caught.value.code == "bad_response"


@pytest.mark.parametrize(
    ("mode", "payload"),
    [
        ("tags", {"tags": [{"tag": "sea", "confidence": 0.9}], "debug": {"latency": float("nan")}}),
        ("classification", {"classification": "invoice", "confidence": 0.9, "debug": {"latency": float("nan")}}),
    ],
)
def test_a_non_finite_number_in_a_field_not_read_leaves_the_answer_usable(mode: str, payload: dict) -> None:
    # A field the adapter never reads is no reason to refuse (and retry, and pay for) the answer: raw keeps
    # it as it came, packed as text, which can carry it.
    output = normalize(mode, payload)
    assert (output.labels[0].name if mode == "tags" else output.classification.label) in ("sea", "invoice")  # type: ignore[union-attr]
    assert isinstance(pack_raw(output.raw, budget_bytes=100_000)[mode], str)


# ---------------------------------------------------------------------------------------------------
# The adapter over a mock transport, with a recording S3 stand-in


def fake_url(bucket: str, key: str, version: str | None = None, ttl: int = 300) -> str:
    from urllib.parse import quote

    version_part = f"versionId={quote(version, safe='')}&" if version else ""
    return (
        f"https://{bucket}.s3.us-east-1.amazonaws.com/{quote(key, safe='/')}?{version_part}"
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date=20260101T000000Z&X-Amz-Expires={ttl}&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token={quote(TOKEN, safe='')}&X-Amz-Signature={SIGNATURE}"
    )


class RecordingS3:
    """Records what the adapter does with S3; presigns with a fixed, recognisable signature."""

    def __init__(self, fail_put: Exception | None = None, fail_delete: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_put = fail_put
        self.fail_delete = fail_delete
        self.urls: list[str] = []

    def put_object(self, **kwargs: Any) -> dict:
        self.calls.append(("put_object", kwargs))
        if self.fail_put:
            raise self.fail_put
        return {}

    def delete_object(self, **kwargs: Any) -> dict:
        self.calls.append(("delete_object", kwargs))
        if self.fail_delete:
            raise self.fail_delete
        return {}

    def generate_presigned_url(self, operation: str, Params: dict, ExpiresIn: int) -> str:
        self.calls.append(("generate_presigned_url", {"operation": operation, **Params, "ExpiresIn": ExpiresIn}))
        url = fake_url(Params["Bucket"], Params["Key"], Params.get("VersionId"), ExpiresIn)
        self.urls.append(url)
        return url


FAST = RetryPolicy(base_delay=0.001, max_delay=0.002, safety_margin=0.0, min_try_seconds=0.0)


def make(
    handler: Callable[[httpx.Request], httpx.Response], s3: RecordingS3 | None = None, **env: str
) -> tuple[CoreVizProvider, RecordingS3]:
    s3 = s3 or RecordingS3()
    values = {
        "RESULTS_TABLE": "t",
        "ALERTS_TOPIC_ARN": "a",
        "COREVIZ_API_KEY": KEY,
        # These tests exercise handing over the original; the default ("copy") has tests of its own.
        "COREVIZ_URL_SOURCE": "original",
        "ARTIFACTS_BUCKET": "artifacts",
        "AWS_REGION": "us-east-1",
        **env,
    }
    settings = Settings.from_env({k: v for k, v in values.items() if v is not None})
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": FAST, "sleep": lambda _: None, "coreviz_s3": s3},
    )
    built = provider_class("coreviz").create(deps)
    assert isinstance(built, CoreVizProvider)
    return built, s3


def image_bytes(fmt: str, size: tuple[int, int] = (160, 120), **save: Any) -> bytes:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def request(
    data: bytes, bucket: str = "uploads", version: str | None = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
) -> AnalysisRequest:
    return AnalysisRequest(
        image=decode(data, max_pixels=100_000_000),
        object_id=OBJECT_ID,
        deadline=Deadline(30),
        bucket=bucket,
        key=S3_KEY,
        version_id=version,
    )


def answer(name: str, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    body = (FIXTURES / name).read_bytes()
    return lambda _: httpx.Response(status, content=body, headers={"Content-Type": "application/json"})


def test_a_clean_jpeg_is_handed_over_as_a_presigned_url_of_the_object_version_itself() -> None:
    sent: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        return answer("tags_docs.json")(req)

    provider, s3 = make(handler, COREVIZ_URL_TTL_SECONDS="120")
    output = provider.analyze(request(image_bytes("JPEG")))
    [req] = sent
    assert (req.method, req.url.path) == ("POST", "/api/ai/tag")
    assert req.headers["x-api-key"] == KEY
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.content)
    assert body == {"image": s3.urls[0]}
    assert s3.calls == [
        (
            "generate_presigned_url",
            {
                "operation": "get_object",
                "Bucket": "uploads",
                "Key": S3_KEY,
                "VersionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
                "ExpiresIn": 120,
            },
        )
    ]
    assert [(lbl.name, lbl.confidence) for lbl in output.labels] == [
        ("person", 0.95),
        ("outdoor", 0.87),
        ("nature", 0.82),
    ]
    assert output.raw == {"tags": load("tags_docs.json")}


@pytest.mark.parametrize(
    ("fmt", "save", "mime", "extension"),
    [
        ("TIFF", {}, "image/jpeg", "jpg"),
        ("HEIF", {}, "image/jpeg", "jpg"),
        ("GIF", {}, "image/jpeg", "jpg"),
        ("BMP", {}, "image/jpeg", "jpg"),
    ],
)
def test_formats_coreviz_cannot_be_handed_go_as_a_prepared_copy_that_is_deleted(
    fmt: str, save: dict, mime: str, extension: str
) -> None:
    provider, s3 = make(answer("tags_docs.json"))
    output = provider.analyze(request(image_bytes(fmt, **save)))
    put, presign, delete = s3.calls
    prepared_key = put[1]["Key"]
    # A name of this call's own: copies of one event in one batch never delete each other's copy.
    assert re.fullmatch(rf"prepared/{OBJECT_ID}-[0-9a-f]{{12}}\.{extension}", prepared_key)
    assert put[0] == "put_object"
    assert (put[1]["Bucket"], put[1]["Key"], put[1]["ContentType"]) == ("artifacts", prepared_key, mime)
    assert Image.open(io.BytesIO(put[1]["Body"])).format == "JPEG"
    assert presign == (
        "generate_presigned_url",
        {"operation": "get_object", "Bucket": "artifacts", "Key": prepared_key, "ExpiresIn": 300},
    )
    assert delete == ("delete_object", {"Bucket": "artifacts", "Key": prepared_key})
    assert S3_KEY not in s3.urls[0] and "uploads" not in s3.urls[0]
    assert len(output.labels) == 3


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_formats_coreviz_reads_go_as_they_are_when_a_version_pins_the_bytes(fmt: str) -> None:
    provider, s3 = make(answer("tags_docs.json"))
    provider.analyze(request(image_bytes(fmt)))
    assert [c[0] for c in s3.calls] == ["generate_presigned_url"]
    assert s3.calls[0][1]["VersionId"] == "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"


def test_an_unversioned_original_goes_as_a_copy_so_coreviz_reads_the_bytes_hashed_here() -> None:
    # The key may hold newer bytes by the time CoreViz fetches it; their verdict would be cached under these.
    provider, s3 = make(answer("tags_docs.json"))
    provider.analyze(request(image_bytes("JPEG"), version=None))
    assert [c[0] for c in s3.calls] == ["put_object", "generate_presigned_url", "delete_object"]
    assert s3.calls[1][1]["Bucket"] == "artifacts"


def test_an_image_over_the_size_limit_goes_as_a_smaller_copy() -> None:
    noisy = Image.effect_noise((900, 900), 120).convert("RGB")
    buffer = io.BytesIO()
    noisy.save(buffer, format="PNG")
    provider, s3 = make(answer("tags_docs.json"), COREVIZ_MAX_IMAGE_BYTES="200000")
    assert len(buffer.getvalue()) > 200_000
    provider.analyze(request(buffer.getvalue()))
    put = s3.calls[0][1]
    # A PNG stays a PNG (lossless), only smaller.
    assert put["ContentType"] == "image/png" and put["Key"].endswith(".png")
    assert len(put["Body"]) <= 200_000
    assert max(Image.open(io.BytesIO(put["Body"])).size) < 900


def test_url_source_copy_never_hands_over_the_bucket_or_the_key() -> None:
    original = image_bytes("JPEG")
    provider, s3 = make(answer("tags_docs.json"), COREVIZ_URL_SOURCE="copy")
    provider.analyze(request(original))
    put, presign, delete = s3.calls
    assert put[1]["Body"] == original  # the same bytes, under the opaque name
    assert presign[1]["Bucket"] == "artifacts" and delete[0] == "delete_object"
    assert "alice" not in s3.urls[0] and "IMG_0001" not in s3.urls[0]


def test_without_an_artifacts_bucket_a_conversion_is_a_clear_bad_image_error() -> None:
    calls = []
    provider, s3 = make(lambda r: calls.append(r) or httpx.Response(200), ARTIFACTS_BUCKET=None)
    with pytest.raises(BadImageError) as caught:
        provider.analyze(request(image_bytes("TIFF")))
    assert caught.value.message.startswith("coreviz: CoreViz cannot be handed this tiff image as it is")
    assert "set ARTIFACTS_BUCKET" in caught.value.message
    assert caught.value.retryable is False
    assert calls == [] and s3.calls == []


def test_modes_put_their_fields_in_the_body() -> None:
    bodies = []

    def handler(req: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(req.content))
        return answer("classification_docs.json")(req)

    provider, s3 = make(handler, COREVIZ_CHOICES=" receipt, invoice ,contract,other,invoice", COREVIZ_SINGLE="false")
    output = provider.analyze(request(image_bytes("JPEG")))
    assert bodies == [{"image": s3.urls[0], "choices": ["receipt", "invoice", "contract", "other"], "single": False}]
    assert output.classification is not None and output.classification.label == "invoice"
    assert output.labels == []
    assert set(output.raw) == {"classification"}

    prompted, s3 = make(
        lambda r: bodies.append(json.loads(r.content)) or answer("tags_docs.json")(r),
        COREVIZ_PROMPT="identify all animals",
    )
    assert prompted.mode == "prompt" and prompted.enabled == {"labels"}
    prompted.analyze(request(image_bytes("JPEG")))
    assert bodies[-1] == {"image": s3.urls[0], "prompt": "identify all animals"}


def test_nothing_asked_of_it_means_no_call() -> None:
    calls = []
    provider, s3 = make(lambda r: calls.append(r) or httpx.Response(200))
    req = request(image_bytes("JPEG"))
    narrowed = AnalysisRequest(**{**req.__dict__, "capabilities": frozenset({"moderation"})})
    assert provider.analyze(narrowed).model_dump(exclude_defaults=True) == {}
    assert calls == [] and s3.calls == []


# ---------------------------------------------------------------------------------------------------
# Status codes and what error messages, logs and results reveal

EXPECTED_ERRORS: dict[int, tuple[type[ProviderError], str]] = {
    400: (BadResponseError, "Bad Request: Invalid image URL or missing required fields"),
    401: (AuthError, "Unauthorized: Invalid or missing API key"),
    402: (QuotaExhaustedError, "Insufficient credits"),
    422: (BadImageError, "Unprocessable Entity: Unable to process the provided image"),
}


def test_the_status_table_covers_exactly_the_documented_codes() -> None:
    assert set(STATUS_KINDS) == set(EXPECTED_ERRORS)
    assert {int(p.stem.split("_")[1]) for p in ERRORS} == set(EXPECTED_ERRORS)


@pytest.mark.parametrize("error_file", ERRORS, ids=lambda p: p.stem)
def test_every_documented_error_maps_to_its_typed_error(error_file: Path) -> None:
    status = int(error_file.stem.split("_")[1])
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(status, content=error_file.read_bytes())

    provider, s3 = make(handler)
    with pytest.raises(ProviderError) as caught:
        provider.analyze(request(image_bytes("TIFF")))  # a prepared copy: it must be deleted on failure too
    error_class, said = EXPECTED_ERRORS[status]
    assert type(caught.value) is error_class
    assert caught.value.retryable is False
    assert len(calls) == 1
    assert f'the vendor said: "{said}"' in caught.value.message
    assert KEY not in caught.value.message
    assert [c[0] for c in s3.calls] == ["put_object", "generate_presigned_url", "delete_object"]


def test_a_vendor_echoing_the_url_gets_it_into_no_message_no_log_and_no_result(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    echoed: list[str] = []

    def failing(req: httpx.Request) -> httpx.Response:
        url = json.loads(req.content)["image"]
        echoed.append(url)
        return httpx.Response(503, json={"error": "Service Unavailable", "message": f"could not fetch {url}"})

    provider, s3 = make(failing)
    with pytest.raises(ServerError) as caught:
        provider.analyze(request(image_bytes("JPEG")))
    url = s3.urls[0]
    assert echoed == [url, url, url]  # retried with the same URL
    message = caught.value.message
    assert "could not fetch" in message
    for secret in (url, SIGNATURE, TOKEN, "alice@example.com", "alice%40example.com", KEY):
        assert secret not in message
        assert all(secret not in record.getMessage() for record in caplog.records)

    def succeeding(req: httpx.Request) -> httpx.Response:
        url = json.loads(req.content)["image"]
        return httpx.Response(200, json={"tags": [{"tag": "sky", "confidence": 0.9}], "image": url, "source": [url]})

    provider, s3 = make(succeeding)
    output = provider.analyze(request(image_bytes("JPEG")))
    dumped = output.model_dump_json()
    assert s3.urls[0] not in dumped and SIGNATURE not in dumped
    assert output.raw["tags"]["image"] == URL_REMOVED
    assert output.raw["tags"]["source"] == [URL_REMOVED]
    assert [lbl.name for lbl in output.labels] == ["sky"]


def test_a_200_with_only_an_error_is_a_bad_response() -> None:
    provider, _ = make(lambda _: httpx.Response(200, json={"error": "Model overloaded"}))
    with pytest.raises(BadResponseError) as caught:
        provider.analyze(request(image_bytes("JPEG")))
    assert 'the vendor said: "Model overloaded"' in caught.value.message


def test_s3_refusing_the_prepared_copy_is_a_final_error_that_says_what_to_grant() -> None:
    from botocore.exceptions import ClientError

    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "PutObject",
    )
    calls = []
    provider, s3 = make(lambda r: calls.append(r) or httpx.Response(200), RecordingS3(fail_put=denied))
    with pytest.raises(ServerError) as caught:
        provider.analyze(request(image_bytes("TIFF")))
    assert caught.value.retryable is False
    assert "cannot store the prepared copy in ARTIFACTS_BUCKET 'artifacts' (AccessDenied)" in caught.value.message
    assert "s3:PutObject" in caught.value.message
    assert calls == [] and [c[0] for c in s3.calls] == ["put_object"]


def test_a_failed_delete_is_logged_and_the_answer_still_counts(caplog) -> None:
    caplog.set_level(logging.WARNING)
    provider, s3 = make(answer("tags_docs.json"), RecordingS3(fail_delete=ConnectionError("reset")))
    output = provider.analyze(request(image_bytes("TIFF")))
    assert len(output.labels) == 3
    assert [c[0] for c in s3.calls] == ["put_object", "generate_presigned_url", "delete_object"]
    [record] = [r for r in caplog.records if r.name == "image_analysis.providers.coreviz"]
    assert re.search(
        rf"s3://artifacts/prepared/{OBJECT_ID}-[0-9a-f]{{12}}\.jpg \(ConnectionError\)", record.getMessage()
    )
    assert "lifecycle rule" in record.getMessage()


# ---------------------------------------------------------------------------------------------------
# Presigning with botocore (offline): SigV4, regional, the configured lifetime


@pytest.mark.parametrize(
    ("region", "host"),
    [("us-east-1", "uploads.s3.us-east-1.amazonaws.com"), ("eu-west-1", "uploads.s3.eu-west-1.amazonaws.com")],
)
def test_presign_client_signs_v4_on_the_regional_endpoint(monkeypatch, region: str, host: str) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name=region)
    client = presign_client(region, session)
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "uploads", "Key": S3_KEY, "VersionId": "v1"}, ExpiresIn=300
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.hostname) == ("https", host)
    assert parts.path == "/users/alice%40example.com/holiday/IMG_0001.jpg"
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Credential"][0].endswith(f"/{region}/s3/aws4_request")
    assert query["versionId"] == ["v1"]


# ---------------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"COREVIZ_BASE_URL": "https://lab.coreviz.io/api/ai/tag"}, "scheme://host[:port] only"),
        ({"COREVIZ_URL_TTL_SECONDS": "5"}, "between 30 and 3600"),
        ({"COREVIZ_URL_TTL_SECONDS": "five"}, "must be an integer"),
        ({"COREVIZ_SINGLE": "maybe"}, "true or false"),
        ({"COREVIZ_URL_SOURCE": "public"}, "original or copy"),
        ({"COREVIZ_PROMPT": "x" * 2001}, "at most 2000 characters"),
    ],
)
def test_bad_configuration_fails_at_create(env: dict[str, str], complaint: str) -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        CoreVizProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings)))


def test_defaults() -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "AWS_REGION": "eu-central-1"})
    provider = CoreVizProvider.create(
        ProviderDeps(settings=settings, credentials=Credentials(settings), http=httpx.Client())
    )
    assert provider.client.base_url == "https://lab.coreviz.io"
    assert provider.mode == "tags" and provider.enabled == {"labels"}
    assert provider.url_ttl_seconds == 300
    assert provider.url_source == "copy"  # the vendor never sees the bucket or key by default
    assert provider.region == "eu-central-1"
    assert provider.single is False  # per-choice scores need single=false
    assert provider.body("https://example.test/a.jpg") == {"image": "https://example.test/a.jpg"}


def test_presigning_leaves_no_signature_in_botocore_debug_logs_and_quiets_nothing_else(monkeypatch, caplog) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    caplog.set_level(logging.DEBUG)
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        aws_session_token=TOKEN,
        region_name="us-east-1",
    )
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "COREVIZ_API_KEY": KEY})
    provider = CoreVizProvider.create(
        ProviderDeps(
            settings=settings,
            credentials=Credentials(settings),
            http=httpx.Client(),
            extra={"coreviz_s3": presign_client("us-east-1", session)},
        )
    )
    url = provider._presign("uploads", S3_KEY, None)
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    messages = [r.getMessage() for r in caplog.records]
    assert messages  # botocore did log (hooks, endpoint resolution) ...
    assert all(signature not in m and TOKEN not in m and url not in m for m in messages)  # ... but not the secrets
    # The filter drops records only while presigning: botocore.auth is heard again afterwards.
    logging.getLogger("botocore.auth").debug("after presigning")
    assert caplog.records[-1].getMessage() == "after presigning"
