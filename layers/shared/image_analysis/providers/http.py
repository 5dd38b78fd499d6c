"""The one HTTP layer every vendor adapter uses: a shared client, retries, and the status-code mapping.

    shared_client(settings)          one ``httpx.Client`` per container, reused across invocations
    VendorProfile                    what differs per vendor: name, hints, status overrides, body hooks
    VendorClient.send(...)           one logical request: tries, backoff, deadline, errors mapped once
      -> VendorResponse              status, headers, parsed JSON body, tries used

What is retried (inside the invocation, within ``deadline.remaining()`` minus a safety margin):
HTTP 429, 408 and 5xx, timeouts, dropped or refused connections, malformed bodies. Everything else is
final at once: 401/403 auth, 402 quota, 413/415/422 bad image, any other 4xx or 3xx bad response
(raised with ``retryable`` False on the instance: the same request would be refused again).
Delays are capped exponential backoff with full jitter (``random() * min(cap, base * 2**n)``); a
``Retry-After`` (seconds or an HTTP date) is a floor, and one longer than the policy allows or than the
time left ends the call at once (a 429 keeps the wait in ``RateLimitedError.retry_after``), so that the
caller hands the record back to the queue instead of sleeping in a paid function.

Error messages name the provider, the HTTP status and what to do. Keys, auth headers and query strings
never reach a message or a log line: the vendor's own error text is quoted only after the known secrets,
``Basic``/``Bearer`` tokens and query strings are scrubbed from it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random as _random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal

import httpx

from image_analysis import __version__
from image_analysis.errors import (
    AuthError,
    BadImageError,
    BadResponseError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExhaustedError,
    RateLimitedError,
    ServerError,
)

if TYPE_CHECKING:
    from image_analysis.providers.base import Deadline, ProviderDeps
    from image_analysis.settings import Settings

logger = logging.getLogger(__name__)

ErrorKind = Literal["auth", "quota_exhausted", "rate_limited", "bad_image", "server_error", "bad_response", "timeout"]

# The generic mapping, defined once. 5xx -> server_error and any other 4xx/3xx -> bad_response are
# applied by ``kind_for_status``; a vendor changes single codes through ``VendorProfile.status_kinds``.
DEFAULT_STATUS_KINDS: Mapping[int, ErrorKind] = {
    401: "auth",
    403: "auth",
    402: "quota_exhausted",
    408: "timeout",
    413: "bad_image",
    415: "bad_image",
    422: "bad_image",
    429: "rate_limited",
}

# Kinds that another try of the same request can fix. A 4xx "bad_response" is not among the retried
# statuses: the same request would be refused again.
RETRIED_KINDS: frozenset[ErrorKind] = frozenset({"rate_limited", "timeout", "server_error"})

ERROR_CLASSES: Mapping[ErrorKind, type[ProviderError]] = {
    "auth": AuthError,
    "quota_exhausted": QuotaExhaustedError,
    "rate_limited": RateLimitedError,
    "bad_image": BadImageError,
    "server_error": ServerError,
    "bad_response": BadResponseError,
    "timeout": ProviderTimeoutError,
}

_TITLES: Mapping[ErrorKind, str] = {
    "auth": "authentication failed",
    "quota_exhausted": "quota exhausted",
    "rate_limited": "rate limited",
    "bad_image": "the image was refused",
    "server_error": "server error",
    "bad_response": "unexpected response",
    "timeout": "timed out",
}

# Per kind, plus "refused" (a 4xx/3xx bad_response) and "unsendable" (a base URL httpx cannot use).
DEFAULT_HINTS: Mapping[str, str] = {
    "auth": "check the api_key in the provider secret",
    "quota_exhausted": "the plan's quota is used up: top it up or route this capability to another provider",
    "rate_limited": "lower the concurrency or raise the plan's rate limit; the record will be retried",
    "bad_image": "the vendor cannot analyze this image; it is not retried",
    "server_error": "the vendor is failing; the record will be retried later",
    "bad_response": "the answer does not match the vendor's documentation; the record will be retried",
    "refused": "the vendor refused the request; check the base URL and the adapter's request; it is not retried",
    "unsendable": "fix the setting; it is not retried",
    "timeout": "raise HTTP_TIMEOUT_SECONDS or the function timeout; the record will be retried",
}

USER_AGENT = f"image-analysis/{__version__}"


def kind_for_status(status: int, overrides: Mapping[int, ErrorKind] | None = None) -> ErrorKind | None:
    """The error kind for an HTTP (or body) status code; ``None`` for success (2xx)."""
    if overrides and status in overrides:
        return overrides[status]
    if 200 <= status < 300:
        return None
    if status in DEFAULT_STATUS_KINDS:
        return DEFAULT_STATUS_KINDS[status]
    if status >= 500:
        return "server_error"
    return "bad_response"


# ---------------------------------------------------------------------------------------------------
# The shared client


_shared: httpx.Client | None = None
_shared_lock = threading.Lock()


def new_client(
    timeout_seconds: float = 10.0,
    *,
    transport: httpx.BaseTransport | None = None,
    # Up to ten records at once, each calling several vendors: room for all of them without queueing.
    max_connections: int = 64,
) -> httpx.Client:
    """A client with explicit timeouts, no redirects, and no environment lookups (proxies, netrc).

    ``trust_env=False`` so that a ``.netrc`` or proxy variable can neither add credentials nor route
    vendor traffic elsewhere. Vendors do not redirect; a 3xx is reported, never followed.
    """
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


def shared_client(settings: Settings | None = None, *, timeout_seconds: float | None = None) -> httpx.Client:
    """The container's one client, created on first use and kept across invocations (warm starts).

    Per-try timeouts are passed with every request, so the first caller's settings only set the default.
    httpx clients are thread-safe; providers running concurrently share the connection pool.
    """
    global _shared
    with _shared_lock:
        if _shared is None or _shared.is_closed:
            default = settings.http_timeout_seconds if settings else (timeout_seconds or 10.0)
            _shared = new_client(default)
        return _shared


def close_shared_client() -> None:
    """Close and forget the shared client (tests; a container never needs it)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
        _shared = None


