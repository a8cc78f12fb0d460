"""A local mock of the HTTP API a source extracts from, served from the source's spec (SourceSpec as a JSON dict), so
a generated source is proven without the real API: validate_source points the source's check config at `.url` (and
at `.case_url(case)` for each misbehaviour case), runs it, and compares what came out with `report()` (and
`report(case)`), the ground truth.

Per stream it holds RECORDS_PER_STREAM deterministic records (unique ids, non-ASCII text, nested objects, a null,
the stream's cursor_field as ISO timestamps spread over two years), the same in every case, and serves them at the
stream's endpoint under base_url's path, in the stream's pagination pattern:
  A cursor     GET; `cursor_param` (an opaque cursor) and `page_size_param` in the query; the next cursor at
               next_cursor_path (null at the end), has_more at has_more_path when the spec names one.
  B next_url   GET; the next page's absolute URL (its cursor in `page_token`, the page size, the incremental filter
               and the endpoint's own query kept) at next_url_path, null at the end; relative with
               start(relative_next=True).
  C offset     GET; `offset_param` and `page_size_param` in the query; the total at total_path when named.
  D none       GET; one response with every record.
  E post_query POST; `cursor_param` and `page_size_param` in the JSON body (dotted names are paths into it:
               "variables.after"); answers as A.
  F graphql    POST; a Relay connection: `page_size_param` and `cursor_param` are paths into the JSON body (by default
               variables.first and variables.after), the answer {"data": {...}} holds at connection_path (e.g.
               data.contacts) {"edges": [{"cursor", "node": record}], "pageInfo": {"hasNextPage", "endCursor"}};
               an edge's cursor is its record's own (the same in every request and filter); the spec's records_path
               does not apply. The records a source lands are the nodes, or the whole edges with land "edge"
               (id_field and cursor_field are then paths in the edge, "node.id").
Records sit at records_path ('' only for C without total_path, and D; else start() raises ValueError). A, B, E and F
end with an empty page: the page holding the last records still says there is more, the one after it holds none and
says there is no more. A page holds min(the page size asked for, the spec's page_size, start()'s page_size_cap)
records. The incremental filter is `updated_after_param`: a query parameter for GET patterns, a path into the body for
E and F ("variables.since"); it keeps the records whose cursor_field is later. A cursor (A, E) and a next URL (B)
carry the filter of the request that began the chain; C and F filter each request by what it sends.

Several streams may share one endpoint: a request goes to the one at its path, or, of several there, for GET to the
one whose endpoint query parameters (`/records?type=contacts`) are all in the request, for POST to the one whose
constant body keys (its body's leaves, minus the page size, cursor and filter paths) equal the request's; a request
matching none is refused 400. Each stream is served its own records, in every case.

Auth (spec.auth), checked on every stream request; anything else gets 401 (counted, with its reason):
  api_key  exactly `api_key_prefix KEY` (or the bare KEY when the prefix is '') in the spec's api_key_header; the
           key elsewhere (another header, the query) is no key, another prefix a wrong one.
  bearer   `Authorization: Bearer <token>`;  basic `Authorization: Basic base64(username:password)`.
  oauth    POST the token endpoint (form or JSON: grant_type=refresh_token, client_id, client_secret, refresh_token,
           as bizon's Oauth2Authenticator sends) for an access token.
  client_credentials  POST the token endpoint: grant_type=client_credentials, client_id and client_secret (form,
           JSON, or HTTP Basic), and `scope` (space-separated) holding every one of the spec's scopes (else 400
           invalid_scope), for an access token.
  Both token grants answer {"access_token", "token_type": "Bearer", "expires_in": token_ttl} (plus "scope" when
  asked); streams take `Authorization: Bearer <access token>` while it lives (plus TOKEN_GRACE_S for the flight; a
  token sent with a request that got a fault lives on for that request's retries). The token endpoint is TOKEN_PATH
  at the origin (`.token_url`; `.case_token_url(case)` under a case's prefix).
  The values are CREDENTIALS (or start()'s credentials=), and report()["credentials"] repeats them.

A stream answers 410 past its request cap (start()'s request_cap; by default REQUEST_CAP_FACTOR x (its pages + 2)
+ 20), so a pagination that never ends (or a source retrying a failure forever) stops, counted as "capped".

Faults of the default (mode "unreliable", the default; "clean" has none; a request's `X-Forge-Mock-Mode:
clean|unreliable` header overrides start()'s mode): per stream, once per run, the second page answers 429 with
`Retry-After: 1` and the third 503 (a stream with fewer pages gets them on its last page, one after the other). A
request to a stream sooner than the Retry-After it was given counts as an early retry.

Cases: each served beside the default under its prefix, `{origin}/_case/{case}{base path}` (`.case_url(case)`), with
its own counters, log, tokens and report, and none of the default's faults. `cases_for(spec)` (and `.cases_for()`)
names those that apply to the spec; another is not served (404). "Page p" counts from 1; a case's fault falls on page
2, or page 1 when the stream's records fit in one page.
  last_page_with_records  the page holding the last records says there is no more (null cursor, has_more false,
                       null next URL, hasNextPage false; C: its total reached); no empty page follows.
  short_pages          a page starting in an odd stretch of page sizes (offset // size odd), neither the first nor
                       one reaching the last records, holds half the page size: 5, 2, 2, 2, 5, 2, 5 of 23 by 5.
  page_size_cap        at most min(7, the spec's page_size - 1) records a page, whatever was asked, silently.
  total_changes        C with total_path: the first page's total is two thirds of the real count, later pages' exact.
  error_in_200         (body_errors declared, or a graphql stream) a page answers a non-retryable error inside a 200
                       (INTERNAL_SERVER_ERROR) on every try: the source must fail.
  throttled_in_200     (body_errors with retryable_codes) page 2 answers the first retryable code inside a 200
                       once, with retry_after 1 at retry_after_path (a Retry-After header when the error is a bare
                       code, or no retry_after_path); a request sooner counts as an early retry.
  html_5xx             a page answers 502, then 504, with an nginx-style HTML body, then itself.
  dropped_connection   a page's answer is cut halfway once: its headers promise the whole body, the connection
                       closes (POST too).
  outage               a page answers 503 with `Retry-After: 0` on every try: the source must fail.
  token_expiry         (oauth, client_credentials) the access token that read page 2 dies: the next request with it
                       gets 401, or, when the spec's body errors have reauth_codes (graphql by default), a 200 with the
                       first reauth code in the body; a new token reads on. Its tokens announce an hour of life (only
                       the kill ends one) and its pages hold at most TOKEN_EXPIRY_PAGE records (a token dies with
                       pages still to read).
  shared_endpoint      (two or more streams on one endpoint) served as the default, judged per stream.
Errors inside a 200 take the spec's body_errors (SourceSpec.body_errors; BODY_ERRORS_DEFAULTS for graphql without
one): the error object is {"message"} with the code at code_path (and the retry_after at retry_after_path), or the
bare code when code_path is ''; at errors_path a list of it when that path ends in "errors" (with "data": null:
{"errors": [{"message", "extensions": {"code"}}], "data": null}), else the object itself ({"error": {"code",
"message"}}); with ok_path the flag false beside it ({"ok": false, "error": "..."}).

Recorded responses (start(spec, recorded=FOLDER)): pages the agent saved from the real API, served instead of the
generated records, in the same pattern and with the same auth and faults (the cases that are faults, not the ones
that shape pages). FOLDER/<stream name>/page-001.json, page-002.json, ... (or the page files directly in FOLDER when
the spec has one stream), each the whole JSON body of one response, in the order the API gave them. The n-th page
answers the n-th request of the chain: A, E and F map each page's next cursor (F: the connection's
pageInfo.endCursor) to the page after it; B rewrites each next URL to the mock (its query kept, plus `forge_page`); C
maps each offset to the page starting there; D serves page-001. The last page's cursor or next URL, when it has one,
leads to an empty page ending the chain. Recorded pages are not filtered by the incremental parameter. The ground
truth is the records of all pages, in order (F: the edges' nodes, or the edges with land "edge").

report() (also GET /_report), report(case) (also GET /_case/{case}/_report) answer:
  {"case" (a case's report only), "mode" ("case" for a case), "url", "token_url", "credentials", "recorded",
   "unauthorized": n (401s of stream requests, and in-body reauth answers), "early_retries": n, "token_requests": n,
   "token_refused": n, "tokens_issued": n,
   "streams": {name: {"path", "pattern", "id_field", "cursor_field", "requests", "pages_served", "records_served",
                      "early_retries", "unauthorized", "faults": [{"status", "page", "fault" (cases)}], "ended": bool,
                      "capped": n, "params": {"query": [names], "body": [names]},
                      "ids": [...], "records": [full records, as the source lands them],
                      "served_ids": [ids of every record answered in a 200 page, in order, repeats kept],
                      "pages_repeated": [page indexes answered 200 more than once],
                      "fault_lifted": bool (error_in_200, outage: whether the faulty page was ever served)}},
   "requests": [{"method", "path", "stream" (null: the token endpoint or no stream's path), "query": {name: value},
                 "body": JSON or null, "auth_header": bool,
                 "status", "page", "early": bool, "at": seconds since start (or reset), "reason", "fault" (cases)}]}
"ended" says a request got the chain's last page (A, B, E, F: the one saying there is no more; C: the one reaching
the last record; D: its one page). "reason" says why a request was refused (4xx, 410, a mock error's 500, an
in-body reauth). "page" is the page's index from 0.

Between runs: reset() makes counters, logs, tokens and faults of every case new (same records); touch(stream, n) sets
n records' cursor_field to now and returns their ids: what an incremental run after it must bring, and only these.

Run it by hand: `python mock_api.py SPEC.json [--port N] [--clean] [--recorded DIR] [--case NAME]` (prints the
base_url, of the case when named) or `bizon-forge mock-api`. Stdlib only and Python 3.9+ (with its sibling modules
api_pages, api_cases and api_auth): validate_source may run it in the workspace's interpreter.
"""

