"""A local stand-in for the vendor APIs: saved real answers, documented rules, injected faults.

    from local.sandbox import FaultPlan, VendorSandbox

    sandbox = VendorSandbox("imagga")               # credentials sandbox-key / sandbox-secret
    with sandbox as base_url:                        # http://127.0.0.1:<free port>
        sandbox.faults.enqueue("unavailable")        # the next request gets a 503
        ...

``python -m local.sandbox --port 8765`` serves one in the foreground for a demo.

Adding a vendor: one module ``local/sandbox/vendors/<vendor>.py`` with a ``SandboxVendor`` subclass
(``name``, ``credential_fields``, ``default_credentials``, ``default_responses`` naming files in
``tests/fixtures/<vendor>/``; ``routes()`` returning ``Route.of(name, "GET POST", r"/path", handler)``;
``authenticate()``; ``error(status, text)`` in the vendor's documented error shape; ``error_text()``),
then one line in ``local/sandbox/vendors/__init__.py``. Quote the vendor document next to each rule.
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
