"""The mock API's pages: which records a request gets and how its answer is laid out, per pagination pattern (the
module doc of mock_api.py says what is served; this is how). Stdlib only, Python 3.9+."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlparse

END = "forge-end"  # the cursor a recorded chain's last page leads to
CURSOR_PATTERNS = ("cursor", "post_query", "graphql")  # the next page is asked by an opaque cursor
BODY_PATTERNS = ("post_query", "graphql")  # POST with a JSON body
EMPTY_LAST = ("cursor", "next_url", "post_query", "graphql")  # by default they end with an empty page


class Refusal(Exception):
    """A request the mock answers with an HTTP error (status) and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def get(body: Any, path: str) -> Any:
    for key in path.split(".") if path else []:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def put(body: dict, path: str, value: Any) -> dict:
    target = body
    *parents, last = path.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return body


class Dotted(dict):
    """A JSON body read by dotted keys: get("variables.after") is body["variables"]["after"]."""

    def get(self, key, default=None):
        value = get(dict(self), key)
        return default if value is None else value

    def __getitem__(self, key):
        return self.get(key)


def leaves(body: Any, prefix: str = "") -> dict[str, Any]:
    """A JSON object's leaves by dotted path ({"variables": {"first": 5}} -> {"variables.first": 5})."""
    if not isinstance(body, dict):
        return {prefix: body} if prefix else {}
    found: dict[str, Any] = {}
    for key, value in body.items():
        found.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def parse_time(value: str) -> datetime:
    """ISO 8601 as APIs take it; a '+' a URL turned into a space is put back, a naive time is UTC."""
    text = value.strip()
    if len(text) > 10 and text[10] in " +":  # a space between date and time, or the '+' a URL made of it
        text = text[:10] + "T" + text[11:]
    text = text.replace(" ", "+").replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone(timedelta(0)))


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def encode_cursor(stream: str, offset: int, after: str | None) -> str:
    raw = json.dumps({"s": stream, "o": offset, "a": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unpack(token: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Refusal(400, f"not a cursor this API gave: {token!r}")
    return data


def decode_cursor(token: str, stream: str) -> tuple[int, str | None]:
    data = _unpack(token)
    if data.get("s") != stream or not isinstance(data.get("o"), int):
        raise Refusal(400, f"not a cursor this API gave: {token!r}")
    return data["o"], data.get("a")


def edge_cursor(stream: str, record_id: Any) -> str:
    """A GraphQL edge's cursor: the record's own (the same in every run and filter), as Relay servers give."""
    raw = json.dumps({"s": stream, "id": record_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Shape(NamedTuple):
    """How a case bends the pages (the default: none of it)."""

    last_has_records: bool = False  # the page holding the last records says there is no more
    short_pages: bool = False  # middle pages shorter than asked
    size_cap: int | None = None  # at most this many records a page, whatever was asked
    low_first_total: bool = False  # offset: the first page's total is below the real count


class Page(NamedTuple):
    answer: Any
    index: int  # the page's place in the chain (faults are planned by it)
    records: list  # the records it holds (as served, before being laid out)
    ended: bool  # it is the chain's last page
    key: Any  # the same page asked twice has the same key


class Ask(NamedTuple):
    size: int
    offset: int
    after: str | None


def records_of(page: Any, records_path: str) -> list | None:
    found = get(page, records_path) if records_path else page
    return found if isinstance(found, list) else None


def page_size_asked(stream: Any, source: dict, cap: int | None) -> int:
    p = stream.pagination
    asked = source.get(p["page_size_param"])
    try:
        size = min(stream.page_size, int(asked)) if asked not in (None, "") else stream.page_size
    except (TypeError, ValueError):
        raise Refusal(400, f"{p['page_size_param']} must be an integer, not {asked!r}") from None
    return max(1, min(size, cap or size))


def _filter_of(stream: Any, source: dict) -> str | None:
    param = stream.spec["updated_after_param"]
    value = source.get(param) if param else None
    return None if value in (None, "") else str(value)


def _offset_of(stream: Any, source: dict, records: list) -> tuple[int, str | None]:
    """Where the request starts, and the filter a cursor carried."""
    p, pattern = stream.pagination, stream.pattern
    if pattern == "graphql":
        token = source.get(p["cursor_param"])
        if token in (None, ""):
            return 0, None
        wanted = _unpack(str(token)).get("id")
        ids = [get(r, stream.id_path) for r in records]
        if wanted not in ids:
            raise Refusal(400, f"not a cursor this API gave (or another filter's): {token!r}")
        return ids.index(wanted) + 1, None
    if pattern in ("cursor", "post_query", "next_url"):
        token = source.get(p["cursor_param"] if pattern != "next_url" else "page_token")
        return decode_cursor(str(token), stream.name) if token not in (None, "") else (0, None)
    if pattern == "offset":
        raw = source.get(p["offset_param"], 0)
        try:
            offset = int(raw or 0)
        except (TypeError, ValueError):
            raise Refusal(400, f"{p['offset_param']} must be an integer, not {raw!r}") from None
        if offset < 0:
            raise Refusal(400, f"{p['offset_param']} must be >= 0")
        return offset, None
    return 0, None


def _filtered(stream: Any, records: list, after: str | None) -> list:
    if after is None or not stream.cursor_path:
        return records
    try:
        since = parse_time(after)
    except ValueError:
        raise Refusal(400, f"{stream.spec['updated_after_param']} is not an ISO 8601 time: {after!r}") from None
    return [r for r in records if parse_time(get(r, stream.cursor_path)) > since]


def _length(ask: Ask, total: int, shape: Shape) -> int:
    """How many records the page starting at ask.offset holds: short_pages makes every middle page whose start
    falls in an odd stretch of page sizes half as long (the first and the last pages stay full)."""
    size = ask.size
    middle = 0 < ask.offset < total - size
    if shape.short_pages and size > 1 and middle and (ask.offset // size) % 2 == 1:
        return max(1, size // 2)
    return size


def serve_records(stream: Any, source: dict, origin: str, shape: Shape) -> Page:
    """The page of generated records this request asks for (source: its query, or its JSON body read by dotted
    paths), laid out in the stream's pattern; or a Refusal."""
    size = page_size_asked(stream, source, shape.size_cap)
    after = _filter_of(stream, source)
    offset, carried = _offset_of(stream, source, _filtered(stream, stream.records, after))
    after = after or carried
    records = _filtered(stream, stream.records, after)
    if stream.pattern == "none":
        page, offset = list(records), 0
    else:
        page = records[offset : offset + _length(Ask(size, offset, after), len(records), shape)]
    reached = offset + len(page) >= len(records)
    more = stream.pattern != "none" and bool(page) and not (shape.last_has_records and reached)
    answer = _lay_out(stream, page, Ask(size, offset + len(page), after), more, origin)
    if stream.pattern == "offset" and stream.pagination["total_path"] and isinstance(answer, dict):
        low = shape.low_first_total and offset == 0
        put(answer, stream.pagination["total_path"], max(len(page), len(records) * 2 // 3) if low else len(records))
    ended = not more if stream.pattern in EMPTY_LAST else reached
    index = -(-offset // size)  # the empty page after a short one is a page of its own
    return Page(answer, index, page, ended, (offset, after))


def _lay_out(stream: Any, page: list, following: Ask, more: bool, origin: str) -> Any:
    """A page's body: the records where the spec says, and what leads to the next page (none when not more)."""
    p, pattern = stream.pagination, stream.pattern
    if pattern == "graphql":
        return graphql_answer(stream, page, more)
    records_path = stream.spec["records_path"]
    answer: Any = put({}, records_path, page) if records_path else page
    token = encode_cursor(stream.name, following.offset, following.after) if more else None
    if pattern in ("cursor", "post_query"):
        put(answer, p["next_cursor_path"], token)
        if p["has_more_path"]:
            put(answer, p["has_more_path"], more)
    elif pattern == "next_url":
        put(answer, p["next_url_path"], _next_url(stream, token, following, origin) if more else None)
    return answer


def _next_url(stream: Any, token: str | None, following: Ask, origin: str) -> str:
    params = {**stream.fixed_query, "page_token": token, stream.pagination["page_size_param"]: following.size}
    param = stream.spec["updated_after_param"]
    if following.after is not None and param:
        params[param] = following.after
    return f"{'' if stream.relative_next else origin}{stream.link_path}?{urlencode(params)}"


def graphql_answer(stream: Any, nodes: list, more: bool) -> dict:
    """A Relay connection at the stream's connection_path: edges of {cursor, node}, pageInfo."""
    edges = [{"cursor": edge_cursor(stream.name, get(n, stream.id_path)), "node": n} for n in nodes]
    info = {"hasNextPage": more, "endCursor": edges[-1]["cursor"] if edges else None}
    return put({}, stream.connection_path, {"edges": edges, "pageInfo": info})


def landed(stream: Any, records: list) -> list:
    """What one record is to the source: graphql with land "edge" lands the whole edge, else the record."""
    if stream.pattern == "graphql" and stream.spec.get("land") == "edge" and stream.pages is None:
        return [{"cursor": edge_cursor(stream.name, get(n, stream.id_path)), "node": n} for n in records]
    return records


# recorded pages


def _recorded_index(stream: Any, source: dict) -> int:
    p, pages = stream.pagination, stream.pages
    pattern = stream.pattern
    if pattern in CURSOR_PATTERNS:
        token = source.get(p["cursor_param"])
        if token in (None, ""):
            return 0
        cursors = [str(get(page, p["next_cursor_path"])) for page in pages]
        if str(token) == END:
            return len(pages)
        if str(token) not in cursors:
            raise Refusal(400, f"unknown cursor {token!r}")
        return cursors.index(str(token)) + 1
    if pattern == "next_url":
        raw = source.get("forge_page")
        return int(raw) if raw not in (None, "") and str(raw).isdigit() else 0
    if pattern == "offset":
        return _recorded_offset_index(stream, source)
    return 0


def _recorded_offset_index(stream: Any, source: dict) -> int:
    p, pages = stream.pagination, stream.pages
    try:
        offset = int(source.get(p["offset_param"]) or 0)
    except (TypeError, ValueError):
        raise Refusal(400, f"{p['offset_param']} must be an integer") from None
    starts, at = [], 0
    for page in pages:
        starts.append(at)
        at += len(records_of(page, stream.records_path) or [])
    if offset not in starts and offset < at:
        raise Refusal(400, f"offset {offset} is not where a recorded page starts ({starts})")
    return starts.index(offset) if offset in starts else len(pages)


def serve_recorded(stream: Any, source: dict, origin: str) -> Page:
    """The recorded page this request asks for: the n-th page answers the n-th request of the chain."""
    index, pages = _recorded_index(stream, source), stream.pages
    if index >= len(pages):  # past the recorded chain: an empty page that ends it
        answer: Any = copy.deepcopy(pages[-1]) if stream.records_path else []
        if stream.records_path:
            put(answer, stream.records_path, [])
            end_page(answer, stream)
        return Page(answer, index, [], True, index)
    answer = copy.deepcopy(pages[index])
    ended = _relink(stream, answer, index, origin)
    return Page(answer, index, records_of(answer, stream.records_path) or [], ended, index)


def _relink(stream: Any, answer: Any, index: int, origin: str) -> bool:
    """Points a recorded page's link to the next page at the mock; whether the page ends the chain."""
    p, pattern, last = stream.pagination, stream.pattern, index == len(stream.pages) - 1
    if pattern in CURSOR_PATTERNS:
        cursor = get(answer, p["next_cursor_path"])
        no_more = bool(p["has_more_path"]) and get(answer, p["has_more_path"]) is False
        if last and cursor not in (None, "") and not no_more:
            put(answer, p["next_cursor_path"], END)
        return cursor in (None, "") or no_more
    if pattern == "next_url":
        following = get(answer, p["next_url_path"])
        if following:
            query = parse_qs(urlparse(str(following)).query)
            query["forge_page"] = [str(index + 1)]
            put(answer, p["next_url_path"], f"{origin}{stream.link_path}?{urlencode(query, doseq=True)}")
        return not following
    return last or pattern == "none"


def end_page(answer: dict, stream: Any) -> None:
    p = stream.pagination
    if stream.pattern in CURSOR_PATTERNS:
        put(answer, p["next_cursor_path"], None)
        if p["has_more_path"]:
            put(answer, p["has_more_path"], False)
    elif stream.pattern == "next_url":
        put(answer, p["next_url_path"], None)
