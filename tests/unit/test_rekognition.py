"""Amazon Rekognition: golden normalization, the exact requests (Stubber), the error table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import ANY, Stubber
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    ProviderTimeoutError,
    RateLimitedError,
    ServerError,
)
from image_analysis.imaging import decode
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps
from image_analysis.providers.rekognition import (
    MODERATION,
    PARENTS,
    SAFETY_MARGIN,
    RekognitionProvider,
    boto3_client_factory,
    moderation_category,
    normalize,
    try_timeouts,
)
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


def test_third_level_labels_map_through_the_whole_taxonomy_even_without_their_parents_in_the_answer():
    output = normalize("moderation", load("detect_moderation_labels_level3.json"))
    mapped = [(c.name, c.source_label, round(c.confidence, 3)) for c in output.moderation]
    assert mapped == [
        ("suggestive", "Non-Explicit Nudity of Intimate parts and Kissing", 0.971),
        ("suggestive", "Non-Explicit Nudity of Intimate parts and Kissing/Non-Explicit Nudity", 0.971),
        ("suggestive", "Non-Explicit Nudity/Bare Back", 0.964),
        ("suggestive", "Non-Explicit Nudity/Implied Nudity", 0.88),
        ("violence", "Death and Emaciation/Corpses", 0.813),
        ("violence", "Crashes/Air Crash", 0.777),
        ("drugs", "Products/Pills", 0.666),
        ("drugs", "Alcohol Use/Drinking", 0.61),
    ]


@pytest.mark.parametrize(
    ("name", "parent", "house"),
    [
        ("Implied Nudity", "Non-Explicit Nudity", "suggestive"),
        ("Bare Back", "Non-Explicit Nudity", "suggestive"),
        ("Obstructed Male Genitalia", "Obstructed Intimate Parts", "suggestive"),
        ("Exposed Female Nipple", "Explicit Nudity", "explicit"),
        ("Corpses", "Death and Emaciation", "violence"),
        ("Air Crash", "Crashes", "violence"),
        ("Blood & Gore", "Graphic Violence", "violence"),
        ("Pills", "Products", "drugs"),
        ("Smoking", "Drugs & Tobacco Paraphernalia & Use", "drugs"),
        ("Drinking", "Alcohol Use", "drugs"),
        ("Nazi Party", "Hate Symbols", "hate"),
        ("Hanging", "Visually Disturbing", "violence"),  # v6
        ("Pills", None, "drugs"),  # no parent given: the taxonomy's
        ("A Label Added Later", "Graphic Violence", "violence"),  # unknown, under a known parent
        ("A Label Added Later", None, "other"),
    ],
)
def test_labels_map_by_their_parent_chain(name, parent, house):
    assert moderation_category(name, parent) == house


def test_every_taxonomy_chain_ends_at_a_top_level_category():
    for label in PARENTS:
        seen, current = set(), label
        while current not in MODERATION:
            assert current not in seen, f"loop at {current}"
            seen.add(current)
            assert current in PARENTS, f"{label!r} climbs to {current!r}, which has no parent"
            current = PARENTS[current]
    assert all(key == key.lower() for key in (*MODERATION, *PARENTS, *PARENTS.values()))


def test_text_keeps_lines_not_words():
    (line,) = normalize("text", load("detect_text.json")).text
    assert (line.text, round(line.confidence, 3), line.box.x) == ("IT'S MONDAY", 0.993, 0.28)


def test_a_changed_payload_is_a_bad_response():
    with pytest.raises(BadResponseError, match="labels"):
        normalize("labels", {"Labels": [{"Confidence": 12}]})


@pytest.mark.parametrize(
    ("feature", "payload"),
    [
        ("labels", {"Labels": [{"Name": "Car", "Confidence": 250.0}]}),
        ("moderation", {"ModerationLabels": [{"Name": "Explicit Nudity", "ParentName": "", "Confidence": 180.0}]}),
        ("text", {"TextDetections": [{"DetectedText": "STOP", "Type": "LINE", "Confidence": -4.0}]}),
    ],
)
def test_a_confidence_outside_0_to_100_is_a_bad_response_not_a_score(feature, payload):
    # Building a house model checks nothing: unchecked, 250 would be stored as a confidence of 2.5 and
    # pass every threshold (a moderation verdict no image earned).
    with pytest.raises(BadResponseError) as caught:
        normalize(feature, payload)
    assert "does not fit the result model" in caught.value.message
    assert "confidence" in caught.value.message


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
    image = decode(out.getvalue(), 10**9)
    request = AnalysisRequest(
        image=image, object_id="id", deadline=Deadline(60), bucket="uploads", key="big.png", version_id="v7"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "detect_labels",
        load("detect_labels.json"),
        {
            "Image": {"S3Object": {"Bucket": "uploads", "Name": "big.png", "Version": "v7"}},
            "MaxLabels": ANY,
            "MinConfidence": ANY,
        },
    )
    with stubber:
        provider(client, REKOGNITION_FEATURES="labels").analyze(request)
    stubber.assert_no_pending_responses()


def test_an_unversioned_original_is_sent_as_bytes_never_read_from_a_key_that_may_change(client):
    import random

    rng = random.Random(3)
    noise = Image.frombytes("RGB", (2000, 1500), bytes(rng.randrange(256) for _ in range(2000 * 1500 * 3)))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    request = AnalysisRequest(
        image=decode(out.getvalue(), 10**9), object_id="id", deadline=Deadline(60), bucket="uploads", key="big.png"
    )
    sent = provider(client, REKOGNITION_FEATURES="labels").image_parameter(request)
    assert set(sent) == {"Bytes"} and len(sent["Bytes"]) <= 5 * 1024 * 1024


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
        provider(client, REKOGNITION_FEATURES="labels", HTTP_MAX_ATTEMPTS="1").analyze(image_request())
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


def test_a_large_photo_is_sent_fitted_into_1920_by_1080(client):
    request = image_request(size=(4000, 3000), fmt="JPEG")
    assert request.image.size_bytes < 5 * 1024 * 1024  # small enough to go as it was, before
    fitted, _ = request.image.encoded_for(frozenset({"jpeg", "png"}), 5 * 1024 * 1024, 1440)
    assert Image.open(io.BytesIO(fitted)).size == (1440, 1080)  # 4000x3000 scaled by 1080 / 3000
    stubber = Stubber(client)
    stubber.add_response(
        "detect_labels",
        load("detect_labels.json"),
        {"Image": {"Bytes": fitted}, "MaxLabels": ANY, "MinConfidence": ANY},
    )
    with stubber:
        provider(client, REKOGNITION_FEATURES="labels").analyze(request)
    stubber.assert_no_pending_responses()


# ---------------------------------------------------------------------------------------------------
# The invocation deadline bounds every try


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class TimingOutClient:
    """Every call takes its whole connect + read budget and then times out (or is throttled)."""

    def __init__(self, clock, connect, read, throttle=False):
        self.clock, self.connect, self.read, self.throttle = clock, connect, read, throttle
        self.ended_at = []

    def detect_labels(self, **_):
        self.clock.now += self.connect + self.read
        self.ended_at.append(self.clock.now)
        if self.throttle:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DetectLabels")
        raise ReadTimeoutError(endpoint_url="https://rekognition.us-east-1.amazonaws.com")


def bounded_provider(clock, throttle=False, **env):
    made = []

    def factory(connect, read):
        made.append((connect, read))
        client = TimingOutClient(clock, connect, read, throttle)
        made.append(client)
        return client

    settings = Settings.from_env(
        {"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "REKOGNITION_FEATURES": "labels", **env}
    )
    extra = {"rekognition_client_factory": factory, "sleep": clock.sleep, "random": lambda: 1.0}
    return RekognitionProvider.create(
        ProviderDeps(settings=settings, credentials=Credentials(settings), extra=extra)
    ), made


@pytest.mark.parametrize("throttle", [False, True], ids=["timeouts", "throttling"])
def test_tries_and_waits_never_run_past_the_deadline(throttle):
    clock = FakeClock()
    rekognition, made = bounded_provider(clock, throttle, HTTP_MAX_ATTEMPTS="10", RETRY_BASE_DELAY_SECONDS="0.5")
    request = image_request()
    request = AnalysisRequest(**{**request.__dict__, "deadline": Deadline(30.0, clock=clock)})
    with pytest.raises(RateLimitedError if throttle else ProviderTimeoutError):
        rekognition.analyze(request)
    clients = [m for m in made if not isinstance(m, tuple)]
    ends = [t for c in clients for t in c.ended_at]
    assert len(ends) >= 2  # it did retry while a try still fitted
    assert max(ends) <= 30.0 - SAFETY_MARGIN  # and every try ended inside the invocation, margin kept
    assert clock.now <= 30.0 - SAFETY_MARGIN


def test_the_first_try_gets_the_full_timeouts_and_a_late_one_what_is_left():
    assert try_timeouts(600.0) == (5.0, 15.0)
    assert try_timeouts(4.0) == (1.0, 3.0)
    assert try_timeouts(0.6) == (0.25, 0.25)
    for budget in (0.5, 0.9, 1.3, 7.77, 19.99, 25.0):
        connect, read = try_timeouts(budget)
        assert connect + read <= budget and connect > 0 and read > 0


def test_no_time_left_is_a_timeout_without_a_call():
    clock = FakeClock()
    rekognition, made = bounded_provider(clock)
    request = image_request()
    request = AnalysisRequest(**{**request.__dict__, "deadline": Deadline(SAFETY_MARGIN + 0.2, clock=clock)})
    with pytest.raises(ProviderTimeoutError, match="no time left"):
        rekognition.analyze(request)
    assert made == []


def test_production_clients_carry_the_try_timeouts_and_no_botocore_retries(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = boto3_client_factory()(1.25, 3.5)
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.25, 3.5)
    assert config.retries["total_max_attempts"] == 1


def test_throttling_then_an_answer_is_retried_within_the_call(client):
    stubber = Stubber(client)
    stubber.add_client_error("detect_labels", service_error_code="ThrottlingException", http_status_code=400)
    stubber.add_response("detect_labels", load("detect_labels.json"), None)
    with stubber:
        output = provider(client, REKOGNITION_FEATURES="labels", RETRY_BASE_DELAY_SECONDS="0.01").analyze(
            image_request()
        )
    stubber.assert_no_pending_responses()
    assert [lab.name for lab in output.labels] == ["car", "vehicle", "city"]
