"""``create_app``: the Starlette application and its routes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import warnings
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._blocking import off_loop_to_the_end
from .._deprecation import AgentKitDeprecationWarning
from .._result import PendingCall
from . import _format as fmt
from ._access import Access
from ._asgi import ClientGone, EventStream, read_body, until_disconnect
from ._errors import ServeError, error_body, from_exception, redact
from ._guard import Guard
from ._identity import AuthSource, SharedKeys
from ._request import ChatRequest, RequestLimits, check_conversation, parse_chat_request, parse_json
from ._run import Ended, RunSpec, call_view, execute, execute_stored, keep_seen, stream

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from .._agent import Agent
    from .._context import Principal
    from .._store import Store

__all__ = ["CONVERSATION_HEADER", "create_app"]

log = logging.getLogger("agentkit.serve")

CONVERSATION_HEADER = "x-agentkit-conversation"
"""The request header that names a stored conversation."""

_CLIENT_ROLES = frozenset({"system", "tool"})


def create_app(
    agents: Mapping[str, Agent[Any]],
    *,
    api_keys: Iterable[str] = (),
    auth: AuthSource | None = None,
    deps: Callable[[Principal], Any] | None = None,
    reviewers: Collection[str] = (),
    allow_roles: Collection[str] = (),
    request_limits: RequestLimits | None = None,
    page: bool = True,
    title: str = "agentkit",
    access_log: bool = False,
    allowed_hosts: Iterable[str] = (),
    conversation_from_user: bool = False,
    limits: RequestLimits | None = None,
) -> Starlette:
    """An ASGI app serving ``agents`` (name -> Agent) as an OpenAI-compatible endpoint.

    Routes: ``POST /v1/chat/completions`` (streamed or not), ``GET /v1/models``,
    ``GET /healthz``, ``GET /v1/me``, ``GET /v1/sessions/{id}`` and
    ``POST /v1/sessions/{id}/approvals`` (for agents with a store),
    ``GET /v1/approvals?agent=NAME`` (reviewers), and the chat page at ``GET /``
    (``page=False``: none).

    Every request is turned into a :class:`~agentkit.Principal` by ``auth``. A stored
    conversation belongs to the principal who started it: another principal gets a 404
    (nothing is written), except that a reviewer may read and decide it.

    Args:
        agents: the served agents by the name clients put in ``model``.
        api_keys: shared bearer keys clients must send (each one principal with no roles).
            With none and no ``auth``, only loopback clients are answered; ``agentkit
            serve`` refuses a non-loopback host without keys.
        auth: where identities come from: ``StoredKeys(store)``, ``OIDC(issuer,
            audience)`` or ``TrustedProxy(header, proxies)`` (not with ``api_keys``).
        deps: ``deps(principal)``, sync or async, returns the run's ``deps`` for the
            person asking (for a decision, the conversation's owner).
        reviewers: roles whose holders decide approvals of any conversation; with any
            set, only they decide (the owner's own decision is a 403). Without, the owner
            decides.
        allow_roles: roles besides ``user`` (and plain-text ``assistant`` history) that
            clients may send: ``"system"``, ``"tool"``. Default: none.
        request_limits: a :class:`RequestLimits`: bounds on body size, message count,
            answer length and run time.
        page: serve the chat page at ``/``.
        title: the page's title.
        access_log: log one line per request through ``uvicorn.access``, naming the
            principal (``agentkit serve`` does, in place of uvicorn's own access log).
        allowed_hosts: names besides the loopback ones that requests may address in
            ``Host`` (the public name behind a proxy). Without API keys (or with names
            given), any other ``Host`` is refused with 421: the guard against DNS rebinding.
        conversation_from_user: for agents with a store, let the body's ``user`` field
            name the conversation when no ``X-Agentkit-Conversation`` header does. Off by
            default: OpenAI clients put one end-user id there for all of that user's chats,
            which would merge them into one conversation.
        limits: the old name of ``request_limits`` (warns; ``limits=`` of an ``Agent`` is
            its :class:`~agentkit.RunLimits`, a different record).

    Every POST must be ``Content-Type: application/json`` (415), and a browser's
    ``Origin``, when sent, must be the server's own (403): a web page on another site
    cannot make a visitor's browser call the bot.
    """
    try:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.middleware import Middleware
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - exercised by the packaging test
        raise ImportError(
            "agentkit.serve needs Starlette and uvicorn: pip install 'agentkit[serve]'"
        ) from exc

    if not agents:
        raise ValueError("create_app needs at least one agent, e.g. {'desk': desk}")
    unknown = set(allow_roles) - _CLIENT_ROLES
    if unknown:
        raise ValueError(f"allow_roles takes 'system' and 'tool', not {sorted(unknown)}")
    served = dict(agents)
    keys = list(api_keys)
    if auth is not None and keys:
        raise ValueError("give api_keys or auth, not both")
    source: AuthSource = auth if auth is not None else SharedKeys(keys)
    access = Access(source, served, deps, frozenset(reviewers))
    bounds = _request_limits(request_limits, limits)
    hosts = [host for host in allowed_hosts if host]
    scrubbers = [agent.scrub for agent in served.values()]

    def failure(exc: BaseException) -> Response:
        error = _logged(_scrubbed(from_exception(exc), scrubbers), exc)
        return fmt.json_response(error.body(), error.status, error.headers)

    def agent_named(name: str) -> Agent[Any]:
        agent = served.get(name)
        if agent is None:
            raise ServeError(
                404,
                f"The model `{name[:100]}` does not exist; GET /v1/models lists the served ones",
                param="model",
                code="model_not_found",
            )
        return agent

    async def principal_of(request: Request) -> Principal:
        client = request.client.host if request.client else None
        principal = await source.authenticate(request.headers, client)
        request.scope.setdefault("state", {})["principal"] = principal.id
        return principal

    def store_of(agent: Agent[Any], name: str) -> Store:
        store = agent.store
        if store is None:
            raise ServeError(
                400,
                f"the agent {name!r} keeps no conversations (its operator gives it a store); "
                "send the whole history instead",
                code="conversations_not_supported",
            )
        return store

    async def chat_completions(request: Request) -> Response:
        try:
            principal = await principal_of(request)
            body = await read_body(request.receive, request.headers, bounds)
            asked = parse_chat_request(
                parse_json(body),
                limits=bounds,
                allowed_roles=allow_roles,
                conversation_header=request.headers.get(CONVERSATION_HEADER),
                conversation_from_user=conversation_from_user,
            )
            agent = agent_named(asked.model)
            if CONVERSATION_HEADER in request.headers:
                store_of(agent, asked.model)
            spec = _spec(agent, asked)
            if spec.session is not None:
                await access.continue_(spec.session, asked.model, principal)
            spec = await access.with_identity(spec, principal)
        except ClientGone:
            return _nothing()
        except Exception as exc:
            return failure(exc)
        return await answer(request, spec, asked.model, asked.stream, asked.include_usage)

    async def answer(
        request: Request, spec: RunSpec, model: str, streamed: bool, include_usage: bool
    ) -> Response:
        if streamed:
            return EventStream(_sse(spec, model, include_usage, bounds, scrubbers))  # type: ignore[return-value]
        if spec.session is not None:
            # a stored conversation keeps what the client is sent: the answer cut at the
            # bound (a new message's or a decision's)
            run = execute_stored(spec, bounds.run_timeout, bounds.max_stream_chars)
        else:
            run = execute(spec, bounds.run_timeout)
        try:
            ended, activity = await until_disconnect(request.receive, run)
        except ClientGone:
            return _nothing()
        except Exception as exc:
            return failure(exc)
        if len(ended.content) > bounds.max_stream_chars:
            ended.content = ended.content[: bounds.max_stream_chars]
            ended.finish_reason = "length"
        extension = _extension(ended, activity, spec)
        return fmt.json_response(
            fmt.completion(
                fmt.Answer(model), ended.content, ended.finish_reason, ended.usage, extension
            )
        )

    async def approvals(request: Request) -> Response:
        try:
            principal = await principal_of(request)
            conversation = check_conversation(request.path_params["conversation"])
            body = parse_json(await read_body(request.receive, request.headers, bounds))
            name = _model_field(body.get("model"), served)
            agent = agent_named(name)
            store_of(agent, name)
            decisions = _decisions(body.get("decisions"))
            digests = _digests(decisions, body.get("digests"))
            streamed = body.get("stream", False) is True
            owner, waiting, undo = await access.decide(
                conversation, name, principal, decisions, digests
            )
            # Each decision names its call by the digest the person saw: the resume runs
            # nothing if the waiting call's arguments differ (also a call asked inside an
            # agent used as a tool, found by its key).
            bound = {
                _bound(key, waiting.get(key), digests[key]): decision
                for key, decision in decisions.items()
            }
            asked = RunSpec(agent, [], conversation, bound, decided_by=principal.id, undecide=undo)
            try:
                spec = await access.with_identity(asked, owner)
            except Exception:
                if undo is not None:  # nothing ran: the record must not lock others out
                    with contextlib.suppress(Exception):
                        await undo()
                raise
        except ClientGone:
            return _nothing()
        except Exception as exc:
            return failure(exc)
        return await answer(request, spec, name, streamed, False)

    async def conversation(request: Request) -> Response:
        try:
            principal = await principal_of(request)
            name = _model_field(request.query_params.get("model"), served)
            agent = agent_named(name)
            store = store_of(agent, name)
            conversation_id = check_conversation(request.path_params["conversation"])
            owner = await access.read(conversation_id, name, principal)
            view = await _conversation_view(store, conversation_id)
            view["decisions"] = await access.decisions(conversation_id, name)
        except Exception as exc:
            return failure(exc)
        view["id"] = conversation_id
        view["model"] = name
        view["owner"] = owner
        return fmt.json_response(view)

    async def waiting(request: Request) -> Response:
        try:
            principal = await principal_of(request)
            name = _model_field(request.query_params.get("agent"), served)
            agent = agent_named(name)
            store_of(agent, name)
            data, more = await access.waiting(name, principal)
        except Exception as exc:
            return failure(exc)
        return fmt.json_response({"object": "list", "agent": name, "data": data, "has_more": more})

    async def me(request: Request) -> Response:
        try:
            principal = await principal_of(request)
        except Exception as exc:
            return failure(exc)
        return fmt.json_response(
            {
                "id": principal.id,
                "roles": sorted(principal.roles),
                "reviewer": access.is_reviewer(principal),
                "owner_decides": not access.reviewers,
            }
        )

    async def models(request: Request) -> Response:
        try:
            await principal_of(request)
        except Exception as exc:
            return failure(exc)
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "agentkit",
                "agentkit": {"conversations": agent.store is not None},
            }
            for name, agent in served.items()
        ]
        return fmt.json_response({"object": "list", "data": data})

    async def healthz(request: Request) -> Response:
        return fmt.json_response({"status": "ok"})

    async def chat_page(request: Request) -> Response:
        from ._page import page_response

        return page_response(title)

    async def favicon(request: Request) -> Response:
        from ._page import favicon_response

        return favicon_response()

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = (
            f"no route for {request.method} {request.url.path}"
            if status == 404
            else f"{request.method} is not allowed here"
            if status == 405
            else "the request failed"
        )
        code = "not_found" if status == 404 else None
        return fmt.json_response(error_body(message, "invalid_request_error", code), status)

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/me", me, methods=["GET"]),
        Route("/v1/approvals", waiting, methods=["GET"]),
        Route("/v1/sessions/{conversation:path}/approvals", approvals, methods=["POST"]),
        Route("/v1/sessions/{conversation:path}", conversation, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if page:
        routes.append(Route("/", chat_page, methods=["GET"]))
        routes.append(Route("/favicon.svg", favicon, methods=["GET"]))
        routes.append(Route("/favicon.ico", favicon, methods=["GET"]))
    keyless = auth is None and not keys
    guard = Middleware(Guard, check_host=keyless or bool(hosts), allowed_hosts=hosts)
    middleware = [guard]
    if access_log:
        from ._accesslog import AccessLog

        middleware.insert(0, Middleware(AccessLog))  # outermost: it sees every refusal too

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: not_found},
    )
    # "/healthz/" is a 404 in JSON, not a bodiless redirect to "/healthz".
    app.router.redirect_slashes = False
    return app


def _nothing() -> Response:
    from starlette.responses import Response

    return Response(status_code=499)  # never read: the client has gone


def _model_field(value: Any, served: Mapping[str, Any]) -> str:
    if isinstance(value, str) and value:
        return value
    if len(served) == 1:
        return next(iter(served))
    raise ServeError(400, "name the agent in 'model'", param="model", code="missing_model")


def _decisions(value: Any) -> dict[str, bool | str]:
    if not isinstance(value, dict) or not value:
        raise ServeError(
            400,
            "'decisions' must map each pending call id to true, false or a refusal reason",
            param="decisions",
        )
    for call_id, decision in value.items():
        if not isinstance(decision, bool | str):
            raise ServeError(
                400,
                f"the decision for {call_id[:100]!r} must be true, false or a reason",
                param="decisions",
            )
    return dict(value)


def _bound(key: str, waiting: PendingCall | None, digest: str) -> PendingCall:
    """The decision's key for ``resume``: the waiting call (where it sits) with the digest the
    client sent; a key that names no waiting call stays as sent (resume refuses it)."""
    if waiting is None:
        return PendingCall(key, "", "", digest=digest)
    return dataclasses.replace(waiting, digest=digest)


def _digests(decisions: Mapping[str, bool | str], value: Any) -> dict[str, str]:
    """The ``arguments_digest`` each decision was made on, or a 409.

    A call id alone is not enough: a model may use the id of an earlier call again, and
    an approval given for ``refund(5)`` must not run ``refund(5000)``. The digests are
    checked against the waiting calls before a decision is recorded, and by the core
    again before anything runs.
    """
    digests = value if isinstance(value, dict) else {}
    for call_id in decisions:
        digest = digests.get(call_id)
        if not isinstance(digest, str) or not digest:
            raise ServeError(
                409,
                f"no digest for {call_id[:100]!r}: send each pending call's arguments_digest "
                "back in 'digests', so that the decision holds for the arguments shown",
                param="digests",
                code="approval_mismatch",
            )
    return {call_id: digests[call_id] for call_id in decisions}


def _spec(agent: Agent[Any], asked: ChatRequest) -> RunSpec:
    # A conversation is named by the header (or, when the operator opts in, by `user`);
    # an agent without a store answers the history the client sent.
    if asked.conversation is None or agent.store is None:
        return RunSpec(agent, _with_instructions(agent, asked.messages))
    for index, message in enumerate(asked.messages):
        if message["role"] != "user":
            raise ServeError(
                400,
                "in a stored conversation send only the new user message; the server keeps "
                f"the history and the instructions (messages[{index}] is {message['role']})",
                param=f"messages[{index}]",
                code="history_in_conversation",
            )
    return RunSpec(agent, asked.messages, asked.conversation)


def _with_instructions(agent: Agent[Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A client's system message (when the operator allows one) comes after the agent's
    # own instructions, never instead of them.
    if agent.instructions is not None and messages[0]["role"] == "system":
        return [{"role": "system", "content": agent.instructions}, *messages]
    return messages


def _extension(ended: Ended, activity: list[dict[str, Any]], spec: RunSpec) -> dict[str, Any]:
    extension: dict[str, Any] = {"status": ended.status, "tool_activity": activity}
    if ended.agent is not None:  # who answered: with handoffs, the agent that has it now
        extension["agent"] = ended.agent
    if ended.pending:
        extension["pending"] = ended.pending
    if spec.session is not None:
        extension["conversation"] = spec.session
    return extension


def _request_limits(
    request_limits: RequestLimits | None, limits: RequestLimits | None
) -> RequestLimits:
    if limits is not None:
        if request_limits is not None:
            raise ValueError("give request_limits= (limits= is its old name), not both")
        warnings.warn(
            "create_app(limits=) is renamed request_limits= (limits= is an Agent's RunLimits); "
            "the old name will be removed",
            AgentKitDeprecationWarning,
            stacklevel=3,
        )
        request_limits = limits
    return request_limits or RequestLimits()


async def _sse(
    spec: RunSpec,
    model: str,
    include_usage: bool,
    bounds: RequestLimits,
    scrubbers: Sequence[Callable[[str], str]],
) -> AsyncGenerator[bytes, None]:
    answer = fmt.Answer(model)
    yield fmt.data(answer.chunk({"role": "assistant", "content": ""}))
    activity: list[dict[str, Any]] = []
    sent = 0
    seen: list[str] = []
    cut = False
    ended: Ended | None = None
    try:
        async with asyncio.timeout(bounds.run_timeout):
            async with contextlib.aclosing(stream(spec)) as items:
                async for item in items:
                    if isinstance(item, str):
                        room = bounds.max_stream_chars - sent
                        piece = item[:room]
                        sent += len(piece)
                        if piece:
                            seen.append(piece)
                            yield answer.text_frame(piece)
                        if len(item) > room:  # the bound: stop the run, say why it ended
                            ended = Ended("", "length", _no_usage(), "done")
                            cut = True
                            break
                    elif isinstance(item, dict):
                        activity.append(item)
                        yield fmt.comment(item)
                    else:
                        ended = item
            if cut and spec.session is not None:
                # the run is closed: the conversation keeps what the client saw, also
                # when the client leaves while the write waits for a thread
                await off_loop_to_the_end(keep_seen, spec, "".join(seen), bool(activity))
    except Exception as exc:
        error = _logged(_scrubbed(from_exception(exc), scrubbers), exc)
        yield fmt.data(error.body())  # no [DONE]: the answer is not whole
        return
    if ended is None:  # pragma: no cover - a run always ends with RunFinished
        return
    if ended.status == "paused" and ended.pending:
        from ._run import pending_line

        tail = ("\n\n" if sent else "") + pending_line(ended.pending)
        yield fmt.data(answer.chunk({"content": tail}))
    extension = _extension(ended, activity, spec)
    yield fmt.data(answer.chunk({}, finish_reason=ended.finish_reason, extension=extension))
    if include_usage:
        yield fmt.data(answer.usage_chunk(ended.usage))
    yield fmt.done()


def _scrubbed(error: ServeError, scrubbers: Sequence[Callable[[str], str]]) -> ServeError:
    # Each served agent masks its own model key in every form it could take.
    for scrub in scrubbers:
        error.message = scrub(error.message)
    return error


def _logged(error: ServeError, exc: BaseException) -> ServeError:
    if error.code == "internal_error":
        log.error("request failed: %s", redact(repr(exc)))
    return error


def _no_usage() -> dict[str, int]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


async def _conversation_view(store: Store, session: str) -> dict[str, Any]:
    """The stored conversation as a client may see it: its messages and what waits."""
    from .._store import SessionNotFoundError

    try:
        # The store's sync surface, off the event loop: every store has it.
        loaded = await asyncio.to_thread(store.load, session)
    except SessionNotFoundError:
        loaded = None
    if loaded is None or not loaded.messages:
        raise ServeError(404, "no such conversation", code="conversation_not_found")
    pending = [call_view(call) for call in loaded.pending_calls]  # at every level
    visible = [m for m in loaded.messages if m.get("role") != "system"]
    return {"messages": visible, "status": "paused" if pending else "done", "pending": pending}
