"""ImageRecognize API v2 as the sandbox plays it: rules quoted from shared/seeds/imagerecognize-api-v2.md.

Successes (``base.py`` explains the two modes) follow the documented options: ``objects`` keeps at most
``max_labels`` findings of at least ``min_confidence``, ``nsfw`` those of at least
``nsfw_min_confidence``.

- image-driven (default): made-up findings from the pixels of the image sent (``scores.py``; not a
  model), in the documented ``objects`` entry shape: objects from its skin-toned share, sky, green and
  page-like strokes; nsfw labels (Explicit Nudity, Suggestive, Female Swimwear Or Underwear) from its
  skin-toned share; a face where the skin-toned pixels are; text: the saved answer's words when the
  image looks like a page; celebrities: the saved answer's first name for a "face" a hash picks;
- saved (``answers="saved"``, or ``set_response``): one file a type from tests/fixtures/imagerecognize/,
  byte for byte, less what the options leave out.

**Assumed shapes.** The docs show one answer, for ``objects``. The answers for ``nsfw``,
``detect_faces``, ``detect_text`` and ``celebrities`` (the ``*_synthetic.json`` files and the
image-driven answers) are the sandbox's assumption, the ``objects`` shape with the type's own findings,
and carry the header ``X-Sandbox-Assumed-Shape: true``. Refusals use the documented body
``{"status": <code>, "status_message": "<reason>", "data": null}`` with the documented reasons:

    Docs, "2. Response": "status - HTTP response status code"; "300 {"status":300,"status_message":
    "Invalid request, no data received","data":null}" ... "430 {"status":430,"status_message":<…>,
    "data":null}"

The HTTP status equals the body status (the docs call it the "HTTP response status code", and their
JavaScript example handles ``statusCode: {402: ...}``); ``http_200_errors=True`` answers HTTP 200 with
the status in the body only, the other reading, so that adapters can be tested against both.

Options: ``quota`` (answers left before 402 "Quota limit reached"; None: unlimited) and
``http_200_errors``. The order of checks (path, key, type, file, parameters) is the sandbox's choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from local.sandbox import scores
from local.sandbox.base import Answers, Route, SandboxRequest, SandboxResponse, SandboxVendor, looks_like_image
from local.sandbox.look import Look, look_at

# Docs, "2. Response": each documented status with its ``status_message`` (typographic quotes made ASCII).
STATUS_MESSAGES: dict[int, str] = {
    300: "Invalid request, no data received",
    400: "APIkey missing",
    401: "APIkey invalid",
    402: "Quota limit reached",
    412: "Invalid file",
    413: "Image size too large",
    415: "Invalid file format",
    420: "Invalid type",
}

# Docs, "type": "It must be one of the following string values:" (``cache`` is GET / POST, the others POST).
ANALYSIS_TYPES = ("objects", "celebrities", "detect_faces", "detect_text", "nsfw")
TYPES = (*ANALYSIS_TYPES, "cache")

# Docs, "413": "Max size is 50Mb." The sandbox reads it as 50 MiB, the larger reading, so that an adapter
# keeping to 50,000,000 bytes is never refused here.
MAX_FILE_BYTES = 50 * 1024 * 1024

_INT = re.compile(r"^\d+$")


class ImageRecognizeSandbox(SandboxVendor):
    name: ClassVar[str] = "imagerecognize"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    default_credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-key"}
    default_responses: ClassVar[dict[str, str]] = {
        "objects": "objects_docs.json",
        "celebrities": "celebrities_synthetic.json",
        "detect_faces": "detect_faces_synthetic.json",
        "detect_text": "detect_text_synthetic.json",
        "nsfw": "nsfw_synthetic.json",
    }

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        fixtures_dir: Path | None = None,
        responses: Mapping[str, str] | None = None,
        quota: int | None = None,
        http_200_errors: bool = False,
        answers: Answers = "image",
    ) -> None:
        super().__init__(credentials, fixtures_dir=fixtures_dir, responses=responses, answers=answers)
        self.quota = quota
        self.http_200_errors = http_200_errors

    def routes(self) -> list[Route]:
        # Docs, "1. Request": "GET / POST https://imagerecognize.com/api/v2/". Without the slash: 300 (below).
        return [Route.of("api", "GET POST", r"/api/v2/", self._api)]

    def error(self, status: int, text: str) -> SandboxResponse:
        body = {"status": status, "status_message": text, "data": None}
        return SandboxResponse.json(200 if self.http_200_errors else status, body)

    def error_text(self, status: int) -> str:
        return STATUS_MESSAGES.get(status, f"HTTP {status}")

    def _refuse(self, status: int, detail: str = "") -> SandboxResponse:
        return self.error(status, detail or STATUS_MESSAGES[status])

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        # Docs, 300: "No data was received with your request. Did you call the correct URL? Note the slash
        # at the end after version number." A POST to /api/v2 (no slash) loses its body on the way.
        if request.path == "/api/v2" or (request.method == "POST" and not request.body):
            return self._refuse(300)
        # Docs, "apikey": "The apikey is used to validate the request source and must be sent with all
        # client requests." 400 "APIkey missing" / 401 "APIkey invalid".
        given = request.param("apikey")
        if not given:
            return self._refuse(400)
        if given != self.credentials["api_key"]:
            return self._refuse(401)
        return None

    # -- the one endpoint ------------------------------------------------------------------------------

    def _api(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        # Docs, "type": "The type is used to identify which part of the recognition engine to use. It must
        # be one of the following string values". One value: a list or a repeated field is not one of them.
        given = request.query.get("type", []) + request.form.get("type", [])
        if len(given) != 1 or given[0] not in TYPES:
            return self._refuse(420)
        kind = given[0]
        # Docs, "apikey": "GET request is only allowed together with type 'cache'." The sandbox keeps no
        # cache, so a cache request finds nothing (its own answer: a 430 naming the reason).
        if request.method == "GET" and kind != "cache":
            return self._refuse(420)
        if kind == "cache":
            return self._refuse(430, "No cached results (the sandbox keeps none)")
        refused = self._file(request) or self._parameters(request, kind)
        if refused is not None:
            return refused
        # Docs, 402: "Every account has a preselected quota ... This error will occur if you would exceed
        # this quota."
        if self.quota is not None:
            if self.quota <= 0:
                return self._refuse(402)
            self.quota -= 1
        keep = _options(request, kind)
        if not self.image_driven(kind):
            response = self.saved_filtered(kind, lambda body: _edit_objects(body, keep))
        else:
            found = keep(self._made_up(kind, look_at(request.files["file"][0].data)))
            quota = self.quota if self.quota is not None else (self.saved_payload(kind).get("data") or {}).get("quota")
            data = {"error": 0, "type": kind, "objects": found, "quota": quota}
            response = self.made_up({"status": 200, "message": "Success", "data": data})
        return response.assumed() if kind in ASSUMED_SHAPES else response

    def _made_up(self, kind: str, look: Look) -> list[dict[str, Any]]:
        """The findings of one type, in the documented ``objects`` entry shape (``scores.py``; not a model)."""
        if kind == "objects":
            colours = {parent for _, _, parent in scores.PALETTE}
            return [
                _entry(scores.title(word), score, scores.object_box(look, word))
                for word, score in scores.tags(look)
                if word not in colours
            ]
        if kind == "nsfw":
            # Labels of the moderation taxonomy that the adapter's table reads (Rekognition's names).
            exposure = scores.exposure(look)
            found = [
                _entry("Explicit Nudity", exposure.nsfw, None),
                _entry("Suggestive", max(exposure.underwear, exposure.nsfw * 0.9), None),
                _entry("Female Swimwear Or Underwear", exposure.underwear, None),
            ]
            return sorted(found, key=lambda entry: -entry["confidence"])
        if kind == "detect_faces":
            return [_entry("Face", confidence, box) for box, confidence in scores.faces(look)]
        # The sandbox reads no text and knows no one: a page-like image gets the saved answer's words, and a
        # "face" that a hash picks the saved answer's first celebrity.
        saved = (self.saved_payload(kind).get("data") or {}).get("objects") or []
        names = [entry["name"] for entry in saved if isinstance(entry, dict) and isinstance(entry.get("name"), str)]
        if kind == "detect_text" and scores.text_present(look) >= 0.3:
            return [_entry(name, 0.8 + 0.19 * scores.text_present(look), (0.1, 0.1, 0.8, 0.8)) for name in names]
        if kind == "celebrities" and names and scores.is_celebrity(look):
            box, confidence = scores.faces(look)[0]
            return [_entry(names[0], confidence, box)]
        return []

    def _file(self, request: SandboxRequest) -> SandboxResponse | None:
        # Docs, "file": "binary", required, POST. "The image must be in PNG, JPG or JPEG format."
        uploads = request.files.get("file", [])
        if len(uploads) != 1:
            return self._refuse(430, "Missing parameter: file" if not uploads else "One file per request")
        data = uploads[0].data
        # 412: "Your request was sent with an invalid coded file."
        if not data or not looks_like_image(data):
            return self._refuse(412)
        # 413: "Your request was sent with a too large image. Max size is 50Mb."
        if len(data) > MAX_FILE_BYTES:
            return self._refuse(413)
        # 415: "Your request was sent with an invalid file format. Only PNG, JPG and JPEG files are supported."
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
            return self._refuse(415)
        return None

    def _parameters(self, request: SandboxRequest, kind: str) -> SandboxResponse | None:
        # Docs: "max_labels int > 0 If 'type' is 'objects'"; "min_confidence 0 <= int <= 100 If 'type' is
        # 'objects'"; "nsfw_min_confidence 0 <= int <= 100 If 'type' is 'nsfw'". 430: "an invalid or missing
        # parameter for the specified type. See returned status message for details."
        required: dict[str, tuple[int, int]] = {}
        if kind == "objects":
            required = {"max_labels": (1, 1_000_000), "min_confidence": (0, 100)}
        elif kind == "nsfw":
            required = {"nsfw_min_confidence": (0, 100)}
        for name, (low, high) in required.items():
            value = request.param(name)
            if value is None:
                return self._refuse(430, f"Missing parameter: {name}")
            if not _INT.match(value.strip()) or not low <= int(value) <= high:
                return self._refuse(430, f"Invalid parameter: {name}")
        return None


# Types whose answer no document shows (the docs' only example is ``objects``): their shape, the saved
# *_synthetic.json files and the image-driven answers alike are the sandbox's assumption, and every such
# answer carries ``X-Sandbox-Assumed-Shape: true``.
ASSUMED_SHAPES = frozenset({"nsfw", "detect_faces", "detect_text", "celebrities"})


def _entry(name: str, score: float, box: tuple[float, float, float, float] | None) -> dict[str, Any]:
    """``{"name", "confidence" (0-100), "coordinates": [{"x", "y", "width", "height"}]}`` as in the docs."""
    entry: dict[str, Any] = {"name": name, "confidence": round(score * 100, 2)}
    if box is not None:
        x, y, width, height = (round(v, 4) for v in box)
        entry["coordinates"] = [{"x": x, "y": y, "width": width, "height": height}]
    return entry


def _options(request: SandboxRequest, kind: str) -> Callable[[list[Any]], list[Any]]:
    """What the type's options keep of its findings. Docs: "The max_labels parameter is used to set the
    maximum number of detected objects in the response"; "The min_confidence parameter is used to set a
    lower threshold of confidence detection. In general, a lower number returns more objects."; "The
    nsfw_min_confidence parameter is similar to the min_confidence parameter, but used for the type
    'nsfw' instead." (already checked by ``_parameters``)."""
    if kind == "objects":
        limit, floor = int(request.param("max_labels") or 0), int(request.param("min_confidence") or 0)
    elif kind == "nsfw":
        limit, floor = 0, int(request.param("nsfw_min_confidence") or 0)
    else:
        return lambda found: found

    def keep(found: list[Any]) -> list[Any]:
        kept = [entry for entry in found if isinstance(entry, dict) and _confidence(entry) >= floor]
        return kept[:limit] if limit else kept

    return keep


def _confidence(entry: dict[str, Any]) -> float:
    value = entry.get("confidence")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("-inf")


def _edit_objects(body: Any, keep: Callable[[list[Any]], list[Any]]) -> Any:
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        data["objects"] = keep(data["objects"])
    return body