# ---------------------------------------------------------------------------------------------------
# Vendor profile and policy


def default_error_text(body: Any) -> str | None:
    """The vendor's human-readable reason from common error shapes, if any.

    Imagga ``{"status": {"text": ...}}``, ImageRecognize ``{"status_message": ...}``, CoreViz
    ``{"error": ...}``/``{"message": ...}``, FastAPI ``{"detail": ...}``.
    """
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if isinstance(status, dict) and isinstance(status.get("text"), str) and status["text"].strip():
        return status["text"]
    for key in ("status_message", "error", "message", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, dict | list) and value:
            return json.dumps(value)[:300]
    return None


@dataclass(frozen=True)
class VendorProfile:
    """What differs between vendors; everything else about HTTP is shared.

    ``status_kinds`` overrides single codes of the generic table (Imagga: 403 means a subscription limit,
    so quota). ``body_status`` returns a status code carried in a JSON body, which then wins over the
    HTTP one (ImageRecognize answers ``{"status": 401, ...}``). ``body_failed`` says a 2xx body still
    reports a failure (Imagga ``status.type != "success"``): that is a ``bad_response`` and retried, unless
    ``body_failure_kind`` names another kind for that body (ImageRecognize's ``data.error`` about the image
    is a ``bad_image``, never retried).
    ``hints`` say what to do, per kind; ``base_url_setting`` names the setting to fix for a bad URL.
    """

    provider: str
    hints: Mapping[str, str] = field(default_factory=dict)
    status_kinds: Mapping[int, ErrorKind] = field(default_factory=dict)
    body_status: Callable[[Any], int | None] | None = None
    body_failed: Callable[[Any], bool] | None = None
    body_failure_kind: Callable[[Any], ErrorKind | None] | None = None
    error_text: Callable[[Any], str | None] = default_error_text
    base_url_setting: str = ""

    def hint(self, kind: str) -> str:
        return self.hints.get(kind) or DEFAULT_HINTS[kind]


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between tries, and how close to the deadline a try may start.

    ``max_attempts`` ``None`` takes ``Settings.max_attempts_per_call``. ``safety_margin`` is kept free at
    the end of the invocation for the result write; no try starts and no sleep ends inside it.
    ``min_try_seconds`` is the shortest per-try timeout worth starting a try with.
    """

    max_attempts: int | None = None
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 20.0
    safety_margin: float = 1.0
    min_try_seconds: float = 0.25
    max_response_bytes: int = 5 * 1024 * 1024


@dataclass(frozen=True)
class VendorResponse:
    status_code: int
    headers: httpx.Headers
    body: Any
    attempts: int
    elapsed: float


class _TryFailed(Exception):
    """One try went wrong; ``kind`` decides whether another try may help."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        vendor_text: str | None = None,
        retry: bool | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.hint = hint
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.vendor_text = vendor_text
        self.retry = kind in RETRIED_KINDS if retry is None else retry


