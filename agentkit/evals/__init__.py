"""Know whether a bot is right: scenarios tried ``k`` times, pass^k, checks on tool calls,
output and the final state of the bot's data, simulated customers and an LLM judge.

Example::

    from agentkit.evals import Scenario, Suite, called, not_called

    suite = Suite(
        agent=lambda: make_desk(),          # a fresh Agent (or (Agent, deps)) per conversation
        scenarios=[
            Scenario("refund the double charge",
                     turns=["I was charged twice for order 1042.", "Yes, refund one."],
                     checks=[called("issue_refund", order_id=1042), not_called("cancel_order")]),
        ],
    )
    report = suite.run(k=4, concurrency=16)      # or backend="ray" / backend="batch"
    print(report.pass_hat(1), report.pass_hat(4))

``agentkit eval evals.py:suite -k 4`` runs a suite from the command line. See docs/evals.md.
This package imports no extra: Ray is imported by the ray backend only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._checks import (
    Check,
    CheckResult,
    Conversation,
    called,
    judge,
    not_called,
    output_matches,
    output_schema,
)
from ._conversation import Attempt
from ._errors import BatchError, EvalError, SuiteError, SuiteStopped
from ._limit import RateLimit
from ._report import Change, Report, ScenarioReport, pass_hat
from ._scenario import Scenario, SimulatedUser
from ._suite import Backend, Suite

if TYPE_CHECKING:
    from ._batch import BatchBackend
    from ._batchapi import Polling
    from ._local import LocalBackend
    from ._ray import RayBackend

__all__ = [
    "Attempt",
    "Backend",
    "BatchBackend",
    "BatchError",
    "Change",
    "Check",
    "CheckResult",
    "Conversation",
    "EvalError",
    "LocalBackend",
    "Polling",
    "RateLimit",
    "RayBackend",
    "Report",
    "Scenario",
    "ScenarioReport",
    "SimulatedUser",
    "Suite",
    "SuiteError",
    "SuiteStopped",
    "called",
    "judge",
    "not_called",
    "output_matches",
    "output_schema",
    "pass_hat",
]

_BACKENDS = {
    "BatchBackend": "._batch",
    "LocalBackend": "._local",
    "Polling": "._batchapi",
    "RayBackend": "._ray",
}


def __getattr__(name: str) -> Any:
    module = _BACKENDS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkit.evals' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
