"""The pipeline's seam to the banks, without AWS: what a known_bad match skips, what a result carries,
the hash lists ``bank import`` reads, and the rescan request in an event."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from image_analysis.analyzers.pdq import PdqHash, pdq_hash
from image_analysis.banks.formats import parse_lines
from image_analysis.banks.matcher import AddedEntries, BankMatcher, BankView
from image_analysis.banks.model import Bank
from image_analysis.banks.screening import BankScreening
from image_analysis.events import parse_event
from image_analysis.models import BankMatch
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
    plan = orchestrator([with_pdq(BRIDGE), vendor]).run(request(), skip_vendors=per_image.skip_vendors)
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
    assert per_image.skip_vendors is None
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
