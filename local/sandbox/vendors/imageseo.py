"""ImageSEO as the sandbox plays it: rules quoted from shared/seeds/imageseo-image-reports.md.

Successes (``base.py`` explains the two modes):

- image-driven (default): the documented report with made-up ``labels`` and ``alts`` from the pixels
  of the image sent (``scores.py``; not a model), named in the asked ``lang`` (a small table knows fr,
  de and es; other languages get the English word). ``src`` is the file name, ``type`` ``"FILE"``: the
  docs show a report for a URL only (``"type": "URL"``), so these two values, the sizes as strings of
  numbers, and an empty ``entity`` are the sandbox's assumption. A ``src`` URL is not fetched: its
  report is made from the URL's text;
- saved (``answers="saved"``, or ``set_response``): tests/fixtures/imageseo/ byte for byte (in its
  saved language, whatever ``lang`` asks). A saved failure is served with the status the docs give it:
  ``no_report_docs.json`` with 404 ("404 Could not find a cake matching this query." tab:
  ``{"success": false, "code": "no_report"}``).

The docs document that one failure body, ``{"success": false, "code": ...}``, and no status or code for
auth, missing fields or faults. The sandbox uses the same shape for every refusal with codes of its own
(``unauthorized``, ``missing_image``, ``invalid_lang``, ``unsupported_format`` and HTTP reasons for
faults) and the statuses 401/400/415: those are the sandbox's choice, not ImageSEO's documentation.
"""

from __future__ import annotations

import http
import re
from typing import Any, ClassVar

from local.sandbox import scores
from local.sandbox.base import Route, SandboxRequest, SandboxResponse, SandboxVendor
from local.sandbox.look import Look, look_at

# Saved failures and the status the docs show them with.
FIXTURE_STATUS: dict[str, int] = {"no_report_docs.json": 404}

# "lang | string | Example : 'fr'. You can find the list of languages supported on /public/langs": the list
# is not in the seed, so the sandbox asks only for the shape of a language code.
_LANG = re.compile(r"^[a-z]{2,3}([-_][a-z0-9]{2,4})?$")


def _format(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


class ImageSeoSandbox(SandboxVendor):
    name: ClassVar[str] = "imageseo"
    credential_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    default_credentials: ClassVar[dict[str, str]] = {"api_key": "sandbox-key"}
    default_responses: ClassVar[dict[str, str]] = {"images": "image_report_docs.json"}
    # No format list is documented; the sandbox takes JPEG and PNG (what the adapter sends), so that an
    # unconverted HEIC, WebP or GIF fails here.
    accepted_formats: ClassVar[frozenset[str]] = frozenset({"jpeg", "png"})

    def routes(self) -> list[Route]:
        # "POST https://api.imageseo.io/v1/external/projects/images"
        return [Route.of("images", "POST", r"/v1/external/projects/images", self._images)]

    def error(self, status: int, text: str) -> SandboxResponse:
        # The documented failure shape: {"success": false, "code": "no_report"}.
        return SandboxResponse.json(status, {"success": False, "code": text})

    def error_text(self, status: int) -> str:
        try:
            return http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            return f"http_{status}"

    def saved(self, route: str) -> SandboxResponse:
        fixture = self.responses[route]
        return SandboxResponse.file(self.fixtures_dir / fixture, FIXTURE_STATUS.get(fixture, 200))

    def authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        # "Headers | Authentication | string | {YOUR_API_KEY}": the key itself, in a header named
        # Authentication (not Authorization, and no "Bearer").
        if request.header("authentication") != self.credentials["api_key"]:
            return self.error(401, "unauthorized")
        return None

    def _images(self, request: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        # "lang | string | Example : 'fr'."
        lang = request.param("lang")
        if lang is not None and not _LANG.match(lang):
            return self.error(400, "invalid_lang")
        # "One of the two is required (imageFile or src)"; "imageFile | object | Image FILE ( Corresponds
        # to a file )"; "src | string | Image URL".
        uploads = request.files.get("imageFile", [])
        if uploads:
            if _format(uploads[0].data) not in self.accepted_formats:
                return self.error(415, "unsupported_format")
        elif not request.param("src"):
            return self.error(400, "missing_image")
        if not self.image_driven("images"):
            return self.saved("images")
        if uploads:
            look, src, kind = look_at(uploads[0].data), uploads[0].filename or "", "FILE"
        else:
            src = request.param("src") or ""
            look, kind = look_at(src.encode()), "URL"  # the sandbox does not fetch the URL
        return self.made_up(_report(look, lang or "en", src, kind))


def _report(look: Look, lang: str, src: str, kind: str) -> dict[str, Any]:
    """The documented report with made-up labels and alts (``scores.py``; not a model), named in ``lang``
    (fr, de and es from a small table; other languages get the English word). ``entity`` (a Knowledge
    Graph id in the docs) is left empty: the sandbox knows no ids."""
    words = [(word, score) for word, score in scores.tags(look) if score >= 0.2]
    colours = {parent for _, _, parent in scores.PALETTE}
    things = [(word, score) for word, score in words if word not in colours]

    def named(word: str) -> str:
        return scores.title(scores.translated(word, lang))

    labels = [
        {
            "name": named(word),
            "score": round(score * 100, 6),
            "entity": "",
            "link_google": f"https://www.google.com/search?q={named(word)}",
        }
        for word, score in words[:3]
    ]
    alts = [
        {
            "name": named(word),
            "score": round(score * 100, 6),
            "entity": "",
            "scoring": round(score, 6),
            "link_google": f"https://www.google.com/search?q={named(word)}&tbm=isch",
        }
        for word, score in things[:3]
    ]
    return {
        "success": True,
        "result": {
            "labels": labels,
            "alts": alts,
            "src": src,
            # The docs' example gives these as strings ("height": "", "weight": "224662").
            "height": str(look.height) if look.height else "",
            "width": str(look.width) if look.width else "",
            "weight": str(look.size_bytes),
            "encoding": None,
            "type": kind,
        },
    }
