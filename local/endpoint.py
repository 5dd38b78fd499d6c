"""One local endpoint for every service: moto, with some AWS JSON APIs handed to servers of their own.

AWS JSON protocols name the API in the ``X-Amz-Target`` header (``DynamoDB_20120810.PutItem``,
``RekognitionService.DetectLabels``). The router sends a request whose target prefix has a route to
that server (DynamoDB Local, the Rekognition sandbox) and everything else to moto, so a client
configured with one ``--endpoint-url`` reaches them all, as it would reach AWS.

The server socket is bound in the caller's thread: a port in use is an error at once, not a thread
that dies unseen while the caller waits.
"""

from __future__ import annotations

import errno
import http.client
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Headers that describe one connection, never forwarded (RFC 9110, section 7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


class PortInUse(OSError):
    """The endpoint's port is taken: by another local stack, most likely."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is in use")
        self.host = host
        self.port = port


class Router:
    """A WSGI app: ``X-Amz-Target`` prefixes with a route go to their server, the rest to ``fallback``."""

    def __init__(self, fallback: WSGIApp) -> None:
        self._fallback = fallback
        self._routes: dict[str, str] = {}
        self._local = threading.local()

    def route(self, target_prefix: str, base_url: str) -> None:
        """Send requests whose ``X-Amz-Target`` starts with ``target_prefix.`` to ``base_url``."""
        self._routes[target_prefix] = base_url

    def unroute(self, target_prefix: str) -> None:
        self._routes.pop(target_prefix, None)

    def routes(self) -> dict[str, str]:
        return dict(self._routes)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        prefix = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0]
        base_url = self._routes.get(prefix) if prefix else None
        if base_url is None:
            return self._fallback(environ, start_response)
        return self._forward(base_url, environ, start_response)

    def _connection(self, base_url: str) -> http.client.HTTPConnection:
        # One kept-alive connection per server and request thread: the JVM's accept costs milliseconds.
        connections = self._local.__dict__.setdefault("connections", {})
        if base_url not in connections:
            parts = urlsplit(base_url)
            connections[base_url] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        return connections[base_url]

    def _forward(self, base_url: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        path = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING") and "?" not in path:
            path = f"{path}?{environ['QUERY_STRING']}"
        headers = {
            name[5:].replace("_", "-").title(): value
            for name, value in environ.items()
            if name.startswith("HTTP_") and name[5:].replace("_", "-").lower() not in _HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            connection = self._connection(base_url)
            try:
                connection.request(environ["REQUEST_METHOD"], path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                connection.close()  # a kept-alive connection the server closed: one fresh try
                if attempt == 2:
                    message = f'{{"__type": "ServiceUnavailable", "message": "{base_url} did not answer: {exc}"}}'
                    start_response("503 Service Unavailable", [("Content-Type", "application/x-amz-json-1.0")])
                    return [message.encode()]
        # The endpoint's own server writes Date and Server, and the length of what it sends.
        dropped = _HOP_BY_HOP | {"content-length", "date", "server"}
        reply = [(k, v) for k, v in response.getheaders() if k.lower() not in dropped]
        reply.append(("Content-Length", str(len(payload))))
        start_response(f"{response.status} {response.reason}", reply)
        return [payload]


def _check_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(host, port) from None
            raise


class EndpointServer:
    """moto behind a ``Router``, on ``host:port`` (0: a free port), served from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self.router = Router(DomainDispatcherApplication(create_backend_app))
        if port:
            _check_free(host, port)  # werkzeug would print its own advice and exit the process
        try:
            self._server = make_server(host, port, self.router, threaded=True, request_handler=MotoRequestHandler)
        except SystemExit:  # taken between the check and the bind
            raise PortInUse(host, port) from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-endpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
