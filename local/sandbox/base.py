"""What a sandboxed vendor is made of: requests in, responses out, a route table, and the vendor's rules.

A vendor is one module under ``local/sandbox/vendors/`` with one ``SandboxVendor`` subclass: its name,
its credential fields, a route table (method, path pattern, handler) and three hooks the server calls:
``authenticate`` (the vendor's documented auth), ``error`` (the vendor's documented error body) and the
route handlers, which check the request against the documentation and answer.

Two kinds of answers (``answers=``):

- ``"image"`` (the default): an answer in the shape of the vendor's saved real responses whose scores
  are made up from the pixels of the image sent (``look.py``, ``scores.py``: rules of thumb, not a
  model), so that different images get different answers;
- ``"saved"``: the saved real responses from ``tests/fixtures/<vendor>/``, byte for byte, less what
  the request's documented options leave out (AI or Not's ``only``, Imagga's ``limit``, ...). A route
  given a file (``responses=`` or ``set_response``) answers this way in either mode.

Every success carries ``X-Sandbox-Answer: image`` or ``saved``; an answer whose shape no vendor document
shows carries ``X-Sandbox-Assumed-Shape: true``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_ROOT = REPO_ROOT / "tests" / "fixtures"

# Magic numbers of the raster formats vendors take; a part that is none of them is not an image.
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_image(data: bytes) -> bool:
    if data.startswith(_IMAGE_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data[4:8] == b"ftyp"  # HEIF / AVIF


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart body."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @cached_property
    def _parts(self) -> tuple[dict[str, list[str]], dict[str, list[Upload]]]:
        content_type = self.header("content-type") or ""
        form: dict[str, list[str]] = {}
        files: dict[str, list[Upload]] = {}
        if content_type.startswith("application/x-www-form-urlencoded"):
            return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True), files
        if not content_type.startswith("multipart/form-data"):
            return form, files
        # The stdlib email parser reads multipart bodies (``cgi`` is gone in 3.13).
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + self.body
        )
        if not message.is_multipart():
            return form, files
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None or part.get_content_type() not in ("text/plain",):
                files.setdefault(str(name), []).append(
                    Upload(str(name), filename, part.get("content-type"), bytes(payload))
                )
            else:
                form.setdefault(str(name), []).append(payload.decode("utf-8", "replace"))
        return form, files

    @property
    def form(self) -> dict[str, list[str]]:
        """Form fields (urlencoded or the non-file parts of a multipart body)."""
        return self._parts[0]

    @property
    def files(self) -> dict[str, list[Upload]]:
        """File parts of a multipart body, by field name."""
        return self._parts[1]

    def param(self, name: str) -> str | None:
        """A parameter from the query string or the form, as vendors accept either."""
        for source in (self.query, self.form):
            if source.get(name):
                return source[name][0]
        return None


@dataclass
class SandboxResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> SandboxResponse:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def file(cls, path: Path, status: int = 200) -> SandboxResponse:
        """A saved response, byte for byte."""
        return cls(status, path.read_bytes(), {"Content-Type": "application/json", ANSWER_HEADER: "saved"})

    def assumed(self) -> SandboxResponse:
        """Mark an answer whose shape no vendor document shows (it is the sandbox's assumption)."""
        self.headers[ASSUMED_HEADER] = "true"
        return self


Handler = Callable[[SandboxRequest, "re.Match[str]"], SandboxResponse]

Answers = Literal["image", "saved"]
ANSWERS: tuple[Answers, ...] = ("image", "saved")
ANSWER_HEADER = "X-Sandbox-Answer"
ASSUMED_HEADER = "X-Sandbox-Assumed-Shape"


@dataclass(frozen=True)
class Route:
    """``name`` is what ``set_response`` and the request log call this route."""

    name: str
    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler

    @classmethod
    def of(cls, name: str, methods: str, pattern: str, handler: Handler) -> Route:
        return cls(name, frozenset(methods.split()), re.compile(pattern), handler)


class SandboxVendor(ABC):
    """One vendor's behaviour. Subclasses set the class attributes and fill in the hooks."""

    name: ClassVar[str]
    credential_fields: ClassVar[tuple[str, ...]]
    default_credentials: ClassVar[Mapping[str, str]]
    # route name -> fixture file (in ``fixtures_dir``) served for a success
    default_responses: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        fixtures_dir: Path | None = None,
        responses: Mapping[str, str] | None = None,
        answers: Answers = "image",
    ) -> None:
        self.credentials = dict(credentials or self.default_credentials)
        missing = [f for f in self.credential_fields if not self.credentials.get(f)]
        if missing:
            raise ValueError(f"{self.name} sandbox needs credentials {', '.join(missing)}")
        if answers not in ANSWERS:
            raise ValueError(f"answers must be one of {', '.join(ANSWERS)}, got {answers!r}")
        self.answers: Answers = answers
        self.fixtures_dir = fixtures_dir or FIXTURES_ROOT / self.name
        self.responses = {**self.default_responses, **(responses or {})}
        # Routes given a file of their own answer with it, whatever ``answers`` says.
        self.pinned: set[str] = set(responses or ())

    # -- what a vendor module provides -----------------------------------------------------------------

    @abstractmethod
    def routes(self) -> list[Route]:
        """The route table, matched in order against the request path."""

    @abstractmethod
    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        """``None`` when the request carries the configured credentials, else the vendor's answer."""

    @abstractmethod
    def error(self, status: int, text: str) -> SandboxResponse:
        """The vendor's documented error body for ``status``."""

    def error_text(self, status: int) -> str:
        """The reason put in an error body the sandbox makes up (faults); vendors quote their docs."""
        return f"HTTP {status}"

    # -- shared behaviour ------------------------------------------------------------------------------

    def set_response(self, route: str, fixture: str) -> None:
        """Serve another saved file for ``route`` (e.g. ``set_response("tags", "tags_1.json")``), also in
        the image-driven mode."""
        if not (self.fixtures_dir / fixture).is_file():
            raise FileNotFoundError(self.fixtures_dir / fixture)
        self.responses[route] = fixture
        self.pinned.add(route)

    def image_driven(self, route: str) -> bool:
        """Whether ``route`` answers from the image sent (rather than with its saved file)."""
        return self.answers == "image" and route not in self.pinned

    def saved(self, route: str) -> SandboxResponse:
        return SandboxResponse.file(self.fixtures_dir / self.responses[route])

    def saved_payload(self, route: str) -> Any:
        """The saved answer of ``route``, parsed (a fresh copy each time); ``{}`` when there is none (a
        ``fixtures_dir`` of a test's own), so that an image-driven answer built on it still comes."""
        path = self.fixtures_dir / self.responses.get(route, "")
        return json.loads(path.read_bytes()) if path.is_file() else {}

    def saved_filtered(self, route: str, edit: Callable[[Any], Any]) -> SandboxResponse:
        """The saved answer less what the request's options leave out: ``edit`` takes the parsed answer
        and returns it changed (or not). Unchanged, the file goes byte for byte."""
        response = self.saved(route)
        if not 200 <= response.status < 300:
            return response
        try:
            original = json.loads(response.body)
        except ValueError:
            return response
        edited = edit(json.loads(response.body))
        if edited == original:
            return response
        return SandboxResponse(response.status, json.dumps(edited).encode(), response.headers)

    def made_up(self, payload: Any, status: int = 200) -> SandboxResponse:
        """An image-driven answer."""
        return SandboxResponse.json(status, payload, {ANSWER_HEADER: "image"})

    def route_for(self, request: SandboxRequest) -> tuple[Route, re.Match[str]] | None:
        for route in self.routes():
            match = route.pattern.fullmatch(request.path)
            if match:
                return route, match
        return None
