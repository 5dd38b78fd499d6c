"""A cache table that cannot be reached is a miss on read and a lost reuse on write, never a failure that
would throw away a vendor answer already paid for."""

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from image_analysis.cache import ContentCache
from image_analysis.providers.base import ProviderOutput


class Unreachable:
    def __init__(self, error):
        self.error = error
        self.calls = 0

    def get_item(self, **kwargs):
        self.calls += 1
        raise self.error

    put_item = get_item


@pytest.mark.parametrize(
    "error",
    [EndpointConnectionError(endpoint_url="https://dynamodb"), ReadTimeoutError(endpoint_url="https://dynamodb")],
    ids=["unreachable", "timed-out"],
)
def test_an_unreachable_cache_misses_and_drops_the_write(error):
    client = Unreachable(error)
    cache = ContentCache("cache", client, ttl_seconds=60)
    assert cache.get("sha#imagga#f#labels") is None
    assert cache.put("sha#imagga#f#labels", ProviderOutput(), calls=2) is False
    assert client.calls == 2
