"""A local mock of the HTTP API a source extracts from, served from the source's spec (SourceSpec as a JSON dict), so
a generated source is proven without the real API: validate_source points the source's check config at `.url`,
runs it, and compares what came out with `report()`, the ground truth.

Per stream it holds RECORDS_PER_STREAM deterministic records (unique ids, non-ASCII text, nested objects, a null,
the stream's cursor_field as ISO timestamps spread over two years) and serves them at the stream's endpoint under
base_url's path, in the stream's pagination pattern:
  A cursor     GET; `cursor_param` (an opaque cursor) and `page_size_param` in the query; the next cursor at
               next_cursor_path (null at the end), has_more at has_more_path when the spec names one.
  B next_url   GET; the next page's absolute URL (its cursor in `page_token`, the page size and the incremental
               filter kept) at next_url_path, null at the end; relative with start(relative_next=True).
  C offset     GET; `offset_param` and `page_size_param` in the query; the total at total_path when named.
  D none       GET; one response with every record.
  E post_query POST; `cursor_param` and `page_size_param` in the JSON body; answers as A.
Records sit at records_path ('' only for C without total_path, and D; else start() raises ValueError). A, B and E
end with an empty page: the page holding the last records still carries a cursor, the one after it holds none and
no cursor. A page holds min(the page size asked for, the spec's page_size, start()'s page_size_cap) records. A
cursor (A, E) and a next URL (B) carry the incremental filter of the request that began the chain; C filters each
request by its own parameters.

Auth (spec.auth), checked on every stream request; anything else gets 401 (counted, with its reason):
  api_key  exactly `api_key_prefix KEY` (or the bare KEY when the prefix is '') in the spec's api_key_header; the
           key elsewhere (another header, the query) is no key, another prefix a wrong one.
  bearer   `Authorization: Bearer <token>`;  basic `Authorization: Basic base64(username:password)`.
  oauth    POST `token_url` (form or JSON: grant_type=refresh_token, client_id, client_secret, refresh_token, as
           bizon's Oauth2Authenticator sends) issues an access token living `token_ttl` seconds (`expires_in`);
           streams take `Authorization: Bearer <access token>` while it lives (plus TOKEN_GRACE_S for the flight;
           a token sent with a request that got a fault lives on for that request's retries).
  The values are CREDENTIALS (or start()'s credentials=), and report()["credentials"] repeats them.

A stream answers 410 past its request cap (start()'s request_cap; by default REQUEST_CAP_FACTOR x (its pages + 2)
+ 20), so a pagination that never ends stops, counted in the report as "capped".

Faults (mode "unreliable", the default; "clean" has none; a request's `X-Forge-Mock-Mode: clean|unreliable` header
overrides start()'s mode): per stream, once per run, the second page answers 429 with `Retry-After: 1` and the
third 503 (a stream with fewer pages gets them on its last page, one after the other). A request to a stream sooner
than the Retry-After it was given counts as an early retry.

Recorded responses (start(spec, recorded=FOLDER)): pages the agent saved from the real API, served instead of the
generated records, in the same pattern and with the same auth and faults. FOLDER/<stream name>/page-001.json,
page-002.json, ... (or the page files directly in FOLDER when the spec has one stream), each the whole JSON body
of one response, in the order the API gave them. The n-th page answers the n-th request of the chain: A and E map
each page's next cursor to the page after it; B rewrites each next URL to the mock (its query kept, plus
`forge_page`); C maps each offset to the page starting there; D serves page-001. The last page's cursor or next URL,
when it has one, leads to an empty page ending the chain. Recorded pages are not filtered by the incremental
parameter. The ground truth is the records of all pages, in order.

report() (also GET /_report) answers:
  {"mode", "url", "token_url", "credentials", "recorded",
   "unauthorized": n (401s of stream requests), "early_retries": n, "token_requests": n, "token_refused": n,
   "tokens_issued": n,
   "streams": {name: {"path", "pattern", "id_field", "cursor_field", "requests", "pages_served", "records_served",
                      "early_retries", "unauthorized", "faults": [{"status", "page"}], "ended": bool, "capped": n,
                      "params": {"query": [names], "body": [names]},
                      "ids": [...], "records": [full records]}},
   "requests": [{"method", "path", "stream" (null: the token endpoint or no stream's path), "query": {name: value},
                 "body": JSON or null, "auth_header": bool,
                 "status", "page", "early": bool, "at": seconds since start (or reset), "reason"}]}
"ended" says a request got the chain's last page (A, B, E: the one without a cursor or next URL; C: the one reaching
the last record; D: its one page). "reason" says why a request was refused (4xx, 410, a mock error's 500).

Between runs: reset() makes counters, log and faults new (same records); touch(stream, n) sets n records'
cursor_field to now and returns their ids: what an incremental run after it must bring, and only these.

Run it by hand: `python mock_api.py SPEC.json [--port N] [--clean] [--recorded DIR]` or `bizon-forge mock-api`.
Stdlib only and Python 3.9+: validate_source may run it in the workspace's interpreter.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlparse

RECORDS_PER_STREAM = 23  # with page_size 5: four full pages, a short one, then the empty one
RETRY_AFTER_S = 1
TOKEN_GRACE_S = 0.5  # a token checked live by the client may land just after it expired
REQUEST_CAP_FACTOR = 4  # requests per stream, per page it has, before the mock answers 410 (never-ending pagination)
TOKEN_PATH = "/oauth/token"
MODE_HEADER = "X-Forge-Mock-Mode"
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
STREAM_DEFAULTS: dict[str, Any] = {
    "records_path": "data",
    "id_field": "id",
    "cursor_field": None,
    "updated_after_param": None,
}
EPOCH = datetime(2024, 1, 3, 8, 0, tzinfo=timezone(timedelta(0)))
NAMES = ["Zoë Ångström", "Łukasz Żółć", "東京 タワー", "José Núñez", "Ольга", "Ærøskøbing 🚲"]
END = "forge-end"  # the cursor a recorded chain's last page leads to


def _get(body: Any, path: str) -> Any:
    for key in path.split(".") if path else []:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


class _Dotted(dict):
    """A JSON body read by dotted keys: get("variables.after") is body["variables"]["after"]."""

    def get(self, key, default=None):
        value = _get(dict(self), key)
        return default if value is None else value

    def __getitem__(self, key):
        return self.get(key)


def _put(body: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[last] = value


def _parse_time(value: str) -> datetime:
    """ISO 8601 as APIs take it; a '+' a URL turned into a space is put back, a naive time is UTC."""
    text = value.strip()
    if len(text) > 10 and text[10] in " +":  # a space between date and time, or the '+' a URL made of it
        text = text[:10] + "T" + text[11:]
    text = text.replace(" ", "+").replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone(timedelta(0)))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


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
        _put(record, stream["id_field"], f"{stream['name']}-{n:04d}")
        if stream["cursor_field"]:
            # spread over two years, out of id order (APIs list by id, not by update time)
            _put(record, stream["cursor_field"], _iso(EPOCH + timedelta(hours=(n * 7919) % (count * 761))))
        records.append(record)
    return records


def normalized(spec: dict) -> dict:
    """The spec dict with SourceSpec's defaults filled in (a dumped SourceSpec is left as it is)."""
    spec = copy.deepcopy(spec)
    spec.setdefault("auth", "none")
    spec.setdefault("api_key_header", "Authorization")
    spec.setdefault("api_key_prefix", "")
    streams = []
    for raw in spec.get("streams") or []:
        stream = {**STREAM_DEFAULTS, **raw}
        stream["pagination"] = {**PAGINATION_DEFAULTS, **(raw.get("pagination") or {})}
        streams.append(stream)
    spec["streams"] = streams
    return spec