from __future__ import annotations

import argparse
import copy
import json
import socket
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, cast
from urllib.parse import parse_qs, urlparse

try:
    from . import api_auth, api_cases, api_pages
    from .api_pages import Dotted, Refusal, get, iso, leaves, parse_time, put
except ImportError:  # run as a script (`python mock_api.py SPEC.json`), or imported from this folder
    import api_auth  # type: ignore[no-redef]
    import api_cases  # type: ignore[no-redef]
    import api_pages  # type: ignore[no-redef]
    from api_pages import Dotted, Refusal, get, iso, leaves, parse_time, put  # type: ignore[no-redef]

RECORDS_PER_STREAM = 23  # with page_size 5: four full pages, a short one, then the empty one
RETRY_AFTER_S = 1
TOKEN_GRACE_S = api_auth.TOKEN_GRACE_S
REQUEST_CAP_FACTOR = 4  # requests per stream, per page it has, before the mock answers 410 (never-ending pagination)
TOKEN_PATH = "/oauth/token"
CASE_PREFIX = "/_case/"
MODE_HEADER = "X-Forge-Mock-Mode"
PATTERNS = ("cursor", "next_url", "offset", "none", "post_query", "graphql")
CASES = api_cases.CASES
CREDENTIALS = {
    "api_key": "forge-mock-key-7f3a",
    "token": "forge-mock-token-91c2",
    "username": "forge-mock-user",
    "password": "forge-mock-password",
    "client_id": "forge-mock-client",
    "client_secret": "forge-mock-client-secret",
    "refresh_token": "forge-mock-refresh-token",
}
# SourceSpec's defaults (bizon_forge/spec/source.py), for a spec dict written by hand; a test keeps them equal.
PAGINATION_DEFAULTS: dict[str, Any] = {
    "pattern": "none",
    "page_size": 100,
    "page_size_param": "limit",
    "cursor_param": "cursor",
    "next_cursor_path": "next_cursor",
    "has_more_path": None,
    "next_url_path": "next",
    "offset_param": "offset",
    "total_path": None,
}
GRAPHQL_DEFAULTS = {"page_size_param": "variables.first", "cursor_param": "variables.after"}
STREAM_DEFAULTS: dict[str, Any] = {
    "records_path": "data",
    "id_field": "id",
    "cursor_field": None,
    "updated_after_param": None,
    "body": {},
    "connection_path": None,
    "land": "node",
}
SPEC_DEFAULTS: dict[str, Any] = {
    "auth": "none",
    "api_key_header": "Authorization",
    "api_key_prefix": "",
    "token_url": None,
    "scopes": [],
    "body_errors": None,
}
BODY_ERRORS_DEFAULTS = api_cases.BODY_ERRORS_DEFAULTS
EPOCH = datetime(2024, 1, 3, 8, 0, tzinfo=timezone(timedelta(0)))
NAMES = ["Zoë Ångström", "Łukasz Żółć", "東京 タワー", "José Núñez", "Ольга", "Ærøskøbing 🚲"]
END = api_pages.END
# the names the tests and older callers know
_get, _put, _parse_time, _iso, _Refusal = get, put, parse_time, iso, Refusal


