"""An MCP server's tool as an ordinary agentkit :class:`~agentkit.Tool`.

The server's input schema goes to the model as it is, and the model's arguments are
checked against it with jsonschema before anything is sent to the server; a readable list
of problems goes back to the model instead. The result's content becomes the tool message:
text as it is, structured content as JSON when there is no text, images, audio and
resources described in one line each (never dropped without a word). An ``isError`` result
raises :class:`~agentkit.mcp.MCPToolError`, which the run feeds back as a tool failure.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import pydantic_core

from .._errors import ToolArgumentsError
from .._tool import Tool
from ._errors import MCPToolError

__all__ = ["MCPTool", "render_result"]

_MAX_LISTED_ERRORS = 20
_MAX_SHOWN_CHARS = 200

Caller = Callable[["MCPTool", dict[str, Any]], Awaitable[str]]


class MCPTool(Tool[..., Awaitable[str]]):
    """A tool of an MCP server; the agent runs it like any async ``@tool``.

    Attributes:
        remote_name: the tool's name on the server (``name`` is the agentkit name, which
            may carry a prefix or be mapped to valid characters).
        server: the server it belongs to (its command or URL).
        annotations: the server's hints (``readOnlyHint``, ``destructiveHint``...), as sent.
        side_effects: from the hints: a tool not marked ``readOnlyHint`` changes the world
            (MCP's default), so on a session its calls are written ahead.
        idempotent: the server's ``idempotentHint``.
    """

    remote_name: str
    server: str
    annotations: dict[str, Any]

    def __init__(
        self,
        *,
        name: str,
        remote_name: str,
        description: str,
        parameters: dict[str, Any],
        server: str,
        caller: Caller,
        requires_approval: bool = False,
        side_effects: bool = True,
        idempotent: bool = False,
        timeout: float | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> None:
        # Tool.__init__ derives a schema from a Python signature; this one comes from the
        # server, so the attributes are set here instead.
        from jsonschema.validators import validator_for

        validator_class = validator_for(parameters)
        validator_class.check_schema(parameters)
        self._check = validator_class(parameters)
        self._caller = caller
        self.name = name
        self.remote_name = remote_name
        self.description = description
        self.parameters = parameters
        self.validation_parameters = parameters
        self.server = server
        self.annotations = dict(annotations or {})
        self.strict = False
        self.requires_approval = requires_approval
        self.side_effects = side_effects or requires_approval
        self.idempotent = idempotent
        self.timeout = timeout
        self.is_async = True
        self.context_param = None
        self.function = self._invoke
        self.__wrapped__ = self._invoke
        self.__name__ = name
        self.__doc__ = description

    def __repr__(self) -> str:
        return f"MCPTool(name={self.name!r}, server={self.server!r})"

    def validate_json(self, text: str | bytes | bytearray) -> dict[str, Any]:
        """Parse the model's argument JSON and check it against the server's input schema.

        Raises :class:`~agentkit.ToolArgumentsError` naming every problem.
        """
        if not text or text.isspace():
            text = "{}"
        try:
            data = pydantic_core.from_json(text)
        except ValueError as exc:
            raw = text.decode(errors="replace") if isinstance(text, bytes | bytearray) else text
            message = (
                f"The arguments for tool `{self.name}` are not valid JSON ({exc}). "
                f"Received: {_cut(raw)}\nSend one JSON object with the parameters."
            )
            raise ToolArgumentsError(message, tool_name=self.name, errors=[("", message)]) from None
        if not isinstance(data, dict):
            properties = self.parameters.get("properties")
            names = ", ".join(properties) if isinstance(properties, dict) else ""
            message = (
                f"The arguments for tool `{self.name}` must be a JSON object of its parameters "
                f"({names or 'none'}). Received: {_cut(_json(data))}"
            )
            raise ToolArgumentsError(message, tool_name=self.name, errors=[("", message)])
        problems = [
            (_path(error.absolute_path), _cut(error.message))
            for error in sorted(self._check.iter_errors(data), key=lambda e: list(e.path))
        ]
        if problems:
            shown = problems[:_MAX_LISTED_ERRORS]
            body = "\n".join(f"- {path}: {text}" for path, text in shown)
            if len(problems) > len(shown):
                body += f"\n- ... and {len(problems) - len(shown)} more"
            noun = "problem" if len(problems) == 1 else "problems"
            message = (
                f"Invalid arguments for tool `{self.name}` ({len(problems)} {noun}):\n{body}\n"
                "Fix the arguments and call the tool again."
            )
            raise ToolArgumentsError(message, tool_name=self.name, errors=problems)
        return data

    def call(self, kwargs: dict[str, Any], context: Any = None) -> Coroutine[Any, Any, str]:
        """Call the tool on its server with validated ``kwargs``; an awaitable of the text."""
        return self._invoke(**kwargs)

    async def _invoke(self, **kwargs: Any) -> str:
        return await self._caller(self, kwargs)


def render_result(result: Any, tool_name: str, server: str) -> str:
    """The text of a ``CallToolResult`` for the model; raises ``MCPToolError`` for ``isError``."""
    parts: list[str] = []
    for block in result.content or ():
        parts.append(_describe(block))
    if not parts and result.structured_content is not None:
        parts.append(_json(result.structured_content))
    text = "\n".join(parts)
    if result.is_error:
        raise MCPToolError(text or f"the tool {tool_name} reported an error", server=server)
    return text


def _describe(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        size = len(block.data) * 3 // 4  # base64
        return f"[{kind}: {block.mime_type}, about {size} bytes, not shown]"
    if kind == "resource_link":
        mime = f", {block.mime_type}" if block.mime_type else ""
        return f"[resource link: {block.uri} ({block.name}{mime})]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            return text
        mime = f", {resource.mime_type}" if resource.mime_type else ""
        size = len(getattr(resource, "blob", "")) * 3 // 4
        return f"[resource: {resource.uri}{mime}, about {size} bytes, not shown]"
    return f"[{kind or 'unknown'} content, not shown]"


def _path(parts: Any) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path or "(arguments)"


def _json(value: Any) -> str:
    return pydantic_core.to_json(value, fallback=repr).decode()


def _cut(text: str) -> str:
    if len(text) > _MAX_SHOWN_CHARS:
        return text[: _MAX_SHOWN_CHARS - 1] + "…"
    return text
