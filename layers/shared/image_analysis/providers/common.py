"""Small pieces every vendor adapter needs the same way: settings parsing, opaque names, payload models."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict


class VendorPayload(BaseModel):
    """Base of the private models vendor answers are parsed into: fields may be added at any time."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


def base_url(raw: str, setting: str, path: str) -> str:
    """``<VENDOR>_BASE_URL`` is ``scheme://host[:port]`` only; the adapter appends the documented path."""
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