def make_records(stream: dict, count: int = RECORDS_PER_STREAM) -> list[dict]:
    """The stream's records: deterministic, ids unique across the stream, every JSON type, one null."""
    records = []
    for n in range(1, count + 1):
        record: dict[str, Any] = {
            "name": f"{NAMES[n % len(NAMES)]} #{n}",
            "rank": n,
            "score": round(n * 1.25, 2),
            "active": n % 3 != 0,
            "tags": ["alpha", "βeta"][: n % 3],
            "address": {"city": "Besançon" if n % 2 else "Kraków", "geo": {"lat": 47.24 + n / 100, "lon": 6.02}},
            "archived_at": None,
            "lines": [{"sku": f"SKU-{n}-{k}", "qty": k} for k in range(n % 4)],
            "note": 'quotes " and \\ backslash,\nnew line, tab\t' if n % 5 == 0 else "",
        }
        put(record, stream["id_field"], f"{stream['name']}-{n:04d}")
        if stream["cursor_field"]:
            # spread over two years, out of id order (APIs list by id, not by update time)
            put(record, stream["cursor_field"], iso(EPOCH + timedelta(hours=(n * 7919) % (count * 761))))
        records.append(record)
    return records


def normalized(spec: dict) -> dict:
    """The spec dict with SourceSpec's defaults filled in (a dumped SourceSpec is left as it is)."""
    spec = {**SPEC_DEFAULTS, **copy.deepcopy(spec)}
    streams = []
    for raw in spec.get("streams") or []:
        stream = {**STREAM_DEFAULTS, **raw}
        given = raw.get("pagination") or {}
        graphql = GRAPHQL_DEFAULTS if given.get("pattern") == "graphql" else {}
        stream["pagination"] = {**PAGINATION_DEFAULTS, **graphql, **given}
        streams.append(stream)
    spec["streams"] = streams
    return spec


def cases_for(spec: dict, recorded: bool = False) -> list[str]:
    """The names of the cases that apply to a spec (a SourceSpec as a JSON dict), in CASES' order; recorded: served
    over recorded pages (the faults only)."""
    return api_cases.cases_for(normalized(spec), recorded)


