"""``Credentials.refresh`` reads the provider secret past Powertools' cache, at most once per provider in a
short interval; keys from the environment are never refreshed.

Secrets Manager is a botocore Stubber behind the real Powertools fetcher: every response queued is one
GetSecretValue call, and a call with nothing queued fails (so a read the cache should have served shows).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from image_analysis.credentials import REFRESH_INTERVAL_SECONDS, SECRET_CACHE_SECONDS, Credentials, powertools_fetcher
from image_analysis.errors import AuthError, RateLimitedError
from image_analysis.settings import Settings

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:provider-keys-AbCdEf"
IMAGGA = ("imagga", "IMAGGA_", ("api_key", "api_secret"))
AIORNOT = ("aiornot", "AIORNOT_", ("api_key",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**env: str) -> Settings:
    return Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "PROVIDER_SECRET_ARN": ARN, **env})


def secret(imagga: str, aiornot: str = "ai-1") -> dict[str, Any]:
    value = {"imagga": {"api_key": imagga, "api_secret": f"s-{imagga}"}, "aiornot": {"api_key": aiornot}}
    return {"ARN": ARN, "Name": "provider-keys", "SecretString": json.dumps(value)}


@pytest.fixture
def stubber():
    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def credentials(stubber: Stubber, clock: Clock, **env: str) -> Credentials:
    return Credentials(settings(**env), powertools_fetcher(stubber.client), clock=clock)


def test_refresh_reads_past_the_cache_and_refills_it(stubber):
    stubber.add_response("get_secret_value", secret("old"))
    stubber.add_response("get_secret_value", secret("new"))
    creds = credentials(stubber, Clock())
    assert creds.for_provider(*IMAGGA) == {"api_key": "old", "api_secret": "s-old"}
    assert creds.for_provider(*IMAGGA)["api_key"] == "old"  # cached: the rotated value is not read yet
    assert creds.refresh(*IMAGGA) == {"api_key": "new", "api_secret": "s-new"}
    assert creds.for_provider(*IMAGGA)["api_key"] == "new"  # the forced read refilled the cache


def test_refresh_reads_at_most_once_per_provider_per_interval(stubber):
    clock = Clock()
    stubber.add_response("get_secret_value", secret("old"))
    stubber.add_response("get_secret_value", secret("new", aiornot="ai-1"))
    stubber.add_response("get_secret_value", secret("new", aiornot="ai-2"))
    stubber.add_response("get_secret_value", secret("newer", aiornot="ai-2"))
    creds = credentials(stubber, clock)
    assert creds.for_provider(*IMAGGA)["api_key"] == "old"
    assert creds.refresh(*IMAGGA)["api_key"] == "new"
    for _ in range(20):  # a stream of refusals: served from the cache the first refresh refilled
        clock.now += 1
        assert creds.refresh(*IMAGGA)["api_key"] == "new"
    # Another provider has an interval of its own.
    assert creds.refresh(*AIORNOT) == {"api_key": "ai-2"}
    clock.now += REFRESH_INTERVAL_SECONDS
    assert creds.refresh(*IMAGGA)["api_key"] == "newer"


def test_a_failed_forced_read_counts_against_the_interval(stubber):
    clock = Clock()
    stubber.add_response("get_secret_value", secret("old"))
    stubber.add_client_error("get_secret_value", service_error_code="ThrottlingException", http_status_code=400)
    creds = credentials(stubber, clock)
    assert creds.for_provider(*IMAGGA)["api_key"] == "old"
    with pytest.raises(RateLimitedError):
        creds.refresh(*IMAGGA)
    clock.now += REFRESH_INTERVAL_SECONDS - 1
    # Not asked again while it is throttling us: the cached value, and nothing queued was needed.
    assert creds.refresh(*IMAGGA)["api_key"] == "old"


def test_keys_in_the_environment_win_and_never_read_the_secret(stubber):
    creds = credentials(stubber, Clock(), IMAGGA_API_KEY="env-key", IMAGGA_API_SECRET="env-secret")
    assert creds.refresh(*IMAGGA) == {"api_key": "env-key", "api_secret": "env-secret"}
    assert creds.refresh(*IMAGGA) == {"api_key": "env-key", "api_secret": "env-secret"}
    # Nothing was queued: a single GetSecretValue call would have failed with the stub's error.


def test_an_entry_removed_from_the_secret_is_an_auth_error_on_refresh(stubber):
    stubber.add_response("get_secret_value", secret("old"))
    stubber.add_response(
        "get_secret_value", {"ARN": ARN, "Name": "provider-keys", "SecretString": '{"aiornot": {"api_key": "x"}}'}
    )
    creds = credentials(stubber, Clock())
    assert creds.for_provider(*IMAGGA)["api_key"] == "old"
    with pytest.raises(AuthError, match="no api_key, api_secret"):
        creds.refresh(*IMAGGA)


def test_a_fetcher_without_a_cache_is_read_plainly_on_refresh():
    reads: list[str] = []

    def fetch(arn: str) -> dict[str, Any]:
        reads.append(arn)
        return {"aiornot": {"api_key": f"key-{len(reads)}"}}

    creds = Credentials(settings(), fetch)
    assert creds.for_provider(*AIORNOT) == {"api_key": "key-1"}
    assert creds.refresh(*AIORNOT) == {"api_key": "key-2"}
    assert reads == [ARN, ARN]


def test_the_secret_is_kept_five_minutes_on_the_injected_clock_then_read_past_powertools_cache(stubber):
    clock = Clock()
    stubber.add_response("get_secret_value", secret("old"))
    stubber.add_response("get_secret_value", secret("new"))
    creds = credentials(stubber, clock)
    assert creds.for_provider(*IMAGGA)["api_key"] == "old"
    clock.now += SECRET_CACHE_SECONDS - 1
    assert creds.for_provider(*IMAGGA)["api_key"] == "old"  # nothing queued was used: no read
    assert creds.for_provider(*AIORNOT) == {"api_key": "ai-1"}  # one secret for every provider
    clock.now += 1
    assert creds.for_provider(*IMAGGA)["api_key"] == "new"
    assert creds.for_provider(*IMAGGA)["api_key"] == "new"  # and kept again
