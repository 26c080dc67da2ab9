"""What went wrong, in one line, with a hint; and the exit codes."""

from __future__ import annotations

import argparse
import re
from typing import TextIO

from ._arguments import PROG

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "describe_error",
    "report_error",
]

EXIT_OK = 0
"""The command did what was asked."""
EXIT_ERROR = 1
"""The run failed: an API or network error, or a run limit such as ``--max-turns``."""
EXIT_USAGE = 2
"""Usage or configuration: a bad option, tools that do not load, a missing API key."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT, as shells report it)."""
EXIT_BROKEN_PIPE = 141
"""The reader of the output went away, as in ``agentkit demo | head -c 20`` (128 + SIGPIPE)."""


class UsageError(Exception):
    """A problem with what the user typed; reported with exit code 2, and ``hint`` (what to
    type instead) on a second line when there is one."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def describe_error(exc: BaseException, args: argparse.Namespace | None = None) -> tuple[str, str]:
    """One line saying what went wrong and one hint saying what to do about it."""
    from .. import _errors as e

    message = str(exc) or type(exc).__name__
    max_turns = getattr(args, "max_turns", None)
    now = "" if max_turns is None else f" (now {max_turns})"
    hints: list[tuple[type[BaseException], str, str]] = [
        (
            e.QuotaExceededError,
            "quota exceeded",
            "this is a quota or billing error, not a rate "
            "limit: check your plan and billing in the provider's console; retrying will not help",
        ),
        (
            e.RateLimitError,
            "rate limited",
            "too many requests for now: wait a little and try again (--max-retries sets "
            "how often agentkit retries by itself)",
        ),
        (e.AuthenticationError, "authentication failed", _authentication_hint(args)),
        (
            e.PermissionDeniedError,
            "permission denied",
            "this key may not use this model: check --model and your account's access",
        ),
        (e.NotFoundError, "not found", "check --model and --base-url"),
        (e.ContentModerationError, "refused by content moderation", "rephrase the request"),
        (e.BadRequestError, "request refused", "check --model and the sampling options"),
        (e.ServerError, "server error", "the provider failed; try again later"),
        (
            e.APITimeoutError,
            "timed out",
            "the server is slow or unreachable: check --base-url, or raise --timeout",
        ),
        (e.APIConnectionError, "cannot connect", _connection_hint(args)),
        (e.IncompleteStreamError, "incomplete answer", "retry, or use --no-stream"),
        (
            e.InvalidResponseError,
            "invalid answer from the server",
            "check that --base-url points at an OpenAI-compatible API (it usually ends in /v1)",
        ),
        (e.MaxTurnsExceededError, "no final answer", f"raise --max-turns{now}"),
        (e.OutputTruncatedError, "answer cut at the token limit", "raise --max-tokens"),
        (e.RepeatedToolCallError, "", "rephrase, or try another model"),  # says it itself
        (e.ToolFailureLimitExceededError, "a tool keeps failing", "run with --verbose to see why"),
        (e.ToolCallLimitExceededError, "too many tool calls", "ask for less in one question"),
        (e.RequestValidationError, "invalid option", _option_hint(exc)),
        (e.ToolDefinitionError, "cannot use a tool", "fix the function's signature"),
        (e.ConfigurationError, "", _configuration_hint(message, args)),
    ]
    for cls, title, hint in hints:
        if isinstance(exc, cls):
            if isinstance(exc, e.RequestValidationError):
                message = _as_option(message, exc.param)
            if isinstance(exc, e.OutputTruncatedError):
                message = message.split("; raise max_tokens", 1)[0]  # the API's advice
            # "timed out: timed out waiting...": say it once
            said = not title or message.lower().startswith(title.lower())
            return (message if said else f"{title}: {message}"), hint
    if isinstance(exc, e.AgentKitError):
        return message, "run again with --debug for details"
    return f"{type(exc).__name__}: {message}", "run again with --debug for the traceback"


# Request parameters with an option of their own in `agentkit chat`.
_OPTIONS = ("temperature", "top_p", "max_tokens", "presence_penalty", "seed", "stop")


def _as_option(message: str, param: str | None) -> str:
    """``temperature must be...`` as ``--temperature must be...``, in the CLI's words."""
    if param in _OPTIONS and message.startswith(param):
        return f"--{param.replace('_', '-')}{message[len(param) :]}"
    return message