def _inside_node(path: str | None, spec: dict) -> str | None:
    """graphql landing edges: id_field and cursor_field are paths in the edge ("node.id"); the node holds "id"."""
    if path and spec["pagination"]["pattern"] == "graphql" and spec["land"] == "edge" and path.startswith("node."):
        return path[len("node.") :]
    return path


class _Stream:
    """One stream's state in one case: its records (or recorded pages, both shared by the cases), counters and
    faults."""

    def __init__(self, spec: dict, base_path: str, records: list[dict], pages: list[Any] | None):
        self.spec = spec
        self.name: str = spec["name"]
        self.pattern: str = spec["pagination"]["pattern"]
        self.pagination: dict = dict(spec["pagination"])
        path, _, fixed = spec["endpoint"].partition("?")
        self.path = base_path + "/" + path.strip("/")
        self.fixed_query = {k: v[-1] for k, v in parse_qs(fixed, keep_blank_values=True).items()}
        self.method = "POST" if self.pattern in api_pages.BODY_PATTERNS else "GET"
        self.records_path: str = spec["records_path"]
        self.connection_path: str = spec["connection_path"] or ""
        if self.pattern == "graphql":  # derived from the connection (the spec's records_path does not apply)
            self.records_path = f"{self.connection_path}.edges"
            self.pagination["next_cursor_path"] = f"{self.connection_path}.pageInfo.endCursor"
            self.pagination["has_more_path"] = f"{self.connection_path}.pageInfo.hasNextPage"
        self.id_path = cast(str, _inside_node(spec["id_field"], spec))
        self.cursor_path = _inside_node(spec["cursor_field"], spec)
        dynamic = {self.pagination["page_size_param"], self.pagination["cursor_param"], spec["updated_after_param"]}
        self.constant = {k: v for k, v in leaves(spec["body"] or {}).items() if k not in dynamic}
        self.dynamic = dynamic
        self.records = records
        self.pages = pages  # recorded mode: the saved bodies, in order
        self.relative_next = False
        self.link_path = self.path  # where links to its pages point (under a case's prefix)
        self.fault_plan: dict[int, list[str]] = {}
        self.clear()

    def clear(self) -> None:
        self.requests = self.pages_served = self.records_served = self.early_retries = self.unauthorized = 0
        self.ended, self.not_before, self.capped = False, 0.0, 0  # capped: requests answered 410, past the cap
        self.faults: list[dict] = []
        self.params: dict[str, set[str]] = {"query": set(), "body": set()}
        self.served_ids: list[Any] = []
        self.page_counts: dict[Any, list[int]] = {}  # page key -> [index, times served]
        self.token_killed = False

    @property
    def page_size(self) -> int:
        return max(1, int(self.pagination["page_size"]))

    def record_pages(self) -> int:
        if self.pages is not None:
            return len(self.pages)
        return 1 if self.pattern == "none" else max(1, -(-len(self.records) // self.page_size))

    def page_count(self) -> int:
        if self.pages is not None or self.pattern == "none":
            return self.record_pages()
        return self.record_pages() + (1 if self.pattern in api_pages.EMPTY_LAST else 0)

    def cap(self, request_cap: int | None) -> int | None:
        if request_cap == 0:
            return REQUEST_CAP_FACTOR * (self.page_count() + 2) + 20
        return request_cap

    def matches(self, query: dict, body: Any) -> bool:
        """Whether a request on this stream's endpoint is this stream's (several streams may share one)."""
        if self.method == "GET":
            return all(query.get(k) == v for k, v in self.fixed_query.items())
        sent = {k: v for k, v in leaves(body if isinstance(body, dict) else {}).items() if k not in self.dynamic}
        return sent == self.constant

    def landed(self) -> list:
        return api_pages.landed(self, self.records)

    def report(self, case: str | None) -> dict:
        records = self.landed()
        report = {
            "path": self.path,
            "pattern": self.pattern,
            "id_field": self.spec["id_field"],
            "cursor_field": self.spec["cursor_field"],
            "requests": self.requests,
            "pages_served": self.pages_served,
            "records_served": self.records_served,
            "early_retries": self.early_retries,
            "unauthorized": self.unauthorized,
            "faults": list(self.faults),
            "ended": self.ended,
            "capped": self.capped,
            "params": {where: sorted(names) for where, names in self.params.items()},
            "ids": [get(r, self.spec["id_field"]) for r in records],
            "records": copy.deepcopy(records),
            "served_ids": list(self.served_ids),
            "pages_repeated": sorted(index for index, times in self.page_counts.values() if times > 1),
        }
        if case in api_cases.MUST_FAIL:
            fault_pages = set(self.fault_plan)
            report["fault_lifted"] = any(i in fault_pages for i, _ in self.page_counts.values())
        return report


class _Reply(NamedTuple):
    status: int
    body: Any
    headers: dict = {}
    kind: str = "json"  # "html": body is the text; "cut": the JSON body is cut halfway, the connection closed


class _Case:
    """The API as one case serves it (case None: the default, unprefixed), with its own streams' counters, tokens
    and log; the records are shared by every case."""

    def __init__(self, api: MockApi, case: str | None, records: dict[str, list], pages: dict[str, Any]):
        self.api, self.case = api, case
        self.prefix = f"{CASE_PREFIX}{case}" if case else ""
        self.errors = api_cases.body_errors(api.spec)
        self.streams: dict[str, _Stream] = {}
        for spec in api.spec["streams"]:
            stream = _Stream(spec, api.base_path, records[spec["name"]], pages.get(spec["name"]))
            stream.relative_next = api.relative_next
            stream.link_path = self.prefix + stream.path
            self.streams[stream.name] = stream
        self.clear()

    def clear(self) -> None:
        self.started = time.monotonic()
        self.log: list[dict] = []
        self.unauthorized = self.token_requests = self.token_refused = 0
        self.tokens: dict[str, float] = {}  # access token -> when it expires (monotonic)
        for s in self.streams.values():
            s.clear()
            s.fault_plan = api_cases.fault_plan(self.case, s.page_count(), s.record_pages())

    @property
    def url(self) -> str:
        return self.api.origin + self.prefix + self.api.base_path

    @property
    def token_url(self) -> str:
        return self.api.origin + self.prefix + TOKEN_PATH

    def report(self) -> dict:
        report: dict[str, Any] = {"case": self.case} if self.case else {}
        report.update(
            {
                "mode": self.api.mode if self.case is None else "case",
                "url": self.url,
                "token_url": self.token_url,
                "credentials": dict(self.api.credentials),
                "recorded": self.api.recorded,
                "unauthorized": self.unauthorized,
                "early_retries": sum(s.early_retries for s in self.streams.values()),
                "token_requests": self.token_requests,
                "token_refused": self.token_refused,
                "tokens_issued": len(self.tokens),
                "streams": {name: s.report(self.case) for name, s in self.streams.items()},
                "requests": copy.deepcopy(self.log),
            }
        )
        return report

    # serving

    def route(self, path: str, query: dict, body: Any) -> _Stream | None:
        """The stream a request is for: the one at its path, or of several there the one the request matches."""
        here = [s for s in self.streams.values() if s.path == path.rstrip("/")]
        if len(here) <= 1:
            return here[0] if here else None
        here.sort(key=lambda s: -len(s.fixed_query))  # the most specific query first
        found = next((s for s in here if s.matches(query, body)), None)
        if found is None:
            names = ", ".join(s.name for s in here)
            raise Refusal(400, f"{len(here)} streams share {path} ({names}): this request matches none of them")
        return found

    def dispatch(self, command: str, path: str, headers: Any, query: dict, body: Any, entry: dict) -> _Reply:
        if path == TOKEN_PATH and command == "POST":
            return _Reply(200, self.issue_token(body if isinstance(body, dict) else {}, headers))
        stream = self.route(path, query, body)
        if stream is None:
            raise Refusal(404, f"no stream at {path}")
        entry["stream"] = stream.name
        if command != stream.method:
            return _Reply(405, {"error": f"{stream.path} takes {stream.method}"}, {"Allow": stream.method})
        return self.stream_request(stream, headers, query, body, entry)

    def issue_token(self, form: dict, headers: Any) -> dict:
        self.token_requests += 1
        try:
            scope = api_auth.grant(self.api.spec, self.api.credentials, {k: str(v) for k, v in form.items()}, headers)
        except Refusal:
            self.token_refused += 1
            raise
        token = f"forge-access-{len(self.tokens) + 1}-{int(time.time() * 1000) % 100000}"
        ttl = api_cases.TOKEN_EXPIRY_TTL_S if self.case == "token_expiry" else self.api.token_ttl
        self.tokens[token] = time.monotonic() + ttl
        answer = {"access_token": token, "expires_in": ttl, "token_type": "Bearer"}
        return {**answer, "scope": scope} if scope else answer

    def stream_request(self, stream: _Stream, headers: Any, query: dict, body: Any, entry: dict) -> _Reply:
        now = self._count(stream, query, body, entry)
        refused = self._authorize(stream, headers, entry)
        if refused is not None:
            return refused
        source = Dotted(body if isinstance(body, dict) else {}) if stream.method == "POST" else query
        if stream.pages is not None:
            api_pages.page_size_asked(stream, source, None)  # a bad page size is refused, recorded or not
            page = api_pages.serve_recorded(stream, source, self.api.origin)
        else:
            shape = api_cases.shape(self.case, stream.page_size)
            cap = min(c for c in (shape.size_cap, self.api.page_size_cap, stream.page_size) if c)
            page = api_pages.serve_records(stream, source, self.api.origin, shape._replace(size_cap=cap))
        fault = self._fault(stream, page.index, headers)
        if fault:
            return self._fault_reply(fault, stream, page, headers, entry, now)
        entry.update(status=200, page=page.index)
        self._served(stream, page, headers)
        return _Reply(200, page.answer)

    def _count(self, stream: _Stream, query: dict, body: Any, entry: dict) -> float:
        stream.requests += 1
        stream.params["query"].update(query)
        if isinstance(body, dict):
            stream.params["body"].update(body)
        now = time.monotonic()
        if now < stream.not_before:
            stream.early_retries += 1
            entry["early"] = True
        stream.not_before = 0.0
        cap = stream.cap(self.api.request_cap)
        if cap is not None and stream.requests > cap:
            stream.capped += 1
            raise Refusal(410, f"over {cap} requests: the pagination never ends")
        return now

    def _authorize(self, stream: _Stream, headers: Any, entry: dict) -> _Reply | None:
        """None when the credentials are good; token_expiry with reauth codes answers an expired token in the body."""
        try:
            api_auth.check(self.api.spec, self.api.credentials, self.tokens, headers)
            return None
        except Refusal as refusal:
            if refusal.status != 401:
                raise
            self.unauthorized += 1
            stream.unauthorized += 1
            errors = self.errors
            if self.case == "token_expiry" and errors and errors["reauth_codes"] and "expired" in str(refusal):
                entry.update(reason=f"{refusal} (answered in the body)")
                return _Reply(200, api_cases.error_body(errors, errors["reauth_codes"][0], str(refusal)))
            raise

    def _fault(self, stream: _Stream, index: int, headers: Any) -> str | None:
        mode = (headers.get(MODE_HEADER) or self.api.mode).strip().lower() if self.case is None else "case"
        planned = stream.fault_plan.get(index) if mode != "clean" else None
        if not planned:
            return None
        return planned[0] if planned[0] in api_cases.PERSISTENT else planned.pop(0)

    def _fault_reply(self, fault: str, stream: _Stream, page: Any, headers: Any, entry: dict, now: float) -> _Reply:
        reply = self._faulty(fault, page)
        stream.faults.append({"status": reply.status, "page": page.index, **({"fault": fault} if self.case else {})})
        entry.update(status=reply.status, page=page.index, **({"fault": fault} if self.case else {}))
        self._keep_token_for_retry(headers, now)
        if fault in ("429", "throttled_200"):
            stream.not_before = now + RETRY_AFTER_S - 0.05
        return reply

    def _faulty(self, fault: str, page: Any) -> _Reply:
        errors = self.errors or BODY_ERRORS_DEFAULTS
        if fault == "429":
            return _Reply(429, {"error": "rate limited"}, {"Retry-After": str(RETRY_AFTER_S)})
        if fault in ("502_html", "504_html"):
            status = int(fault[:3])
            return _Reply(status, api_cases.html(status), kind="html")
        if fault == "dropped":
            return _Reply(200, page.answer, kind="cut")
        if fault == "outage_503":
            return _Reply(503, {"error": "service unavailable"}, {"Retry-After": "0"})
        if fault == "error_200":
            return _Reply(200, api_cases.error_body(errors, api_cases.failed_code(errors), "the query failed"))
        if fault == "throttled_200":
            code = errors["retryable_codes"][0]
            body = api_cases.error_body(errors, code, "throttled: retry later", retry_after=RETRY_AFTER_S)
            in_body = errors["code_path"] and errors["retry_after_path"]  # else the wait goes in the header
            return _Reply(200, body, {} if in_body else {"Retry-After": str(RETRY_AFTER_S)})
        return _Reply(503, {"error": "service unavailable"})

    def _served(self, stream: _Stream, page: Any, headers: Any) -> None:
        stream.pages_served += 1
        stream.records_served += len(page.records)
        stream.ended = stream.ended or page.ended
        stream.served_ids.extend(get(r, stream.spec["id_field"]) for r in api_pages.landed(stream, page.records))
        counted = stream.page_counts.setdefault(page.key, [page.index, 0])
        counted[1] += 1
        if self.case == "token_expiry" and page.index >= 1 and not stream.token_killed:
            stream.token_killed = True  # the token that read page 2 dies now: the next request gets 401
            token = (headers.get("Authorization") or "").partition(" ")[2].strip()
            if token in self.tokens:
                self.tokens[token] = -1e9

    def _keep_token_for_retry(self, headers: Any, now: float) -> None:
        """A request refused by a fault was sent with a live token: its retries (after Retry-After or a backoff) may
        carry the same one, so it lives long enough for them."""
        if self.api.spec["auth"] in api_auth.TOKEN_AUTHS:
            token = (headers.get("Authorization") or "").partition(" ")[2].strip()
            if token in self.tokens and self.tokens[token] > 0:
                self.tokens[token] = max(self.tokens[token], now + RETRY_AFTER_S + 3)


class MockApi:
    """A SourceSpec served on 127.0.0.1 in a thread. `url` replaces the spec's base_url; each case of `cases` is
    served beside it at `case_url(case)`."""

    def __init__(  # noqa: PLR0913 - the mock's options, keyword-only and each documented (start())
        self,
        spec: dict,
        *,
        mode: str = "unreliable",
        recorded: str | Path | None = None,
        port: int = 0,
        records_per_stream: int = RECORDS_PER_STREAM,
        token_ttl: int = 2,
        credentials: dict | None = None,
        page_size_cap: int | None = None,
        relative_next: bool = False,
        request_cap: int | None = 0,
    ):
        if mode not in ("unreliable", "clean"):
            raise ValueError(f"mode is 'unreliable' or 'clean', not {mode!r}")
        self.spec = normalized(spec)
        self.mode = mode
        self.recorded = str(recorded) if recorded is not None else None
        self.token_ttl = token_ttl
        self.credentials = {**CREDENTIALS, **(credentials or {})}
        self.base_path = urlparse(self.spec.get("base_url") or "").path.rstrip("/")
        self.lock = threading.Lock()
        self.page_size_cap = page_size_cap
        self.relative_next = relative_next
        self.request_cap = request_cap
        records, pages = self._records(records_per_stream)
        self.cases: dict[str, _Case] = {"": _Case(self, None, records, pages)}
        for case in api_cases.cases_for(self.spec, recorded=self.recorded is not None):
            self.cases[case] = _Case(self, case, records, pages)
        self.server = _Server(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.01,), daemon=True, name="bizon-forge-mock-api"
        )  # a short poll: close() returns at once
        self.thread.start()

    def _records(self, count: int) -> tuple[dict[str, list], dict[str, Any]]:
        records: dict[str, list] = {}
        pages: dict[str, Any] = {}
        for stream in self.spec["streams"]:
            _check_stream(stream)
            name = stream["name"]
            if self.recorded is None:
                records[name] = make_records(
                    {
                        **stream,
                        "id_field": _inside_node(stream["id_field"], stream),
                        "cursor_field": _inside_node(stream["cursor_field"], stream),
                    },
                    count,
                )
                continue
            pages[name] = self._recorded_pages(name)
            shape = _Stream(stream, self.base_path, [], pages[name])
            found = [r for page in pages[name] for r in (api_pages.records_of(page, shape.records_path) or [])]
            node = stream["pagination"]["pattern"] == "graphql" and stream["land"] != "edge"
            records[name] = [e.get("node") for e in found if isinstance(e, dict)] if node else found
        return records, pages

    def _recorded_pages(self, name: str) -> list[Any]:
        folder = Path(cast(str, self.recorded))
        files = sorted((folder / name).glob("page-*.json"))
        if not files and len(self.spec["streams"]) == 1:
            files = sorted(folder.glob("page-*.json"))
        if not files:
            raise ValueError(f"no recorded pages for stream {name}: expected {folder / name}/page-001.json, ...")
        return [json.loads(f.read_text(encoding="utf-8")) for f in files]

    # what the checks use

    @property
    def origin(self) -> str:
        host, port = cast(tuple, self.server.server_address)[:2]  # an AF_INET server
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The base_url to configure the source with."""
        return self.cases[""].url

    @property
    def token_url(self) -> str:
        """oauth, client_credentials: the token endpoint."""
        return self.cases[""].token_url

    @property
    def streams(self) -> dict[str, _Stream]:
        """The default's streams."""
        return self.cases[""].streams

    def case_url(self, case: str) -> str:
        """The base_url that serves `case` (one of cases_for())."""
        return self._case(case).url

    def case_token_url(self, case: str) -> str:
        return self._case(case).token_url

    def cases_for(self, spec: dict | None = None) -> list[str]:
        """The cases served (that apply to this mock's spec), or that would apply to another spec."""
        if spec is None:
            return [c for c in self.cases if c]
        return cases_for(spec, recorded=self.recorded is not None)

    def _case(self, case: str | None) -> _Case:
        if case not in self.cases:
            raise KeyError(f"case {case!r} is not served here; these are: {', '.join(c for c in self.cases if c)}")
        return self.cases[case or ""]

    def touch(self, stream: str, count: int = 3) -> list[Any]:
        """Change `count` records of a stream now (their cursor_field set to now), in every case: what an
        incremental run after this must bring, and only these. Returns their ids."""
        with self.lock:
            s = self.streams[stream]
            if not s.cursor_path:
                raise ValueError(f"stream {stream} has no cursor_field")
            now = datetime.now(timezone(timedelta(0)))
            touched = s.records[1 : 1 + 2 * count : 2]
            for record in touched:
                put(record, s.cursor_path, iso(now))
            return [get(r, s.id_path) for r in touched]

    def reset(self) -> None:
        """Counters, log and faults of every case as new (for a second run against the same records)."""
        with self.lock:
            for served in self.cases.values():
                served.clear()

    def report(self, case: str | None = None) -> dict:
        """The ground truth and what happened: of the default (unprefixed) API, or of a case."""
        with self.lock:
            return self._case(case or "").report()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> MockApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def served(self, path: str) -> tuple[_Case | None, str]:
        """The case a request path is for, and the path under it (None: an unknown case)."""
        if not path.startswith(CASE_PREFIX):
            return self.cases[""], path
        name, _, rest = path[len(CASE_PREFIX) :].partition("/")
        return self.cases.get(name) if name else None, "/" + rest


def _check_stream(stream: dict) -> None:
    pattern = stream["pagination"]["pattern"]
    if pattern not in PATTERNS:
        raise ValueError(f"stream {stream['name']}: unknown pagination pattern {pattern!r}")
    if pattern == "graphql" and not stream["connection_path"]:
        raise ValueError(f"stream {stream['name']}: graphql needs connection_path (e.g. data.contacts)")
    if not stream["records_path"] and (
        pattern in ("cursor", "next_url", "post_query") or (pattern == "offset" and stream["pagination"]["total_path"])
    ):
        raise ValueError(
            f"stream {stream['name']}: the body is the array (records_path '') and pattern {pattern} "
            "needs a cursor, next URL or total in the body"
        )


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-answer is its business


class _Handler(BaseHTTPRequestHandler):
    api: MockApi  # set by _handler()

    disable_nagle_algorithm = True  # headers and body leave together, not 40 ms apart (delayed ACK)
    wbufsize = 1 << 16

    def log_message(self, *args: Any) -> None:  # the source's logs are what matters, not ours
        pass

    def _answer(self, reply: _Reply) -> None:
        if reply.kind == "html":
            data, kind = str(reply.body).encode("utf-8"), "text/html"
        else:
            data, kind = json.dumps(reply.body, ensure_ascii=False).encode("utf-8"), "application/json"
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if reply.kind != "cut":
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])  # the promised length never comes: the connection drops
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_WR)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not raw:
            return None
        if "form-urlencoded" in (self.headers.get("Content-Type") or ""):
            return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def do_GET(self) -> None:
        self._route(None)

    def do_POST(self) -> None:
        self._route(self._body())

    def _route(self, body: Any) -> None:
        url = urlparse(self.path)
        served, path = self.api.served(url.path)
        if path == "/_report" and self.command == "GET" and served is not None:
            self._answer(_Reply(200, self.api.report(served.case)))
            return
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        entry: dict[str, Any] = {
            "method": self.command,
            "path": url.path,
            "stream": None,
            "query": query,
            "body": body,
            "auth_header": bool(self.headers.get("Authorization"))
            or (self.api.spec["auth"] == "api_key" and bool(self.headers.get(self.api.spec["api_key_header"]))),
            "early": False,
        }
        with self.api.lock:
            reply = self._dispatch(served, path, query, body, entry)
        self._answer(reply)

    def _dispatch(self, served: _Case | None, path: str, query: dict, body: Any, entry: dict) -> _Reply:
        if served is None:
            entry.update(status=404, page=None, reason=f"no case at {entry['path']}")
            return _Reply(404, {"error": entry["reason"]})
        entry["at"] = round(time.monotonic() - served.started, 3)
        served.log.append(entry)
        try:
            reply = served.dispatch(self.command, path, self.headers, query, body, entry)
        except Refusal as refusal:
            reply = _Reply(refusal.status, {"error": str(refusal)})
            entry.update(reason=str(refusal))
        except Exception as error:  # a bug of the mock: said in the report, not a dropped connection
            reply = _Reply(500, {"error": f"mock API error: {error!r}"})
            entry.update(reason=reply.body["error"])
        entry.setdefault("status", reply.status)
        entry.setdefault("page", None)
        return reply


