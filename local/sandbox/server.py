"""The sandbox server: one vendor on 127.0.0.1, a free port, a background thread.

    sandbox = VendorSandbox("imagga", faults=FaultPlan(unavailable=0.1))
    with sandbox as base_url:            # e.g. http://127.0.0.1:54321, for IMAGGA_BASE_URL
        sandbox.faults.enqueue("unavailable", "ok")
        ...
        sandbox.exchanges                # every request with the status it got and the fault applied

Each request: latency -> the fault for it (script first, then the plan's rates) -> the vendor's own
checks and answer (made up from the image, or saved: ``answers=``, passed on to the vendor with any
other vendor option). Faults answer in the vendor's documented error shape.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from local.sandbox.base import SandboxRequest, SandboxResponse, SandboxVendor
from local.sandbox.faults import FaultPlan, Faults
from local.sandbox.vendors import vendor_class

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class Exchange:
    """One request as the sandbox saw it, logged on arrival and completed when answered."""

    request: SandboxRequest
    route: str | None
    fault: str
    status: int | None = None  # None: not answered yet, or the connection was dropped
    dropped: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sandbox: VendorSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs; every answer has a Content-Length
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        request = self._read_request()
        sandbox.handle(self, request)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_request(self) -> SandboxRequest:
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(headers.get("content-length") or 0))
        return SandboxRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def send(self, response: SandboxResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def drop(self) -> None:
        """Close the connection without a word: the client sees a disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)


class VendorSandbox:
    """A local stand-in for one vendor API, for tests, fault-injection runs and the demo."""

    def __init__(
        self,
        vendor: str | SandboxVendor = "imagga",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        verbose: bool = False,
        on_exchange: Callable[[Exchange], None] | None = None,
        **vendor_options: Any,
    ) -> None:
        self.vendor = vendor if isinstance(vendor, SandboxVendor) else vendor_class(vendor)(**vendor_options)
        self.faults = Faults(faults)
        self.verbose = verbose
        self._on_exchange = on_exchange
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []

    # -- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        server = _Server(self._address, _Handler)
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{self.vendor.name}", daemon=True
        )
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        """Serve in the foreground (the CLI)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests read -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[SandboxRequest]:
        with self._lock:
            return [e.request for e in self.exchanges]

    def statuses(self, path: str | None = None) -> list[int | None]:
        with self._lock:
            return [e.status for e in self.exchanges if path is None or e.request.path == path]

    def clear(self) -> None:
        with self._lock:
            self.exchanges.clear()

    # -- one request -----------------------------------------------------------------------------------

    def handle(self, handler: _Handler, request: SandboxRequest) -> None:
        plan = self.faults.plan
        fault = self.faults.next(request.path)
        route = self.vendor.route_for(request)
        exchange = Exchange(request, route[0].name if route else None, fault.kind)
        with self._lock:
            self.exchanges.append(exchange)
        if plan.latency:
            self._wait(plan.latency)
        if fault.kind == "slow":
            self._wait(fault.seconds or 0.0)
        if fault.kind == "drop" or self._stopping.is_set():
            exchange.dropped = True
            self._finished(exchange)
            handler.drop()
            return
        status = fault.http_status
        if status is not None:
            response = self.vendor.error(status, self.vendor.error_text(status))
            if fault.retry_after:
                response.headers["Retry-After"] = fault.retry_after
        else:
            response = self._answer(request, route)
            if fault.kind == "malformed":
                response = SandboxResponse(200, response.body[: max(1, len(response.body) // 2)], response.headers)
        exchange.status = response.status
        self._finished(exchange)
        # A client that gave up (a timeout test) is gone; there is nobody to tell.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send(response)

    def _answer(self, request: SandboxRequest, route: Any) -> SandboxResponse:
        vendor = self.vendor
        refused = vendor.authenticate(request)
        if refused is not None:
            return refused
        if route is None:
            return vendor.error(404, vendor.error_text(404))
        matched, match = route
        if request.method not in matched.methods:
            return vendor.error(405, vendor.error_text(405))
        return matched.handler(request, match)

    def _finished(self, exchange: Exchange) -> None:
        if self._on_exchange is not None:
            self._on_exchange(exchange)

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake up when the sandbox stops so that shutdown never hangs on a slow answer."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, 0.05))
