"""``Outcome``: the failure of one I/O, kept for the generator that decides what follows.

The drivers (:mod:`agentkit._drive`) perform the effects a run's steps yield, and each
client stream (:mod:`agentkit._client`) the I/O its plan yields; both are written once
per world (blocking, or awaiting) around the line that performs. ``with outcome:`` around
that line is the one place a failure is caught: it is kept, and :meth:`Outcome.resume`
throws it into the generator, which decides (retry, fail the run, end the stream).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeVar

__all__ = ["Outcome"]

_Y = TypeVar("_Y")


class Outcome:
    """A context manager that keeps the failure of what it wraps instead of raising it.

    ``GeneratorExit`` goes through: a generator (or coroutine) being closed may not yield
    or await again, so nothing may decide to carry on after it.
    """

    __slots__ = ("failure",)

    def __init__(self) -> None:
        self.failure: BaseException | None = None

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, failure: BaseException | None, tb: object) -> bool:
        if failure is None or isinstance(failure, GeneratorExit):
            return False
        self.failure = failure
        return True

    def resume(self, steps: Generator[_Y, Any, Any], answer: Any = None) -> _Y:
        """What ``steps`` yields next: sent ``answer``, or thrown the failure kept (which
        is forgotten)."""
        failure = self.failure
        if failure is None:
            return steps.send(answer)
        self.failure = None
        return steps.throw(failure)
