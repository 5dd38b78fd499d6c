"""The console's API Gateway, locally: HTTP requests in, the review function called in-process with an
HTTP API (payload 2.0) event, its answer out. The no-Docker counterpart of ``sam local start-api``.

It routes as the template's ConsoleApi does, and nothing else reaches the function:

    GET /                     -> the function, no authorizer
    GET /console/{name}       -> the function, no authorizer
    ANY /console/api/{proxy+} -> the function, with the claims a JWT authorizer would pass on
    anything else             -> 404 {"message": "Not Found"}, as API Gateway answers

The sign-in is the one thing it stands in for: instead of verifying a Cognito token, it passes on the
claims of one local user, named as such (``LOCAL_USER``, in the ``moderators`` group). That bypass
lives here alone; the function still refuses a console request without a moderator's claims.

One request at a time reaches the function, as one Lambda container takes one event at a time.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.driver import LambdaContext

LOCAL_USER = "local:moderator"
LOCAL_ISSUER = "local (make console): no token is verified"
# What API Gateway's JWT authorizer passes on for a Cognito ID token, for the local user.
LOCAL_CLAIMS = {
    "iss": LOCAL_ISSUER,
    "cognito:username": LOCAL_USER,
    "cognito:groups": "[moderators]",
    "email": "moderator@localhost",
}
MAX_BODY = 1 << 20


def route_of(method: str, path: str) -> tuple[str, dict[str, str], bool] | None:
    """(route key, path parameters, behind the JWT authorizer) of ConsoleApi's route, or None."""
    if method == "GET" and path == "/":
        return "GET /", {}, False
    parts = path.split("/")
    if method == "GET" and len(parts) == 3 and parts[1] == "console" and parts[2] and parts[2] != "api":
        return "GET /console/{name}", {"name": parts[2]}, False
    if path.startswith("/console/api/") and len(path) > len("/console/api/"):
        return "ANY /console/api/{proxy+}", {"proxy": path[len("/console/api/") :]}, True
    return None


def http_api_event(
    method: str, target: str, headers: dict[str, str], body: bytes, claims: dict[str, Any] | None, host: str
) -> dict[str, Any] | None:
    """The payload 2.0 event API Gateway would send for this request, or None when no route matches."""
    parts = urlsplit(target)
    matched = route_of(method, parts.path)
    if matched is None:
        return None
    route_key, path_parameters, authorized = matched
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value  # as API Gateway joins repeats
    lowered = {name.lower(): value for name, value in headers.items()}
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "local-console",
        "domainName": host,
        "domainPrefix": host.split(".")[0],
        "http": {
            "method": method,
            "path": parts.path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": lowered.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if authorized and claims is not None:
        context["authorizer"] = {"jwt": {"claims": dict(claims), "scopes": None}}
    text = body.decode("utf-8", errors="replace") if body else None
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "queryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "requestContext": context,
        "body": text,
        "isBase64Encoded": False,
    }


class ConsoleAdapter:
    """The local ConsoleApi on ``host:port`` (0: a free port), served from a daemon thread."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
        claims: dict[str, Any] | None = None,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.handler = handler
        self.claims = LOCAL_CLAIMS if claims is None else claims
        self.on_request = on_request
        self._one_at_a_time = threading.Lock()
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                adapter.serve(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return None  # one line per request goes to on_request instead

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="console-adapter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._one_at_a_time:
            return self.handler(event, LambdaContext(function_name="ReviewFunction", timeout_seconds=30, memory_mb=512))

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(request, 413, {"Content-Type": "application/json"}, b'{"message":"Request Entity Too Large"}')
            return
        body = request.rfile.read(length) if length else b""
        host = request.headers.get("Host", "127.0.0.1")
        event = http_api_event(request.command, request.path, dict(request.headers), body, self.claims, host)
        if event is None:
            self._reply(request, 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}')
            return
        try:
            answer = self.invoke(event)
        except Exception as exc:  # what API Gateway answers when the integration fails
            if self.on_request is not None:
                self.on_request(f"{request.command} {request.path}: the function raised {type(exc).__name__}: {exc}")
            self._reply(request, 500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}')
            return
        status = int(answer.get("statusCode", 200))
        headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
        payload = answer.get("body") or ""
        if answer.get("isBase64Encoded"):
            import base64

            data = base64.b64decode(payload)
        else:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self._reply(request, status, headers, data, answer.get("cookies") or [])
        if self.on_request is not None and request.path.startswith("/console/api/") and request.command == "POST":
            self.on_request(f"{request.command} {urlsplit(request.path).path} -> {status}")

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes, cookies: list[str] = ()
    ) -> None:
        request.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                request.send_header(name, value)
        for cookie in cookies:
            request.send_header("Set-Cookie", cookie)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)
