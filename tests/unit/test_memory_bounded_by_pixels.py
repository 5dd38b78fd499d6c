"""Memory is bounded by pixels, not by file size: the budget counts decoded bytes from the header, an image
larger than the whole budget runs alone, a decoder's crash on a file is a rejection and running out of
memory a retry. A cache entry that no longer validates is a miss."""

from __future__ import annotations

import io
import threading
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from image_analysis.cache import ContentCache, config_fingerprint
from image_analysis.errors import InputRejected
from image_analysis.imaging import MASTER_MAX_PIXELS, FrameLimits, decode, probe, sample_frames
from image_analysis.memory import ByteBudget
from image_analysis.providers.base import ProviderOutput
from tests.unit.test_flags_trust import REF, Publisher, Reader, Store, settings


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 20, 30) if mode == "RGB" else 0).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_the_header_says_what_a_decode_takes_before_any_pixel_is_decoded():
    data = png((4000, 3000))
    assert len(data) < 200_000  # a small file ...
    header = probe(data, max_pixels=100_000_000)
    assert (header.format, header.width, header.height, header.mode) == ("png", 4000, 3000, "RGB")
    # ... that decodes to 48 MB (Pillow keeps RGB as four bytes a pixel), plus its bounded master
    assert header.decoded_bytes == 4000 * 3000 * 4 + 4000 * 3000 * 4
    huge = probe(png((5000, 4000), "P"), 10**8)
    assert huge.decoded_bytes == 5000 * 4000 * (1 + 4) + MASTER_MAX_PIXELS * 4  # palette, its RGB copy, master
    with pytest.raises(InputRejected) as caught:
        probe(data, max_pixels=1_000_000)
    assert caught.value.code == "too_many_pixels"


def test_a_decoded_image_keeps_bounded_copies_not_its_full_size_decode():
    image = decode(png((5000, 4000)), max_pixels=100_000_000)
    master = image._master.get()
    assert master.width * master.height <= MASTER_MAX_PIXELS
    assert max(image.working.size) == 512
    assert image.retained_bytes < 5000 * 4000 * 3  # the 60 MB decode is not kept
    payload, _ = image.encoded_for(frozenset({"jpeg"}), 50_000_000)
    assert Image.open(io.BytesIO(payload)).size == master.size  # made from the master, never scaled up


def test_two_holds_growing_at_once_never_wait_for_each_other():
    budget = ByteBudget(100)
    first, second = budget.hold(), budget.hold()
    first.resize(40)
    second.resize(40)
    done = []

    def grow(hold, size):
        hold.resize(size)
        done.append(size)
        time.sleep(0.05)
        hold.release()

    threads = [threading.Thread(target=grow, args=(first, 90)), threading.Thread(target=grow, args=(second, 80))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(done) == [80, 90] and budget.used == 0


def test_an_image_larger_than_the_whole_budget_runs_alone():
    budget = ByteBudget(100)
    small = budget.hold()
    small.resize(30)
    big = budget.hold()
    started = threading.Event()

    def grow_big():
        big.resize(10_000)  # cut to the budget: it waits until nothing else is held
        started.set()

    thread = threading.Thread(target=grow_big)
    thread.start()
    assert not started.wait(0.2)
    small.release()
    assert started.wait(5)
    assert big.held == 100 and budget.used == 100
    big.release()
    thread.join()


class Memory:
    def __init__(self):
        self.sizes: list[int] = []

    def resize(self, size: int) -> None:
        self.sizes.append(size)


class NoVendor:
    """An orchestrator that must never be asked anything."""

    def prefetch(self, *args, **kwargs):
        from image_analysis.orchestration import CacheTraffic

        return CacheTraffic()

    def run(self, *args, **kwargs):
        raise AssertionError("a rejected file never reaches the providers")


def pipeline_for(data: bytes, orchestrator=None):
    from image_analysis.merge import Thresholds
    from image_analysis.pipeline import Pipeline

    return Pipeline(
        reader=Reader(data),
        store=Store(),
        publisher=Publisher(),
        orchestrator=orchestrator or NoVendor(),
        thresholds=Thresholds(),
        max_pixels=100_000_000,
        frame_limits=FrameLimits(),
    )


def test_the_pipeline_holds_the_decoded_size_while_it_decodes_and_what_it_keeps_after():
    from image_analysis.orchestration import Orchestrator
    from image_analysis.providers.base import Deadline
    from image_analysis.providers.builtin import BuiltinProvider

    data = png((6000, 4000))
    memory = Memory()
    outcome = pipeline_for(data, Orchestrator({"builtin": BuiltinProvider()}, settings())).process(
        REF, Deadline(60), memory=memory
    )
    assert outcome.result.status == "succeeded"
    assert memory.sizes[0] == len(data) + 6000 * 4000 * 4 + MASTER_MAX_PIXELS * 4  # 96 MB decoded, and the master
    assert memory.sizes[1] <= len(data) + (MASTER_MAX_PIXELS + 512 * 512) * 4  # no more than the master after


def test_a_bank_rescan_holds_the_decoded_size_before_it_decodes():
    from types import SimpleNamespace

    from image_analysis.banks.rescan import rematch

    class Matcher:
        def refresh(self, force: bool = False) -> None:
            pass

        def match(self, hashes):
            return SimpleNamespace(skipped="", matches=[])

        def views(self):
            return {}

    data = png((6000, 4000))
    memory = Memory()
    existing = {"pk": "uploads/anim.gif", "sk": "null", "status": "succeeded", "etag": REF.etag, "flags": []}
    done = rematch(
        REF,
        existing,
        reader=Reader(data),
        store=Store(),
        banks=SimpleNamespace(matcher=Matcher()),
        max_pixels=100_000_000,
        memory=memory,
    )
    assert done.status == "unchanged"
    assert memory.sizes == [len(data) + 6000 * 4000 * 4 + MASTER_MAX_PIXELS * 4]


@pytest.mark.parametrize(
    "crash", [IndexError("tile index out of range"), RuntimeError("Invalid input: bad"), ZeroDivisionError()]
)
def test_a_decoder_crashing_on_a_file_is_a_rejection_never_a_retry(monkeypatch, crash):
    def load(self):
        raise crash

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)
    outcome = pipeline_for(png((64, 64))).process(
        REF, __import__("image_analysis.providers.base", fromlist=["Deadline"]).Deadline(60)
    )
    assert outcome.action == "done" and outcome.result.status == "rejected"
    assert outcome.result.error.code == "truncated"
    assert type(crash).__name__ in outcome.result.error.message


