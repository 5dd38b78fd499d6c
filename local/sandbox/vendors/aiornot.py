"""AI or Not v2 as the sandbox plays it: rules quoted from shared/seeds/aiornot-image-sync-openapi.md.

Successes (``base.py`` explains the two modes) hold only the reports the request runs, in ``report``
and in ``meta.processing_status``: ``only`` names them, ``excluding`` takes from the documented default
four (ai_generated, deepfake, nsfw, quality), and neither runs those four.

- image-driven (default): made-up reports from the pixels of the image sent (``scores.py``; not a
  model): the AI likelihood is a hash of the pixels (about three photos in ten get ``verdict: "ai"``), near
  1 for an image with almost no edges (a flat fill, a smooth gradient); ``nsfw.is_detected`` when a
  third of the image is skin-toned; a deepfake only where there is a
  "face" (skin-toned pixels) and a hash says so, with its box in ``rois``; ``quality`` from the edges
  and size; ``reverse_search`` finds nothing. ``meta`` describes the upload (size, format, MD5), and
  ``external_id`` is echoed;
- saved (``answers="saved"``, or ``set_response``): tests/fixtures/aiornot/ byte for byte, less the
  reports not run (a saved answer that lacks a report asked for stays without it).

Refusals:

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

import datetime
import http
import re
import uuid
from typing import Any, ClassVar

from local.sandbox import scores
from local.sandbox.base import Route, SandboxRequest, SandboxResponse, SandboxVendor
from local.sandbox.look import Look, look_at

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
        runs = self.runs(request)
        if not self.image_driven("image_sync"):
            return self.saved_filtered("image_sync", lambda body: _only(body, runs))
        return self.made_up(self._made_up(data, runs, request.param("external_id")))

    def runs(self, request: SandboxRequest) -> tuple[str, ...]:
        """The reports the request runs. "By default, it runs ai_generated, deepfake, nsfw, and quality
        reports. You can select which reports to run by using the only and excluding parameters."
        ``only`` names them; ``excluding`` takes from the default four (with both, the sandbox takes
        ``excluding`` from ``only``: the docs do not say)."""
        only = request.query.get("only") or []
        excluding = set(request.query.get("excluding") or [])
        chosen = only or DEFAULT_REPORTS
        return tuple(r for r in REPORTS if r in chosen and r not in excluding)

    def _made_up(self, data: bytes, runs: tuple[str, ...], external_id: str | None) -> dict[str, Any]:
        """The v2 answer with made-up reports (``scores.py``), in the shape of the saved answer."""
        look = look_at(data)
        template = self.saved_payload("image_sync").get("report") or {}
        report: dict[str, Any] = {}
        if "ai_generated" in runs:
            report["ai_generated"] = _ai_generated(look, template.get("ai_generated"))
        if "deepfake" in runs:
            detected, confidence = scores.deepfake(look)
            rois = []
            if detected:
                for (x, y, w, h), _ in scores.faces(look):
                    bbox = {
                        "x1": round(x * look.width),
                        "y1": round(y * look.height),
                        "x2": round((x + w) * look.width),
                        "y2": round((y + h) * look.height),
                    }
                    rois.append({"is_detected": True, "confidence": confidence, "bbox": bbox})
            report["deepfake"] = {"is_detected": detected, "confidence": confidence, "rois": rois}
        if "nsfw" in runs:
            report["nsfw"] = {"version": "1.0.0", "is_detected": scores.nsfw_detected(look)}
        if "quality" in runs:
            report["quality"] = {"is_detected": scores.high_quality(look)}
        if "reverse_search" in runs:
            report["reverse_search"] = {"was_found": False, "matches": []}
        report["meta"] = {
            "width": look.width or None,
            "height": look.height or None,
            "format": sniff(data),
            "size_bytes": look.size_bytes,
            "md5": look.md5,
            "processing_status": dict.fromkeys(runs, "processed"),
        }
        answer = {
            "id": str(uuid.uuid4()),
            "report": report,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
        }
        if external_id is not None:
            answer["external_id"] = external_id
        return answer


# The four reports run when neither ``only`` nor ``excluding`` is given.
DEFAULT_REPORTS = ("ai_generated", "deepfake", "nsfw", "quality")


def _only(body: Any, runs: tuple[str, ...]) -> Any:
    """A saved answer with the reports the request did not run taken out, from ``report`` and from
    ``meta.processing_status`` (v2_image_sync_3.json, a real ``only`` answer, has no key for them)."""
    report = body.get("report") if isinstance(body, dict) else None
    if not isinstance(report, dict):
        return body
    for name in REPORTS:
        if name not in runs:
            report.pop(name, None)
    meta = report.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("processing_status"), dict):
        meta["processing_status"] = {k: v for k, v in meta["processing_status"].items() if k in runs}
    return body


def _ai_generated(look: Look, template: Any) -> dict[str, Any]:
    """verdict, ai/human and generator scores. The generators are the saved answer's (bare numbers, as
    the real v2 answers give them), each a made-up share of the AI likelihood."""
    likelihood = round(scores.ai_likelihood(look), 6)
    is_ai = likelihood >= 0.5
    names = list((template or {}).get("generator") or {}) or ["midjourney", "dall_e", "stable_diffusion"]
    weights = [look.chance("generator:" + name) ** 3 for name in names]
    total = sum(weights) or 1.0
    return {
        "verdict": "ai" if is_ai else "human",
        "ai": {"confidence": likelihood, "is_detected": is_ai},
        "human": {"confidence": round(1 - likelihood, 6), "is_detected": not is_ai},
        "generator": {name: round(likelihood * w / total, 6) for name, w in zip(names, weights, strict=True)},
    }
