"""``SANDBOX=1``: the configured vendors answer from the local vendor sandbox (``local.sandbox``).

Each HTTP vendor gets a sandbox on a free port and the function gets that vendor's own settings for
it (``<VENDOR>_BASE_URL`` and the keys the sandbox accepts). Rekognition, an AWS API, is reached
through the local endpoint: the sandbox is routed the requests whose ``X-Amz-Target`` names it.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TextIO

from local.emulator import add_route, remove_route


def start_sandboxes(stack: ExitStack, providers: list[str], out: TextIO | None = None) -> dict[str, str]:
    """Start a sandbox for each of ``providers`` that has one; the function's settings for them."""
    from local.sandbox import VendorSandbox
    from local.sandbox.vendors import VENDORS

    env: dict[str, str] = {}
    for provider in providers:
        if provider not in VENDORS:
            continue
        sandbox = VendorSandbox(provider)
        base_url = stack.enter_context(sandbox)
        target = getattr(sandbox.vendor, "aws_target_prefix", None)
        if target:
            add_route(target, base_url)
            stack.callback(remove_route, target)
        else:
            prefix = provider.upper() + "_"
            env[f"{prefix}BASE_URL"] = base_url
            for name, value in sandbox.vendor.credentials.items():
                env[f"{prefix}{name.upper()}"] = value
        if out is not None:
            print(f"  {provider} answers from the local sandbox on {base_url}", file=out, flush=True)
    return env
