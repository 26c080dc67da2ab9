"""Provider presets: base URL, API key variable, parameter rules and quirk flags.

A provider's quirks are data, not branches in the client: a :class:`Provider` is a small
frozen record that the client consults before sending (``check_request``) and the agent
loop consults when it plans a request (``tools_with_stream``, ``json_schema_output``).

Presets (:data:`PROVIDERS`):

- ``dashscope`` / ``dashscope-intl`` / ``dashscope-singapore``: DashScope Singapore,
  ``https://dashscope-intl.aliyuncs.com/compatible-mode/v1``, key in ``DASHSCOPE_API_KEY``;
- ``dashscope-cn`` / ``dashscope-beijing``: DashScope Beijing,
  ``https://dashscope.aliyuncs.com/compatible-mode/v1``, key in ``DASHSCOPE_API_KEY``;
- ``dashscope-us``: DashScope US (Virginia), ``https://dashscope-us.aliyuncs.com/...``;
- ``dashscope-hongkong``: DashScope Hong Kong,
  ``https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1``;
- ``openai``: ``https://api.openai.com/v1``, key in ``OPENAI_API_KEY``;
- ``custom``: any other OpenAI-compatible server (vLLM, Ollama, llama.cpp...), key optional.

How a client picks its provider (:func:`resolve_provider`): an explicit ``provider``
(a name or a :class:`Provider`); else the ``base_url`` argument; else the
``AGENTKIT_BASE_URL`` environment variable; else DashScope Singapore. A base URL on one
of DashScope's documented hosts gets the DashScope rules and key: the four regional
``dashscope*`` hosts above, and a workspace-dedicated or trial domain,
``https://{WorkspaceId}.{region}.maas.aliyuncs.com`` (preset ``dashscope-workspace``). The
host must match exactly: ``dashscope-x.aliyuncs.com`` or ``a.b.maas.aliyuncs.com.evil``
are custom servers and never get the DashScope key. One on ``api.openai.com`` gets the
OpenAI preset, any other the permissive ``custom`` preset.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._errors import (
    BadRequestError,
    ConfigurationError,
    ContentModerationError,
    IncompleteStreamError,
    RequestValidationError,
)
from ._secrets import checked_api_key

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "PROVIDERS",
    "Provider",
    "check_dashscope_request",
    "resolve_api_key",
    "resolve_provider",
]

BASE_URL_ENV = "AGENTKIT_BASE_URL"
"""The environment variable a client reads its base URL from when given neither a base URL
nor a provider. Its host picks the preset, as a ``base_url`` argument's does; a server that
is not a known provider's is sent the key in ``AGENTKIT_API_KEY``, if that is set."""

API_KEY_ENV = "AGENTKIT_API_KEY"
"""The key for a server named by ``AGENTKIT_BASE_URL`` that is not a known provider's."""

_LEGACY_BASE_URL_ENV = "DASHSCOPE_BASE_URL"  # read, with a warning, when BASE_URL_ENV is unset


