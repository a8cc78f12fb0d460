"""The bounded live read (validators/source_live.py): a source rendered with the rest recipe reads a local HTTP API
standing in for the user's real one (an API key required, its value only in the workspace's .env), at most
max_pages pages per stream; the answer says per stream how the read went, no secret reaches the answer, the kept
log or the saved pages, and the saved pages replay in the mock API."""

import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast
from urllib.parse import parse_qs, urlparse

import pytest

from bizon_forge import workspace
from bizon_forge.connector import Connector
from bizon_forge.findings import Refused
from bizon_forge.source_describe import describe_source, parse_spec
from bizon_forge.source_render import render_source
from bizon_forge.spec import source as source_spec
from bizon_forge.validators import source_live
from bizon_forge.validators.fakes import mock_api
from bizon_forge.validators.scratch import references
from bizon_forge.validators.source_live import live_read
from bizon_forge.validators.source_validation import validate_source
from tests.conftest import VERSIONS

pytestmark = pytest.mark.slow  # real bizon reads: `make test-fast` leaves them out
NAME = "shop_live"
KEY = "live-key-5e1b9c77d0"
WRONG = "wrong-key-0a7f31c2e4"
PAGE = 5
EPOCH = datetime(2025, 3, 1, tzinfo=UTC)


def _rows(prefix: str, count: int) -> list[dict]:
    rows = [
        {
            "id": f"{prefix}{i}",
            "name": f"Zoë {i}",
            "updated_at": (EPOCH + timedelta(hours=i)).isoformat(),
            "amount": None if i % 4 == 0 else i * 1.5,
            "address": {"city": "Łódź"},
        }
        for i in range(count)
    ]
    if prefix == "o":
        del rows[7]["updated_at"]  # one record the cursor field misses
        rows[2]["note"] = "only here"
    return rows


# users: 12 records, the page holding the last ones says no more; orders: 30, more than 3 pages of 5
DATA = {"users": _rows("u", 12), "orders": _rows("o", 30)}


