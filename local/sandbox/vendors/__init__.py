"""Sandboxed vendors: id -> "module:Class". Adding a vendor is one module here and one line below."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from local.sandbox.base import SandboxVendor

VENDORS: dict[str, str] = {
    "imagga": "local.sandbox.vendors.imagga:ImaggaSandbox",
    "imagerecognize": "local.sandbox.vendors.imagerecognize:ImageRecognizeSandbox",
    "coreviz": "local.sandbox.vendors.coreviz:CoreVizSandbox",
    "aiornot": "local.sandbox.vendors.aiornot:AiOrNotSandbox",
    "imageseo": "local.sandbox.vendors.imageseo:ImageSeoSandbox",
    "rekognition": "local.sandbox.vendors.rekognition:RekognitionSandbox",
}


def vendor_class(name: str) -> type[SandboxVendor]:
    try:
        target = VENDORS[name]
    except KeyError:
        raise ValueError(f"no sandbox for {name!r}; known: {', '.join(sorted(VENDORS))}") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
