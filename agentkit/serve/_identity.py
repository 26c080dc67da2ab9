"""Who is asking: each request becomes a :class:`~agentkit.Principal`.

An identity source (``create_app(..., auth=...)``) reads the request's headers and the
address it came from and returns the principal, or refuses with a 401. Three sources
live here (API keys kept in a store, a trusted reverse proxy's header, and the older
shared keys); OIDC tokens are in ``_oidc``. No source ever puts a key or a token in an
error, a log line or a principal.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from .._context import Principal
from ..sessions._keys import reserved_id
from ._auth import is_loopback
from ._errors import ServeError

__all__ = [
    "AuthSource",
    "SharedKeys",
    "StoredKeys",
    "TrustedProxy",
    "bearer_token",
    "person",
    "unauthorized",
]

ANONYMOUS = Principal("local")
"""The principal of a keyless loopback server's clients (the person at the machine)."""


@runtime_checkable
class AuthSource(Protocol):
    """What ``create_app(..., auth=...)`` takes: turns a request into a principal.

    ``shared`` is true for a source whose clients are one operator (shared keys, a keyless
    loopback server): they may also use conversations that nobody claimed, such as those
    made in Python with ``agent.run(..., session=...)``.
    """

    shared: bool

    async def authenticate(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The request's principal; a ``ServeError`` (401) when it has none."""
        ...


def unauthorized(message: str, code: str = "invalid_api_key") -> ServeError:
    """A 401 that asks for a bearer credential."""
    return ServeError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def person(principal: Principal, source: str) -> Principal:
    """``principal`` as ``source`` (an identity provider, a proxy, a stored key) named
    them, or a 401 when its id is one agentkit gives on its own (``cli:root``,
    ``key:1a2b3c4d``, ``local``): a decision recorded under it would read as made at the
    command line or with a shared key, and it would own their conversations."""
    if reserved_id(principal.id):
        raise unauthorized(
            f"{source} named {principal.id[:100]!r}, an id agentkit gives on its own "
            "(cli:..., key:..., local); rename the user there",
            code="reserved_identity",
        )
    return principal


def bearer_token(headers: Mapping[str, str], what: str = "API key") -> str:
    """The credential after ``Authorization: Bearer`` (the scheme in any case), or a 401."""
    scheme, _, given = headers.get("authorization", "").partition(" ")
    token = given.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized(f"missing {what}: send 'Authorization: Bearer <{what.lower()}>'")
    return token


class SharedKeys:
    """One or more shared API keys, each signing in one principal with no roles
    (``key:`` and eight hex characters of the key's digest). No keys: only loopback
    clients are answered, as the principal ``local``.

    Args:
        keys: the accepted keys, each at least 8 characters.
    """

    shared = True

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [key.encode() for key in keys if key]
        for key in self._keys:
            if len(key) < 8:
                raise ValueError("an API key must be at least 8 characters")
        self._principals = [
            Principal("key:" + hashlib.sha256(key).hexdigest()[:8]) for key in self._keys
        ]

    @property
    def required(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self._keys)

    async def authenticate(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The key's principal, ``local`` for a loopback client of a keyless server, or 401."""
        if not self._keys:
            # Defence in depth: the CLI refuses to listen beyond loopback without keys.
            if client is not None and not is_loopback(client):
                raise unauthorized(
                    "this server has no API keys, so it answers loopback clients only"
                )
            return ANONYMOUS
        token = bearer_token(headers).encode()
        found = None
        for key, principal in zip(self._keys, self._principals, strict=True):
            # compare with every key, so timing tells nothing about which one nearly matched
            if hmac.compare_digest(key, token):
                found = principal
        if found is None:
            raise unauthorized("Incorrect API key provided.")
        return found


class StoredKeys:
    """API keys with identities, kept hashed in a store (``agentkit keys add``).

    Each key signs in its user with the user's roles. A key is looked up on every request,
    so a revoked key is refused at once by every worker sharing the store.

    Args:
        store: a ``SQLiteStore`` or ``PostgresStore`` (usually the agent's own), or a
            ``KeyTable`` made on one.
    """

    shared = False

    def __init__(self, store: Any) -> None:
        from ..sessions._keys import KeyTable

        self.table = store if isinstance(store, KeyTable) else KeyTable(store)

    async def authenticate(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The key's user, or 401 for a missing, unknown or revoked key."""
        principal = await self.table.principal_for_async(bearer_token(headers))
        if principal is None:
            raise unauthorized("Incorrect API key provided (unknown or revoked).")
        return person(principal, "the key")


class TrustedProxy:
    """Identities from a reverse proxy that signs people in (oauth2-proxy and the like).

    The proxy authenticates and names the user in a header; that header is believed only
    on connections from the proxy's own addresses. Run the server with the proxy as its
    only way in (``agentkit serve`` refuses a public bind without ``--trusted-proxy``).

    Args:
        header: the header naming the user, e.g. ``X-Forwarded-User``.
        proxies: the proxy's addresses or networks (``10.0.0.5``, ``10.0.0.0/24``).
        roles_header: a header carrying the user's roles or groups, if the proxy sends
            one (comma-separated), e.g. ``X-Forwarded-Groups``.
    """

    shared = False

    def __init__(
        self,
        header: str,
        proxies: Iterable[str],
        *,
        roles_header: str | None = None,
    ) -> None:
        if not header or not header.isascii() or ":" in header:
            raise ValueError(f"{header!r} is not a header name")
        self.header = header.lower()
        self.roles_header = roles_header.lower() if roles_header else None
        try:
            self.proxies = [ipaddress.ip_network(p.strip(), strict=False) for p in proxies]
        except ValueError as exc:
            raise ValueError(f"a trusted proxy must be an address or a network: {exc}") from None
        if not self.proxies:
            raise ValueError("TrustedProxy needs the proxy's addresses (proxies=[...])")

    def trusts(self, client: str | None) -> bool:
        """Whether ``client`` (the connection's peer address) is one of the proxies."""
        if client is None:
            return False
        try:
            address = ipaddress.ip_address(client.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    async def authenticate(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The user the proxy names, or 401 (not from a proxy, or no user named)."""
        if not self.trusts(client):
            raise unauthorized(
                "this server takes identities only through its proxy", code="untrusted_client"
            )
        user = _single(headers, self.header).strip()
        if not user or len(user) > 256 or not user.isprintable():
            raise unauthorized("the proxy named no user", code="no_user")
        roles: frozenset[str] = frozenset()
        if self.roles_header:
            text = _single(headers, self.roles_header)
            roles = frozenset(part.strip() for part in text.split(",") if part.strip())
        return person(Principal(user, roles), "the proxy")


def _single(headers: Mapping[str, str], name: str) -> str:
    """The header's one value ("" when absent), or a 401 when it came more than once.

    A client may send the identity header itself; a proxy that appends its own instead of
    replacing it leaves two, and which one a lookup returns is an accident of the parser.
    """
    getlist = getattr(headers, "getlist", None)
    if getlist is not None and len(getlist(name)) > 1:
        raise unauthorized(f"the {name} header came more than once", code="ambiguous_identity")
    return headers.get(name, "")