@dataclass(frozen=True, slots=True)
class Provider:
    """A preset: where requests go, which key they carry, and the server's known rules.

    Attributes:
        name: the preset's name (``"dashscope-intl"``, ``"openai"``, ``"custom"``...).
        base_url: the API root; ``/chat/completions`` is appended to it.
        api_key_env: the environment variable holding the key, or ``None``.
        key_required: whether a request without a key is refused before sending.
        tools_with_stream: whether the server accepts ``tools`` together with
            ``stream=True``. When it does not, or refuses once, the agent loop falls back
            to a non-streamed request for that round.
        json_schema_output: whether ``response_format={"type": "json_schema", ...}`` is
            supported; otherwise the loop asks for structured output through a tool.
        check_request: called with the whole request body (``extra_body`` merged) before
            it is sent; raises :class:`~agentkit._errors.RequestValidationError` naming the
            parameter that breaks a documented rule.
        context_cache_min_tokens: the shortest prefix the server's explicit context cache
            stores (DashScope: 1,024), or ``None`` when it has no explicit cache.
        context_cache: whether requests mark their stable prefix (the system message with
            the tool definitions, and the last user message) with DashScope's
            ``cache_control`` markers, so later rounds pay the cached price for it. Off by
            default; turn it on with :meth:`with_context_cache`.
    """

    name: str
    base_url: str
    api_key_env: str | None = None
    key_required: bool = False
    tools_with_stream: bool = True
    json_schema_output: bool = True
    check_request: Callable[[dict[str, Any]], None] | None = dataclasses.field(
        default=None, compare=False
    )
    context_cache_min_tokens: int | None = None
    context_cache: bool = False

    def requires_stream(self, request: Mapping[str, Any]) -> bool:
        """Whether a request must be streamed even by a plain ``Agent.run``.

        Qwen's thinking mode (``extra_body={"enable_thinking": True}``) answers only
        streamed requests: DashScope refuses the rest, and vLLM serving Qwen takes the
        same flag. The result is the same either way.
        """
        extra_body = request.get("extra_body")
        return isinstance(extra_body, Mapping) and extra_body.get("enable_thinking") is True

    def refuses_stream(self, error: BaseException) -> bool:
        """Whether ``error``, raised by a streamed request with tools before anything was
        read, certainly means "tools cannot be streamed here" (the round is then redone
        without streaming).

        Certain means: a stream that ended with nothing in it (llama.cpp's empty 200
        answer), or a 400 whose ``param`` or message names streaming. A 400 that only
        mentions tools (a bad transcript, a bad schema) is the caller's error: it is not
        sent again.
        """
        if isinstance(error, IncompleteStreamError):
            return True
        if isinstance(error, BadRequestError) and not isinstance(error, ContentModerationError):
            return "stream" in f"{error.param or ''} {error.message}".lower()
        return False

    def with_base_url(self, base_url: str) -> Provider:
        """The same preset pointed at another URL (a proxy or a gateway, for example)."""
        return dataclasses.replace(self, base_url=base_url)

    def with_context_cache(self, enabled: bool = True) -> Provider:
        """The same preset with DashScope's explicit context cache on (or off).

        Each request then marks its stable prefix with ``cache_control`` markers, within
        DashScope's rules (see ``docs/observability.md``): at most 4 markers, and only
        on a prefix long enough to be cached. Cached input tokens show in
        ``Usage.cached_tokens``, tokens written to the cache in
        ``Usage.cache_creation_tokens``.

        Raises:
            ConfigurationError: when the provider has no explicit context cache.
        """
        if enabled and self.context_cache_min_tokens is None:
            raise ConfigurationError(
                f"{self.name} has no explicit context cache (DashScope presets have one)"
            )
        return dataclasses.replace(self, context_cache=enabled)


# --- DashScope's documented parameter rules --------------------------------------------


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestValidationError(
            f"{name} must be a number, got {type(value).__name__}", param=name
        )
    if not math.isfinite(value):
        raise RequestValidationError(f"{name} must be a finite number, got {value}", param=name)
    return float(value)


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list | tuple):
        raise RequestValidationError(
            "stop must be a string, a list of strings, a list of token ids or a list of "
            f"lists of token ids, got {type(stop).__name__}",
            param="stop",
        )
    kinds = set()
    for item in stop:
        if isinstance(item, str):
            kinds.add("strings")
        elif isinstance(item, int) and not isinstance(item, bool):
            kinds.add("token ids")
        elif isinstance(item, list | tuple) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in item
        ):
            kinds.add("lists of token ids")
        else:
            raise RequestValidationError(
                f"stop may hold strings, token ids or lists of token ids, not {item!r}",
                param="stop",
            )
    if len(kinds) > 1:
        raise RequestValidationError(
            f"stop mixes {' and '.join(sorted(kinds))}; DashScope needs one kind only",
            param="stop",
        )


def check_dashscope_request(body: dict[str, Any]) -> None:
    """DashScope's documented rules, checked before sending.

    temperature in [0, 2); top_p in (0, 1]; presence_penalty in [-2, 2]; n in 1..4, and 1
    when tools are sent; stop never mixes token ids and strings; a system message only as
    the first message; with ``enable_thinking`` on, the request must stream and
    ``tool_choice`` may not be ``"required"`` or a named function; the legacy
    ``functions``/``function_call`` fields are refused (use ``tools``/``tool_choice``).

    Raises:
        RequestValidationError: naming the parameter (``param``) that breaks a rule.
    """
    temperature = _number(body, "temperature")
    if temperature is not None and not 0 <= temperature < 2:
        raise RequestValidationError(
            f"temperature must be in [0, 2) for DashScope, got {temperature}",
            param="temperature",
        )
    top_p = _number(body, "top_p")
    if top_p is not None and not 0 < top_p <= 1:
        raise RequestValidationError(
            f"top_p must be in (0, 1] for DashScope, got {top_p}", param="top_p"
        )
    presence_penalty = _number(body, "presence_penalty")
    if presence_penalty is not None and not -2 <= presence_penalty <= 2:
        raise RequestValidationError(
            f"presence_penalty must be in [-2, 2] for DashScope, got {presence_penalty}",
            param="presence_penalty",
        )
    n = body.get("n")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4:
            raise RequestValidationError(
                f"n must be an integer from 1 to 4 for DashScope, got {n!r}", param="n"
            )
        if n != 1 and body.get("tools"):
            raise RequestValidationError(
                f"n must be 1 when tools are sent to DashScope, got {n}", param="n"
            )
    _check_stop(body.get("stop"))
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise RequestValidationError(
                f"DashScope refuses the legacy {legacy!r} field: use tools and tool_choice",
                param=legacy,
            )
    messages = body.get("messages")
    if isinstance(messages, list | tuple):
        for position, message in enumerate(messages):
            if position and isinstance(message, Mapping) and message.get("role") == "system":
                raise RequestValidationError(
                    f"messages[{position}] is a system message; DashScope accepts a system "
                    "message only as the first message",
                    param="messages",
                )
    if body.get("enable_thinking") is True:
        if not body.get("stream"):
            raise RequestValidationError(
                "enable_thinking needs a streamed request with DashScope: use stream() "
                "instead of create(), or set enable_thinking to False",
                param="enable_thinking",
            )
        tool_choice = body.get("tool_choice")
        if tool_choice == "required" or isinstance(tool_choice, Mapping):
            raise RequestValidationError(
                'with enable_thinking on, DashScope accepts tool_choice "auto" or "none" '
                f"only, got {tool_choice!r}",
                param="tool_choice",
            )


