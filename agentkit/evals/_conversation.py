"""One conversation of one scenario, start to finish: the bot built fresh, the customer's
turns, the checks. Every backend runs conversations through :func:`converse`."""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import AgentKitError, QuotaExceededError
from .._wire import Usage
from ._checks import CheckResult, Conversation, Judge, evaluate
from ._scenario import DONE, GIVE_UP, Scenario

if TYPE_CHECKING:
    import httpx

    from .._agent import Agent

__all__ = ["Attempt", "build_agent", "converse", "takes_http_client"]


@dataclass(slots=True)
class Attempt:
    """One try of one scenario: whether it passed, each check's verdict, the transcript.

    Plain data (JSON-ready through :meth:`to_dict`), so any backend can send it back.
    """

    scenario: int
    attempt: int
    passed: bool
    checks: list[CheckResult]
    messages: list[dict[str, Any]]
    output: str = ""
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The attempt as JSON-ready data."""
        return {
            "attempt": self.attempt,
            "passed": self.passed,
            "checks": [check.to_dict() for check in self.checks],
            "messages": self.messages,
            "output": self.output,
            "error": self.error,
            "usage": self.usage,
            "turns": self.turns,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, scenario: int, data: dict[str, Any]) -> Attempt:
        """Read back what :meth:`to_dict` wrote."""
        return cls(
            scenario=scenario,
            attempt=int(data["attempt"]),
            passed=bool(data["passed"]),
            checks=[CheckResult(**check) for check in data.get("checks", ())],
            messages=list(data.get("messages", ())),
            output=str(data.get("output", "")),
            error=data.get("error"),
            usage=dict(data.get("usage", {})),
            turns=int(data.get("turns", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )

    @property
    def failed_checks(self) -> list[CheckResult]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]


def takes_http_client(factory: Callable[..., Any]) -> bool:
    """Whether an agent factory accepts ``http_client=`` (the seam the rate limit and the
    Batch API use)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "http_client" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def build_agent(
    factory: Callable[..., Any], http_client: httpx.AsyncClient | None
) -> tuple[Agent[Any], Any]:
    """Call an agent factory: it returns an ``Agent`` or ``(Agent, deps)``."""
    from .._agent import Agent

    made = (
        factory(http_client=http_client)
        if http_client is not None and takes_http_client(factory)
        else factory()
    )
    agent, deps = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    if not isinstance(agent, Agent):
        raise TypeError(
            f"the agent factory returned {type(made).__name__}; it must return an Agent "
            "or a tuple (Agent, deps)"
        )
    return agent, deps


