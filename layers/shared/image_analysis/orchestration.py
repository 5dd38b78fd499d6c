"""Which providers run for one image, in what order, and whose answer counts.

- ``builtin`` runs first, always (image facts, provenance); it is fast and offline.
- Without ROUTING every other configured provider runs, concurrently, and everything is merged.
- With ROUTING each capability is asked of the first provider of its chain; providers needed in one
  round run concurrently; a capability whose provider failed (or is capped for today) goes to the next
  provider of its chain in the next round. A capability nobody answered is reported as missing.
- Every vendor analysis first looks in the content cache (same bytes, same configuration); a fresh
  answer is stored there. Calls, bytes sent and estimated cost are counted per provider.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from image_analysis.cache import ContentCache, config_fingerprint
from image_analysis.errors import AnalysisError
from image_analysis.models import ErrorInfo, ProviderRun, Usage
from image_analysis.providers.base import AnalysisRequest, Provider, ProviderOutput
from image_analysis.routing import Routes
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
# A signed C2PA manifest with a generative source type gives builtin this confidence or more.
PROVEN_AI_CONFIDENCE = 0.95


@dataclass
class ProviderResult:
    run: ProviderRun
    output: ProviderOutput
    retryable: bool = False


@dataclass
class Orchestration:
    results: dict[str, ProviderResult]
    # With ROUTING: capability -> the provider whose answer counts (None: nobody answered).
    answered_by: dict[str, str | None] = field(default_factory=dict)

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
            calls_saved=sum(1 for r in runs if r.status == "cached"),
            bytes_sent=sum(r.bytes_sent or 0 for r in runs),
            estimated_cost=round(sum(r.cost_units or 0.0 for r in runs), 6),
        )


_SINGLE = {"moderation", "classification", "ai_generated", "deepfake", "quality"}


def answers(provider: Provider, result: ProviderResult, capability: str) -> bool:
    """Did this provider's run answer the capability? ``unknown`` is no answer for AI detection."""
    if result.run.status not in ("succeeded", "cached") or capability not in provider.capabilities:
        return False
    if capability == "ai_generated":
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
    ) -> None:
        self.providers = dict(providers)
        self.settings = settings
        self.routes = routes or {}
        self.cache = cache
        self.usage = usage
        self.logger = logger
        self._metric = metric
        self._executor = ThreadPoolExecutor(max_workers=max(1, len(self.providers)), thread_name_prefix="provider")
        self._fingerprints = {
            name: config_fingerprint(name, p.normalizer_version, settings.env) for name, p in self.providers.items()
        }

    # -- the plan ----------------------------------------------------------------------------------
    def run(self, request: AnalysisRequest) -> Orchestration:
        results: dict[str, ProviderResult] = {}
        if "builtin" in self.providers:
            results["builtin"] = self._run_one("builtin", request, None)
        if not self.routes:
            others = [name for name in self.providers if name != "builtin"]
            results.update(self._round({name: None for name in others}, request))
            return Orchestration(results)
        answered_by: dict[str, str | None] = {}
        builtin = results.get("builtin")
        if builtin is not None and self.settings.ai_skip_when_proven and "ai_generated" in self.routes:
            verdict = builtin.output.ai_generated
            if verdict is not None and verdict.verdict == "ai" and (verdict.confidence or 0) >= PROVEN_AI_CONFIDENCE:
                answered_by["ai_generated"] = "builtin"
        while True:
            wanted: dict[str, set[str]] = {}
            for capability, chain in self.routes.items():
                if capability in answered_by:
                    continue
                for name in chain:
                    if name in results:
                        if answers(self.providers[name], results[name], capability):
                            answered_by[capability] = name
                            break
                        continue  # tried: failed, capped or silent on this capability; next in chain
                    wanted.setdefault(name, set()).add(capability)
                    break
                else:
                    answered_by[capability] = None
            wanted = {name: caps for name, caps in wanted.items() if name not in results}
            if not wanted:
                break
            results.update(self._round({name: frozenset(caps) for name, caps in wanted.items()}, request))
        return Orchestration(results, {cap: answered_by.get(cap) for cap in self.routes})

    def _round(
        self, wanted: Mapping[str, frozenset[str] | None], request: AnalysisRequest
    ) -> dict[str, ProviderResult]:
        futures = {name: self._executor.submit(self._run_one, name, request, caps) for name, caps in wanted.items()}
        return {name: future.result() for name, future in futures.items()}

    # -- one provider --------------------------------------------------------------------------------
    def _run_one(self, name: str, request: AnalysisRequest, capabilities: frozenset[str] | None) -> ProviderResult:
        provider = self.providers[name]
        started = time.perf_counter()
        asked = sorted(capabilities) if capabilities else []
        cache_key = None
        if self.cache is not None and name != "builtin":
            cache_key = ContentCache.key(request.image.sha256, name, self._fingerprints[name])
            cached = self.cache.get(cache_key)
            if cached is not None:
                self._count(f"CallsSaved_{name}", 1)
                run = ProviderRun(name=name, status="cached", latency_ms=_ms(started), calls=0, capabilities=asked)
                return ProviderResult(run, cached)
        cap = self.settings.daily_cap(name)
        if cap is not None and self.usage is not None and not self.usage.reserve(name, cap):
            error = ErrorInfo(code="quota_exhausted", message=f"{name}: the daily cap of {cap} analyses is reached")
            run = ProviderRun(name=name, status="skipped", latency_ms=0, error=error, calls=0, capabilities=asked)
            return ProviderResult(run, ProviderOutput())
        deadline = request.deadline.metered()
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
        retryable = False
        try:
            output = provider.analyze(own_request)
            error = None
        except AnalysisError as exc:
            # The error instance knows best: a vendor refusing our request is bad_response, not retryable.
            output, error, retryable = ProviderOutput(), exc.info(), bool(exc.retryable)
        except Exception as exc:  # a bug in one adapter must not take the others down
            output = ProviderOutput()
            error = ErrorInfo(code="bad_response", message=f"{name}: unexpected {type(exc).__name__}: {exc}")
            if self.logger is not None:
                self.logger.exception("provider crashed", extra={"provider": name})
        meter = deadline.meter
        calls = meter.calls if meter and meter.calls else (0 if name == "builtin" else max(1, len(output.raw)))
        price = self.settings.price_per_call(name, provider.price_per_call)
        status = "succeeded" if error is None else ("rejected" if error.code == "bad_image" else "failed")
        run = ProviderRun(
            name=name,
            status=status,
            latency_ms=_ms(started),
            error=error,
            calls=calls,
            bytes_sent=meter.bytes_sent if meter else 0,
            cost_units=round(calls * price, 6) if price else None,
            capabilities=asked,
        )
        if error is None and cache_key is not None:
            self.cache.put(cache_key, output)  # type: ignore[union-attr]
        self._count(f"ProviderLatency_{name}", run.latency_ms, "Milliseconds")
        if name != "builtin":
            self._count(f"CallsMade_{name}", calls)
            self._count("BytesSent", run.bytes_sent or 0, "Bytes")
        if error is not None:
            self._count(f"ProviderError_{name}_{error.code}", 1)
            if error.code in ("quota_exhausted", "auth"):
                # Fixed names an alarm can watch: these need a person (top up, fix the key).
                self._count("ProviderQuotaExhausted" if error.code == "quota_exhausted" else "ProviderAuthFailed", 1)
        return ProviderResult(run, output, retryable)

    def _count(self, name: str, value: float, unit: str = "Count") -> None:
        if self._metric is not None:
            self._metric(name, value, unit)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