class Api(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: dict[str, int] = {"users": 0, "orders": 0, "refused": 0}
        self.echo = False  # an API that repeats the key it got in its answers
        self.repeat = False  # an API whose second page of users repeats a record of the first
        self.slow_orders = 0.0  # seconds each orders page takes
        self.tokens: list[str] = []  # OAuth access tokens issued (refresh grant); then they, not KEY, open the API
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Api

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        if urlparse(self.path).path != "/oauth/token" or form.get("refresh_token") != [KEY]:
            return self._answer(400, {"error": "invalid_grant"})
        self.server.tokens.append(f"access-{secrets.token_hex(8)}")
        self._answer(200, {"access_token": self.server.tokens[-1], "token_type": "Bearer", "expires_in": 3600})

    def _allowed(self) -> bool:
        if self.server.tokens:
            return self.headers.get("Authorization") in [f"Bearer {t}" for t in self.server.tokens]
        return self.headers.get("X-API-Key") == KEY

    def do_GET(self):
        url = urlparse(self.path)
        stream = url.path.rsplit("/", 1)[-1]
        if not self._allowed():
            self.server.hits["refused"] += 1
            return self._answer(401, {"error": {"message": "invalid API key", "code": "unauthorized"}})
        if stream not in DATA:
            return self._answer(404, {"error": {"message": f"no {url.path}"}})
        self.server.hits[stream] += 1
        if stream == "orders":
            time.sleep(self.server.slow_orders)
        query = parse_qs(url.query)
        start = int(query.get("after", ["0"])[0])
        size = int(query.get("limit", [str(PAGE)])[0])
        rows = DATA[stream][start : start + size]
        if self.server.repeat and stream == "users" and start == size:
            rows = [rows[0], DATA[stream][1], *rows[2:]]  # page 2 repeats the 2nd record of page 1
        more = start + size < len(DATA[stream])
        meta = {"next": str(start + size) if more else None, **({"key": KEY} if self.server.echo else {})}
        self._answer(200, {"data": rows, "meta": meta})


@pytest.fixture
def api():
    server = Api()
    yield server
    server.shutdown()
    server.server_close()


def _rendered(root, base_url: str, auth: dict | None = None, **orders) -> workspace.Workspace:
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    pagination = {"pattern": "cursor", "page_size": PAGE, "cursor_param": "after", "next_cursor_path": "meta.next"}
    spec = {
        "name": NAME,
        "base_url": base_url,
        **(auth or {"auth": "api_key", "api_key_header": "X-API-Key", "api_key_prefix": ""}),
        "streams": [
            {"name": "users", "endpoint": "/users", "cursor_field": "updated_at", "pagination": pagination},
            {"name": "orders", "endpoint": "/orders", "cursor_field": "updated_at", "pagination": pagination, **orders},
        ],
    }
    described = describe_source(ws, parse_spec(spec))
    assert described.ok, described.findings
    assert render_source(ws, NAME).ok
    return ws


def _key_variable(ws) -> str:
    (name,) = references((ws.root / Connector(NAME, "source").example_rel).read_text())
    return name


def _everything_kept(ws) -> str:
    """The text of every file the read left in the workspace's state folder and the saved pages."""
    files = [*ws.state_dir.rglob("*"), *(ws.root / "recorded").rglob("*")]
    return "\n".join(p.read_text(errors="replace") for p in files if p.is_file())


@pytest.mark.parametrize("version", VERSIONS)
def test_a_live_read_reports_each_stream_hides_the_key_and_its_saved_pages_replay(make_tree, api, version, monkeypatch):
    ws = _rendered(make_tree(version), api.url)
    variable = _key_variable(ws)
    monkeypatch.delenv(variable, raising=False)
    (ws.root / ".env").write_text(f"{variable}={KEY}\n")

    report = live_read(ws, NAME, max_pages=3, save="recorded")

    assert report.ok, report.findings
    assert report.variables == {variable: ".env"}
    users, orders = report.streams
    assert (users.name, users.pages, users.records, users.ended) == ("users", 3, 12, "end")
    assert "the API said no more" in users.why
    assert (orders.pages, orders.records, orders.ended) == (3, 15, "page_limit")
    assert "more pages exist" in orders.why
    assert api.hits == {"users": 3, "orders": 3, "refused": 0}  # bounded: no page past the third was asked for
    assert users.duplicates == users.id_missing == users.cursor_missing == 0
    assert orders.cursor_missing == 1
    assert users.schema_sketch == {
        "id": "string",
        "name": "string",
        "updated_at": "string",
        "amount": "number|null",
        "address": "object",
    }
    assert orders.schema_sketch["note"] == "string (1/15)" and orders.schema_sketch["updated_at"] == "string (14/15)"
    assert len(users.page_seconds) == 3 and users.request_count == 3 and users.statuses == {"200": 3}
    first = users.requests[0]
    assert (first.method, first.status, first.page) == ("GET", 200, 1) and first.bytes > 0
    assert first.url == f"{api.url}/users?limit={PAGE}" and first.auth == ["X-API-Key: ***"]
    assert users.requests[1].url.endswith("after=5") and users.requests[1].page == 2
    by_id = {f.id: f for f in report.findings}
    assert by_id["live.cursor_field"].status == "warn" and "orders" in by_id["live.cursor_field"].message
    assert [f.message.split(":")[0] for f in report.findings if f.id == "live.read"] == ["users", "orders"]

    saved = ws.root / "recorded"
    assert sorted(p.name for p in (saved / "users").iterdir()) == ["page-001.json", "page-002.json", "page-003.json"]
    assert json.loads((saved / "orders" / "page-002.json").read_text())["data"] == DATA["orders"][5:10]
    assert users.saved_pages == orders.saved_pages == 3 and report.saved == "recorded"
    assert KEY not in report.model_dump_json() and KEY not in _everything_kept(ws)

    with mock_api.start(source_spec.load(ws, NAME).model_dump(mode="json"), recorded=str(saved)) as mock:
        served = {name: s["ids"] for name, s in mock.report()["streams"].items()}
    assert served == {"users": [r["id"] for r in DATA["users"]], "orders": [r["id"] for r in DATA["orders"][:15]]}
    replayed = validate_source(ws, NAME, "fast", recorded="recorded", verbose=True)
    assert replayed.ok, (replayed.summary, [f.message for f in replayed.findings if f.status == "fail"])
    every = {f.id: f for f in replayed.findings}["pull.every_record_once"]
    assert every.status == "pass", every.message


SEND = (
    "    def _send(self, stream: Dict[str, Any], url: str, params: Dict[str, Any], body: Optional[dict]) -> Response:\n"
)
LEAK = (
    SEND,
    SEND + "        key = self.config.authentication.params.token\n"
    '        print(f"printed key={key}")\n'
    '        logger.info(f"logged key={key}")\n',
)


def test_a_key_the_source_leaks_is_masked_and_a_shorter_read_removes_stale_pages(make_tree, api, monkeypatch):
    ws = _rendered(make_tree("0.6.4"), api.url)
    variable = _key_variable(ws)
    monkeypatch.delenv(variable, raising=False)
    (ws.root / ".env").write_text(f"{variable}={KEY}\n")
    path = ws.root / Connector(NAME, "source").code_rel
    path.write_text(path.read_text().replace(*LEAK))  # the source prints and logs the key, the API echoes it
    api.echo = True
    report = live_read(ws, NAME, max_pages=3, save="recorded")
    assert report.ok, report.findings
    log = (ws.root / report.log).read_text()
    assert "printed key=***" in log and "logged key=***" in log
    assert json.loads((ws.root / "recorded" / "users" / "page-001.json").read_text())["meta"]["key"] == "***"
    assert KEY not in report.model_dump_json() and KEY not in _everything_kept(ws)

    short = live_read(ws, NAME, max_pages=1, save="recorded")
    assert short.ok and [s.ended for s in short.streams] == ["page_limit", "page_limit"]
    assert sorted(p.name for p in (ws.root / "recorded" / "users").iterdir()) == ["page-001.json"]


def test_a_refused_key_fails_with_the_apis_message(make_tree, api, monkeypatch):
    ws = _rendered(make_tree("0.6.4"), api.url)
    variable = _key_variable(ws)
    (ws.root / ".env").write_text(f"{variable}={KEY}\n")

    monkeypatch.setenv(variable, WRONG)  # the environment wins over .env, as in `bizon run`
    report = live_read(ws, NAME, max_pages=2)
    assert not report.ok and report.variables == {variable: "environment"}
    for stream in report.streams:
        assert (stream.ended, stream.status, stream.pages) == ("error", 401, 0)
        assert "invalid API key" in stream.api_message and "HTTP 401" in stream.why
        assert stream.requests[0].status == 401
    failures = [f for f in report.findings if f.status == "fail"]
    assert [f.id for f in failures] == ["live.http_error", "live.http_error"]
    assert "credentials" in failures[0].hint
    dumped = report.model_dump_json()
    assert WRONG not in dumped and KEY not in dumped and WRONG not in _everything_kept(ws)


def test_a_repeated_id_and_a_wrong_records_path_fail_by_name(make_tree, api, monkeypatch):
    ws = _rendered(make_tree("0.6.4"), api.url, records_path="items")  # orders' records are at `data`
    variable = _key_variable(ws)
    monkeypatch.setenv(variable, KEY)
    api.repeat = True
    report = live_read(ws, NAME, max_pages=2, save="recorded")
    users, orders = report.streams
    assert (users.pages, users.records, users.duplicates, users.duplicate_ids) == (2, 10, 1, ["u1"])
    assert (orders.ended, orders.pages, orders.status) == ("error", 0, None) and "items" in orders.why
    failures = {f.id: f.message for f in report.findings if f.status == "fail"}
    assert failures.keys() == {"live.ids_unique", "live.read_error"}, failures
    assert "users: 1 duplicate ids in 2 pages (u1)" in failures["live.ids_unique"]
    assert not report.ok and report.variables == {variable: "environment"}
    assert (users.saved_pages, orders.saved_pages) == (2, 0) and not (ws.root / "recorded" / "orders").exists()


def test_a_slow_api_ends_the_read_at_its_time_budget(make_tree, api, monkeypatch):
    ws = _rendered(make_tree("0.6.4"), api.url)
    monkeypatch.setenv(_key_variable(ws), KEY)
    monkeypatch.setattr(source_live, "TIMEOUT_CAP_S", 22.0)  # the probe starts no page after 2 s
    api.slow_orders = 4.0
    report = live_read(ws, NAME, max_pages=3)
    orders = report.streams[1]
    assert orders.ended == "time_limit" and orders.pages <= 1 and api.hits["orders"] <= 1, orders
    assert report.ok and "live.time_limit" in {f.id for f in report.findings}


GET = "        return self.session.get(url, params=params or None, timeout=TIMEOUT_SECONDS)\n"
TOKEN_LEAK = (
    GET,
    "        sent = self.session.get(url, params=params or None, timeout=TIMEOUT_SECONDS)\n"
    "        logger.info(f\"sent {sent.request.headers['Authorization']}\")\n"
    "        return sent\n",
)


def test_an_oauth_source_reads_live_and_the_access_token_it_logs_is_masked(make_tree, api, monkeypatch):
    """On 0.5.2: the refresh grant against the API's own token endpoint; the source logs the access token it got."""
    ws = _rendered(make_tree("0.5.2"), api.url, auth={"auth": "oauth"})
    example = ws.root / Connector(NAME, "source").example_rel
    with pytest.raises(Refused) as refused:
        live_read(ws, NAME)
    assert refused.value.findings[0].id == "live.config" and "<TOKEN_REFRESH_ENDPOINT>" in str(refused.value)
    example.write_text(example.read_text().replace("<TOKEN_REFRESH_ENDPOINT>", api.url.replace("/v1", "/oauth/token")))
    with pytest.raises(Refused) as refused:
        live_read(ws, NAME)
    assert refused.value.findings[0].id == "live.unset"
    for name in references(example.read_text()):
        monkeypatch.setenv(name, KEY if name.endswith("REFRESH_TOKEN") else f"{name.lower()}-value")
    path = ws.root / Connector(NAME, "source").code_rel
    path.write_text(path.read_text().replace(*TOKEN_LEAK))
    report = live_read(ws, NAME, max_pages=2)
    assert report.ok, report.findings
    assert [(s.pages, s.records) for s in report.streams] == [(2, 10), (2, 10)] and api.hits["refused"] == 0
    assert report.streams[0].requests[0].auth == ["Authorization: Bearer ***"]
    assert "sent Bearer ***" in (ws.root / cast(str, report.log)).read_text()
    kept = report.model_dump_json() + _everything_kept(ws)
    assert api.tokens and not [t for t in [*api.tokens, KEY] if t in kept]
