"""Routing by what each configured adapter has switched on; cache keys by what was asked; proof; costs."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from image_analysis.credentials import Credentials
from image_analysis.errors import ServerError
from image_analysis.models import Provenance
from image_analysis.orchestration import Orchestrator
from image_analysis.providers import REGISTRY, provider_class
from image_analysis.providers.base import ProviderDeps
from image_analysis.routing import parse_routing
from tests.unit.test_orchestration import Fake, MemoryCache, builtin, orchestrator, request, settings

KEYS = {
    "IMAGGA_API_KEY": "k",
    "IMAGGA_API_SECRET": "s",
    "AIORNOT_API_KEY": "k",
    "IMAGESEO_API_KEY": "k",
    "IMAGERECOGNIZE_API_KEY": "k",
    "COREVIZ_API_KEY": "k",
    "AWS_REGION": "us-east-1",
}


def real_orchestrator(routing: str, **env: str) -> Orchestrator:
    """The adapters as the runtime builds them (no request is sent: building is offline)."""
    config = settings(ROUTING=routing, **KEYS, **env)
    routes = parse_routing(routing, REGISTRY)
    deps = ProviderDeps(
        settings=config, credentials=Credentials(config), http=httpx.Client(), extra={"rekognition_client": object()}
    )
    names = dict.fromkeys(["builtin", *(p for chain in routes.values() for p in chain)])
    providers = {name: provider_class(name).create(deps) for name in names}
    return Orchestrator(providers, config, routes=routes)


# -- a route must name a provider that has the capability switched on ------------------------------


@pytest.mark.parametrize(
    ("routing", "env", "provider", "setting"),
    [
        ("faces=imagga,imagerecognize", {}, "imagga", "IMAGGA_ENDPOINTS"),
        ("deepfake=aiornot", {"AIORNOT_ONLY": "ai_generated"}, "aiornot", "AIORNOT_ONLY"),
        ("quality=aiornot", {}, "aiornot", "AIORNOT_ONLY"),
        ("text=rekognition", {}, "rekognition", "REKOGNITION_FEATURES"),
        ("labels=coreviz", {"COREVIZ_CHOICES": "cat,dog"}, "coreviz", "COREVIZ_CHOICES"),
        ("faces=imagerecognize", {}, "imagerecognize", "IMAGERECOGNIZE_TYPES"),
    ],
)
def test_a_route_to_a_capability_the_configured_adapter_has_switched_off_fails_at_start_up(
    routing, env, provider, setting
):
    with pytest.raises(ValueError, match=provider) as raised:
        real_orchestrator(routing, **env)
    assert setting in str(raised.value)
    assert routing.split("=")[0] in str(raised.value)


def test_a_route_to_a_capability_the_vendor_does_not_offer_at_all_fails_at_start_up():
    with pytest.raises(ValueError, match="imageseo does not offer moderation"):
        real_orchestrator("moderation=imageseo")


def test_switching_the_capability_on_makes_the_same_route_valid():
    plan = real_orchestrator(
        "faces=imagga,imagerecognize", IMAGGA_ENDPOINTS="faces", IMAGERECOGNIZE_TYPES="detect_faces"
    )
    assert plan.routes == {"faces": ("imagga", "imagerecognize")}
    real_orchestrator("deepfake=aiornot;quality=aiornot", AIORNOT_ONLY="deepfake,quality")
    real_orchestrator("text=rekognition;objects=rekognition", REKOGNITION_FEATURES="labels,text")
    real_orchestrator("classification=coreviz", COREVIZ_CHOICES="cat,dog")


def test_a_stand_in_adapter_with_a_capability_switched_off_is_refused_too():
    a = Fake("a", capabilities=("labels", "moderation"))
    a.enabled = frozenset({"labels"})
    with pytest.raises(ValueError, match=r"asks a for moderation.*switched off.*A_\* settings"):
        orchestrator([builtin(), a, Fake("b")], "moderation=a,b")


def test_every_adapter_instance_says_what_it_has_switched_on():
    config = settings(**KEYS)
    deps = ProviderDeps(
        settings=config, credentials=Credentials(config), http=httpx.Client(), extra={"rekognition_client": object()}
    )
    enabled = {name: provider_class(name).create(deps).enabled for name in REGISTRY}
    assert enabled == {
        "builtin": frozenset({"image_facts", "colors", "quality", "provenance", "ai_generated"}),
        "imagga": frozenset({"labels", "moderation"}),
        "imagerecognize": frozenset({"labels", "objects", "moderation"}),
        "coreviz": frozenset({"labels"}),
        "aiornot": frozenset({"ai_generated", "deepfake", "moderation"}),
        "imageseo": frozenset({"labels", "alt_texts"}),
        "rekognition": frozenset({"labels", "objects", "moderation"}),
    }


# -- a provider asked for one capability is asked again for another that falls back to it ---------


def test_a_fallback_to_a_provider_that_already_ran_for_something_else_asks_it_again():
    down, b = Fake("a", error=ServerError("a", "503 after retries")), Fake("b")
    plan = orchestrator([builtin(), down, b], "labels=a,b;moderation=b").run(request())
    assert b.calls == [frozenset({"moderation"}), frozenset({"labels"})]
    assert plan.answered_by == {"labels": "b", "moderation": "b"}
    assert [label.provider for o in plan.outputs() for label in o.labels] == ["b"]
    run = {r.name: r for r in plan.runs}["b"]
    assert (run.status, run.calls, run.capabilities) == ("succeeded", 2, ["labels", "moderation"])


def test_a_provider_that_failed_is_not_called_again_for_the_next_capability():
    down, b = Fake("a", error=ServerError("a", "503")), Fake("b")
    orchestrator([builtin(), down, b], "labels=a,b;moderation=b,a").run(request())
    assert len(down.calls) == 1


# -- the cache key covers what was asked ----------------------------------------------------------


def test_an_answer_to_a_narrower_question_is_not_reused_for_a_wider_one():
    cache, vendor = MemoryCache(), Fake("a")
    narrow = orchestrator([builtin(), vendor], "moderation=a", cache=cache).run(request())
    assert narrow.answered_by == {"moderation": "a"}
    wide = orchestrator([builtin(), vendor], "labels=a;moderation=a", cache=cache).run(request())
    assert vendor.calls == [frozenset({"moderation"}), frozenset({"labels", "moderation"})]
    assert {r.name: r.status for r in wide.runs}["a"] == "succeeded"
    assert [label.name for o in wide.outputs() for label in o.labels] == ["a-label"]
    again = orchestrator([builtin(), vendor], "labels=a;moderation=a", cache=cache).run(request())
    assert {r.name: r.status for r in again.runs}["a"] == "cached" and len(vendor.calls) == 2


def test_the_same_question_with_and_without_routing_shares_one_cached_answer():
    cache, vendor = MemoryCache(), Fake("a")
    orchestrator([builtin(), vendor], cache=cache).run(request())
    routed = orchestrator([builtin(), vendor], "labels=a;moderation=a", cache=cache).run(request())
    assert {r.name: r.status for r in routed.runs}["a"] == "cached" and len(vendor.calls) == 1


class TwoEndpoints(Fake):
    """Like Imagga with its default endpoints: two vendor requests per analysis."""

    def analyze(self, request):
        request.deadline.meter.record(500)
        return super().analyze(request)


def test_a_cache_hit_saves_every_vendor_call_the_answer_took_and_its_cost():
    cache, vendor, metrics = MemoryCache(), TwoEndpoints("a"), []

    def metric(name, value, unit):
        metrics.append((name, value, unit))

    config = settings(A_PRICE_PER_CALL="0.0015")
    first = Orchestrator({"builtin": builtin(), "a": vendor}, config, cache=cache, metric=metric).run(request())
    assert first.usage().calls_made == 2
    assert first.usage().estimated_cost == pytest.approx(0.003)
    assert ("EstimatedCost_a", pytest.approx(0.003), "None") in metrics
    metrics.clear()
    second = Orchestrator({"builtin": builtin(), "a": vendor}, config, cache=cache, metric=metric).run(request())
    run = {r.name: r for r in second.runs}["a"]
    assert (run.status, run.calls, run.calls_saved) == ("cached", 0, 2)
    assert second.usage().calls_saved == 2 and second.usage().estimated_cost == 0
    assert ("CallsSaved_a", 2, "Count") in metrics
    assert ("EstimatedCost_a", 0, "None") in metrics


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_a_bad_price_is_refused_at_start_up_with_the_variable_name(value):
    with pytest.raises(ValueError, match="A_PRICE_PER_CALL"):
        orchestrator([builtin(), Fake("a")], A_PRICE_PER_CALL=value)


# -- only a validated, signed generative manifest stops the paid AI-detection call ----------------


def proving_builtin(proof: bool, verdict="ai", confidence=0.99):
    provider = builtin(verdict=verdict, confidence=confidence)
    provider.provenance = Provenance(c2pa_manifest=True, c2pa_proves_ai=proof)
    return provider


@pytest.mark.parametrize(
    ("proof", "verdict", "confidence"),
    [
        (False, "ai", 0.95),  # an ingredient's or an unvalidated manifest's claim
        (False, "ai", 0.9),  # unsigned XMP
        (False, "human", 0.2),  # a capture manifest is no reason to skip AI detection
    ],
)
def test_builtin_first_in_the_chain_stops_the_paid_call_only_with_a_proof(proof, verdict, confidence):
    vendor = Fake("aiornot", ("ai_generated",), verdict="human", confidence=0.1)
    plan = orchestrator([proving_builtin(proof, verdict, confidence), vendor], "ai_generated=builtin,aiornot").run(
        request()
    )
    assert vendor.calls == [frozenset({"ai_generated"})]
    assert plan.answered_by == {"ai_generated": "aiornot"}


def test_a_proof_from_builtin_first_in_the_chain_stops_the_paid_call():
    vendor = Fake("aiornot", ("ai_generated",), verdict="human", confidence=0.1)
    plan = orchestrator([proving_builtin(True), vendor], "ai_generated=builtin,aiornot").run(request())
    assert vendor.calls == []
    assert plan.answered_by == {"ai_generated": "builtin"}


def test_builtin_weaker_verdict_answers_when_the_vendor_after_it_fails():
    down = Fake("aiornot", ("ai_generated",), error=ServerError("aiornot", "503"))
    plan = orchestrator([proving_builtin(False, "ai", 0.9), down], "ai_generated=builtin,aiornot").run(request())
    assert plan.answered_by == {"ai_generated": "builtin"}
    assert plan.transient_error() is None


def test_skip_when_proven_with_routing_needs_a_validated_manifest():
    vendor = Fake("aiornot", ("ai_generated",), verdict="human", confidence=0.1)
    unproven = proving_builtin(False, "ai", 0.95)
    orchestrator([unproven, vendor], "ai_generated=aiornot", AI_SKIP_WHEN_PROVEN="true").run(request())
    assert len(vendor.calls) == 1
    plan = orchestrator([proving_builtin(True), vendor], "ai_generated=aiornot", AI_SKIP_WHEN_PROVEN="true").run(
        request()
    )
    assert len(vendor.calls) == 1 and plan.answered_by == {"ai_generated": "builtin"}


def test_skip_when_proven_without_routing_drops_only_the_ai_detection():
    detector = Fake("aiornot", ("ai_generated", "moderation"), verdict="human", confidence=0.1)
    only_ai = Fake("other", ("ai_generated",), verdict="human", confidence=0.1)
    plan = orchestrator([proving_builtin(True), detector, only_ai], AI_SKIP_WHEN_PROVEN="true").run(request())
    assert detector.calls == [frozenset({"moderation"})]  # still asked for what it does besides
    assert only_ai.calls == []  # nothing left to ask: the paid call is not made
    assert [r.name for r in plan.runs] == ["builtin", "aiornot"]
    merged = [o.ai_generated for o in plan.outputs() if o.ai_generated is not None]
    assert [(v.provider, v.verdict) for v in merged] == [("builtin", "ai")]


def test_skip_when_proven_without_routing_still_calls_the_vendor_without_a_proof():
    detector = Fake("aiornot", ("ai_generated",), verdict="human", confidence=0.1)
    orchestrator([proving_builtin(False, "ai", 0.95), detector], AI_SKIP_WHEN_PROVEN="true").run(request())
    assert detector.calls == [None]


# -- providers of concurrent records run concurrently ---------------------------------------------


class Sleepy(Fake):
    def analyze(self, request):
        time.sleep(0.3)
        return super().analyze(request)


def test_providers_of_records_processed_at_once_run_at_once():
    """Ten records at once (the handler's default), three 300 ms providers each: about 0.3 s, not the
    2.4 s a pool sized for one record gives (a wide margin: timing lives in the benchmark)."""
    plan = orchestrator([builtin(), Sleepy("a"), Sleepy("b"), Sleepy("c")])
    outcomes = []

    def one():
        outcomes.append(plan.run(request()))

    threads = [threading.Thread(target=one) for _ in range(10)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert len(outcomes) == 10 and all(r.status == "succeeded" for o in outcomes for r in o.runs)
    assert elapsed < 1.2, f"{elapsed:.2f}s: providers of different records waited for each other"


def test_a_per_vendor_limit_bounds_the_analyses_in_flight():
    active, peak, lock = [0], [0], threading.Lock()

    class Counting(Fake):
        def analyze(self, request):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.05)
            with lock:
                active[0] -= 1
            return super().analyze(request)

    plan = orchestrator([builtin(), Counting("a")], A_MAX_IN_FLIGHT="3")
    threads = [threading.Thread(target=plan.run, args=(request(),)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 3