class _Tally:
    __slots__ = ("turns", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.turns = 0


async def converse(
    scenario: Scenario,
    index: int,
    attempt: int,
    *,
    agent: Callable[..., Any],
    user: Callable[..., Any] | None = None,
    judge: Callable[..., Any] | None = None,
    http_client: httpx.AsyncClient | None = None,
    close: bool = True,
) -> Attempt:
    """Run try number ``attempt`` of ``scenario`` and check it.

    A run that fails (a limit, a refusal, a bad answer) is a failed attempt carrying the
    error and the transcript so far; a used-up quota is raised, since it stops the suite.
    The bot is closed afterwards unless ``close`` is false (a factory that shares one).
    """
    started = time.perf_counter()
    tally = _Tally()
    bot, deps = build_agent(agent, http_client)
    messages: list[dict[str, Any]] = list(scenario.history)
    output: Any = None
    error: str | None = None
    try:
        if scenario.user is None:
            for text in scenario.turns:
                messages, output = await _bot_turn(bot, messages, text, deps, tally)
        else:
            factory = scenario.user.agent or user
            assert factory is not None  # Suite.check refuses a simulated user without one
            customer, _ = build_agent(factory, http_client)
            try:
                messages, output = await _simulated(bot, customer, scenario, messages, deps, tally)
            finally:
                await customer.aclose()
    except QuotaExceededError:
        raise
    except AgentKitError as exc:
        error = f"{type(exc).__name__}: {exc}"
        messages = list(exc.messages or messages)
    finally:
        if close:
            await bot.aclose()
    conversation = Conversation(messages=messages, output=output, deps=deps, error=error)
    results = []
    for number, check in enumerate(scenario.checks):
        if isinstance(check, Judge):
            results.append(await _judged(check, judge, conversation, http_client))
        else:
            results.append(await evaluate(check, number, conversation))
    return Attempt(
        scenario=index,
        attempt=attempt,
        passed=error is None and all(result.passed for result in results),
        checks=results,
        messages=messages,
        output=conversation.text,
        error=error,
        usage=tally.usage.to_dict(),
        turns=tally.turns,
        seconds=time.perf_counter() - started,
    )


async def _bot_turn(
    bot: Agent[Any], messages: list[dict[str, Any]], text: str, deps: Any, tally: _Tally
) -> tuple[list[dict[str, Any]], Any]:
    prompt: Any = [*messages, {"role": "user", "content": text}] if messages else text
    result = await bot.run_async(prompt, deps=deps)
    tally.usage = tally.usage + result.usage
    tally.turns += result.turns
    if result.status == "paused":
        names = ", ".join(call.name for call in result.pending)
        raise _Paused(f"the run paused for approval of {names}", messages=result.messages)
    return result.messages, result.output


class _Paused(AgentKitError):
    """A bot run paused for a person's approval: the conversation cannot go on."""


async def _simulated(
    bot: Agent[Any],
    customer: Agent[Any],
    scenario: Scenario,
    messages: list[dict[str, Any]],
    deps: Any,
    tally: _Tally,
) -> tuple[list[dict[str, Any]], Any]:
    assert scenario.user is not None
    said: list[dict[str, Any]] | None = None
    prompt = scenario.user.opening()
    output: Any = None
    for _ in range(scenario.user.max_turns):
        asked: Any = [*said, {"role": "user", "content": prompt}] if said else prompt
        turn = await customer.run_async(asked)
        tally.usage = tally.usage + turn.usage
        said = turn.messages
        text = str(turn.output or "")
        finished = DONE in text or GIVE_UP in text
        text = text.replace(DONE, "").replace(GIVE_UP, "").strip()
        if text:
            messages, output = await _bot_turn(bot, messages, text, deps, tally)
        if finished or not text:
            break
        prompt = str(output or "")
    return messages, output


async def _judged(
    check: Judge,
    suite_judge: Callable[..., Any] | None,
    conversation: Conversation,
    http_client: httpx.AsyncClient | None,
) -> CheckResult:
    factory = check.agent or suite_judge
    assert factory is not None  # Suite.check refuses a judge without one
    judge_agent, _ = build_agent(factory, http_client)
    try:
        result = await judge_agent.run_async(check.prompt(conversation))
    except QuotaExceededError:
        raise
    except AgentKitError as exc:
        return CheckResult(check.name, False, f"the judge failed: {type(exc).__name__}: {exc}")
    finally:
        await judge_agent.aclose()
    return verdict(check.name, result.output)


def verdict(name: str, output: Any) -> CheckResult:
    """Read a judge's answer: an object or JSON text with ``passed`` and ``reason``."""
    data: Any = output
    dump = getattr(output, "model_dump", None)
    if callable(dump):
        data = dump()
    elif isinstance(output, str):
        text = output.strip()
        with contextlib.suppress(ValueError):
            start, end = text.find("{"), text.rfind("}")
            data = json.loads(text[start : end + 1]) if start >= 0 else text
    if isinstance(data, dict) and isinstance(data.get("passed"), bool):
        return CheckResult(name, data["passed"], str(data.get("reason", "")))
    return CheckResult(name, False, f"the judge gave no verdict: {str(output)[:200]!r}")
