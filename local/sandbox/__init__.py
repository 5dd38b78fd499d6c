"""A local stand-in for the vendor APIs: documented rules and options, answers, injected faults.

    from local.sandbox import FaultPlan, VendorSandbox

    sandbox = VendorSandbox("imagga")               # credentials sandbox-key / sandbox-secret
    with sandbox as base_url:                        # http://127.0.0.1:<free port>
        sandbox.faults.enqueue("unavailable")        # the next request gets a 503
        ...

Answers (``base.py``): by default made up from the pixels of the image sent, in the shape of the saved
real answers, so that different images get different answers. **Those scores are a made-up function of
the pixels (``look.py``, ``scores.py``), not a model.** ``VendorSandbox("imagga", answers="saved")``
serves the saved real answers from ``tests/fixtures/<vendor>/`` instead (less what the request's
documented options leave out), and so does any route given a file with ``set_response``.

``python -m local.sandbox --port 8765`` serves one in the foreground for a demo.

Adding a vendor: one module ``local/sandbox/vendors/<vendor>.py`` with a ``SandboxVendor`` subclass
(``name``, ``credential_fields``, ``default_credentials``, ``default_responses`` naming files in
``tests/fixtures/<vendor>/``; ``routes()`` returning ``Route.of(name, "GET POST", r"/path", handler)``
whose handlers answer with ``made_up(...)`` when ``image_driven(route)`` and with ``saved(route)`` /
``saved_filtered(route, edit)`` otherwise; ``authenticate()``; ``error(status, text)`` in the vendor's
documented error shape; ``error_text()``), then one line in ``local/sandbox/vendors/__init__.py``.
Quote the vendor document next to each rule, and mark an answer shape no document shows with
``.assumed()``.
"""

from local.sandbox.base import Route, SandboxRequest, SandboxResponse, SandboxVendor, Upload
from local.sandbox.faults import Fault, FaultPlan, Faults
from local.sandbox.server import Exchange, VendorSandbox

__all__ = [
    "Exchange",
    "Fault",
    "FaultPlan",
    "Faults",
    "Route",
    "SandboxRequest",
    "SandboxResponse",
    "SandboxVendor",
    "Upload",
    "VendorSandbox",
]
