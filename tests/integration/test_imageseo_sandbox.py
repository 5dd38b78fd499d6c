"""ImageSeoProvider against the local ImageSEO sandbox over a real socket.

The sandbox checks each request against the rules quoted from the ImageSEO "Image Reports" page and
answers with the saved files in tests/fixtures/imageseo/ (``answers="saved"``); faults are scripted per
test. The image-driven answers are tested in test_sandbox_answers.py.
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
from image_analysis.errors import AuthError, BadImageError, QuotaExhaustedError, RateLimitedError
from image_analysis.imaging import DecodedImage, decode
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.providers.imageseo import ImageSeoProvider
from image_analysis.settings import Settings
from local.sandbox import Fault, VendorSandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
FIXTURES = ROOT / "tests" / "fixtures" / "imageseo"
KEY = "sandbox-key"
OBJECT_ID = "5f2b9c0d41e8a7b3c6d9e0f1a2b3c4d5"
S3_KEY = "users/alice@example.com/holiday/IMG_0001.jpg"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, safety_margin=0.2, min_try_seconds=0.05)


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    box = VendorSandbox("imageseo", answers="saved")
    with box:
        yield box


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with new_client(5.0) as client:
        yield client


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def image(name: str = "skimage-rocket.jpg") -> DecodedImage:
    return decode((IMAGES / name).read_bytes(), max_pixels=100_000_000)


def provider(sandbox: VendorSandbox, http: httpx.Client, **env: str) -> ImageSeoProvider:
    values = {
        "RESULTS_TABLE": "results",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:alerts",
        "IMAGESEO_BASE_URL": sandbox.base_url,
        "IMAGESEO_API_KEY": KEY,
        **env,
    }
    settings = Settings.from_env(values)
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=http, extra={"retry_policy": FAST})
    built = provider_class("imageseo").create(deps)
    assert isinstance(built, ImageSeoProvider)
    return built


def request(img: DecodedImage | None = None, seconds: float = 20.0) -> AnalysisRequest:
    return AnalysisRequest(
        image=img or image(), object_id=OBJECT_ID, deadline=Deadline(seconds), bucket="uploads", key=S3_KEY
    )


# ---------------------------------------------------------------------------------------------------
# The happy path


def test_one_post_with_the_documented_header_lang_and_an_opaque_image_file(sandbox, http) -> None:
    output = provider(sandbox, http).analyze(request())

    [sent] = sandbox.requests
    assert sandbox.statuses() == [200]
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/external/projects/images", {})
    assert sent.header("authentication") == KEY  # the header the docs name, the key as its value
    assert sent.header("authorization") is None
    assert sent.form == {"lang": ["en"]}
    [upload] = sent.files["imageFile"]
    assert set(sent.files) == {"imageFile"}
    assert (upload.filename, upload.content_type) == (f"{OBJECT_ID}.jpg", "image/jpeg")
    assert Image.open(io.BytesIO(upload.data)).size == (640, 427)
    wire = sent.body + json.dumps(sent.headers).encode() + sent.path.encode()
    assert b"alice" not in wire and b"IMG_0001" not in wire and b"uploads" not in wire and b"holiday" not in wire

    assert [(lbl.name, lbl.confidence) for lbl in output.labels] == [("Moths and butterflies", 0.994273)]
    assert [(alt.text, alt.confidence) for alt in output.alt_texts] == [
        ("Operations management", 0.7144),
        ("Management", 0.6335),
    ]
    assert output.raw == {"images": json.loads((FIXTURES / "image_report_docs.json").read_text())}


def test_lang_setting_goes_as_the_lang_field(sandbox, http) -> None:
    provider(sandbox, http, IMAGESEO_LANG="fr").analyze(request())
    assert sandbox.requests[0].form == {"lang": ["fr"]}


@pytest.mark.parametrize("fmt", ["HEIF", "WEBP", "GIF", "TIFF", "BMP"])
def test_other_formats_reach_imageseo_as_jpeg(sandbox, http, fmt: str) -> None:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    picture = Image.open(IMAGES / "skimage-chelsea.png").convert("RGB")
    source = decode(encoded(picture, fmt), max_pixels=100_000_000)
    assert source.format == ("heic" if fmt == "HEIF" else fmt.lower())
    provider(sandbox, http).analyze(request(source))
    assert sandbox.statuses() == [200]  # the sandbox takes JPEG and PNG only
    [upload] = sandbox.requests[0].files["imageFile"]
    assert (upload.filename, upload.content_type) == (f"{OBJECT_ID}.jpg", "image/jpeg")
    assert upload.data.startswith(b"\xff\xd8\xff")
    assert Image.open(io.BytesIO(upload.data)).size == (451, 300)


def test_an_animated_gif_reaches_imageseo_as_its_first_frame(sandbox, http) -> None:
    frames = [Image.new("RGB", (60, 40), color) for color in ((0, 160, 0), (255, 0, 0))]
    source = decode(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), max_pixels=10**8)
    assert source.frames == 2
    provider(sandbox, http).analyze(request(source))
    [upload] = sandbox.requests[0].files["imageFile"]
    red, green, _ = Image.open(io.BytesIO(upload.data)).convert("RGB").getpixel((30, 20))
    assert green > 120 and red < 60


def test_a_png_goes_as_png(sandbox, http) -> None:
    picture = Image.new("RGB", (40, 30), (10, 20, 30))  # opaque: nothing to put on a backdrop
    source = decode(encoded(picture, "PNG"), max_pixels=10**8)
    provider(sandbox, http).analyze(request(source))
    [upload] = sandbox.requests[0].files["imageFile"]
    assert (upload.filename, upload.content_type, upload.data) == (f"{OBJECT_ID}.png", "image/png", source.data)


# ---------------------------------------------------------------------------------------------------
# Failures


def test_wrong_key_is_an_auth_error(sandbox, http) -> None:
    with pytest.raises(AuthError) as caught:
        provider(sandbox, http, IMAGESEO_API_KEY="wrong-key-123").analyze(request())
    assert sandbox.statuses() == [401]  # not retried
    message = caught.value.message
    assert message.startswith("imageseo: authentication failed (HTTP 401): check the api_key")
    assert "wrong-key-123" not in message and KEY not in message
    assert caught.value.retryable is False


def test_402_is_quota_exhausted(sandbox, http) -> None:
    sandbox.faults.enqueue(Fault("error", status=402))
    with pytest.raises(QuotaExhaustedError) as caught:
        provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [402]
    assert "credits are used up" in caught.value.message
    assert "code payment_required" in caught.value.message


def test_503_then_success_is_retried(sandbox, http) -> None:
    sandbox.faults.enqueue("unavailable", "ok")
    output = provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [503, 200]
    assert output.labels[0].name == "Moths and butterflies"


def test_429_with_a_long_retry_after_hands_the_record_back(sandbox, http) -> None:
    sandbox.faults.enqueue(Fault("rate_limit", retry_after="120"))
    with pytest.raises(RateLimitedError) as caught:
        provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [429]
    assert caught.value.retry_after == 120.0


def test_no_report_is_a_bad_image_and_not_retried(sandbox, http) -> None:
    sandbox.vendor.set_response("images", "no_report_docs.json")
    with pytest.raises(BadImageError) as caught:
        provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [404]  # the status the docs show it with
    assert caught.value.retryable is False
    assert caught.value.message == (
        "imageseo: the image was refused (HTTP 404, body status 422): ImageSEO made no report for this image; "
        'it is not retried; the vendor said: "success false, code no_report"'
    )


def test_missing_key_is_an_auth_error_without_a_request(sandbox, http) -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "IMAGESEO_BASE_URL": sandbox.base_url})
    imageseo = ImageSeoProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings), http=http))
    with pytest.raises(AuthError, match="IMAGESEO_API_KEY"):
        imageseo.analyze(request())
    assert sandbox.requests == []


# ---------------------------------------------------------------------------------------------------
# The sandbox itself: the documented rules


def test_sandbox_rules(sandbox) -> None:
    jpeg = (IMAGES / "skimage-rocket.jpg").read_bytes()
    auth = {"Authentication": KEY}
    path = "/v1/external/projects/images"
    with httpx.Client(base_url=sandbox.base_url) as client:
        no_auth = client.post(path, files={"imageFile": ("a.jpg", jpeg)})
        assert (no_auth.status_code, no_auth.json()) == (401, {"success": False, "code": "unauthorized"})
        # Not the documented header, or not the bare key: refused.
        assert (
            client.post(path, files={"imageFile": ("a.jpg", jpeg)}, headers={"Authorization": KEY}).status_code == 401
        )
        bearer = {"Authentication": f"Bearer {KEY}"}
        assert client.post(path, files={"imageFile": ("a.jpg", jpeg)}, headers=bearer).status_code == 401

        ok = client.post(path, files={"imageFile": ("a.jpg", jpeg)}, data={"lang": "fr"}, headers=auth)
        assert ok.status_code == 200
        assert ok.content == (FIXTURES / "image_report_docs.json").read_bytes()  # served unchanged
        by_url = client.post(path, data={"src": "https://example.com/image"}, headers=auth)
        assert by_url.status_code == 200

        missing = client.post(path, data={"lang": "en"}, headers=auth)
        assert (missing.status_code, missing.json()) == (400, {"success": False, "code": "missing_image"})
        wrong_field = client.post(path, files={"image": ("a.jpg", jpeg)}, headers=auth)
        assert wrong_field.status_code == 400
        bad_lang = client.post(path, files={"imageFile": ("a.jpg", jpeg)}, data={"lang": "French!"}, headers=auth)
        assert (bad_lang.status_code, bad_lang.json()["code"]) == (400, "invalid_lang")
        webp = encoded(Image.new("RGB", (8, 8)), "WEBP")
        unsupported = client.post(path, files={"imageFile": ("a.webp", webp)}, headers=auth)
        assert (unsupported.status_code, unsupported.json()["code"]) == (415, "unsupported_format")
        assert client.get(path, headers=auth).status_code == 405
        assert client.post("/v1/images", files={"imageFile": ("a.jpg", jpeg)}, headers=auth).status_code == 404

        sandbox.vendor.set_response("images", "no_report_docs.json")
        failed = client.post(path, files={"imageFile": ("a.jpg", jpeg)}, headers=auth)
        assert failed.status_code == 404
        assert failed.content == (FIXTURES / "no_report_docs.json").read_bytes()
