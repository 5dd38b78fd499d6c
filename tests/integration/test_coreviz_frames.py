"""An animation through the deployed pipeline to the CoreViz sandbox, which fetches every URL it is handed.

Each sampled frame is a prepared copy of its own in the artifacts bucket: frames analyzed at the same time
must not overwrite or delete one another's copy, or CoreViz fetches nothing (a 400) or the wrong frame.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from local.driver import load_handler
from local.sandbox import VendorSandbox
from tests.integration.test_cache_and_routing import upload_and_process
from tests.integration.test_pipeline_end_to_end import item

pytestmark = pytest.mark.integration

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def animation() -> bytes:
    frames = [Image.new("RGB", (64, 48), colour) for colour in COLOURS]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def test_every_frame_reaches_coreviz_as_its_own_copy(stack, s3, table, prefix, monkeypatch) -> None:
    coreviz = VendorSandbox("coreviz")
    with coreviz as url:
        monkeypatch.setenv("PROVIDERS", "builtin,coreviz")
        monkeypatch.setenv("COREVIZ_BASE_URL", url)
        monkeypatch.setenv("COREVIZ_API_KEY", "sandbox-key")
        upload_and_process(stack, s3, load_handler(), prefix + "anim.gif", animation())
    stored = item(table, stack.bucket, prefix + "anim.gif")
    runs = {p["name"]: p for p in stored["providers"]}
    assert runs["coreviz"]["status"] == "succeeded", runs["coreviz"].get("error")
    assert stored["frames_analyzed"] == list(range(len(COLOURS)))
    fetched = coreviz.vendor.fetches
    assert [f.status for f in fetched] == [200] * len(COLOURS)
    # Six different frames, six different images fetched: none was another frame's copy.
    assert len({f.sha256 for f in fetched}) == len(COLOURS)
    artifacts = stack.function_env["ARTIFACTS_BUCKET"]
    assert s3.list_objects_v2(Bucket=artifacts, Prefix="prepared/").get("KeyCount", 0) == 0  # all deleted
