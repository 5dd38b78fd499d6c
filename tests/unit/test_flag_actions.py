"""What a written result does, each part once and in a safe order: tags, then the alert (once per object
version and flag set), finished by a later delivery when a failure or a crash cut it short."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from image_analysis.alert_ledger import MemoryAlertLedger
from image_analysis.alerts import alert_id_for
from image_analysis.events import ObjectRef
from image_analysis.flag_actions import FlagActions
from image_analysis.models import AIGenerated, AnalysisResult, Quarantine, Review
from image_analysis.objects import ObjectReader
from image_analysis.providers.base import Deadline
from image_analysis.store import to_item

REF = ObjectRef("uploads", "a.png", None, "etag-a", 10, "0055AED6DCD90281E5", "ObjectCreated:Put")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class S3:
    """One unversioned key: its ETag and tags, and the faults a test asks for."""

    def __init__(self, etag: str = "etag-a") -> None:
        self.etag = etag
        self.tags: list[dict[str, str]] = []
        self.fail_tagging = False
        self.replace_with: str | None = None  # the key is overwritten with these bytes while we tag

    def head_object(self, **target: Any) -> dict:
        if target.get("IfMatch", f'"{self.etag}"') != f'"{self.etag}"':
            raise ClientError(
                {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}}, "HeadObject"
            )
        return {}

    def get_object_tagging(self, **target: Any) -> dict:
        return {"TagSet": list(self.tags)}

    def delete_object_tagging(self, **target: Any) -> dict:
        if self.fail_tagging:
            raise ClientError({"Error": {"Code": "SlowDown"}}, "DeleteObjectTagging")
        self.tags = []
        return {}

    def put_object_tagging(self, Tagging: dict, **target: Any) -> dict:
        if self.fail_tagging:
            raise ClientError({"Error": {"Code": "SlowDown"}}, "PutObjectTagging")
        if self.replace_with is not None:
            self.etag, self.tags, self.replace_with = self.replace_with, [], None
        self.tags = list(Tagging["TagSet"])
        return {}


class Store:
    table_name = "results"

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict] = {}
        self.alerted: list[str] = []

    def get(self, pk: str, sk: str) -> dict | None:
        return self.items.get((pk, sk))

    def mark_alerted(self, pk: str, sk: str, alert_id: str, sequence: str) -> bool:
        self.alerted.append(alert_id)
        self.items.setdefault((pk, sk), {})["alert_id"] = alert_id
        return True

    def mark_quarantine(self, pk: str, sk: str, sequence: str, quarantine: Quarantine) -> bool:
        self.items.setdefault((pk, sk), {})["quarantine"] = quarantine.model_dump()
        return True


class Publisher:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.down = False

    def publish(self, alert: Any, providers: list[str]) -> str:
        if self.down:
            raise RuntimeError("SNS unavailable")
        self.sent.append(alert)
        return "m"


def result(flags: list[str], etag: str = "etag-a") -> AnalysisResult:
    return AnalysisResult(
        bucket="uploads",
        key="a.png",
        etag=etag,
        status="succeeded",
        flags=flags,
        ai_generated=AIGenerated(verdict="ai", confidence=0.95, provider="builtin"),
        analyzed_at="2026-12-07T10:00:00.000Z",
    )


def actions_on(s3, store, publisher, ledger, clock, delivery_gate: bool = False) -> FlagActions:
    return FlagActions(
        reader=ObjectReader(s3, 10_000_000),
        store=store,
        publisher=publisher,
        ledger=ledger,
        quarantine_tags=True,
        delivery_gate=delivery_gate,
        clock=clock,
        sleep=lambda seconds: None,
    )


@pytest.fixture
def world():
    clock, s3, store, publisher = Clock(), S3(), Store(), Publisher()
    ledger = MemoryAlertLedger(clock)
    return actions_on(s3, store, publisher, ledger, clock), s3, store, publisher, ledger, clock


def test_tags_go_on_before_the_alert_and_a_failed_publish_is_finished_by_the_next_delivery(world):
    actions, s3, store, publisher, _, _ = world
    publisher.down = True
    with pytest.raises(RuntimeError):
        actions.after_write(REF, result(["nsfw"]), "1", Deadline(60), None)
    assert {t["Key"] for t in s3.tags} == {"moderation", "flags"}  # quarantined although nobody was told
    publisher.down = False
    item = {**to_item(result(["nsfw"]), "1"), **store.items[("uploads/a.png", "null")]}
    settled = actions.heal(REF, item, Deadline(60))
    assert settled.alerted and len(publisher.sent) == 1 and not settled.retry


def test_a_tag_that_could_not_be_applied_hands_the_record_back_and_the_alert_still_goes(world):
    actions, s3, store, publisher, _, _ = world
    s3.fail_tagging = True
    settled = actions.after_write(REF, result(["nsfw"]), "1", Deadline(60), None)
    assert settled.retry and "quarantine tags" in settled.reason
    assert len(publisher.sent) == 1
    # Next delivery: the item has its alert but no quarantine: the tags are applied, nothing is sent again.
    s3.fail_tagging = False
    item = {**to_item(result(["nsfw"]), "1"), "alert_id": store.alerted[-1]}
    settled = actions.heal(REF, item, Deadline(60))
    assert not settled.retry and {t["Key"] for t in s3.tags} == {"moderation", "flags"}
    assert len(publisher.sent) == 1


def test_a_result_that_adds_a_flag_alerts_once_more_with_its_own_id_and_the_same_set_never_twice(world):
    actions, _, _, publisher, _, _ = world
    for flags in (["nsfw"], ["nsfw", "ai_generated"], ["nsfw"], ["ai_generated", "nsfw"]):
        actions.after_write(REF, result(flags), "1", Deadline(60), None)
    ids = [alert.alert_id for alert in publisher.sent]
    assert ids == [
        alert_id_for("uploads/a.png", "null", "etag-a", ["nsfw"]),
        alert_id_for("uploads/a.png", "null", "etag-a", ["nsfw", "ai_generated"]),
    ]


def test_a_live_claim_of_another_delivery_sends_the_record_back_and_an_expired_one_is_taken_over(world):
    actions, _, _, publisher, ledger, clock = world
    alert_id = alert_id_for("uploads/a.png", "null", "etag-a", ["nsfw"])
    assert ledger.claim(alert_id, until=clock.now + 120, token="the-writer-who-died")
    settled = actions.after_write(REF, result(["nsfw"]), "1", Deadline(60), None)
    assert settled.retry and publisher.sent == []
    clock.now += 121  # past the writer's deadline
    settled = actions.after_write(REF, result(["nsfw"]), "1", Deadline(60), None)
    assert settled.alerted and [a.alert_id for a in publisher.sent] == [alert_id]


def test_tags_that_land_on_newer_bytes_are_taken_off_unless_those_are_flagged_themselves(world):
    actions, s3, store, publisher, _, _ = world
    s3.replace_with = "etag-b"  # overwritten between our read and our tagging
    actions.after_write(REF, result(["nsfw"]), "1", Deadline(60), None)
    assert s3.etag == "etag-b" and s3.tags == []  # B's own result decides B's tags
    assert len(publisher.sent) == 1  # A was flagged: its alert stands
    # When B's result is already in and flagged, the tags stay where they are.
    s3.replace_with = "etag-c"
    store.items[("uploads/a.png", "null")] = {"etag": "etag-c", "flags": ["nsfw"], "status": "succeeded"}
    actions.after_write(REF, result(["nsfw", "ai_generated"]), "1", Deadline(60), None)
    assert {t["Key"] for t in s3.tags} == {"moderation", "flags"}


def test_an_unflagged_result_takes_the_tags_off_only_when_the_item_it_replaced_was_flagged(world):
    actions, s3, _, _, _, _ = world
    s3.tags = [{"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "nsfw"}]
    actions.after_write(REF, result([]), "2", Deadline(60), replaced={"flags": []})
    assert len(s3.tags) == 2
    actions.after_write(REF, result([]), "2", Deadline(60), replaced={"flags": ["nsfw"]})
    assert s3.tags == []


QUARANTINED = [{"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "nsfw"}]


def test_tags_that_could_not_come_off_a_clean_object_hand_the_record_back_until_they_do(world):
    actions, s3, _, _, _, _ = world
    s3.tags, s3.fail_tagging = list(QUARANTINED), True
    settled = actions.after_write(REF, result([]), "2", Deadline(60), replaced={"flags": ["nsfw"]})
    assert settled.retry and "could not be taken off" in settled.reason and s3.tags == QUARANTINED
    item = to_item(result([]), "2")
    assert actions.heal(REF, item, Deadline(60)).retry  # still failing: back again
    s3.fail_tagging = False
    settled = actions.heal(REF, item, Deadline(60))
    assert not settled.retry and s3.tags == []


def test_a_later_clean_result_of_the_same_bytes_takes_off_tags_an_earlier_one_could_not(world):
    """Found by the model: a reprocess's untag failed and its record came back, but another reprocess of the
    same bytes wrote first. The item it replaced was clean already, so nothing took the tags off."""
    actions, s3, _, _, _, _ = world
    s3.tags, s3.fail_tagging = list(QUARANTINED), True
    assert actions.after_write(REF, result([]), "2", Deadline(60), replaced=to_item(result(["nsfw"]), "1")).retry
    s3.fail_tagging = False
    assert not actions.after_write(REF, result([]), "2", Deadline(60), replaced=to_item(result([]), "2")).retry
    assert s3.tags == []


def test_heal_takes_the_tags_off_a_clean_result_only_for_the_bytes_the_key_still_holds(world):
    actions, s3, _, _, _, _ = world
    # A crash between the clean result's write and the untag: the next delivery finishes it.
    s3.tags = list(QUARANTINED)
    assert not actions.heal(REF, to_item(result([]), "2"), Deadline(60)).retry
    assert s3.tags == []
    # Newer bytes under the key carry their own result's tags: the older bytes' clean item leaves them.
    s3.etag, s3.tags = "etag-b", list(QUARANTINED)
    assert not actions.heal(REF, to_item(result([]), "2"), Deadline(60)).retry
    assert s3.tags == QUARANTINED
    # So does an item of other bytes than the event's, and a partial answer (it decided nothing).
    ref_b = ObjectRef("uploads", "a.png", None, "etag-b", 10, "0055AED6DCD90281E6", "ObjectCreated:Put")
    actions.heal(ref_b, to_item(result([], etag="etag-a"), "2"), Deadline(60))
    partial = to_item(result([], etag="etag-b").model_copy(update={"status": "partial"}), "3")
    actions.heal(ref_b, partial, Deadline(60))
    assert s3.tags == QUARANTINED


def test_heal_takes_our_tags_off_before_the_verdict_so_nine_tags_of_the_users_leave_it_room(world):
    """Found by the model: a clean result written, then the invocation died before the untag. With nine tags
    of the user's, our moderation tag held the tenth slot, so a verdict set before the untag found no
    room, and the clean version stayed unreadable for good."""
    _, s3, store, publisher, ledger, clock = world
    gated = actions_on(s3, store, publisher, ledger, clock, delivery_gate=True)
    versioned = ObjectRef("uploads", "a.png", "v1", "etag-a", 10, "0055AED6DCD90281E5", "ObjectCreated:Put")
    users = [{"Key": f"user{i}", "Value": str(i)} for i in range(9)]
    s3.tags = [*users, {"Key": "moderation", "Value": "flagged"}]
    assert not gated.heal(versioned, to_item(result([]), "2"), Deadline(60)).retry
    assert s3.tags == [*users, {"Key": "image-analysis:verdict", "Value": "clean"}]


def test_a_rejected_object_stays_quarantined_when_a_reprocess_finds_it_clean(world):
    actions, s3, _, _, _, _ = world
    s3.tags = list(QUARANTINED)
    rejected = result([]).model_copy(update={"review": Review(status="rejected", decided_by="moderator")})
    assert not actions.after_write(REF, rejected, "2", Deadline(60), replaced={"flags": ["nsfw"]}).retry
    assert not actions.heal(REF, to_item(rejected, "2"), Deadline(60)).retry
    assert s3.tags == QUARANTINED


def test_tags_landed_on_newer_bytes_that_could_not_come_off_hand_the_record_back(world):
    actions, s3, store, _, _, _ = world
    s3.replace_with = "etag-b"  # overwritten between our read and our tagging

    def failing_delete(**target: Any) -> dict:
        raise ClientError({"Error": {"Code": "SlowDown"}}, "DeleteObjectTagging")

    s3.delete_object_tagging = failing_delete
    settled = actions.after_write(REF, result(["nsfw"]), "1", Deadline(60), None)
    assert s3.etag == "etag-b" and {t["Key"] for t in s3.tags} == {"moderation", "flags"}
    assert settled.retry and "quarantine tags" in settled.reason
    assert "quarantine" not in store.items.get(("uploads/a.png", "null"), {})


def test_vendor_calls_stop_before_the_invocation_to_leave_time_for_the_writes():
    deadline = Deadline(30.0)
    assert 24.0 < deadline.reserving(5.0).remaining() <= 25.0
    assert deadline.reserving(40.0).remaining() == 0.0