# --- the presets ------------------------------------------------------------------------

_DASHSCOPE_INTL = Provider(
    name="dashscope-intl",
    base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    api_key_env="DASHSCOPE_API_KEY",
    key_required=True,
    # The reference says tools cannot be combined with stream=True; current models accept
    # it, so the loop tries and falls back to a non-streamed round when refused.
    tools_with_stream=True,
    json_schema_output=False,
    check_request=check_dashscope_request,
    context_cache_min_tokens=1024,
)
_DASHSCOPE_CN = dataclasses.replace(
    _DASHSCOPE_INTL,
    name="dashscope-cn",
    base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
)
_DASHSCOPE_US = dataclasses.replace(
    _DASHSCOPE_INTL,
    name="dashscope-us",
    base_url="https://dashscope-us.aliyuncs.com/compatible-mode/v1",
)
_DASHSCOPE_HONGKONG = dataclasses.replace(
    _DASHSCOPE_INTL,
    name="dashscope-hongkong",
    base_url="https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1",
)
# A workspace's own domain has no fixed URL: the preset takes the caller's base URL.
_DASHSCOPE_WORKSPACE = dataclasses.replace(_DASHSCOPE_INTL, name="dashscope-workspace")
_OPENAI = Provider(
    name="openai",
    base_url="https://api.openai.com/v1",
    api_key_env="OPENAI_API_KEY",
    key_required=True,
)
_CUSTOM = Provider(name="custom", base_url="http://localhost:8000/v1")

PROVIDERS: dict[str, Provider] = {
    "dashscope": _DASHSCOPE_INTL,
    "dashscope-intl": _DASHSCOPE_INTL,
    "dashscope-singapore": _DASHSCOPE_INTL,
    "dashscope-cn": _DASHSCOPE_CN,
    "dashscope-beijing": _DASHSCOPE_CN,
    "dashscope-us": _DASHSCOPE_US,
    "dashscope-hongkong": _DASHSCOPE_HONGKONG,
    "openai": _OPENAI,
    "custom": _CUSTOM,
}
"""Presets by name. ``custom`` stands for any other OpenAI-compatible server (vLLM at
``http://localhost:8000/v1``, Ollama at ``http://localhost:11434/v1``, llama.cpp at
``http://localhost:8080/v1``): no parameter rules, and the key is optional."""


_DASHSCOPE_HOSTS = {
    "dashscope-intl.aliyuncs.com": _DASHSCOPE_INTL,
    "dashscope.aliyuncs.com": _DASHSCOPE_CN,
    "dashscope-us.aliyuncs.com": _DASHSCOPE_US,
    "cn-hongkong.dashscope.aliyuncs.com": _DASHSCOPE_HONGKONG,
}
# Model Studio's regions with workspace-dedicated ({WorkspaceId}.{region}) and trial
# (trial.{region}) domains under maas.aliyuncs.com.
_MAAS_REGIONS = frozenset(
    {"ap-southeast-1", "us-east-1", "cn-beijing", "cn-hongkong", "ap-northeast-1", "eu-central-1"}
)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def _preset_for_url(base_url: str) -> Provider:
    host = (urlsplit(base_url).hostname or "").lower()
    if host.endswith("."):  # the fully qualified spelling of the same host
        host = host[:-1]
    known = _DASHSCOPE_HOSTS.get(host)
    if known is not None:
        return known
    labels = host.split(".")
    if (
        len(labels) == 5
        and labels[2:] == ["maas", "aliyuncs", "com"]
        and labels[1] in _MAAS_REGIONS
        and _DNS_LABEL.match(labels[0])
    ):
        return _DASHSCOPE_WORKSPACE
    if host == "api.openai.com":
        return _OPENAI
    return _CUSTOM


