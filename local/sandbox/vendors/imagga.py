"""Imagga v2 as the sandbox plays it: rules quoted from shared/seeds/imagga-api-v2.md.

Successes (``base.py`` explains the two modes):

- image-driven (default): the saved answers' shapes, with made-up scores from the pixels of the image
  sent (``scores.py``; not a model): tags from its colours, skin-toned share, sky, green and page-like
  strokes; nsfw_beta's nsfw/underwear/safe from its skin-toned share; colours from its palette (named
  after the palette entries Imagga's saved answers show); faces where the skin-toned pixels are; text:
  the saved answer's words when the image looks like a page, else none (the sandbox reads no text).
  Tag and category names come in each asked ``language`` (a small table knows fr, de and es; other
  languages get the English word);
- saved (``answers="saved"``, or a route given a file): tests/fixtures/imagga/ byte for byte, less what
  the options leave out.

Both honour the documented options: /v2/tags ``limit`` ("Limits the number of tags in the result") and
``threshold`` ("Thresholds the confidence of tags ... you cannot go lower than" 7: a lower threshold is
not honoured, 7 is); /v2/colors ``extract_overall_colors``, ``extract_object_colors`` (0: no
foreground/background colours; that answer's shape is not in the docs and is marked assumed),
``overall_count``, ``separated_count``. Every refusal uses the documented error shape and status codes:

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
import contextlib
import hashlib
import re
from collections.abc import Callable
from typing import Any, ClassVar

from local.sandbox import scores
from local.sandbox.base import Route, SandboxRequest, SandboxResponse, SandboxVendor, looks_like_image
from local.sandbox.look import Look, look_at
from local.sandbox.scores import translated

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
            Route.of("colors", "GET POST", r"/v2/colors", self._colors),
            Route.of("faces", "GET POST", r"/v2/faces/detections", self._faces),
            Route.of("text", "GET POST", r"/v2/text", self._text),
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

    def _pixels(self, request: SandboxRequest) -> bytes:
        """What the answer is made from: the uploaded bytes, or the URL / upload id when there are none."""
        uploads = request.files.get("image", [])
        if uploads:
            return uploads[0].data
        encoded = request.param("image_base64")
        if encoded:
            with contextlib.suppress(binascii.Error, ValueError):
                return base64.b64decode(encoded)
        return (request.param("image_url") or request.param("image_upload_id") or "").encode()

    def _options(self, request: SandboxRequest, names: dict[str, str]) -> dict[str, str] | SandboxResponse:
        """The numeric options of an endpoint, checked as the docs type them ("Integer value is
        expected", "Double value is expected"); ``names``: option -> "int" or "float"."""
        found: dict[str, str] = {}
        for name, kind in names.items():
            value = request.param(name)
            if value is None:
                continue
            pattern = r"-?\d+" if kind == "int" else r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
            if not re.fullmatch(pattern, value.strip()):
                article = "an integer" if kind == "int" else "a number"
                return self.error(400, ERROR_MEANINGS[400] + f" ({name} must be {article})")
            found[name] = value.strip()
        return found

    def _languages(self, request: SandboxRequest) -> list[str] | SandboxResponse:
        # "language (default: en) ... Specify the languages you want to receive your results in,
        # separated by comma."
        language = request.param("language")
        if language is None:
            return ["en"]
        codes = language.split(",")
        if not all(code in LANGUAGES for code in codes):
            return self.error(400, ERROR_MEANINGS[400] + " (unknown language)")
        return codes

    def _tags(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        refused = self._image_given(request)
        if refused is not None:
            return refused
        options = self._options(request, {"limit": "int", "threshold": "float"})
        if isinstance(options, SandboxResponse):
            return options
        languages = self._languages(request)
        if isinstance(languages, SandboxResponse):
            return languages
        # "limit (default: -1 - meaning all tags) Limits the number of tags in the result to the number you
        # set." "threshold (default: 0.0) Thresholds the confidence of tags in the result to the number you
        # set. ... By default all tags with confidence above 7 are being returned and you cannot go lower
        # than that." A threshold under 7 is not honoured: 7 is.
        limit = int(options["limit"]) if "limit" in options else -1
        floor = max(float(options.get("threshold", 0.0)), TAGS_FLOOR)

        def keep(tags: list[Any]) -> list[Any]:
            kept = [t for t in tags if isinstance(t, dict) and _number(t.get("confidence")) >= floor]
            return kept if limit < 0 else kept[:limit]

        if not self.image_driven("tags"):
            return self.saved_filtered("tags", lambda body: _edit_result(body, "tags", keep))
        tags = [
            {"confidence": round(score * 100, 4), "tag": {code: translated(word, code) for code in languages}}
            for word, score in scores.tags(look_at(self._pixels(request)))
        ]
        return self.made_up(_success({"tags": keep(tags)}))

    def _categories(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        categorizer = CATEGORIZERS.get(match.group("categorizer"))
        if categorizer is None:
            return self.error(404, ERROR_MEANINGS[404])
        refused = self._image_given(request)
        if refused is not None:
            return refused
        languages = self._languages(request)
        if isinstance(languages, SandboxResponse):
            return languages
        if not self.image_driven(categorizer):
            return self.saved(categorizer)
        # nsfw_beta: "nsfw which means pornographic content, underwear which, as the name suggests, detects
        # people in underwear, and safe"; the docs example lists them highest first, summing to 100.
        exposure = scores.exposure(look_at(self._pixels(request)))
        categories = [
            {"confidence": round(share * 100, 4), "name": {code: translated(name, code) for code in languages}}
            for name, share in (("nsfw", exposure.nsfw), ("underwear", exposure.underwear), ("safe", exposure.safe))
        ]
        categories.sort(key=lambda c: -c["confidence"])
        return self.made_up(_success({"categories": categories}))

    def _colors(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        refused = self._image_given(request)
        if refused is not None:
            return refused
        numbers = ("extract_overall_colors", "extract_object_colors", "overall_count", "separated_count")
        options = self._options(request, dict.fromkeys(numbers, "int"))
        if isinstance(options, SandboxResponse):
            return options
        # "extract_overall_colors (default: 1)", "extract_object_colors (default: 1) ... 1 for 'yes', and 0
        # for 'no'", "overall_count (default: 5)", "separated_count (default: 3)".
        overall = options.get("extract_overall_colors", "1") != "0"
        separated = options.get("extract_object_colors", "1") != "0"
        overall_count = int(options.get("overall_count", "5"))
        separated_count = int(options.get("separated_count", "3"))

        def shaped(colors: dict[str, Any]) -> dict[str, Any]:
            colors["image_colors"] = colors.get("image_colors", [])[:overall_count] if overall else []
            if separated:
                for side in ("background_colors", "foreground_colors"):
                    colors[side] = colors.get(side, [])[:separated_count]
            else:
                # The docs show no answer without object colours: empty lists and no object_percentage is
                # the sandbox's assumption.
                colors["background_colors"], colors["foreground_colors"] = [], []
                colors.pop("object_percentage", None)
            return colors

        if not self.image_driven("colors"):
            response = self.saved_filtered("colors", lambda body: _edit_result(body, "colors", shaped))
        else:
            response = self.made_up(_success({"colors": shaped(_made_up_colors(look_at(self._pixels(request))))}))
        return response.assumed() if not (overall and separated) else response

    def _faces(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        refused = self._image_given(request)
        if refused is not None:
            return refused
        if not self.image_driven("faces"):
            return self.saved("faces")
        look = look_at(self._pixels(request))
        found = []
        for index, (box, confidence) in enumerate(scores.faces(look)):
            corners = _pixels_box(box, look)
            face_id = hashlib.sha256(look.key + bytes([index])).hexdigest()
            found.append({"confidence": round(confidence * 100, 4), "coordinates": corners, "face_id": face_id})
        return self.made_up(_success({"faces": found}))

    def _text(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        refused = self._image_given(request)
        if refused is not None:
            return refused
        if not self.image_driven("text"):
            return self.saved("text")
        # The sandbox reads no text: an image that looks like a page gets the saved answer's words, placed
        # over the middle of the image; any other image gets none.
        look = look_at(self._pixels(request))
        words = []
        if scores.text_present(look) >= 0.3:
            saved = (self.saved_payload("text").get("result") or {}).get("text") or []
            box = _pixels_box((0.1, 0.1, 0.8, 0.8), look)
            words = [{"data": entry.get("data"), "coordinates": box} for entry in saved if isinstance(entry, dict)]
        return self.made_up(_success({"text": words}))


TAGS_FLOOR = 7.0


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("-inf")


def _success(result: dict[str, Any]) -> dict[str, Any]:
    """The documented envelope: ``{"result": {...}, "status": {"text": "", "type": "success"}}``."""
    return {"result": result, "status": {"text": "", "type": "success"}}


def _edit_result(body: Any, key: str, edit: Callable[[Any], Any]) -> Any:
    """``body["result"][key]`` passed through ``edit``; a body without it (a saved error) is left alone."""
    if isinstance(body, dict) and isinstance(body.get("result"), dict) and key in body["result"]:
        body["result"][key] = edit(body["result"][key])
    return body


def _pixels_box(box: tuple[float, float, float, float], look: Look) -> dict[str, int]:
    """A box of fractions in the pixels of the image sent, as Imagga's ``coordinates``."""
    width, height = max(look.width, 1), max(look.height, 1)
    xmin, ymin = round(box[0] * width), round(box[1] * height)
    xmax, ymax = round((box[0] + box[2]) * width), round((box[1] + box[3]) * height)
    return {"height": ymax - ymin, "width": xmax - xmin, "xmax": xmax, "xmin": xmin, "ymax": ymax, "ymin": ymin}


def _colour_entry(rgb: tuple[int, int, int], share: float) -> dict[str, Any]:
    match = scores.closest_colour(rgb)
    r, g, b = rgb
    return {
        "b": b,
        "closest_palette_color": match.name,
        "closest_palette_color_html_code": match.html_code,
        "closest_palette_color_parent": match.parent,
        "closest_palette_distance": match.distance,
        "g": g,
        "html_code": f"#{r:02x}{g:02x}{b:02x}",
        "percent": round(share * 100, 4),
        "r": r,
    }


def _made_up_colors(look: Look) -> dict[str, Any]:
    """The saved answers' shape from the look's palette. Foreground and background are made up too: the
    most saturated colours as the object, the largest ones as the background."""
    palette = list(look.palette)
    by_saturation = sorted(palette, key=lambda entry: -(max(entry[0]) - min(entry[0])))
    return {
        "background_colors": [_colour_entry(rgb, share) for rgb, share in palette],
        "color_percent_threshold": 1.75,
        "color_variance": round(20 + 40 * look.saturation),
        "foreground_colors": [_colour_entry(rgb, share) for rgb, share in by_saturation],
        "image_colors": [_colour_entry(rgb, share) for rgb, share in palette],
        "object_percentage": round(100 * max(look.skin, 0.15), 4),
    }
