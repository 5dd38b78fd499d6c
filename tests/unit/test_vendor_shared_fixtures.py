"""Every saved real vendor answer in shared/fixtures/vendors/ goes through the matching normalizer.

``CASES`` names, for each file there, its copy in tests/fixtures/ (so that the suite runs without the
shared folder), how to read it, and what must come of it: the sections a success fills, or the typed
error an error body is. Where the shared folder sits beside the repository (as in CI), each file must be
byte-identical to its copy, and a file that ``CASES`` does not know fails the suite: a new saved answer
must be given its expectation here.

Error bodies also go through the adapter over an httpx mock transport, with the HTTP status the vendor
sent them with, so that the error class, whether it is retried, and the number of requests are what the
pipeline will see.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from image_analysis.credentials import Credentials
from image_analysis.errors import BadImageError, BadResponseError, ProviderError
from image_analysis.imaging import decode
from image_analysis.providers import aiornot, imagerecognize, imagga, provider_class
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderDeps, ProviderOutput
from image_analysis.providers.http import RetryPolicy
from image_analysis.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared" / "fixtures" / "vendors"
FAST = RetryPolicy(base_delay=0.001, max_delay=0.002, safety_margin=0.0, min_try_seconds=0.0)


@dataclass(frozen=True)
class Case:
    copy: str  # under tests/fixtures/
    read: Callable[[Any], ProviderOutput]
    sections: tuple[str, ...] = ()  # filled by a success
    error: type[ProviderError] | None = None  # raised by an error body
    # For error bodies: (provider, environment, HTTP status it came with, retried?)
    over_http: tuple[str, dict[str, str], int, bool] | None = None


def _imagga(endpoint: str) -> Callable[[Any], ProviderOutput]:
    return lambda payload: imagga.normalize(endpoint, payload, sent=imagga.SentImage(640, 480))


def _aiornot(payload: Any) -> ProviderOutput:
    return aiornot.normalize(payload)


CASES: dict[str, Case] = {
    "aiornot_v1_reports_image_1.json": Case(
        "aiornot/v1_reports_image_1.json", _aiornot, ("ai_generated", "moderation", "quality")
    ),
    "aiornot_v1_reports_image_2.json": Case(
        "aiornot/v1_reports_image_2.json", _aiornot, ("ai_generated", "moderation", "quality")
    ),
    "aiornot_v2_image_sync_1.json": Case(
        "aiornot/v2_image_sync_1.json", _aiornot, ("ai_generated", "deepfake", "moderation", "quality")
    ),
    "aiornot_v2_image_sync_2.json": Case("aiornot/v2_image_sync_2.json", _aiornot, ("ai_generated",)),
    "aiornot_v2_image_sync_3.json": Case("aiornot/v2_image_sync_3.json", _aiornot, ("moderation",)),
    "aiornot_v2_image_sync_docs_example.json": Case(
        "aiornot/v2_image_sync_docs.json", _aiornot, ("ai_generated", "deepfake", "moderation", "quality")
    ),
    "imagerecognize_error_300_docs.json": Case(
        "imagerecognize/error_300_docs.json",
        lambda payload: imagerecognize.normalize("objects", payload),
        error=BadResponseError,
        # Our URL is wrong ("Note the slash at the end"): refused at once, not retried.
        over_http=("imagerecognize", {"IMAGERECOGNIZE_TYPES": "objects"}, 200, False),
    ),
    "imagga_categories_personal_photos_1.json": Case(
        "imagga/other_endpoints/categories_personal_photos_1.json", _imagga("nsfw"), ("moderation",)
    ),
    "imagga_categories_personal_photos_2.json": Case(
        "imagga/other_endpoints/categories_personal_photos_2.json", _imagga("nsfw"), ("moderation",)
    ),
    "imagga_colors_1.json": Case("imagga/colors_1.json", _imagga("colors"), ("colors",)),
    "imagga_colors_2.json": Case("imagga/colors_2.json", _imagga("colors"), ("colors",)),
    "imagga_colors_3.json": Case("imagga/colors_3.json", _imagga("colors"), ("colors",)),
    "imagga_tags_1.json": Case("imagga/tags_1.json", _imagga("tags"), ("labels",)),
    "imagga_tags_2.json": Case("imagga/tags_2.json", _imagga("tags"), ("labels",)),
    "imagga_tags_3.json": Case("imagga/tags_3.json", _imagga("tags"), ("labels",)),
    "imagga_v1_tagging_1.json": Case("imagga/v1_tagging_1.json", _imagga("tags"), ("labels",)),
    # v1 refused the image with HTTP 200: a bad image, not retried.
    "imagga_v1_tagging_error_1.json": Case(
        "imagga/v1_tagging_error_1.json",
        _imagga("tags"),
        error=BadImageError,
        over_http=("imagga", {"IMAGGA_ENDPOINTS": "tags"}, 200, False),
    ),
    # /uploads answers are not analyses: at /v2/tags they are a changed payload, a typed error.
    "imagga_uploads_1.json": Case("imagga/other_endpoints/uploads_1.json", _imagga("tags"), error=BadResponseError),
    "imagga_uploads_2.json": Case("imagga/other_endpoints/uploads_2.json", _imagga("tags"), error=BadResponseError),
    "imagga_uploads_delete_1.json": Case(
        "imagga/other_endpoints/uploads_delete_1.json", _imagga("tags"), error=BadResponseError
    ),
}

SHARED_FILES = sorted(p.name for p in SHARED.glob("*.json")) if SHARED.is_dir() else []
NAMES = sorted(set(CASES) | set(SHARED_FILES))


def _filled(output: ProviderOutput, section: str) -> bool:
    value = getattr(output, section)
    return bool(value) if isinstance(value, list) else value is not None


@pytest.mark.parametrize("name", NAMES)
def test_every_saved_vendor_answer_normalizes_or_is_a_typed_error(name: str) -> None:
    assert name in CASES, f"shared/fixtures/vendors/{name} has no case: say how to read it and what must come of it"
    case = CASES[name]
    copy = FIXTURES / case.copy
    assert copy.is_file(), f"{case.copy} is missing"
    if (SHARED / name).is_file():
        assert copy.read_bytes() == (SHARED / name).read_bytes(), f"{case.copy} differs from shared/{name}"
    payload = json.loads(copy.read_text())
    assert bool(case.sections) != bool(case.error), "a case is either a success or an error"
    if case.error is not None:
        with pytest.raises(ProviderError) as caught:
            case.read(payload)
        assert type(caught.value) is case.error
        return
    output = case.read(payload)
    empty = [s for s in case.sections if not _filled(output, s)]
    assert not empty, f"{name} normalizes to empty {', '.join(empty)}"


def _request() -> AnalysisRequest:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 120, 40)).save(out, format="PNG")
    return AnalysisRequest(image=decode(out.getvalue(), 10**8), object_id="f" * 32, deadline=Deadline(30))


OVER_HTTP = sorted(name for name, case in CASES.items() if case.over_http)


@pytest.mark.parametrize("name", OVER_HTTP)
def test_error_bodies_through_the_adapter_are_the_typed_error_the_pipeline_sees(name: str) -> None:
    case = CASES[name]
    assert case.over_http is not None and case.error is not None
    provider, env, status, retried = case.over_http
    body = (FIXTURES / case.copy).read_bytes()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    prefix = provider.upper() + "_"
    settings = Settings.from_env(
        {
            "RESULTS_TABLE": "t",
            "ALERTS_TOPIC_ARN": "a",
            f"{prefix}API_KEY": "key-0123456789",
            f"{prefix}API_SECRET": "secret-0123456789",
            "HTTP_MAX_ATTEMPTS": "3",
            **env,
        }
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": FAST, "sleep": lambda _: None},
    )
    with pytest.raises(ProviderError) as caught:
        provider_class(provider).create(deps).analyze(_request())
    assert type(caught.value) is case.error
    assert caught.value.retryable is retried
    assert len(seen) == (3 if retried else 1)  # an answer that cannot change is not asked for again


def test_a_v1_answer_at_the_v2_tags_path_lands_as_labels_through_the_adapter() -> None:
    body = (FIXTURES / "imagga" / "v1_tagging_1.json").read_bytes()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    settings = Settings.from_env(
        {
            "RESULTS_TABLE": "t",
            "ALERTS_TOPIC_ARN": "a",
            "IMAGGA_API_KEY": "key-0123456789",
            "IMAGGA_API_SECRET": "secret-0123456789",
            "IMAGGA_ENDPOINTS": "tags",
        }
    )
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": FAST, "sleep": lambda _: None},
    )
    output = provider_class("imagga").create(deps).analyze(_request())
    assert [req.url.path for req in seen] == ["/v2/tags"]
    assert len(output.labels) == 80 and (output.labels[0].name, output.labels[0].confidence) == ("field", 0.616425)
