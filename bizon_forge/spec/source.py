"""SourceSpec: what the agent learned from an API's docs (Step 1 of bizon's ai-connector-guide), as one checked value.

The guide's seven facts per source: base URL, authentication, and per stream the list endpoint, the pagination
pattern (A cursor, B next URL, C offset, D none, E POST query, and graphql: Relay connections), where the records
are, the record id field, and the rate limits; plus the errors an API reports inside an HTTP 200 (body_errors).
describe_source checks and stores it; render_source, the mock API of the checks and the checks
themselves all read this one value, so what is rendered, served and judged cannot disagree.
"""

import json
import math
import re
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, model_validator

from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, failed
from bizon_forge.spec import common as spec
from bizon_forge.spec.common import BaseFields, FieldSpec, Kind, Names, pascal_case
from bizon_forge.workspace import Workspace

# bizon's AuthType values (bizon.source.auth.config), plus "none": a public API (get_authenticator returns None), and
# "client_credentials": OAuth2's client-credentials grant (bizon's config type oauth; the source keeps the token).
AuthKind = Literal["none", "api_key", "bearer", "basic", "oauth", "client_credentials"]
AUTH_KINDS = get_args(AuthKind)
TOKEN_AUTHS = ("oauth", "client_credentials")  # an access token from token_url, renewed when it expires
# The guide's patterns, by the letter it gives them: A cursor, B next_url, C offset, D none, E post_query; and
# graphql: Relay connections (edges, pageInfo) over POST.
PatternName = Literal["cursor", "next_url", "offset", "none", "post_query", "graphql"]
PATTERNS = get_args(PatternName)
POST_PATTERNS = ("post_query", "graphql")  # a JSON body: parameters are dotted paths into it
CURSOR_PATTERNS = ("cursor", "post_query", "graphql")
# graphql: what pagination parameters default to (paths into the body's variables)
GRAPHQL_DEFAULTS = {"page_size_param": "variables.first", "cursor_param": "variables.after"}
SourceRecipeName = Literal["rest", "custom"]
SOURCE_RECIPES = get_args(SourceRecipeName)


class Pagination(BaseModel):
    """How one stream pages. Paths are dotted keys into the JSON body (`meta.next_cursor`); only the pattern's own
    parameters matter."""

    pattern: PatternName = Field(
        "none",
        description="A cursor, B next_url, C offset, D none (one page), E post_query (POST body, cursor), graphql "
        "(Relay connection: POST {query, variables}; records, cursor and end read under the stream's connection_path)",
    )
    page_size: int = Field(100, description="records asked per page, sent as page_size_param")
    page_size_param: str = Field(
        "limit",
        description="request parameter (or dotted POST body path) of the page size; graphql: 'variables.first'",
    )
    # A, E and graphql: the cursor goes back as cursor_param; the next one is at next_cursor_path; the end is a
    # missing or null cursor, or has_more_path false when the API has such a flag (graphql: both derived).
    cursor_param: str = Field(
        "cursor",
        description="cursor, post_query, graphql: parameter (or dotted body path) the cursor goes in; graphql: "
        "'variables.after'",
    )
    next_cursor_path: str = Field(
        "next_cursor", description="cursor, post_query: dotted path of the next cursor; missing or null ends"
    )
    has_more_path: str | None = Field(
        None, description="cursor, post_query: dotted path of a 'more pages' flag; false ends (null: no such flag)"
    )
    # B: the next page's full URL is at next_url_path; null or missing ends.
    next_url_path: str = Field("next", description="next_url: dotted path of the next page's URL; null or missing ends")
    # C: offset_param counts records; the end is a short or empty page, or offset >= total when total_path is set.
    offset_param: str = Field("offset", description="offset: parameter of the records skipped so far")
    total_path: str | None = Field(
        None,
        description="offset: dotted path of the total record count, read from every page (null: an empty page ends)",
    )

    @model_validator(mode="after")
    def _graphql_defaults(self) -> "Pagination":
        # graphql's parameters are variables of the query: their defaults differ from the GET patterns'.
        if self.pattern == "graphql":
            for key, value in GRAPHQL_DEFAULTS.items():
                if key not in self.model_fields_set:
                    setattr(self, key, value)
        return self


