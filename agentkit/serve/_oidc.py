"""OIDC / JWT bearer tokens, verified with PyJWT against the issuer's published keys.

The keys (JWKS) are fetched with httpx from the issuer's discovery document, or from a
given URL, and cached. A token naming a key id the cache lacks makes one refetch (so a key
rotation works at once), at most every ``min_refetch`` seconds (so forged key ids cannot
make the server hammer the issuer). Only asymmetric algorithms are accepted: ``none`` and
the HMAC family (where the public key would become a shared secret) are refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .._context import Principal
from ._errors import ServeError
from ._identity import bearer_token, person, unauthorized

__all__ = ["OIDC"]

_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def _jwt() -> Any:
    try:
        import jwt
    except ImportError:  # pragma: no cover - exercised by the packaging test
        raise ImportError("OIDC needs PyJWT: pip install 'agentkit[serve]'") from None
    return jwt


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):  # "realm_access.roles" reaches into nested claims
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class OIDC:
    """Bearer tokens from an OpenID Connect issuer (Keycloak, Auth0, Entra ID, Dex...).

    Args:
        issuer: the issuer URL; tokens must carry it as ``iss``.
        audience: the audience tokens must be for (``aud``), e.g. the client id.
        jwks_url: where the keys are; default: ``jwks_uri`` of the issuer's
            ``/.well-known/openid-configuration``.
        id_claim: the claim naming the person (default ``sub``).
        roles_claim: the claim listing roles; a dotted path reaches into objects
            (``realm_access.roles``); a list of strings, or one space-separated string.
        algorithms: the accepted signing algorithms (asymmetric ones only).
        leeway: seconds of clock difference tolerated on ``exp`` and ``nbf``.
        jwks_ttl: seconds the fetched keys are used before they are fetched again.
        min_refetch: the least seconds between two fetches for an unknown key id.
        timeout: seconds a fetch from the issuer may take.
    """

    shared = False

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        id_claim: str = "sub",
        roles_claim: str = "roles",
        algorithms: Iterable[str] = ("RS256", "ES256", "PS256", "EdDSA"),
        leeway: float = 30.0,
        jwks_ttl: float = 300.0,
        min_refetch: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        self._jwt = _jwt()
        if not issuer or not audience:
            raise ValueError("OIDC needs the issuer and the audience")
        chosen = tuple(algorithms)
        refused = set(chosen) - _ASYMMETRIC
        if refused or not chosen:
            raise ValueError(
                f"OIDC takes asymmetric algorithms only ({sorted(_ASYMMETRIC)}), "
                f"not {sorted(refused)}"
            )
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.id_claim = id_claim
        self.roles_claim = roles_claim
        self.algorithms = chosen
        self.leeway = leeway
        self.jwks_ttl = jwks_ttl
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock: asyncio.Lock | None = None

    async def authenticate(self, headers: Mapping[str, str], client: str | None) -> Principal:
        """The token's person, or 401 (expired, forged, for another audience...)."""
        jwt = self._jwt
        token = bearer_token(headers, "token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("the bearer token is not a JWT", code="invalid_token") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise unauthorized(
                f"the token's algorithm is not accepted here ({', '.join(self.algorithms)})",
                code="invalid_token",
            )
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired", code="invalid_token") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("the token is for another audience", code="invalid_token") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("the token is from another issuer", code="invalid_token") from None
        except jwt.PyJWTError as exc:
            raise unauthorized(
                f"the token was refused ({type(exc).__name__})", code="invalid_token"
            ) from None
        subject = _claim(claims, self.id_claim)
        if not isinstance(subject, str) or not subject:
            raise unauthorized(f"the token has no {self.id_claim!r} claim", code="invalid_token")
        roles = _claim(claims, self.roles_claim)
        if isinstance(roles, str):
            roles = roles.split()
        kept = frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
        return person(Principal(subject, frozenset(kept), claims), "the token")

    async def _key(self, kid: Any) -> Any:
        known = self._keys.get(kid)
        if known is not None and time.monotonic() - self._fetched_at <= self.jwks_ttl:
            # a known, fresh key needs no lock: a fetch under way for someone's unknown kid
            # (a forged token every min_refetch seconds) must not stall everyone else
            return known
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at > self.jwks_ttl
            unknown = kid not in self._keys and now - self._fetched_at >= self.min_refetch
            if stale or unknown:
                await self._fetch()
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # an issuer with one key may omit kid
        if key is None:
            raise unauthorized("the token is signed with an unknown key", code="invalid_token")
        return key

    async def _fetch(self) -> None:
        import httpx

        jwt = self._jwt
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                url = self.jwks_url
                if url is None:
                    well_known = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                    found = (await http.get(well_known)).raise_for_status().json()
                    url = found["jwks_uri"]
                    if not isinstance(url, str):
                        raise ValueError("jwks_uri is not a URL")
                jwks = (await http.get(url)).raise_for_status().json()
            keys: dict[str, Any] = {}
            for entry in jwks.get("keys", []):
                if entry.get("use", "sig") != "sig":
                    continue
                try:
                    keys[entry.get("kid")] = jwt.PyJWK(entry).key
                except jwt.PyJWTError:
                    continue  # a key of a type this server does not use
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._fetched_at = time.monotonic()  # do not retry on every request
            raise ServeError(
                503,
                f"cannot fetch the identity provider's keys ({type(exc).__name__})",
                type="server_error",
                code="identity_provider_unavailable",
            ) from None
        self._keys = keys
        self._fetched_at = time.monotonic()
