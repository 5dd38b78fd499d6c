"""The pipeline's seam to the banks, without AWS: what a known_bad match skips (for an animation, in any
frame), what a result carries, the hash lists ``bank import`` reads, and the rescan request in an event."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from PIL import Image

from image_analysis.analyzers.pdq import PdqHash, pdq_hash
from image_analysis.banks.formats import parse_lines
from image_analysis.banks.matcher import AddedEntries, BankMatcher, BankView
from image_analysis.banks.model import Bank
from image_analysis.banks.screening import BankScreening
from image_analysis.events import parse_event
from image_analysis.frames import run_frames
from image_analysis.imaging import FrameLimits, decode
from image_analysis.models import BankMatch
from image_analysis.providers.base import AnalysisRequest, Deadline, ProviderOutput
from image_analysis.providers.builtin import BuiltinProvider
from tests.unit.test_orchestration import Fake, builtin, orchestrator, request

FIXTURES = "tests/fixtures/pdq"
BRIDGE = pdq_hash(Image.open(f"{FIXTURES}/bridge-1-original.jpg"))


class StaticMatcher(BankMatcher):
    """The banks as given, no store: what a running function would hold after its poll."""

    def __init__(self, *views: BankView) -> None:
        super().__init__(store=None)  # type: ignore[arg-type]
        self._static = {v.bank.name: v for v in views}

    def views(self):
        return self._static

    def prefetch(self) -> None:
        pass  # nothing to poll


def view(name: str, flag: str, entries: dict[int, str | None]) -> BankView:
    return BankView(Bank(name, flag=flag), None, AddedEntries(entries), frozenset(), 1)


def with_pdq(hashed: PdqHash) -> Fake:
    provider = builtin()
    analyze = provider.analyze

    def analyzed(req):
        return analyze(req).model_copy(update={"pdq": [hashed]})

    provider.analyze = analyzed  # type: ignore[method-assign]
    return provider


@pytest.mark.parametrize(("flag", "skipped"), [("known_bad", True), ("none", False)])
def test_a_known_bad_match_skips_every_vendor_and_another_match_does_not(flag: str, skipped: bool) -> None:
    screening = BankScreening(StaticMatcher(view("list", flag, {BRIDGE.value: "seen"})), skip_vendors_on_match=True)
    vendor = Fake("imagga")
    per_image = screening.for_image()
    image = request().image
    plan = orchestrator([with_pdq(BRIDGE), vendor]).run(request(), skip_vendors=per_image.skip_vendors_for(image))
    assert (vendor.calls == []) is skipped
    runs = {r.name: r for r in plan.runs}
    assert runs["imagga"].status == ("skipped" if skipped else "succeeded")
    fields = per_image.result_fields(plan.outputs())
    assert fields["matches"] == [BankMatch(bank="list", distance=0, label="seen")]
    assert per_image.flags == (["known_bad"] if flag == "known_bad" else [])


def test_without_skip_vendors_on_match_the_plan_is_unchanged_and_the_image_is_matched_once() -> None:
    calls = []
    matcher = StaticMatcher(view("list", "known_bad", {BRIDGE.value: None}))
    original = matcher.match
    matcher.match = lambda hashes: calls.append(1) or original(hashes)  # type: ignore[method-assign]
    per_image = BankScreening(matcher).for_image()
    assert per_image.skip_vendors_for(request().image) is None
    vendor = Fake("imagga")
    plan = orchestrator([with_pdq(BRIDGE), vendor]).run(request())
    assert vendor.calls == [None]
    per_image.result_fields(plan.outputs())
    assert per_image.flags == ["known_bad"]
    per_image.result_fields(plan.outputs())
    assert calls == [1]


def test_a_result_carries_the_first_frames_hash_even_without_banks() -> None:
    per_image = BankScreening().for_image()
    plan = orchestrator([with_pdq(BRIDGE)]).run(request())
    assert per_image.result_fields(plan.outputs()) == {"pdq": BRIDGE.hex, "pdq_quality": 100, "matches": []}
    assert per_image.flags == []


def test_a_low_quality_hash_is_not_matched_even_when_the_bank_holds_it() -> None:
    weak = PdqHash(BRIDGE.value, 30, None, BRIDGE.dct)
    outcome = StaticMatcher(view("list", "known_bad", {BRIDGE.value: None})).match([weak])
    assert outcome.matches == () and not outcome.known_bad
    assert outcome.skipped == "PDQ quality 30 is under 50: the hash is unreliable and is not matched"


def test_matches_are_nearest_first_across_banks_frames_and_rotations() -> None:
    mirrored = pdq_hash(Image.open(f"{FIXTURES}/bridge-1-original.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    near = BRIDGE.value ^ 0b1111  # 4 bits away
    matcher = StaticMatcher(view("b", "none", {near: "near"}), view("a", "known_bad", {BRIDGE.value: "same"}))
    frames = [PdqHash(mirrored.value, 100, 0, mirrored.dct), PdqHash(BRIDGE.value, 100, 3, BRIDGE.dct)]
    outcome = matcher.match(frames)
    assert [(m.bank, m.distance, m.label, m.frame) for m in outcome.matches] == [
        ("a", 0, "same", 3),
        ("b", 4, "near", 3),
    ]
    assert outcome.known_bad


def test_hash_lists_in_the_contracts_and_threatexchanges_formats() -> None:
    plain = parse_lines(
        [
            "# exported 2026-12-01\n",
            f"{BRIDGE.hex}\n",
            f"{BRIDGE.hex.upper()},  series 12 \n",
            f"{BRIDGE.hex},123456789,1700000000,tag1 tag2\n",  # HMA 1.x .pdq.te: the rest is the label
            "\n",
            "not a hash,label\n",
        ]
    )
    assert [(e.hash, e.label) for e in plain.entries] == [
        (BRIDGE.value, None),
        (BRIDGE.value, "series 12"),
        (BRIDGE.value, "123456789,1700000000,tag1 tag2"),
    ]
    assert [number for number, _ in plain.rejected] == [6]

    exchange = parse_lines(
        [
            "collab,signal_type,signal_str,category,tags\n",
            f"Sample Data,pdq,{BRIDGE.hex},ADULT,tag1 tag2\n",
            '"Other, Inc",video_md5,d41d8cd98f00b204e9800998ecf8427e,ADULT,\n',
            "Sample Data,pdq,abc,ADULT,\n",
        ]
    )
    assert [(e.hash, e.label) for e in exchange.entries] == [(BRIDGE.value, "Sample Data: ADULT tag1 tag2")]
    assert exchange.other_signals == 1 and [n for n, _ in exchange.rejected] == [4]


def _sqs(body: dict) -> dict:
    return {
        "Records": [
            {
                "messageId": "m1",
                "receiptHandle": "r",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
            }
        ]
    }


def _notification() -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-12-01T10:00:00.000Z",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "k.jpg", "size": 10, "eTag": "e"}},
            }
        ]
    }


def test_a_rescan_request_rides_on_an_s3_notification_and_a_plain_upload_carries_none() -> None:
    [record] = parse_event(_sqs({**_notification(), "imageAnalysis": {"rematch": {"banks": ["list"]}}})).records
    assert record.objects[0].rematch_banks == ("list",)
    [plain] = parse_event(_sqs(_notification())).records
    assert plain.objects[0].rematch_banks is None
    [bad] = parse_event(_sqs({**_notification(), "imageAnalysis": {"rematch": {"banks": "list"}}})).records
    assert not bad.objects and bad.malformed


def test_rescan_candidates_are_certain_as_stored_and_maybe_when_only_a_rotation_is_near() -> None:
    from image_analysis.banks.rescan import candidates

    photo = Image.open(f"{FIXTURES}/bridge-1-original.jpg")
    bank = view("list", "known_bad", {BRIDGE.value: None})
    mirrored = pdq_hash(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    unrelated = pdq_hash(Image.open(f"{FIXTURES}/q0122.jpg"))

    def stored(key: str, hashed: PdqHash, **extra) -> dict:
        return {"key": key, "pdq": hashed.hex, "pdq_quality": hashed.quality, "status": "succeeded", **extra}

    items = [
        stored("same", BRIDGE),
        stored("mirrored", mirrored),
        stored("unrelated", unrelated),
        stored("matched before", BRIDGE, matches=[{"bank": "list", "distance": 0}]),
        stored("weak", PdqHash(BRIDGE.value, 40)),
        stored("failed", BRIDGE, status="failed"),
        stored("gone", BRIDGE, deleted_at="2026-12-01T00:00:00Z"),
    ]
    assert [(item["key"], kind) for item, kind in candidates(bank, items)] == [("same", "match"), ("mirrored", "maybe")]


def animation(bad_frame: int) -> bytes:
    """Five different photos as GIF frames; frame ``bad_frame`` is the bridge (the bank holds the original
    JPEG's hash: the GIF's frame is a smaller, palette-reduced copy of it)."""
    photos = [Image.open(f"{FIXTURES}/{name}") for name in ("q0291.jpg", "q0122.jpg", "q0291.jpg", "q0122.jpg")]
    photos[2] = photos[2].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    photos[3] = photos[3].transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    photos.insert(bad_frame, Image.open(f"{FIXTURES}/bridge-1-original.jpg"))
    frames = [photo.convert("RGB").resize((320, 200)) for photo in photos]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def test_a_later_frame_in_a_known_bad_bank_flags_the_animation_and_keeps_every_frame_from_the_vendors() -> None:
    matcher = StaticMatcher(view("list", "known_bad", {BRIDGE.value: "seen"}))
    asked = []
    original = matcher.match
    matcher.match = lambda hashes: asked.append([h.frame for h in hashes]) or original(hashes)  # type: ignore[method-assign]
    per_image = BankScreening(matcher, skip_vendors_on_match=True).for_image()
    image = decode(animation(bad_frame=3), 10**8, frames=FrameLimits())
    vendor = Fake("imagga")

    plans = run_frames(
        orchestrator([BuiltinProvider(), vendor]),
        AnalysisRequest(image=image, object_id="id", deadline=Deadline(60)),
        skip_vendors=per_image.skip_vendors_for(image),
    )
    hashes = [h for plan in plans.plans for output in plan.outputs() for h in output.pdq]
    fields = per_image.result_fields([ProviderOutput(pdq=list(dict.fromkeys(hashes)))])

    # The rule is per image: frame 3 matched, so no frame of the file went to the vendor.
    assert vendor.calls == []
    assert {run.name: run.status for plan in plans.plans for run in plan.runs}["imagga"] == "skipped"
    [match] = fields["matches"]
    assert (match.bank, match.label, match.frame) == ("list", "seen", 3) and match.distance <= 31
    assert per_image.flags == ["known_bad"]
    assert fields["pdq"] == hashes[0].hex and hashes[0].frame == 0
    assert asked == [[0, 1, 2, 3, 4]]  # every frame's hash, matched once for the skip and the result


def test_an_animation_without_a_match_goes_to_the_vendors_frame_by_frame() -> None:
    matcher = StaticMatcher(view("list", "known_bad", {BRIDGE.value ^ (2**256 - 1): None}))  # far from all
    per_image = BankScreening(matcher, skip_vendors_on_match=True).for_image()
    image = decode(animation(bad_frame=3), 10**8, frames=FrameLimits())
    vendor = Fake("imagga")
    run_frames(
        orchestrator([BuiltinProvider(), vendor]),
        AnalysisRequest(image=image, object_id="id", deadline=Deadline(60)),
        skip_vendors=per_image.skip_vendors_for(image),
    )
    assert len(vendor.calls) == 5
    assert per_image.flags == []


def test_rescan_candidates_include_every_animation_not_matched_yet_whatever_its_first_frames_hash() -> None:
    from image_analysis.banks.rescan import candidates

    bank = view("list", "known_bad", {BRIDGE.value: None})
    unrelated = pdq_hash(Image.open(f"{FIXTURES}/q0122.jpg"))

    def stored(key: str, hashed: PdqHash, **extra) -> dict:
        return {"key": key, "pdq": hashed.hex, "pdq_quality": hashed.quality, "status": "succeeded", **extra}

    items = [
        stored("still", unrelated, frames=1),
        stored("animation", unrelated, frames=Decimal(6)),  # as DynamoDB reads a number
        stored("opens on a blank frame", PdqHash(0, 0, 0), frames=Decimal(12)),
        stored("animation matched before", unrelated, frames=6, matches=[{"bank": "list", "distance": 3}]),
        stored("animation gone", unrelated, frames=6, deleted_at="2026-12-01T00:00:00Z"),
    ]
    assert [(item["key"], kind) for item, kind in candidates(bank, items)] == [
        ("animation", "maybe"),
        ("opens on a blank frame", "maybe"),
    ]