class StreamSpec(BaseModel):
    name: str = Field(description="the stream's name, snake_case (bizon's `stream:` in a config)")
    endpoint: str = Field(description="path under base_url, e.g. /users")
    records_path: str = Field("data", description="dotted key of the records array; '' when the body is the array")
    id_field: str = Field("id", description="dotted key of each record's unique id (SourceRecord.id)")
    pagination: Pagination = Field(Pagination(), description="how the endpoint pages (pattern and its parameters)")
    # Incremental (get_records_after): the record field that says when it changed, and the request parameter that
    # filters on it server-side (None: the source filters client-side).
    cursor_field: str | None = Field(
        None, description="incremental: record field of its last change (ISO 8601 or epoch); also its timestamp"
    )
    updated_after_param: str | None = Field(
        None,
        description="incremental: request parameter that filters on cursor_field (null: filtered client-side); "
        "post_query, graphql: a dotted path into the JSON body, e.g. 'variables.since'",
    )
    # E and graphql: the JSON body of every request (e.g. {"query": "..."} for GraphQL); page_size_param and
    # cursor_param are set in it, dotted keys nested ("variables.after").
    body: dict[str, Any] = Field(
        {},
        description='post_query, graphql: the JSON body of every request, e.g. {"query": "...", "variables": {}}; '
        "streams on one endpoint differ by it",
    )
    # graphql: the Relay connection; its edges are the records, its pageInfo says where the next page starts.
    connection_path: str | None = Field(
        None,
        description="graphql (required): dotted path of the connection in the response, e.g. 'data.contacts'; "
        "records are its edges, the next page from its pageInfo.endCursor and pageInfo.hasNextPage",
    )
    land: Literal["node", "edge"] = Field(
        "node",
        description="graphql: one record is the edge's node ('node') or the whole edge ({cursor, node}: 'edge'); "
        "id_field and cursor_field are paths in it ('id', or 'node.id' when landing edges)",
    )


class BodyErrors(BaseModel):
    """Errors an API reports inside an HTTP 200 (GraphQL's `errors`, Slack's `ok: false`): a request failed when
    errors_path holds a non-empty list, object or string (or true), or ok_path holds false."""

    errors_path: str = Field("errors", description="dotted path of the errors; non-empty there = the request failed")
    ok_path: str | None = Field(None, description="dotted path of a success flag; false = failed (Slack's 'ok')")
    code_path: str = Field(
        "extensions.code",
        description="dotted path, inside the error (the first of a list), of its code; '' when the error is the bare "
        'code (Slack\'s {"ok": false, "error": "ratelimited"})',
    )
    retryable_codes: list[str] = Field(
        ["THROTTLED", "RATE_LIMITED"], description="codes that mean wait (retry_after_path) and retry the same request"
    )
    reauth_codes: list[str] = Field(
        ["UNAUTHENTICATED"], description="codes that mean get a new token (oauth, client_credentials) and retry"
    )
    retry_after_path: str | None = Field(
        "extensions.retryAfter", description="dotted path, inside the error, of the seconds to wait before a retry"
    )


class SourceErrorHandling(BaseModel):
    """Retries of the rendered session: these statuses (and connection errors) are retried, honouring Retry-After."""

    transient_statuses: list[int] = Field(
        [429, 500, 502, 503, 504],
        description="HTTP statuses retried, e.g. 429 and 5xx (never one that says the request is wrong: 401, 404...)",
    )
    max_retries: int = Field(5, description="retries of one request before the error ends the run")
    backoff_seconds: float = Field(1.0, description="exponential backoff factor between retries, in seconds")
    timeout_seconds: float = Field(30.0, description="timeout of one request, in seconds")


