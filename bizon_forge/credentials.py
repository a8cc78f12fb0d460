"""Who may call `serve --http`: static bearer tokens (stored hashed) and JWTs signed by an issuer, each with its roots.

A static token file (or the environment variable BIZON_FORGE_TOKENS holding the same text) is JSON:

    {"tokens": [{"id": "alice", "sha256": "<hex sha256 of the secret>", "roots": ["/srv/trees/alice"],
                 "write": true}]}

`bizon-forge token add` mints an entry and prints its secret once; only the hash is stored. A JWT is
accepted when its signature verifies against the issuer's JWKS and its `iss`, `aud`, `exp` and `sub` hold;
its roots come from a claim (ROOTS_CLAIM unless told otherwise) and it may write when its `scope` (or `scp`)
holds WRITE_SCOPE. Either way the server knows a caller as a Credential: its id or subject, never the secret.
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast
from urllib.parse import urlparse

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bizon_forge.findings import Refused, failed

TOKENS_ENV = "BIZON_FORGE_TOKENS"
WRITE_SCOPE = "bizon-forge:write"
ROOTS_CLAIM = "bizon_forge_roots"
SECRET_PREFIX = "bzf_"  # lets secret scanners (and people) recognise a leaked token
# Asymmetric only: with a JWKS there is no shared secret, and HS256 over a public key is the classic forgery.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
JWT_LEEWAY_S = 30  # clock skew between the issuer and this server

log = logging.getLogger(__name__)


class CredentialsError(ValueError):
    """A token file, environment variable or JWT option the server cannot start with; the message says why."""


class Credential(AccessToken):
    """A verified caller. `token` is left empty: the secret is checked once and never kept."""

    who: str  # a static token's id or a JWT's subject: what logs and the audit trail name
    roots: tuple[Path, ...]

    @property
    def may_write(self) -> bool:
        return WRITE_SCOPE in self.scopes


def caller() -> Credential | None:
    """The credential of the HTTP request being served; None on stdio and on an unauthenticated server."""
    token = get_access_token()
    return token if isinstance(token, Credential) else None


def require_write(who: Credential | None, tool: str) -> None:
    """Refuse a read-only credential before a tool that writes or runs code touches anything."""
    if who is not None and not who.may_write:
        raise Refused(
            failed(
                "auth.read_only",
                f"The credential {who.who!r} may only read; {tool} writes to the workspace or runs its code.",
                "Use inspect_workspace, or ask for a credential that may write.",
            )
        )


# -- static tokens -----------------------------------------------------------------------------------


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    roots: Annotated[list[str], Field(min_length=1)]
    write: bool


class TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry] = []


def digest(secret: str) -> str:
    # Plain sha256 suffices: a minted secret has 256 random bits, nothing a dictionary could guess.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_tokens(text: str, where: str) -> list[TokenEntry]:
    """The entries of a token file's text; a CredentialsError naming `where` and the bad field otherwise."""
    try:
        parsed = TokenFile.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise CredentialsError(f"{where} is not JSON: {error.msg} at line {error.lineno}.") from None
    except ValidationError as error:
        # Without the input values: a secret pasted where its hash belongs must not reach the log.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors(include_input=False)
        )
        raise CredentialsError(f"{where} is not a token file ({problems}).") from None
    ids = [t.id for t in parsed.tokens]
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        raise CredentialsError(f"{where} names token ids more than once: {', '.join(doubled)}.")
    for entry in parsed.tokens:
        relative = [r for r in entry.roots if not Path(r).is_absolute()]
        if relative:
            raise CredentialsError(f"{where}: token {entry.id!r} has relative roots ({', '.join(relative)}).")
    return parsed.tokens


def load_tokens(path: str | None) -> list[TokenEntry]:
    """The static tokens of the file at `path` and of BIZON_FORGE_TOKENS (either may be absent)."""
    entries = []
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise CredentialsError(f"Cannot read the token file {path}: {error.strerror}.") from None
        entries += parse_tokens(text, path)
    if os.environ.get(TOKENS_ENV, "").strip():
        entries += parse_tokens(os.environ[TOKENS_ENV], TOKENS_ENV)
    ids = [e.id for e in entries]
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        raise CredentialsError(f"The token file and {TOKENS_ENV} both name {', '.join(doubled)}.")
    return entries


def add_token(path: Path, id: str, roots: list[str], write: bool) -> str:
    """Add a token to the file at `path` (made if absent) and return its secret, which is stored nowhere."""
    entries = parse_tokens(path.read_text(), str(path)) if path.exists() else []
    if any(e.id == id for e in entries):
        raise CredentialsError(f"{path} already has a token {id!r}; remove it first or pick another id.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    absolute = [str(Path(r).expanduser().resolve()) for r in roots]
    try:
        entry = TokenEntry(id=id, sha256=digest(secret), roots=absolute, write=write)
    except ValidationError:
        raise CredentialsError(f"{id!r} is not a token id: letters, digits and _.@- only, at most 64.") from None
    _write_private(path, TokenFile(tokens=[*entries, entry]))
    return secret


def remove_token(path: Path, id: str) -> None:
    entries = parse_tokens(path.read_text(), str(path)) if path.exists() else []
    if not any(e.id == id for e in entries):
        raise CredentialsError(f"{path} has no token {id!r}.")
    _write_private(path, TokenFile(tokens=[e for e in entries if e.id != id]))


def _write_private(path: Path, tokens: TokenFile) -> None:
    """Replace the file in one rename, readable by its owner only (hashes, but still who may do what)."""
    text = json.dumps(tokens.model_dump(), indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# -- JWTs --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JwtIssuer:
    issuer: str
    audience: str
    jwks_url: str
    roots_claim: str = ROOTS_CLAIM

    def __post_init__(self):
        url = urlparse(self.jwks_url)
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.hostname or "")):
            # Keys fetched over plain HTTP could be swapped on the way, and with them every identity.
            raise CredentialsError(f"--jwt-jwks-url must be https (plain http only on loopback): {self.jwks_url}")


