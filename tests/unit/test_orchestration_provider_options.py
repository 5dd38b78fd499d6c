"""PROVIDER_OPTIONS: every <VENDOR>_* option through one template parameter."""

from __future__ import annotations

import httpx
import pytest

from image_analysis.credentials import Credentials
from image_analysis.providers.aiornot import AiOrNotProvider
from image_analysis.providers.base import ProviderDeps
from image_analysis.providers.imagga import ImaggaProvider
from image_analysis.settings import Settings


def settings(**env: str) -> Settings:
    return Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})


def test_provider_options_reach_the_adapters_caps_and_prices():
    config = settings(
        PROVIDER_OPTIONS="IMAGGA_ENDPOINTS=tags,faces; AIORNOT_ONLY=ai_generated,deepfake;"
        "IMAGGA_DAILY_CAP=1000\nIMAGGA_PRICE_PER_CALL=0.002;AIORNOT_SEND_METADATA=true"
    )
    deps = ProviderDeps(settings=config, credentials=Credentials(config), http=httpx.Client())
    assert ImaggaProvider.create(deps).enabled == frozenset({"labels", "faces"})
    assert AiOrNotProvider.create(deps).enabled == frozenset({"ai_generated", "deepfake"})
    assert config.daily_cap("imagga") == 1000
    assert config.price_per_call("imagga", 0.0) == 0.002
    assert config.vendor("AIORNOT_", "SEND_METADATA") == "true"


def test_an_explicit_variable_of_the_same_name_wins():
    config = settings(PROVIDER_OPTIONS="IMAGGA_ENDPOINTS=tags;IMAGGA_DAILY_CAP=5", IMAGGA_ENDPOINTS="nsfw")
    assert config.vendor("IMAGGA_", "ENDPOINTS") == "nsfw"
    assert config.daily_cap("imagga") == 5


@pytest.mark.parametrize("name", ["IMAGGA_API_KEY", "IMAGGA_API_SECRET", "AIORNOT_API_KEY", "coreviz_api_key"])
def test_keys_and_secrets_are_refused_without_repeating_them(name):
    with pytest.raises(ValueError, match="must not hold keys or secrets") as raised:
        settings(PROVIDER_OPTIONS=f"IMAGGA_ENDPOINTS=tags;{name}=s3cr3t-value")
    assert "s3cr3t-value" not in str(raised.value)
    assert "PROVIDER_SECRET_ARN" in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("NSFW_THRESHOLD=0.5", "vendor options only"),
        ("IMAGGA_ENDPOINTS", "not NAME=value"),
        ("IMAGGA_DAILY_CAP=1;IMAGGA_DAILY_CAP=2", "IMAGGA_DAILY_CAP twice"),
        ("IMAGGA_DAILY_CAP=lots", "IMAGGA_DAILY_CAP must be an integer"),
        ("IMAGGA_MAX_IN_FLIGHT=0", "IMAGGA_MAX_IN_FLIGHT must be at least 1"),
    ],
)
def test_bad_options_fail_with_a_clear_message(raw, message):
    with pytest.raises(ValueError, match=message):
        config = settings(PROVIDER_OPTIONS=raw)
        config.daily_cap("imagga")
        config.max_in_flight("imagga")


def test_options_change_the_cache_fingerprint_like_the_variables_they_stand_for():
    from image_analysis.cache import config_fingerprint

    through_options = settings(PROVIDER_OPTIONS="IMAGGA_ENDPOINTS=tags").env
    direct = settings(IMAGGA_ENDPOINTS="tags").env
    default = settings().env
    assert config_fingerprint("imagga", "1", through_options) == config_fingerprint("imagga", "1", direct)
    assert config_fingerprint("imagga", "1", through_options) != config_fingerprint("imagga", "1", default)
