"""ImaggaProvider against the local Imagga sandbox over a real socket.

The sandbox checks each request against the rules quoted from the Imagga v2 docs and answers with the
saved real responses in tests/fixtures/imagga/ (``answers="saved"``); faults are scripted per test. The
image-driven answers and the options are tested in test_sandbox_answers.py.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import AuthError, BadResponseError, ProviderTimeoutError, QuotaExhaustedError, ServerError
from image_analysis.imaging import DecodedImage, decode
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.providers.imagga import ImaggaProvider
from image_analysis.settings import Settings
from local.sandbox import Fault, FaultPlan, VendorSandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "fixtures" / "images"
FIXTURES = ROOT / "tests" / "fixtures" / "imagga"
KEY, SECRET = "sandbox-key", "sandbox-secret"
OBJECT_ID = "5f2b9c0d41e8a7b3c6d9e0f1a2b3c4d5"
S3_KEY = "users/alice@example.com/holiday/IMG_0001.jpg"
# Small waits so that retries take milliseconds; the margin keeps tests honest about the deadline.
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, safety_margin=0.2, min_try_seconds=0.05)


@pytest.fixture
def sandbox() -> Iterator[VendorSandbox]:
    box = VendorSandbox("imagga", answers="saved")
    with box:
        yield box


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with new_client(5.0) as client:
        yield client


def image(name: str = "skimage-rocket.jpg") -> DecodedImage:
    return decode((IMAGES / name).read_bytes(), max_pixels=100_000_000)


def provider(sandbox: VendorSandbox, http: httpx.Client, **env: str) -> ImaggaProvider:
    values = {
        "RESULTS_TABLE": "results",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:alerts",
        "IMAGGA_BASE_URL": sandbox.base_url,
        "IMAGGA_API_KEY": KEY,
        "IMAGGA_API_SECRET": SECRET,
        **env,
    }
    settings = Settings.from_env(values)
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=http, extra={"retry_policy": FAST})
    built = provider_class("imagga").create(deps)
    assert isinstance(built, ImaggaProvider)
    return built


def request(img: DecodedImage | None = None, seconds: float = 20.0) -> AnalysisRequest:
    return AnalysisRequest(
        image=img or image(), object_id=OBJECT_ID, deadline=Deadline(seconds), bucket="uploads", key=S3_KEY
    )


# ---------------------------------------------------------------------------------------------------
# The happy path: what goes over the wire, what comes back


def test_default_endpoints_send_basic_auth_and_an_opaque_multipart_image(sandbox, http) -> None:
    output = provider(sandbox, http).analyze(request())

    by_path = {r.path: r for r in sandbox.requests}
    assert set(by_path) == {"/v2/tags", "/v2/categories/nsfw_beta"}
    assert sandbox.statuses() == [200, 200]
    for sent in by_path.values():
        assert sent.method == "POST"
        assert sent.header("authorization") == "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        [upload] = sent.files["image"]
        assert upload.filename == f"{OBJECT_ID}.jpg"
        assert upload.content_type == "image/jpeg"
        # The docs: no more than 300 px on the shortest side is needed. Rocket is 640x427 -> 450x300.
        assert Image.open(io.BytesIO(upload.data)).size == (450, 300)
        # Nothing that names the user or the object travels: not the key, not the bucket.
        wire = sent.body + json.dumps(sent.headers).encode() + sent.path.encode()
        assert b"alice" not in wire and b"IMG_0001" not in wire and b"uploads" not in wire
    # The options are query parameters, as the docs list them; nsfw_beta is asked in English.
    assert (by_path["/v2/tags"].query, by_path["/v2/tags"].form) == ({"language": ["en"]}, {})
    assert (by_path["/v2/categories/nsfw_beta"].query, by_path["/v2/categories/nsfw_beta"].form) == ({}, {})

    assert [lbl.name for lbl in output.labels[:3]] == ["window", "design", "business"]  # tags_2.json
    assert output.labels[0].confidence == 0.815486
    assert output.moderation is not None
    assert [(c.name, c.source_label) for c in output.moderation] == [
        ("suggestive", "underwear"),
        ("explicit", "nsfw"),
        ("safe", "safe"),
    ]
    assert output.raw == {
        "tags": json.loads((FIXTURES / "tags_2.json").read_text()),
        "nsfw": json.loads((FIXTURES / "nsfw_beta_docs.json").read_text()),
    }


def test_options_go_as_query_parameters_and_boxes_use_the_sent_size(sandbox, http) -> None:
    sandbox.vendor.set_response("tags", "tags_1.json")
    imagga = provider(
        sandbox,
        http,
        IMAGGA_ENDPOINTS="tags,colors,faces",
        IMAGGA_LANGUAGE="de",
        IMAGGA_TAGS_LIMIT="10",
        IMAGGA_TAGS_THRESHOLD="15.5",
    )
    output = imagga.analyze(request())
    tags = next(r for r in sandbox.requests if r.path == "/v2/tags")
    assert tags.query == {"language": ["de"], "limit": ["10"], "threshold": ["15.5"]}
    colors = next(r for r in sandbox.requests if r.path == "/v2/colors")
    assert colors.query == {"extract_object_colors": ["0"]}  # only the overall colours are read
    # tags_1.json has English names only: the German request falls back to them.
    assert [lbl.name for lbl in output.labels] == ["mountain", "landscape"]
    assert output.colors[0].hex == "#547992"
    # faces_detections_docs.json: xmin 265, ymin 34, xmax 387, ymax 156 on the 450x300 upload
    [face] = output.faces
    assert face.box.x == pytest.approx(265 / 450, abs=1e-6)
    assert face.box.y == pytest.approx(34 / 300, abs=1e-6)
    assert face.box.width == pytest.approx(122 / 450, abs=1e-6)
    assert set(output.raw) == {"tags", "colors", "faces"}
    assert output.moderation is None


def test_a_png_that_is_small_enough_and_carries_no_metadata_goes_as_it_is(sandbox, http) -> None:
    buffer = io.BytesIO()
    Image.open(IMAGES / "skimage-chelsea.png").convert("RGB").save(buffer, format="PNG")  # 451x300, no XMP
    cat = decode(buffer.getvalue(), max_pixels=100_000_000)
    provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request(cat))
    [upload] = sandbox.requests[0].files["image"]
    assert upload.filename == f"{OBJECT_ID}.png"
    assert upload.data == cat.data


def test_personal_metadata_never_leaves_the_account(sandbox, http) -> None:
    cat = image("skimage-chelsea.png")  # its XMP names the camera model and the capture date
    assert b"PENTAX" in cat.data
    provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request(cat))
    [upload] = sandbox.requests[0].files["image"]
    assert upload.filename == f"{OBJECT_ID}.png"  # still a lossless PNG
    assert b"PENTAX" not in upload.data and b"xmpmeta" not in upload.data
    assert Image.open(io.BytesIO(upload.data)).size == (451, 300)


def test_exif_rotated_image_is_sent_upright(sandbox, http) -> None:
    source = Image.open(IMAGES / "skimage-rocket.jpg")
    exif = source.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    source.resize((400, 267)).save(buffer, format="JPEG", exif=exif)
    rotated = decode(buffer.getvalue(), max_pixels=100_000_000)
    assert (rotated.width, rotated.height, rotated.orientation) == (267, 400, 6)  # as displayed

    provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request(rotated))
    [upload] = sandbox.requests[0].files["image"]
    sent = Image.open(io.BytesIO(upload.data))
    assert sent.size[0] < sent.size[1]  # portrait, as displayed
    assert sent.getexif().get(0x0112) in (None, 1)


# ---------------------------------------------------------------------------------------------------
# Failures


def test_wrong_key_is_an_auth_error_with_the_documented_body(sandbox, http) -> None:
    imagga = provider(sandbox, http, IMAGGA_API_KEY="wrong-key-123", IMAGGA_ENDPOINTS="tags")
    with pytest.raises(AuthError) as caught:
        imagga.analyze(request())
    assert sandbox.statuses() == [401]  # not retried
    message = caught.value.message
    assert message.startswith("imagga: authentication failed (HTTP 401): check api_key/api_secret")
    assert "There is a problem with the request authorization" in message  # the docs' wording
    assert "wrong-key-123" not in message and SECRET not in message
    assert caught.value.retryable is False


def test_both_endpoints_refused_report_one_auth_error(sandbox, http) -> None:
    imagga = provider(sandbox, http, IMAGGA_API_SECRET="not-the-secret")
    with pytest.raises(AuthError):
        imagga.analyze(request())
    assert sorted(r.path for r in sandbox.requests) == ["/v2/categories/nsfw_beta", "/v2/tags"]


def test_503_then_success_is_retried_and_succeeds(sandbox, http) -> None:
    sandbox.faults.enqueue("unavailable", path="/v2/tags")
    output = provider(sandbox, http).analyze(request())
    assert sandbox.statuses("/v2/tags") == [503, 200]
    assert sandbox.statuses("/v2/categories/nsfw_beta") == [200]
    assert output.labels[0].name == "window"


@pytest.mark.parametrize(
    "fault",
    [
        Fault("rate_limit"),
        Fault("rate_limit", retry_after="0"),
        Fault("server_error"),
        Fault("drop"),
        Fault("malformed"),
    ],
    ids=["429", "429-retry-after", "500", "drop", "malformed"],
)
def test_passing_faults_are_retried(sandbox, http, fault: Fault) -> None:
    sandbox.faults.enqueue(fault)
    output = provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request())
    assert [e.fault for e in sandbox.exchanges] == [fault.kind, "ok"]
    assert sandbox.statuses()[-1] == 200
    assert len(output.labels) == 115


def test_persistent_503_gives_up_after_the_configured_attempts(sandbox, http) -> None:
    sandbox.faults.configure(unavailable=1.0)
    with pytest.raises(ServerError) as caught:
        provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request())
    assert sandbox.statuses() == [503, 503, 503]
    assert "(HTTP 503; 3 tries)" in caught.value.message
    assert "temporarily offline for maintenance" in caught.value.message


def test_deadline_exhaustion_is_a_timeout(sandbox, http) -> None:
    sandbox.faults.configure(slow=1.0, slow_seconds=5.0)
    imagga = provider(sandbox, http, IMAGGA_ENDPOINTS="tags")
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        imagga.analyze(request(seconds=1.0))
    elapsed = time.monotonic() - started
    # One try with the whole budget (1.0 s - 0.2 s margin), no time for another.
    assert elapsed < 1.0
    assert len(sandbox.requests) == 1
    assert caught.value.code == "timeout"


def test_403_is_a_subscription_limit_for_imagga(sandbox, http) -> None:
    sandbox.faults.enqueue(Fault("error", status=403))
    with pytest.raises(QuotaExhaustedError) as caught:
        provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request())
    assert "reached one of your subscription limits" in caught.value.message
    assert sandbox.statuses() == [403]


def test_status_error_with_http_200_is_retried_then_reported(sandbox, http) -> None:
    sandbox.vendor.set_response("tags", "error_docs.json")
    with pytest.raises(BadResponseError) as caught:
        provider(sandbox, http, IMAGGA_ENDPOINTS="tags").analyze(request())
    assert sandbox.statuses() == [200, 200, 200]
    assert "the body reports a failure" in caught.value.message
    assert "human-readable reason" in caught.value.message


# ---------------------------------------------------------------------------------------------------
# The sandbox itself: the documented rules


def test_sandbox_rules(sandbox) -> None:
    url = sandbox.base_url
    image_part = {"image": ("x.jpg", (IMAGES / "skimage-rocket.jpg").read_bytes(), "image/jpeg")}
    auth = (KEY, SECRET)
    with httpx.Client(base_url=url) as client:
        no_auth = client.post("/v2/tags", files=image_part)
        assert no_auth.status_code == 401
        assert no_auth.json()["status"]["type"] == "error"
        assert client.post("/v2/tags", files=image_part, auth=auth).status_code == 200
        assert client.post("/v2/tags", auth=auth).status_code == 400  # no image
        not_image = {"image": ("x.jpg", b"hello", "image/jpeg")}
        assert client.post("/v2/tags", files=not_image, auth=auth).status_code == 400
        assert client.get("/v2/tags", params={"image_url": "https://example.test/a.jpg"}, auth=auth).status_code == 200
        assert client.delete("/v2/tags", auth=auth).status_code == 405
        assert client.post("/v2/nope", files=image_part, auth=auth).status_code == 404
        assert client.post("/v2/categories/unknown", files=image_part, auth=auth).status_code == 404
        assert client.post("/v2/tags", files=image_part, data={"limit": "ten"}, auth=auth).status_code == 400
        assert client.post("/v2/tags", files=image_part, data={"language": "xx"}, auth=auth).status_code == 400
        xml = client.post("/v2/tags", files=image_part, auth=auth, headers={"Accept": "application/xml"})
        assert xml.status_code == 406
        saved = client.post("/v2/categories/nsfw_beta", files=image_part, auth=auth)
        assert saved.content == (FIXTURES / "nsfw_beta_docs.json").read_bytes()  # served unchanged


def test_sandbox_fault_injection_knobs() -> None:
    plan = FaultPlan(rate_limit=1.0, retry_after="7", latency=0.05, seed=1)
    box = VendorSandbox("imagga", faults=plan)
    with box as url, httpx.Client(base_url=url) as client:
        started = time.monotonic()
        limited = client.get("/v2/tags", params={"image_url": "x"}, auth=(KEY, SECRET))
        assert time.monotonic() - started >= 0.05
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "7"
        assert "concurrency limit" in limited.json()["status"]["text"]
        box.faults.reset()
        box.faults.enqueue(Fault("rate_limit", retry_after=""), "server_error", "drop", "malformed")
        assert "Retry-After" not in client.get("/v2/tags", params={"image_url": "x"}, auth=(KEY, SECRET)).headers
        assert client.get("/v2/tags", params={"image_url": "x"}, auth=(KEY, SECRET)).status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/v2/tags", params={"image_url": "x"}, auth=(KEY, SECRET))
        cut = client.get("/v2/tags", params={"image_url": "x"}, auth=(KEY, SECRET))
        assert cut.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            cut.json()
    assert [e.fault for e in box.exchanges] == ["rate_limit", "rate_limit", "server_error", "drop", "malformed"]


# ---------------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"IMAGGA_BASE_URL": "https://api.imagga.com/v2"}, "scheme://host[:port] only"),
        ({"IMAGGA_BASE_URL": "ftp://api.imagga.com"}, "scheme://host[:port] only"),
        ({"IMAGGA_ENDPOINTS": "tags,croppings"}, "unknown croppings"),
        ({"IMAGGA_LANGUAGE": "en,de"}, "one language code"),
        ({"IMAGGA_TAGS_LIMIT": "ten"}, "must be a number"),
        ({"IMAGGA_TAGS_THRESHOLD": "150"}, "between 7 and 100"),
        ({"IMAGGA_TAGS_THRESHOLD": "5"}, "between 7 and 100"),  # "you cannot go lower than that"
    ],
)
def test_bad_configuration_fails_at_create(env: dict[str, str], complaint: str) -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})
    with pytest.raises(ValueError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        ImaggaProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings)))


def test_defaults() -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a"})
    imagga = ImaggaProvider.create(
        ProviderDeps(settings=settings, credentials=Credentials(settings), http=httpx.Client())
    )
    assert imagga.client.base_url == "https://api.imagga.com"
    assert imagga.endpoints == ("tags", "nsfw")
    assert imagga.enabled == {"labels", "moderation"}
    assert imagga.language == "en"
    assert imagga.max_concurrency == 2


def test_missing_key_is_an_auth_error_without_a_request(sandbox, http) -> None:
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "IMAGGA_BASE_URL": sandbox.base_url})
    imagga = ImaggaProvider.create(ProviderDeps(settings=settings, credentials=Credentials(settings), http=http))
    with pytest.raises(AuthError, match="IMAGGA_API_KEY"):
        imagga.analyze(request())
    assert sandbox.requests == []