def _option_hint(exc: BaseException) -> str:
    param = getattr(exc, "param", None)
    if param in _OPTIONS:
        return f"change --{param.replace('_', '-')}; `agentkit chat --help` gives each range"
    return "see `agentkit chat --help`"


def _connection_hint(args: argparse.Namespace | None) -> str:
    if getattr(args, "base_url", None):
        return "is the server running? check --base-url and your network"
    return "check your network, and HTTPS_PROXY if you need a proxy to reach the internet"


def _authentication_hint(args: argparse.Namespace | None) -> str:
    if (
        args is not None
        and getattr(args, "base_url", None)
        and not getattr(args, "provider", None)
        and not getattr(args, "region", None)
    ):
        if args.api_key_env:
            return f"the server refused the key in {args.api_key_env}: check it"
        return "this server wants a key: export it as a variable and pass --api-key-env VAR"
    return (
        "check the API key (DashScope keys belong to one region: a Singapore key fails "
        "with --region cn, and a Beijing key without it)"
    )


def _configuration_hint(message: str, args: argparse.Namespace | None) -> str:
    if "key" in message.lower():
        named = re.search(r"\b([A-Z][A-Z0-9_]*_KEY[A-Z0-9_]*)\b", message)
        variable = named.group(1) if named else "DASHSCOPE_API_KEY"
        return (
            f"set {variable} (export {variable}=sk-...), or pass --base-url for a local "
            "server that needs no key; `agentkit demo` runs with no key at all"
        )
    base_url = getattr(args, "base_url", None)
    if base_url and "base_url" in message and "://" not in base_url:
        return f"write the whole URL, such as {_with_scheme(base_url)}"
    from_env = re.match(r"([A-Z_]+_BASE_URL) must be an http.* got '([^']*)'$", message)
    if from_env:
        variable, value = from_env.groups()
        return f"set {variable} to the whole URL, such as {_with_scheme(value)}"
    return "see `agentkit chat --help`"


def _with_scheme(base_url: str) -> str:
    """``127.0.0.1:8131/v1`` as ``http://127.0.0.1:8131/v1``; a bare host gets ``/v1`` too."""
    url = base_url.strip().rstrip("/")
    return f"http://{url}" if "/" in url else f"http://{url}/v1"


def _exit_code(exc: BaseException) -> int:
    from .._errors import ConfigurationError, RequestValidationError, ToolDefinitionError

    if isinstance(exc, UsageError | ConfigurationError | RequestValidationError):
        return EXIT_USAGE
    if isinstance(exc, ToolDefinitionError):
        return EXIT_USAGE
    return EXIT_ERROR


def report_error(exc: BaseException, err: TextIO, args: argparse.Namespace | None) -> int:
    """Print the error as one line and a hint on ``err``; return the exit code.

    On a terminal the error is red and the hint dim, unless ``NO_COLOR`` is set.
    """
    from .._visible import visible
    from ._console import use_colour

    red, dim, reset = ("\033[31m", "\033[2m", "\033[0m") if use_colour(err) else ("", "", "")
    # an error's text may quote a server, a model, a tool or a suite file: one line each,
    # its control characters written out
    if isinstance(exc, UsageError):
        err.write(f"{red}{PROG}: error: {visible(str(exc))}{reset}\n")
        if exc.hint:
            err.write(f"{dim}{PROG}: hint: {visible(exc.hint)}{reset}\n")
        return EXIT_USAGE
    line, hint = describe_error(exc, args)
    line, hint = visible(line), visible(hint)
    err.write(f"{red}{PROG}: error: {line}{reset}\n{dim}{PROG}: hint: {hint}{reset}\n")
    err.flush()
    return _exit_code(exc)
