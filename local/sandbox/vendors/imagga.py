"""Imagga v2 as the sandbox plays it: rules quoted from shared/seeds/imagga-api-v2.md, saved answers.

Successes are the saved responses in tests/fixtures/imagga/, served unchanged (``set_response`` picks
another file per route). Every refusal uses the documented error shape and status codes:

    Docs, "Errors": "Most of the errors returned by the API would have a response body in the
    following form: { "status": { "text": "human-readable reason why the processing was
    unsuccessful", "type": "error" } }"

No real v2 error body has been found in public (shared/fixtures/SOURCES.md), so the ``text`` the sandbox
puts in is the meaning the docs give for the status code, quoted from the same "Errors" table.
The order of checks (auth, then path, then method, then parameters) is the sandbox's choice; the docs
do not say which one the real API makes first.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import ClassVar

from local.sandbox.base import Handler, Route, SandboxRequest, SandboxResponse, SandboxVendor, looks_like_image

# Docs, "Errors": "The Imagga API might respond with the following HTTP response codes:" (quoted).
ERROR_MEANINGS: dict[int, str] = {
    400: "Bad Request - Something is wrong with the formatting of your request. Make sure you've provided "
    "all required parameters.",
    401: "Unauthorized - There is a problem with the request authorization. Make sure your authorization "
    'header is properly formatted with your api key and secret. Read more in the "Authentication" section.',
    403: "Forbidden - You have reached one of your subscription limits therefore you are temporarily not "
    "allowed to perform this type of request.",
    404: "Not Found - The endpoint does not exists or you've requested non-existing resource.",
    405: "Method Not Allowed - The HTTP method is not supported by the requested endpoint.",
    406: "Not Acceptable - You requested a format that isn't json.",
    410: "Gone - The resource you've requested is not available anymore.",
    429: "Too Many Requests - You have reached the concurrency limit of your current subscription plan, just "
    "wait a second and retry the request.",
    500: "Internal Server Error - We had a problem with our server. Try again later or write us about this at "
    "api [at] imagga.com",
    503: "Service Unavailable - We're temporarily offline for maintenance. Please try again later.",
}

# Docs, "Multi-Language Support": "Currently there are 46 languages supported (including the default
# one -- English) with the following language codes:"
_CODES = (
    "ar bg bs en ca cs cy da de el es et fa fi fr he hi hr ht hu id it ja ko lt lv ms mt nl no pl pt ro ru sk "
    "sv sl sr_cyrl sr_latn th tr uk ur vi zh_chs zh_cht"
)
LANGUAGES = frozenset(_CODES.split(" "))

# Docs, /categorizers example: the public categorizers are nsfw_beta and personal_photos; the sandbox
# has a saved answer for nsfw_beta only, so another id is a "non-existing resource" (404).
CATEGORIZERS = {"nsfw_beta": "nsfw_beta"}


class ImaggaSandbox(SandboxVendor):
    name: ClassVar[str] = "imagga"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key", "api_secret")
    default_credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-key", "api_secret": "sandbox-secret"}
    default_responses: ClassVar[dict[str, str]] = {
        "tags": "tags_2.json",
        "nsfw_beta": "nsfw_beta_docs.json",
        "colors": "colors_1.json",
        "faces": "faces_detections_docs.json",
        "text": "text_docs.json",
    }

    def routes(self) -> list[Route]:
        # Docs, "Versioning": "in order to use v2 of the API the request URI should begin with /v2
        # followed by a specific endpoint." Each endpoint documents a GET and a POST request.
        return [
            Route.of("tags", "GET POST", r"/v2/tags", self._tags),
            Route.of("categories", "GET POST", r"/v2/categories/(?P<categorizer>[^/]+)", self._categories),
            Route.of("colors", "GET POST", r"/v2/colors", self._simple("colors")),
            Route.of("faces", "GET POST", r"/v2/faces/detections", self._simple("faces")),
            Route.of("text", "GET POST", r"/v2/text", self._simple("text")),
        ]

    def error(self, status: int, text: str) -> SandboxResponse:
        return SandboxResponse.json(status, {"status": {"text": text, "type": "error"}})

    def error_text(self, status: int) -> str:
        return ERROR_MEANINGS.get(status, f"HTTP {status}")

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        # Docs, "Authentication": "Currently the only supported method for authentication is Basic."
        # "The Basic authentication requires you to provide an "Authorization" header with each request
        # beginning with the word "Basic" followed by an interval and your api key and secret in the form
        # api_key:api_secret base64 encoded."
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        expected = f"{self.credentials['api_key']}:{self.credentials['api_secret']}"
        try:
            given = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            given = None
        if scheme != "Basic" or given != expected:
            return self.error(401, ERROR_MEANINGS[401])
        # Docs, "Errors": "406 Not Acceptable - You requested a format that isn't json."
        accept = (request.header("accept") or "*/*").lower()
        if not any(kind in accept for kind in ("application/json", "*/*", "application/*")):
            return self.error(406, ERROR_MEANINGS[406])
        return None

    # -- endpoint handlers -----------------------------------------------------------------------------

    def _image_given(self, request: SandboxRequest) -> SandboxResponse | None:
        """Refuse a request without an image, the way the docs describe the parameters."""
        if request.method == "GET":
            # GET: "image_url Image URL to perform auto-tagging on." / "image_upload_id ... providing the
            # received content identifiers via this parameter."
            if request.param("image_url") or request.param("image_upload_id"):
                return None
            return self.error(400, ERROR_MEANINGS[400] + " (image_url or image_upload_id is missing)")
        # POST: "image Image file contents to perform auto-tagging on." / "image_base64 Image file
        # contents encoded in base64 format". The curl example: -F "image=@/path/to/image.jpg".
        uploads = request.files.get("image", [])
        if uploads:
            if not uploads[0].data:
                return self.error(400, ERROR_MEANINGS[400] + " (the image part is empty)")
            if not looks_like_image(uploads[0].data):
                # Not documented: the sandbox's own rule, so that an adapter sending the wrong bytes fails.
                return self.error(400, ERROR_MEANINGS[400] + " (the image part is not an image)")
            return None
        if request.param("image_base64") or request.param("image_url") or request.param("image_upload_id"):
            return None
        return self.error(400, ERROR_MEANINGS[400] + " (no image, image_base64, image_url or image_upload_id)")

    def _tags(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        refused = self._image_given(request)
        if refused is not None:
            return refused
        # "limit (default: -1 - meaning all tags) ... Integer value is expected."
        limit = request.param("limit")
        if limit is not None and not re.fullmatch(r"-?\d+", limit):
            return self.error(400, ERROR_MEANINGS[400] + " (limit must be an integer)")
        # "threshold (default: 0.0) ... Double value is expected."
        threshold = request.param("threshold")
        if threshold is not None:
            try:
                float(threshold)
            except ValueError:
                return self.error(400, ERROR_MEANINGS[400] + " (threshold must be a number)")
        # "language (default: en) ... Specify the languages you want to receive your results in,
        # separated by comma."
        language = request.param("language")
        if language is not None and not all(code in LANGUAGES for code in language.split(",")):
            return self.error(400, ERROR_MEANINGS[400] + " (unknown language)")
        return self.saved("tags")

    def _categories(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        categorizer = CATEGORIZERS.get(match.group("categorizer"))
        if categorizer is None:
            return self.error(404, ERROR_MEANINGS[404])
        return self._image_given(request) or self.saved(categorizer)

    def _simple(self, route: str) -> Handler:
        def handler(request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
            return self._image_given(request) or self.saved(route)

        return handler
