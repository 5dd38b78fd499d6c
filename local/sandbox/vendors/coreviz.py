"""CoreViz image tagging as the sandbox plays it: rules quoted from shared/seeds/coreviz-image-tagging.md.

Like the real service, the sandbox **fetches the image URL it is given** (in tests: a presigned URL of
the local S3 emulator) and refuses the request when it cannot: 400 when the URL cannot be fetched, 422
when what comes back is not an image it can process. What it fetched is recorded in ``fetches`` (status,
content type, size, SHA-256; never the URL). It fetches with ``urllib`` and logs nothing, so that a
credential-bearing URL reaches no log record from here either.

Successes (``base.py`` explains the two modes) come in three shapes: ``tags`` (no prompt, no choices),
``prompt`` (a prompt, no choices; the tags shape) and ``classification`` (choices). A classification
follows ``single`` as the "Response Fields" table has it: ``classification`` and ``confidence`` "when
single: true", ``all_scores`` "when single: false" (the default).

- image-driven (default): made-up scores from the pixels of the fetched image (``scores.py``; not a
  model): tags from its colours, skin-toned share, sky, green and page-like strokes; a prompt about
  moderation ("inappropriate", "nsfw", ...) adds the docs' ``inappropriate`` tag, scored by the
  skin-toned share; a choice is scored by its words when they mean something to those rules
  (nsfw/safe/document/person words), else mostly by a hash of the pixels;
- saved (``answers="saved"``, or ``set_response``): tests/fixtures/coreviz/ byte for byte, less the
  classification fields the ``single`` mode leaves out.

Refusals use the documented error bodies:

    Docs, "Error Responses": 401 {"error": "Unauthorized", "message": "Invalid or missing API key"};
    400 {"error": "Bad Request", "message": "Invalid image URL or missing required fields"};
    422 {"error": "Unprocessable Entity", "message": "Unable to process the provided image"}

and 402 ``{"error": "Insufficient credits"}`` (the official SDK maps HTTP 402 to "Insufficient credits";
shared/fixtures/SOURCES.md "CoreViz"). Options: ``credits`` (answers left before 402; None: unlimited),
``max_image_bytes`` (larger images get 422; the docs: "Maximum file size limits may apply").
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from local.sandbox import scores
from local.sandbox.base import Answers, Route, SandboxRequest, SandboxResponse, SandboxVendor
from local.sandbox.look import Look, look_at

# Docs, "Error Responses" (the 402 reason from the SDK).
ERRORS: dict[int, dict[str, str]] = {
    400: {"error": "Bad Request", "message": "Invalid image URL or missing required fields"},
    401: {"error": "Unauthorized", "message": "Invalid or missing API key"},
    402: {"error": "Insufficient credits"},
    422: {"error": "Unprocessable Entity", "message": "Unable to process the provided image"},
}

# Docs, "Supported Image Formats": "JPEG (.jpg, .jpeg) PNG (.png) WebP (.webp) GIF (.gif)", by magic number.
_FORMATS = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)

FETCH_TIMEOUT_SECONDS = 5.0
FETCH_LIMIT_BYTES = 100 * 1024 * 1024


def image_format(data: bytes) -> str | None:
    for signature, name in _FORMATS:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


@dataclass(frozen=True)
class Fetch:
    """One fetch of an image URL, as the sandbox saw it (the URL itself is not kept)."""

    status: int | None  # HTTP status of the image host; None when it could not be reached
    content_type: str | None
    size: int
    sha256: str | None
    format: str | None
    error: str | None = None


class CoreVizSandbox(SandboxVendor):
    name: ClassVar[str] = "coreviz"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    default_credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-key"}
    default_responses: ClassVar[dict[str, str]] = {
        "tags": "tags_docs.json",
        "prompt": "tags_docs.json",
        "classification": "classification_docs.json",
    }

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        fixtures_dir: Path | None = None,
        responses: Mapping[str, str] | None = None,
        credits: int | None = None,
        max_image_bytes: int | None = None,
        answers: Answers = "image",
    ) -> None:
        super().__init__(credentials, fixtures_dir=fixtures_dir, responses=responses, answers=answers)
        self.credits = credits
        self.max_image_bytes = max_image_bytes
        self.fetches: list[Fetch] = []
        # No proxies from the environment: the sandbox fetches what it is given, directly.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def routes(self) -> list[Route]:
        # Docs, "Endpoint": "POST /api/ai/tag".
        return [Route.of("tag", "POST", r"/api/ai/tag", self._tag)]

    def error(self, status: int, text: str) -> SandboxResponse:
        body = ERRORS.get(status) or {"error": text}
        return SandboxResponse.json(status, body)

    def error_text(self, status: int) -> str:
        return ERRORS.get(status, {}).get("error", f"HTTP {status}")

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        # Docs, "Headers": "x-api-key | Your API key | Yes"; 401 "Invalid or missing API key".
        if request.header("x-api-key") != self.credentials["api_key"]:
            return self.error(401, "")
        return None

    # -- the endpoint ----------------------------------------------------------------------------------

    def _tag(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        body = self._body(request)
        if body is None:
            return self.error(400, "")
        # Docs, 402 (SDK): "Insufficient credits".
        if self.credits is not None and self.credits <= 0:
            return self.error(402, "")
        fetched, data = self._fetch(body["image"])
        self.fetches.append(fetched)
        # 400: "Invalid image URL" - the URL could not be fetched (unreachable, refused, expired).
        if fetched.status is None or not 200 <= fetched.status < 300:
            return self.error(400, "")
        # 422: "Image could not be processed" - not an image it supports, or too big.
        if fetched.format is None or (self.max_image_bytes is not None and len(data) > self.max_image_bytes):
            return self.error(422, "")
        if self.credits is not None:
            self.credits -= 1
        route = "classification" if "choices" in body else ("prompt" if "prompt" in body else "tags")
        # "single | boolean | No | Return only the best match when using choices (default: false)"
        single = body.get("single", False)
        if not self.image_driven(route):
            if route == "classification":
                return self.saved_filtered(route, lambda answer: _single(answer, single))
            return self.saved(route)
        look = look_at(data)
        if route == "classification":
            return self.made_up(_classification(look, body["choices"], single))
        return self.made_up({"tags": _tags(look, body.get("prompt", ""))})

    def _body(self, request: SandboxRequest) -> dict[str, Any] | None:
        """The JSON body when it follows the docs' "Request Body" table, else None (a 400)."""
        # "Content-Type | application/json | Yes"
        if not (request.header("content-type") or "").lower().startswith("application/json"):
            return None
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(body, dict):
            return None
        # "image | string | Yes | URL of the image to tag"; "The image URL must be publicly accessible"
        image = body.get("image")
        if not isinstance(image, str) or urlsplit(image).scheme not in ("http", "https") or not urlsplit(image).netloc:
            return None
        # "prompt | string | No"
        if "prompt" in body and not isinstance(body["prompt"], str):
            return None
        # "choices | string[] | No"
        choices = body.get("choices")
        if "choices" in body and (
            not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices)
        ):
            return None
        # "single | boolean | No | Return only the best match when using choices"
        if "single" in body and not isinstance(body["single"], bool):
            return None
        return body

    def _fetch(self, url: str) -> tuple[Fetch, bytes]:
        try:
            with self._opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
                data = response.read(FETCH_LIMIT_BYTES + 1)
                status, content_type = response.status, response.headers.get("Content-Type")
        except urllib.error.HTTPError as exc:
            return Fetch(exc.code, exc.headers.get("Content-Type"), 0, None, None, f"HTTP {exc.code}"), b""
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Fetch(None, None, 0, None, None, type(exc).__name__), b""
        return (
            Fetch(status, content_type, len(data), hashlib.sha256(data).hexdigest(), image_format(data)),
            data,
        )


