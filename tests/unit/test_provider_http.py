"""The shared HTTP layer: what is retried, how long it waits, the deadline, and what messages reveal.

Everything runs on an httpx MockTransport and a fake clock: sleeping advances the clock, nothing waits.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
from collections.abc import Callable

import httpx
import pytest

from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)
from image_analysis.providers import http as vendor_http
from image_analysis.providers.base import Deadline
from image_analysis.providers.http import (
    RetryPolicy,
    VendorClient,
    VendorProfile,
    kind_for_status,
    new_client,
    shared_client,
)
from image_analysis.settings import Settings

KEY = "key-7f3a9c1e"
SECRET = "secret-Zq81xx0"
TOKEN = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
WALL_START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START + self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> tuple[Handler, list]:
    """A transport handler that gives the answers in order (the last one repeats) and records requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    return handler, seen


def ok(body: object = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"result": {}, "status": {"type": "success"}})


def make(
    handler: Handler,
    clock: FakeClock,
    *,
    profile: VendorProfile | None = None,
    policy: RetryPolicy | None = None,
    timeout: float = 10.0,
    max_attempts: int = 3,
    jitter: float = 1.0,
) -> VendorClient:
    return VendorClient(
        profile or VendorProfile(provider="acme", hints={"auth": "check api_key in the provider secret"}),
        new_client(timeout, transport=httpx.MockTransport(handler)),
        "https://api.example.test",
        timeout_seconds=timeout,
        max_attempts=max_attempts,
        policy=policy or RetryPolicy(base_delay=0.5, max_delay=8.0, safety_margin=1.0, min_try_seconds=0.25),
        clock=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: jitter,
        wall_clock=clock.wall,
    )


def send(client: VendorClient, clock: FakeClock, deadline_seconds: float = 60.0, **kwargs: object):
    deadline = Deadline(deadline_seconds, clock=clock.monotonic)
    return client.send(
        "POST", "/v2/tags", deadline=deadline, auth=httpx.BasicAuth(KEY, SECRET), secrets=(KEY, SECRET), **kwargs
    )


# ---------------------------------------------------------------------------------------------------
# The status table


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (401, "auth"),
        (403, "auth"),
        (402, "quota_exhausted"),
        (429, "rate_limited"),
        (413, "bad_image"),
        (415, "bad_image"),
        (422, "bad_image"),
        (500, "server_error"),
        (503, "server_error"),
        (599, "server_error"),
        (400, "bad_response"),
        (404, "bad_response"),
        (301, "bad_response"),
        (408, "timeout"),
    ],
)
def test_generic_status_table(status: int, kind: str | None) -> None:
    assert kind_for_status(status) == kind


def test_overrides_change_single_codes_only() -> None:
    overrides = {403: "quota_exhausted"}
    assert kind_for_status(403, overrides) == "quota_exhausted"
    assert kind_for_status(401, overrides) == "auth"


# ---------------------------------------------------------------------------------------------------
# Retries


def test_503_then_success_is_retried_after_a_full_jitter_delay() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(503), ok({"result": {"tags": []}, "status": {"type": "success"}}))
    response = send(make(handler, clock, jitter=0.5), clock)
    assert len(seen) == 2
    assert response.attempts == 2
    assert response.body == {"result": {"tags": []}, "status": {"type": "success"}}
    # random() 0.5 * min(cap 8, base 0.5 * 2**0) = 0.25
    assert clock.sleeps == [0.25]


def test_backoff_grows_exponentially_and_is_capped() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(500))
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0, safety_margin=1.0)
    with pytest.raises(ServerError) as caught:
        send(make(handler, clock, policy=policy, max_attempts=5), clock, deadline_seconds=600)
    assert len(seen) == 5
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0]  # 1, 2, 4->3, 8->3
    assert "(HTTP 500; 5 tries)" in caught.value.message
    assert caught.value.retryable is True


def test_429_retry_after_seconds_is_a_floor() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "3"}), ok())
    send(make(handler, clock, jitter=0.1), clock)
    assert len(seen) == 2
    assert clock.sleeps == [3.0]


def test_429_retry_after_http_date() -> None:
    clock = FakeClock()
    when = email.utils.formatdate(WALL_START + 7, usegmt=True)
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": when}), ok())
    send(make(handler, clock, jitter=0.0), clock)
    assert len(seen) == 2
    assert clock.sleeps == [pytest.approx(7.0)]


def test_429_without_retry_after_uses_backoff() -> None:
    clock = FakeClock()
    handler, _ = scripted(httpx.Response(429), ok())
    send(make(handler, clock, jitter=0.6), clock)
    assert clock.sleeps == [pytest.approx(0.3)]


def test_retry_after_past_the_deadline_gives_up_at_once_with_retry_after() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "12"}))
    with pytest.raises(RateLimitedError) as caught:
        send(make(handler, clock), clock, deadline_seconds=10)
    assert len(seen) == 1
    assert clock.sleeps == []
    assert caught.value.retry_after == 12.0
    assert "would pass the deadline" in caught.value.message


