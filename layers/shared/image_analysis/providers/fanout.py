"""One analysis as several vendor requests (Imagga's endpoints, ImageRecognize's types): every answered
section is kept, and the ones that failed are reported instead of throwing the paid answers away.

    fan_out(parts, call, ...)  -> ProviderOutput             every part answered
                               -> raises PartialAnswer        some answered: .output holds them, .failures
                                                              (part -> ProviderError) the others
                               -> raises a ProviderError      none answered (the most lasting error)

A lasting error (auth, quota, a refused image) says more than a passing one. Sent one at a time, the
parts after a lasting error are not sent: a bad key or an empty quota fails them too, and would be paid.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from image_analysis.errors import ProviderError
from image_analysis.models import ErrorInfo
from image_analysis.providers.base import ProviderOutput
from image_analysis.structs import non_default_fields


class PartialAnswer(Exception):
    """Some parts of one provider's analysis answered, others failed. Not an ``AnalysisError``: the answered
    sections stand (the orchestrator records the provider as ``partial``), and another delivery of the
    record would pay for them again, so it is not a reason to retry."""

    def __init__(
        self,
        provider: str,
        output: ProviderOutput,
        failures: Mapping[str, ProviderError],
        missing: frozenset[str] = frozenset(),
    ) -> None:
        self.provider = provider
        self.output = output
        self.failures = dict(failures)
        # The capabilities the failed parts would have answered (routing asks another provider for them).
        self.missing = missing
        super().__init__(self.info().message)

    def info(self) -> ErrorInfo:
        """The most lasting failure's code; the message names every missing part and why."""
        lasting = [e for e in self.failures.values() if not e.retryable]
        code = (lasting or list(self.failures.values()))[0].code
        reasons = "; ".join(f"{part}: {_without_provider(e, self.provider)}" for part, e in self.failures.items())
        answered = ", ".join(sorted(self.output.raw)) or "nothing else"
        return ErrorInfo(
            code=code,
            message=f"{self.provider}: missing {', '.join(self.failures)} ({reasons}); answered: {answered}",
        )


def _without_provider(error: ProviderError, provider: str) -> str:
    prefix = f"{provider}: "
    return error.message[len(prefix) :] if error.message.startswith(prefix) else error.message


_T = TypeVar("_T")
_R = TypeVar("_R")


class _Mapper(Protocol):
    def map(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]: ...


class EndpointPool:
    """Threads for the requests of a provider's analyses: at most ``per_analysis`` requests of one analysis
    at once (``<VENDOR>_MAX_CONCURRENCY``), each analysis in flight with its own allowance. One pool per
    container, created on first use; a cap on a vendor for the whole container is ``<VENDOR>_MAX_IN_FLIGHT``'s
    (the orchestrator's). Shared by every analysis, a pool of ``per_analysis`` threads would queue a batch's
    requests behind each other: ten records' two requests each would take five round trips instead of one.
    """

    def __init__(self, name: str, per_analysis: int, analyses: int) -> None:
        self.name = name
        self.per_analysis = max(1, per_analysis)
        self._threads = self.per_analysis * max(1, analyses)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __call__(self) -> _Mapper:
        """One analysis's window on the pool."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix=self.name)
        return _Window(self._pool, self.per_analysis)


class _Window:
    def __init__(self, pool: ThreadPoolExecutor, at_once: int) -> None:
        self._pool = pool
        self._gate = threading.BoundedSemaphore(at_once)

    def map(self, fn: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
        """Like ``Executor.map``; a request waits for its turn here, in the caller's thread, so that no
        pool thread is held by a request that may not go yet."""
        futures = []
        for item in items:
            self._gate.acquire()
            future = self._pool.submit(fn, item)
            future.add_done_callback(lambda _: self._gate.release())
            futures.append(future)
        return (future.result() for future in futures)


def fan_out(
    provider: str,
    parts: Sequence[str],
    call: Callable[[str], ProviderOutput],
    *,
    capabilities: Callable[[str], Iterable[str]] = lambda part: (),
    executor: Callable[[], _Mapper] | None = None,
) -> ProviderOutput:
    """``call(part)`` for every part: at once on ``executor()`` when given and there is more than one part,
    else one after the other. Returns the parts' outputs put together (they fill disjoint sections).
    ``capabilities(part)``: what a part answers, so that a partial answer says which are missing."""

    def guarded(part: str) -> ProviderOutput | ProviderError:
        try:
            return call(part)
        except ProviderError as exc:
            return exc

    results: dict[str, ProviderOutput | ProviderError] = {}
    if executor is None or len(parts) == 1:
        for part in parts:
            results[part] = guarded(part)
            failed = results[part]
            if isinstance(failed, ProviderError) and not failed.retryable:
                break  # the parts left would fail the same way, and be paid for
    else:
        results = dict(zip(parts, executor().map(guarded, parts), strict=True))
    failures = {part: r for part, r in results.items() if isinstance(r, ProviderError)}
    # A part never sent (after a lasting error) is missing for the same reason.
    first_lasting = next((e for e in failures.values() if not e.retryable), None)
    for part in parts:
        if part not in results and first_lasting is not None:
            failures[part] = first_lasting
    answered = [r for r in results.values() if isinstance(r, ProviderOutput)]
    if not answered:
        lasting = [e for e in failures.values() if not e.retryable]
        raise (lasting or list(failures.values()))[0]
    output = combine(answered)
    if failures:
        missing = frozenset(c for part in failures for c in capabilities(part))
        raise PartialAnswer(provider, output, failures, missing)
    return output


def combine(outputs: Sequence[ProviderOutput]) -> ProviderOutput:
    """Outputs of disjoint sections put together; their raw answers side by side."""
    merged: dict[str, Any] = {"raw": {}}
    for output in outputs:
        merged["raw"].update(output.raw)
        # A section an output left at its default (empty, None) is one it does not produce.
        merged.update((name, value) for name, value in non_default_fields(output) if name != "raw")
    return ProviderOutput(**merged)
