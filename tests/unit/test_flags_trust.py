"""Flags a moderator can trust: the cases that used to go wrong, end to end through the real orchestrator
and pipeline (providers and AWS are stand-ins here; the vendors' own payloads are the saved ones).

- an animation whose late frame is explicit is flagged, and says which frame, whatever its size (the
  vendor is sent that frame);
- an animation cut off before its last frames is partial, never clean;
- AI or Not's nsfw (raised by a family photo) is not explicit, unless a user asks for it per label;
- a confident "human" beats weak metadata that says "AI";
- AI or Not's verdict decides its flag whatever its confidence;
- Imagga's tags stay when its nsfw endpoint is down: the provider is partial, the record not retried.
"""

from __future__ import annotations

import email
import hashlib
import io
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from PIL import Image

from image_analysis.cache import CachedAnswer
from image_analysis.credentials import Credentials
from image_analysis.events import ObjectRef
from image_analysis.imaging import FrameLimits, decode
from image_analysis.merge import Thresholds, decide_flags, merged_sections
from image_analysis.models import AIGenerated, ErrorInfo, ModerationCategory
from image_analysis.objects import ObjectReader, clean_verdict
from image_analysis.orchestration import Orchestrator
from image_analysis.pipeline import Pipeline, unreadable_frames_error
from image_analysis.providers.aiornot import normalize as aiornot_normalize
from image_analysis.providers.base import AnalysisRequest, Deadline, Provider, ProviderDeps, ProviderOutput
from image_analysis.providers.builtin import BuiltinProvider
from image_analysis.providers.http import RetryPolicy
from image_analysis.providers.imagga import ImaggaProvider
from image_analysis.providers.imagga import _prepare as imagga_prepare
from image_analysis.settings import Settings
from image_analysis.store import WriteOutcome

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RED, BLUE = (220, 20, 20), (20, 40, 200)
# Encoders merge equal neighbouring frames into one: neighbours differ a little.
BLUES = [(20, 40, 200), (20, 40, 180), (20, 40, 160)]


def settings(**env: str) -> Settings:
    return Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})


class RedIsExplicit(Provider):
    """A moderation vendor that calls a mostly red picture explicit, and counts what it was sent."""

    name: ClassVar[str] = "imagga"
    capabilities: ClassVar[frozenset] = frozenset({"moderation"})

    def __init__(self) -> None:
        self.enabled = self.capabilities
        self.sent: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def create(cls, deps: ProviderDeps) -> RedIsExplicit:
        return cls()

    def analyze(self, request: AnalysisRequest) -> ProviderOutput:
        with self._lock:
            self.sent.append(request.image.sha256)
        r, g, _ = request.image.working.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        explicit = r > 150 and g < 80
        return ProviderOutput(
            moderation=[
                ModerationCategory(
                    name="explicit" if explicit else "safe",
                    confidence=0.95 if explicit else 0.99,
                    provider=self.name,
                    source_label="nsfw" if explicit else "safe",
                )
            ],
            raw={"nsfw": {"red": explicit}},
        )


def animation(colours: list[tuple[int, int, int]], fmt: str = "GIF", size: tuple[int, int] = (64, 48)) -> bytes:
    frames = [Image.new("RGB", size, colour) for colour in colours]
    out = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    return out.getvalue()


class Reader(ObjectReader):
    def __init__(self, data: bytes) -> None:
        super().__init__(None, 50_000_000)
        self.data = data

    def read(self, ref: ObjectRef) -> bytes:
        return self.data


class Store:
    table_name = "results"
    raw_archive = None

    def __init__(self) -> None:
        self.written: list[Any] = []

    def get(self, pk: str, sk: str) -> None:
        return None

    def put_result(self, result: Any, sequence: str, event_time: str | None = None, **review: Any) -> WriteOutcome:
        self.written.append(result)
        return WriteOutcome(True)

    def put_failure(self, result: Any, sequence: str, event_time: str | None = None) -> WriteOutcome:
        self.written.append(result)
        return WriteOutcome(True)

    def mark_alerted(self, *args: Any) -> bool:
        return True


class Publisher:
    def __init__(self) -> None:
        self.alerts: list[Any] = []

    def publish(self, alert: Any, providers: list[str]) -> str:
        self.alerts.append(alert)
        return "m-1"


