"""ROUTING: which provider answers which capability, with an ordered fallback.

``labels=imagga,imagerecognize;moderation=imagga,aiornot;ai_generated=builtin,aiornot`` means: ask
Imagga for labels and, if it fails or is out of quota, ImageRecognize; and so on. Without ROUTING,
every provider in PROVIDERS runs and their answers are merged.

A route may name only providers whose configured adapter has that capability switched on (Imagga's
faces need ``faces`` in ``IMAGGA_ENDPOINTS``, AI or Not's deepfake needs it in ``AIORNOT_ONLY``, ...).
Anything else is refused when the function starts (``check_routes``), naming the provider and the
setting to change: a route that can never be answered is a configuration mistake, and falling through
to the next provider would quietly pay another vendor for every image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from image_analysis.providers.base import Provider

ROUTABLE = (
    "labels",
    "moderation",
    "colors",
    "objects",
    "faces",
    "celebrities",
    "text",
    "alt_texts",
    "classification",
    "ai_generated",
    "deepfake",
    "quality",
)

Routes = dict[str, tuple[str, ...]]


def parse_routing(raw: str, known_providers: Iterable[str]) -> Routes:
    known = set(known_providers)
    routes: Routes = {}
    for part in raw.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        capability, sep, chain = part.partition("=")
        capability = capability.strip().lower()
        if not sep or not chain.strip():
            raise ValueError(f"ROUTING entry {part.strip()!r} is not capability=provider[,fallback...]")
        if capability not in ROUTABLE:
            raise ValueError(f"ROUTING names unknown capability {capability!r}; known: {', '.join(ROUTABLE)}")
        providers = tuple(dict.fromkeys(p.strip().lower() for p in chain.split(",") if p.strip()))
        unknown = [p for p in providers if p not in known]
        if unknown:
            raise ValueError(f"ROUTING names unknown provider(s) {', '.join(unknown)} for {capability}")
        if capability in routes:
            raise ValueError(f"ROUTING names {capability!r} twice")
        routes[capability] = providers
    return routes


def providers_in(routes: Routes) -> list[str]:
    return list(dict.fromkeys(p for chain in routes.values() for p in chain))


def enabled_capabilities(provider: Provider) -> frozenset[str]:
    """What the configured adapter has switched on; an adapter without options offers all it declares."""
    return frozenset(getattr(provider, "enabled", provider.capabilities))


def check_routes(routes: Routes, providers: Mapping[str, Provider]) -> None:
    """Refuse a route to a provider that cannot answer it as configured: a ValueError naming the fix."""
    for capability, chain in routes.items():
        for name in chain:
            provider = providers.get(name)
            if provider is None:
                raise ValueError(f"ROUTING names {name} for {capability}, but {name} is not configured")
            if capability not in provider.capabilities:
                offered = ", ".join(sorted(c for c in provider.capabilities if c in ROUTABLE))
                raise ValueError(
                    f"ROUTING asks {name} for {capability}, but {name} does not offer {capability} "
                    f"(it offers {offered}): route {capability} to a provider that does"
                )
            enabled = enabled_capabilities(provider)
            if capability not in enabled:
                setting = provider.enabled_by or f"the {name.upper()}_* settings"
                on = ", ".join(sorted(c for c in enabled if c in ROUTABLE)) or "nothing routable"
                raise ValueError(
                    f"ROUTING asks {name} for {capability}, but {name} has it switched off (it answers {on}): "
                    f"change {setting} to switch {capability} on, or take {name} out of the {capability} chain"
                )
