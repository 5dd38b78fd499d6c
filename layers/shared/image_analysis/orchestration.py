"""Which providers run for one image, in what order, and whose answer counts.

- ``builtin`` always runs (image facts, provenance); it is fast and offline. It runs first when its
  answer decides whom to ask (ROUTING, ``AI_SKIP_WHEN_PROVEN``), otherwise alongside the vendors, on
  one thread that the records in flight share.
- Without ROUTING every other configured provider runs, concurrently, and everything is merged.
- With ROUTING each capability is asked of the first provider of its chain; providers needed in one
  round run concurrently; a capability whose provider failed (or is capped for today) goes to the next
  provider of its chain in the next round, which is asked again if it already ran for something else.
  A capability nobody answered is reported as missing. Routes are checked when the function starts
  (``routing.check_routes``): every provider of a chain must have that capability switched on.
- AI detection: ``builtin`` answers ``ai_generated`` in a chain only with a proof (a C2PA manifest whose
  signature validated and whose active manifest declares a generative source type); weaker evidence
  (unsigned XMP, generator text, an ingredient's claim, a capture manifest) lets the chain go on to the
  paid detector and counts only when nobody after it answers. ``AI_SKIP_WHEN_PROVEN`` lets that proof
  skip the paid call with or without ROUTING.
- Every vendor analysis first looks in the content cache (same bytes, same configuration, same
  question); a fresh answer is stored there while the record merges and stores its result
  (``Orchestration.settle`` waits for those writes). Calls, calls saved, bytes sent and estimated cost
  are counted per provider, in the result and as metrics.
- Concurrency: providers of every record the handler processes at once share one pool, sized for all
  of them (bounded); ``<VENDOR>_MAX_IN_FLIGHT`` caps one vendor's analyses in flight per container,
  for plans with a concurrency limit (Imagga answers 429 past "the concurrency limit of your current
  subscription plan"; none of the seeds gives a number, so there is no default).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from image_analysis.cache import ContentCache, config_fingerprint
from image_analysis.errors import AnalysisError
from image_analysis.models import ErrorInfo, ProviderRun, Usage
from image_analysis.providers.base import AnalysisRequest, Provider, ProviderOutput
from image_analysis.providers.fanout import PartialAnswer
from image_analysis.routing import Routes, check_routes, enabled_capabilities
from image_analysis.settings import Settings
from image_analysis.usage import DailyUsage

# Sections of ProviderOutput by capability.
SECTION = {
    "labels": "labels",
    "moderation": "moderation",
    "colors": "colors",
    "objects": "objects",
    "faces": "faces",
    "celebrities": "celebrities",
    "text": "text",
    "alt_texts": "alt_texts",
    "classification": "classification",
    "ai_generated": "ai_generated",
    "deepfake": "deepfake",
    "quality": "quality",
}
_SINGLE = {"moderation", "classification", "ai_generated", "deepfake", "quality"}
# Threads for vendor calls of all records in flight: enough for the handler's records times the
# providers, bounded so a long ROUTING list cannot start hundreds.
MAX_PROVIDER_THREADS = 64


def proves_ai(output: ProviderOutput) -> bool:
    return output.provenance is not None and output.provenance.c2pa_proves_ai


@dataclass
class ProviderResult:
    run: ProviderRun
    output: ProviderOutput
    retryable: bool = False
    # What this run was asked (None: everything the adapter has switched on).
    asked: frozenset[str] | None = None
    # A ``partial`` run: the capabilities whose requests failed (the others answered).
    missing: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        """Answered, at least in part (``partial``: see ``missing``)."""
        return self.run.status in ("succeeded", "cached", "partial")

    def covers(self, capability: str) -> bool:
        return self.asked is None or capability in self.asked


# Records of a batch preparing their vendor requests at once (``SharedAnswers``): two, so that one can
# decode while the other waits for S3 or the cache.
PREPARING_AT_ONCE = 2
# The longest builtin waits for the batch's records to have asked their vendors.
BUILTIN_WAIT_SECONDS = 1.0


class _Asked:
    """Calls ``then`` once every named vendor has sent its first request, or finished without one."""

    def __init__(self, names: list[str], then: Callable[[], None]) -> None:
        self._waiting = set(names)
        self._then = then
        self._lock = threading.Lock()
        if not self._waiting:
            then()

    def arrived(self, name: str) -> Callable[[], None]:
        def signal() -> None:
            with self._lock:
                if name not in self._waiting:
                    return
                self._waiting.discard(name)
                last = not self._waiting
            if last:
                self._then()

        return signal


@dataclass
class CacheTraffic:
    """One image's content-cache lookups started ahead (by key) and writes still going on. With
    ``deferred`` (this record's part of a batch's ``SharedAnswers``) fresh answers are only collected
    there, and cached together with the other records'."""

    lookups: dict[str, Future[Any]] = field(default_factory=dict)
    writes: list[Future[Any]] = field(default_factory=list)
    deferred: RecordAnswers | None = None
    # Writes in the background, for a caller that settles them (the pipeline); otherwise before ``run``
    # returns, so that a caller that runs the same image again finds the answer.
    background: bool = False