REF = ObjectRef("uploads", "anim.gif", None, "etag", 10, "0055AED6DCD90281E5", "ObjectCreated:Put")


def run_pipeline(
    data: bytes, vendor: Provider, usage: Any = None, cache: Any = None, **env: str
) -> tuple[Any, Publisher]:
    config = settings(**env)
    orchestrator = Orchestrator({"builtin": BuiltinProvider(), vendor.name: vendor}, config, cache=cache, usage=usage)
    publisher = Publisher()
    pipeline = Pipeline(
        reader=Reader(data),
        store=Store(),
        publisher=publisher,
        orchestrator=orchestrator,
        thresholds=Thresholds.from_settings(config, orchestrator.providers.values()),
        max_pixels=100_000_000,
        frame_limits=FrameLimits(config.frame_samples, config.frame_scan_limit),
    )
    return pipeline.process(REF, Deadline(60)), publisher


# -- every frame that matters --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animation_whose_fourth_frame_is_explicit_is_flagged_and_says_which_frame(fmt: str) -> None:
    vendor = RedIsExplicit()
    outcome, publisher = run_pipeline(animation([*BLUES, RED, BLUES[0], BLUES[1]], fmt), vendor)
    result = outcome.result
    assert result.flags == ["nsfw"] and len(publisher.alerts) == 1
    assert result.frames == 6
    assert result.frames_analyzed == [0, 1, 2, 3, 4, 5]
    assert result.frames_flagged == [3]
    [explicit] = [c for c in result.moderation.categories if c.name == "explicit"]
    assert (explicit.frame, explicit.confidence) == (3, 0.95)
    assert result.moderation.nsfw_score == 0.95
    # Equal frames are sent once: frames 4 and 5 repeat frames 0 and 1.
    assert len(vendor.sent) == 4 and len(set(vendor.sent)) == 4


class Usage:
    """Today's calls per provider against a cap, as the usage table keeps them."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def reserve(self, provider: str, cap: int) -> bool:
        if self.calls.get(provider, 0) >= cap:
            return False
        self.calls[provider] = self.calls.get(provider, 0) + 1
        return True


def test_every_frame_sent_is_counted_and_priced_and_the_daily_cap_sees_each_one() -> None:
    colours = [(20, 40, 200 - 20 * i) for i in range(5)]  # five distinct frames
    usage = Usage()
    outcome, _ = run_pipeline(animation(colours), RedIsExplicit(), usage, IMAGGA_PRICE_PER_CALL="0.001")
    [run] = [r for r in outcome.result.providers if r.name == "imagga"]
    assert (run.calls, run.cost_units) == (5, 0.005)
    assert outcome.result.usage.calls_made == 5 and outcome.result.usage.estimated_cost == 0.005
    # A cap of three: the frames past it are not sent, and the result says a capability had no answer.
    capped = Usage()
    outcome, _ = run_pipeline(animation(colours), RedIsExplicit(), capped, IMAGGA_DAILY_CAP="3")
    [run] = [r for r in outcome.result.providers if r.name == "imagga"]
    assert capped.calls == {"imagga": 3} and run.calls == 3
    assert run.error is not None and run.error.code == "quota_exhausted"
    assert outcome.result.status == "partial"


def test_frames_are_sampled_evenly_with_the_last_one_included() -> None:
    colours = [(20, 40, 200 - i) for i in range(19)] + [RED]  # twenty distinct frames, the last one red
    vendor = RedIsExplicit()
    outcome, _ = run_pipeline(animation(colours), vendor, FRAME_SAMPLES="4")
    assert outcome.result.frames_analyzed == [0, 6, 13, 19]
    assert outcome.result.frames_flagged == [19]
    assert len(vendor.sent) == 4


def test_only_frames_within_the_scan_limit_are_decoded_and_sampled() -> None:
    colours = [(20, 40, 200 - i) for i in range(11)] + [RED] * 9
    outcome, _ = run_pipeline(animation(colours), RedIsExplicit(), FRAME_SAMPLES="3", FRAME_SCAN_LIMIT="10")
    assert outcome.result.frames_analyzed == [0, 4, 9]  # frames 10.. are past the scan limit
    assert outcome.result.flags == []


def test_a_still_image_is_one_frame_and_keeps_its_frames_lists_empty() -> None:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), RED).save(out, format="PNG")
    outcome, _ = run_pipeline(out.getvalue(), RedIsExplicit())
    assert outcome.result.flags == ["nsfw"]
    assert (outcome.result.frames, outcome.result.frames_analyzed, outcome.result.frames_flagged) == (1, [], [])
    assert outcome.result.moderation.categories[0].frame is None


# -- what a vendor is sent of each frame ----------------------------------------------------------------
# A stand-in vendor that reads the working copy never sees what is uploaded. These frames are large enough
# that Imagga is sent a re-encoded copy (300 px on the short side: 534x300 of a 16:9 frame, over the
# 512 px working copy), and its stand-in judges the bytes it receives.


def uploaded_image(request: httpx.Request) -> Image.Image:
    """The image in a multipart upload, as the vendor would read it."""
    message = email.message_from_bytes(
        b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.content
    )
    [part] = [p for p in message.get_payload() if p.get_param("name", header="content-disposition") == "image"]
    return Image.open(io.BytesIO(part.get_payload(decode=True))).convert("RGB")


def mean_colour(image: Image.Image) -> tuple[int, ...]:
    return image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))


def is_red(colour: tuple[int, ...]) -> bool:
    return colour[0] > 150 and colour[1] < 80


class ImaggaJudgesTheUpload:
    """Imagga's nsfw_beta as a transport: nsfw when the uploaded picture is mostly red."""

    def __init__(self) -> None:
        self.uploaded: list[str] = []  # sha256 of every upload, in the order received
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/categories/nsfw_beta"
        image = uploaded_image(request)
        with self._lock:
            self.uploaded.append(hashlib.sha256(request.content).hexdigest())
        name, confidence = ("nsfw", 95.0) if is_red(mean_colour(image)) else ("safe", 99.0)
        body = {
            "result": {"categories": [{"confidence": confidence, "name": {"en": name}}]},
            "status": {"type": "success"},
        }
        return httpx.Response(200, json=body)