class SourceSpec(BaseModel):
    name: str = Field(description="the source's name, snake_case: its folder and bizon's `source.name`")
    base_url: str = Field(description="http(s) URL every endpoint is under, e.g. https://api.example.com/v1")
    auth: AuthKind = Field(
        "none",
        description="how requests authenticate; the example config reads it via env://. client_credentials: OAuth2 "
        "client-credentials grant (token from token_url, renewed on expiry, 401 or an in-body re-auth code)",
    )
    token_url: str | None = Field(
        None, description="oauth, client_credentials: absolute URL of the token endpoint (null: a placeholder)"
    )
    scopes: list[str] = Field([], description="client_credentials: scopes asked, sent space-joined as `scope`")
    # api_key: the header the key goes in and its prefix ("" sends the bare key; bizon 0.5.x always sends a prefix)
    api_key_header: str = Field("Authorization", description="api_key: the header the key is sent in")
    api_key_prefix: str = Field("", description='api_key: text before the key, e.g. "Token" (""; the bare key)')
    streams: list[StreamSpec] = Field(description="one per list endpoint to read")
    recipe: SourceRecipeName = Field("rest", description="rest: complete code; custom: a skeleton with TODOs")
    fields: list[FieldSpec] = Field(
        [], description="extra source config fields (e.g. workspace_id), as for destinations"
    )
    error_handling: SourceErrorHandling = Field(SourceErrorHandling(), description="the session's retries")
    body_errors: BodyErrors | None = Field(
        None,
        description="errors inside an HTTP 200: a non-retryable one fails the read with the API's message; null: "
        "none (graphql: GraphQL's `errors`, the defaults)",
    )
    description: str = Field("", description="one line on the API, for source.py's docstring")
    dependencies: list[str] = Field([], description="extra libraries source.py imports (the rest recipe needs none)")

    @property
    def names(self) -> Names:
        n = self.name
        return Names(pascal=pascal_case(n), snake=n, upper=n.upper(), alias=n)

    @property
    def errors_in_body(self) -> BodyErrors | None:
        """The body errors the source reads: the spec's, or GraphQL's defaults when a stream is graphql."""
        if self.body_errors is None and any(st.pagination.pattern == "graphql" for st in self.streams):
            return BodyErrors()
        return self.body_errors


# -- checks ----------------------------------------------------------------------------------------

# What every source config inherits (bizon.source.config.SourceConfig, both versions) and what the rest recipe adds.
BASE_FIELDS = frozenset(
    {
        "name",
        "stream",
        "source_file_path",
        "sync_mode",
        "cursor_field",
        "force_ignore_checkpoint",
        "reset",
        "authentication",
        "max_iterations",
        "api_config",
        "http",
        "base_url",
    }
)
BASE = BaseFields(
    BASE_FIELDS,
    "SourceConfig.{name} (or the recipe's base_url)",
    "Rename it; auth goes in `auth`, the API root in `base_url`.",
)
# Statuses that mean the request itself is wrong: retrying them repeats the failure, only later.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 422})
HEADER_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # an HTTP header name (RFC 9110 token)
KEY_RE = re.compile(r"[A-Za-z_$@][\w$@-]*")  # one segment of a dotted JSON path or a request parameter
STREAM_RE = re.compile(r"[a-z][a-z0-9_]*")


# FieldSpec is the destinations' too (describe_target's schema): its descriptions for the source-spec resource only.
FIELD_DESCRIPTIONS = {
    "name": "the config key, snake_case",
    "type": "str|int|float|bool|list[str]|dict",
    "required": "the config must set it",
    "default": "its value when not set (a value of its type)",
    "description": "one line, into the config class",
    "secret": "a credential: the example config reads it from env://<NAME>_<FIELD>",
}


def schema() -> dict:
    """The JSON schema of a source spec (the resource bizon-forge://source-spec), every field described."""
    out = SourceSpec.model_json_schema()
    for key, prop in out["$defs"]["FieldSpec"]["properties"].items():
        prop.setdefault("description", FIELD_DESCRIPTIONS[key])
    out["description"] = RECORDED_PAGES
    return out


# Where an agent meets recorded pages: this resource. The mock API's module doc says how it serves them.
RECORDED_PAGES = (
    "Recorded pages (validate_source(recorded=FOLDER); the live read's save=FOLDER writes them): "
    "FOLDER/<stream>/page-001.json, page-002.json, ... (the files directly in FOLDER when the spec has one stream), "
    "each the whole JSON body of one response of the real API, in the order it gave them. The mock serves them in "
    "the stream's pattern with the spec's auth and its faults on top; the incremental filter is not applied to them."
)


def check_name(name: str) -> list[Finding]:
    """spec.check_name, worded for a source."""
    return spec.check_name(name, "source")