def test_retry_after_longer_than_policy_allows_is_not_slept() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(503, headers={"Retry-After": "120"}))
    with pytest.raises(ServerError) as caught:
        send(make(handler, clock), clock, deadline_seconds=900)
    assert len(seen) == 1
    assert clock.sleeps == []
    assert "wait 120s" in caught.value.message


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_timeouts_and_connection_errors_are_retried(failure: Exception) -> None:
    clock = FakeClock()
    handler, seen = scripted(failure, ok())
    response = send(make(handler, clock), clock)
    assert len(seen) == 2
    assert response.attempts == 2


def test_timeouts_exhausted_raise_provider_timeout() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.ReadTimeout("read timed out"))
    with pytest.raises(ProviderTimeoutError) as caught:
        send(make(handler, clock), clock)
    assert len(seen) == 3
    assert caught.value.code == "timeout"
    assert caught.value.message.startswith("acme: timed out")


def test_dropped_connections_exhausted_raise_server_error() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    with pytest.raises(ServerError) as caught:
        send(make(handler, clock), clock)
    assert len(seen) == 3
    assert "RemoteProtocolError" in caught.value.message


def test_malformed_body_is_retried_then_succeeds() -> None:
    clock = FakeClock()
    handler, seen = scripted(
        httpx.Response(200, content=b'{"result": {"tags": [', headers={"Content-Type": "application/json"}), ok()
    )
    response = send(make(handler, clock), clock)
    assert len(seen) == 2
    assert response.body["status"]["type"] == "success"


def test_malformed_body_exhausted_is_bad_response_and_retryable() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(200, content=b"<html>gateway</html>"))
    with pytest.raises(BadResponseError) as caught:
        send(make(handler, clock), clock)
    assert len(seen) == 3
    assert "not JSON" in caught.value.message
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthError),
        (403, AuthError),
        (402, QuotaExhaustedError),
        (400, BadResponseError),
        (404, BadResponseError),
        (415, BadImageError),
        (422, BadImageError),
    ],
)
def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(status, json={"status": {"text": "nope", "type": "error"}}), ok())
    with pytest.raises(error) as caught:
        send(make(handler, clock), clock)
    assert len(seen) == 1
    assert clock.sleeps == []
    assert caught.value.retryable is False  # type: ignore[attr-defined]
    assert f"HTTP {status}" in str(caught.value)


def test_redirect_is_not_followed() -> None:
    clock = FakeClock()
    handler, seen = scripted(httpx.Response(302, headers={"Location": "https://elsewhere.test/v2/tags"}))
    with pytest.raises(BadResponseError) as caught:
        send(make(handler, clock), clock)
    assert [str(r.url) for r in seen] == ["https://api.example.test/v2/tags"]
    assert "redirect" in caught.value.message


# ---------------------------------------------------------------------------------------------------
# The deadline


def test_per_try_timeout_is_the_smaller_of_configured_and_remaining() -> None:
    clock = FakeClock()
    timeouts: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return ok()

    handler, _ = scripted(record)
    send(make(handler, clock, timeout=10.0), clock, deadline_seconds=4.0)
    # 4 s left minus the 1 s safety margin
    assert timeouts[0] == {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}

    timeouts.clear()
    send(make(handler, clock, timeout=2.0), clock, deadline_seconds=60.0)
    assert timeouts[0]["read"] == 2.0


def test_no_sleep_or_try_passes_the_deadline() -> None:
    clock = FakeClock()

    def slow_503(request: httpx.Request) -> httpx.Response:
        clock.now += 1.0  # each try takes a second
        return httpx.Response(503)

    handler, seen = scripted(slow_503)
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, safety_margin=1.0, min_try_seconds=0.25)
    deadline_seconds = 6.0
    with pytest.raises(ServerError) as caught:
        send(make(handler, clock, policy=policy, max_attempts=10), clock, deadline_seconds=deadline_seconds)
    # try 1 (t=0..1), sleep 1 -> try 2 (t=2..3), sleep 2 would end at 5 > 6 - 1 - 0.25: stop.
    assert len(seen) == 2
    assert clock.sleeps == [1.0]
    assert clock.now <= deadline_seconds - policy.safety_margin
    assert "would pass the deadline" in caught.value.message


def test_no_time_left_means_no_call_and_a_timeout() -> None:
    clock = FakeClock()
    handler, seen = scripted(ok())
    with pytest.raises(ProviderTimeoutError) as caught:
        send(make(handler, clock), clock, deadline_seconds=1.1)  # 1 s margin leaves 0.1 s < 0.25 s
    assert seen == []
    assert "no time left" in caught.value.message