class SharedAnswers:
    """The fresh vendor answers of one batch's records, cached with one request (per 25) instead of one
    each. The request goes out once every record has its answers, while the last results are still
    being written; ``wait`` sends it if some record never got that far, and waits for it.

    It also takes the records to their vendors in turns: at most ``PREPARING_AT_ONCE`` of them read,
    decode and prepare their requests at once (``take_turn``), and a record's turn ends as its requests
    leave (``end_turn``). Ten records started together would otherwise share the CPU until all ten are
    nearly ready and ask their vendors at about the same moment; in turns the first ones ask early, and
    the later ones prepare while the earlier ones wait for their answers."""

    def __init__(self, records: int, store: Callable[[list[Any]], int], executor: ThreadPoolExecutor) -> None:
        self._turns = threading.BoundedSemaphore(PREPARING_AT_ONCE)
        # Records that have a turn or wait for one: builtin's pixel work waits for none to be left.
        self._preparing = 0
        self._quiet = threading.Condition()
        self._left = records
        self._store = store
        self._executor = executor
        self._answers: list[tuple[str, ProviderOutput, int]] = []
        self._lock = threading.Lock()
        self._stored: Future[int] | None = None

    def for_record(self) -> RecordAnswers:
        return RecordAnswers(self)

    def add(self, answer: tuple[str, ProviderOutput, int]) -> None:
        with self._lock:
            self._answers.append(answer)

    def record_done(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self._start()

    def _start(self) -> None:
        if self._stored is None:
            self._stored = self._executor.submit(self._store, list(self._answers))

    def _preparing_changed(self, by: int) -> None:
        with self._quiet:
            self._preparing += by
            if self._preparing == 0:
                self._quiet.notify_all()

    def wait_until_prepared(self, timeout: float) -> None:
        """Until no record of the batch is preparing its requests (at most ``timeout`` seconds): work that
        no vendor waits for then takes the CPU while the vendors are waited for."""
        with self._quiet:
            self._quiet.wait_for(lambda: self._preparing == 0, timeout=max(0.0, timeout))

    def wait(self, timeout: float | None = None) -> int:
        """How many answers were stored (0 when none were, or not within ``timeout``)."""
        with self._lock:
            self._start()
            stored = self._stored
        try:
            return stored.result(timeout=timeout)  # type: ignore[union-attr]
        except Exception:
            return 0


class RecordAnswers:
    """One record's part of ``SharedAnswers``: ``append`` an answer, ``done`` once it has them all; its
    turn at preparing (``take_turn``) ends with ``end_turn``, which may be called more than once."""

    def __init__(self, shared: SharedAnswers) -> None:
        self._shared = shared
        self._done = False
        self._turn_lock = threading.Lock()
        self._has_turn = False
        self._preparing = False

    def take_turn(self, timeout: float) -> bool:
        """Wait for a turn, at most ``timeout`` seconds (then go ahead anyway: a deadline beats order).
        True when the turn was had, False when the wait ran out."""
        with self._turn_lock:
            self._preparing = True
        self._shared._preparing_changed(+1)
        got = self._shared._turns.acquire(timeout=max(0.0, timeout))
        with self._turn_lock:
            self._has_turn = got
        return got

    def end_turn(self) -> None:
        with self._turn_lock:
            had, self._has_turn = self._has_turn, False
            was, self._preparing = self._preparing, False
        if had:
            self._shared._turns.release()
        if was:
            self._shared._preparing_changed(-1)

    def wait_until_prepared(self, timeout: float) -> None:
        self._shared.wait_until_prepared(timeout)

    def append(self, answer: tuple[str, ProviderOutput, int]) -> None:
        self._shared.add(answer)

    def done(self) -> None:
        if not self._done:
            self._done = True
            self._shared.record_done()


@dataclass
class Orchestration:
    results: dict[str, ProviderResult]
    # With ROUTING: capability -> the provider whose answer counts (None: nobody answered).
    answered_by: dict[str, str | None] = field(default_factory=dict)
    # Content-cache writes of fresh answers, still going on: ``settle`` waits for them.
    writes: list[Future[Any]] = field(default_factory=list)

    def settle(self, timeout: float | None = None) -> int:
        """Wait (at most ``timeout`` seconds) for the cache writes; returns how many did not land. A cache
        write never fails a record: the answer is in the result either way."""
        if not self.writes:
            return 0
        done, not_done = wait(self.writes, timeout=timeout)
        return len(not_done) + sum(1 for write in done if write.exception() is not None or write.result() is False)

    @property
    def runs(self) -> list[ProviderRun]:
        return [r.run for r in self.results.values()]

    def outputs(self) -> list[ProviderOutput]:
        """Every provider's output; with ROUTING, a routed section only from the provider that answered it."""
        if not self.answered_by:
            return [r.output for r in self.results.values()]
        kept = []
        for name, result in self.results.items():
            drop = {
                SECTION[cap]: None if SECTION[cap] in _SINGLE else []
                for cap, answerer in self.answered_by.items()
                if answerer != name
            }
            kept.append(result.output.model_copy(update=drop))
        return kept

    @property
    def missing(self) -> list[str]:
        return [cap for cap, answerer in self.answered_by.items() if answerer is None]

    def transient_error(self) -> ErrorInfo | None:
        """A retryable failure that left something unanswered: the record should come back later."""
        if self.answered_by:
            if not self.missing:
                return None
            chains_failed = [r for r in self.results.values() if r.retryable]
            return chains_failed[0].run.error if chains_failed else None
        failed = [r for r in self.results.values() if r.retryable]
        return failed[0].run.error if failed else None

    def usage(self) -> Usage:
        runs = self.runs
        return Usage(
            calls_made=sum(r.calls or 0 for r in runs),
            calls_saved=sum(r.calls_saved or 0 for r in runs),
            bytes_sent=sum(r.bytes_sent or 0 for r in runs),
            estimated_cost=round(sum(r.cost_units or 0.0 for r in runs), 6),
        )


def answers(provider: Provider, result: ProviderResult, capability: str, *, proof_only: bool = False) -> bool:
    """Did this run answer the capability? It must have been asked it, with the capability switched on;
    ``unknown`` is no answer for AI detection, and with ``proof_only`` only a proof is."""
    if not result.ok or not result.covers(capability) or capability not in enabled_capabilities(provider):
        return False
    if capability in result.missing:
        return False
    if capability == "ai_generated":
        if proof_only:
            return proves_ai(result.output)
        verdict = result.output.ai_generated
        return verdict is not None and verdict.verdict != "unknown"
    if capability == "moderation":
        return result.output.moderation is not None
    return True


class Orchestrator:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        settings: Settings,
        routes: Routes | None = None,
        cache: ContentCache | None = None,
        usage: DailyUsage | None = None,
        logger: Any = None,
        metric: Callable[[str, float, str], None] | None = None,
        kept: str = "",
    ) -> None:
        """``kept``: what the cache's entries keep of an answer (``Keep.fingerprint``), part of their keys."""
        self.providers = dict(providers)
        self.settings = settings
        self.routes = routes or {}
        check_routes(self.routes, self.providers)
        self.cache = cache
        self.usage = usage
        self.logger = logger
        self._metric = metric
        # Read (and so checked) once, at start-up: a bad value is a configuration error, not a failed image.
        self._prices = {name: settings.price_per_call(name, p.price_per_call) for name, p in self.providers.items()}
        self._caps = {name: settings.daily_cap(name) for name in self.providers}
        self._limits = {
            name: threading.BoundedSemaphore(limit)
            for name in self.providers
            if (limit := settings.max_in_flight(name)) is not None
        }
        vendors = max(1, len(self.providers) - ("builtin" in self.providers))
        workers = min(MAX_PROVIDER_THREADS, max(1, settings.record_concurrency) * vendors)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="provider")
        # Cache reads and writes have threads of their own: they never wait for anything, so a provider
        # thread waiting for its lookup can never be stuck behind other providers.
        self._cache_io = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cache-io")
        self._builtin_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="builtin")
        self._fingerprints = {
            name: config_fingerprint(name, p.normalizer_version, settings.env, kept)
            for name, p in self.providers.items()
        }

    # -- the plan ----------------------------------------------------------------------------------
    def prefetch(self, sha256: str, deferred: RecordAnswers | None = None, lookups: bool = True) -> CacheTraffic:
        """Start the cache lookups a plan without ROUTING makes (each vendor, for everything it has switched
        on) as soon as the bytes are known, so that they overlap the decode. ``run`` takes their answers;
        a plan that asks something else looks up its own keys. A run given this traffic caches fresh
        answers in the background (or in ``deferred``): the caller settles the ``Orchestration``.
        ``lookups`` False: the runs will send other bytes than these (an animation's frames)."""
        traffic = CacheTraffic(deferred=deferred, background=True)
        if self.cache is None or self.routes or not lookups:
            return traffic
        for name, provider in self.providers.items():
            if name != "builtin":
                key = ContentCache.key(sha256, name, self._fingerprints[name], enabled_capabilities(provider))
                traffic.lookups[key] = self._cache_io.submit(self.cache.get, key)
        return traffic

    def shared_answers(self, records: int) -> SharedAnswers:
        """Where the ``records`` of one batch collect their fresh answers (``prefetch(deferred=...)``)."""
        return SharedAnswers(records, self._store_answers, self._cache_io)

    def _store_answers(self, answers: list[tuple[str, ProviderOutput, int]]) -> int:
        """Never raises: a lost cache write only costs a later call."""
        if self.cache is None or not answers:
            return 0
        try:
            return self.cache.put_many(answers)
        except Exception:
            if self.logger is not None:
                self.logger.exception("could not store the batch's answers in the cache")
            return 0

    def run(
        self,
        request: AnalysisRequest,
        prefetched: CacheTraffic | None = None,
        skip_vendors: Callable[[ProviderOutput], bool] | None = None,
    ) -> Orchestration:
        """``skip_vendors``: asked with builtin's output before any vendor; True skips them all (a
        known-bad match with SKIP_VENDORS_ON_MATCH): builtin then runs first."""
        attempts: dict[str, list[ProviderResult]] = {}
        traffic = prefetched if prefetched is not None else CacheTraffic()
        # builtin's answer shapes the plan only under ROUTING (a capability it answers is asked of nobody
        # else), AI_SKIP_WHEN_PROVEN (its proof skips the paid detector) or SKIP_VENDORS_ON_MATCH. Otherwise
        # its pixel work runs while the vendors are asked: the vendors' answers are what a record waits for.
        builtin_decides = "builtin" in self.providers and (
            bool(self.routes) or self.settings.ai_skip_when_proven or skip_vendors is not None
        )
        if builtin_decides:
            attempts["builtin"] = [self._run_one("builtin", request, None, traffic)]
        builtin = attempts.get("builtin", [None])[0]
        if skip_vendors is not None and builtin is not None and builtin.ok and skip_vendors(builtin.output):
            return self._vendors_skipped(builtin, traffic)
        skip_ai = self.settings.ai_skip_when_proven and builtin is not None and builtin.ok and proves_ai(builtin.output)
        if not self.routes:
            wanted: dict[str, frozenset[str] | None] = {}
            for name, provider in self.providers.items():
                if name == "builtin":
                    continue
                enabled = enabled_capabilities(provider)
                if skip_ai and "ai_generated" in enabled:
                    self._count(f"AIDetectionSkipped_{name}", 1)
                    if enabled - {"ai_generated"}:
                        wanted[name] = enabled - {"ai_generated"}
                    continue  # nothing else to ask: no call at all
                wanted[name] = None
            lane = None
            if "builtin" in self.providers and not builtin_decides:
                # On the container's one builtin thread: with a batch in flight its pixel work then gets
                # the CPU mostly while vendors are waited for, instead of delaying other records' requests.
                lane = self._builtin_lane.submit(self._builtin_when_prepared, request, traffic)
            answered = self._round(wanted, request, traffic)
            if lane is not None:
                attempts["builtin"] = [lane.result()]
            for name, result in answered.items():
                attempts[name] = [result]
            return Orchestration(self._in_order(attempts), writes=traffic.writes)

        answered_by: dict[str, str | None] = {}
        if skip_ai and "ai_generated" in self.routes:
            answered_by["ai_generated"] = "builtin"
            self._count("AIDetectionSkipped", 1)
        while True:
            asks: dict[str, set[str]] = {}
            for capability, chain in self.routes.items():
                if capability in answered_by:
                    continue
                for name in chain:
                    tried = [a for a in attempts.get(name, []) if a.covers(capability)]
                    if tried:
                        strict = name == "builtin" and capability == "ai_generated"
                        if answers(self.providers[name], tried[-1], capability, proof_only=strict):
                            answered_by[capability] = name
                            break
                        continue  # tried: failed, capped or silent on this capability; next in chain
                    if any(not a.ok for a in attempts.get(name, [])):
                        continue  # it failed for something else in this image: it would fail again
                    asks.setdefault(name, set()).add(capability)
                    break
                else:
                    answered_by[capability] = self._weaker_answer(chain, attempts, capability)
            if not asks:
                break
            for name, result in self._round({n: frozenset(c) for n, c in asks.items()}, request, traffic).items():
                attempts.setdefault(name, []).append(result)
        results = self._in_order(attempts)
        return Orchestration(results, {cap: answered_by.get(cap) for cap in self.routes}, writes=traffic.writes)

    def _in_order(self, attempts: dict[str, list[ProviderResult]]) -> dict[str, ProviderResult]:
        """Each provider's answer in the order PROVIDERS names them (whoever finished first): the merge
        reads them in this order, and gives a tie to the provider named first."""
        return {name: _combined(attempts[name]) for name in self.providers if name in attempts}

    def _vendors_skipped(self, builtin: ProviderResult, traffic: CacheTraffic) -> Orchestration:
        """builtin's answer alone; every other provider listed as skipped, without a call."""
        if traffic.deferred is not None:
            traffic.deferred.end_turn()  # this record asks nobody: the batch's next one may prepare
        results = {"builtin": builtin}
        for name in self.providers:
            if name != "builtin":
                run = ProviderRun(name=name, status="skipped", latency_ms=0, calls=0)
                results[name] = ProviderResult(run, ProviderOutput())
                self._count(f"VendorSkippedOnMatch_{name}", 1)
        return Orchestration(results, writes=traffic.writes)

    def _weaker_answer(
        self, chain: tuple[str, ...], attempts: dict[str, list[ProviderResult]], capability: str
    ) -> str | None:
        """Nobody after builtin answered AI detection: its evidence short of a proof is better than none."""
        tried = attempts.get("builtin")
        if capability == "ai_generated" and "builtin" in chain and tried:
            return "builtin" if answers(self.providers["builtin"], tried[0], capability) else None
        return None

    def _builtin_when_prepared(self, request: AnalysisRequest, traffic: CacheTraffic) -> ProviderResult:
        """builtin on its lane, once the batch's records have sent their requests (at most a second)."""
        if traffic.deferred is not None:
            traffic.deferred.wait_until_prepared(min(BUILTIN_WAIT_SECONDS, request.deadline.remaining() / 4))
        return self._run_one("builtin", request, None, traffic)

    def _round(
        self, wanted: Mapping[str, frozenset[str] | None], request: AnalysisRequest, traffic: CacheTraffic
    ) -> dict[str, ProviderResult]:
        """Every provider of a round at once; the calling thread runs one of them itself."""
        items = list(wanted.items())
        turn = traffic.deferred
        asked = _Asked([name for name, _ in items if name != "builtin"], turn.end_turn if turn else lambda: None)
        if not items:
            return {}
        futures = {
            name: self._executor.submit(self._run_one, name, request, caps, traffic, asked.arrived(name))
            for name, caps in items[:-1]
        }
        last_name, last_caps = items[-1]
        last = self._run_one(last_name, request, last_caps, traffic, asked.arrived(last_name))
        done = {name: future.result() for name, future in futures.items()}
        done[last_name] = last
        return {name: done[name] for name, _ in items}

    # -- one provider --------------------------------------------------------------------------------
    def _run_one(
        self,
        name: str,
        request: AnalysisRequest,
        capabilities: frozenset[str] | None,
        traffic: CacheTraffic,
        on_asked: Callable[[], None] | None = None,
    ) -> ProviderResult:
        """``on_asked``: called as this vendor's first request leaves, or when it ends without one."""
        try:
            return self._run_one_asking(name, request, capabilities, traffic, on_asked)
        finally:
            if on_asked is not None:
                on_asked()

    def _run_one_asking(
        self,
        name: str,
        request: AnalysisRequest,
        capabilities: frozenset[str] | None,
        traffic: CacheTraffic,
        on_asked: Callable[[], None] | None,
    ) -> ProviderResult:
        provider = self.providers[name]
        started = time.perf_counter()
        asked = sorted(capabilities) if capabilities is not None else []
        enabled = enabled_capabilities(provider)
        # What the answer will cover: the key of a narrower question never serves a wider one.
        covers = enabled & capabilities if capabilities is not None else enabled
        cache_key = None
        if self.cache is not None and name != "builtin":
            cache_key = ContentCache.key(request.image.cache_id, name, self._fingerprints[name], covers)
            lookup = traffic.lookups.pop(cache_key, None)
            cached = lookup.result() if lookup is not None else self.cache.get(cache_key)
            if cached is not None:
                self._count(f"CallsSaved_{name}", cached.calls)
                self._count(f"EstimatedCost_{name}", 0, "None")
                run = ProviderRun(
                    name=name,
                    status="cached",
                    latency_ms=_ms(started),
                    calls=0,
                    calls_saved=cached.calls,
                    capabilities=asked,
                )
                return ProviderResult(run, cached.output, asked=capabilities)
        limit = self._limits.get(name)
        if limit is not None and not limit.acquire(timeout=request.deadline.remaining()):
            error = ErrorInfo(
                code="timeout", message=f"{name}: no free slot ({name.upper()}_MAX_IN_FLIGHT) before the deadline"
            )
            run = ProviderRun(name=name, status="failed", latency_ms=_ms(started), error=error, calls=0)
            return ProviderResult(run, ProviderOutput(), retryable=True, asked=capabilities)
        try:
            return self._call(name, provider, request, capabilities, asked, started, cache_key, traffic, on_asked)
        finally:
            if limit is not None:
                limit.release()

    def _call(
        self,
        name: str,
        provider: Provider,
        request: AnalysisRequest,
        capabilities: frozenset[str] | None,
        asked: list[str],
        started: float,
        cache_key: str | None,
        traffic: CacheTraffic,
        on_asked: Callable[[], None] | None = None,
    ) -> ProviderResult:
        cap = self._caps[name]
        if cap is not None and self.usage is not None and not self.usage.reserve(name, cap):
            error = ErrorInfo(code="quota_exhausted", message=f"{name}: the daily cap of {cap} analyses is reached")
            run = ProviderRun(name=name, status="skipped", latency_ms=0, error=error, calls=0, capabilities=asked)
            # Counted as a vendor's own quota answer is, so the quota alarm fires for a cap too.
            self._quota_exhausted(name)
            return ProviderResult(run, ProviderOutput(), asked=capabilities)
        deadline = request.deadline.metered()
        if deadline.meter is not None:
            deadline.meter.on_first_send = on_asked
        keep_metadata = self.settings.vendor(name.upper() + "_", "SEND_METADATA").lower() in ("1", "true", "yes")
        own_request = AnalysisRequest(
            image=request.image.for_vendor(keep_metadata),
            object_id=request.object_id,
            deadline=deadline,
            bucket=request.bucket,
            key=request.key,
            version_id=request.version_id,
            capabilities=capabilities,
        )
        retryable = partial = False
        missing: frozenset[str] = frozenset()
        try:
            output = provider.analyze(own_request)
            error = None
        except PartialAnswer as answer:
            # The sections that answered are kept and paid for; a later delivery would pay for them again,
            # so this is no reason to retry the record. Never cached: the next image asks again in full.
            output, error, missing, partial = answer.output, answer.info(), frozenset(answer.missing), True
        except AnalysisError as exc:
            # The error instance knows best: a vendor refusing our request is bad_response, not retryable.
            output, error, retryable = ProviderOutput(), exc.info(), bool(exc.retryable)
        except Exception as exc:  # a bug in one adapter must not take the others down
            output = ProviderOutput()
            error = ErrorInfo(code="bad_response", message=f"{name}: unexpected {type(exc).__name__}: {exc}")
            if self.logger is not None:
                self.logger.exception("provider crashed", extra={"provider": name})
        meter = deadline.meter
        # Adapters send through the metered HTTP client; one that does not is counted by its answers.
        calls = meter.calls if meter and meter.calls else (0 if name == "builtin" else len(output.raw))
        price = self._prices[name]
        cost = round(calls * price, 6)
        if error is None:
            status = "succeeded"
        elif partial:
            status = "partial"
        else:
            status = "rejected" if error.code == "bad_image" else "failed"
        run = ProviderRun(
            name=name,
            status=status,
            latency_ms=_ms(started),
            error=error,
            calls=calls,
            bytes_sent=meter.bytes_sent if meter else 0,
            cost_units=cost if price else None,
            capabilities=asked,
        )
        if error is None and cache_key is not None:
            # Written while the record merges and stores its result, not before: a lost cache write only
            # costs a later call, and the record's own write does not wait for it.
            if traffic.deferred is not None:
                traffic.deferred.append((cache_key, output, calls))
            elif traffic.background:
                traffic.writes.append(self._cache_io.submit(self.cache.put, cache_key, output, calls))  # type: ignore[union-attr]
            else:
                self.cache.put(cache_key, output, calls)  # type: ignore[union-attr]
        self._count(f"ProviderLatency_{name}", run.latency_ms, "Milliseconds")
        if name != "builtin":
            self._count(f"CallsMade_{name}", calls)
            self._count(f"EstimatedCost_{name}", cost, "None")
            self._count("BytesSent", run.bytes_sent or 0, "Bytes")
        if partial:
            self._count(f"ProviderPartial_{name}", 1)
        if error is not None and error.code == "quota_exhausted":
            self._quota_exhausted(name)
        elif error is not None:
            self._count(f"ProviderError_{name}_{error.code}", 1)
            if error.code == "auth":
                # A fixed name an alarm can watch: this needs a person (fix the key).
                self._count("ProviderAuthFailed", 1)
        return ProviderResult(run, output, retryable, asked=capabilities, missing=missing)

    def _quota_exhausted(self, name: str) -> None:
        """A vendor's quota or credit used up, or this stack's daily cap for it reached: a person decides."""
        self._count(f"ProviderError_{name}_quota_exhausted", 1)
        # A fixed name an alarm can watch (top up, raise the cap, or switch providers).
        self._count("ProviderQuotaExhausted", 1)

    def _count(self, name: str, value: float, unit: str = "Count") -> None:
        if self._metric is not None:
            self._metric(name, value, unit)


