"""ROUTING: which provider answers which capability, with an ordered fallback.

``labels=imagga,imagerecognize;moderation=imagga,aiornot;ai_generated=builtin,aiornot`` means: ask
Imagga for labels and, if it fails or is out of quota, ImageRecognize; and so on. Without ROUTING,
every provider in PROVIDERS runs and their answers are merged.
"""

from __future__ import annotations

from collections.abc import Iterable

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
