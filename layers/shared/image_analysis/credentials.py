"""Provider keys: the environment (local use, tests) wins; otherwise the Secrets Manager secret.

The secret holds one JSON object keyed by provider id, e.g.
``{"imagga": {"api_key": "...", "api_secret": "..."}, "aiornot": {"api_key": "..."}}``.
It is read lazily, only for a provider that has no key in the environment, through Powertools
Parameters (cached for ``SECRET_CACHE_SECONDS``). Keys never reach a log line or a result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from image_analysis.errors import AuthError
from image_analysis.settings import Settings

SECRET_CACHE_SECONDS = 300

SecretFetcher = Callable[[str], dict[str, Any]]


def _powertools_secret(arn: str) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, transform="json", max_age=SECRET_CACHE_SECONDS)
    if not isinstance(value, dict):
        raise ValueError("the provider secret is not a JSON object")
    return value


class Credentials:
    def __init__(self, settings: Settings, fetch_secret: SecretFetcher | None = None) -> None:
        self._settings = settings
        self._fetch_secret = fetch_secret or _powertools_secret

    def for_provider(self, provider: str, prefix: str, fields: tuple[str, ...] = ("api_key",)) -> dict[str, str]:
        """The provider's entries, e.g. {"api_key": ..., "api_secret": ...}; AuthError when absent."""
        from_env = {f: self._settings.vendor(prefix, f.upper()) for f in fields}
        if all(from_env.values()):
            return from_env
        arn = self._settings.provider_secret_arn
        if not arn:
            raise AuthError(
                provider, f"no key: set {prefix}API_KEY or put an entry {provider!r} in the provider secret"
            )
        try:
            entry = self._fetch_secret(arn).get(provider) or {}
        except Exception as exc:  # the secret itself is unreadable: an auth problem for this provider alone
            raise AuthError(provider, f"cannot read the provider secret ({type(exc).__name__})") from exc
        values = {f: str(entry.get(f, "")).strip() for f in fields}
        missing = [f for f, v in values.items() if not v]
        if missing:
            raise AuthError(provider, f"the provider secret has no {', '.join(missing)} for {provider!r}; fill it in")
        return values
