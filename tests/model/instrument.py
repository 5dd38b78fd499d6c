"""The seam between the model and the real code: every AWS call the pipeline makes goes through here.

    Instrumented(client, ...)   a boto3-shaped client whose calls the switchboard sees, by operation name
                                (``s3.get_object``, ``results.put_item``, ``ledger.put_item``, ``sns.publish``)
    Switchboard.call            fails a call the model armed a fault on (by operation, or by its position
                                in the invocation; before it takes effect, or after:
                                the answer lost), tells the model what happened, and stops the invocation
                                where the model asked: cut (the process dies) or paused (another invocation
                                runs meanwhile)
    Invocation                  one Lambda invocation in a thread of its own, run step by step from the
                                model's thread: only one of them runs at any moment, so a run is
                                reproducible whatever the scheduler does

``InvocationCut`` is a ``BaseException``: no ``except Exception`` cleanup runs after it, as when the
process dies; ``finally`` blocks do run (they only give back in-process resources).
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.model.fakes import client_error

# How long the model waits for an invocation to reach its next stop: longer means it is stuck.
HANG_SECONDS = 60.0


class InvocationCut(BaseException):
    """The invocation's process died at this point."""


class InvocationHung(AssertionError):
    """An invocation neither finished nor reached its stop in time: a deadlock."""


@dataclass(frozen=True)
class Fault:
    op: str
    # Calls of ``op`` that pass before the one that fails.
    skip: int = 0
    # The call takes effect and then fails (a timeout after the service acted): the caller cannot tell.
    applied: bool = False


@dataclass(frozen=True)
class Stop:
    """Where an invocation stops: after the ``nth`` call of ``op``; ``cut`` dies there, ``pause`` waits."""

    op: str
    nth: int = 1
    mode: str = "cut"


def fault_error(op: str) -> Exception:
    if op.startswith("vendor."):
        from image_analysis.errors import ServerError

        return ServerError(op.removeprefix("vendor."), "503 Service Unavailable (injected)")
    service = op.partition(".")[0]
    code = {"s3": "InternalError", "sns": "InternalError"}.get(service, "InternalServerError")
    return client_error(code, 500, op, "injected fault")


@dataclass
class Invocation:
    """One invocation: ``start`` runs it until it finishes or reaches its stop; ``resume`` or ``kill`` a
    paused one."""

    board: Switchboard
    run: Callable[[], Any]
    stop: Stop | None = None
    label: str = ""
    # Calls that fail, by position (counted from 1, whatever their operation) -> whether after taking effect.
    fail_at: dict[int, bool] = field(default_factory=dict)
    calls: int = 0
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    faults_fired: list[Fault] = field(default_factory=list)
    paused_at: str | None = None
    # When it started, on the model's clock; whether nothing could stand in its way (no stop, no other
    # invocation alive, no claim of a dead one alive): the model's to say.
    started_at: float = 0.0
    unhindered: bool = False
    logged_from: int = 0
    # ("returned", value) | ("raised", exception) | ("killed", None) once finished.
    outcome: tuple[str, Any] | None = None
    _to_main: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    _to_worker: queue.Queue[str] = field(default_factory=queue.Queue)

    def start(self) -> None:
        thread = threading.Thread(target=self._work, name=f"invocation-{self.label}", daemon=True)
        self.board.active = self
        thread.start()
        self._wait()

    def resume(self) -> None:
        self._continue("resume")

    def kill(self) -> None:
        self._continue("kill")

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def _continue(self, command: str) -> None:
        assert self.paused_at is not None, "only a paused invocation goes on"
        self.paused_at = None
        self.board.active = self
        self._to_worker.put(command)
        self._wait()

    def _wait(self) -> None:
        try:
            kind, value = self._to_main.get(timeout=HANG_SECONDS)
        except queue.Empty:
            raise InvocationHung(f"invocation {self.label} did not finish or stop within {HANG_SECONDS} s") from None
        finally:
            self.board.active = None
        if kind == "paused":
            self.paused_at = value
        else:
            self.outcome = (kind, value)

    def _work(self) -> None:
        try:
            value = self.run()
        except InvocationCut:
            self._to_main.put(("killed", None))
        except BaseException as exc:  # reported to the model's thread, which decides
            self._to_main.put(("raised", exc))
        else:
            self._to_main.put(("returned", value))

    def after(self, op: str) -> None:
        """Called in this invocation's thread after each successful call."""
        self.counts[op] += 1
        stop = self.stop
        if stop is None or stop.op != op or self.counts[op] != stop.nth:
            return
        if stop.mode == "cut":
            raise InvocationCut(op)
        self._to_main.put(("paused", op))
        if self._to_worker.get() == "kill":
            raise InvocationCut(op)


class Switchboard:
    """Faults armed by the model, the invocation running now, and who wants to hear about each call."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.active: Invocation | None = None
        self.observers: list[Callable[[str, dict[str, Any], Any], None]] = []
        self.fired = collections.Counter[str]()

    def arm(self, fault: Fault) -> None:
        self.faults.append(fault)

    def disarm(self) -> None:
        self.faults.clear()

    def call(self, op: str, kwargs: dict[str, Any], invoke: Callable[[], Any]) -> Any:
        fault = self._take(op)
        invocation = self.active
        if invocation is not None:
            invocation.calls += 1
            applied = invocation.fail_at.pop(invocation.calls, None)
            if fault is None and applied is not None:
                fault = Fault(op, 0, applied)
        if fault is not None and not fault.applied:
            self._fired(fault)
            raise fault_error(op)
        result = invoke()
        for observe in self.observers:
            observe(op, kwargs, result)
        if fault is not None:
            self._fired(fault)
            raise fault_error(op)
        if self.active is not None:
            self.active.after(op)
        return result

    def _take(self, op: str) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.op != op:
                continue
            if fault.skip == 0:
                del self.faults[index]
                return fault
            self.faults[index] = Fault(fault.op, fault.skip - 1, fault.applied)
            return None
        return None

    def _fired(self, fault: Fault) -> None:
        self.fired[fault.op] += 1
        if self.active is not None:
            self.active.faults_fired.append(fault)


class Instrumented:
    """A client whose every call passes the switchboard, named by its table's role for DynamoDB."""

    def __init__(self, client: Any, service: str, board: Switchboard, tables: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._service = service
        self._board = board
        self._tables = dict(tables or {})

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if name.startswith("_") or not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._board.call(f"{self._role(kwargs)}.{name}", kwargs, lambda: target(*args, **kwargs))

        return call

    def _role(self, kwargs: dict[str, Any]) -> str:
        if self._service != "dynamodb":
            return self._service
        table = kwargs.get("TableName") or next(iter(kwargs.get("RequestItems") or {}), "")
        return self._tables.get(table, "dynamodb")
