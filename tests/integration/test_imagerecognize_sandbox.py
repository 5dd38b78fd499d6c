"""ImageRecognizeProvider against the local ImageRecognize sandbox over a real socket.

The sandbox checks each request against the rules quoted from the ImageRecognize v2 docs and answers with
the saved responses in tests/fixtures/imagerecognize/ (``answers="saved"``: the documented objects
example and synthetic answers for the other types, less what the options leave out); faults are
scripted per test. The image-driven answers are tested in test_sandbox_answers.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    QuotaExhaustedError,
    RateLimitedError,
)
from image_analysis.imaging import DecodedImage, decode
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.providers.imagerecognize import ImageRecognizeProvider
from image_analysis.settings import Settings
from local.sandbox import Fault, VendorSandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
FIXTURES = ROOT / "tests" / "fixtures" / "imagerecognize"
KEY = "sandbox-key"
OBJECT_ID = "5f2b9c0d41e8a7b3c6d9e0f1a2b3c4d5"
S3_KEY = "users/alice@example.com/holiday/IMG_0001.jpg"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, safety_margin=0.2, min_try_seconds=0.05)


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    box = VendorSandbox("imagerecognize", answers="saved")
    with box:
        yield box


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with new_client(5.0) as client:
        yield client


def image(name: str = "skimage-rocket.jpg") -> DecodedImage:
    return decode((IMAGES / name).read_bytes(), max_pixels=100_000_000)


def provider(sandbox: VendorSandbox, http: httpx.Client, **env: str) -> ImageRecognizeProvider:
    values = {
        "RESULTS_TABLE": "results",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:alerts",
        "IMAGERECOGNIZE_BASE_URL": sandbox.base_url,
        "IMAGERECOGNIZE_API_KEY": KEY,
        **env,
    }
    settings = Settings.from_env(values)
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=http, extra={"retry_policy": FAST})
    built = provider_class("imagerecognize").create(deps)
    assert isinstance(built, ImageRecognizeProvider)
    return built


def request(img: DecodedImage | None = None, seconds: float = 20.0) -> AnalysisRequest:
    return AnalysisRequest(
        image=img or image(), object_id=OBJECT_ID, deadline=Deadline(seconds), bucket="uploads", key=S3_KEY
    )


# ---------------------------------------------------------------------------------------------------
# The happy path


def test_every_type_is_its_own_documented_request_and_all_sections_come_back(sandbox, http) -> None:
    recognizer = provider(
        sandbox,
        http,
        IMAGERECOGNIZE_TYPES="objects,celebrities,detect_faces,detect_text,nsfw",
        IMAGERECOGNIZE_MAX_CONCURRENCY="3",
    )
    output = recognizer.analyze(request())

    assert sorted(e.route for e in sandbox.exchanges) == ["api"] * 5
    assert sandbox.statuses() == [200] * 5
    by_type = {r.form["type"][0]: r for r in sandbox.requests}
    assert set(by_type) == {"objects", "celebrities", "detect_faces", "detect_text", "nsfw"}
    for kind, sent in by_type.items():
        assert (sent.method, sent.path) == ("POST", "/api/v2/")
        assert sent.form["apikey"] == [KEY]
        [upload] = sent.files["file"]
        assert upload.filename == f"{OBJECT_ID}.jpg"
        assert upload.content_type == "image/jpeg"
        assert Image.open(io.BytesIO(upload.data)).size == (640, 427)  # full size: boxes are fractions
        wire = sent.body + json.dumps(sent.headers).encode()
        assert b"alice" not in wire and b"IMG_0001" not in wire and b"uploads" not in wire, kind
    assert by_type["objects"].form == {
        "apikey": [KEY],
        "type": ["objects"],
        "max_labels": ["20"],
        "min_confidence": ["55"],
    }
    assert by_type["nsfw"].form == {"apikey": [KEY], "type": ["nsfw"], "nsfw_min_confidence": ["50"]}
    assert by_type["celebrities"].form == {"apikey": [KEY], "type": ["celebrities"]}

    assert [(lbl.name, lbl.confidence) for lbl in output.labels] == [("Car", 0.9987), ("Pedestrian", 0.9981)]
    assert [(o.name, o.box.x, o.box.y) for o in output.objects] == [("Car", 0.35, 0.88), ("Pedestrian", 0.02, 0.04)]
    assert [c.name for c in output.celebrities] == ["Ada Lovelace", "Charles Babbage"]
    assert [f.confidence for f in output.faces] == [0.9999, 0.963]
    assert [t.text for t in output.text] == ["STOP", "Main St"]
    assert output.moderation is not None
    assert [(c.name, c.source_label) for c in output.moderation][:2] == [
        ("suggestive", "Suggestive"),
        ("suggestive", "Female Swimwear Or Underwear"),
    ]
    assert output.raw["objects"] == json.loads((FIXTURES / "objects_docs.json").read_text())
    assert set(output.raw) == {"objects", "celebrities", "detect_faces", "detect_text", "nsfw"}


def test_a_tiff_is_converted_to_jpeg_first(sandbox, http) -> None:
    buffer = io.BytesIO()
    Image.open(IMAGES / "skimage-chelsea.png").save(buffer, format="TIFF")
    provider(sandbox, http, IMAGERECOGNIZE_TYPES="objects").analyze(request(decode(buffer.getvalue(), 10**8)))
    [upload] = sandbox.requests[0].files["file"]
    assert (upload.filename, upload.content_type) == (f"{OBJECT_ID}.jpg", "image/jpeg")
    assert upload.data.startswith(b"\xff\xd8\xff")
    assert sandbox.statuses() == [200]


# ---------------------------------------------------------------------------------------------------
# Failures, in the documented body-status shape


@pytest.mark.parametrize("http_200_errors", [False, True], ids=["http-status", "body-status-only"])
def test_wrong_key_is_an_auth_error_either_way_the_status_travels(http, http_200_errors: bool) -> None:
    box = VendorSandbox("imagerecognize", http_200_errors=http_200_errors)
    with box:
        recognizer = provider(box, http, IMAGERECOGNIZE_API_KEY="wrong-key-123", IMAGERECOGNIZE_TYPES="objects")
        with pytest.raises(AuthError) as caught:
            recognizer.analyze(request())
        assert box.statuses() == [200 if http_200_errors else 401]  # not retried
    message = caught.value.message
    label = "HTTP 200, body status 401" if http_200_errors else "HTTP 401"
    assert message.startswith(f"imagerecognize: authentication failed ({label}): check api_key")
    assert 'the vendor said: "APIkey invalid"' in message
    assert "wrong-key-123" not in message
    assert caught.value.retryable is False


def test_an_auth_error_stops_the_other_types_when_sequential(sandbox, http) -> None:
    recognizer = provider(sandbox, http, IMAGERECOGNIZE_API_KEY="nope-nope", IMAGERECOGNIZE_MAX_CONCURRENCY="1")
    with pytest.raises(AuthError):
        recognizer.analyze(request())
    assert len(sandbox.requests) == 1  # nsfw was not paid for after objects was refused


def test_quota_runs_out(http) -> None:
    box = VendorSandbox("imagerecognize", quota=1, answers="saved")
    with box:
        recognizer = provider(box, http, IMAGERECOGNIZE_TYPES="objects")
        assert len(recognizer.analyze(request()).labels) == 2
        with pytest.raises(QuotaExhaustedError) as caught:
            recognizer.analyze(request())
    assert box.statuses() == [200, 402]
    assert 'the vendor said: "Quota limit reached"' in caught.value.message


def test_a_base_url_with_a_path_is_refused_at_create_and_a_missing_slash_is_300(sandbox, http) -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        provider(sandbox, http, IMAGERECOGNIZE_BASE_URL=sandbox.base_url + "/api/v2")
    with httpx.Client(base_url=sandbox.base_url) as client:
        slashless = client.post("/api/v2", data={"apikey": KEY, "type": "objects"})
    assert slashless.status_code == 300
    assert slashless.json() == json.loads((FIXTURES / "error_300_docs.json").read_text())


@pytest.mark.parametrize(
    ("status", "said"), [(412, "Invalid file"), (413, "Image size too large"), (415, "Invalid file format")]
)
def test_a_refused_file_is_a_bad_image_and_not_retried(sandbox, http, status: int, said: str) -> None:
    sandbox.faults.enqueue(Fault("error", status=status))
    with pytest.raises(BadImageError) as caught:
        provider(sandbox, http, IMAGERECOGNIZE_TYPES="objects").analyze(request())
    assert sandbox.statuses() == [status]
    assert caught.value.retryable is False
    assert f'the vendor said: "{said}"' in caught.value.message


def test_rate_limit_then_success_is_retried(sandbox, http) -> None:
    sandbox.faults.enqueue(Fault("rate_limit", retry_after="0"))
    output = provider(sandbox, http, IMAGERECOGNIZE_TYPES="objects").analyze(request())
    assert sandbox.statuses() == [429, 200]
    assert len(output.labels) == 2


def test_persistent_rate_limit_is_a_rate_limited_error(sandbox, http) -> None:
    sandbox.faults.configure(rate_limit=1.0)
    with pytest.raises(RateLimitedError):
        provider(sandbox, http, IMAGERECOGNIZE_TYPES="objects").analyze(request())
    assert sandbox.statuses() == [429, 429, 429]


def test_a_malformed_answer_is_retried_then_reported(sandbox, http) -> None:
    sandbox.faults.configure(malformed=1.0)
    with pytest.raises(BadResponseError) as caught:
        provider(sandbox, http, IMAGERECOGNIZE_TYPES="objects").analyze(request())
    assert sandbox.statuses() == [200, 200, 200]
    assert "not JSON" in caught.value.message


# ---------------------------------------------------------------------------------------------------
# The sandbox itself: the documented rules


def test_sandbox_rules(sandbox) -> None:
    jpeg = (IMAGES / "skimage-rocket.jpg").read_bytes()
    png = (IMAGES / "skimage-chelsea.png").read_bytes()
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")

    def post(data: dict, file: bytes | None = jpeg) -> httpx.Response:
        files = {"file": ("x", file, "application/octet-stream")} if file is not None else None
        with httpx.Client(base_url=sandbox.base_url) as client:
            return client.post("/api/v2/", data=data, files=files)

    def status_of(response: httpx.Response) -> tuple[int, int, str]:
        body = response.json()
        assert body["data"] is None
        return response.status_code, body["status"], body["status_message"]

    objects = {"apikey": KEY, "type": "objects", "max_labels": "10", "min_confidence": "80"}
    assert status_of(post({"type": "objects"})) == (400, 400, "APIkey missing")
    assert status_of(post({**objects, "apikey": "x"})) == (401, 401, "APIkey invalid")
    assert status_of(post({**objects, "type": "labels"})) == (420, 420, "Invalid type")
    assert status_of(post({**objects, "type": "objects,nsfw"})) == (420, 420, "Invalid type")
    assert status_of(post({**objects}, file=None)) == (430, 430, "Missing parameter: file")
    assert status_of(post(objects, file=b"hello")) == (412, 412, "Invalid file")
    assert status_of(post(objects, file=gif.getvalue())) == (415, 415, "Invalid file format")
    assert status_of(post({k: v for k, v in objects.items() if k != "max_labels"})) == (
        430,
        430,
        "Missing parameter: max_labels",
    )
    assert status_of(post({**objects, "min_confidence": "101"})) == (430, 430, "Invalid parameter: min_confidence")
    assert status_of(post({**objects, "max_labels": "0"})) == (430, 430, "Invalid parameter: max_labels")
    assert status_of(post({"apikey": KEY, "type": "nsfw"})) == (430, 430, "Missing parameter: nsfw_min_confidence")
    with httpx.Client(base_url=sandbox.base_url) as client:
        get = client.get("/api/v2/", params={"apikey": KEY, "type": "objects"})
        assert status_of(get) == (420, 420, "Invalid type")  # "GET request is only allowed together with type 'cache'"
    ok = post(objects, file=png)
    assert ok.status_code == 200
    assert ok.content == (FIXTURES / "objects_docs.json").read_bytes()  # served unchanged
    assert (
        post({"apikey": KEY, "type": "detect_text"}).content == (FIXTURES / "detect_text_synthetic.json").read_bytes()
    )
