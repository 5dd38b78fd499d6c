"""A key rotated in Secrets Manager is used on the very next vendor call, through the real Powertools cache.

Every vendor adapter runs over an httpx mock transport that accepts exactly one key; Secrets Manager is a
botocore Stubber behind the production fetcher (``powertools_fetcher``), whose 300 s cache would otherwise
hand back the refused key until it expired or the container was replaced.
"""

from __future__ import annotations

import json

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from image_analysis.credentials import REFRESH_INTERVAL_SECONDS, SECRET_CACHE_SECONDS, Credentials, powertools_fetcher
from image_analysis.errors import AuthError
from image_analysis.providers import provider_class
from image_analysis.providers.base import ProviderDeps
from image_analysis.settings import Settings
from tests.unit.test_vendor_keys import FAST, NEW, OLD, VENDORS, Presigner, Vendor, request

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:provider-keys-AbCdEf"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class SecretsManager:
    """A stubbed client; ``reads`` counts the GetSecretValue calls that reached it."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.client = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        self.stubber = Stubber(self.client)
        self.stubber.activate()
        self.reads = 0
        self.client.meta.events.register("before-parameter-build.secrets-manager.GetSecretValue", self._count)

    def _count(self, **_: object) -> None:
        self.reads += 1

    def holds(self, key: str) -> None:
        """Queue the answer of the next GetSecretValue call: the secret holding ``key``."""
        entry = {"api_key": key, "api_secret": "secret-" + key} if self.vendor == "imagga" else {"api_key": key}
        self.stubber.add_response(
            "get_secret_value",
            {"ARN": ARN, "Name": "provider-keys", "SecretString": json.dumps({self.vendor: entry})},
            {"SecretId": ARN},
        )


def build(vendor: Vendor, secrets: SecretsManager, clock: Clock, accepted: list[str], sent: list[str]):
    def handler(http_request: httpx.Request) -> httpx.Response:
        key = vendor.key_of(http_request)
        sent.append(key)
        if key in accepted:
            return httpx.Response(200, json=vendor.success)
        status, body = vendor.refusal
        return httpx.Response(status, json=body)

    settings = Settings.from_env(
        {"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "PROVIDER_SECRET_ARN": ARN, **vendor.env}
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings, powertools_fetcher(secrets.client), clock=clock),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": FAST, "sleep": lambda _: None, "coreviz_s3": Presigner()},
    )
    return provider_class(vendor.name).create(deps)


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_key_rotated_within_the_cache_lifetime_is_used_on_the_next_call(vendor: Vendor) -> None:
    secrets, clock = SecretsManager(vendor.name), Clock()
    accepted, sent = [OLD], []
    provider = build(vendor, secrets, clock, accepted, sent)
    secrets.holds(OLD)
    assert vendor.check(provider.analyze(request()))

    clock.now += 60  # well inside the secret's 300 s cache
    secrets.holds(NEW)  # an operator put the new key in the secret
    accepted[0] = NEW  # and revoked the old one at the vendor
    sent.clear()
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, NEW]  # refused once, read past the cache, sent again
    assert secrets.reads == 2

    sent.clear()
    assert vendor.check(provider.analyze(request()))
    assert sent == [NEW] and secrets.reads == 2  # the new key is kept
    secrets.stubber.assert_no_pending_responses()


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_stream_of_refusals_reads_the_secret_once_per_interval(vendor: Vendor) -> None:
    secrets, clock = SecretsManager(vendor.name), Clock()
    accepted, sent = [NEW], []  # revoked at the vendor; the secret still holds the old key
    provider = build(vendor, secrets, clock, accepted, sent)
    secrets.holds(OLD)  # the first read
    secrets.holds(OLD)  # the one forced read after the first refusal
    for _ in range(10):
        with pytest.raises(AuthError):
            provider.analyze(request())
        clock.now += 1
    assert secrets.reads == 2
    assert sent == [OLD] * 10  # each refused once, never sent twice in one call

    secrets.holds(NEW)  # rotated; the interval is over: the next refusal reads it
    clock.now += REFRESH_INTERVAL_SECONDS
    sent.clear()
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, NEW] and secrets.reads == 3
    secrets.stubber.assert_no_pending_responses()


@pytest.mark.parametrize("vendor", VENDORS[:2], ids=lambda v: v.name)
def test_a_refused_key_from_the_environment_never_reads_the_secret(vendor: Vendor) -> None:
    secrets, clock = SecretsManager(vendor.name), Clock()
    env = {f"{vendor.name.upper()}_API_KEY": OLD, f"{vendor.name.upper()}_API_SECRET": "secret-" + OLD}
    vendor = Vendor(vendor.name, {**vendor.env, **env}, vendor.key_of, vendor.success, vendor.refusal, vendor.check)
    accepted, sent = [NEW], []
    provider = build(vendor, secrets, clock, accepted, sent)
    for _ in range(3):
        with pytest.raises(AuthError):
            provider.analyze(request())
        clock.now += REFRESH_INTERVAL_SECONDS
    assert sent == [OLD] * 3
    assert secrets.reads == 0


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_key_put_in_the_secret_is_used_five_minutes_later_without_any_refusal(vendor: Vendor) -> None:
    """The old key still works, so nothing forces a read: the five minutes the docs promise are the limit,
    and Powertools' own cache (on the real clock, only milliseconds old here) does not add to them."""
    secrets, clock = SecretsManager(vendor.name), Clock()
    accepted, sent = [OLD], []
    provider = build(vendor, secrets, clock, accepted, sent)
    secrets.holds(OLD)
    assert vendor.check(provider.analyze(request()))
    secrets.holds(NEW)
    accepted.append(NEW)  # both work at the vendor for now
    clock.now += SECRET_CACHE_SECONDS - 1
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, OLD] and secrets.reads == 1
    clock.now += 1
    assert vendor.check(provider.analyze(request()))
    assert sent == [OLD, OLD, NEW] and secrets.reads == 2
    secrets.stubber.assert_no_pending_responses()
