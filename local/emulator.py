"""The embedded local AWS: moto in server mode on a loopback port, reached over real HTTP.

One endpoint serves every service: DynamoDB requests reach the official DynamoDB Local through it
(``local.endpoint``), so a client given only ``--endpoint-url`` reads the same tables the function
writes. Only the SDK's own settings point clients at it (``AWS_ENDPOINT_URL``), exactly as the
contract says the deployed code is configured; no endpoint option of our own exists anywhere in the
application.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from local.endpoint import EndpointServer, PortInUse, Router

__all__ = ["LOCAL_CREDENTIALS", "REGION", "PortInUse", "add_route", "free_port", "local_aws", "remove_route", "routed"]

REGION = "us-east-1"
# moto accepts any credentials; fixed dummy values keep a developer's real ones out of the emulator.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_aws(port: int | None = None, host: str = "127.0.0.1", dynamodb: str = "auto") -> Iterator[str]:
    """Start moto's server in this process; set the SDK environment to it; stop and restore on exit.

    ``dynamodb``: ``local`` runs the official DynamoDB Local and fails if it cannot; ``moto`` keeps
    DynamoDB in moto; ``auto`` prefers DynamoDB Local and falls back to moto with a visible warning,
    except under ``CI=true``, where DynamoDB Local is required.
    """
    with ExitStack() as stack:
        endpoint = stack.enter_context(_moto_server(port, host))
        if dynamodb != "moto":
            stack.enter_context(_dynamodb_local_or_fallback(required=dynamodb == "local" or _in_ci()))
        yield endpoint


# The routers of the emulators running in this process, innermost last.
_ROUTERS: list[Router] = []


def add_route(target_prefix: str, base_url: str) -> None:
    """Serve the AWS JSON API named ``target_prefix`` (``X-Amz-Target``) from ``base_url`` on the endpoint."""
    if not _ROUTERS:
        raise RuntimeError("no local emulator is running")
    _ROUTERS[-1].route(target_prefix, base_url)


def remove_route(target_prefix: str) -> None:
    if _ROUTERS:
        _ROUTERS[-1].unroute(target_prefix)


def routed(target_prefix: str) -> bool:
    """Whether the running emulator's endpoint hands ``target_prefix`` to a server of its own."""
    return bool(_ROUTERS) and target_prefix in _ROUTERS[-1].routes()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@contextmanager
def _dynamodb_local_or_fallback(required: bool) -> Iterator[None]:
    from local.dynamodb_local import DynamoDBLocalUnavailable, dynamodb_local

    try:
        context = dynamodb_local()
        url = context.__enter__()
    except DynamoDBLocalUnavailable as exc:
        if required:
            raise
        warnings.warn(f"DynamoDB Local unavailable ({exc}); DynamoDB falls back to moto", stacklevel=3)
        print(f"WARNING: DynamoDB Local unavailable ({exc}); using moto's DynamoDB instead", file=sys.stderr)
        yield
        return
    # The one endpoint serves DynamoDB too: what a client of the endpoint reads is what the function wrote.
    for prefix in ("DynamoDB_20120810", "DynamoDBStreams_20120810"):
        add_route(prefix, url)
    try:
        yield
    finally:
        for prefix in ("DynamoDB_20120810", "DynamoDBStreams_20120810"):
            remove_route(prefix)
        context.__exit__(None, None, None)


@contextmanager
def _moto_server(port: int | None, host: str) -> Iterator[str]:
    # The emulator's request log would drown the demo's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = EndpointServer(host, port or 0)  # raises PortInUse at once
    server.start()
    _ROUTERS.append(server.router)
    endpoint = f"http://127.0.0.1:{server.port}"
    saved = {name: os.environ.get(name) for name in (*LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        _ROUTERS.remove(server.router)
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
