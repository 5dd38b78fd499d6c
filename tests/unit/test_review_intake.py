"""Which results go to review, what a result written again keeps, and the ids reviews go by."""

from __future__ import annotations

import base64

import pytest

from image_analysis.merge import Thresholds
from image_analysis.models import AIGenerated, AnalysisResult, Moderation, ModerationCategory, Review
from image_analysis.objects import clean_verdict
from image_analysis.review.config import ReviewConfig
from image_analysis.review.effects import decision_of
from image_analysis.review.ids import ReviewId
from image_analysis.review.intake import PassiveReview, ReviewIntake, carried, within_margin

SHA = "a" * 64


def result(status="succeeded", flags=(), sha256=SHA, nsfw=0.0, ai=None, review=None, **extra) -> AnalysisResult:
    moderation = Moderation(
        nsfw_score=nsfw,
        categories=[ModerationCategory(name="explicit", confidence=nsfw, provider="imagga", source_label="nsfw")],
    )
    ai_generated = AIGenerated(verdict="ai", confidence=ai, provider="aiornot") if ai is not None else None
    return AnalysisResult(
        bucket="photos",
        key="a#b.jpg",
        status=status,
        flags=list(flags),
        sha256=sha256,
        moderation=moderation,
        ai_generated=ai_generated,
        review=review,
        analyzed_at="2026-05-01T00:00:00.000Z",
        **extra,
    )


class Queue:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.extras: list[dict] = []

    def open(self, r, extra=None):
        self.calls.append(("open", r.review.status))
        self.extras.append(extra or {})

    def close(self, rid):
        self.calls.append(("close", rid.plain))

    def heal(self, r):
        self.calls.append(("heal", r.review.status))


def intake(mode="flagged", stored=None, queue=None):
    reads = []

    def read(pk, sk):
        reads.append((pk, sk))
        return stored

    made = ReviewIntake(mode=mode, margin=0.15, thresholds=Thresholds(), queue=queue or Queue(), read_item=read)
    return made, reads


def test_a_flagged_result_opens_a_pending_review_and_an_unflagged_one_none():
    made, reads = intake()
    assert made.prepare(result(flags=["nsfw"], nsfw=0.9), None).result.review == Review(status="pending")
    assert made.prepare(result(nsfw=0.7), None).result.review is None
    assert reads == []  # nothing stored: nothing to read again


def test_borderline_also_reviews_scores_within_the_margin_under_a_threshold():
    made, _ = intake(mode="borderline")
    assert made.prepare(result(nsfw=0.66), None).result.review == Review(status="pending")  # 0.8 - 0.15 = 0.65
    assert made.prepare(result(nsfw=0.64), None).result.review is None
    assert made.prepare(result(ai=0.7), None).result.review == Review(status="pending")
    # A rejected or failed result decided nothing a person could review.
    assert made.prepare(result(status="rejected", nsfw=0.9), None).result.review is None
    assert within_margin(result(nsfw=0.5), Thresholds(categories={"explicit": 0.6}), 0.15)


def test_the_same_bytes_keep_the_decision_read_again_before_the_write():
    approved = {"review": {"status": "approved", "decided_by": "arn:x", "appeals": 0}, "sha256": SHA}
    stale = {"pk": "photos/a#b.jpg", "sk": "null", "review": {"status": "pending"}, "sha256": SHA, "flags": ["nsfw"]}
    made, reads = intake(stored={**stale, **approved})
    again, carried_from = made.prepare(result(flags=["nsfw"], nsfw=0.9), stale)
    # A moderator approved while the vendors answered: the write keeps the approval, not the stale pending,
    # and holds only while the item still carries that approval.
    assert again.review.status == "approved" and reads == [("photos/a#b.jpg", "null")]
    assert carried_from == approved["review"]


def test_new_bytes_reopen_and_a_new_flag_reopens_an_approval():
    stored = {"pk": "p", "sk": "null", "review": {"status": "rejected", "appeals": 1}, "sha256": "b" * 64}
    made, _ = intake(stored=stored)
    reopened = made.prepare(result(flags=["nsfw"], nsfw=0.9), stored)
    # A review of other bytes is not carried over: the write does not depend on it.
    assert reopened.result.review == Review(status="pending") and reopened.carried_from is None
    approved = {"review": {"status": "approved", "appeals": 2}, "sha256": SHA, "flags": ["nsfw"]}
    assert carried(result(flags=["nsfw"]), approved).status == "approved"
    assert carried(result(flags=["nsfw", "ai_generated"]), approved) == Review(status="pending", appeals=2)
    assert carried(result(flags=["nsfw"]), {**approved, "deleted_at": "2026"}) is None


