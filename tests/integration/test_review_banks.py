"""Review decisions feed the hash bank ``rejected``: a rejection adds the image's PDQ hash, so that a
re-upload of the same picture (resized, under another key) is flagged known_bad; an approval after an
appeal takes the hash out again. Against the emulator, through the command line and the review function."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image, PngImagePlugin

from tests.integration.conftest import SAMPLES
from tests.integration.review_support import Uploads, cli, published

pytestmark = pytest.mark.integration


def generated_photo(side: int) -> bytes:
    """A real photo (a hashable picture, PDQ quality well over 50) with the text chunk an image generator
    writes: the builtin provider flags it ai_generated."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "an astronaut\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 11")
    photo = Image.open(SAMPLES / "skimage-astronaut.png").convert("RGB").resize((side, side))
    out = io.BytesIO()
    photo.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def bank_match(stack, capsys, path) -> dict:
    code, out, err = cli(stack, capsys, "bank", "match", str(path), "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_rejection_banks_the_hash_and_an_approval_after_appeal_takes_it_out(
    stack, review, review_handler, prefix, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("REVIEW_MODE", "flagged")
    published(review)
    uploads = Uploads(stack.bucket)
    key = f"{prefix}rejected.png"
    uploads.put(key, generated_photo(512))
    url = f"s3://{stack.bucket}/{key}"
    assert cli(stack, capsys, "review", "reject", url, "--reason", "not allowed here")[0] == 0
    assert review.drain_effects(review_handler) >= 1

    # The same picture, smaller and under another name, now matches the bank "rejected" (known_bad).
    again = tmp_path / "again.png"
    again.write_bytes(generated_photo(300))
    found = bank_match(stack, capsys, again)
    assert found["known_bad"] is True
    assert [m["bank"] for m in found["matches"]] == ["rejected"] and found["matches"][0]["label"] == url
    reupload = f"{prefix}reupload.png"
    uploads.put(reupload, again.read_bytes())
    from tests.integration.test_review_cli import result_item

    stored = result_item(stack, reupload)
    assert "known_bad" in stored["flags"] and stored["matches"][0]["bank"] == "rejected"

    # Appeal, then approval: the hash leaves the bank.
    assert cli(stack, capsys, "review", "appeal", url, "--reason", "it is a costume")[0] == 0
    assert cli(stack, capsys, "review", "approve", url)[0] == 0
    assert review.drain_effects(review_handler) >= 1
    assert bank_match(stack, capsys, again)["matches"] == []
