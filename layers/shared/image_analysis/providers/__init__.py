"""Registry of providers: id -> "module:Class", imported only when configured (cold start)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from image_analysis.providers.base import Provider

REGISTRY: dict[str, str] = {
    "builtin": "image_analysis.providers.builtin:BuiltinProvider",
    "imagga": "image_analysis.providers.imagga:ImaggaProvider",
    "imagerecognize": "image_analysis.providers.imagerecognize:ImageRecognizeProvider",
    "coreviz": "image_analysis.providers.coreviz:CoreVizProvider",
    "aiornot": "image_analysis.providers.aiornot:AiOrNotProvider",
    "imageseo": "image_analysis.providers.imageseo:ImageSeoProvider",
    "rekognition": "image_analysis.providers.rekognition:RekognitionProvider",
}


def provider_class(name: str) -> type[Provider]:
    try:
        target = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown provider {name!r}; known providers: {known}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
