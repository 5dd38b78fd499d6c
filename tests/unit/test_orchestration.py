"""Routing, fallback, stop-early, content cache and daily caps, with stand-in providers."""

from __future__ import annotations

import io
import threading
from typing import ClassVar

import pytest
from PIL import Image

from image_analysis.cache import CachedAnswer, config_fingerprint
from image_analysis.errors import QuotaExhaustedError, ServerError
from image_analysis.imaging import decode
from image_analysis.merge import merge_ai_generated
from image_analysis.models import AIGenerated, Label, ModerationCategory, Provenance
from image_analysis.orchestration import Orchestrator
from image_analysis.providers.base import AnalysisRequest, Deadline, Provider, ProviderOutput
from image_analysis.routing import parse_routing
from image_analysis.settings import Settings


class Fake(Provider):
    name: ClassVar[str] = "fake"
    capabilities: ClassVar[frozenset] = frozenset({"labels", "moderation"})

    def __init__(self, name, capabilities=("labels", "moderation"), error=None, verdict=None, confidence=None):
        self.name = name  # type: ignore[misc]
        self.provenance = None
        self.capabilities = frozenset(capabilities)  # type: ignore[misc]
        self.error = error
        self.verdict = verdict
        self.confidence = confidence
        self.calls: list[frozenset | None] = []
        self.lock = threading.Lock()

    @classmethod
    def create(cls, deps):  # pragma: no cover - not used here
        raise NotImplementedError

    def analyze(self, request):
        with self.lock:
            self.calls.append(request.capabilities)
        if request.deadline.meter is not None and self.name != "builtin":  # builtin sends nothing
            request.deadline.meter.record(1000)
        if self.error is not None:
            raise self.error
        output = ProviderOutput(raw={"answer": {"from": self.name}})
        # Like the adapters: only what it was asked for (everything when asked nothing in particular).
        answering = self.capabilities if request.capabilities is None else self.capabilities & request.capabilities
        if "labels" in answering:
            output.labels = [Label(name=f"{self.name}-label", confidence=0.9, provider=self.name)]
        if "moderation" in answering:
            output.moderation = [
                ModerationCategory(name="safe", confidence=0.99, provider=self.name, source_label="safe")
            ]
        if "ai_generated" in answering:
            output.ai_generated = AIGenerated(
                verdict=self.verdict or "unknown", confidence=self.confidence, provider=self.name
            )
        output.provenance = self.provenance
        return output


class MemoryCache:
    def __init__(self):
        self.items = {}

    def get(self, key):
        return self.items.get(key)

    def put(self, key, output, calls):
        self.items[key] = CachedAnswer(output, calls)
        return True


class CountingUsage:
    def __init__(self):
        self.counts = {}

    def reserve(self, provider, cap):
        if self.counts.get(provider, 0) >= cap:
            return False
        self.counts[provider] = self.counts.get(provider, 0) + 1
        return True


def settings(**env):
    return Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **env})


def request(color=(10, 20, 30)):
    out = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(out, format="PNG")
    image = decode(out.getvalue(), 10**8)
    return AnalysisRequest(image=image, object_id="id", deadline=Deadline(60))


def builtin(verdict="unknown", confidence=None):
    return Fake("builtin", ("ai_generated", "colors"), verdict=verdict, confidence=confidence)


def orchestrator(providers, routing="", cache=None, usage=None, **env):
    config = settings(ROUTING=routing, **env)
    routes = parse_routing(routing, [p.name for p in providers]) if routing else {}
    return Orchestrator({p.name: p for p in providers}, config, routes=routes, cache=cache, usage=usage)


def test_without_routing_every_provider_runs_and_all_answers_count():
    a, b = Fake("a"), Fake("b")
    plan = orchestrator([builtin(), a, b]).run(request())
    assert [r.name for r in plan.runs] == ["builtin", "a", "b"]
    assert {label.provider for o in plan.outputs() for label in o.labels} == {"a", "b"}
    assert plan.answered_by == {}


def test_answers_come_in_the_order_providers_are_named_so_a_tie_goes_to_the_first():
    # builtin and AI or Not equally certain (0.9 "ai" against 0.1, i.e. 0.9 "human"), in both orders.
    def merged(*providers):
        plan = orchestrator(list(providers)).run(request())
        return [r.name for r in plan.runs], merge_ai_generated(plan.outputs()).provider

    aiornot = Fake("aiornot", ("ai_generated",), verdict="human", confidence=0.1)
    assert merged(aiornot, builtin("ai", 0.9)) == (["aiornot", "builtin"], "aiornot")
    assert merged(builtin("ai", 0.9), aiornot) == (["builtin", "aiornot"], "builtin")


def test_routing_asks_each_capability_of_its_first_provider_only():
    a, b = Fake("a"), Fake("b")
    plan = orchestrator([builtin(), a, b], "labels=a,b;moderation=b").run(request())
    assert plan.answered_by == {"labels": "a", "moderation": "b"}
    assert a.calls == [frozenset({"labels"})] and b.calls == [frozenset({"moderation"})]
    labels = [label.provider for o in plan.outputs() for label in o.labels]
    assert labels == ["a"]


