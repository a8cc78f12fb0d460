"""describe_source and render_source on real bizon trees (0.6.4 and 0.5.2): one source per pagination pattern, each
with another auth type, read by its own get() loop under the workspace's bizon from a local API served here (pages in
the pattern, the auth checked, a 429 with Retry-After and a 503 on the way, an empty last page)."""

import base64
import json
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from bizon_forge import workspace
from bizon_forge.connector import Connector
from bizon_forge.findings import Refused
from bizon_forge.source_describe import describe_source, parse_spec
from bizon_forge.source_render import MOCK_CREDENTIALS, render_source
from bizon_forge.spec import source as source_spec
from bizon_forge.validators.runtime import SMOKE_RUNNER
from tests.conftest import VERSIONS, snapshot, stdio_client

KEY, TOKEN, USER, PASSWORD, ACCESS = "k-123", "t-456", "ann", "pw-789", "access-1"
RECORDS = 11  # the API's page size is 3 (it serves fewer than the source asks): 4 pages and an empty one

# One source per pattern (A-E), a different auth type each.
SPECS = {
    "acme_cursor": {
        "base_url": "{url}/v1",
        "auth": "bearer",
        "streams": [
            {
                "name": "users",
                "endpoint": "/users",
                "pagination": {"pattern": "cursor", "cursor_param": "after", "next_cursor_path": "meta.next"},
            }
        ],
    },
    "acme_links": {
        "base_url": "{url}",
        "auth": "api_key",
        "api_key_header": "X-API-Key",
        "streams": [
            {
                "name": "items",
                "endpoint": "/items",
                "records_path": "results",
                "pagination": {"pattern": "next_url", "next_url_path": "links.next"},
            }
        ],
    },
    "acme_offset": {
        "base_url": "{url}",
        "auth": "basic",
        "streams": [
            {
                "name": "orders",
                "endpoint": "/orders",
                "records_path": "",
                "id_field": "order_id",
                "pagination": {"pattern": "offset", "page_size": 5},
            }
        ],
    },
    "acme_single": {"base_url": "{url}", "streams": [{"name": "things", "endpoint": "/things", "id_field": "key.id"}]},
    "acme_query": {
        "base_url": "{url}",
        "auth": "oauth",
        "streams": [
            {
                "name": "pages",
                "endpoint": "/search",
                "records_path": "results",
                "body": {"query": "{ pages }"},
                "pagination": {
                    "pattern": "post_query",
                    "cursor_param": "variables.after",
                    "page_size_param": "variables.first",
                    "next_cursor_path": "page_info.end",
                    "has_more_path": "page_info.has_next",
                },
            }
        ],
    },
}
AUTH = {
    "acme_cursor": {"type": "bearer", "params": {"token": TOKEN}},
    "acme_links": {"type": "api_key", "params": {"token": KEY}},
    "acme_offset": {"type": "basic", "params": {"username": USER, "password": PASSWORD}},
    "acme_single": None,
    "acme_query": {
        "type": "oauth",
        "params": {
            "token_refresh_endpoint": "{url}/token",
            "client_id": "c",
            "client_secret": "s",
            "refresh_token": "r",
        },
    },
}
EXPECTED_AUTH: dict[str, tuple[str | None, str | None]] = {
    "/v1/users": ("Authorization", f"Bearer {TOKEN}"),
    "/items": ("X-API-Key", KEY),
    "/orders": ("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()),
    "/things": (None, None),
    "/search": ("Authorization", f"Bearer {ACCESS}"),
}


def records(path: str) -> list[dict]:
    out = []
    for i in range(RECORDS):
        r: dict = {"name": f"ü {i}", "tags": [i], "nested": {"deep": None}}
        if path == "/orders":
            r["order_id"] = 1000 + i
        elif path == "/things":
            r["key"] = {"id": f"t{i}"}
        else:
            r["id"] = f"{path}-{i}"
        out.append(r)
    return out


class Api:
    """The judge: serves each pattern its own way (opaque cursors, relative links, a clamped page size), answers 401
    to wrong auth (an expired OAuth token too), and injects a 429 on page 2 (Retry-After: 1 on /v1/users, 2 on
    /search, longer than its tokens live, 0 elsewhere) and a 503 on page 3."""

    PAGE = 3

    def __init__(self):
        self.log: list[tuple[str, int, float]] = []  # (path, status, when)
        self.faults = {path: {2: 429, 3: 503} for path in EXPECTED_AUTH}
        self.served = {path: records(path) for path in EXPECTED_AUTH}
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # oauth access token -> when it expires
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                api.answer(self, None)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.answer(self, None if self.path == "/token" else json.loads(raw or b"null"))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def send(self, handler, status: int, document, headers: dict | None = None) -> None:
        data = json.dumps(document).encode()
        handler.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answer(self, handler, body) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/token":  # tokens that live 1 s: the 2 s Retry-After on /search outlives the first one
            with self.lock:
                token = f"{ACCESS}-{len(self.tokens)}"
                self.tokens[token] = time.monotonic() + 1.3  # 1 s, and some slack for the flight
            return self.send(handler, 200, {"access_token": token, "expires_in": 1})
        if path == "/repeat/users":  # an API that hands back the cursor it was given
            return self.send(handler, 200, {"data": [{"id": 1}], "meta": {"next": "same"}})
        if path == "/empty/users":  # an empty page that says more follow
            return self.send(handler, 200, {"data": [], "meta": {"next": "c9"}})
        header, value = EXPECTED_AUTH[path]
        if path == "/search":
            given = (handler.headers.get("Authorization") or "").removeprefix("Bearer ")
            value = handler.headers.get("Authorization") if self.tokens.get(given, 0) > time.monotonic() else "-"
        if header and handler.headers.get(header) != value:
            with self.lock:
                self.log.append((path, 401, time.monotonic()))
            return self.send(handler, 401, {"error": "unauthorized"})
        data = self.served[path]
        if path == "/v1/users":
            start = int(query.get("after", "c0")[1:])
        elif path == "/items":
            start = int(query.get("from", 0))
        elif path == "/orders":
            start = int(query.get("offset", 0))
        elif path == "/search":
            start = int(((body or {}).get("variables") or {}).get("after") or 0)
        else:
            start = 0
        page_number = start // self.PAGE + 1
        with self.lock:
            fault = self.faults[path].pop(page_number, None) if path != "/things" else self.faults[path].pop(2, None)
            self.log.append((path, fault or 200, time.monotonic()))
        if fault:
            wait = {"/v1/users": "1", "/search": "2"}.get(path, "0") if fault == 429 else None
            return self.send(handler, fault, {"error": "try later"}, {"Retry-After": wait} if wait else {})
        page = data if path == "/things" else data[start : start + self.PAGE]
        end = start + len(page)
        more = bool(page)
        if path == "/v1/users":
            return self.send(handler, 200, {"data": page, "meta": {"next": f"c{end}" if more else None}})
        if path == "/items":
            return self.send(handler, 200, {"results": page, "links": {"next": f"/items?from={end}" if more else None}})
        if path == "/orders":
            return self.send(handler, 200, page)
        if path == "/search":
            info = {"end": str(end) if more else None, "has_next": more}
            return self.send(handler, 200, {"results": page, "page_info": info})
        return self.send(handler, 200, {"data": page})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# Runs in the workspace's interpreter with its bizon: the engine's loop over get(), with a cap.
DRIVER = r"""
import importlib, json, sys
out = {}
for case in json.loads(sys.stdin.read()):
    module = importlib.import_module(case["module"])
    source_class = next(v for k, v in vars(module).items() if k.endswith("Source") and k != "AbstractSource")
    config_class = source_class.get_config_class()
    config = config_class(name=case["name"], stream=case["stream"], base_url=case["base_url"],
                          authentication=case["auth"])
    source = source_class(config)
    ok, message = source.check_connection()
    got, pagination, pages = [], {}, 0
    try:
        while pages < 40:
            iteration = source.get(pagination=pagination)
            pages += 1
            got += [{"id": r.id, "data": r.data} for r in iteration.records]
            pagination = iteration.next_pagination
            json.dumps(pagination)
            if not pagination:
                break
        error = None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    out[case["name"]] = {"check": [ok, message], "records": got, "pages": pages, "ended": not pagination,
                         "error": error, "total": source.get_total_records_count()}
print(json.dumps(out))
"""


def make_ws(root) -> workspace.Workspace:
    return workspace.resolve(None, workspace.Settings.from_paths([str(root)]))


def described(ws, name: str, url: str, **extra) -> None:
    spec = json.loads(json.dumps({"name": name, **SPECS[name], **extra}).replace("{url}", url))
    result = describe_source(ws, parse_spec(spec))
    assert result.ok, result.findings
    assert result.next == f"render_source(name={name!r})"


@pytest.fixture
def api():
    served = Api()
    yield served
    served.close()


@pytest.mark.slow  # a mock API server and a subprocess reading every pattern
@pytest.mark.parametrize("version", VERSIONS)
def test_each_pattern_and_auth_reads_every_record_once_and_ends(make_tree, api, version):
    ws = make_ws(make_tree(version))
    cases = []
    for name in SPECS:
        described(ws, name, api.url)
        rendered = render_source(ws, name)
        assert rendered.ok and rendered.findings == [], rendered
        assert {f.action for f in rendered.files} == {"created"}
        c = Connector(name, "source")
        base = SPECS[name]["base_url"].replace("{url}", api.url)
        auth = json.loads(json.dumps(AUTH[name]).replace("{url}", api.url)) if AUTH[name] else None
        stream = SPECS[name]["streams"][0]["name"]
        cases.append({"module": c.code_module, "name": name, "stream": stream, "base_url": base, "auth": auth})
    done = subprocess.run(
        [ws.python(), "-c", DRIVER],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=ws.env(),
        cwd=ws.root,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for case in cases:
        got = results[case["name"]]
        path = next(p for p in EXPECTED_AUTH if p.endswith(SPECS[case["name"]]["streams"][0]["endpoint"]))
        served = api.served[path]
        assert got["error"] is None and got["ended"], (case["name"], got["error"])
        assert got["check"] == [True, None], case["name"]
        id_field = SPECS[case["name"]]["streams"][0].get("id_field", "id")
        expected_ids = [str(r["key"]["id"] if id_field == "key.id" else r[id_field]) for r in served]
        assert [r["id"] for r in got["records"]] == expected_ids, case["name"]  # each once, in order
        assert [r["data"] for r in got["records"]] == served, case["name"]  # the full record
        assert got["total"] is None
    for path in EXPECTED_AUTH:  # every fault was met and retried; no request was refused for its auth
        statuses = [status for p, status, _ in api.log if p == path]
        assert 429 in statuses and (503 in statuses or path == "/things"), (path, statuses)
        # Only the retry after the 2 s Retry-After carries an expired token; the source then asks for a new one.
        assert statuses.count(401) == (1 if path == "/search" else 0), str((path, statuses))
    users = [(status, when) for path, status, when in api.log if path == "/v1/users"]
    after_429 = next(i for i, (status, _) in enumerate(users) if status == 429)
    assert users[after_429 + 1][1] - users[after_429][1] >= 0.9  # Retry-After: 1 honoured
    # The source's own tests pass under the workspace's pytest, offline.
    tests = [Connector(name, "source").tests_dir for name in SPECS]
    run = subprocess.run(
        [ws.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", *tests],
        capture_output=True,
        text=True,
        env=ws.env(),
        cwd=ws.root,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-3000:]


def test_an_api_that_repeats_itself_or_fails_is_stopped_not_looped_or_swallowed(make_tree, api):
    ws = make_ws(make_tree("0.6.4"))
    described(ws, "acme_cursor", api.url)
    render_source(ws, "acme_cursor")
    code = (
        "import json, sys\n"
        "from bizon.connectors.sources.acme_cursor.src import source as m\n"
        "def source(base):\n"
        "    config = m.AcmeCursorSourceConfig(name='acme_cursor', stream='users', base_url=sys.argv[1] + base,\n"
        "        authentication={'type': 'bearer', 'params': {'token': 'wrong'}})\n"
        "    return m.AcmeCursorSource(config)\n"
        "s = source('/repeat')\n"
        "first = s.get({})\n"
        "out = {'repeat': [first.next_pagination]}\n"
        "try:\n"
        "    s.get(first.next_pagination)\n"  # the same cursor back: the run fails, never ends green with a part
        "except RuntimeError as e:\n"
        "    out['repeat'].append(str(e))\n"
        "out['empty'] = source('/empty').get({'cursor': 'c3'}).next_pagination\n"
        "try:\n"
        "    source('/v1').get({})\n"  # a wrong token: 401, raised, never read as an empty last page
        "except Exception as e:\n"
        "    out['401'] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([ws.python(), "-c", code, api.url], capture_output=True, text=True, env=ws.env(), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["repeat"][0] == {"cursor": "same"} and "the same next page again" in out["repeat"][1], out
    assert out["empty"] == {} and out["401"] == "HTTPError", out


GRAPHQL = {"pagination": {"pattern": "graphql"}}
BAD = [
    ({"name": "Acme"}, "spec.name.not_snake_case"),
    ({"base_url": "ftp://x"}, "spec.base_url.invalid"),
    ({"base_url": "https://u:p@api.test"}, "spec.base_url.credentials"),
    ({"base_url": "https://api.test?key=1"}, "spec.base_url.query"),
    ({"streams": []}, "spec.streams.empty"),
    ({"streams": [{"name": "u", "endpoint": "users"}]}, "spec.stream.endpoint"),
    (
        {"streams": [{"name": "u", "endpoint": "/u", "pagination": {"pattern": "cursor"}, "records_path": ""}]},
        "spec.stream.records_path",
    ),
    (
        {"streams": [{"name": "u", "endpoint": "/u", "updated_after_param": "since"}]},
        "spec.stream.updated_after_without_cursor",
    ),
    (
        {"streams": [{"name": "u", "endpoint": "/u", "pagination": {"pattern": "offset", "offset_param": "limit"}}]},
        "spec.pagination.same_param",
    ),
    ({"streams": [{"name": "u", "endpoint": "/u", "body": {"q": 1}}]}, "spec.stream.body_unused"),
    ({"streams": [{"name": "u", "endpoint": "/u"}, {"name": "u", "endpoint": "/v"}]}, "spec.stream.duplicate"),
    ({"error_handling": {"transient_statuses": [429, 401]}}, "spec.error_handling.permanent_status"),
    ({"auth": "api_key", "api_key_header": "X Key"}, "spec.auth.api_key_header"),
    ({"fields": [{"name": "stream"}]}, "spec.field.shadows_base"),
    ({"streams": [{"name": "u", "endpoint": "/u", "pagnation": {}}]}, "spec.unknown_key"),
    ({"streams": [{"name": "u", "endpoint": "/u", "pagination": {"pattern": "page"}}]}, "spec.invalid"),
    ({"name": "dummy"}, "spec.name.taken"),  # bizon's own source folder
    (
        {"streams": [{"name": "u", "endpoint": "/u", "body": {"query": "{ u }"}, **GRAPHQL}]},
        "spec.stream.connection_path",
    ),
    (
        {"streams": [{"name": "u", "endpoint": "/g", "connection_path": "data.u", "land": "edge", **GRAPHQL}]},
        "spec.stream.id_field",  # landing edges, the id is at node.id
    ),
    (
        {"streams": [{"name": "u", "endpoint": "/g", "connection_path": "data.u", **GRAPHQL}]},
        "spec.stream.graphql_query",
    ),
    ({"streams": [{"name": "u", "endpoint": "/u", "connection_path": "data.u"}]}, "spec.stream.graphql_unused"),
    (
        {"streams": [{"name": "u", "endpoint": "/u", "cursor_field": "at", "updated_after_param": "variables.since"}]},
        "spec.stream.updated_after_param",  # a dotted path only into a POST body
    ),
    (
        {"streams": [{"name": "u", "endpoint": "/r?t=1"}, {"name": "v", "endpoint": "/r?t=1"}]},
        "spec.stream.same_request",
    ),
    ({"body_errors": {"code_path": "extensions..code"}}, "spec.body_errors.code_path"),
    ({"body_errors": {"retryable_codes": ["X"], "reauth_codes": ["X"]}}, "spec.body_errors.codes"),
    ({"auth": "client_credentials", "token_url": "/oauth/token"}, "spec.auth.token_url"),
    ({"auth": "bearer", "token_url": "https://a.test/token"}, "spec.auth.token_url_unused"),
    ({"auth": "oauth", "scopes": ["read"]}, "spec.auth.scopes_unused"),
]


@pytest.mark.parametrize(("change", "expected"), BAD, ids=[e for _, e in BAD])
def test_a_bad_spec_gets_a_finding_naming_the_field_and_nothing_is_written(make_tree, change, expected):
    root = make_tree("0.6.4")
    before = snapshot(root)
    spec = {"name": "acme", "base_url": "https://api.test", "streams": [{"name": "u", "endpoint": "/u"}], **change}
    try:
        result = describe_source(make_ws(root), parse_spec(spec))
        findings = result.findings
        assert not result.ok
    except Refused as refused:
        findings = refused.findings
    assert expected in [f.id for f in findings if f.status == "fail"], findings
    failed = next(f for f in findings if f.id == expected)
    assert failed.hint or expected == "spec.invalid"
    assert snapshot(root) == before


def test_render_keeps_edits_dry_run_writes_nothing_and_custom_leaves_todos(make_tree):
    root = make_tree("0.6.4")
    ws = make_ws(root)
    described(ws, "acme_single", "https://api.test")
    planned = render_source(ws, "acme_single", dry_run=True)
    assert {f.action for f in planned.files} == {"would_create"} and planned.next is None
    assert not (root / Connector("acme_single", "source").dir).exists()
    render_source(ws, "acme_single")
    code = root / Connector("acme_single", "source").code_rel
    code.write_text(code.read_text() + "\n# mine\n")
    kept = render_source(ws, "acme_single")
    assert not kept.ok and [f.id for f in kept.findings] == ["render.would_overwrite"]
    assert code.read_text().endswith("# mine\n")
    assert render_source(ws, "acme_single", overwrite=True).ok and "# mine" not in code.read_text()
    # A source and a destination may share a name: the specs are stored apart.
    assert source_spec.spec_path(ws, "acme_single").parent.name == "source-specs"
    spec = {**SPECS["acme_cursor"], "name": "acme_custom", "recipe": "custom", "base_url": "https://api.test"}
    spec["streams"] = [{**spec["streams"][0], "cursor_field": "updated_at"}]
    assert describe_source(ws, parse_spec(spec)).ok
    custom = render_source(ws, "acme_custom")
    assert [f.id for f in custom.findings] == ["render.todo_left"]
    text = (root / Connector("acme_custom", "source").code_rel).read_text()
    assert "FORGE-TODO(request)" in text and "FORGE-TODO(paginate)" in text
    example = root / Connector("acme_cursor", "source").example_rel
    assert not example.exists()


def test_configs_hold_env_references_and_the_mock_api_credentials(make_tree):
    ws = make_ws(make_tree("0.5.2"))
    described(ws, "acme_query", "https://api.test")
    render_source(ws, "acme_query")
    c = Connector("acme_query", "source")
    example = (ws.root / c.example_rel).read_text()
    check = (ws.root / c.check_rel).read_text()
    assert "env://ACME_QUERY_CLIENT_SECRET" in example and "forge-mock" not in example
    assert "base_url: env://BIZON_FORGE_MOCK_API_URL" in check
    assert 'token_refresh_endpoint: "env://BIZON_FORGE_MOCK_API_TOKEN_URL"' in check
    assert f'client_secret: "{MOCK_CREDENTIALS["client_secret"]}"' in check  # the mock's own, which it accepts


@pytest.mark.anyio
async def test_over_mcp_inspect_lists_sources_and_describe_render_answer(make_tree):
    root = make_tree("0.6.4")
    spec = {"name": "acme_single", **SPECS["acme_single"], "base_url": "https://api.test"}
    async with stdio_client(root) as client:
        described = (await client.call_tool("describe_source", {"spec": spec})).structured_content
        assert described["ok"] and described["next"] == "render_source(name='acme_single')"
        bad = (await client.call_tool("describe_source", {"spec": {"name": "x", "streams": []}})).structured_content
        assert not bad["ok"] and bad["findings"][0]["id"] == "spec.invalid"  # base_url missing
        rendered = (await client.call_tool("render_source", {"name": "acme_single"})).structured_content
        assert rendered["ok"] and rendered["next"].startswith("validate_source(")
        seen = (await client.call_tool("inspect_workspace", {})).structured_content
        schema = (await client.read_resource("bizon-forge://source-spec")).contents[0].text
        assert "post_query" in schema and "updated_after_param" in schema
        prompt = await client.get_prompt("new_source", {"api": "Acme's REST API"})
        assert "Acme's REST API" in prompt.messages[0].content.text
        guide = (await client.read_resource("bizon-forge://source-guide")).contents[0].text
        assert "Step 1" in guide and "Where this guide is wrong or silent" in guide
        dummy = (await client.read_resource("bizon-forge://reference-source/dummy")).contents[0].text
        assert "AbstractSource" in dummy
    sources = {s["name"]: s for s in seen["sources"]}
    assert sources["acme_single"] == {
        "name": "acme_single",
        "files": ["src/__init__.py", "src/source.py"],
        "spec": True,
    }
    assert "dummy" in sources and not sources["dummy"]["spec"]


def test_cli_generate_takes_a_source_spec(make_tree, tmp_path):
    root = make_tree("0.6.4")
    spec = tmp_path / "source.yml"
    spec.write_text("name: acme\nbase_url: ftp://nope\nstreams: [{name: u, endpoint: /u}]\n")
    done = subprocess.run(
        [sys.executable, "-m", "bizon_forge", "generate", str(spec), "--workspace", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "spec.base_url.invalid" in done.stdout, done.stdout + done.stderr
    assert "steps: describe FAILED" in done.stdout


TICKETS = {
    "name": "tickets",
    "base_url": "https://api.test/v1",
    "auth": "bearer",
    "streams": [
        {
            "name": "tickets",
            "endpoint": "/tickets",
            "cursor_field": "updated_at",
            "pagination": {"pattern": "cursor", "page_size": 10, "next_cursor_path": "paging.next"},
        }
    ],
}


@pytest.mark.slow  # validate_source full: the source's tests and a real bizon run
def test_after_full_validation_next_names_the_example_s_variables_and_its_command_runs_once_they_are_set(make_tree):
    """`next` once printed only the command, which stopped with "environment variable 'TICKETS_TOKEN' is not set"."""
    from bizon_forge.validators.fakes import mock_api
    from bizon_forge.validators.source_validation import validate_source

    ws = make_ws(make_tree("0.6.4"))
    with mock_api.start(parse_spec(TICKETS).model_dump(mode="json"), mode="clean") as api:
        assert describe_source(ws, parse_spec({**TICKETS, "base_url": api.url})).ok
        assert render_source(ws, "tickets").ok
        result = validate_source(ws, "tickets", "full")
        assert result.ok, result.findings
        assert result.next is not None
        assert f"It reads TICKETS_TOKEN: set it in the environment or in {ws.root / '.env'}" in result.next
        command = result.next.split("run it with: ", 1)[1]
        (ws.root / ".env").write_text(f"TICKETS_TOKEN={MOCK_CREDENTIALS['token']}\n")
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_every_wrong_key_and_value_of_a_spec_is_reported_at_once_with_a_hint_and_a_next():
    spec = {
        "name": "tickets",
        "base_url": "https://api.test",
        "auth_type": "bearer",
        "streams": [{"name": "t", "endpoint": "/t", "pagination": {"pattern": "token", "next_cursor_pth": "x"}}],
    }
    with pytest.raises(Refused) as refused:
        parse_spec(spec)
    found = {(f.id, f.message.split(":")[0]) for f in refused.value.findings}
    assert found == {
        ("spec.unknown_key", "auth_type"),
        ("spec.unknown_key", "streams[0].pagination.next_cursor_pth"),
        ("spec.invalid", "streams[0].pagination.pattern"),
    }
    assert all(f.hint for f in refused.value.findings)
    assert refused.value.next == "Fix the failed findings and call describe_source again."


def test_describe_source_reports_what_existed_before_it_saved(make_tree):
    ws = make_ws(make_tree("0.6.4"))
    spec = parse_spec({"name": "acme", "base_url": "https://api.test", "streams": [{"name": "u", "endpoint": "/u"}]})
    first, again = describe_source(ws, spec), describe_source(ws, spec)
    assert first.existing is not None and not first.existing.spec
    assert again.existing is not None and again.existing.spec


def test_every_field_of_the_source_spec_schema_is_described():
    schema = source_spec.schema()
    models = {"SourceSpec": schema, **schema["$defs"]}
    bare = [
        f"{m}.{k}" for m, s in models.items() for k, v in s.get("properties", {}).items() if not v.get("description")
    ]
    assert bare == []


def _untracked(root) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True
    )
    return [line[3:] for line in out.stdout.splitlines()]


@pytest.mark.slow  # a mock API server and a real bizon run
@pytest.mark.parametrize("version", VERSIONS)
def test_the_check_config_s_command_runs_as_printed_and_writes_only_ignored_files(make_tree, version):
    """Its comment once printed `http://127.0.0.1:PORT` and no way to start a mock, then two commands with the mock
    on a fixed port another job may hold; the run left forge_check.json at the tree's root. Now one command serves
    the mock on a free port for the run's length. The records' source_timestamp is their cursor_field, not the time
    of extraction."""
    ws = make_ws(make_tree(version))
    assert describe_source(ws, parse_spec(TICKETS)).ok and render_source(ws, "tickets").ok
    check = (ws.root / Connector("tickets", "source").check_rel).read_text()
    (run,) = [line[len("#   ") :] for line in check.splitlines() if line.startswith("#   ")]
    assert "mock-api" in run and "--run" in run and "--port" not in run
    done = subprocess.run(run, shell=True, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert all(p.startswith(("bizon/connectors/sources/tickets/", "tests/")) for p in _untracked(ws.root))
    rows = [json.loads(line) for line in (ws.state_dir / "forge_check_tickets.json").read_text().splitlines()]
    assert len(rows) > 10
    for row in rows:
        updated = json.loads(row["source_data"])["updated_at"]
        assert datetime.fromisoformat(row["source_timestamp"]) == datetime.fromisoformat(updated.replace("Z", "+00:00"))


@pytest.mark.slow  # two validations, the second full
def test_cli_generate_of_a_source_prints_its_next_command_and_that_prints_the_run(make_tree, tmp_path):
    """generate printed no next step: after fast, the full validation as a command; after full, the example's
    variables and its run, as validate_source answers."""
    root = make_tree("0.6.4")
    spec = tmp_path / "tickets.json"
    spec.write_text(json.dumps(TICKETS))
    forge = [sys.executable, "-m", "bizon_forge"]
    fast = subprocess.run(
        [*forge, "generate", str(spec), "--workspace", str(root)], capture_output=True, text=True, timeout=180
    )
    assert fast.returncode == 0, fast.stdout + fast.stderr
    command = fast.stdout.split("next: ", 1)[1].split(": ", 1)[1].strip()
    assert command.endswith(f"validate tickets --source --workspace {root} --level full")
    full = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stdout + full.stderr
    live = f"validate tickets --source --workspace {root} --level live --save recorded` reads 3 pages a stream"
    assert live in full.stdout  # the CLI's own command, not the MCP call
    # The variable first: the live read needs it too (it once came after, and the live command failed as printed).
    first = "next: The example config reads the real API. It reads TICKETS_TOKEN: set it"
    assert first in full.stdout and full.stdout.index(first) < full.stdout.index(live)
    assert "Last, the whole sync; run it with: " in full.stdout


# -- GraphQL with client credentials: a CRM that misbehaves like real ones ---------------------------------------

FIELDS = "edges { cursor node { id name updatedAt } } pageInfo { hasNextPage endCursor }"
QUERIES = {
    "contacts": "query($first: Int, $after: String, $since: DateTime) "
    "{ contacts(first: $first, after: $after, updatedSince: $since) { " + FIELDS + " } }",
    "companies": "query($first: Int, $after: String) { companies(first: $first, after: $after) { " + FIELDS + " } }",
}
NODES = {"contacts": 13, "companies": 9}
CLIENT_ID, CLIENT_SECRET = "crm-client", "crm-secret"
CRM = {
    "name": "crm_graphql",
    "base_url": "{url}/api",
    "auth": "client_credentials",
    "token_url": "{url}/oauth/token",
    "scopes": ["crm.read", "crm.list"],
    "body_errors": {"retryable_codes": ["THROTTLED"], "reauth_codes": ["UNAUTHENTICATED"]},
    "error_handling": {"backoff_seconds": 0.1, "max_retries": 3},
    "streams": [
        {
            "name": "contacts",
            "endpoint": "/graphql",
            "connection_path": "data.contacts",
            "body": {"query": QUERIES["contacts"], "variables": {}},
            "cursor_field": "updatedAt",
            "updated_after_param": "variables.since",
            "pagination": {"pattern": "graphql", "page_size": 50},
        },
        {
            "name": "companies",
            "endpoint": "/graphql",
            "connection_path": "data.companies",
            "land": "edge",
            "id_field": "node.id",
            "body": {"query": QUERIES["companies"]},
            "pagination": {"pattern": "graphql", "page_size": 50},
        },
    ],
}


class GraphqlCrm:
    """Both connections on one POST /api/graphql, told apart by the query; tokens from /oauth/token (client
    credentials, checked). It caps the page size at 4 whatever `first` asks, serves a short second page (2 nodes),
    and a last page that carries nodes with hasNextPage false. The token dies after the 2nd page served (answered
    401) and after the 5th (answered UNAUTHENTICATED inside a 200); each connection's second page is THROTTLED
    once (retryAfter 1 s, in a 200); a companies page answers 502 with an HTML body, then an answer cut mid-body.
    Under /broken, contacts' second page is a query error inside a 200, on every try."""

    CAP = 4

    def __init__(self):
        self.nodes = {
            name: [
                {"id": f"{name}-{i}", "name": f"ü {i}", "updatedAt": f"2024-03-{i + 1:02d}T00:00:00Z"} for i in range(n)
            ]
            for name, n in NODES.items()
        }
        self.lock = threading.Lock()
        self.token: str | None = None
        self.dead_as = "401"
        self.deaths = {2: "401", 5: "UNAUTHENTICATED"}  # pages served -> the token dies, answered so
        self.token_forms: list[dict] = []
        self.pages_served = 0
        self.throttled: set[str] = set()
        self.faults = {("companies", 6): ["502", "cut"]}
        self.log: list[dict] = []  # every request to /graphql: stream, start, answer, when, variables
        self.errors: list[str] = []  # what the handler raised (a test's bug, shown when a run hangs)
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with crm.lock:
                    try:
                        if self.path == "/oauth/token":
                            return crm.token_answer(self, {k: v[-1] for k, v in parse_qs(raw.decode()).items()})
                        return crm.answer(self, json.loads(raw or b"null"))
                    except Exception as error:
                        crm.errors.append(repr(error))
                        raise

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def send(self, handler, status: int, data: bytes, kind: str = "application/json", cut: bool = False) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2] if cut else data)
        handler.close_connection = cut

    def error(self, handler, code: str, message: str, **extensions) -> None:
        errors = [{"message": message, "extensions": {"code": code, **extensions}}]
        self.send(handler, 200, json.dumps({"errors": errors, "data": None}).encode())

    def token_answer(self, handler, form: dict) -> None:
        self.token_forms.append(form)
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
            "client_credentials",
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return self.send(handler, 401, b'{"error": "invalid_client"}')
        self.token = f"gq-{len(self.token_forms)}"
        answer = {"access_token": self.token, "token_type": "Bearer", "expires_in": 3600}
        self.send(handler, 200, json.dumps(answer).encode())

    def answer(self, handler, body) -> None:
        path = urlsplit(handler.path).path
        variables = (body or {}).get("variables") or {}
        stream = next((n for n, q in QUERIES.items() if (body or {}).get("query") == q), None)
        start = int(str(variables.get("after") or "cur-0").removeprefix("cur-"))
        entry = {"path": path, "stream": stream, "start": start, "when": time.monotonic(), "variables": variables}
        self.log.append(entry)
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            entry["answer"] = self.dead_as
            if self.dead_as == "401":
                return self.send(handler, 401, b'{"message": "token expired"}')
            return self.error(handler, "UNAUTHENTICATED", "The access token expired.")
        if stream is None or path not in ("/api/graphql", "/broken/api/graphql"):
            entry["answer"] = "404"
            return self.send(handler, 404, b'{"message": "no such query"}')
        entry["answer"] = self.misbehave(handler, path, stream, start)
        if entry["answer"] is None:
            entry["answer"] = "page"
            self.page(handler, stream, start, variables)

    def misbehave(self, handler, path: str, stream: str, start: int) -> str | None:
        if path.startswith("/broken") and stream == "contacts" and start == self.CAP:
            self.error(handler, "GRAPHQL_VALIDATION_FAILED", 'Cannot query field "nmae" on type "Contact".')
            return "invalid"
        if start == self.CAP and stream not in self.throttled:
            self.throttled.add(stream)
            self.error(handler, "THROTTLED", "Too many requests.", retryAfter=1)
            return "THROTTLED"
        fault = (self.faults.get((stream, start)) or [None]).pop(0) if (stream, start) in self.faults else None
        if fault == "502":
            self.send(handler, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        elif fault == "cut":
            self.send(handler, 200, json.dumps({"data": {stream: {"edges": []}}}).encode() * 4, cut=True)
        return fault

    def page(self, handler, stream: str, start: int, variables: dict) -> None:
        nodes = [n for n in self.nodes[stream] if n["updatedAt"] >= (variables.get("since") or "")[:10]]
        size = min(int(variables.get("first") or 10), self.CAP) - (2 if start == self.CAP else 0)
        chunk = nodes[start : start + size]
        end = start + len(chunk)
        edges = [{"cursor": f"cur-{start + i + 1}", "node": node} for i, node in enumerate(chunk)]
        info = {"hasNextPage": end < len(nodes), "endCursor": f"cur-{end}"}
        self.send(handler, 200, json.dumps({"data": {stream: {"edges": edges, "pageInfo": info}}}).encode())
        self.pages_served += 1
        if self.pages_served in self.deaths:
            self.token, self.dead_as = None, self.deaths[self.pages_served]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# The engine's loops, in the workspace's interpreter: get() (or get_records_after from `since`) until {}.
GRAPHQL_DRIVER = r"""
import importlib, json, sys
from datetime import datetime
from bizon.source.models import SourceIncrementalState
out = []
for case in json.loads(sys.stdin.read()):
    module = importlib.import_module(case["module"])
    source_class = next(v for k, v in vars(module).items() if k.endswith("Source") and k != "AbstractSource")
    config = source_class.get_config_class()(name=case["name"], stream=case["stream"], base_url=case["base_url"],
                                             authentication=case["auth"])
    source = source_class(config)
    since = case.get("since")
    state = None
    if since:
        state = SourceIncrementalState(last_run=datetime.fromisoformat(since), state={}, cursor_field="updatedAt")
    got, pagination, error = [], {}, None
    try:
        for _ in range(40):
            if state:
                iteration = source.get_records_after(source_state=state, pagination=pagination)
            else:
                iteration = source.get(pagination=pagination)
            got += [{"id": r.id, "data": r.data} for r in iteration.records]
            pagination = iteration.next_pagination
            if not pagination:
                break
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    out.append({"records": got, "ended": not pagination, "error": error})
print(json.dumps(out))
"""


@pytest.mark.slow  # a GraphQL server and a subprocess under each bizon
@pytest.mark.parametrize("version", VERSIONS)
def test_a_two_connection_graphql_source_with_client_credentials_reads_every_node_once(make_tree, version):
    crm = GraphqlCrm()
    try:
        ws = make_ws(make_tree(version))
        spec = json.loads(json.dumps(CRM).replace("{url}", crm.url))
        described_spec = describe_source(ws, parse_spec(spec))
        assert described_spec.ok, described_spec.findings
        rendered = render_source(ws, "crm_graphql")
        assert rendered.ok and rendered.findings == [], rendered
        module = Connector("crm_graphql", "source").code_module
        auth = {
            "type": "oauth",
            "params": {
                "token_refresh_endpoint": f"{crm.url}/oauth/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_type": "client_credentials",
                "scopes": ["crm.read", "crm.list"],
            },
        }
        case = {"module": module, "name": "crm_graphql", "base_url": f"{crm.url}/api", "auth": auth}
        cases = [
            {**case, "stream": "contacts"},
            {**case, "stream": "companies"},
            {**case, "stream": "contacts", "since": "2024-03-07T00:00:00+00:00"},
            {**case, "stream": "contacts", "base_url": f"{crm.url}/broken/api"},
        ]
        done = subprocess.run(
            [ws.python(), "-c", GRAPHQL_DRIVER],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            env=ws.env(),
            cwd=ws.root,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        contacts, companies, newer, broken = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        crm.close()
    for got in (contacts, companies, newer):
        assert got["error"] is None and got["ended"], got["error"]
    # every node once, in order; contacts land nodes, companies land whole edges (id at node.id)
    assert [r["data"] for r in contacts["records"]] == crm.nodes["contacts"]
    assert [r["id"] for r in contacts["records"]] == [n["id"] for n in crm.nodes["contacts"]]
    assert [r["data"]["node"] for r in companies["records"]] == crm.nodes["companies"]
    assert [r["id"] for r in companies["records"]] == [n["id"] for n in crm.nodes["companies"]]
    assert all(r["data"]["cursor"].startswith("cur-") for r in companies["records"])
    full = [e for e in crm.log if e["path"] == "/api/graphql" and "since" not in e["variables"]]
    for stream, count in NODES.items():
        pages = [e["start"] for e in full if e["stream"] == stream and e["answer"] == "page"]
        assert pages == sorted(set(pages)) and pages[0] == 0, (stream, pages)  # no page asked twice once served
        assert count not in pages, (stream, pages)  # the last page had nodes: nothing asked after it
    assert {e["variables"].get("first") for e in crm.log} == {50}  # asked 50, got 4: read on, not taken for the end
    # the token died twice, answered 401 then UNAUTHENTICATED in a 200: a new token each time, the same page again
    answers = [e["answer"] for e in full]
    assert answers.count("401") == 1 and answers.count("UNAUTHENTICATED") == 1, answers
    for i, answer in enumerate(answers):
        if answer in ("401", "UNAUTHENTICATED", "THROTTLED", "502", "cut"):
            assert full[i + 1]["start"] == full[i]["start"] and full[i + 1]["stream"] == full[i]["stream"], answers
        if answer == "THROTTLED":
            assert full[i + 1]["when"] - full[i]["when"] >= 0.95, "retryAfter 1 s honoured"
    assert {"502", "cut"} <= set(answers)
    assert crm.token_forms[0] == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scope": "crm.read crm.list",
    }
    # incremental: the filter at variables.since, only the newer nodes
    since = {e["variables"].get("since") for e in crm.log if e["path"] == "/api/graphql" and "since" in e["variables"]}
    assert since == {"2024-03-07T00:00:00+00:00"}
    assert [r["id"] for r in newer["records"]] == [f"contacts-{i}" for i in range(6, 13)]
    # an error inside a 200 fails the read with the API's message, after the page before it
    assert broken["error"] and 'Cannot query field "nmae"' in broken["error"], broken
    assert "GRAPHQL_VALIDATION_FAILED" in broken["error"] and len(broken["records"]) == 4
    # the source's own rendered tests pass too (graphql, client credentials, errors in a 200)
    run = subprocess.run(
        [
            ws.python(),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore",
            Connector("crm_graphql", "source").tests_dir,
        ],
        capture_output=True,
        text=True,
        env=ws.env(),
        cwd=ws.root,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.slow  # a GraphQL server and four real bizon runs per version
@pytest.mark.parametrize("version", VERSIONS)
def test_real_bizon_runs_land_every_node_of_both_connections_once_and_an_incremental_run_only_newer(
    make_tree, version, tmp_path
):
    """Issue 22's done-when: the rendered GraphQL source under `bizon run` (the example config, its env:// values in
    the tree's .env) against a server that misbehaves (capped and short pages, a token dying twice, THROTTLED in a
    200, a 502 with HTML, a cut answer, a last page with nodes) lands every node once; incremental sends `since`
    where the spec says and brings only what changed after the first run."""
    import yaml

    crm = GraphqlCrm()
    try:
        ws = make_ws(make_tree(version))
        assert describe_source(ws, parse_spec(json.loads(json.dumps(CRM).replace("{url}", crm.url)))).ok
        assert render_source(ws, "crm_graphql").ok
        example = yaml.safe_load((ws.root / Connector("crm_graphql", "source").example_rel).read_text())
        env_text = (ws.root / Connector("crm_graphql", "source").example_rel).read_text()
        variables = sorted(set(re.findall(r"env://([A-Z0-9_]+)", env_text)))
        values = {v: CLIENT_ID if v.endswith("CLIENT_ID") else CLIENT_SECRET for v in variables}
        (ws.root / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))

        def run(stream: str, mode: str, landed: str) -> list[dict]:
            folder = tmp_path / f"{stream}-{mode}"
            folder.mkdir(exist_ok=True)
            config = {
                **example,
                "name": f"crm_{stream}_{mode}",
                "source": {**example["source"], "stream": stream, "sync_mode": mode},
                "destination": {"name": "file", "config": {"destination_id": landed}},
                # not 0: bizon's producer and consumer threads would discover the source (ast.parse) at the same
                # moment, and CPython 3.11 then fails one ("AST constructor recursion depth mismatch"), or hangs
                "engine": {"runner": {"type": "thread", "config": dict(SMOKE_RUNNER)}},
            }
            (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
            cmd = [ws.python(), "-m", "bizon.cli.main", "run", str(folder / "config.yml"), "--runner", "thread"]
            try:
                done = subprocess.run(cmd, cwd=ws.root, env=ws.env(), capture_output=True, text=True, timeout=90)
            except subprocess.TimeoutExpired as stuck:
                raise AssertionError(f"{crm.errors} {crm.log[-6:]} {str(stuck.stderr)[-1500:]}") from None
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
            rows = [json.loads(ln) for ln in (ws.root / f"{landed}.json").read_text().splitlines() if ln.strip()]
            return [json.loads(r["source_data"]) for r in rows]

        for stream, land in (("contacts", lambda d: d), ("companies", lambda d: d["node"])):
            data = run(stream, "full_refresh", f"landed_{stream}")
            assert [land(d) for d in data] == crm.nodes[stream], stream  # every node once, in order
        first = run("contacts", "incremental", "incremental_contacts")
        assert [d["id"] for d in first] == [n["id"] for n in crm.nodes["contacts"]]
        with crm.lock:  # two contacts change after that run
            for node in crm.nodes["contacts"][3:5]:
                node["updatedAt"] = "2099-01-02T00:00:00Z"
            asked = len(crm.log)
        later = run("contacts", "incremental", "incremental_contacts")
        # the reads of the second run (bizon's check_connection asks `first: 1` once, unfiltered, before them)
        reads = [e for e in crm.log[asked:] if e["stream"] == "contacts" and e["variables"].get("first", 0) > 1]
        sent = [e["variables"].get("since") for e in reads]
    finally:
        crm.close()
    assert sent and all(sent), sent  # the filter went at variables.since on every request of the second run
    newer = [d["id"] for d in later if d["updatedAt"].startswith("2099")]
    assert sorted(newer) == ["contacts-3", "contacts-4"], newer
    assert len(later) in (2, len(first) + 2), len(later)  # the file destination replaces or appends: 2 new either way
