"""The review's errors; the tree is drawn in the package docstring."""

from __future__ import annotations

from typing import Any


class ReviewError(Exception):
    """A problem the caller can act on, said in one line."""


class ReviewNotFound(ReviewError):
    pass


class InvalidDecision(ReviewError):
    pass


class DecisionRefused(ReviewError):
    """The review's status is not one the decision can be taken from (or it changed meanwhile)."""

    def __init__(self, message: str, current: dict[str, Any]) -> None:
        super().__init__(message)
        # {status, decided_by, decided_at}: what the contract's HTTP 409 body carries.
        self.current = current