def test_a_failed_provider_falls_back_to_the_next_for_that_capability():
    down = Fake("a", error=ServerError("a", "503 after retries"))
    b = Fake("b")
    plan = orchestrator([builtin(), down, b], "labels=a,b;moderation=a,b").run(request())
    assert plan.answered_by == {"labels": "b", "moderation": "b"}
    assert b.calls == [frozenset({"labels", "moderation"})]
    statuses = {r.name: r.status for r in plan.runs}
    assert statuses == {"builtin": "succeeded", "a": "failed", "b": "succeeded"}
    assert plan.missing == [] and plan.transient_error() is None  # the fallback answered: no retry


def test_a_capability_nobody_answered_is_missing_and_a_transient_failure_asks_for_a_retry():
    down = Fake("a", error=ServerError("a", "503"))
    out_of_quota = Fake("b", error=QuotaExhaustedError("b", "402"))
    plan = orchestrator([builtin(), down, out_of_quota], "labels=a,b").run(request())
    assert plan.answered_by == {"labels": None}
    assert plan.missing == ["labels"]
    assert plan.transient_error().code == "server_error"


def test_unknown_from_builtin_falls_through_to_the_vendor_and_proof_can_skip_it():
    vendor = Fake("aiornot", ("ai_generated",), verdict="human", confidence=0.1)
    plan = orchestrator([builtin(), vendor], "ai_generated=builtin,aiornot").run(request())
    assert plan.answered_by == {"ai_generated": "aiornot"}
    proven = builtin(verdict="ai", confidence=0.99)
    proven.provenance = Provenance(c2pa_manifest=True, c2pa_proves_ai=True)
    vendor.calls.clear()
    plan = orchestrator([proven, vendor], "ai_generated=aiornot", AI_SKIP_WHEN_PROVEN="true").run(request())
    assert plan.answered_by == {"ai_generated": "builtin"}
    assert vendor.calls == []  # the paid call was not made


def test_the_cache_reuses_an_answer_for_the_same_bytes_and_configuration():
    cache, vendor = MemoryCache(), Fake("a")
    first = orchestrator([builtin(), vendor], cache=cache).run(request())
    second = orchestrator([builtin(), vendor], cache=cache).run(request())
    assert len(vendor.calls) == 1
    assert {r.name: r.status for r in second.runs}["a"] == "cached"
    assert second.usage().calls_saved == 1 and first.usage().calls_made == 1
    orchestrator([builtin(), vendor], cache=cache).run(request(color=(200, 0, 0)))  # other bytes: a call
    assert len(vendor.calls) == 2


def test_a_changed_configuration_never_reuses_a_cached_answer():
    cache, vendor = MemoryCache(), Fake("a")
    orchestrator([builtin(), vendor], cache=cache, A_ENDPOINTS="tags").run(request())
    orchestrator([builtin(), vendor], cache=cache, A_ENDPOINTS="tags,nsfw").run(request())
    assert len(vendor.calls) == 2
    assert config_fingerprint("a", "1", {"A_API_KEY": "x"}) == config_fingerprint("a", "1", {"A_API_KEY": "y"})
    assert config_fingerprint("a", "1", {}) != config_fingerprint("a", "2", {})


def test_a_daily_cap_skips_the_provider_once_reached():
    usage, vendor = CountingUsage(), Fake("a")
    runs = [orchestrator([builtin(), vendor], usage=usage, A_DAILY_CAP="2").run(request()) for _ in range(3)]
    statuses = [{r.name: r for r in plan.runs}["a"] for plan in runs]
    assert [s.status for s in statuses] == ["succeeded", "succeeded", "skipped"]
    assert statuses[2].error.code == "quota_exhausted" and "daily cap of 2" in statuses[2].error.message
    assert len(vendor.calls) == 2


def test_calls_bytes_and_cost_are_counted():
    plan = orchestrator([builtin(), Fake("a")], A_PRICE_PER_CALL="0.0015").run(request())
    run = {r.name: r for r in plan.runs}["a"]
    assert (run.calls, run.bytes_sent, run.cost_units) == (1, 1000, pytest.approx(0.0015))
    usage = plan.usage()
    assert (usage.calls_made, usage.bytes_sent) == (1, 1000)
    assert usage.estimated_cost == pytest.approx(0.0015)


def test_routing_names_are_validated():
    with pytest.raises(ValueError, match="unknown capability 'tags'"):
        parse_routing("tags=imagga", ["imagga"])
    with pytest.raises(ValueError, match="unknown provider"):
        parse_routing("labels=nobody", ["imagga"])
    assert parse_routing("labels=imagga, imagerecognize ;moderation=imagga", ["imagga", "imagerecognize"]) == {
        "labels": ("imagga", "imagerecognize"),
        "moderation": ("imagga",),
    }


class Sleepy(Fake):
    def analyze(self, request):
        import time

        time.sleep(0.3)
        return super().analyze(request)


def test_providers_for_one_image_run_concurrently():
    """Three 300 ms providers take about the slowest one's time, not the sum (a wide margin: timing lives
    in the benchmark)."""
    import time

    providers = [builtin(), Sleepy("a"), Sleepy("b"), Sleepy("c")]
    started = time.perf_counter()
    plan = orchestrator(providers).run(request())
    elapsed = time.perf_counter() - started
    assert all(r.status == "succeeded" for r in plan.runs)
    assert elapsed < 0.75, f"{elapsed:.2f}s: the providers ran one after another"