def imagga_nsfw(handler: Any) -> ImaggaProvider:
    config = settings(IMAGGA_API_KEY="k", IMAGGA_API_SECRET="s", IMAGGA_ENDPOINTS="nsfw")
    deps = ProviderDeps(
        settings=config, credentials=Credentials(config), http=httpx.Client(transport=httpx.MockTransport(handler))
    )
    return ImaggaProvider.create(deps)


LATE_RED = [*BLUES, RED, BLUES[0], BLUES[1]]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_a_large_animation_whose_fourth_frame_is_explicit_is_flagged_by_what_imagga_is_sent(fmt: str) -> None:
    """Each frame's vendor copy used to be made from the decoder's image, which had moved on to the last
    frame: every upload showed frame 5, and a 1280x720 animation with an explicit frame 3 came out clean."""
    vendor = ImaggaJudgesTheUpload()
    outcome, publisher = run_pipeline(animation(LATE_RED, fmt, (1280, 720)), imagga_nsfw(vendor))
    result = outcome.result
    assert (result.status, result.flags, len(publisher.alerts)) == ("succeeded", ["nsfw"], 1)
    assert result.frames_analyzed == [0, 1, 2, 3, 4, 5]
    assert result.frames_flagged == [3]
    [explicit] = [c for c in result.moderation.categories if c.name == "explicit"]
    assert (explicit.frame, explicit.confidence) == (3, 0.95)
    # Four distinct frames, four distinct uploads (frames 4 and 5 repeat 0 and 1 and are not sent again).
    assert len(vendor.uploaded) == 4 and len(set(vendor.uploaded)) == 4


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_each_frames_vendor_copy_holds_that_frames_pixels(fmt: str) -> None:
    image = decode(animation(LATE_RED, fmt, (1280, 720)), 10**8, frames=FrameLimits())
    sent = {}
    for view in image.views:
        payload, _, size = imagga_prepare(view, 300)
        assert (size.width, size.height) == (534, 300)  # re-encoded, from the view's own master
        colour = mean_colour(Image.open(io.BytesIO(payload)))
        expected = LATE_RED[view.frame_index]
        assert all(abs(a - b) <= 2 for a, b in zip(colour, expected, strict=True)), (view.frame_index, colour)
        sent[view.frame_index] = hashlib.sha256(payload).hexdigest()
    assert sent[0] != sent[3]
    # The file's own master is frame 0 as well, not the frame the views left the decoder on.
    payload, _ = image.encoded_for(frozenset({"png"}), 10**8, 1000)
    assert mean_colour(Image.open(io.BytesIO(payload))) == BLUES[0]