# -- the verifier the SDK calls for every request ----------------------------------------------------


class Verifier:
    """The SDK's TokenVerifier: a bearer token -> a Credential, or None (the SDK answers 401)."""

    def __init__(self, tokens: list[TokenEntry], jwt_issuer: JwtIssuer | None = None):
        self.tokens = tokens
        self.jwt_issuer = jwt_issuer
        self._jwks = None
        if jwt_issuer is not None:
            from jwt import PyJWKClient

            self._jwks = PyJWKClient(jwt_issuer.jwks_url, cache_keys=True, timeout=10)

    def auth_settings(self) -> AuthSettings:
        """The SDK's auth settings: with an issuer whose audience is this server's URL, the server also
        publishes its protected-resource metadata (RFC 9728), so a client can find the issuer by itself."""
        if self.jwt_issuer is None:
            # Static tokens have no authorization server; the SDK requires an issuer URL but publishes it
            # only beside a resource URL, which stays unset.
            return AuthSettings(issuer_url="http://127.0.0.1", resource_server_url=None)
        audience = self.jwt_issuer.audience
        resource = audience if urlparse(audience).scheme in ("http", "https") else None
        # validate_token_resource=False: the audience is checked here, in verify_token, by PyJWT.
        return AuthSettings(
            issuer_url=self.jwt_issuer.issuer, resource_server_url=resource, validate_token_resource=False
        )

    async def verify_token(self, token: str) -> Credential | None:
        if self.jwt_issuer is not None and token.count(".") == 2:
            import anyio

            return await anyio.to_thread.run_sync(self._verify_jwt, token)  # the JWKS fetch may block
        return self._verify_static(token)

    def _verify_static(self, token: str) -> Credential | None:
        presented = digest(token)
        found = None
        for entry in self.tokens:  # every entry compared, in constant time each: no early answer to time
            if hmac.compare_digest(entry.sha256, presented):
                found = entry
        if found is None:
            return None
        return Credential(
            token="",
            client_id=found.id,
            scopes=[WRITE_SCOPE] if found.write else [],
            who=found.id,
            roots=tuple(Path(r).resolve() for r in found.roots),
        )

    def _verify_jwt(self, token: str) -> Credential | None:
        import jwt

        issuer = cast(JwtIssuer, self.jwt_issuer)  # verify_token calls this only with an issuer
        jwks = cast(jwt.PyJWKClient, self._jwks)  # set with the issuer
        try:
            key = jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=JWT_ALGORITHMS,
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=JWT_LEEWAY_S,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            log.warning("refused a JWT: %s (%s)", type(error).__name__, error)
            return None
        subject = str(claims["sub"])
        roots = claims.get(issuer.roots_claim)
        roots = [roots] if isinstance(roots, str) else roots
        if not roots or not isinstance(roots, list) or not all(isinstance(r, str) and r.startswith("/") for r in roots):
            log.warning("refused the JWT of %r: its %s claim names no absolute roots", subject, issuer.roots_claim)
            return None
        scope = claims.get("scope", claims.get("scp", []))
        scopes = scope.split() if isinstance(scope, str) else [s for s in scope if isinstance(s, str)]
        return Credential(
            token="",
            client_id=str(claims.get("azp") or claims.get("client_id") or subject),
            scopes=scopes,
            expires_at=int(claims["exp"]),
            subject=subject,
            claims={"iss": claims["iss"]},
            who=subject,
            roots=tuple(Path(r).resolve() for r in roots),
        )


# -- may this server start? --------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def http_verifier(host: str, no_auth: bool, tokens_file: str | None, jwt_issuer: JwtIssuer | None) -> Verifier | None:
    """The verifier `serve --http` checks every request with, or None when it may serve without one.

    Without a credential the server starts only bound to loopback and told so with --no-auth: any local
    user could otherwise write code into a tree and have validate_destination run it as the server's user.
    """
    tokens = load_tokens(tokens_file)
    configured = bool(tokens) or jwt_issuer is not None
    if configured and no_auth:
        raise CredentialsError("--no-auth contradicts the credentials given (--tokens, BIZON_FORGE_TOKENS, --jwt-*).")
    if configured:
        return Verifier(tokens, jwt_issuer)
    if tokens_file:
        raise CredentialsError(f"{tokens_file} holds no tokens; add one with `bizon-forge token add`.")
    if not is_loopback(host):
        raise CredentialsError(
            f"Refusing to serve HTTP on {host} without authentication: anyone who reaches the port could write "
            "code into a bizon tree and run it. Give credentials with --tokens FILE (make one with `bizon-forge "
            f"token add`) or {TOKENS_ENV}, or --jwt-issuer/--jwt-audience/--jwt-jwks-url "
            "(--no-auth is accepted on loopback only)."
        )
    if not no_auth:
        raise CredentialsError(
            "Refusing to serve HTTP without authentication. Give credentials with --tokens FILE (make one with "
            f"`bizon-forge token add`) or {TOKENS_ENV}, or --jwt-issuer/--jwt-audience/--jwt-jwks-url; "
            "on loopback, --no-auth serves without (every local user and process is then in)."
        )
    return None
