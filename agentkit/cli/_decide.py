"""``agentkit sessions approve|deny ID CALL_ID...``: decide a paused session's calls.

The rules are the HTTP API's (``POST /v1/sessions/{id}/approvals``): every waiting call
is decided at once, each decision is bound to the stored call's argument digest (a call
whose arguments changed since it paused is refused, nothing runs), and the decision
resumes the run with the agent's own tools, to its answer or its next pause. The operator
at the command line is trusted with the store, as whoever can open its file is.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import inspect
from typing import TYPE_CHECKING, Any, TextIO

from ._console import _is_terminal, visible
from ._errors import EXIT_ERROR, EXIT_OK, UsageError

if TYPE_CHECKING:
    from .._agent import Agent
    from .._result import PendingCall
    from .._store import Store

__all__ = ["decide"]


def decide(
    agent: Agent[Any], store: Store, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    """Approve or deny the named calls of session ``args.name`` and print what follows."""
    approve = args.action == "approve"
    if approve and args.reason is not None:
        raise UsageError("--reason is for sessions deny: an approved call runs as it is")
    if not args.calls:
        raise UsageError(
            f"sessions {args.action} needs the CALL_ID of each call to decide",
            hint=f"`agentkit sessions pending` lists them, or `sessions show {args.name}`",
        )
    record = store.load(args.name)
    # every level's calls, by key: a call inside an agent used as a tool is "call_1/call_7"
    waiting = {call.key: call for call in record.pending_calls}
    if not waiting:
        err.write(f"agentkit: error: session {args.name!r} is not waiting for a decision\n")
        return EXIT_ERROR
    unknown = [call_id for call_id in args.calls if call_id not in waiting]
    if unknown:
        err.write(
            f"agentkit: error: session {args.name!r} has no waiting call {unknown[0]!r} "
            f"(waiting: {', '.join(waiting)})\n"
        )
        return EXIT_ERROR
    undecided = [call_id for call_id in waiting if call_id not in args.calls]
    if undecided:
        other = waiting[undecided[0]]
        raise UsageError(
            f"session {args.name!r} also waits on {undecided[0]} ({other.name}): "
            "every waiting call is decided at once",
            hint=f"name each: agentkit sessions {args.action} {args.name} " + " ".join(waiting),
        )
    verdict: bool | str = True if approve else (args.reason or False)
    decisions: dict[PendingCall, bool | str] = {call: verdict for call in waiting.values()}
    operator = _operator()
    for call in decisions:
        word = "approved" if approve else "denied"
        err.write(
            f"{word} {visible(call.key)} {visible(call.name)}({visible(call.arguments)}) "
            f"as {operator}\n"
        )
    identity = _for_owner(store, args)
    if identity.get("owners") is not None:  # recorded as a served decision is: who, when
        identity.pop("owners").record(args.name, {c.key: v for c, v in decisions.items()}, operator)
    identity.pop("owners", None)
    with agent:
        result = agent.resume(args.name, decisions, decided_by=operator, **identity)
    if result.status == "paused":
        for call in result.pending:
            err.write(
                f"waiting for approval: {visible(args.name)} {visible(call.key)} "
                f"{visible(call.name)}"
                f"({visible(call.arguments)})\n"
            )
        return EXIT_OK
    output = result.output
    answer = output if isinstance(output, str) else _as_json(output)
    if _is_terminal(out):  # the model's answer: a file gets it as it is (see Console.text)
        answer = visible(answer.replace("\r\n", "\n"), lines=True)
    out.write(answer + "\n")
    return EXIT_OK


def _for_owner(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    """The served conversation's owner as the run's principal, with the deps ``--deps``
    makes for them; and the store's owner rows, where decisions are recorded."""
    from ..sessions._sql import SQLStore

    if not isinstance(store, SQLStore):
        return {}
    from ..sessions._owners import Owners

    owners = Owners(store)
    owner = owners.owner(args.name)
    found: dict[str, Any] = {"owners": owners}
    principal = owner.principal if owner is not None else None
    if principal is not None:
        found["principal"] = principal
    if getattr(args, "deps", None):
        from ._loading import load_function

        if principal is None:
            from .._context import Principal

            principal = Principal(_operator())
        deps = load_function(args.deps, option="--deps")(principal)
        if inspect.iscoroutine(deps):  # an async deps factory, as serve allows
            deps = asyncio.run(deps)
        found["deps"] = deps
    return found


def _operator() -> str:
    """Who is deciding, as the command line knows them: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name (a container with an unnamed uid)
        return "cli"


def _as_json(value: Any) -> str:
    import json

    dump = getattr(value, "model_dump", None)
    data = dump(mode="json") if callable(dump) else value
    return json.dumps(data, ensure_ascii=False, default=str)