class CacheOfTheBrokenRelease:
    """A content cache holding what the release that sent every frame as the last one decoded wrote: under
    the frame's sha256, Imagga's "safe" for the explicit frame."""

    def __init__(self, poisoned_sha256: str) -> None:
        self.poisoned = poisoned_sha256
        self.asked: list[str] = []

    def get(self, key: str) -> CachedAnswer | None:
        self.asked.append(key)
        if not key.startswith(f"{self.poisoned}#imagga#"):
            return None
        safe = ModerationCategory(name="safe", confidence=0.99, provider="imagga", source_label="safe")
        return CachedAnswer(ProviderOutput(moderation=[safe]), 1)

    def put(self, key: str, output: ProviderOutput, calls: int) -> bool:
        return True


def test_a_frames_answer_cached_by_the_release_that_sent_the_wrong_frame_is_never_read() -> None:
    data = animation(LATE_RED, "WEBP", (1280, 720))
    [frame3] = [v for v in decode(data, 10**8, frames=FrameLimits()).views if v.frame_index == 3]
    cache = CacheOfTheBrokenRelease(frame3.sha256)
    outcome, _ = run_pipeline(data, imagga_nsfw(ImaggaJudgesTheUpload()), cache=cache)
    assert outcome.result.flags == ["nsfw"] and outcome.result.frames_flagged == [3]
    [run] = [r for r in outcome.result.providers if r.name == "imagga"]
    assert run.status == "succeeded" and run.calls == 4  # every frame asked afresh, none served stale
    assert any(key.startswith(frame3.sha256) for key in cache.asked)  # its key does start with the bytes


# -- an animation cut off before its last frames -------------------------------------------------------


def cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


@pytest.mark.parametrize(
    ("colours", "flags", "flagged"),
    [
        # The red frame is among those cut off: nothing read is explicit, and yet it is no clean verdict.
        ([(20, 40, 200 - 10 * i) for i in range(7)] + [RED], [], []),
        # A red frame among those read still flags the file.
        ([(20, 40, 200), (20, 40, 190), RED] + [(20, 40, 170 - 10 * i) for i in range(5)], ["nsfw"], [2]),
    ],
    ids=["red frame cut off", "red frame read"],
)
def test_an_animation_cut_off_before_its_last_frames_is_partial_and_never_clean(
    colours: list[tuple[int, int, int]], flags: list[str], flagged: list[int]
) -> None:
    outcome, _ = run_pipeline(cut(animation(colours), 0.8), RedIsExplicit())
    result = outcome.result
    assert outcome.action == "done"  # the same bytes would break off again: not retried
    # Pillow finds seven frames' headers in what is left, and decodes six of them.
    assert (result.frames, result.frames_analyzed) == (7, [0, 1, 2, 3, 4, 5])
    assert result.status == "partial"
    assert result.error.code == "truncated"
    assert result.error.message.startswith("frame 6 of 7 could not be decoded")
    assert (result.flags, result.frames_flagged) == (flags, flagged)
    assert result.omitted == {"frames": 1}
    assert clean_verdict(result) is False


def test_a_provider_error_keeps_its_code_when_frames_are_also_unreadable() -> None:
    """The runbook finds results to run again by their error code (quota_exhausted): a cut-off animation
    whose vendor also ran out of quota is still found, and its message names the frames too."""
    quota = ErrorInfo(code="quota_exhausted", message="imagga: the daily cap of 3 calls is reached")
    error = unreadable_frames_error((6, 7), 8, quota)
    assert error.code == "quota_exhausted"
    assert error.message == (
        "imagga: the daily cap of 3 calls is reached; frames 6, 7 of 8 could not be decoded "
        "(the file is cut off or corrupt): not analyzed"
    )


