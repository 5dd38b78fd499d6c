"""Amazon Rekognition: golden normalization, the exact requests (Stubber), the error table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import AuthError, BadImageError, BadResponseError, RateLimitedError, ServerError
from image_analysis.imaging import decode
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.rekognition import RekognitionProvider, moderation_category, normalize
from image_analysis.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rekognition"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def test_labels_become_lowercase_labels_and_boxes():
    output = normalize("labels", load("detect_labels.json"))
    assert [(lab.name, round(lab.confidence, 4)) for lab in output.labels] == [
        ("car", 0.9915),
        ("vehicle", 0.9915),
        ("city", 0.956),
    ]
    (car,) = output.objects
    assert (car.name, car.box.x, car.box.y, car.box.width, car.box.height) == ("car", 0.5, 0.65, 0.1, 0.05)


def test_moderation_maps_through_the_table_and_parents_and_keeps_unknown_labels():
    output = normalize("moderation", load("detect_moderation_labels.json"))
    mapped = [(c.name, c.source_label, round(c.confidence, 3)) for c in output.moderation]
    assert mapped == [
        ("explicit", "Explicit", 0.935),
        ("explicit", "Explicit/Explicit Nudity", 0.935),
        ("suggestive", "Swimwear or Underwear", 0.71),
        ("suggestive", "Swimwear or Underwear/Female Swimwear or Underwear", 0.642),
        ("other", "Rude Gestures/Middle Finger", 0.58),
        ("other", "Something New", 0.56),
    ]
    assert moderation_category("Graphic Violence", "Violence") == "violence"
    assert moderation_category("Hate Symbols", None) == "hate"


def test_text_keeps_lines_not_words():
    (line,) = normalize("text", load("detect_text.json")).text
    assert (line.text, round(line.confidence, 3), line.box.x) == ("IT'S MONDAY", 0.993, 0.28)


def test_a_changed_payload_is_a_bad_response():
    with pytest.raises(BadResponseError, match="labels"):
        normalize("labels", {"Labels": [{"Confidence": 12}]})


def image_request(size=(400, 300), fmt="PNG", bucket="uploads", key="a/b.png"):
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, format=fmt)
    return AnalysisRequest(
        image=decode(out.getvalue(), 10**9), object_id="id", deadline=Deadline(60), bucket=bucket, key=key
    )


def provider(client, **env):
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), extra={"rekognition_client": client})
    return RekognitionProvider.create(deps)


@pytest.fixture
def client():
    return boto3.client("rekognition", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_requests_carry_the_bytes_and_the_configured_thresholds(client):
    request = image_request()
    stubber = Stubber(client)
    stubber.add_response(
        "detect_labels",
        load("detect_labels.json"),
        {"Image": {"Bytes": request.image.data}, "MaxLabels": 10, "MinConfidence": 70},
    )
    stubber.add_response(
        "detect_moderation_labels",
        load("detect_moderation_labels.json"),
        {"Image": {"Bytes": request.image.data}, "MinConfidence": 70},
    )
    with stubber:
        output = provider(client, REKOGNITION_MAX_LABELS="10", REKOGNITION_MIN_CONFIDENCE="70").analyze(request)
    stubber.assert_no_pending_responses()
    assert output.labels and output.moderation and set(output.raw) == {"labels", "moderation"}


def test_a_large_original_is_read_by_rekognition_from_s3(client):
    import random

    rng = random.Random(3)
    noise = Image.frombytes("RGB", (2000, 1500), bytes(rng.randrange(256) for _ in range(2000 * 1500 * 3)))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert 5 * 1024 * 1024 < len(out.getvalue()) <= 15 * 1024 * 1024
    request = AnalysisRequest(
        image=decode(out.getvalue(), 10**9), object_id="id", deadline=Deadline(60), bucket="uploads", key="big.png"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "detect_labels",
        load("detect_labels.json"),
        {"Image": {"S3Object": {"Bucket": "uploads", "Name": "big.png"}}, "MaxLabels": ANY, "MinConfidence": ANY},
    )
    with stubber:
        provider(client, REKOGNITION_FEATURES="labels").analyze(request)
    stubber.assert_no_pending_responses()


def test_routing_asks_only_for_what_is_needed(client):
    request = image_request()
    request = AnalysisRequest(**{**request.__dict__, "capabilities": frozenset({"moderation"})})
    stubber = Stubber(client)
    stubber.add_response("detect_moderation_labels", load("detect_moderation_labels.json"), None)
    with stubber:
        output = provider(client).analyze(request)
    stubber.assert_no_pending_responses()
    assert output.labels == [] and output.moderation


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("AccessDeniedException", 400, AuthError),
        ("ThrottlingException", 400, RateLimitedError),
        ("ProvisionedThroughputExceededException", 400, RateLimitedError),
        ("InvalidImageFormatException", 400, BadImageError),
        ("ImageTooLargeException", 400, BadImageError),
        ("InternalServerError", 500, ServerError),
    ],
)
def test_every_mapped_error_code_becomes_its_typed_error(client, code, status, error):
    stubber = Stubber(client)
    stubber.add_client_error("detect_labels", service_error_code=code, http_status_code=status)
    with stubber, pytest.raises(error) as caught:
        provider(client, REKOGNITION_FEATURES="labels").analyze(image_request())
    assert "rekognition" in str(caught.value)
    if error is AuthError:
        assert "rekognition:Detect" in str(caught.value)


def test_other_formats_are_converted_before_sending(client):
    request = image_request(fmt="WEBP")
    converted, mime = request.image.encoded_for(frozenset({"jpeg", "png"}), 5 * 1024 * 1024)
    assert mime == "image/jpeg" and converted[:3] == b"\xff\xd8\xff"
    stubber = Stubber(client)
    stubber.add_response(
        "detect_labels",
        load("detect_labels.json"),
        {"Image": {"Bytes": converted}, "MaxLabels": ANY, "MinConfidence": ANY},
    )
    with stubber:
        provider(client, REKOGNITION_FEATURES="labels").analyze(request)
    stubber.assert_no_pending_responses()
