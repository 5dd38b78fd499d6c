"""The embedded local AWS: moto in server mode on a free loopback port, reached over real HTTP.

Only the SDK's own settings point clients at it (``AWS_ENDPOINT_URL``), exactly as the contract says
the deployed code is configured; no endpoint option of our own exists anywhere in the application.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

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
def local_aws(port: int | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """Start moto's server in this process; set the SDK environment to it; stop and restore on exit."""
    from moto.server import ThreadedMotoServer

    # The emulator's request log would drown the demo's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in (*LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