# -- each vendor read as it documents itself ------------------------------------------------------------


def aiornot(name: str, **changes: Any) -> ProviderOutput:
    payload = json.loads((FIXTURES / "aiornot" / name).read_text())
    for path, value in changes.items():
        target = payload["report"]
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return aiornot_normalize(payload)


def test_a_family_photo_that_ai_or_not_marks_nsfw_is_not_flagged() -> None:
    # "the mere presence of a child is enough to trigger this flag": not a finding of explicit content.
    family = aiornot("v2_image_sync_1.json", nsfw__is_detected=True, ai_generated__verdict="human")
    sections = merged_sections([family])
    assert [(c.name, c.confidence, c.source_label) for c in sections["moderation"].categories] == [
        ("other", 1.0, "nsfw")
    ]
    assert sections["moderation"].nsfw_score == 0.0
    assert decide_flags(sections["moderation"], None, None, Thresholds()) == []


def test_a_user_can_choose_to_flag_on_ai_or_nots_nsfw_per_provider_label() -> None:
    config = settings(MODERATION_THRESHOLDS="aiornot.nsfw:0.5,suggestive:0.9")
    assert config.label_thresholds == {("aiornot", "nsfw"): 0.5}
    assert config.moderation_thresholds == {"suggestive": 0.9}
    thresholds = Thresholds.from_settings(config)
    family = merged_sections([aiornot("v2_image_sync_1.json", nsfw__is_detected=True)])
    clean = merged_sections([aiornot("v2_image_sync_1.json", nsfw__is_detected=False)])
    assert decide_flags(family["moderation"], None, None, thresholds) == ["nsfw"]
    assert decide_flags(clean["moderation"], None, None, thresholds) == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nosuch.nsfw:0.5", "names provider 'nosuch'"),
        ("aiornot.:0.5", "no source label"),
        ("aiornot.nsfw:2", "0 and 1"),
    ],
)
def test_provider_label_thresholds_that_could_never_work_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(MODERATION_THRESHOLDS=raw)


def test_a_label_bar_is_the_only_bar_for_that_label() -> None:
    underwear = ModerationCategory(name="suggestive", confidence=0.7, provider="imagga", source_label="underwear")
    moderation = merged_sections([ProviderOutput(moderation=[underwear])])["moderation"]
    lenient = Thresholds(categories={"suggestive": 0.5}, labels={("imagga", "underwear"): 0.9})
    strict = Thresholds(categories={"suggestive": 0.9}, labels={("imagga", "underwear"): 0.6})
    assert decide_flags(moderation, None, None, lenient) == []
    assert decide_flags(moderation, None, None, strict) == ["nsfw"]


def test_a_confident_human_beats_weak_metadata_that_says_ai() -> None:
    weak = AIGenerated(verdict="ai", confidence=0.7, evidence=["generator named in EXIF text"], provider="builtin")
    human = aiornot("v2_image_sync_1.json", ai_generated__verdict="human", ai_generated__ai__confidence=0.02)
    assert human.ai_generated.confidence == 0.02
    merged = merged_sections([ProviderOutput(ai_generated=weak), human])["ai_generated"]
    assert (merged.verdict, merged.provider) == ("human", "aiornot")
    thresholds = Thresholds(ai_generated=0.6, verdict_decides=frozenset({"aiornot"}))
    assert decide_flags(None, merged, None, thresholds) == []


def test_equally_certain_verdicts_go_to_the_provider_named_first() -> None:
    first = AIGenerated(verdict="ai", confidence=0.9, provider="builtin")
    second = AIGenerated(verdict="human", confidence=0.1, provider="aiornot")
    outputs = [ProviderOutput(ai_generated=first), ProviderOutput(ai_generated=second)]
    assert merged_sections(outputs)["ai_generated"].provider == "builtin"
    assert merged_sections(outputs[::-1])["ai_generated"].provider == "aiornot"


