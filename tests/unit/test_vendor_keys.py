"""A key rotated in the provider secret is picked up without a cold start.

``Credentials`` keeps the secret between invocations for five minutes (reading it is a network call). When
the vendor refuses a key, the adapter reads the keys again through ``Credentials.refresh`` and, if they
changed, makes the call once more. Every vendor runs over an httpx mock transport that accepts the keys a
test names; the secret is a fake whose value the test rotates, and the clock is the test's.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from image_analysis.credentials import REFRESH_INTERVAL_SECONDS, SECRET_CACHE_SECONDS, Credentials
from image_analysis.errors import AuthError
from image_analysis.imaging import decode
from image_analysis.providers import provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps, ProviderOutput
from image_analysis.providers.http import RetryPolicy
from image_analysis.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAST = RetryPolicy(base_delay=0.001, max_delay=0.002, safety_margin=0.0, min_try_seconds=0.0)
OLD, NEW = "old-key-1111", "new-key-2222"


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def imagerecognize_key(request: httpx.Request) -> str:
    body = request.read()
    marker = b'name="apikey"\r\n\r\n'
    start = body.index(marker) + len(marker)
    return body[start : body.index(b"\r\n", start)].decode()


@dataclass(frozen=True)
class Vendor:
    name: str
    env: dict[str, str]
    key_of: Callable[[httpx.Request], str]
    success: Any
    refusal: tuple[int, Any]
    check: Callable[[ProviderOutput], bool]


VENDORS = [
    Vendor(
        "imagga",
        {"IMAGGA_ENDPOINTS": "tags"},
        lambda r: base64.b64decode(r.headers["authorization"].split()[1]).decode().split(":")[0],
        fixture("imagga/tags_1.json"),
        (401, {"status": {"type": "error", "text": "Unauthorized"}}),
        lambda out: [lbl.name for lbl in out.labels] == ["mountain", "landscape"],
    ),
    Vendor(
        "aiornot",
        {},
        lambda r: r.headers["authorization"].removeprefix("Bearer "),
        fixture("aiornot/v2_image_sync_1.json"),
        (401, {"detail": "Invalid authentication credentials"}),
        lambda out: out.ai_generated is not None and out.ai_generated.verdict == "ai",
    ),
    Vendor(
        "imageseo",
        {},
        lambda r: r.headers["authentication"],
        fixture("imageseo/image_report_docs.json"),
        (401, {"success": False, "code": "unauthorized"}),
        lambda out: [a.text for a in out.alt_texts] == ["Operations management", "Management"],
    ),
    Vendor(
        "imagerecognize",
        {"IMAGERECOGNIZE_TYPES": "objects"},
        imagerecognize_key,
        fixture("imagerecognize/objects_docs.json"),
        (200, fixture("imagerecognize/error_401_docs.json")),  # the status travels in the body
        lambda out: [lbl.name for lbl in out.labels] == ["Car", "Pedestrian"],
    ),
    Vendor(
        "coreviz",
        {"COREVIZ_URL_SOURCE": "original", "AWS_REGION": "us-east-1"},
        lambda r: r.headers["x-api-key"],
        fixture("coreviz/tags_docs.json"),
        (401, fixture("coreviz/error_401_docs.json")),
        lambda out: [lbl.name for lbl in out.labels] == ["person", "outdoor", "nature"],
    ),
]


class Presigner:
    def generate_presigned_url(self, operation: str, Params: dict, ExpiresIn: int) -> str:
        return f"https://{Params['Bucket']}.s3.us-east-1.amazonaws.com/{Params['Key']}?X-Amz-Signature=abcdef0123456789"


class Secret:
    """The provider secret: every read is counted; ``value`` is what a rotation changed it to."""

    def __init__(self, vendor: str, value: str) -> None:
        self.vendor, self.value, self.reads = vendor, value, 0

    def __call__(self, arn: str) -> dict[str, Any]:
        self.reads += 1
        entry = {"api_key": self.value}
        if self.vendor == "imagga":
            entry["api_secret"] = "secret-" + self.value
        return {self.vendor: entry}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def build(vendor: Vendor, secret: Secret, accepted: list[str], sent: list[str], clock: Clock | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        key = vendor.key_of(request)
        sent.append(key)
        if key in accepted:
            return httpx.Response(200, json=vendor.success)
        status, body = vendor.refusal
        return httpx.Response(status, json=body)

    settings = Settings.from_env(
        {"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "PROVIDER_SECRET_ARN": "arn:secret", **vendor.env}
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings, fetch_secret=secret, clock=clock or Clock()),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": FAST, "sleep": lambda _: None, "coreviz_s3": Presigner()},
    )
    return provider_class(vendor.name).create(deps)


def request() -> AnalysisRequest:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(out, format="PNG")
    return AnalysisRequest(
        image=decode(out.getvalue(), 10**8),
        object_id="a" * 32,
        deadline=Deadline(30),
        bucket="b",
        key="k.png",
        version_id="v1",  # CoreViz reads an original only by version id
    )


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_rotated_key_is_used_after_one_refusal(vendor: Vendor) -> None:
    secret = Secret(vendor.name, OLD)
    accepted, sent = [OLD], []
    provider = build(vendor, secret, accepted, sent)
    assert vendor.check(provider.analyze(request()))
    assert secret.reads == 1
    assert vendor.check(provider.analyze(request()))
    assert secret.reads == 1  # kept between invocations

    secret.value = accepted[0] = NEW  # rotated: the vendor now takes only the new key
    sent.clear()
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, NEW]  # refused once, re-read, sent again
    assert secret.reads == 2
    sent.clear()
    assert vendor.check(provider.analyze(request()))
    assert sent == [NEW] and secret.reads == 2  # the new key is now the kept one


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_refused_key_that_is_still_in_the_secret_is_an_auth_error_and_read_again_after_the_interval(
    vendor: Vendor,
) -> None:
    secret, clock = Secret(vendor.name, OLD), Clock()
    accepted, sent = [NEW], []  # the vendor revoked the key; the secret was not updated yet
    provider = build(vendor, secret, accepted, sent, clock)
    with pytest.raises(AuthError):
        provider.analyze(request())
    assert sent == [OLD]  # the same key is not sent twice
    assert secret.reads == 2  # the first read, and the one the refusal asked for
    secret.value = NEW
    clock.now += REFRESH_INTERVAL_SECONDS
    sent.clear()
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, NEW]  # refused again, and this time the secret may be read again: rotated
    assert secret.reads == 3


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_key_changed_in_the_secret_is_used_within_five_minutes_while_the_old_one_still_works(vendor: Vendor) -> None:
    secret, clock = Secret(vendor.name, OLD), Clock()
    accepted, sent = [OLD, NEW], []  # an operator put a new key in; the old one is not revoked yet
    provider = build(vendor, secret, accepted, sent, clock)
    assert vendor.check(provider.analyze(request()))
    secret.value = NEW
    clock.now += SECRET_CACHE_SECONDS - 1
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, OLD] and secret.reads == 1  # still the kept secret: no read per call
    clock.now += 1
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, OLD, NEW] and secret.reads == 2  # five minutes on: read again, the new key used
