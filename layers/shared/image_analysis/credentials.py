"""Provider keys: the environment (local use, tests) wins; otherwise the Secrets Manager secret.

The secret holds one JSON object keyed by provider id, e.g.
``{"imagga": {"api_key": "...", "api_secret": "..."}, "aiornot": {"api_key": "..."}}``.
It is read lazily, only for a provider that has no key in the environment, through Powertools
Parameters on a client with explicit timeouts. Keys never reach a log line or a result.

What was read is kept for ``SECRET_CACHE_SECONDS`` (five minutes, as the docs promise) by ``Credentials``
itself, on its injectable clock, and the vendor adapters ask it for their keys on every call: so a key
changed in the secret is in use within five minutes, even while the old one keeps working. A read after
that time goes past Powertools' own cache (``force_fetch``), so the two caches never add up.

A vendor that refuses a key may be ahead of the cache: the key was rotated in the secret a moment ago.
``Credentials.refresh`` then reads the secret past the cache (Powertools' ``force_fetch``), at most once
per provider every ``REFRESH_INTERVAL_SECONDS``, so that a key nobody has replaced yet does not turn every
refused call into a Secrets Manager call. Keys from the environment are never refreshed.

A secret that cannot be read *now* (throttled, 5xx, unreachable, timed out) is a transient error
(``rate_limited`` / ``server_error``: the record is retried); a missing secret, a missing entry, access
denied or a secret that is not JSON is ``auth`` for that provider alone.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from image_analysis.errors import AuthError, ProviderError, RateLimitedError, ServerError
from image_analysis.settings import Settings

SECRET_CACHE_SECONDS = 300
# Long enough that a stream of refusals costs one read per provider, short enough that an operator who has
# just rotated a key sees it used within the minute.
REFRESH_INTERVAL_SECONDS = 30

# ``fetch(arn)``, or ``fetch(arn, force_fetch=True)`` to read past the fetcher's cache when it has one.
SecretFetcher = Callable[..., dict[str, Any]]

# Reading the secret must never hold a record past its time: short timeouts, and the SDK's standard
# retries (which back off on throttling) within them.
SECRETS_CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 5,
    "retries": {"mode": "standard", "max_attempts": 3},
}
# Secrets Manager's answers that a later try can get past; anything else (no such secret, access denied,
# a key it cannot decrypt with) stays an auth error until someone fixes it.
_THROTTLED = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "Throttling"})
_SERVER = frozenset({"InternalServiceError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException"})


def secrets_client(session: Any = None) -> Any:
    """A Secrets Manager client with explicit timeouts (endpoints from the SDK's own settings)."""
    import boto3
    from botocore.config import Config

    return (session or boto3.session.Session()).client("secretsmanager", config=Config(**SECRETS_CLIENT_CONFIG))


def powertools_fetcher(client: Any = None) -> SecretFetcher:
    """The secret through Powertools Parameters (its cache, its JSON transform) on ``client``."""
    lock = threading.Lock()
    provider: list[Any] = []

    def fetch(arn: str, force_fetch: bool = False) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        with lock:
            if not provider:
                provider.append(SecretsProvider(boto3_client=client or secrets_client()))
        # A forced read also refills the cache, so every later read of the secret sees the new value.
        value = provider[0].get(arn, transform="json", max_age=SECRET_CACHE_SECONDS, force_fetch=force_fetch)
        if not isinstance(value, dict):
            raise ValueError("the provider secret is not a JSON object")
        return value

    return fetch


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (Powertools re-raises every SDK error as GetParameterError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def secret_error(provider: str, exc: BaseException) -> ProviderError:
    """Throttling, 5xx and network faults are transient (the record is retried); the rest is auth."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as SDKConnectionError

    for cause in _chain(exc):
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _THROTTLED or status == 429:
                return RateLimitedError(provider, f"reading the provider secret was throttled ({code or status})")
            if code in _SERVER or status >= 500:
                return ServerError(provider, f"Secrets Manager failed reading the provider secret ({code or status})")
            return AuthError(provider, f"cannot read the provider secret ({code or type(cause).__name__})")
        if isinstance(cause, SDKConnectionError | HTTPClientError | OSError):
            # Connect and read timeouts, refused and dropped connections: botocore's ConnectionError family.
            reason = type(cause).__name__
            return ServerError(provider, f"Secrets Manager unreachable reading the provider secret ({reason})")
    return AuthError(provider, f"cannot read the provider secret ({type(exc).__name__})")


class Credentials:
    def __init__(
        self,
        settings: Settings,
        fetch_secret: SecretFetcher | None = None,
        *,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        cache_seconds: float = SECRET_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._fetch_secret = fetch_secret or powertools_fetcher()
        # A fetcher without ``force_fetch`` keeps no cache of its own: every read of it is already fresh.
        self._forceable = _takes_force_fetch(self._fetch_secret)
        self._refresh_interval = refresh_interval
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._refreshed: dict[str, float] = {}
        # The secret as last read, and when (on ``clock``). One lock: threads that need it at once wait for
        # one read instead of each making their own.
        self._secret: dict[str, Any] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def for_provider(self, provider: str, prefix: str, fields: tuple[str, ...] = ("api_key",)) -> dict[str, str]:
        """The provider's entries, e.g. {"api_key": ..., "api_secret": ...}; AuthError when absent.

        From the secret as read at most ``cache_seconds`` ago: cheap enough to ask before every call."""
        return self._read(provider, prefix, fields, refresh=False)

    def refresh(self, provider: str, prefix: str, fields: tuple[str, ...] = ("api_key",)) -> dict[str, str]:
        """The provider's entries read past the secret's cache, for when the vendor refused the kept ones.

        At most one such read per provider every ``refresh_interval`` seconds (a failed one counts too);
        in between this is ``for_provider``, whose cache the last forced read refilled. Keys from the
        environment are returned as they are: nothing else could replace them.
        """
        return self._read(provider, prefix, fields, refresh=True)

    def _read(self, provider: str, prefix: str, fields: tuple[str, ...], *, refresh: bool) -> dict[str, str]:
        from_env = {f: self._settings.vendor(prefix, f.upper()) for f in fields}
        if all(from_env.values()):
            return from_env
        arn = self._settings.provider_secret_arn
        variables = " and ".join(f"{prefix}{f.upper()}" for f in fields)
        if not arn:
            raise AuthError(
                provider, self._hinted(f"no key: set {variables}, or put an entry {provider!r} in the provider secret")
            )
        try:
            secret = self._secret_value(arn, provider, refresh)
            entry = secret.get(provider) or {}
        except Exception as exc:  # unreadable now (throttled, unreachable: retried) or for good (auth)
            raise secret_error(provider, exc) from exc
        values = {f: str(entry.get(f, "")).strip() for f in fields}
        missing = [f for f, v in values.items() if not v]
        if missing:
            raise AuthError(
                provider,
                self._hinted(
                    f"the provider secret has no {', '.join(missing)} for {provider!r}: fill it in, or set {variables}"
                ),
            )
        return values

    def _hinted(self, message: str) -> str:
        """A local run adds how to go on without keys (``IMAGE_ANALYSIS_MISSING_KEY_HINT``, e.g. the sandbox)."""
        hint = self._settings.env.get("IMAGE_ANALYSIS_MISSING_KEY_HINT", "").strip()
        return f"{message}, {hint}" if hint else message

    def _secret_value(self, arn: str, provider: str, refresh: bool) -> dict[str, Any]:
        """The secret as kept, or read again: when kept longer than ``cache_seconds``, or for a refresh
        this provider may have now."""
        with self._lock:
            now = self._clock()
            kept = self._secret is not None and now - self._read_at < self._cache_seconds
            if kept and not (refresh and self._may_refresh(provider, now)):
                return self._secret  # type: ignore[return-value]
            # Past any cache the fetcher keeps: this read decides how old the keys in use may be.
            secret = self._fetch_secret(arn, force_fetch=True) if self._forceable else self._fetch_secret(arn)
            self._secret, self._read_at = secret, now
            return secret

    def _may_refresh(self, provider: str, now: float) -> bool:
        """True (and the time noted) when this provider's last forced read is old enough. Under the lock."""
        last = self._refreshed.get(provider)
        if last is not None and now - last < self._refresh_interval:
            return False
        self._refreshed[provider] = now
        return True


def _takes_force_fetch(fetch: SecretFetcher) -> bool:
    try:
        return "force_fetch" in inspect.signature(fetch).parameters
    except (TypeError, ValueError):  # a callable whose signature cannot be read: call it plainly
        return False