def _check_base_url(url: str) -> list[Finding]:
    hint = "Give the API's root as scheme://host[/path], e.g. 'https://api.example.com/v1'."
    shown = url[:80]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return [failed("spec.base_url.invalid", f"base_url {shown!r} is not a URL.", hint)]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [failed("spec.base_url.invalid", f"base_url {shown!r} is not an http(s) URL with a host.", hint)]
    if parts.username or parts.password:
        return [
            failed(
                "spec.base_url.credentials",
                "base_url holds a user or password: it would be committed in source.py and the configs.",
                "Drop them from the URL and use auth='basic' (the values go in the YAML as env:// references).",
            )
        ]
    if parts.query or parts.fragment:
        return [
            failed(
                "spec.base_url.query",
                f"base_url {shown!r} has a query or fragment; requests add their own parameters.",
                "Keep base_url to scheme://host/path; a fixed parameter belongs in the stream's endpoint.",
            )
        ]
    if any(c.isspace() for c in url):
        return [failed("spec.base_url.invalid", f"base_url {shown!r} holds whitespace.", hint)]
    return []


def _path_ok(path: str, empty: bool = False) -> bool:
    if not path:
        return empty
    return all(KEY_RE.fullmatch(part) for part in path.split("."))


def _check_stream_basics(where: str, s: StreamSpec) -> list[Finding]:
    found: list[Finding] = []
    p = s.pagination
    if not STREAM_RE.fullmatch(s.name) or len(s.name) > 64:
        found.append(
            failed(
                "spec.stream.name",
                f"{where}: the stream name must be snake_case (it is the YAML's `stream:` and a dict key).",
                "e.g. 'users' or 'invoice_items'.",
            )
        )
    if not s.endpoint.startswith("/") or any(c.isspace() for c in s.endpoint) or "#" in s.endpoint:
        found.append(
            failed(
                "spec.stream.endpoint",
                f"{where}: endpoint {s.endpoint[:80]!r} must be a path under base_url starting with '/'.",
                "e.g. '/users'; the host goes in base_url.",
            )
        )
    if not _path_ok(s.records_path, empty=True):
        found.append(
            failed(
                "spec.stream.records_path",
                f"{where}: records_path {s.records_path[:80]!r} is not a dotted key path.",
                "e.g. 'data' or 'result.items'; '' when the body is the array itself.",
            )
        )
    if not s.records_path and p.pattern in ("cursor", "next_url", "post_query"):
        found.append(
            failed(
                "spec.stream.records_path",
                f"{where}: records_path is '' (the body is the array) but pattern {p.pattern} reads its next "
                "cursor or link from the body.",
                "Name the key of the records array, e.g. 'data'; for a bare array the pattern is offset or none.",
            )
        )
    if not _path_ok(s.id_field):
        found.append(
            failed(
                "spec.stream.id_field",
                f"{where}: id_field {s.id_field[:80]!r} is not a field name (dotted for a nested one).",
                "Name the record's unique key, e.g. 'id' or 'meta.uuid'.",
            )
        )
    return found


def _pagination_fields(p: Pagination) -> tuple[dict[str, str], dict[str, str | None]]:
    """The parameters the pattern uses (a request parameter or body path each) and the response paths it reads."""
    params = {"page_size_param": p.page_size_param}
    paths: dict[str, str | None] = {}
    if p.pattern in CURSOR_PATTERNS:
        params["cursor_param"] = p.cursor_param
    if p.pattern in ("cursor", "post_query"):  # graphql's are derived from connection_path
        paths = {"next_cursor_path": p.next_cursor_path, "has_more_path": p.has_more_path}
    elif p.pattern == "next_url":
        paths = {"next_url_path": p.next_url_path}
    elif p.pattern == "offset":
        params["offset_param"] = p.offset_param
        paths = {"total_path": p.total_path}
    elif p.pattern == "none":
        params = {}
    return params, paths


