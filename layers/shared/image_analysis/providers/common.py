"""Small pieces every vendor adapter needs the same way: settings parsing, opaque names, payload models."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from image_analysis.errors import AuthError, BadResponseError
from image_analysis.structs import checked, refuse_non_finite

if TYPE_CHECKING:
    from image_analysis.credentials import Credentials


class VendorPayload(msgspec.Struct, kw_only=True):
    """Base of the private models vendor answers are parsed into (with ``parse``): fields may be added at
    any time and are ignored; numbers may come as strings (v1-era answers), read in msgspec's lax mode."""


# What ``parse`` raises when a payload does not fit its model.
PayloadError = msgspec.ValidationError


def parse[M](payload: Any, model: type[M]) -> M:
    """Decoded JSON read into a private payload model; ``PayloadError`` when it does not fit.

    Not-a-number and infinity are refused in whatever the model reads (the rest of the body is not
    looked at): they can be neither stored nor compared with a threshold."""
    parsed = msgspec.convert(payload, model, strict=False)
    refuse_non_finite(msgspec.to_builtins(parsed))
    return parsed


def aliased(payload: Any, names: Mapping[str, tuple[str, ...]]) -> Any:
    """A vendor object with each field under the first of its accepted spellings that is present
    (``names``: field -> spellings, the field's own name among them); other values pass through."""
    if not isinstance(payload, dict):
        return payload
    out = {k: v for k, v in payload.items() if not any(k in spellings for spellings in names.values())}
    for field, spellings in names.items():
        for spelling in spellings:
            if spelling in payload:
                out[field] = payload[spelling]
                break
    return out


_CHANGED = "; the API may have changed"


def _located(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's "Expected `float`, got `str` - at `$.tags[0].confidence`" as ("tags.0.confidence", what)."""
    text, _, at = str(exc).partition(" - at `")
    path = at.rstrip("`").removeprefix("$").lstrip(".")
    return re.sub(r"\[(\d+)\]", r".\1", path).lstrip("."), text


def unexpected_payload(
    provider: str, exc: msgspec.ValidationError, context: str = "", what: str = "answer", where: str = "body"
) -> BadResponseError:
    """A vendor body that does not fit its payload model: where and how, in one message for every vendor."""
    at, kind = _located(exc)
    lead = f"{context}: " if context else ""
    return BadResponseError(provider, f"{lead}unexpected {what} at {at or where} ({kind}){_CHANGED}")


def fitted[T](provider: str, value: T, context: str = "") -> T:
    """What a normalizer made (house models, lists of them, a tuple of those), checked against the house
    models (``structs.checked``), which check nothing when built: a value they refuse (out of range, NaN)
    is a bad response, not a crash."""
    try:
        for part in value if isinstance(value, tuple) else (value,):
            checked(part)
    except PayloadError as exc:
        raise unfit_result(provider, exc, context) from None
    return value


def guarded[**P, R](provider: str, context: str = "") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A normalizer whose result goes through ``fitted``."""

    def wrap(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            return fitted(provider, func(*args, **kwargs), context)

        return inner

    return wrap


def unfit_result(provider: str, exc: msgspec.ValidationError, context: str = "") -> BadResponseError:
    """A vendor value that parsed but does not fit the house result model (e.g. a confidence out of range)."""
    lead = f"{context}: " if context else ""
    at, kind = _located(exc)
    where = f" at {at}" if at else ""
    return BadResponseError(provider, f"{lead}a value does not fit the result model{where} ({kind}){_CHANGED}")


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
