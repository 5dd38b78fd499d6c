"""Small pieces every vendor adapter needs the same way: settings parsing, opaque names, payload models."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from image_analysis.errors import AuthError, BadResponseError

if TYPE_CHECKING:
    from image_analysis.credentials import Credentials


class VendorPayload(BaseModel):
    """Base of the private models vendor answers are parsed into: fields may be added at any time."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


_CHANGED = "; the API may have changed"


def unexpected_payload(
    provider: str, exc: ValidationError, context: str = "", what: str = "answer", where: str = "body"
) -> BadResponseError:
    """A vendor body that does not fit its payload model: where and how, in one message for every vendor."""
    first = exc.errors()[0]
    at = ".".join(str(p) for p in first.get("loc", ())) or where
    lead = f"{context}: " if context else ""
    return BadResponseError(provider, f"{lead}unexpected {what} at {at} ({first.get('type')}){_CHANGED}")


def unfit_result(provider: str, exc: ValidationError, context: str = "") -> BadResponseError:
    """A vendor value that parsed but does not fit the house result model (e.g. a confidence out of range)."""
    lead = f"{context}: " if context else ""
    kind = exc.errors()[0].get("type")
    return BadResponseError(provider, f"{lead}a value does not fit the result model ({kind}){_CHANGED}")


# Plain http only to this machine: a local sandbox or a stand-in for the vendor in tests.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def base_url(raw: str, setting: str, path: str) -> str:
    """``<VENDOR>_BASE_URL`` is ``scheme://host[:port]`` only; the adapter appends the documented path.

    The scheme must be https: keys and images travel in these requests. Plain http is accepted for a
    loopback host alone (127.0.0.1, ::1, localhost), for local sandboxes."""
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{setting} must be scheme://host[:port] only (the adapter adds {path}), got {raw!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(
            f"{setting} must use https (vendor keys and images travel in its requests); plain http is "
            f"only for a loopback host (127.0.0.1, ::1, localhost), got {raw!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def opaque_name(object_id: str) -> str:
    """The multipart file name: the opaque id as it is when it looks like one, else a hash of it."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,128}", object_id):
        return object_id
    return hashlib.sha256(object_id.encode()).hexdigest()[:32]


def int_setting(raw: str, name: str, low: int, high: int, default: int) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {raw!r}")
    return value


class ProviderKeys:
    """A vendor's keys, through ``Credentials``, asked for on every call and re-read when refused.

    ``Credentials`` keeps the secret for five minutes, so asking is cheap and a key changed in the secret
    is used within that time. A key rotated and revoked at once is picked up sooner: when the vendor
    answers with an auth error the keys are read again through ``Credentials.refresh``, past the secret's
    cache (at most once per provider in a short interval, however many refusals come in); if they
    changed, the call is made once more with the new ones. An error from reading the keys themselves (no
    entry, Secrets Manager down) is raised as it is.
    """

    def __init__(self, credentials: Credentials, provider: str, prefix: str, fields: tuple[str, ...]) -> None:
        self._credentials = credentials
        self._provider = provider
        self._prefix = prefix
        self._fields = fields

    def get(self) -> dict[str, str]:
        return dict(self._credentials.for_provider(self._provider, self._prefix, self._fields))

    def refresh(self) -> dict[str, str]:
        """The keys read past the secret's cache, for when the vendor refused the ones in use."""
        return dict(self._credentials.refresh(self._provider, self._prefix, self._fields))

    def call[T](self, attempt: Callable[[dict[str, str]], T]) -> T:
        """``attempt(keys)``; after an auth error, once more with re-read keys if they differ."""
        keys = self.get()
        try:
            return attempt(keys)
        except AuthError:
            fresh = self.refresh()
            if fresh == keys:  # not rotated yet: not sent again now
                raise
        return attempt(fresh)