def _handler(api: MockApi) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"api": api})


def start(spec: dict, **options: Any) -> MockApi:
    """Serve `spec` (a SourceSpec as a JSON dict) on 127.0.0.1:`port` (0: a free one) in a thread, with every case
    that applies to it beside the default.

    mode: "unreliable" (a 429 and a 503 per stream) or "clean", of the default only. recorded: a folder of saved pages
    (module doc). token_ttl: access tokens' life in seconds. page_size_cap: serve at most this many records a page,
    whatever was asked (an API that clamps: a C source stepping by page_size skips records). relative_next: B's next
    links relative ("/v2/users?page_token=..."), as some APIs give them. request_cap: requests per stream before every
    answer is 410 (a pagination that never ends stops here); 0: REQUEST_CAP_FACTOR x (pages + 2) + 20; None: none.
    """
    return MockApi(spec, **options)


def serve_forever(
    spec_file: str, port: int = 0, mode: str = "unreliable", recorded: str | None = None, case: str | None = None
) -> int:
    """Serve a spec file's mock in the foreground, for running a source's check config by hand; prints the base_url
    (of `case` when given)."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    api = start(spec, mode=mode, recorded=recorded, port=port)
    try:
        url, token_url = api.case_url(case) if case else api.url, api.case_token_url(case) if case else api.token_url
    except KeyError as error:
        api.close()
        print(error.args[0], file=sys.stderr)
        return 2
    print(url, flush=True)
    print(
        f"mock API of {spec.get('name', '?')} ({api.spec['auth']} auth, {case or mode}); report at "
        f"{url.rsplit(api.base_path, 1)[0] if api.base_path else url}/_report; cases {', '.join(api.cases_for())}; "
        f"credentials {json.dumps(api.credentials)}; token endpoint {token_url}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        api.thread.join()
    except KeyboardInterrupt:
        api.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a source spec as a local mock API (prints its URL).")
    parser.add_argument("spec", help="the SourceSpec as a JSON file")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--clean", action="store_true", help="no 429/503 on the way")
    parser.add_argument("--recorded", help="serve the JSON pages saved in this folder")
    parser.add_argument("--case", help=f"print the base_url of this misbehaviour case ({', '.join(CASES)})")
    args = parser.parse_args(argv)
    return serve_forever(args.spec, args.port, "clean" if args.clean else "unreliable", args.recorded, args.case)


if __name__ == "__main__":
    sys.exit(main())
