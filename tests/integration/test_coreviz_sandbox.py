"""CoreVizProvider against the local CoreViz sandbox and moto's S3, both over real sockets.

The sandbox plays CoreViz: it checks the request against the documented rules and fetches the image URL
it is given, here a presigned URL of the local S3 emulator (moto in server mode, reached through
``AWS_ENDPOINT_URL`` like any SDK endpoint). The tests prove what the URL is (SigV4, the configured
lifetime, the analyzed object version or its prepared copy), that the sandbox could fetch it, that a
prepared copy is deleted afterwards, and that the URL reaches no log record, error message or result.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import AuthError, BadImageError, BadResponseError, QuotaExhaustedError
from image_analysis.imaging import decode
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.coreviz import CoreVizProvider
from image_analysis.providers.http import RetryPolicy, new_client
from image_analysis.settings import Settings
from local.emulator import local_aws
from local.sandbox import VendorSandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "coreviz"
KEY = "sandbox-key"
OBJECT_ID = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
# Unique names: moto keeps one in-process state that other tests in this worker share.
UPLOADS, ARTIFACTS = f"uploads-{uuid.uuid4().hex[:8]}", f"artifacts-{uuid.uuid4().hex[:8]}"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, safety_margin=0.2, min_try_seconds=0.05)


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with local_aws(dynamodb="moto"):
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=UPLOADS)
        client.put_bucket_versioning(Bucket=UPLOADS, VersioningConfiguration={"Status": "Enabled"})
        client.create_bucket(Bucket=ARTIFACTS)
        yield client


@pytest.fixture
def sandbox(s3) -> Iterator[VendorSandbox]:
    box = VendorSandbox("coreviz", answers="saved")
    with box:
        yield box


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with new_client(5.0) as client:
        yield client


@pytest.fixture
def logs(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # every logger, every thread: the adapter, botocore, httpx, the sandbox
    return caplog


def provider(sandbox: VendorSandbox, http: httpx.Client, **env: str | None) -> CoreVizProvider:
    values = {
        "RESULTS_TABLE": "results",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:alerts",
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "AWS_REGION": "us-east-1",
        "COREVIZ_BASE_URL": sandbox.base_url,
        "COREVIZ_API_KEY": KEY,
        # These tests exercise handing over the original; the default ("copy") has tests of its own.
        "COREVIZ_URL_SOURCE": "original",
        **env,
    }
    settings = Settings.from_env({k: v for k, v in values.items() if v is not None})
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=http, extra={"retry_policy": FAST})
    built = provider_class("coreviz").create(deps)
    assert isinstance(built, CoreVizProvider)
    return built


def image_bytes(fmt: str, size: tuple[int, int] = (200, 150)) -> bytes:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 160, 90)).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(s3: Any, key: str, data: bytes) -> AnalysisRequest:
    """Put an object into the uploads bucket and make the request the pipeline would for it."""
    version = s3.put_object(Bucket=UPLOADS, Key=key, Body=data)["VersionId"]
    return AnalysisRequest(
        image=decode(data, max_pixels=100_000_000),
        object_id=OBJECT_ID,
        deadline=Deadline(20),
        bucket=UPLOADS,
        key=key,
        version_id=version,
    )


def sent_url(sandbox: VendorSandbox) -> str:
    [sent] = sandbox.requests
    return json.loads(sent.body)["image"]


def assert_nowhere(url: str, logs: pytest.LogCaptureFixture, *texts: str) -> None:
    """Neither the URL nor its signature is in any log record or in any of ``texts``."""
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    assert len(signature) == 64
    for record in logs.records:
        message = record.getMessage()
        assert url not in message and signature not in message, (record.name, message)
    for text in texts:
        assert url not in text and signature not in text


def prepared_keys(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS, Prefix="prepared/").get("Contents", [])]


# ---------------------------------------------------------------------------------------------------
# The URL handed over


def test_a_jpeg_goes_as_a_sigv4_url_of_the_analyzed_object_version(s3, sandbox, http, logs) -> None:
    original = image_bytes("JPEG")
    key = "users/alice@example.com/holiday/IMG 0001.jpg"
    req = upload(s3, key, original)
    s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("PNG"))  # a newer version must not be fetched

    output = provider(sandbox, http, COREVIZ_URL_TTL_SECONDS="120").analyze(req)

    [sent] = sandbox.requests
    assert (sent.method, sent.path) == ("POST", "/api/ai/tag")
    assert sent.header("x-api-key") == KEY
    assert sent.header("content-type") == "application/json"
    url = sent_url(sandbox)
    assert json.loads(sent.body) == {"image": url}
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["120"]
    assert query["X-Amz-SignedHeaders"] == ["host"]
    assert query["X-Amz-Credential"][0].endswith("/us-east-1/s3/aws4_request")
    assert query["versionId"] == [req.version_id]
    # The emulator is an IP endpoint, so botocore addresses the bucket in the path.
    assert parts.path == f"/{UPLOADS}/{quote(key)}"
    assert sandbox.statuses() == [200]
    [fetched] = sandbox.vendor.fetches
    assert fetched.status == 200 and fetched.format == "jpeg"
    assert fetched.sha256 == hashlib.sha256(original).hexdigest()  # this version, not the newer PNG
    assert prepared_keys(s3) == []

    assert [(lbl.name, lbl.confidence) for lbl in output.labels] == [
        ("person", 0.95),
        ("outdoor", 0.87),
        ("nature", 0.82),
    ]
    assert output.raw == {"tags": json.loads((FIXTURES / "tags_docs.json").read_text())}
    assert_nowhere(url, logs, output.model_dump_json())


@pytest.mark.parametrize("fmt", ["HEIF", "TIFF"])
def test_heic_and_tiff_go_as_a_prepared_copy_that_is_deleted_afterwards(s3, sandbox, http, logs, fmt: str) -> None:
    req = upload(s3, f"users/bob/scan.{fmt.lower()}", image_bytes(fmt))

    output = provider(sandbox, http).analyze(req)

    url = sent_url(sandbox)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    # A name of this call's own: copies of one event (or frames of one file) never delete each other's.
    assert re.fullmatch(rf"/{ARTIFACTS}/prepared/{OBJECT_ID}-[0-9a-f]{{12}}\.jpg", parts.path)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]  # the default lifetime
    assert "versionId" not in query
    assert "bob" not in url and "scan" not in url and UPLOADS not in url
    [fetched] = sandbox.vendor.fetches
    assert (fetched.status, fetched.format, fetched.content_type) == (200, "jpeg", "image/jpeg")
    with Image.open(io.BytesIO(s3.get_object(Bucket=UPLOADS, Key=req.key)["Body"].read())) as kept:
        assert kept.size == (200, 150)  # the upload itself is untouched
    assert prepared_keys(s3) == []  # the copy is gone
    with pytest.raises(ClientError):
        s3.head_object(Bucket=ARTIFACTS, Key=parts.path.split(f"/{ARTIFACTS}/", 1)[1])
    assert len(output.labels) == 3
    assert_nowhere(url, logs, output.model_dump_json())


def test_url_source_copy_hands_over_neither_bucket_nor_key(s3, sandbox, http, logs) -> None:
    original = image_bytes("PNG")
    req = upload(s3, "users/carol@example.com/private.png", original)
    provider(sandbox, http, COREVIZ_URL_SOURCE="copy").analyze(req)
    url = sent_url(sandbox)
    assert re.fullmatch(rf"/{ARTIFACTS}/prepared/{OBJECT_ID}-[0-9a-f]{{12}}\.png", urlsplit(url).path)
    assert sandbox.vendor.fetches[0].sha256 == hashlib.sha256(original).hexdigest()  # the same bytes
    assert prepared_keys(s3) == []
    assert_nowhere(url, logs)


def test_classification_end_to_end(s3, sandbox, http) -> None:
    req = upload(s3, "docs/scan-1.jpg", image_bytes("JPEG"))
    output = provider(sandbox, http, COREVIZ_CHOICES="receipt,invoice,contract,other").analyze(req)
    body = json.loads(sandbox.requests[0].body)
    # single=false: every choice's score comes back (all_scores), and the best of them is the label.
    assert body["choices"] == ["receipt", "invoice", "contract", "other"] and body["single"] is False
    assert output.classification is not None
    assert (output.classification.label, output.classification.confidence) == ("invoice", 0.92)
    assert [(s.label, s.score) for s in output.classification.scores] == [
        ("invoice", 0.92),
        ("receipt", 0.15),
        ("contract", 0.08),
        ("other", 0.05),
    ]
    assert output.labels == []


# ---------------------------------------------------------------------------------------------------
# When the vendor cannot fetch or process the image


def test_an_object_the_vendor_cannot_fetch_is_a_400_with_a_scrubbed_message(s3, sandbox, http, logs) -> None:
    req = upload(s3, "users/dave/gone.jpg", image_bytes("JPEG"))
    s3.delete_object(Bucket=UPLOADS, Key=req.key, VersionId=req.version_id)  # gone before the vendor fetches

    with pytest.raises(BadResponseError) as caught:
        provider(sandbox, http).analyze(req)

    url = sent_url(sandbox)
    assert sandbox.vendor.fetches[0].status == 404
    assert sandbox.statuses() == [400]  # not retried: the same URL fails again
    assert caught.value.retryable is False
    message = caught.value.message
    assert 'the vendor said: "Bad Request: Invalid image URL or missing required fields"' in message
    assert "s3:GetObject" in message  # what to check
    assert_nowhere(url, logs, message, str(caught.value))


def test_bytes_the_vendor_cannot_process_are_a_422_bad_image(s3, sandbox, http, logs) -> None:
    req = upload(s3, "users/erin/odd.jpg", image_bytes("JPEG"))
    # The object version the vendor fetches holds something else than the image that was decoded.
    s3.put_object(Bucket=UPLOADS, Key="users/erin/odd.jpg", Body=b"%PDF-1.7 not an image")
    bogus = s3.list_object_versions(Bucket=UPLOADS, Prefix="users/erin/odd.jpg")["Versions"]
    newest = next(v["VersionId"] for v in bogus if v["IsLatest"])
    req = AnalysisRequest(**{**req.__dict__, "version_id": newest})

    with pytest.raises(BadImageError) as caught:
        provider(sandbox, http).analyze(req)

    assert sandbox.statuses() == [422]
    assert sandbox.vendor.fetches[0].format is None
    assert 'the vendor said: "Unprocessable Entity: Unable to process the provided image"' in caught.value.message
    assert_nowhere(sent_url(sandbox), logs, caught.value.message)


def test_wrong_key_and_no_credits(s3, http) -> None:
    req = upload(s3, "users/frank/a.jpg", image_bytes("JPEG"))
    box = VendorSandbox("coreviz", credits=0)
    with box:
        with pytest.raises(AuthError) as auth:
            provider(box, http, COREVIZ_API_KEY="wrong-key-123").analyze(req)
        assert 'the vendor said: "Unauthorized: Invalid or missing API key"' in auth.value.message
        assert "wrong-key-123" not in auth.value.message
        with pytest.raises(QuotaExhaustedError) as quota:
            provider(box, http).analyze(req)
        assert 'the vendor said: "Insufficient credits"' in quota.value.message
    assert box.statuses() == [401, 402]
    assert box.vendor.fetches == []  # refused before fetching


def test_no_artifacts_bucket_and_a_heic_is_refused_before_any_call(s3, sandbox, http) -> None:
    req = upload(s3, "users/gina/photo.heic", image_bytes("HEIF"))
    with pytest.raises(BadImageError, match="set ARTIFACTS_BUCKET"):
        provider(sandbox, http, ARTIFACTS_BUCKET=None).analyze(req)
    assert sandbox.requests == []


# ---------------------------------------------------------------------------------------------------
# The sandbox itself: the documented rules


def test_sandbox_rules(s3, sandbox) -> None:
    s3.put_object(Bucket=UPLOADS, Key="rules/ok.png", Body=image_bytes("PNG"))
    good = s3.generate_presigned_url("get_object", Params={"Bucket": UPLOADS, "Key": "rules/ok.png"}, ExpiresIn=60)
    headers = {"x-api-key": KEY}
    with httpx.Client(base_url=sandbox.base_url) as client:
        assert client.post("/api/ai/tag", json={"image": good}).json() == {
            "error": "Unauthorized",
            "message": "Invalid or missing API key",
        }
        for bad in (
            {},
            {"image": 7},
            {"image": "not a url"},
            {"image": "ftp://example.test/a.jpg"},
            {"image": good, "choices": "invoice"},
            {"image": good, "choices": []},
            {"image": good, "single": "yes"},
            {"image": good, "prompt": ["x"]},
        ):
            refused = client.post("/api/ai/tag", json=bad, headers=headers)
            assert refused.status_code == 400, bad
            assert refused.json()["message"] == "Invalid image URL or missing required fields"
        form = client.post("/api/ai/tag", data={"image": good}, headers=headers)  # not JSON
        assert form.status_code == 400
        assert client.get("/api/ai/tag", headers=headers).status_code == 405
        tagged = client.post("/api/ai/tag", json={"image": good}, headers=headers)
        assert tagged.content == (FIXTURES / "tags_docs.json").read_bytes()  # served unchanged
        # The docs' example answer holds every field; "single" picks its half ("Response Fields").
        saved = json.loads((FIXTURES / "classification_docs.json").read_bytes())
        classified = client.post("/api/ai/tag", json={"image": good, "choices": ["a", "b"]}, headers=headers)
        assert classified.json() == {"all_scores": saved["all_scores"]}  # single: false, the default
        single = client.post("/api/ai/tag", json={"image": good, "choices": ["a"], "single": True}, headers=headers)
        assert single.json() == {"classification": "invoice", "confidence": 0.92}
        unreachable = client.post("/api/ai/tag", json={"image": "http://127.0.0.1:9/x.jpg"}, headers=headers)
        assert unreachable.status_code == 400
    assert [f.status for f in sandbox.vendor.fetches] == [200, 200, 200, None]
    assert sandbox.vendor.fetches[-1].error is not None