def test_running_out_of_memory_while_decoding_is_a_retry_not_bad_input(monkeypatch):
    def load(self):
        raise MemoryError

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)
    from image_analysis.providers.base import Deadline

    outcome = pipeline_for(png((64, 64))).process(REF, Deadline(60))
    assert outcome.action == "retry" and outcome.result.status == "failed"
    assert "out of memory" in outcome.result.error.message


@pytest.mark.parametrize(
    ("frames", "limits", "expected"),
    [
        (1, FrameLimits(8, 300), [0]),
        (5, FrameLimits(8, 300), [0, 1, 2, 3, 4]),
        (300, FrameLimits(8, 300), [0, 43, 85, 128, 171, 214, 256, 299]),
        (1000, FrameLimits(3, 300), [0, 150, 299]),
        (10, FrameLimits(1, 300), [0]),
    ],
)
def test_frames_are_sampled_evenly_first_and_last_included(frames, limits, expected):
    assert sample_frames(frames, limits) == expected


# -- the content cache -------------------------------------------------------------------------------------


class Dynamo:
    def __init__(self, items):
        self.items = items

    def get_item(self, TableName, Key):
        item = self.items.get(Key["pk"]["S"])
        return {"Item": item} if item else {}


def entry(blob: bytes) -> dict:
    return {"output": {"B": blob}, "calls": {"N": "1"}, "expires_at": {"N": str(int(time.time()) + 60)}}


def test_a_cache_entry_that_does_not_decode_or_validate_is_a_miss():
    old_shape = zlib.compress(
        b'{"moderation": [{"name": "porn", "confidence": 1.0, "provider": "x", "source_label": "p"}]}'
    )
    cache = ContentCache(
        "cache",
        Dynamo({"bad-zlib": entry(b"not zlib"), "old": entry(old_shape), "json": entry(zlib.compress(b"[1, 2"))}),
        60,
    )
    assert cache.get("bad-zlib") is None
    assert cache.get("old") is None
    assert cache.get("json") is None
    good = zlib.compress(ProviderOutput(labels=[]).model_dump_json().encode())
    assert ContentCache("cache", Dynamo({"k": entry(good)}), 60).get("k") is not None


def test_the_cache_key_changes_with_the_schema_version_of_the_normalized_output(monkeypatch):
    import image_analysis.cache as cache_module

    today = config_fingerprint("imagga", "2", {})
    monkeypatch.setattr(cache_module, "SCHEMA_VERSION", 1)
    assert config_fingerprint("imagga", "2", {}) != today


def test_a_pngs_metadata_is_found_from_its_chunk_list_without_decoding_it_again(monkeypatch):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle, Steps: 30")
    out = io.BytesIO()
    Image.new("RGB", (2000, 2000), (5, 5, 5)).save(out, format="PNG", pnginfo=info)
    with_text = decode(out.getvalue(), max_pixels=10**8)
    plain = decode(png((2000, 2000)), max_pixels=10**8)

    def load(self):
        raise AssertionError("the pixels were decoded a second time, outside the memory budget")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)
    assert with_text.has_personal_metadata is True
    assert plain.has_personal_metadata is False