def test_ai_or_nots_verdict_decides_its_flag_and_a_score_only_provider_is_held_to_the_threshold() -> None:
    verdict = aiornot("v2_image_sync_1.json", ai_generated__ai__confidence=0.6)
    assert (verdict.ai_generated.verdict, verdict.ai_generated.confidence) == ("ai", 0.6)
    thresholds = Thresholds(ai_generated=0.8, verdict_decides=frozenset({"aiornot"}))
    assert decide_flags(None, verdict.ai_generated, None, thresholds) == ["ai_generated"]
    scored = AIGenerated(verdict="ai", confidence=0.6, provider="imageseo")
    assert decide_flags(None, scored, None, thresholds) == []


def test_the_runtime_knows_ai_or_not_decides_by_verdict() -> None:
    from image_analysis.providers.aiornot import AiOrNotProvider

    assert AiOrNotProvider.verdict_decides is True and BuiltinProvider.verdict_decides is False


# -- a half-answered Imagga call --------------------------------------------------------------------------


def imagga(handler: Any) -> ImaggaProvider:
    config = settings(IMAGGA_API_KEY="k", IMAGGA_API_SECRET="s")
    deps = ProviderDeps(
        settings=config,
        credentials=Credentials(config),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        extra={"retry_policy": RetryPolicy(max_attempts=2, base_delay=0), "sleep": lambda _: None},
    )
    return ImaggaProvider.create(deps)


def tags_up_nsfw_down(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v2/tags":
        return httpx.Response(200, content=(FIXTURES / "imagga" / "tags_docs.json").read_bytes())
    return httpx.Response(503, json={"status": {"type": "error", "text": "Service Unavailable"}})


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), BLUE).save(out, format="JPEG")
    return out.getvalue()


def test_imaggas_tags_stay_when_its_nsfw_endpoint_is_down_and_the_record_is_not_retried() -> None:
    outcome, _ = run_pipeline(photo(), imagga(tags_up_nsfw_down))
    result = outcome.result
    assert outcome.action == "done"
    assert result.status == "partial"
    [run] = [r for r in result.providers if r.name == "imagga"]
    assert run.status == "partial"
    assert run.error.code == "server_error"
    assert "missing nsfw" in run.error.message and "answered: tags" in run.error.message
    assert result.labels and {label.provider for label in result.labels} == {"imagga"}
    assert result.moderation is None  # no moderation answer, never an empty "clean" one
    assert run.calls == 3  # tags once, nsfw twice (the retry policy's two tries); all paid for and counted


def test_the_options_go_in_the_query_string_and_colors_skip_the_object_split() -> None:
    seen: dict[str, httpx.Request] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.path] = request
        name = "tags_docs.json" if request.url.path == "/v2/tags" else "colors_1.json"
        return httpx.Response(200, content=(FIXTURES / "imagga" / name).read_bytes())

    config = settings(
        IMAGGA_API_KEY="k",
        IMAGGA_API_SECRET="s",
        IMAGGA_ENDPOINTS="tags,colors",
        IMAGGA_TAGS_LIMIT="5",
        IMAGGA_TAGS_THRESHOLD="15",
        IMAGGA_LANGUAGE="de",
    )
    deps = ProviderDeps(
        settings=config, credentials=Credentials(config), http=httpx.Client(transport=httpx.MockTransport(handler))
    )
    ImaggaProvider.create(deps).analyze(
        AnalysisRequest(image=decode(photo(), 10**8), object_id="x", deadline=Deadline(30))
    )
    assert dict(seen["/v2/tags"].url.params) == {"language": "de", "limit": "5", "threshold": "15"}
    assert dict(seen["/v2/colors"].url.params) == {"extract_object_colors": "0"}
    assert b'name="limit"' not in seen["/v2/tags"].content


def test_a_tag_threshold_under_imaggas_floor_of_seven_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="IMAGGA_TAGS_THRESHOLD must be between 7 and 100"):
        imagga_with(IMAGGA_TAGS_THRESHOLD="5")
    assert imagga_with(IMAGGA_TAGS_THRESHOLD="7").tags_threshold == 7


def imagga_with(**env: str) -> ImaggaProvider:
    config = settings(IMAGGA_API_KEY="k", IMAGGA_API_SECRET="s", **env)
    return ImaggaProvider.create(ProviderDeps(settings=config, credentials=Credentials(config), http=httpx.Client()))