def test_a_body_that_trickles_past_the_try_budget_times_out() -> None:
    clock = FakeClock()

    class Trickle(httpx.SyncByteStream):
        def __iter__(self):
            for _ in range(5):
                clock.now += 1.0
                yield b" "

    handler, seen = scripted(lambda request: httpx.Response(200, stream=Trickle()))
    with pytest.raises(ProviderTimeoutError):
        send(make(handler, clock, timeout=2.5, max_attempts=1), clock)
    assert len(seen) == 1


# ---------------------------------------------------------------------------------------------------
# Vendor hooks


def test_body_status_wins_over_http_200() -> None:
    """ImageRecognize style: HTTP 200 carrying {"status": 402, ...}."""
    clock = FakeClock()
    profile = VendorProfile(
        provider="imagerecognize",
        body_status=lambda body: body.get("status") if isinstance(body.get("status"), int) else None,
        status_kinds={300: "bad_response", 412: "bad_image"},
    )
    handler, seen = scripted(
        httpx.Response(200, json={"status": 402, "status_message": "Quota limit reached", "data": None})
    )
    with pytest.raises(QuotaExhaustedError) as caught:
        send(make(handler, clock, profile=profile), clock)
    assert len(seen) == 1
    assert "HTTP 200, body status 402" in caught.value.message
    assert 'the vendor said: "Quota limit reached"' in caught.value.message


def test_body_failed_hook_turns_a_200_into_a_retried_bad_response() -> None:
    clock = FakeClock()
    profile = VendorProfile(provider="imagga", body_failed=lambda body: body["status"]["type"] != "success")
    failed = httpx.Response(200, json={"status": {"text": "could not process", "type": "error"}})
    handler, seen = scripted(failed, ok())
    response = send(make(handler, clock, profile=profile), clock)
    assert len(seen) == 2
    assert response.attempts == 2


def test_a_hook_that_trips_over_a_body_is_not_a_crash() -> None:
    clock = FakeClock()
    profile = VendorProfile(provider="acme", body_failed=lambda body: body["missing"]["deeper"] == 1)
    handler, _ = scripted(ok())
    assert send(make(handler, clock, profile=profile), clock).status_code == 200


def test_message_names_provider_status_and_what_to_do() -> None:
    clock = FakeClock()
    handler, _ = scripted(httpx.Response(401, json={"status": {"text": "Invalid credentials", "type": "error"}}))
    with pytest.raises(AuthError) as caught:
        send(make(handler, clock), clock)
    assert caught.value.message == (
        'acme: authentication failed (HTTP 401): check api_key in the provider secret; the vendor said: "Invalid '
        'credentials"'
    )
    assert caught.value.provider == "acme"


# ---------------------------------------------------------------------------------------------------
# Secrets


def test_no_secret_in_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    echo = {"status": {"text": f"bad key {KEY}:{SECRET}, header was Basic {TOKEN}", "type": "error"}}
    handler, seen = scripted(
        httpx.ConnectError(f"failed for https://api.example.test/v2/tags?apikey={KEY}"),
        httpx.Response(401, json=echo),
    )
    with caplog.at_level(logging.DEBUG, logger="image_analysis"), pytest.raises(AuthError) as caught:
        send(make(handler, clock), clock, params={"apikey": KEY})
    assert len(seen) == 2
    assert seen[0].headers["Authorization"] == f"Basic {TOKEN}"  # it was sent...
    text = caught.value.message + "\n" + caplog.text
    assert caplog.records, "the retry was logged"
    for secret in (KEY, SECRET, TOKEN):
        assert secret not in text  # ...but never shown
    assert "?apikey" not in text
    assert "HTTP 401" in caught.value.message


# ---------------------------------------------------------------------------------------------------
# The shared client


def test_shared_client_is_one_per_container_with_explicit_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_http, "_shared", None)  # restored afterwards; other tests keep theirs
    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "HTTP_TIMEOUT_SECONDS": "4"})
    first = shared_client(settings)
    try:
        assert shared_client(settings) is first
        assert first.timeout == httpx.Timeout(4.0)
        assert first.follow_redirects is False
        assert first.headers["User-Agent"].startswith("image-analysis/")
        first.close()
        assert shared_client(settings) is not first  # a closed client is replaced, not reused
    finally:
        vendor_http.close_shared_client()


def test_from_deps_takes_timeouts_and_attempts_from_settings() -> None:
    from image_analysis.credentials import Credentials
    from image_analysis.providers.base import ProviderDeps

    settings = Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "HTTP_TIMEOUT_SECONDS": "7"})
    transport_client = new_client(transport=httpx.MockTransport(lambda r: ok()))
    deps = ProviderDeps(settings=settings, credentials=Credentials(settings), http=transport_client)
    client = VendorClient.from_deps(VendorProfile(provider="acme"), deps, "https://api.example.test/")
    assert client.timeout_seconds == 7.0
    assert client.max_attempts == settings.max_attempts_per_call == 3
    assert client.base_url == "https://api.example.test"
    body = json.loads(json.dumps(client.send("GET", "/x", deadline=Deadline(30)).body))
    assert body["status"]["type"] == "success"
