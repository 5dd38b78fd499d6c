"""Typed configuration, read once per container from the environment the template sets."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import get_args

from image_analysis.models import HouseCategory
from image_analysis.providers import REGISTRY

DEFAULT_PROVIDERS = ("builtin",)
# ``<VENDOR>_*`` settings PROVIDER_OPTIONS may carry: every vendor's prefix (builtin has no settings).
VENDOR_PREFIXES = tuple(sorted(name.upper() + "_" for name in REGISTRY if name != "builtin"))
# Parts of a setting name that say it holds a credential: those belong in the provider secret.
_CREDENTIAL_WORDS = frozenset({"KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIALS"})


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name, default)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_providers(raw: str) -> tuple[str, ...]:
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    # builtin always runs: it supplies the image facts every result needs. It goes first unless PROVIDERS
    # names it elsewhere: the order is the merge's tie-break ("a tie goes to the provider named first").
    ordered = names if "builtin" in names else ["builtin", *names]
    return tuple(dict.fromkeys(ordered))


def parse_category_thresholds(raw: str) -> dict[str, float]:
    """``explicit:0.8,suggestive:0.95`` -> {"explicit": 0.8, "suggestive": 0.95} (house categories only;
    per provider label entries are ``parse_label_thresholds``'s).

    A misspelt category would silently never flag, and ``safe`` reaching a bar is no reason to flag
    nsfw, so both are refused.
    """
    return {name: value for name, value in _moderation_entries(raw) if isinstance(name, str)}


def parse_label_thresholds(raw: str) -> dict[tuple[str, str], float]:
    """``aiornot.nsfw:0.5,imagga.underwear:0.9`` -> {("aiornot", "nsfw"): 0.5, ...}: a bar for one provider's
    own label (its ``source_label``, compared without case), whatever house category it maps to."""
    return {name: value for name, value in _moderation_entries(raw) if isinstance(name, tuple)}


def _moderation_entries(raw: str) -> list[tuple[str | tuple[str, str], float]]:
    """Every ``MODERATION_THRESHOLDS`` entry: ``category:t`` or ``provider.source_label:t``."""
    flaggable = [c for c in get_args(HouseCategory) if c != "safe"]
    entries: list[tuple[str | tuple[str, str], float]] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, value = part.rpartition(":")
        if not sep or not name.strip():
            raise ValueError(
                f"MODERATION_THRESHOLDS entry {part!r} is not category:threshold or provider.source_label:threshold"
            )
        name = name.strip().lower()
        bar = _float({f"MODERATION_THRESHOLDS {name}": value}, f"MODERATION_THRESHOLDS {name}", 0.0)
        provider, dot, label = name.partition(".")
        if dot:
            if provider not in REGISTRY or provider == "builtin":
                vendors = ", ".join(n for n in REGISTRY if n != "builtin")
                raise ValueError(f"MODERATION_THRESHOLDS names provider {provider!r}; providers: {vendors}")
            if not label.strip():
                raise ValueError(f"MODERATION_THRESHOLDS entry {part!r} names no source label after {provider}.")
            entries.append(((provider, label.strip()), bar))
            continue
        if name not in flaggable:
            raise ValueError(
                f"MODERATION_THRESHOLDS names {name!r}; categories that can flag: {', '.join(flaggable)} "
                "(or provider.source_label, e.g. aiornot.nsfw)"
            )
        entries.append((name, bar))
    return entries


def apply_provider_options(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with the vendor settings of ``PROVIDER_OPTIONS`` added.

    ``PROVIDER_OPTIONS=IMAGGA_ENDPOINTS=tags,nsfw;AIORNOT_ONLY=ai_generated;IMAGGA_DAILY_CAP=1000`` (entries
    separated by ``;`` or new lines, so a value cannot hold a ``;``) lets one template parameter carry
    any ``<VENDOR>_*`` option. A non-empty environment variable of the same name wins. Keys and secrets
    are refused: they belong in the provider secret, never in plain configuration.
    """
    merged = dict(env)
    seen: set[str] = set()
    for part in re.split(r"[;\n]", env.get("PROVIDER_OPTIONS", "")):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or not name:
            raise ValueError(f"PROVIDER_OPTIONS entry {part.strip()[:40]!r} is not NAME=value")
        if not name.startswith(VENDOR_PREFIXES) or name in VENDOR_PREFIXES:
            raise ValueError(
                f"PROVIDER_OPTIONS sets vendor options only (names starting {', '.join(VENDOR_PREFIXES)}); "
                f"{name} is not one: set it as its own variable"
            )
        if _CREDENTIAL_WORDS & set(name.split("_")):
            # The value is not repeated: it may be the secret itself.
            raise ValueError(
                f"PROVIDER_OPTIONS must not hold keys or secrets ({name}): put them in the provider secret "
                "(PROVIDER_SECRET_ARN)"
            )
        if name in seen:
            raise ValueError(f"PROVIDER_OPTIONS sets {name} twice")
        seen.add(name)
        if not env.get(name, "").strip():
            merged[name] = value.strip()
    return merged


@dataclass(frozen=True)
class Settings:
    results_table: str
    alerts_topic_arn: str
    provider_secret_arn: str = ""
    # A bucket that never triggers analysis: prepared copies for URL-only vendors, oversized raw answers.
    artifacts_bucket: str = ""
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    routing: str = ""
    # Content cache and daily usage counters: tables of their own (empty: off).
    cache_table: str = ""
    cache_ttl_seconds: int = 30 * 86400
    usage_table: str = ""
    # What a permanent deletion of the object does to its result: delete the item, or keep a tombstone.
    on_delete: str = "delete"
    result_ttl_days: int = 0
    # Tag flagged objects (moderation=flagged, flags=...) so a bucket policy can deny reading them.
    quarantine_tags: bool = False
    # Skip paid AI detection when a signed C2PA manifest already proves the image AI-made.
    ai_skip_when_proven: bool = False
    nsfw_threshold: float = 0.8
    ai_generated_threshold: float = 0.8
    deepfake_threshold: float = 0.8
    moderation_thresholds: dict[str, float] = field(default_factory=dict)
    # Bars for one provider's own labels: {(provider, source label in lower case): threshold}.
    label_thresholds: dict[tuple[str, str], float] = field(default_factory=dict)
    max_object_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    raw_item_budget_bytes: int = 100_000
    # What a result item keeps (merge.Keep): each KB of an item is a write unit on every write.
    labels_max: int = 20
    labels_min_confidence: float = 0.3
    raw_answers: str = "flagged"
    http_timeout_seconds: float = 10.0
    max_attempts_per_call: int = 3
    # First backoff step between vendor tries; doubles per try (capped), with full jitter.
    retry_base_delay_seconds: float = 0.5
    # Objects of one batch processed at once, and the decoded bytes they may hold together (``memory``):
    # half the function's memory by default; the rest is the runtime, the libraries and what the
    # estimate leaves out.
    record_concurrency: int = 10
    batch_memory_budget_bytes: int = 512 * 1024 * 1024
    # Frames of an animation analyzed, and decoded at most to find them (contract: "Multi-frame images").
    frame_samples: int = 8
    frame_scan_limit: int = 300
    # Who may publish each alert, and whether it went out (a table of its own; empty: kept in memory,
    # for tests and local tools).
    alert_ledger_table: str = ""
    # Hash banks (PDQ): their table and snapshot bucket (empty: no banks), how often a running function
    # looks for changes, and whether a known_bad match skips the paid vendors.
    banks_table: str = ""
    banks_bucket: str = ""
    bank_poll_seconds: float = 30.0
    skip_vendors_on_match: bool = False
    # Everything else (vendor base URLs, local keys, vendor options) is read through ``env``.
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = apply_provider_options(os.environ if env is None else env)
        missing = [name for name in ("RESULTS_TABLE", "ALERTS_TOPIC_ARN") if not env.get(name)]
        if missing:
            raise ValueError(f"missing configuration: {', '.join(missing)}")
        return cls(
            results_table=env["RESULTS_TABLE"],
            alerts_topic_arn=env["ALERTS_TOPIC_ARN"],
            provider_secret_arn=env.get("PROVIDER_SECRET_ARN", ""),
            artifacts_bucket=env.get("ARTIFACTS_BUCKET", ""),
            providers=parse_providers(env.get("PROVIDERS", "builtin")),
            routing=env.get("ROUTING", "").strip(),
            cache_table=env.get("CACHE_TABLE", ""),
            cache_ttl_seconds=_int(env, "CACHE_TTL_SECONDS", 30 * 86400),
            usage_table=env.get("USAGE_TABLE", ""),
            on_delete=_choice(env, "ON_DELETE", ("delete", "tombstone"), "delete"),
            result_ttl_days=_int(env, "RESULT_TTL_DAYS", 0),
            quarantine_tags=env.get("QUARANTINE_TAGS", "").lower() in ("1", "true", "yes"),
            ai_skip_when_proven=env.get("AI_SKIP_WHEN_PROVEN", "").lower() in ("1", "true", "yes"),
            nsfw_threshold=_float(env, "NSFW_THRESHOLD", 0.8),
            ai_generated_threshold=_float(env, "AI_GENERATED_THRESHOLD", 0.8),
            deepfake_threshold=_float(env, "DEEPFAKE_THRESHOLD", 0.8),
            moderation_thresholds=parse_category_thresholds(env.get("MODERATION_THRESHOLDS", "")),
            label_thresholds=parse_label_thresholds(env.get("MODERATION_THRESHOLDS", "")),
            max_object_bytes=_int(env, "MAX_OBJECT_BYTES", 50 * 1024 * 1024),
            max_pixels=_int(env, "MAX_PIXELS", 100_000_000),
            http_timeout_seconds=float(env.get("HTTP_TIMEOUT_SECONDS", "10") or 10),
            max_attempts_per_call=_int(env, "HTTP_MAX_ATTEMPTS", 3),
            retry_base_delay_seconds=float(env.get("RETRY_BASE_DELAY_SECONDS", "0.5") or 0.5),
            record_concurrency=max(1, _int(env, "RECORD_CONCURRENCY", 10)),
            batch_memory_budget_bytes=_int(
                env, "BATCH_MEMORY_BUDGET_BYTES", _int(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 1024) * 1024 * 1024 // 2
            ),
            frame_samples=_bounded_int(env, "FRAME_SAMPLES", 8, 1, 64),
            labels_max=_bounded_int(env, "LABELS_MAX", 20, 0, 100),
            labels_min_confidence=_float(env, "LABELS_MIN_CONFIDENCE", 0.3),
            raw_answers=_choice(env, "RAW_ANSWERS", ("flagged", "all", "none"), "flagged"),
            frame_scan_limit=_bounded_int(env, "FRAME_SCAN_LIMIT", 300, 1, 10_000),
            alert_ledger_table=env.get("ALERT_LEDGER_TABLE", ""),
            banks_table=env.get("BANKS_TABLE", ""),
            banks_bucket=env.get("BANKS_BUCKET", ""),
            bank_poll_seconds=max(1.0, float(env.get("BANK_POLL_SECONDS", "30") or 30)),
            skip_vendors_on_match=env.get("SKIP_VENDORS_ON_MATCH", "").lower() in ("1", "true", "yes"),
            env=env,
        )

    def daily_cap(self, provider: str) -> int | None:
        return self._count(provider, "DAILY_CAP", low=0)

    def max_in_flight(self, provider: str) -> int | None:
        """``<VENDOR>_MAX_IN_FLIGHT``: analyses of that provider running at once in one container."""
        return self._count(provider, "MAX_IN_FLIGHT", low=1)

    def price_per_call(self, provider: str, default: float) -> float:
        """``<VENDOR>_PRICE_PER_CALL`` in US dollars per vendor request, else the adapter's declared price."""
        name = f"{provider.upper()}_PRICE_PER_CALL"
        raw = self.vendor(provider.upper() + "_", "PRICE_PER_CALL")
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{name} must be a price in US dollars, got {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a price of 0 or more US dollars, got {raw!r}")
        return value

    def _count(self, provider: str, setting: str, low: int) -> int | None:
        name = f"{provider.upper()}_{setting}"
        raw = self.vendor(provider.upper() + "_", setting)
        if not raw:
            return None
        value = _int({name: raw}, name, low)
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {raw!r}")
        return value

    def vendor(self, prefix: str, name: str, default: str = "") -> str:
        """A vendor setting such as ``IMAGGA_BASE_URL``: ``vendor("IMAGGA_", "BASE_URL", default)``."""
        return self.env.get(f"{prefix}{name}", "").strip() or default
