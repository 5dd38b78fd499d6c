"""AiOrNotProvider against the local AI or Not sandbox over a real socket.

The sandbox checks each request against the rules quoted from the AI or Not OpenAPI page and answers with
the saved real responses in tests/fixtures/aiornot/ (``answers="saved"``), less the reports not run;
faults are scripted per test. The image-driven answers are tested in test_sandbox_answers.py.
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
from image_analysis.errors import AuthError, BadResponseError, QuotaExhaustedError, ServerError
from image_analysis.imaging import DecodedImage, decode
from image_analysis.providers import provider_class
from image_analysis.providers.aiornot import AiOrNotProvider
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.settings import Settings
from local.sandbox import Fault, VendorSandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
FIXTURES = ROOT / "tests" / "fixtures" / "aiornot"
KEY = "sandbox-key"
OBJECT_ID = "5f2b9c0d41e8a7b3c6d9e0f1a2b3c4d5"
S3_KEY = "users/alice@example.com/holiday/IMG_0001.jpg"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, safety_margin=0.2, min_try_seconds=0.05)


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    box = VendorSandbox("aiornot", answers="saved")
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


def clean_jpeg(size: tuple[int, int] = (640, 427)) -> DecodedImage:
    """A JPEG without metadata: such a file goes to AI or Not byte for byte."""
    picture = Image.new("RGB", size)
    picture.paste(Image.open(IMAGES / "skimage-rocket.jpg").convert("RGB").resize(size))  # pixels only
    return decode(encoded(picture, "JPEG", quality=90), max_pixels=100_000_000)


def provider(sandbox: VendorSandbox, http: httpx.Client, **env: str) -> AiOrNotProvider:
    values = {
        "RESULTS_TABLE": "results",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:alerts",
        "AIORNOT_BASE_URL": sandbox.base_url,
        "AIORNOT_API_KEY": KEY,
        **env,
    }
    settings = Settings.from_env(values)
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=http, extra={"retry_policy": FAST})
    built = provider_class("aiornot").create(deps)
    assert isinstance(built, AiOrNotProvider)
    return built


def request(img: DecodedImage | None = None, seconds: float = 20.0) -> AnalysisRequest:
    return AnalysisRequest(
        image=img or clean_jpeg(), object_id=OBJECT_ID, deadline=Deadline(seconds), bucket="uploads", key=S3_KEY
    )


# ---------------------------------------------------------------------------------------------------
# The happy path: what goes over the wire, what comes back


def test_one_bearer_post_with_an_opaque_image_and_the_default_reports(sandbox, http) -> None:
    image = clean_jpeg()
    output = provider(sandbox, http).analyze(request(image))

    [sent] = sandbox.requests
    assert sandbox.statuses() == [200]
    assert (sent.method, sent.path) == ("POST", "/v2/image/sync")
    assert sent.header("authorization") == f"Bearer {KEY}"
    assert sent.query == {"only": ["ai_generated", "deepfake", "nsfw"], "external_id": [OBJECT_ID]}
    [upload] = sent.files["image"]
    assert upload.filename == f"{OBJECT_ID}.jpg"
    assert upload.content_type == "image/jpeg"
    assert upload.data == image.data  # an accepted format goes as it is: the detector sees the original
    assert set(sent.files) == {"image"} and sent.form == {}
    # Nothing that names the user or the object travels: not the key, not the bucket.
    wire = sent.body + json.dumps(sent.headers).encode() + sent.path.encode() + json.dumps(sent.query).encode()
    assert b"alice" not in wire and b"IMG_0001" not in wire and b"uploads" not in wire and b"holiday" not in wire

    # v2_image_sync_1.json
    assert output.ai_generated is not None
    assert (output.ai_generated.verdict, output.ai_generated.confidence) == ("ai", 0.9521987438201904)
    assert output.ai_generated.generators["midjourney"] == 0.002055001212283969
    assert output.deepfake is not None and (output.deepfake.detected, output.deepfake.confidence) == (False, 0.1)
    assert [(c.name, c.confidence, c.source_label) for c in output.moderation or []] == [("other", 0.0, "nsfw")]
    # The saved answer less the quality report, which the request did not run.
    saved = json.loads((FIXTURES / "v2_image_sync_1.json").read_text())
    del saved["report"]["quality"], saved["report"]["meta"]["processing_status"]["quality"]
    assert output.raw == {"image_sync": saved}
    assert output.quality is None


def test_deepfake_boxes_are_fractions_of_the_uploaded_image(sandbox, http) -> None:
    sandbox.vendor.set_response("image_sync", "v2_image_sync_docs.json")
    output = provider(sandbox, http).analyze(request(clean_jpeg((800, 600))))
    assert output.deepfake is not None and output.deepfake.detected is True
    [region] = output.deepfake.regions
    # bbox x1 120, y1 85, x2 380, y2 295 measured on the 800x600 upload (not the 640x480 in meta)
    assert region.box.x == pytest.approx(120 / 800, abs=1e-6)
    assert region.box.y == pytest.approx(85 / 600, abs=1e-6)
    assert region.box.width == pytest.approx(260 / 800, abs=1e-6)
    assert region.box.height == pytest.approx(210 / 600, abs=1e-6)
    assert output.moderation is not None
    assert [(c.name, c.confidence, c.source_label) for c in output.moderation] == [("other", 1.0, "nsfw")]


def test_excluding_goes_in_the_query_instead_of_only(sandbox, http) -> None:
    sandbox.vendor.set_response("image_sync", "v2_image_sync_3.json")
    output = provider(sandbox, http, AIORNOT_EXCLUDING="deepfake,quality").analyze(request())
    [sent] = sandbox.requests
    assert sent.query == {"excluding": ["deepfake", "quality"], "external_id": [OBJECT_ID]}
    assert output.ai_generated is None  # v2_image_sync_3.json has no ai_generated section
    assert output.moderation is not None


@pytest.mark.parametrize(
    ("fmt", "mime", "suffix"),
    [("HEIF", "image/heic", ".heic"), ("WEBP", "image/webp", ".webp"), ("PNG", "image/png", ".png")],
)
def test_supported_formats_reach_ai_or_not_unconverted(sandbox, http, fmt, mime, suffix) -> None:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    picture = Image.new("RGB", (451, 300))
    picture.paste(Image.open(IMAGES / "skimage-chelsea.png").convert("RGB"))
    image = decode(encoded(picture, fmt), max_pixels=100_000_000)
    provider(sandbox, http).analyze(request(image))
    assert sandbox.statuses() == [200]  # the sandbox refuses formats outside the documented list
    [upload] = sandbox.requests[0].files["image"]
    # What the layer lets through for vendors (it may re-encode a file that carries metadata: pillow-heif
    # writes EXIF into every HEIC) goes as it is, under the opaque name with its own extension.
    expected, expected_mime = image.encoded_for(AiOrNotProvider.accepted_formats, AiOrNotProvider.max_upload_bytes)
    assert expected_mime in (mime, "image/jpeg")
    assert (upload.data, upload.content_type) == (expected, expected_mime)
    assert upload.filename == OBJECT_ID + (suffix if expected_mime == mime else ".jpg")
    if fmt != "HEIF":
        assert upload.data == image.data  # no metadata: the original bytes


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_unsupported_formats_reach_ai_or_not_as_jpeg(sandbox, http, fmt) -> None:
    picture = Image.open(IMAGES / "skimage-chelsea.png").convert("RGB")
    image = decode(encoded(picture, fmt), max_pixels=100_000_000)
    provider(sandbox, http).analyze(request(image))
    assert sandbox.statuses() == [200]
    [upload] = sandbox.requests[0].files["image"]
    assert (upload.content_type, upload.filename) == ("image/jpeg", f"{OBJECT_ID}.jpg")
    assert upload.data.startswith(b"\xff\xd8\xff")
    assert Image.open(io.BytesIO(upload.data)).size == (451, 300)


def test_an_image_over_the_10_mb_field_limit_is_downscaled_and_accepted(sandbox, http) -> None:
    import random

    rng = random.Random(7)
    noise = Image.frombytes("RGB", (2100, 1700), rng.randbytes(2100 * 1700 * 3))  # noise barely compresses
    image = decode(encoded(noise, "PNG"), max_pixels=100_000_000)
    assert image.size_bytes > 10_000_000
    output = provider(sandbox, http).analyze(request(image))
    assert sandbox.statuses() == [200]  # the sandbox refuses anything over "Max file size: 10MB"
    [upload] = sandbox.requests[0].files["image"]
    assert len(upload.data) <= 10_000_000
    width, height = Image.open(io.BytesIO(upload.data)).size
    assert width < 2100 and abs(width / height - 2100 / 1700) < 0.01  # smaller, same shape
    assert output.ai_generated is not None


def test_an_animated_gif_goes_as_its_first_frame(sandbox, http) -> None:
    frames = [Image.new("RGB", (60, 40), color) for color in ((255, 0, 0), (0, 0, 255))]
    image = decode(encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), max_pixels=10**8)
    provider(sandbox, http, AIORNOT_ONLY="ai_generated").analyze(request(image))
    [upload] = sandbox.requests[0].files["image"]
    first = Image.open(io.BytesIO(upload.data)).convert("RGB")
    assert first.size == (60, 40)
    red, _, blue = first.getpixel((30, 20))
    assert red > 200 and blue < 60


# ---------------------------------------------------------------------------------------------------
# Failures


def test_wrong_key_is_an_auth_error(sandbox, http) -> None:
    with pytest.raises(AuthError) as caught:
        provider(sandbox, http, AIORNOT_API_KEY="wrong-key-123").analyze(request())
    assert sandbox.statuses() == [401]  # not retried
    message = caught.value.message
    assert message.startswith("aiornot: authentication failed (HTTP 401): check the api_key")
    assert "Invalid authentication credentials" in message
    assert "wrong-key-123" not in message and KEY not in message
    assert caught.value.retryable is False


def test_402_is_quota_exhausted(sandbox, http) -> None:
    sandbox.faults.enqueue(Fault("error", status=402))
    with pytest.raises(QuotaExhaustedError) as caught:
        provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [402]
    assert "no credits left" in caught.value.message and "AIORNOT_ONLY" in caught.value.message


def test_503_then_success_is_retried(sandbox, http) -> None:
    sandbox.faults.enqueue("unavailable", "ok")
    output = provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [503, 200]
    assert output.ai_generated is not None and output.ai_generated.verdict == "ai"
    first, second = sandbox.requests
    assert first.files["image"][0].data == second.files["image"][0].data  # the same upload both times


def test_persistent_500_gives_up_after_the_configured_attempts(sandbox, http) -> None:
    sandbox.faults.configure(server_error=1.0)
    with pytest.raises(ServerError) as caught:
        provider(sandbox, http).analyze(request())
    assert sandbox.statuses() == [500, 500, 500]
    assert "(HTTP 500; 3 tries)" in caught.value.message


def test_malformed_body_is_retried_then_succeeds(sandbox, http) -> None:
    sandbox.faults.enqueue("malformed")
    output = provider(sandbox, http).analyze(request())
    assert [e.fault for e in sandbox.exchanges] == ["malformed", "ok"]
    assert output.deepfake is not None


def test_missing_key_is_an_auth_error_without_a_request(sandbox, http) -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "AIORNOT_BASE_URL": sandbox.base_url})
    aiornot = AiOrNotProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings), http=http))
    with pytest.raises(AuthError, match="AIORNOT_API_KEY"):
        aiornot.analyze(request())
    assert sandbox.requests == []


def test_a_query_the_api_refuses_is_not_retried(sandbox, http) -> None:
    # A vendor that no longer knows a report answers 422 about the query: our settings, not the image.
    sandbox.vendor.reports = ("ai_generated", "deepfake", "nsfw", "quality")
    with pytest.raises(BadResponseError) as caught:
        provider(sandbox, http, AIORNOT_ONLY="nsfw,reverse_search").analyze(request())
    assert sandbox.statuses() == [422]
    assert caught.value.retryable is False
    assert "check AIORNOT_ONLY" in caught.value.message
    assert "Input should be" in caught.value.message


# ---------------------------------------------------------------------------------------------------
# The sandbox itself: the documented rules


def test_sandbox_rules(sandbox) -> None:
    jpeg = clean_jpeg().data
    bearer = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=sandbox.base_url) as client:
        no_auth = client.post("/v2/image/sync", files={"image": ("a.jpg", jpeg, "image/jpeg")})
        assert (no_auth.status_code, no_auth.json()) == (401, {"detail": "Not authenticated"})
        token_only = client.post("/v2/image/sync", files={"image": ("a.jpg", jpeg)}, headers={"Authorization": KEY})
        assert token_only.status_code == 401
        ok = client.post("/v2/image/sync", files={"image": ("a.jpg", jpeg)}, headers=bearer)
        assert ok.status_code == 200
        assert ok.content == (FIXTURES / "v2_image_sync_1.json").read_bytes()  # served unchanged

        missing = client.post("/v2/image/sync", files={"file": ("a.jpg", jpeg)}, headers=bearer)
        assert missing.status_code == 422
        assert missing.json() == {"detail": [{"loc": ["body", "image"], "msg": "Field required", "type": "missing"}]}
        gif = encoded(Image.new("RGB", (8, 8)), "GIF")
        unsupported = client.post("/v2/image/sync", files={"image": ("a.gif", gif)}, headers=bearer)
        assert unsupported.status_code == 422
        assert "Supported formats: jpg, jpeg, png, webp, heic, heif, tiff" in unsupported.json()["detail"][0]["msg"]
        text = client.post("/v2/image/sync", files={"image": ("a.jpg", b"hello")}, headers=bearer)
        assert text.status_code == 422
        bad_only = client.post(
            "/v2/image/sync", params={"only": ["nsfw", "faces"]}, files={"image": ("a.jpg", jpeg)}, headers=bearer
        )
        assert bad_only.status_code == 422
        assert bad_only.json()["detail"][0]["loc"] == ["query", "only", 1]
        assert client.get("/v2/image/sync", headers=bearer).status_code == 405
        assert client.post("/v1/reports/image", files={"image": ("a.jpg", jpeg)}, headers=bearer).status_code == 404

        assert sandbox.vendor.max_file_bytes == 10_000_000  # the image field's "Max file size: 10MB"
        sandbox.vendor.max_file_bytes = len(jpeg) - 1  # the 10 MB rule, without sending 10 MB
        too_big = client.post("/v2/image/sync", files={"image": ("a.jpg", jpeg)}, headers=bearer)
        assert too_big.status_code == 422
        assert too_big.json()["detail"][0]["msg"].startswith("Max file size: 10MB")


def test_sandbox_fault_uses_the_fastapi_error_shape(sandbox) -> None:
    sandbox.faults.enqueue(Fault("rate_limit", retry_after="3"))
    with httpx.Client(base_url=sandbox.base_url) as client:
        limited = client.post("/v2/image/sync", headers={"Authorization": f"Bearer {KEY}"})
    assert (limited.status_code, limited.json(), limited.headers["Retry-After"]) == (
        429,
        {"detail": "Too Many Requests"},
        "3",
    )