def _check_pagination(where: str, p: Pagination) -> list[Finding]:
    found: list[Finding] = []
    if not 1 <= p.page_size <= 10_000:
        found.append(
            failed("spec.pagination.page_size", f"{where}: page_size {p.page_size} is outside 1-10000.", "e.g. 100.")
        )
    params, paths = _pagination_fields(p)
    for key, value in params.items():
        dotted_ok = p.pattern in POST_PATTERNS  # a body key may be nested: variables.after
        if not (_path_ok(value) if dotted_ok else bool(KEY_RE.fullmatch(value))):
            found.append(
                failed(
                    f"spec.pagination.{key}",
                    f"{where}: pagination.{key} {value[:60]!r} is not a parameter name.",
                    f"Give the name the API documents for it (pattern {p.pattern}).",
                )
            )
    for key, path in paths.items():
        if path is not None and not _path_ok(path):
            found.append(
                failed(
                    f"spec.pagination.{key}",
                    f"{where}: pagination.{key} {path[:60]!r} is not a dotted key path into the response.",
                    "e.g. 'meta.next_cursor'.",
                )
            )
    other = {"offset": p.offset_param, **dict.fromkeys(CURSOR_PATTERNS, p.cursor_param)}.get(p.pattern)
    if other is not None and other == p.page_size_param:
        kind = "offset_param" if p.pattern == "offset" else "cursor_param"
        found.append(
            failed(
                "spec.pagination.same_param",
                f"{where}: {kind} and page_size_param are both {other!r}.",
                "They are two parameters: e.g. cursor and limit (offset and limit).",
            )
        )
    return found


def _check_graphql(where: str, s: StreamSpec) -> list[Finding]:
    """A Relay connection: where it is, a query to send, and fields inside the record that is landed."""
    if s.pagination.pattern != "graphql":
        if s.connection_path is not None or s.land != "node":
            return [
                failed(
                    "spec.stream.graphql_unused",
                    f"{where}: connection_path and land are read only by pattern graphql, not {s.pagination.pattern}.",
                    "Drop them, or use pattern 'graphql' for a Relay connection (edges, pageInfo).",
                )
            ]
        return []
    found: list[Finding] = []
    if s.connection_path is None or not _path_ok(s.connection_path):
        shown = "not set" if s.connection_path is None else f"{s.connection_path[:60]!r}, not a dotted path"
        found.append(
            failed(
                "spec.stream.connection_path",
                f"{where}: pattern graphql needs connection_path, the connection in the response: it is {shown}.",
                'e.g. \'data.contacts\' for {"data": {"contacts": {"edges": [...], "pageInfo": {...}}}}.',
            )
        )
    if not isinstance(s.body.get("query"), str) or not s.body["query"].strip():
        found.append(
            failed(
                "spec.stream.graphql_query",
                f"{where}: pattern graphql sends body.query, and body has no query text.",
                'e.g. body {"query": "query($first: Int, $after: String) { contacts(first: $first, after: $after) '
                '{ edges { node { id } } pageInfo { hasNextPage endCursor } } }", "variables": {}}.',
            )
        )
    fields = {"id_field": s.id_field, "cursor_field": s.cursor_field}
    for key, value in fields.items():
        if s.land == "edge" and value is not None and not value.startswith("node.") and value != "cursor":
            found.append(
                failed(
                    f"spec.stream.{key}",
                    f"{where}: land is 'edge' (a record is {{cursor, node}}); {key} {value[:60]!r} is not under node.",
                    f"Use 'node.{value[:40]}', or land 'node' to make the node the record.",
                )
            )
    return found


def _check_incremental(where: str, s: StreamSpec) -> list[Finding]:
    found: list[Finding] = []
    pattern = s.pagination.pattern
    if pattern not in POST_PATTERNS and s.body:
        found.append(
            failed(
                "spec.stream.body_unused",
                f"{where}: body is sent only by patterns post_query and graphql, not {pattern}.",
                "Drop body, or use pattern 'post_query' (or 'graphql') for an API queried by POST.",
            )
        )
    if s.updated_after_param is not None and s.cursor_field is None:
        found.append(
            failed(
                "spec.stream.updated_after_without_cursor",
                f"{where}: updated_after_param is set but cursor_field is not.",
                "Name the record field that says when it changed (cursor_field), or drop updated_after_param.",
            )
        )
    if s.cursor_field is not None and not _path_ok(s.cursor_field):
        found.append(
            failed("spec.stream.cursor_field", f"{where}: cursor_field {s.cursor_field[:60]!r} is not a field name.")
        )
    after = s.updated_after_param
    if after is not None and not (_path_ok(after) if pattern in POST_PATTERNS else KEY_RE.fullmatch(after)):
        found.append(
            failed(
                "spec.stream.updated_after_param",
                f"{where}: updated_after_param {after[:60]!r} is not a parameter name"
                + (" (a dotted body path for post_query and graphql)." if pattern in POST_PATTERNS else "."),
                "e.g. 'updated_since' (a query parameter), or 'variables.since' in a POST body.",
            )
        )
    return found


