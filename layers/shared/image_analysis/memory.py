"""The batch's memory budget: what the records of one invocation may hold at once, in decoded bytes.

A record holds what its file takes once decoded (``imaging.Probe.decoded_bytes``) while it decodes, and
what it keeps afterwards (``DecodedImage.retained_bytes``) until it ends. One file larger than the whole
budget still runs, alone: its hold is cut to the budget, so it waits until nothing else is held.

A hold that grows gives back what it holds while it waits, so two records growing at once can never each
wait for the other's bytes.
"""

from __future__ import annotations

import threading


class ByteBudget:
    """At most ``limit`` bytes held at once by the ``Hold`` objects it hands out."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._used = 0
        self._condition = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    def hold(self) -> Hold:
        return Hold(self)

    def acquire(self, size: int) -> int:
        """Hold ``size`` bytes (at least 1, at most the limit) until ``release``; returns what is held."""
        hold = self.hold()
        hold.resize(size)
        return hold.held

    def release(self, size: int) -> None:
        with self._condition:
            self._used -= size
            self._condition.notify_all()


class Hold:
    """One record's share of a ``ByteBudget``: ``resize`` it as the record's needs change."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.held = 0

    def resize(self, size: int) -> None:
        budget = self._budget
        size = min(max(size if isinstance(size, int) else 1, 0), budget.limit)
        with budget._condition:
            if size <= self.held:
                budget._used -= self.held - size
                self.held = size
                budget._condition.notify_all()
                return
            budget._used -= self.held
            self.held = 0
            budget._condition.notify_all()
            budget._condition.wait_for(lambda: budget._used + size <= budget.limit)
            budget._used += size
            self.held = size

    def release(self) -> None:
        self.resize(0)