# "Basic <b64>", "Bearer <jwt>", "apikey=<key>": the value must look like a token (has a digit or + / =),
# so that prose such as "Basic authentication" survives.
_TOKEN = re.compile(
    r"(?i)\b(basic|bearer|token|apikey|api[_-]?key|x-api-key|authorization)([\s:=\"']+)"
    r"(?=[A-Za-z0-9._~+/=-]*[0-9+/=])[A-Za-z0-9._~+/=-]{6,}"
)
# A query string ("?apikey=..."): only when it has a key=value, so a question mark in prose survives.
_QUERY = re.compile(r"\?(?=[^\s\"'<>]*=)[^\s\"'<>]*")


class VendorClient:
    """Sends one vendor request with retries and maps every failure to the error tree.

    Built once per adapter; thread-safe (no per-call state). ``http`` None uses the container's shared
    client. Adapters pass auth with each call
    (``auth=httpx.BasicAuth(...)``, ``headers={"x-api-key": ...}``, a form field in ``data``) and the secret
    values in ``secrets=``, so that they are scrubbed from any text that could reach a message or a log.
    """

    def __init__(
        self,
        profile: VendorProfile,
        http: httpx.Client | None,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        max_attempts: int = 3,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.profile = profile
        self.policy = policy or RetryPolicy()
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max(1, self.policy.max_attempts or max_attempts)
        self._own_http = http
        self._default_timeout = timeout_seconds
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._wall_clock = wall_clock

    @classmethod
    def from_deps(cls, profile: VendorProfile, deps: ProviderDeps, base_url: str) -> VendorClient:
        """The adapter's client from its deps: the injected httpx client, else the shared one; timeouts
        and attempts from settings.

        Tests may put ``retry_policy``, ``clock``, ``sleep``, ``random`` and ``wall_clock`` in
        ``deps.extra`` to drive retries with a fake clock.
        """
        settings = deps.settings
        extra = deps.extra
        timing = {k: extra[k] for k in ("clock", "sleep", "random", "wall_clock") if k in extra}
        return cls(
            profile,
            deps.http,
            base_url,
            timeout_seconds=settings.http_timeout_seconds,
            max_attempts=settings.max_attempts_per_call,
            policy=extra.get("retry_policy") or RetryPolicy(base_delay=settings.retry_base_delay_seconds),
            **timing,
        )

    # -- the public call -------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        deadline: Deadline,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        secrets: Iterable[str] = (),
    ) -> VendorResponse:
        """One logical request to ``base_url + path``; a success comes back with its parsed JSON body.

        ``files`` values are ``(file name, bytes, mime)``: bytes, so every try sends the same body.
        Raises a ``ProviderError`` subclass; a 4xx ``BadResponseError`` has ``retryable`` False.
        """
        policy = self.policy
        secret_values = tuple(s for s in secrets if s and len(s) >= 4)
        shown_path = _scrub(path, secret_values)
        started = self._clock()
        last: _TryFailed | None = None
        stopped = ""
        attempt = 0
        while True:
            budget = deadline.remaining() - policy.safety_margin
            if budget < policy.min_try_seconds:
                stopped = "no time left for another try before the deadline" if last else ""
                break
            attempt += 1
            per_try = min(self.timeout_seconds, budget)
            try:
                return self._try_once(
                    method,
                    path,
                    per_try,
                    attempt,
                    started,
                    params,
                    data,
                    files,
                    json_body,
                    headers,
                    auth,
                    getattr(deadline, "meter", None),
                )
            except _TryFailed as failure:
                failure.detail = _scrub(failure.detail, secret_values)
                if failure.vendor_text:
                    failure.vendor_text = _scrub(failure.vendor_text, secret_values)
                last = failure
            if not last.retry or attempt >= self.max_attempts:
                break
            if last.retry_after is not None and last.retry_after > policy.max_retry_after:
                stopped = f"the vendor asked to wait {last.retry_after:.0f}s, longer than this call may wait"
                break
            delay = self._delay(attempt, last.retry_after)
            if delay + policy.min_try_seconds > deadline.remaining() - policy.safety_margin:
                stopped = f"waiting {delay:.1f}s more would pass the deadline"
                break
            logger.warning(
                "%s: %s %s failed (%s); retrying in %.2fs (try %d of %d)",
                self.profile.provider,
                method,
                shown_path,
                last.detail,
                delay,
                attempt + 1,
                self.max_attempts,
            )
            self._sleep(delay)
        raise self._error(last, attempt, deadline, shown_path, stopped)

    # -- one try ---------------------------------------------------------------------------------------

    def _try_once(
        self,
        method: str,
        path: str,
        per_try: float,
        attempt: int,
        started: float,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        auth: httpx.Auth | None,
        meter: Any = None,
    ) -> VendorResponse:
        try_started = self._clock()
        http = self._http()
        try:
            request = http.build_request(
                method,
                self.base_url + path,
                params=params,
                data=data,
                files=files,
                json=json_body,
                headers=headers,
                timeout=httpx.Timeout(per_try),
            )
            if meter is not None:
                # Every try is a request the vendor may bill; its body is what left the account.
                meter.record(int(request.headers.get("Content-Length") or 0))
            response = http.send(request, auth=auth or httpx.USE_CLIENT_DEFAULT, stream=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            setting = self.profile.base_url_setting or "the base URL"
            raise _TryFailed(
                "bad_response",
                f"{type(exc).__name__}: the request cannot be sent, check {setting}",
                retry=False,
                hint="unsendable",
            ) from None
        except httpx.TimeoutException as exc:
            raise _TryFailed("timeout", f"{type(exc).__name__}: no answer within {per_try:.1f}s") from None
        except httpx.TransportError as exc:
            raise _TryFailed("server_error", f"{type(exc).__name__}: {exc}") from None
        try:
            raw = self._read(response, per_try, try_started)
        finally:
            response.close()
        return self._interpret(response, raw, attempt, started)

    def _read(self, response: httpx.Response, per_try: float, try_started: float) -> bytes:
        """The body, read under the same per-try budget: a server that trickles bytes still times out."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.policy.max_response_bytes:
                    raise _TryFailed(
                        "bad_response", f"the answer is larger than {self.policy.max_response_bytes} bytes", retry=True
                    )
                chunks.append(chunk)
                if self._clock() - try_started > per_try:
                    raise _TryFailed("timeout", f"the answer took longer than {per_try:.1f}s to arrive")
        except httpx.TimeoutException as exc:
            raise _TryFailed("timeout", f"{type(exc).__name__}: the answer stalled") from None
        except (httpx.DecodingError, httpx.TransportError) as exc:
            raise _TryFailed("server_error", f"{type(exc).__name__}: the connection broke mid-answer") from None
        return b"".join(chunks)

    def _interpret(self, response: httpx.Response, raw: bytes, attempt: int, started: float) -> VendorResponse:
        status = response.status_code
        body, parse_error = _parse_json(raw)
        profile = self.profile
        effective = status
        if profile.body_status is not None and parse_error is None:
            carried = _safe_call(profile.body_status, body)
            if isinstance(carried, int) and not 200 <= carried < 300:
                effective = carried
        kind = kind_for_status(effective, profile.status_kinds)
        vendor_text = _safe_call(profile.error_text, body) if parse_error is None else None
        label = f"HTTP {status}" if effective == status else f"HTTP {status}, body status {effective}"
        if kind is not None:
            retry_after = _retry_after(response.headers.get("Retry-After"), self._wall_clock)
            detail = f"{label}: unexpected redirect, not followed" if 300 <= effective < 400 else label
            raise _TryFailed(
                kind,
                detail,
                status=effective,
                retry_after=retry_after,
                vendor_text=vendor_text,
            )
        if parse_error is not None:
            raise _TryFailed("bad_response", f"{label} with a body that is not JSON: {parse_error}", retry=True)
        if profile.body_failed is not None and _safe_call(profile.body_failed, body):
            named = _safe_call(profile.body_failure_kind, body) if profile.body_failure_kind is not None else None
            failure: ErrorKind = named if named in ERROR_CLASSES else "bad_response"
            raise _TryFailed(
                failure,
                f"{label} but the body reports a failure",
                vendor_text=vendor_text,
                retry=True if failure == "bad_response" else None,
            )
        return VendorResponse(
            status_code=status,
            headers=response.headers,
            body=body,
            attempts=attempt,
            elapsed=self._clock() - started,
        )

    # -- helpers ---------------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        """The injected client, or the container's shared one (looked up per try: it may be replaced)."""
        return self._own_http if self._own_http is not None else shared_client(timeout_seconds=self._default_timeout)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter over a capped exponential; ``Retry-After`` is a floor."""
        ceiling = min(self.policy.max_delay, self.policy.base_delay * (2 ** (attempt - 1)))
        delay = self._random() * ceiling
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _error(
        self, last: _TryFailed | None, attempts: int, deadline: Deadline, path: str, stopped: str
    ) -> ProviderError:
        provider = self.profile.provider
        if last is None:
            return ProviderTimeoutError(
                provider,
                f"timed out: no time left to call {path} ({deadline.remaining():.2f}s remaining, "
                f"{self.policy.safety_margin:.2f}s kept for the result); {self.profile.hint('timeout')}",
            )
        tries = f"; {attempts} tries" if attempts > 1 else ""
        refused = last.kind == "bad_response" and not last.retry
        hint = self.profile.hint(last.hint or ("refused" if refused else last.kind))
        message = f"{_TITLES[last.kind]} ({last.detail}{tries}): {hint}"
        if stopped:
            message += f"; stopped retrying: {stopped}"
        if last.vendor_text:
            text = " ".join(last.vendor_text.split())[:200]
            message += f'; the vendor said: "{text}"'
        cls = ERROR_CLASSES[last.kind]
        error = (
            RateLimitedError(provider, message, retry_after=last.retry_after)
            if cls is RateLimitedError
            else cls(provider, message)
        )
        if not last.retry and error.retryable:
            # A refused request (a 4xx, a bad URL) fails the same way next time: tell the pipeline.
            error.retryable = False  # type: ignore[misc]
        return error


def _scrub(text: str, secret_values: tuple[str, ...]) -> str:
    """Remove known secrets, auth tokens and query strings from text that may reach a message or log."""
    for secret in secret_values:
        text = text.replace(secret, "***")
    text = _TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _QUERY.sub("?***", text)


def _parse_json(raw: bytes) -> tuple[Any, str | None]:
    if not raw.strip():
        return None, "empty body"
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, type(exc).__name__


def _safe_call(hook: Callable[[Any], Any], body: Any) -> Any:
    """Vendor hooks read untrusted bodies; a hook that trips over one is a miss, not a crash."""
    try:
        return hook(body)
    except Exception:  # any failure of a body probe means "not found"
        return None


def _retry_after(value: str | None, wall_clock: Callable[[], float]) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - wall_clock())