def _check_stream(i: int, s: StreamSpec) -> list[Finding]:
    where = f"streams[{i}] ({s.name[:40]!r})"
    return (
        _check_stream_basics(where, s)
        + _check_pagination(where, s.pagination)
        + _check_graphql(where, s)
        + _check_incremental(where, s)
    )


def _request_key(s: StreamSpec) -> str:
    """What tells a stream's requests apart: its endpoint (with its query) and, for POST patterns, its body."""
    posts = s.pagination.pattern in POST_PATTERNS
    return json.dumps([s.endpoint, posts, s.body if posts else None], sort_keys=True, default=str)


def _check_streams(streams: list[StreamSpec]) -> list[Finding]:
    found: list[Finding] = []
    if not streams:
        found.append(failed("spec.streams.empty", "The source lists no streams.", "Describe at least one endpoint."))
    seen: set[str] = set()
    requests: dict[str, str] = {}
    for i, stream in enumerate(streams):
        found += _check_stream(i, stream)
        if stream.name in seen:
            found.append(failed("spec.stream.duplicate", f"Stream {stream.name!r} is listed twice.", "Keep one."))
        seen.add(stream.name)
        key = _request_key(stream)
        if key in requests and requests[key] != stream.name:
            found.append(
                failed(
                    "spec.stream.same_request",
                    f"Streams {requests[key]!r} and {stream.name!r} send the same request to {stream.endpoint[:60]!r}: "
                    "the API cannot tell them apart, so both would read the same records.",
                    "Streams may share an endpoint when their requests differ: another GraphQL query (or a body "
                    "key) for POST patterns, a fixed query parameter in the endpoint ('/records?type=contacts').",
                )
            )
        requests.setdefault(key, stream.name)
    if len(streams) > 50:
        found.append(failed("spec.streams.too_many", f"{len(streams)} streams; the limit is 50."))
    return found


def _check_api_key(s: SourceSpec) -> list[Finding]:
    found: list[Finding] = []
    if " " in s.api_key_prefix.strip() or not s.api_key_prefix.isprintable():
        found.append(
            failed(
                "spec.auth.api_key_prefix",
                f"api_key_prefix {s.api_key_prefix[:40]!r} must be one word (sent as `PREFIX KEY`) or ''.",
                "e.g. 'Token', or '' for the bare key.",
            )
        )
    if not HEADER_RE.fullmatch(s.api_key_header):
        found.append(
            failed(
                "spec.auth.api_key_header",
                f"api_key_header {s.api_key_header[:60]!r} is not an HTTP header name.",
                "e.g. 'X-API-Key' or 'Authorization'.",
            )
        )
    return found


def _check_auth(s: SourceSpec) -> list[Finding]:
    found = _check_api_key(s) if s.auth == "api_key" else []
    if s.token_url is not None:
        if s.auth not in TOKEN_AUTHS:
            found.append(
                failed(
                    "spec.auth.token_url_unused",
                    f"token_url is read only by auth oauth and client_credentials, not {s.auth}.",
                    "Drop token_url, or set auth to the grant the API documents.",
                )
            )
        elif _check_base_url(s.token_url):
            found.append(
                failed(
                    "spec.auth.token_url",
                    f"token_url {s.token_url[:80]!r} is not an absolute http(s) URL with no credentials in it.",
                    "e.g. 'https://auth.example.com/oauth/token'.",
                )
            )
    if s.scopes and s.auth != "client_credentials":
        found.append(
            failed(
                "spec.auth.scopes_unused",
                f"scopes are sent only by auth client_credentials, not {s.auth}.",
                "Drop scopes, or set auth 'client_credentials'.",
            )
        )
    bad = [x for x in s.scopes if not x or not x.isprintable() or any(c.isspace() for c in x)]
    if bad:
        found.append(
            failed(
                "spec.auth.scopes",
                f"scopes {bad[:3]!r}: a scope is one word (they are sent space-joined).",
                "e.g. ['contacts:read', 'companies:read'].",
            )
        )
    return found