def test_the_queue_follows_the_result_open_reopen_close_and_nothing_for_a_carried_review():
    queue = Queue()
    made, _ = intake(queue=queue)
    pending = result(flags=["nsfw"], review=Review(status="pending"))
    made.record(pending, None)
    stored = {"pk": "photos/a#b.jpg", "sk": "null", "sha256": SHA, "review": {"status": "pending", "appeals": 0}}
    made.record(pending, stored)  # carried over unchanged: no write
    made.record(result(sha256="c" * 64), stored)  # new bytes, no review needed: the old item goes
    assert queue.calls == [("open", "pending"), ("close", "photos/a#b.jpg#null")]


def test_off_keeps_an_earlier_decision_from_the_item_already_read_and_asks_nothing():
    stored = {"review": {"status": "rejected", "decided_by": "arn:y", "appeals": 0}, "sha256": SHA}
    kept, carried_from = PassiveReview().prepare(result(flags=["nsfw"]), stored)
    assert kept.review.status == "rejected" and kept.review.decided_by == "arn:y"
    assert carried_from == stored["review"]
    assert PassiveReview().prepare(result(flags=["nsfw"]), None).result.review is None


@pytest.mark.parametrize(
    ("status", "flags", "review", "clean"),
    [
        ("succeeded", [], None, True),
        ("partial", [], None, False),  # a provider that did not answer is no verdict of "safe"
        ("rejected", [], None, False),
        ("succeeded", ["nsfw"], None, False),
        ("succeeded", ["nsfw"], Review(status="approved"), True),
        ("succeeded", [], Review(status="rejected"), False),
        ("succeeded", ["nsfw"], Review(status="pending"), False),
        ("succeeded", [], Review(status="pending"), True),  # borderline: clean by the contract's rule
    ],
)
def test_the_gate_opens_for_a_complete_unflagged_result_or_an_approval(status, flags, review, clean):
    assert clean_verdict(result(status=status, flags=flags, review=review)) is clean


def test_review_ids_are_base64url_of_bucket_key_and_version_and_keys_may_hold_hashes():
    rid = ReviewId("photos", "2024/a#b.jpg", None)
    assert rid.plain == "photos/2024/a#b.jpg#null"
    assert rid.encoded == base64.urlsafe_b64encode(b"photos/2024/a#b.jpg#null").decode()
    assert ReviewId.decode(rid.encoded) == rid
    assert ReviewId.decode(rid.encoded.rstrip("=")) == rid  # without its padding too
    versioned = ReviewId("photos", "x.png", "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert ReviewId.decode(versioned.encoded) == versioned
    with pytest.raises(ValueError):
        ReviewId.decode("not base64 at all!")
    with pytest.raises(ValueError):
        ReviewId.parse_plain("photos-without-key#null")


def test_configuration_is_refused_when_it_cannot_work():
    assert ReviewConfig.from_env({}).mode == "off"
    with pytest.raises(ValueError, match="REVIEW_QUEUE_TABLE"):
        ReviewConfig.from_env({"REVIEW_MODE": "flagged"})
    with pytest.raises(ValueError, match="REVIEW_MODE must be one of"):
        ReviewConfig.from_env({"REVIEW_MODE": "sometimes"})
    with pytest.raises(ValueError, match="REVIEW_MARGIN"):
        ReviewConfig.from_env({"REVIEW_MARGIN": "2"})
    config = ReviewConfig.from_env({"DELIVERY_GATE": "closed", "REJECT_ACTION": "delete"})
    assert config.delivery_gate and config.reject_action == "delete"


def test_the_effects_queue_reads_raw_and_enveloped_messages_and_nothing_else():
    body = '{"type": "image.reviewed", "decision_id": "d1"}'
    assert decision_of(body)["decision_id"] == "d1"
    envelope = '{"Type": "Notification", "Message": "{\\"type\\": \\"image.reviewed\\", \\"decision_id\\": \\"d2\\"}"}'
    assert decision_of(envelope)["decision_id"] == "d2"
    assert decision_of('{"type": "image.flagged"}') is None and decision_of("not json") is None