class _Stream:
    """One stream's state: its records (or recorded pages), counters and faults."""

    def __init__(self, spec: dict, path: str, records: list[dict], pages: list[Any] | None):
        self.spec = spec
        self.name: str = spec["name"]
        self.pagination: dict = spec["pagination"]
        self.pattern: str = self.pagination["pattern"]
        self.path = path
        self.records = records
        self.pages = pages  # recorded mode: the saved bodies, in order
        self.requests = 0
        self.pages_served = 0
        self.records_served = 0
        self.early_retries = 0
        self.unauthorized = 0
        self.ended = False
        self.capped = 0  # requests answered 410, past the cap
        self.faults: list[dict] = []
        self.fault_plan: dict[int, list[int]] = {}
        self.not_before = 0.0
        self.params: dict[str, set[str]] = {"query": set(), "body": set()}

    @property
    def page_size(self) -> int:
        return max(1, int(self.pagination["page_size"]))

    def page_count(self) -> int:
        if self.pages is not None:
            return len(self.pages)
        if self.pattern == "none":
            return 1
        full = -(-len(self.records) // self.page_size)
        return full + (1 if self.pattern in ("cursor", "next_url", "post_query") else 0)

    def cap(self, request_cap: int | None) -> int | None:
        if request_cap == 0:
            return REQUEST_CAP_FACTOR * (self.page_count() + 2) + 20
        return request_cap

    def plan_faults(self) -> None:
        last = max(0, self.page_count() - 1)
        plan: dict[int, list[int]] = {}
        for status, page in ((429, 1), (503, 2)):
            plan.setdefault(min(page, last), []).append(status)
        self.fault_plan = plan

    def report(self) -> dict:
        return {
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
            "ids": [_get(r, self.spec["id_field"]) for r in self.records],
            "records": copy.deepcopy(self.records),
        }


class _Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class MockApi:
    """A SourceSpec served on 127.0.0.1 in a thread. `url` replaces the spec's base_url."""

    def __init__(
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
        self.streams: dict[str, _Stream] = {}
        self.records_per_stream = records_per_stream
        self.page_size_cap = page_size_cap
        self.relative_next = relative_next
        self.request_cap = request_cap
        self.started = time.monotonic()
        self.log: list[dict] = []
        self.unauthorized = 0
        self.token_requests = self.token_refused = 0
        self.tokens: dict[str, float] = {}  # access token -> when it expires (monotonic)
        for stream_spec in self.spec["streams"]:
            self._add_stream(stream_spec)
        self.server = _Server(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.01,), daemon=True, name="bizon-forge-mock-api"
        )  # a short poll: close() returns at once
        self.thread.start()

    def _add_stream(self, stream_spec: dict) -> None:
        pattern = stream_spec["pagination"]["pattern"]
        if pattern not in ("cursor", "next_url", "offset", "none", "post_query"):
            raise ValueError(f"stream {stream_spec['name']}: unknown pagination pattern {pattern!r}")
        if not stream_spec["records_path"] and (
            pattern in ("cursor", "next_url", "post_query")
            or (pattern == "offset" and stream_spec["pagination"]["total_path"])
        ):
            raise ValueError(
                f"stream {stream_spec['name']}: the body is the array (records_path '') and pattern {pattern} "
                "needs a cursor, next URL or total in the body"
            )
        path = self.base_path + "/" + stream_spec["endpoint"].strip("/")
        pages = self._recorded_pages(stream_spec["name"]) if self.recorded is not None else None
        if pages is not None:
            records = [r for page in pages for r in (_records_of(page, stream_spec["records_path"]) or [])]
        else:
            records = make_records(stream_spec, self.records_per_stream)
        stream = _Stream(stream_spec, path, records, pages)
        stream.plan_faults()
        self.streams[stream.name] = stream

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
        return self.origin + self.base_path

    @property
    def token_url(self) -> str:
        """oauth: the token_refresh_endpoint."""
        return self.origin + TOKEN_PATH

    def touch(self, stream: str, count: int = 3) -> list[Any]:
        """Change `count` records of a stream now (their cursor_field set to now): what an incremental run after
        this must bring, and only these. Returns their ids."""
        with self.lock:
            s = self.streams[stream]
            if not s.spec["cursor_field"]:
                raise ValueError(f"stream {stream} has no cursor_field")
            now = datetime.now(timezone(timedelta(0)))
            touched = s.records[1 : 1 + 2 * count : 2]
            for record in touched:
                _put(record, s.spec["cursor_field"], _iso(now))
            return [_get(r, s.spec["id_field"]) for r in touched]

    def reset(self) -> None:
        """Counters, log and faults as new (for a second run against the same records)."""
        with self.lock:
            self.started = time.monotonic()
            self.log.clear()
            self.unauthorized = self.token_requests = self.token_refused = 0
            for s in self.streams.values():
                s.requests = s.pages_served = s.records_served = s.early_retries = s.unauthorized = 0
                s.ended, s.not_before, s.capped = False, 0.0, 0
                s.faults.clear()
                s.params = {"query": set(), "body": set()}
                s.plan_faults()

    def report(self) -> dict:
        with self.lock:
            return {
                "mode": self.mode,
                "url": self.url,
                "token_url": self.token_url,
                "credentials": dict(self.credentials),
                "recorded": self.recorded,
                "unauthorized": self.unauthorized,
                "early_retries": sum(s.early_retries for s in self.streams.values()),
                "token_requests": self.token_requests,
                "token_refused": self.token_refused,
                "tokens_issued": len(self.tokens),
                "streams": {name: s.report() for name, s in self.streams.items()},
                "requests": copy.deepcopy(self.log),
            }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> MockApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # serving

    def check_auth(self, headers: Any) -> None:
        kind, c = self.spec["auth"], self.credentials
        if kind == "none":
            return
        if kind == "api_key":
            value = (headers.get(self.spec["api_key_header"]) or "").strip()
            prefix = self.spec["api_key_prefix"]
            ok = value == (f"{prefix} {c['api_key']}" if prefix else c["api_key"])
            if not value:
                raise _Refusal(401, f"no API key in the {self.spec['api_key_header']} header")
            if not ok:
                raise _Refusal(401, "wrong API key")
            return
        value = (headers.get("Authorization") or "").strip()
        if not value:
            raise _Refusal(401, "no Authorization header")
        scheme, _, given = value.partition(" ")
        if kind == "bearer":
            if scheme.lower() != "bearer" or given != c["token"]:
                raise _Refusal(401, "wrong bearer token")
        elif kind == "basic":
            expected = base64.b64encode(f"{c['username']}:{c['password']}".encode()).decode()
            if scheme.lower() != "basic" or given != expected:
                raise _Refusal(401, "wrong basic credentials")
        elif kind == "oauth":
            expires = self.tokens.get(given) if scheme.lower() == "bearer" else None
            if expires is None:
                raise _Refusal(401, "not an access token this API issued")
            if time.monotonic() > expires + TOKEN_GRACE_S:
                raise _Refusal(401, "access token expired")
        else:
            raise _Refusal(500, f"unknown auth kind {kind!r}")

    def keep_token_for_retry(self, headers: Any, now: float) -> None:
        """A request refused by a fault was sent with a live token: its retries (after Retry-After or a backoff) may
        carry the same one, so it lives long enough for them."""
        if self.spec["auth"] == "oauth":
            token = (headers.get("Authorization") or "").partition(" ")[2].strip()
            if token in self.tokens:
                self.tokens[token] = max(self.tokens[token], now + RETRY_AFTER_S + 3)

    def issue_token(self, form: dict) -> dict:
        c = self.credentials
        self.token_requests += 1
        if form.get("grant_type") != "refresh_token":
            self.token_refused += 1
            raise _Refusal(400, "grant_type must be refresh_token")
        for key in ("client_id", "client_secret", "refresh_token"):
            if form.get(key) != c[key]:
                self.token_refused += 1
                raise _Refusal(401, f"wrong {key}")
        token = f"forge-access-{len(self.tokens) + 1}-{int(time.time() * 1000) % 100000}"
        self.tokens[token] = time.monotonic() + self.token_ttl
        return {"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"}

    def serve(self, stream: _Stream, query: dict, body: Any, origin: str) -> tuple[Any, int, int, bool]:
        """The page this request asks for, its index (for faults), its record count and whether it ends the chain;
        or a _Refusal."""
        p = stream.pagination
        pattern = stream.pattern
        source = body if pattern == "post_query" else query
        source = source if isinstance(source, dict) else {}
        # A POST query's keys are dotted paths into its JSON body ("variables.after"); a query string's are flat.
        if pattern == "post_query":
            source = _Dotted(source)
        asked = source.get(p["page_size_param"])
        try:
            size = min(stream.page_size, int(asked)) if asked not in (None, "") else stream.page_size
        except (TypeError, ValueError):
            raise _Refusal(400, f"{p['page_size_param']} must be an integer, not {asked!r}") from None
        size = max(1, min(size, self.page_size_cap or size))
        if stream.pages is not None:
            return self._serve_recorded(stream, source, origin)
        after = None
        param = stream.spec["updated_after_param"]
        if param and source.get(param) not in (None, ""):
            after = str(source[param])
        offset = 0
        if pattern in ("cursor", "post_query", "next_url"):
            token = source.get(p["cursor_param"] if pattern != "next_url" else "page_token")
            if token not in (None, ""):
                offset, carried = _decode_cursor(str(token), stream.name)
                after = after or carried
        elif pattern == "offset":
            raw = source.get(p["offset_param"], 0)
            try:
                offset = int(raw or 0)
            except (TypeError, ValueError):
                raise _Refusal(400, f"{p['offset_param']} must be an integer, not {raw!r}") from None
            if offset < 0:
                raise _Refusal(400, f"{p['offset_param']} must be >= 0")
        records = stream.records
        if after is not None and stream.spec["cursor_field"]:
            try:
                since = _parse_time(after)
            except ValueError:
                raise _Refusal(400, f"{param} is not an ISO 8601 time: {after!r}") from None
            records = [r for r in records if _parse_time(_get(r, stream.spec["cursor_field"])) > since]
        if pattern == "none":
            page = list(records)
            index = 0
        else:
            page = records[offset : offset + size]
            index = -(-offset // size)  # the empty page after a short one is a page of its own
        answer: Any
        if not stream.spec["records_path"]:
            answer = page
        else:
            answer = {}
            _put(answer, stream.spec["records_path"], page)
        more = bool(page) and pattern != "none"
        if pattern in ("cursor", "post_query"):
            _put(
                answer, p["next_cursor_path"], _encode_cursor(stream.name, offset + len(page), after) if more else None
            )
            if p["has_more_path"]:
                _put(answer, p["has_more_path"], more)
        elif pattern == "next_url":
            next_url = None
            if more:
                params = {
                    "page_token": _encode_cursor(stream.name, offset + len(page), after),
                    p["page_size_param"]: size,
                }
                if after is not None and param:
                    params[param] = after
                next_url = f"{'' if self.relative_next else origin}{stream.path}?{urlencode(params)}"
            _put(answer, p["next_url_path"], next_url)
        elif pattern == "offset" and p["total_path"] and isinstance(answer, dict):
            _put(answer, p["total_path"], len(records))
        ended = pattern == "none" or not more or (pattern == "offset" and offset + len(page) >= len(records))
        return answer, index, len(page), ended

    def _serve_recorded(self, stream: _Stream, source: dict, origin: str) -> tuple[Any, int, int, bool]:
        p, pages = stream.pagination, cast(list, stream.pages)
        pattern, records_path = stream.pattern, stream.spec["records_path"]
        index = 0
        if pattern in ("cursor", "post_query"):
            token = source.get(p["cursor_param"])
            if token not in (None, ""):
                cursors = [str(_get(page, p["next_cursor_path"])) for page in pages]
                if str(token) == END:
                    index = len(pages)
                elif str(token) in cursors:
                    index = cursors.index(str(token)) + 1
                else:
                    raise _Refusal(400, f"unknown cursor {token!r}")
        elif pattern == "next_url":
            raw = source.get("forge_page")
            index = int(raw) if raw not in (None, "") and str(raw).isdigit() else 0
        elif pattern == "offset":
            try:
                offset = int(source.get(p["offset_param"]) or 0)
            except (TypeError, ValueError):
                raise _Refusal(400, f"{p['offset_param']} must be an integer") from None
            starts, at = [], 0
            for page in pages:
                starts.append(at)
                at += len(_records_of(page, records_path) or [])
            index = starts.index(offset) if offset in starts else len(pages)
            if offset not in starts and offset < at:
                raise _Refusal(400, f"offset {offset} is not where a recorded page starts ({starts})")
        if index >= len(pages):  # past the recorded chain: an empty page that ends it
            answer: Any = copy.deepcopy(pages[-1]) if records_path else []
            if records_path:
                _put(answer, records_path, [])
                _end_page(answer, stream)
            return answer, index, 0, True
        answer = copy.deepcopy(pages[index])
        last, ended = index == len(pages) - 1, pattern == "none"
        if pattern in ("cursor", "post_query"):
            cursor = _get(answer, p["next_cursor_path"])
            if last and cursor not in (None, ""):
                _put(answer, p["next_cursor_path"], END)
            ended = cursor in (None, "")
        elif pattern == "next_url":
            following = _get(answer, p["next_url_path"])
            if following:
                query = parse_qs(urlparse(str(following)).query)
                query["forge_page"] = [str(index + 1)]
                _put(answer, p["next_url_path"], f"{origin}{stream.path}?{urlencode(query, doseq=True)}")
            ended = not following
        elif pattern == "offset":
            ended = last
        return answer, index, len(_records_of(answer, records_path) or []), ended


def _records_of(page: Any, records_path: str) -> list | None:
    found = _get(page, records_path) if records_path else page
    return found if isinstance(found, list) else None


def _end_page(answer: dict, stream: _Stream) -> None:
    p = stream.pagination
    if stream.pattern in ("cursor", "post_query"):
        _put(answer, p["next_cursor_path"], None)
        if p["has_more_path"]:
            _put(answer, p["has_more_path"], False)
    elif stream.pattern == "next_url":
        _put(answer, p["next_url_path"], None)


def _encode_cursor(stream: str, offset: int, after: str | None) -> str:
    raw = json.dumps({"s": stream, "o": offset, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str, stream: str) -> tuple[int, str | None]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["s"] != stream:
            raise ValueError("another stream's cursor")
        return int(data["o"]), data["a"]
    except (ValueError, KeyError, TypeError):
        raise _Refusal(400, f"not a cursor this API gave: {token!r}") from None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-answer is its business


def _handler(api: MockApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body leave together, not 40 ms apart (delayed ACK)
        wbufsize = 1 << 16

        def log_message(self, *args: Any) -> None:  # the source's logs are what matters, not ours
            pass

        def _answer(self, status: int, body: Any, headers: dict | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> tuple[bytes, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not raw:
                return raw, None
            if "form-urlencoded" in (self.headers.get("Content-Type") or ""):
                return raw, {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            try:
                return raw, json.loads(raw)
            except ValueError:
                return raw, raw.decode("utf-8", "replace")

        def do_GET(self) -> None:
            self._route(None)

        def do_POST(self) -> None:
            self._route(self._body()[1])

        def _route(self, body: Any) -> None:
            url = urlparse(self.path)
            if url.path == "/_report" and self.command == "GET":
                self._answer(200, api.report())
                return
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            stream = next((s for s in api.streams.values() if s.path == url.path.rstrip("/")), None)
            entry: dict[str, Any] = {
                "method": self.command,
                "path": url.path,
                "stream": stream.name if stream else None,
                "query": query,
                "body": body,
                "auth_header": bool(self.headers.get("Authorization"))
                or (api.spec["auth"] == "api_key" and bool(self.headers.get(api.spec["api_key_header"]))),
                "early": False,
                "at": round(time.monotonic() - api.started, 3),
            }
            with api.lock:
                api.log.append(entry)
                try:
                    status, answer, headers = self._dispatch(url.path, stream, query, body, entry)
                except _Refusal as refusal:
                    status, answer, headers = refusal.status, {"error": str(refusal)}, {}
                    entry.update(reason=str(refusal))
                except Exception as error:  # a bug of the mock: said in the report, not a dropped connection
                    status, answer, headers = 500, {"error": f"mock API error: {error!r}"}, {}
                    entry.update(reason=answer["error"])
                entry.setdefault("status", status)
                entry.setdefault("page", None)
            self._answer(status, answer, headers)

        def _dispatch(
            self, path: str, stream: _Stream | None, query: dict, body: Any, entry: dict
        ) -> tuple[int, Any, dict]:
            if path == TOKEN_PATH and self.command == "POST":
                form = body if isinstance(body, dict) else {}
                return 200, api.issue_token({k: str(v) for k, v in form.items()}), {}
            if stream is None:
                raise _Refusal(404, f"no stream at {path}")
            method = "POST" if stream.pattern == "post_query" else "GET"
            if self.command != method:
                return 405, {"error": f"{stream.path} takes {method}"}, {"Allow": method}
            return self._stream(stream, query, body, entry)

        def _stream(self, stream: _Stream, query: dict, body: Any, entry: dict) -> tuple[int, Any, dict]:
            mode = (self.headers.get(MODE_HEADER) or api.mode).strip().lower()
            stream.requests += 1
            stream.params["query"].update(query)
            if isinstance(body, dict):
                stream.params["body"].update(body)
            now = time.monotonic()
            if now < stream.not_before:
                stream.early_retries += 1
                entry["early"] = True
            stream.not_before = 0.0
            cap = stream.cap(api.request_cap)
            if cap is not None and stream.requests > cap:
                stream.capped += 1
                raise _Refusal(410, f"over {cap} requests: the pagination never ends")
            try:
                api.check_auth(self.headers)
                answer, index, count, ended = api.serve(stream, query, body, api.origin)
            except _Refusal as refusal:
                if refusal.status == 401:
                    api.unauthorized += 1
                    stream.unauthorized += 1
                raise
            planned = stream.fault_plan.get(index) if mode == "unreliable" else None
            if planned:
                status = planned.pop(0)
                stream.faults.append({"status": status, "page": index})
                entry.update(status=status, page=index)
                api.keep_token_for_retry(self.headers, now)
                if status == 429:
                    stream.not_before = now + RETRY_AFTER_S - 0.05
                    return 429, {"error": "rate limited"}, {"Retry-After": str(RETRY_AFTER_S)}
                return status, {"error": "service unavailable"}, {}
            entry.update(status=200, page=index)
            stream.pages_served += 1
            stream.records_served += count
            stream.ended = stream.ended or ended
            return 200, answer, {}

    return Handler


def start(
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
) -> MockApi:
    """Serve `spec` (a SourceSpec as a JSON dict) on 127.0.0.1:`port` (0: a free one) in a thread.

    mode: "unreliable" (a 429 and a 503 per stream) or "clean". recorded: a folder of saved pages (module doc).
    token_ttl: oauth access tokens' life in seconds. page_size_cap: serve at most this many records a page, whatever
    was asked (an API that clamps: a C source stepping by page_size skips records). relative_next: B's next links
    relative ("/v2/users?page_token=..."), as some APIs give them. request_cap: requests per stream before every
    answer is 410 (a pagination that never ends stops here); 0: REQUEST_CAP_FACTOR x (pages + 2) + 20; None: none.
    """
    return MockApi(
        spec,
        mode=mode,
        recorded=recorded,
        port=port,
        records_per_stream=records_per_stream,
        token_ttl=token_ttl,
        credentials=credentials,
        page_size_cap=page_size_cap,
        relative_next=relative_next,
        request_cap=request_cap,
    )


def serve_forever(spec_file: str, port: int = 0, mode: str = "unreliable", recorded: str | None = None) -> int:
    """Serve a spec file's mock in the foreground, for running a source's check config by hand."""
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    api = start(spec, mode=mode, recorded=recorded, port=port)
    print(api.url, flush=True)
    print(
        f"mock API of {spec.get('name', '?')} ({api.spec['auth']} auth, {mode}); report at {api.origin}/_report; "
        f"credentials {json.dumps(api.credentials)}; oauth token_refresh_endpoint {api.token_url}; Ctrl-C stops",
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
    args = parser.parse_args(argv)
    return serve_forever(args.spec, args.port, "clean" if args.clean else "unreliable", args.recorded)


if __name__ == "__main__":
    sys.exit(main())
