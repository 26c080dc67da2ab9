"""The evals' exceptions: a bad suite (found before any request), a suite stopped at once,
a Batch API that failed."""

from __future__ import annotations

from .._errors import AgentKitError, ConfigurationError

__all__ = ["BatchError", "EvalError", "SuiteError", "SuiteStopped"]


class EvalError(AgentKitError):
    """Base of the exceptions ``agentkit.evals`` raises."""


class SuiteError(EvalError, ConfigurationError):
    """The suite is wrong (no agent factory, a check naming a tool the agent does not have,
    a backend it cannot run on); raised by :meth:`Suite.check` before any request."""


class SuiteStopped(EvalError):
    """The suite stopped at once: the provider said the quota is used up or the bill is
    unpaid, so no later conversation could succeed. ``cause`` is the error it said so with;
    ``finished`` is how many conversations had finished."""

    def __init__(self, message: str, *, cause: BaseException, finished: int) -> None:
        super().__init__(message)
        self.cause = cause
        self.finished = finished


class BatchError(EvalError):
    """The Batch API refused a file or a batch, or a batch failed as a whole; ``batch_id``
    names it when there is one (the state file keeps the rest for a resume)."""

    def __init__(self, message: str, *, batch_id: str | None = None) -> None:
        super().__init__(message)
        self.batch_id = batch_id
