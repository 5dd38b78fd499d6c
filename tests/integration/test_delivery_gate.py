"""The delivery gate against the emulator: the verdict tag on exactly the object versions that may be
served, written by version id; taken off when a later result flags the version; an approval puts it on.

The emulator does not enforce bucket policies, so what a reader is then refused is asserted from the
policy itself in tests/unit/test_review_template.py."""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlencode

import boto3
import pytest
from PIL import Image

from tests.integration.review_support import Uploads, ai_png, cli, plain_png, published

pytestmark = pytest.mark.integration
CLEAN = {"image-analysis:verdict": "clean"}


@pytest.fixture
def gate(monkeypatch, review):
    monkeypatch.setenv("DELIVERY_GATE", "closed")
    monkeypatch.setenv("REVIEW_MODE", "flagged")
    bucket = f"gated-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    published(review)
    return Uploads(bucket)


def test_a_clean_version_is_tagged_clean_and_a_flagged_one_is_not(gate, prefix):
    key = f"{prefix}photo.png"
    clean = gate.put(key, plain_png(1), tags="team=blue")
    flagged = gate.put(key, ai_png(50))
    # By version id: the clean version keeps its verdict when a flagged one lands on the same key.
    assert gate.tags(key, clean["version_id"]) == {"team": "blue", **CLEAN}
    assert gate.tags(key, flagged["version_id"]) == {}


def test_a_later_result_that_flags_the_version_takes_the_verdict_off(gate, prefix, monkeypatch):
    key = f"{prefix}later.png"
    monkeypatch.setenv("AI_GENERATED_THRESHOLD", "0.9")  # over the generator metadata's 0.85: not flagged
    upload = gate.put(key, ai_png(51))
    assert gate.tags(key, upload["version_id"]) == CLEAN
    monkeypatch.setenv("AI_GENERATED_THRESHOLD", "0.8")
    gate.redeliver(upload["event"], reprocess=str(uuid.uuid4()))
    assert gate.tags(key, upload["version_id"]) == {}


def test_ten_tags_of_the_users_own_leave_no_slot_and_the_version_stays_unreadable(gate, prefix, stack):
    key = f"{prefix}full.png"
    upload = gate.put(key, plain_png(2), tags=urlencode({f"t{i}": str(i) for i in range(10)}))
    tags = gate.tags(key, upload["version_id"])
    assert len(tags) == 10 and "image-analysis:verdict" not in tags


def test_an_approval_puts_the_verdict_on_that_version_only(gate, prefix, stack, review, review_handler, capsys):
    key = f"{prefix}approved.png"
    first = gate.put(key, ai_png(52))
    second = gate.put(key, ai_png(53))
    url = f"s3://{gate.bucket}/{key}"
    assert cli(stack, capsys, "review", "approve", url, "--version", first["version_id"])[0] == 0
    review.drain_effects(review_handler)
    assert gate.tags(key, first["version_id"]) == CLEAN
    assert gate.tags(key, second["version_id"]) == {}
    # A reprocess of the approved bytes flags them again: the approval stands, and so does the verdict.
    gate.redeliver(first["event"], reprocess=str(uuid.uuid4()))
    assert gate.tags(key, first["version_id"]) == CLEAN


def test_a_redelivery_puts_on_the_verdict_a_crash_after_the_write_left_out(gate, prefix):
    """Found by the model: the invocation dies after writing a clean result and before the verdict; every
    later delivery found the result written and did nothing more, so the clean version stayed unreadable
    for good. A duplicate delivery now finishes the verdict."""
    key = f"{prefix}crashed before the verdict.png"
    upload = gate.put(key, plain_png(3), tags="team=blue")
    # What the crash leaves: the result written, the version without its verdict.
    gate.s3.put_object_tagging(
        Bucket=gate.bucket,
        Key=key,
        VersionId=upload["version_id"],
        Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]},
    )
    gate.redeliver(upload["event"])
    assert gate.tags(key, upload["version_id"]) == {"team": "blue", **CLEAN}


def test_an_animation_cut_off_before_its_last_frames_gets_no_verdict(gate, prefix, table):
    """Its last frames were never judged: the result is partial, so the version stays unreadable (the whole
    file, every frame of it read and clean, gets its verdict)."""
    frames = [Image.new("RGB", (64, 48), (20, 40, 200 - 10 * i)) for i in range(8)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    whole = gate.put(f"{prefix}whole.gif", out.getvalue())
    assert gate.tags(f"{prefix}whole.gif", whole["version_id"]) == CLEAN
    cut = gate.put(f"{prefix}cut.gif", out.getvalue()[: int(len(out.getvalue()) * 0.8)])
    assert gate.tags(f"{prefix}cut.gif", cut["version_id"]) == {}
    item = table.get_item(Key={"pk": f"{gate.bucket}/{prefix}cut.gif", "sk": cut["version_id"]})["Item"]
    assert (item["status"], item["error"]["code"], item["flags"]) == ("partial", "truncated", [])