def _combined(results: list[ProviderResult]) -> ProviderResult:
    """One provider asked in more than one round (a fallback reached it later): one run, one output."""
    if len(results) == 1:
        return results[0]
    runs = [r.run for r in results]
    failed = next((r for r in reversed(results) if not r.ok), None)
    partial = next((r for r in reversed(results) if r.run.status == "partial"), None)
    if failed is not None:
        status, error = failed.run.status, failed.run.error
    elif partial is not None:
        status, error = "partial", partial.run.error
    else:
        status, error = ("cached" if all(r.status == "cached" for r in runs) else "succeeded"), None
    costs = [r.cost_units for r in runs if r.cost_units is not None]
    saved = [r.calls_saved for r in runs if r.calls_saved is not None]
    run = ProviderRun(
        name=runs[0].name,
        status=status,  # type: ignore[arg-type]
        latency_ms=sum(r.latency_ms for r in runs),
        error=error,
        calls=sum(r.calls or 0 for r in runs),
        calls_saved=sum(saved) if saved else None,
        bytes_sent=sum(r.bytes_sent or 0 for r in runs),
        cost_units=round(sum(costs), 6) if costs else None,
        capabilities=sorted({c for r in runs for c in r.capabilities}),
    )
    merged: dict[str, Any] = {}
    for name in ProviderOutput.field_names():
        present = [value for r in results if (value := getattr(r.output, name)) is not None]
        if name == "raw":
            merged[name] = {k: v for value in present for k, v in value.items()}
        elif present and all(isinstance(value, list) for value in present):
            merged[name] = [item for value in present for item in value]
        else:
            merged[name] = present[0] if present else None
    asked = None if any(r.asked is None for r in results) else frozenset().union(*(r.asked or () for r in results))
    # Rounds happen only under ROUTING, which asks for named capabilities: missing in one round and
    # answered in another is answered.
    answered = frozenset().union(*((r.asked or frozenset()) - r.missing for r in results if r.ok))
    missing = frozenset().union(*(r.missing for r in results)) - answered
    return ProviderResult(run, ProviderOutput(**merged), failed.retryable if failed else False, asked, missing)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