# Docs, "Response Fields", "Classification Response": ``classification`` "The best matching
# classification (when single: true)", ``confidence`` "Confidence score for the classification",
# ``all_scores`` "Scores for all choices (when single: false)".
_SINGLE_FIELDS = ("classification", "confidence")


def _single(answer: Any, single: bool) -> Any:
    """A saved classification with the fields the ``single`` mode does not return taken out."""
    if not isinstance(answer, dict):
        return answer
    for name in ("all_scores",) if single else _SINGLE_FIELDS:
        answer.pop(name, None)
    return answer


def _classification(look: Look, choices: list[str], single: bool) -> dict[str, Any]:
    scored = [(choice, scores.choice_score(look, choice)) for choice in choices]
    if single:
        best, score = max(scored, key=lambda pair: pair[1])  # the first of equals
        return {"classification": best, "confidence": score}
    return {"all_scores": [{"choice": choice, "score": score} for choice, score in scored]}


# Docs, "Content Moderation": ``tags.some(tag => tag.tag === 'inappropriate' && tag.confidence > 0.8)``
# with the prompt "identify if this image contains inappropriate content".
_MODERATION_PROMPT = re.compile(r"inappropriate|nsfw|explicit|nud|adult|unsafe|moderat", re.IGNORECASE)


def _tags(look: Look, prompt: str) -> list[dict[str, Any]]:
    """The look's tags (0..1, at most ten, none under 0.2); a moderation prompt adds "inappropriate"."""
    found = [(word, score) for word, score in scores.tags(look) if score >= 0.2][:10]
    if prompt and _MODERATION_PROMPT.search(prompt):
        found.insert(0, ("inappropriate", round(scores.exposure(look).nsfw, 4)))
    return [{"tag": word, "confidence": round(score, 4)} for word, score in found]
