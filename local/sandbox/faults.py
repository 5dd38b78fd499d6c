"""Fault injection: what can go wrong between us and a vendor, on demand or at a rate.

Two ways to ask for faults, usable together:

- a **plan** of rates (``FaultPlan``): each request draws once and gets at most one fault, e.g.
  ``FaultPlan(rate_limit=0.2, retry_after="1", unavailable=0.05, latency=0.1, seed=7)``;
- a **script** (``Faults.enqueue``): exact faults consumed in order by the next matching requests,
  e.g. ``faults.enqueue("unavailable", "ok")`` or ``faults.enqueue(Fault("rate_limit", retry_after="2"),
  path="/v2/tags")``. A script entry wins over the plan.

Kinds: ``ok`` (no fault), ``rate_limit`` (429), ``server_error`` (500), ``unavailable`` (503), ``slow``
(answers normally after ``seconds``), ``drop`` (closes the connection without an answer), ``malformed``
(the normal answer cut in half, still 200 and ``application/json``), and ``error`` (script only: any
``status`` in the vendor's documented error shape, e.g. ``Fault("error", status=403)``).
``retry_after=""`` forces a 429/503 without the header even when the plan sets one.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

FaultKind = Literal["ok", "rate_limit", "server_error", "unavailable", "slow", "drop", "malformed", "error"]
KINDS: tuple[FaultKind, ...] = (
    "ok",
    "rate_limit",
    "server_error",
    "unavailable",
    "slow",
    "drop",
    "malformed",
    "error",
)
STATUS: dict[str, int] = {"rate_limit": 429, "server_error": 500, "unavailable": 503}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    # Sent as the Retry-After header on 429/503 when set: seconds ("2") or an HTTP date.
    retry_after: str | None = None
    # For ``slow``: how long to wait before answering.
    seconds: float | None = None
    # For ``error``: the HTTP status to answer with.
    status: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind == "error" and not (self.status and 400 <= self.status <= 599):
            raise ValueError('Fault("error") needs a status between 400 and 599')

    @property
    def http_status(self) -> int | None:
        """The status this fault answers with instead of the vendor, if it does."""
        return self.status if self.kind == "error" else STATUS.get(self.kind)


@dataclass(frozen=True)
class FaultPlan:
    """Rates are probabilities (0..1) per request; their sum must not exceed 1."""

    latency: float = 0.0  # added before every answer, faulty or not
    rate_limit: float = 0.0
    retry_after: str | None = None  # Retry-After on 429 and 503; None: no header (Imagga documents none)
    server_error: float = 0.0
    unavailable: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 5.0
    drop: float = 0.0
    malformed: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.rate_limit, self.server_error, self.unavailable, self.slow, self.drop, self.malformed)
        if any(r < 0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")


class Faults:
    """The live controller a sandbox consults once per request; thread-safe."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._script: deque[tuple[Fault, str | None]] = deque()
        self.plan = plan or FaultPlan()
        self._random = random.Random(self.plan.seed)

    def configure(self, plan: FaultPlan | None = None, **changes: object) -> None:
        """Replace the plan, or change some of its fields: ``configure(unavailable=0.5)``."""
        with self._lock:
            self.plan = replace(plan or self.plan, **changes)  # type: ignore[arg-type]
            self._random = random.Random(self.plan.seed)

    def enqueue(self, *faults: Fault | FaultKind, path: str | None = None) -> None:
        """Script the next faults, in order, for requests to ``path`` (any path when None)."""
        with self._lock:
            for fault in faults:
                self._script.append((fault if isinstance(fault, Fault) else Fault(fault), path))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.plan = FaultPlan()
            self._random = random.Random(None)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def next(self, path: str) -> Fault:
        """The fault for this request: the first scripted one for its path, else a draw from the plan."""
        with self._lock:
            for index, (fault, only) in enumerate(self._script):
                if only is None or only == path:
                    del self._script[index]
                    return self._filled(fault)
            plan = self.plan
            draw = self._random.random()
            for kind, rate in (
                ("rate_limit", plan.rate_limit),
                ("server_error", plan.server_error),
                ("unavailable", plan.unavailable),
                ("slow", plan.slow),
                ("drop", plan.drop),
                ("malformed", plan.malformed),
            ):
                if draw < rate:
                    return self._filled(Fault(kind))  # type: ignore[arg-type]
                draw -= rate
            return Fault("ok")

    def _filled(self, fault: Fault) -> Fault:
        """Plan defaults for what a fault left open (Retry-After, slow seconds)."""
        if fault.kind in ("rate_limit", "unavailable") and fault.retry_after is None and self.plan.retry_after:
            fault = replace(fault, retry_after=self.plan.retry_after)
        if fault.kind == "slow" and fault.seconds is None:
            fault = replace(fault, seconds=self.plan.slow_seconds)
        return fault