def resolve_provider(
    provider: str | Provider | None = None,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Provider:
    """The provider a client uses, with its base URL settled.

    ``provider`` wins (a ``base_url`` given too points the preset elsewhere, keeping its
    rules); else the preset is recognised from ``base_url``; else from the
    ``AGENTKIT_BASE_URL`` environment variable, recognised the same way; else DashScope
    Singapore. A DashScope or OpenAI host reads its provider's key variable. Any other
    server named by ``AGENTKIT_BASE_URL`` reads ``AGENTKIT_API_KEY`` (optional), and one
    named by the ``base_url`` argument reads no environment variable: a provider's key is
    never sent to a server the caller did not choose for it. The deprecated
    ``DASHSCOPE_BASE_URL`` is still read, with a ``FutureWarning``, when
    ``AGENTKIT_BASE_URL`` is unset (a custom server it names reads ``DASHSCOPE_API_KEY``,
    as before).

    Raises:
        ConfigurationError: for an unknown preset name or a base URL that is not http(s).
    """
    env = os.environ if env is None else env
    if isinstance(provider, Provider):
        chosen = provider
    elif provider is not None:
        try:
            chosen = PROVIDERS[provider.strip().lower()]
        except KeyError:
            known = ", ".join(sorted(PROVIDERS))
            raise ConfigurationError(
                f"unknown provider {provider!r}; known presets: {known} "
                "(or pass base_url= for any OpenAI-compatible server)"
            ) from None
    else:
        chosen = None
    named = "base_url"
    if base_url is None and chosen is None:
        chosen, base_url, named = _from_environment(env)
    if base_url is not None:
        base_url = base_url.strip()
        scheme = urlsplit(base_url).scheme.lower()
        if scheme not in ("http", "https"):
            raise ConfigurationError(
                f"{named} must be an http:// or https:// URL, got {base_url!r}"
            )
        if chosen is None:
            chosen = _preset_for_url(base_url)
        chosen = chosen.with_base_url(base_url)
    assert chosen is not None
    return chosen


def _from_environment(env: Mapping[str, str]) -> tuple[Provider | None, str | None, str]:
    """The preset (``None``: recognise it from the URL), the base URL and the variable that
    named it, for a caller who named neither a provider nor a base URL."""
    url = env.get(BASE_URL_ENV, "").strip()
    if url:
        if _preset_for_url(url) is _CUSTOM:
            return dataclasses.replace(_CUSTOM, api_key_env=API_KEY_ENV), url, BASE_URL_ENV
        return None, url, BASE_URL_ENV
    legacy = env.get(_LEGACY_BASE_URL_ENV, "").strip()
    if legacy:
        return _legacy_env_preset(legacy), legacy, _LEGACY_BASE_URL_ENV
    return _DASHSCOPE_INTL, None, "base_url"


def _legacy_env_preset(url: str) -> Provider:
    import warnings

    warnings.warn(
        f"{_LEGACY_BASE_URL_ENV} is deprecated and will be ignored in a later release: "
        f"set {BASE_URL_ENV} instead (a server that is not DashScope's or OpenAI's then "
        "gets no key from the environment; pass api_key=... or, in the CLI, --api-key-env)",
        FutureWarning,
        stacklevel=5,  # the caller of ChatClient(...)
    )
    chosen = _preset_for_url(url)
    if chosen is _CUSTOM:
        chosen = dataclasses.replace(_CUSTOM, api_key_env="DASHSCOPE_API_KEY")
    return chosen


def resolve_api_key(
    provider: Provider, api_key: str | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """The API key to send: ``api_key`` if given, else the provider's environment variable.

    Raises:
        ConfigurationError: when the provider requires a key and none is set; the message
            names the variable to set; or a key that cannot be sent (a control or
            non-ASCII character), without showing it. Raised before any request is sent.
    """
    given = checked_api_key(api_key)  # a key read from a file ends in "\n"
    if given:
        return given
    env = os.environ if env is None else env
    if provider.api_key_env:
        value = checked_api_key(env.get(provider.api_key_env))
        if value:
            return value
    if provider.key_required:
        how = (
            f"set the {provider.api_key_env} environment variable or pass api_key=..."
            if provider.api_key_env
            else "pass api_key=..."
        )
        raise ConfigurationError(f"no API key for {provider.name}: {how}")
    return None
