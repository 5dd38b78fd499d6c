"""The console's pure parts: who a token says the caller is, the thumbnails (from decoded copies alone),
the local adapter's routing, and EMF lines as CloudWatch reads them."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from PIL import Image

from image_analysis.review.console import (
    ConsoleConfig,
    console_identity,
    content_security_policy,
    day_range,
    groups_of,
    image_origins,
    refusal,
)
from image_analysis.review.thumbnails import Thumbnails, frame_strip_webp, thumbnail_webp
from local.console import metric_data
from local.console_adapter import LOCAL_CLAIMS, LOCAL_USER, http_api_event, route_of


def event(path: str, claims: dict | None) -> dict:
    context: dict = {"http": {"method": "GET", "path": path}}
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims}}
    return {"rawPath": path, "requestContext": context}


@pytest.mark.parametrize(
    ("raw", "groups"),
    [
        ("[moderators]", {"moderators"}),
        ("[admins moderators]", {"admins", "moderators"}),
        ("admins,moderators", {"admins", "moderators"}),
        (["moderators"], {"moderators"}),
        ("[]", set()),
        (None, set()),
    ],
)
def test_groups_are_read_as_an_http_api_hands_an_array_claim_on(raw, groups):
    assert groups_of({"cognito:groups": raw} if raw is not None else {}) == groups


def test_the_decider_is_the_tokens_user_on_console_routes_only():
    cognito = {"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X", "cognito:username": "alice"}
    assert console_identity(event("/console/api/reviews/x/decision", cognito)) == "cognito:alice"
    assert console_identity(event("/console/api/me", LOCAL_CLAIMS)) == LOCAL_USER  # not passed off as Cognito
    assert console_identity(event("/reviews/x/decision", cognito)) is None  # an IAM route: its ARN decides
    assert console_identity(event("/console/api/me", {"iss": "x"})) is None


def test_console_api_requests_without_a_moderator_are_refused_and_the_page_is_not():
    assert refusal(event("/console/api/reviews", None)).status_code == 401
    assert refusal(event("/console/api/reviews", {"cognito:groups": "[viewers]"})).status_code == 403
    assert refusal(event("/console/api/reviews", {"cognito:groups": "[moderators]"})) is None
    assert refusal(event("/", None)) is None and refusal(event("/console/app.js", None)) is None


def test_the_policy_allows_presigned_images_and_the_sign_in_domain_and_no_inline_code():
    class S3Meta:
        endpoint_url = "https://s3.eu-west-1.amazonaws.com"

    class S3:
        meta = S3Meta()

    config = ConsoleConfig(
        auth_domain="https://acme.auth.eu-west-1.amazoncognito.com",
        image_origins=image_origins(S3(), "eu-west-1"),
    )
    policy = content_security_policy(config)
    assert "img-src 'self' data: https://*.s3.eu-west-1.amazonaws.com" in policy
    assert "connect-src 'self' https://acme.auth.eu-west-1.amazoncognito.com;" in policy
    assert "unsafe" not in policy and "script-src 'self';" in policy and "style-src 'self';" in policy
    S3Meta.endpoint_url = "http://127.0.0.1:5050"
    assert image_origins(S3(), "us-east-1") == ("http://127.0.0.1:5050",)


def test_the_days_end_today_in_utc():
    assert day_range(3, 1796637600.0) == ["2026-12-05", "2026-12-06", "2026-12-07"]


@dataclass
class Frame:
    """A decoded frame as the pipeline holds it: only ``working`` is read (its ``data`` is not an image)."""

    working: Image.Image
    frame_index: int = 0
    source: object | None = None
    data: bytes = b"never decoded again"

    @property
    def file(self):
        return self.source or self


class S3:
    def __init__(self):
        self.puts: dict[str, bytes] = {}

    def put_object(self, **kwargs):
        assert kwargs["ContentType"] == "image/webp"
        self.puts[kwargs["Key"]] = kwargs["Body"]


def test_thumbnails_come_from_the_working_copy_and_an_animation_gets_its_frame_strip():
    still = Frame(Image.new("RGB", (512, 256), (200, 30, 30)))
    s3 = S3()
    assert Thumbnails("artifacts", s3).write("a" * 64, [still]) == {"thumbnail": f"thumbnails/{'a' * 64}.webp"}
    assert Image.open(io.BytesIO(s3.puts[f"thumbnails/{'a' * 64}.webp"])).size == (256, 128)

    file = Frame(Image.new("RGB", (300, 300), (10, 10, 10)))
    frames = [Frame(Image.new("RGB", (300, 300), (i * 60, 0, 0)), frame_index=i * 10, source=file) for i in range(3)]
    written = Thumbnails("artifacts", s3).write("b" * 64, frames)
    assert written["strip_frames"] == [0, 10, 20]
    strip = Image.open(io.BytesIO(s3.puts[written["frames_strip"]]))
    assert strip.size == (3 * 128, 128)
    assert strip.getpixel((128 + 64, 64))[0] == pytest.approx(60, abs=12)  # the second cell is the second frame
    assert Thumbnails("artifacts", s3).write(None, frames) == {}


def test_a_failed_thumbnail_write_leaves_the_review_without_one():
    class Broken:
        def put_object(self, **kwargs):
            raise OSError("S3 is down")

    assert Thumbnails("artifacts", Broken()).write("c" * 64, [Frame(Image.new("RGB", (8, 8)))]) == {}


def test_thumbnails_never_enlarge_and_keep_the_aspect_ratio():
    assert Image.open(io.BytesIO(thumbnail_webp(Image.new("RGB", (40, 20))))).size == (40, 20)
    assert Image.open(io.BytesIO(frame_strip_webp([Image.new("RGB", (10, 40))]))).size == (128, 128)


def test_the_adapter_routes_as_the_console_api_does_and_signs_in_only_its_data_routes():
    assert route_of("GET", "/") == ("GET /", {}, False)
    assert route_of("GET", "/console/app.js") == ("GET /console/{name}", {"name": "app.js"}, False)
    assert route_of("POST", "/console/api/reviews/x/decision")[2] is True
    assert route_of("GET", "/reviews") is None  # the IAM routes are another API's
    assert route_of("POST", "/") is None and route_of("GET", "/console/a/b") is None

    page = http_api_event("GET", "/?x=1", {"User-Agent": "t"}, b"", LOCAL_CLAIMS, "127.0.0.1:8080")
    assert "authorizer" not in page["requestContext"]
    data = http_api_event("GET", "/console/api/reviews?flag=a&flag=b", {}, b"", LOCAL_CLAIMS, "h")
    assert data["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:username"] == LOCAL_USER
    assert data["queryStringParameters"] == {"flag": "a,b"}
    assert http_api_event("GET", "/nowhere", {}, b"", LOCAL_CLAIMS, "h") is None


def test_emf_lines_become_the_metrics_cloudwatch_logs_would_make():
    document = {
        "_aws": {
            "Timestamp": 1796637600000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "ImageAnalysis",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "EstimatedCost_imagga", "Unit": "None"}, {"Name": "CallsMade_imagga"}],
                }
            ],
        },
        "service": "my-stack",
        "EstimatedCost_imagga": [0.0015, 0.0015],
        "CallsMade_imagga": 2,
    }
    namespace, entries = metric_data(document)
    assert namespace == "ImageAnalysis"
    cost = next(e for e in entries if e["MetricName"] == "EstimatedCost_imagga")
    assert cost["Values"] == [0.0015, 0.0015] and cost["Dimensions"] == [{"Name": "service", "Value": "my-stack"}]
    assert cost["Timestamp"].isoformat() == "2026-12-07T10:00:00+00:00"
    assert next(e for e in entries if e["MetricName"] == "CallsMade_imagga")["Values"] == [2.0]