def _check_body_errors(s: SourceSpec) -> list[Finding]:
    b = s.body_errors
    if b is None:
        return []
    found: list[Finding] = []
    paths = {"errors_path": b.errors_path, "code_path": b.code_path, "ok_path": b.ok_path}
    paths["retry_after_path"] = b.retry_after_path
    for key, path in paths.items():
        if path is not None and not _path_ok(path, empty=key == "code_path"):  # '': the error is its bare code
            found.append(
                failed(
                    f"spec.body_errors.{key}",
                    f"body_errors.{key} {path[:60]!r} is not a dotted key path.",
                    "e.g. 'errors', 'extensions.code' (inside the error), 'ok'.",
                )
            )
    codes = b.retryable_codes + b.reauth_codes
    if any(not c.strip() for c in codes):
        found.append(failed("spec.body_errors.codes", "body_errors lists an empty code.", "Drop it."))
    both = sorted(set(b.retryable_codes) & set(b.reauth_codes))
    if both:
        found.append(
            failed(
                "spec.body_errors.codes",
                f"body_errors lists {both} as both retryable and re-auth codes.",
                "Keep each code in one list: retryable waits and retries, re-auth gets a new token first.",
            )
        )
    return found


def _check_error_handling(e: SourceErrorHandling) -> list[Finding]:
    found: list[Finding] = []
    permanent = sorted(set(e.transient_statuses) & PERMANENT_STATUSES)
    if permanent:
        found.append(
            failed(
                "spec.error_handling.permanent_status",
                f"error_handling.transient_statuses lists {permanent}: a bad request, a wrong key or a missing "
                "page fails the same way on every try.",
                "Drop them; keep statuses that pass with time, e.g. [429, 500, 502, 503, 504].",
            )
        )
    odd = [x for x in e.transient_statuses if not 400 <= x <= 599]
    if odd:
        found.append(
            failed(
                "spec.error_handling.status",
                f"error_handling.transient_statuses lists {odd}, which are not error statuses.",
                "Use 4xx/5xx statuses, e.g. 429 and 503.",
            )
        )
    if not 0 <= e.max_retries <= 20:
        found.append(failed("spec.error_handling.max_retries", "error_handling.max_retries must be 0-20."))
    if not math.isfinite(e.backoff_seconds) or not 0 < e.backoff_seconds <= 600:
        found.append(failed("spec.error_handling.backoff", "error_handling.backoff_seconds must be in (0, 600]."))
    if not math.isfinite(e.timeout_seconds) or not 0 < e.timeout_seconds <= 600:
        found.append(
            failed(
                "spec.error_handling.timeout",
                "error_handling.timeout_seconds must be in (0, 600]: without a timeout a silent server hangs the run.",
            )
        )
    return found


def _check_fields(s: SourceSpec) -> list[Finding]:
    # The extra fields: a source config's own base fields are the clash here, not a destination's.
    return spec.check_fields(s.fields, BASE)


def check_source(s: SourceSpec) -> list[Finding]:
    """Every finding on a source spec before anything is written; each names the field and the fix."""
    if bad := spec.check_unicode(s):
        return bad
    found = check_name(s.name) + _check_base_url(s.base_url) + _check_streams(s.streams) + _check_auth(s)
    found += _check_fields(s) + _check_error_handling(s.error_handling) + _check_body_errors(s)
    if len(s.description) > spec.MAX_TEXT:
        found.append(failed("spec.description_too_long", f"The description exceeds {spec.MAX_TEXT} characters."))
    return found


def check_against_workspace(s: SourceSpec, ws: Workspace) -> list[Finding]:
    """A source folder this tool did not describe is bizon's or the user's: not ours to overwrite."""
    folder = Connector(s.name, "source").dir
    if not spec_path(ws, s.name).exists() and (ws.root / folder).exists():
        return [
            failed(
                "spec.name.taken",
                f"bizon already has a source folder {s.name!r} ({folder}).",
                "Pick another name: bizon discovers sources by their folder name.",
            )
        ]
    return []


KIND = Kind(
    name="source",
    model=SourceSpec,
    check=check_source,
    check_name=check_name,
    folder="source-specs",
    noun="source spec",
    tool="describe_source",
    schema="bizon-forge://source-spec",
)


# -- the store inside the workspace (apart from destination specs: a source and a destination may share a name) --

spec_path, save, load, stored, stored_names = (KIND.spec_path, KIND.save, KIND.load, KIND.stored, KIND.stored_names)
