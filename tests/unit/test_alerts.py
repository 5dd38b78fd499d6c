"""The alert message: stable id, SNS-valid subject whatever the key, filterable attributes."""

from __future__ import annotations

import json

import pytest

from image_analysis.alerts import alert_id_for, build_alert, message_for, subject_for
from image_analysis.models import AIGenerated, AnalysisResult, Moderation, ModerationCategory


def result(**overrides):
    base = dict(
        bucket="uploads",
        key="photos/cat.png",
        etag="abc",
        status="succeeded",
        sha256="0" * 64,
        flags=["nsfw", "ai_generated"],
        moderation=Moderation(
            nsfw_score=0.93,
            categories=[ModerationCategory(name="explicit", confidence=0.93, provider="imagga", source_label="nsfw")],
        ),
        ai_generated=AIGenerated(verdict="ai", confidence=0.85, provider="builtin", evidence=["png parameters"]),
        analyzed_at="2026-11-22T10:00:00.000Z",
    )
    base.update(overrides)
    return AnalysisResult(**base)


def test_alert_id_is_stable_per_object_version_and_differs_between_versions():
    first = alert_id_for("b/k", "null", "etag1", "0055", ["nsfw"])
    assert first == alert_id_for("b/k", "null", "etag1", "0055", ["nsfw"])
    assert first != alert_id_for("b/k", "null", "etag2", "0056", ["nsfw"])
    assert first != alert_id_for("b/k", "v2", "etag1", "0055", ["nsfw"])


def test_alert_id_follows_the_set_of_flags_not_their_order() -> None:
    # A later result of the same version that adds a flag alerts again with an id of its own; the same
    # flags in another order are the same alert.
    nsfw = alert_id_for("b/k", "null", "etag1", "0055", ["nsfw"])
    both = alert_id_for("b/k", "null", "etag1", "0055", ["nsfw", "known_bad"])
    assert both != nsfw
    assert both == alert_id_for("b/k", "null", "etag1", "0055", ["known_bad", "nsfw"])


@pytest.mark.parametrize(
    "key",
    ["photos/cat.png", "фото/котик 🐈.png", "a\nb\tc.png", "x" * 500, "🐈" * 80, "日本語のみ.jpg"],
)
def test_subject_is_ascii_printable_and_fewer_than_100_characters(key):
    subject = subject_for(["nsfw"], key)
    assert len(subject) < 100  # SNS: "must be less than 100 characters long"
    assert subject.isascii()
    assert all(32 <= ord(ch) < 127 for ch in subject)
    assert subject.startswith("Image flagged [nsfw]: ")


def test_message_body_and_attributes():
    alert = build_alert(result(), "id-1", "results-table")
    message = message_for(alert, ["builtin", "imagga", "imagga"])
    body = json.loads(message["Message"])
    assert body["type"] == "image.flagged"
    assert body["alert_id"] == "id-1"
    assert body["result"] == {"table": "results-table", "pk": "uploads/photos/cat.png", "sk": "null"}
    assert body["moderation"]["nsfw_score"] == 0.93
    assert "version_id" not in body  # unversioned bucket
    attributes = message["MessageAttributes"]
    assert json.loads(attributes["flags"]["StringValue"]) == ["nsfw", "ai_generated"]
    assert json.loads(attributes["providers"]["StringValue"]) == ["builtin", "imagga"]
    assert attributes["max_confidence"] == {"DataType": "Number", "StringValue": "0.9300"}
    assert attributes["bucket"]["StringValue"] == "uploads"


def test_only_the_sections_that_caused_the_alert_are_sent():
    alert = build_alert(result(flags=["ai_generated"]), "id", "t")
    assert alert.moderation is None and alert.ai_generated is not None
