"""AI or Not v2 as the sandbox plays it: rules quoted from shared/seeds/aiornot-image-sync-openapi.md.

Successes are the saved responses in tests/fixtures/aiornot/, served unchanged (``set_response`` picks
another file); the saved answer does not follow ``only``/``excluding``. Refusals:

- auth: ``securitySchemes.HTTPBearer`` ("Your API key as the ``Bearer`` token in the ``Authorization``
  header"). The seed gives no body for it; the sandbox answers 401 with FastAPI's own ``HTTPBearer``
  texts (``{"detail": "Not authenticated"}`` / ``"Invalid authentication credentials"``): the API is a
  FastAPI app (its 422 is FastAPI's ``HTTPValidationError``). Status and text are the sandbox's choice.
- everything wrong with the request itself: the one documented error, ``'422': Validation Error`` with
  ``HTTPValidationError`` ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``. ``loc`` says where
  (``["body", "image"]``, ``["query", "only", 0]``); the ``msg`` texts quote the seed.
- faults and other statuses the sandbox makes up: ``{"detail": "<HTTP reason>"}`` (FastAPI's
  ``HTTPException`` shape); the seed documents none.

The order of checks (auth, path, method, parameters, file) is the sandbox's choice.
"""

from __future__ import annotations

import http
import re
from typing import ClassVar

from local.sandbox.base import Route, SandboxRequest, SandboxResponse, SandboxVendor

# The ``image`` field description: "Max file size: 10MB", read as 10,000,000 bytes (the stricter of the
# two readings). The page's Limitations list says "Maximum file size: 50MB"; the field that the request
# is validated against carries the smaller figure, so the sandbox enforces that one.
MAX_FILE_BYTES = 10_000_000
# "**Supported formats:** jpg, jpeg, png, webp, heic, heif, tiff"
SUPPORTED = frozenset({"jpeg", "png", "webp", "heic", "heif", "tiff"})
# ``only`` / ``excluding``: "Valid values are `ai_generated`, `deepfake`, `nsfw`, `quality`, `reverse_search`."
REPORTS = ("ai_generated", "deepfake", "nsfw", "quality", "reverse_search")

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def sniff(data: bytes) -> str | None:
    """The format the bytes are in, by their magic number (not by the file name or part type)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in _HEIF_BRANDS:
            return "heif" if brand in (b"mif1", b"msf1") else "heic"
    return None


def validation_error(loc: list[str | int], msg: str, kind: str) -> SandboxResponse:
    """``HTTPValidationError``: ``{"detail": [{"loc", "msg", "type"}]}`` with status 422."""
    return SandboxResponse.json(422, {"detail": [{"loc": loc, "msg": msg, "type": kind}]})


class AiOrNotSandbox(SandboxVendor):
    name: ClassVar[str] = "aiornot"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    default_credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-key"}
    default_responses: ClassVar[dict[str, str]] = {"image_sync": "v2_image_sync_1.json"}
    # An instance may lower the limit (tests) to check the rule without sending 10 MB, or know fewer reports.
    max_file_bytes: int = MAX_FILE_BYTES
    reports: tuple[str, ...] = REPORTS

    def routes(self) -> list[Route]:
        # "paths: /v2/image/sync: post:"
        return [Route.of("image_sync", "POST", r"/v2/image/sync", self._image_sync)]

    def error(self, status: int, text: str) -> SandboxResponse:
        return SandboxResponse.json(status, {"detail": text})

    def error_text(self, status: int) -> str:
        try:
            return http.HTTPStatus(status).phrase
        except ValueError:
            return f"HTTP {status}"

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        # security: HTTPBearer, "type: http, scheme: bearer"; the examples send
        # "Authorization: Bearer $AIORNOT_API_KEY".
        header = request.header("authorization")
        if not header:
            return SandboxResponse.json(401, {"detail": "Not authenticated"}, {"WWW-Authenticate": "Bearer"})
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.credentials["api_key"]:
            return SandboxResponse.json(
                401, {"detail": "Invalid authentication credentials"}, {"WWW-Authenticate": "Bearer"}
            )
        return None

    def _image_sync(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        # "only"/"excluding": "in: query", "type: array", "enum: ai_generated, deepfake, nsfw, quality,
        # reverse_search".
        for parameter in ("only", "excluding"):
            for index, value in enumerate(request.query.get(parameter, [])):
                if value not in self.reports:
                    allowed = ", ".join(f"'{r}'" for r in self.reports)
                    return validation_error(["query", parameter, index], f"Input should be {allowed}", "enum")
        # requestBody "multipart/form-data" with "image: type: string, format: binary", "required: - image".
        uploads = request.files.get("image", [])
        if not uploads:
            return validation_error(["body", "image"], "Field required", "missing")
        data = uploads[0].data
        if len(data) > self.max_file_bytes:
            return validation_error(["body", "image"], f"Max file size: 10MB ({len(data)} bytes sent)", "value_error")
        if sniff(data) not in SUPPORTED:
            return validation_error(
                ["body", "image"], "Supported formats: jpg, jpeg, png, webp, heic, heif, tiff", "value_error"
            )
        return self.saved("image_sync")
