"""What a record waits for overlaps where it can: builtin's pixel work runs while the vendors are asked
(unless its answer decides whom to ask), the cache lookups go out before the decode and are not made
twice, and fresh answers are cached in the background until the caller settles them."""

from __future__ import annotations

import threading

from image_analysis.cache import ContentCache
from tests.unit.test_orchestration import Fake, MemoryCache, builtin, orchestrator, request


class WaitsFor(Fake):
    """A provider whose analysis waits (at most 5 s) for another provider's analysis to have started."""

    def __init__(self, name, started: threading.Event, waits_for: threading.Event, capabilities=("labels",)):
        super().__init__(name, capabilities)
        self.started, self.waits_for = started, waits_for
        self.saw_the_other = False

    def analyze(self, request):
        self.started.set()
        self.saw_the_other = self.waits_for.wait(5)
        return super().analyze(request)


def pair():
    builtin_started, vendor_started = threading.Event(), threading.Event()
    slow_builtin = WaitsFor("builtin", builtin_started, vendor_started, ("ai_generated", "colors"))
    vendor = WaitsFor("a", vendor_started, builtin_started)
    return slow_builtin, vendor


def test_without_routing_builtin_runs_while_the_vendors_are_asked():
    slow_builtin, vendor = pair()
    plan = orchestrator([slow_builtin, vendor]).run(request())
    # Each saw the other under way: neither waited for the other to finish first.
    assert slow_builtin.saw_the_other and vendor.saw_the_other
    assert [r.name for r in plan.runs] == ["builtin", "a"]  # builtin's output still comes first


def test_when_builtin_decides_whom_to_ask_it_runs_first():
    for setup in ({"routing": "labels=a"}, {"AI_SKIP_WHEN_PROVEN": "true"}):
        builtin_started, vendor_started = threading.Event(), threading.Event()
        first = Fake("builtin", ("ai_generated", "colors"))
        vendor = WaitsFor("a", vendor_started, builtin_started)
        original = first.analyze

        def analyze(request, original=original, vendor_started=vendor_started, builtin_started=builtin_started):
            assert not vendor_started.is_set(), "a vendor was asked before builtin answered"
            builtin_started.set()
            return original(request)

        first.analyze = analyze  # type: ignore[method-assign]
        orchestrator([first, vendor], **setup).run(request())
        assert vendor.saw_the_other, setup


class CountingCache(MemoryCache):
    def __init__(self):
        super().__init__()
        self.gets: list[str] = []
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            self.gets.append(key)
        return super().get(key)


def test_prefetched_lookups_are_used_once_and_not_repeated():
    cache, vendor = CountingCache(), Fake("a")
    planner = orchestrator([builtin(), vendor], cache=cache)
    image_request = request()
    traffic = planner.prefetch(image_request.image.sha256)
    plan = planner.run(image_request, traffic)
    assert len(cache.gets) == 1 and cache.gets[0].startswith(image_request.image.sha256 + "#a#")
    assert vendor.calls == [None]  # a miss: the vendor was asked
    plan.settle(timeout=5)  # the answer is cached in the background, and waited for here

    again = request()
    plan = planner.run(again, planner.prefetch(again.image.sha256))
    assert len(cache.gets) == 2 and vendor.calls == [None]  # the second image was answered from the cache
    assert {r.name: r.status for r in plan.runs} == {"builtin": "succeeded", "a": "cached"}


def test_with_routing_nothing_is_prefetched_and_each_round_looks_up_its_own_question():
    cache, vendor = CountingCache(), Fake("a")
    planner = orchestrator([builtin(), vendor], "labels=a", cache=cache)
    image_request = request()
    traffic = planner.prefetch(image_request.image.sha256)
    assert traffic.lookups == {}
    planner.run(image_request, traffic).settle(timeout=5)
    assert len(cache.gets) == 1 and cache.gets[0].endswith("#labels")


def test_without_prefetched_traffic_a_run_has_cached_its_answers_when_it_returns():
    cache, vendor = MemoryCache(), Fake("a")
    planner = orchestrator([builtin(), vendor], cache=cache)
    plan = planner.run(request())
    assert plan.writes == [] and len(cache.items) == 1


class SlowTable:
    """A cache table whose writes wait for a signal: the write must not hold up the run."""

    def __init__(self):
        self.release = threading.Event()
        self.written = threading.Event()

    def get_item(self, **kwargs):
        return {}

    def put_item(self, **kwargs):
        self.release.wait(5)
        self.written.set()


def test_a_background_cache_write_does_not_hold_up_the_run_and_settle_waits_for_it():
    table = SlowTable()
    planner = orchestrator([builtin(), Fake("a")], cache=ContentCache("cache", table, ttl_seconds=60))
    image_request = request()
    plan = planner.run(image_request, planner.prefetch(image_request.image.sha256))
    assert not table.written.is_set()  # the run returned with the write still going on
    assert plan.settle(timeout=0.01) == 1  # not landed yet
    table.release.set()
    assert plan.settle(timeout=5) == 0 and table.written.is_set()
