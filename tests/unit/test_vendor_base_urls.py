"""Vendor base URLs: https, or plain http to this machine only; anything else is refused when the function starts.

Keys travel in these requests (headers, basic auth), and so do the images: a ``<VENDOR>_BASE_URL`` set to a
plain-http host (a typo, a proxy that was never meant for production) would send both in the clear.
"""

from __future__ import annotations

import httpx
import pytest

from image_analysis.credentials import Credentials
from image_analysis.providers import REGISTRY, provider_class
from image_analysis.providers.base import ProviderDeps
from image_analysis.runtime import build_runtime
from image_analysis.settings import Settings

# The vendors reached over HTTP (builtin runs offline; Rekognition goes through boto3).
HTTP_VENDORS = sorted(name for name in REGISTRY if getattr(provider_class(name), "default_base_url", None))


def create(vendor: str, base_url: str):
    cls = provider_class(vendor)
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", f"{cls.env_prefix}BASE_URL": base_url})
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=httpx.Client())
    return cls.create(deps)


def test_every_vendor_reached_over_http_is_covered():
    assert HTTP_VENDORS == ["aiornot", "coreviz", "imagerecognize", "imageseo", "imagga"]
    for vendor in HTTP_VENDORS:
        assert provider_class(vendor).default_base_url.startswith("https://"), vendor


@pytest.mark.parametrize("vendor", HTTP_VENDORS)
@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.example.com",
        "http://10.0.0.8:8080",
        "http://127.0.0.1.nip.io",  # looks like loopback, resolves wherever its owner wants
        "http://localhost.example.com",
        "http://[::2]:80",
    ],
)
def test_plain_http_to_another_host_is_refused_with_the_setting_named(vendor, base_url):
    setting = f"{provider_class(vendor).env_prefix}BASE_URL"
    with pytest.raises(ValueError, match=f"{setting} must use https") as refused:
        create(vendor, base_url)
    assert "127.0.0.1, ::1, localhost" in str(refused.value) and base_url in str(refused.value)


@pytest.mark.parametrize("vendor", HTTP_VENDORS)
@pytest.mark.parametrize(
    ("base_url", "kept"),
    [
        ("https://api.example.com", "https://api.example.com"),
        ("https://api.example.com:8443/", "https://api.example.com:8443"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_https_and_loopback_http_are_accepted(vendor, base_url, kept):
    assert create(vendor, base_url).client.base_url == kept


def test_the_function_refuses_to_start_on_a_plain_http_vendor():
    settings = Settings.from_env(
        {
            "RESULTS_TABLE": "t",
            "ALERTS_TOPIC_ARN": "a",
            "PROVIDERS": "builtin,imagga",
            "PROVIDER_OPTIONS": "IMAGGA_BASE_URL=http://imagga-proxy.internal",
        }
    )
    with pytest.raises(ValueError, match="IMAGGA_BASE_URL must use https"):
        build_runtime(settings, clients={"s3": object(), "dynamodb": object(), "sns": object()})
