"""The mock API's auth (the module doc of mock_api.py says what it takes): the credentials a stream request must
carry, and the token endpoint's grants. Stdlib only, Python 3.9+."""

from __future__ import annotations

import base64
import time
from typing import Any

try:
    from .api_pages import Refusal
except ImportError:  # run as a script, or imported from this folder
    from api_pages import Refusal  # type: ignore[no-redef]

TOKEN_GRACE_S = 0.5  # a token checked live by the client may land just after it expired
TOKEN_AUTHS = ("oauth", "client_credentials")


def _api_key(spec: dict, c: dict, headers: Any) -> None:
    value = (headers.get(spec["api_key_header"]) or "").strip()
    prefix = spec["api_key_prefix"]
    if not value:
        raise Refusal(401, f"no API key in the {spec['api_key_header']} header")
    if value != (f"{prefix} {c['api_key']}" if prefix else c["api_key"]):
        raise Refusal(401, "wrong API key")


def _access_token(tokens: dict[str, float], scheme: str, given: str) -> None:
    expires = tokens.get(given) if scheme.lower() == "bearer" else None
    if expires is None:
        raise Refusal(401, "not an access token this API issued")
    if time.monotonic() > expires + TOKEN_GRACE_S:
        raise Refusal(401, "access token expired")


def check(spec: dict, c: dict, tokens: dict[str, float], headers: Any) -> None:
    """Nothing when the request carries the spec's credentials; else a 401 Refusal saying what was wrong."""
    kind = spec["auth"]
    if kind == "none":
        return
    if kind == "api_key":
        _api_key(spec, c, headers)
        return
    value = (headers.get("Authorization") or "").strip()
    if not value:
        raise Refusal(401, "no Authorization header")
    scheme, _, given = value.partition(" ")
    if kind == "bearer":
        if scheme.lower() != "bearer" or given != c["token"]:
            raise Refusal(401, "wrong bearer token")
    elif kind == "basic":
        if scheme.lower() != "basic" or given != basic(c["username"], c["password"]):
            raise Refusal(401, "wrong basic credentials")
    elif kind in TOKEN_AUTHS:
        _access_token(tokens, scheme, given)
    else:
        raise Refusal(500, f"unknown auth kind {kind!r}")


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _basic_client(headers: Any) -> dict:
    """HTTP Basic client authentication at the token endpoint (RFC 6749 2.3.1): client_id and client_secret."""
    scheme, _, given = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        user, _, password = base64.b64decode(given).decode("utf-8").partition(":")
    except ValueError:
        return {}
    return {"client_id": user, "client_secret": password}


def grant(spec: dict, c: dict, form: dict, headers: Any) -> str | None:
    """Checks a token request; returns the scope granted (None when the grant has none) or raises a Refusal.
    client_credentials: grant_type=client_credentials, the client in the form, JSON or HTTP Basic, and every scope
    of the spec's asked; otherwise the refresh-token grant as bizon's Oauth2Authenticator sends it."""
    if spec["auth"] == "client_credentials":
        form = {**_basic_client(headers), **form}
        if form.get("grant_type") != "client_credentials":
            raise Refusal(400, "unsupported_grant_type: grant_type must be client_credentials")
        _same(form, c, ("client_id", "client_secret"))
        asked = str(form.get("scope") or "").split()
        missing = [s for s in spec.get("scopes") or [] if s not in asked]
        if missing:
            raise Refusal(400, f"invalid_scope: the token would lack {' '.join(missing)} (scope is space-separated)")
        return " ".join(asked) or None
    if form.get("grant_type") != "refresh_token":
        raise Refusal(400, "grant_type must be refresh_token")
    _same(form, c, ("client_id", "client_secret", "refresh_token"))
    return None


def _same(form: dict, c: dict, keys: tuple) -> None:
    for key in keys:
        if form.get(key) != c[key]:
            raise Refusal(401, f"wrong {key}")
