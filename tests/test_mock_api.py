"""The mock API of validate_source, walked as a correct source would walk it (requests, honouring Retry-After):
every pattern with every auth kind brings every record exactly once and the chain ends; the faults, the auth
refusals, the oauth refresh, the incremental filter, recorded pages and the report."""

import ast
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from bizon_forge.spec.source import Pagination, SourceSpec, StreamSpec
from bizon_forge.validators.fakes import mock_api
from bizon_forge.validators.fakes.mock_api import CREDENTIALS, start

PATTERNS = ("cursor", "next_url", "offset", "none", "post_query")
AUTHS = ("none", "api_key", "bearer", "basic", "oauth")
PAGINATION = {
    "cursor": {
        "pattern": "cursor",
        "page_size": 5,
        "next_cursor_path": "meta.next_cursor",
        "has_more_path": "has_more",
    },
    "next_url": {"pattern": "next_url", "page_size": 5, "next_url_path": "links.next"},
    "offset": {"pattern": "offset", "page_size": 5, "total_path": "total"},
    "none": {"pattern": "none"},
    "post_query": {"pattern": "post_query", "page_size": 5, "cursor_param": "start_cursor"},
}


@pytest.fixture
def folder():
    """A temporary folder outside pytest's tmp_path: its end-of-session sweep of old runs costs seconds here."""
    with tempfile.TemporaryDirectory(prefix="forge-mock-") as name:
        yield Path(name)


def spec_of(pattern: str, auth: str = "none", **stream: object) -> dict:
    """A spec as describe_source stores it (defaults filled in by SourceSpec)."""
    one = StreamSpec(name="users", endpoint="/users", pagination=Pagination(**PAGINATION[pattern]), **stream)
    return SourceSpec(name="demo", base_url="https://api.example.com/v2", auth=auth, streams=[one]).model_dump()


class Client:
    """What a correct source does: its auth, the spec's pattern, retries on 429 (after Retry-After) and 5xx."""

    def __init__(self, api: mock_api.MockApi, spec: dict, credentials: dict = CREDENTIALS):
        self.api, self.spec, self.c = api, spec, credentials
        self.session = requests.Session()
        self.token_expires = 0.0
        auth = spec["auth"]
        if auth == "api_key":
            prefix = spec["api_key_prefix"]
            self.session.headers[spec["api_key_header"]] = f"{prefix} {credentials['api_key']}".strip()
        elif auth == "bearer":
            self.session.headers["Authorization"] = f"Bearer {credentials['token']}"
        elif auth == "basic":
            self.session.auth = (credentials["username"], credentials["password"])

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        for _ in range(5):
            if self.spec["auth"] == "oauth" and time.monotonic() >= self.token_expires:
                form = {"grant_type": "refresh_token", **{k: self.c[k] for k in ("client_id", "client_secret")}}
                answer = requests.post(self.api.token_url, data={**form, "refresh_token": self.c["refresh_token"]})
                answer.raise_for_status()
                self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
                self.token_expires = time.monotonic() + answer.json()["expires_in"] * 0.9
            response = self.session.request(method, url, **kwargs)
            if response.status_code == 429:
                time.sleep(float(response.headers["Retry-After"]))
            elif response.status_code < 500:
                response.raise_for_status()
                return response
        raise AssertionError(f"{url}: still failing after 5 tries")

    def walk(self, stream: dict, **extra: str) -> list[dict]:
        """Every page of a stream, in its pattern, until the chain ends; extra: the incremental parameter."""
        p, path = stream["pagination"], stream["records_path"]
        url = self.api.url + "/" + stream["endpoint"].strip("/")
        records: list[dict] = []
        cursor, offset, next_url = None, 0, None
        for _ in range(50):
            if p["pattern"] == "post_query":
                body = {
                    p["page_size_param"]: p["page_size"],
                    **extra,
                    **({p["cursor_param"]: cursor} if cursor else {}),
                }
                data = self.request("POST", url, json=body).json()
            elif p["pattern"] == "next_url" and next_url:
                data = self.request("GET", next_url).json()
            else:
                params = {p["page_size_param"]: p["page_size"], **extra}
                params.update({p["cursor_param"]: cursor} if cursor else {})
                params.update({p["offset_param"]: offset} if p["pattern"] == "offset" else {})
                data = self.request("GET", url, params=params if p["pattern"] != "none" else extra).json()
            page = mock_api._get(data, path) if path else data
            records += page
            if p["pattern"] == "none":
                return records
            if p["pattern"] == "offset":
                offset += len(page)
                if not page or (p["total_path"] and offset >= mock_api._get(data, p["total_path"])):
                    return records
            elif p["pattern"] == "next_url":
                next_url = mock_api._get(data, p["next_url_path"])
                if not next_url:
                    return records
            else:
                cursor = mock_api._get(data, p["next_cursor_path"])
                if not cursor or (p["has_more_path"] and not mock_api._get(data, p["has_more_path"])):
                    return records
        raise AssertionError("the chain never ended")


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_correct_client_gets_every_record_once_and_the_chain_ends(pattern, auth):
    spec = spec_of(pattern, auth)
    with start(spec, mode="clean") as api:
        records = Client(api, spec).walk(spec["streams"][0])
        report = api.report()
    users = report["streams"]["users"]
    assert records == users["records"] and len(records) == mock_api.RECORDS_PER_STREAM
    assert len(set(users["ids"])) == len(users["ids"])
    assert users["ended"] and report["unauthorized"] == 0 and users["faults"] == []
    pages = {"cursor": 6, "next_url": 6, "post_query": 6, "offset": 5, "none": 1}[pattern]  # A/B/E: one empty last
    assert users["pages_served"] == pages == users["requests"]
    served = [r for r in report["requests"] if r["stream"] == "users"]
    assert all(r["auth_header"] == (auth != "none") for r in served)
    if pattern in ("cursor", "post_query", "next_url"):
        last = served[-1]
        assert last["page"] == 5 and last["status"] == 200


def test_records_are_full_json_with_non_ascii_nesting_and_a_null():
    with start(spec_of("none"), mode="clean") as api:
        raw = requests.get(api.url + "/users").content.decode("utf-8")
        records = api.report()["streams"]["users"]["records"]
    assert json.loads(raw)["data"] == records
    first = records[0]
    assert first["archived_at"] is None and isinstance(first["address"]["geo"], dict)
    assert any(ord(ch) > 127 for r in records for ch in r["name"])
    assert "Ż" in raw  # served as UTF-8, not \\u escapes


def test_records_path_empty_serves_the_bare_array_and_nested_paths_nest():
    spec = spec_of("offset", records_path="")
    spec["streams"][0]["pagination"]["total_path"] = None  # the end is the short page
    with start(spec, mode="clean") as api:
        assert Client(api, spec).walk(spec["streams"][0]) == api.report()["streams"]["users"]["records"]
        assert isinstance(requests.get(api.url + "/users").json(), list)
    for pattern in ("cursor", "next_url", "post_query", "offset"):  # offset: total_path has nowhere to go
        with pytest.raises(ValueError, match="needs a cursor, next URL or total"):
            start(spec_of(pattern, records_path=""))
    spec = spec_of("cursor", records_path="result.items", id_field="meta.uid")
    with start(spec, mode="clean") as api:
        records = Client(api, spec).walk(spec["streams"][0])
        assert [r["meta"]["uid"] for r in records] == api.report()["streams"]["users"]["ids"]


def test_unreliable_mode_answers_429_with_retry_after_and_503_once_each_on_the_way():
    def run(pattern: str, out: dict) -> None:
        spec = spec_of(pattern)
        with start(spec) as api:
            out["records"] = Client(api, spec).walk(spec["streams"][0])
            out["report"] = api.report()

    results: dict[str, dict] = {p: {} for p in PATTERNS}
    threads = [threading.Thread(target=run, args=(p, results[p])) for p in PATTERNS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pattern, out in results.items():
        users = out["report"]["streams"]["users"]
        assert out["records"] == users["records"], pattern
        assert [f["status"] for f in users["faults"]] == [429, 503], pattern
        assert [f["page"] for f in users["faults"]] == ([0, 0] if pattern == "none" else [1, 2]), pattern
        assert users["requests"] == users["pages_served"] + 2 and users["ended"]
        assert out["report"]["early_retries"] == 0, pattern
        retry = [r for r in out["report"]["requests"] if r["status"] == 429]
        assert len(retry) == 1


def test_a_retry_sooner_than_retry_after_is_counted_early():
    with start(spec_of("none")) as api:
        first = requests.get(api.url + "/users")
        assert first.status_code == 429 and first.headers["Retry-After"] == "1"
        assert requests.get(api.url + "/users").status_code == 503  # straight back: early
        assert requests.get(api.url + "/users").status_code == 200
        report = api.report()
    assert report["early_retries"] == 1 == report["streams"]["users"]["early_retries"]
    assert [r["early"] for r in report["requests"]] == [False, True, False]


def test_faults_follow_the_request_header_over_the_mode():
    with start(spec_of("none")) as api:
        assert requests.get(api.url + "/users", headers={"X-Forge-Mock-Mode": "clean"}).status_code == 200
        assert requests.get(api.url + "/users").status_code == 429
    with start(spec_of("none"), mode="clean") as api:
        assert requests.get(api.url + "/users", headers={"X-Forge-Mock-Mode": "unreliable"}).status_code == 429


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("auth", "headers", "params"),
    [
        ("api_key", {}, {}),
        ("api_key", {"Authorization": "Bearer wrong"}, {}),
        ("api_key", {"X-Api-Key": CREDENTIALS["api_key"]}, {}),  # the right key in the wrong header
        ("api_key", {}, {"api_key": CREDENTIALS["api_key"]}),  # in the query
        ("api_key", {"Authorization": f"Bearer {CREDENTIALS['api_key']}"}, {}),  # a prefix the spec has not
        ("bearer", {}, {}),
        ("bearer", {"Authorization": "Bearer nope"}, {}),
        ("bearer", {"Authorization": CREDENTIALS["token"]}, {}),  # no scheme
        ("basic", {"Authorization": basic(CREDENTIALS["username"], "nope")}, {}),
        ("basic", {"Authorization": f"Bearer {CREDENTIALS['token']}"}, {}),
        ("oauth", {"Authorization": f"Bearer {CREDENTIALS['refresh_token']}"}, {}),  # not an access token
        ("oauth", {}, {}),
    ],
)
def test_wrong_or_missing_credentials_get_401_every_time(auth, headers, params):
    with start(spec_of("none", auth)) as api:
        for _ in range(3):
            assert requests.get(api.url + "/users", headers=headers, params=params).status_code == 401
        report = api.report()
    assert report["unauthorized"] == 3 == report["streams"]["users"]["unauthorized"]
    assert all(r["status"] == 401 and r["reason"] for r in report["requests"])
    assert report["streams"]["users"]["faults"] == []  # a refused request uses up no fault


def test_api_key_goes_in_the_spec_s_header_with_exactly_the_spec_s_prefix():
    key = CREDENTIALS["api_key"]
    spec = {**spec_of("none", "api_key"), "api_key_header": "x-api-key"}
    with start(spec, mode="clean") as api:
        assert requests.get(api.url + "/users", headers={"X-API-Key": key}).status_code == 200  # names are caseless
        assert requests.get(api.url + "/users", headers={"x-api-key": f"Token {key}"}).status_code == 401
        assert requests.get(api.url + "/users", headers={"Authorization": key}).status_code == 401
    with start({**spec, "api_key_prefix": "Token"}, mode="clean") as api:
        assert requests.get(api.url + "/users", headers={"x-api-key": f"Token {key}"}).status_code == 200
        assert requests.get(api.url + "/users", headers={"x-api-key": key}).status_code == 401
        assert requests.get(api.url + "/users", headers={"x-api-key": f"Bearer {key}"}).status_code == 401


def test_oauth_issues_short_lived_tokens_and_a_refused_request_s_token_lives_on_for_its_retry():
    spec = spec_of("none", "oauth")
    form = {"grant_type": "refresh_token", **{k: CREDENTIALS[k] for k in ("client_id", "client_secret")}}
    with start(spec, token_ttl=1) as api:  # unreliable: the one page answers 429, then 503
        assert requests.post(api.token_url, data={**form, "refresh_token": "stolen"}).status_code == 401
        assert requests.post(api.token_url, json={**form, "client_secret": "x"}).status_code == 401

        def bearer() -> dict:
            token = requests.post(api.token_url, data={**form, "refresh_token": CREDENTIALS["refresh_token"]}).json()
            assert token["expires_in"] == 1 and token["token_type"] == "Bearer"
            return {"Authorization": f"Bearer {token['access_token']}"}

        retried, idle = bearer(), bearer()
        assert requests.get(api.url + "/users", headers=retried).status_code == 429
        time.sleep(1 + mock_api.TOKEN_GRACE_S + 0.1)
        expired = requests.get(api.url + "/users", headers=idle)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
        assert requests.get(api.url + "/users", headers=retried).status_code == 503  # its retry, token still good
        assert len(Client(api, spec).walk(spec["streams"][0])) == mock_api.RECORDS_PER_STREAM  # a fresh token
        report = api.report()
    assert report["token_requests"] == 2 + 2 + 1 and report["tokens_issued"] == 3 and report["token_refused"] == 2
    assert [r["status"] for r in report["requests"] if r["path"] == "/oauth/token"] == [401, 401, 200, 200, 200]
    assert report["unauthorized"] == 1 and report["early_retries"] == 0


def test_incremental_filters_server_side_in_the_query_and_carries_the_filter_in_the_cursor():
    spec = spec_of("cursor", cursor_field="updated_at", updated_after_param="updated_after")
    with start(spec, mode="clean") as api:
        everything = api.report()["streams"]["users"]["records"]
        stamps = sorted(r["updated_at"] for r in everything)
        assert len(set(stamps)) == len(stamps)  # spread over time
        since = stamps[10]
        client = Client(api, spec)
        after = client.walk(spec["streams"][0], updated_after=since)
        assert sorted(r["updated_at"] for r in after) == stamps[11:]
        # the '+' of a tz offset a hand-built URL sends as a space is read back
        plus = since.replace("Z", "+00:00").replace("+", " ")
        data = requests.get(api.url + "/users", params={"updated_after": plus, "limit": 100}).json()
        assert len(data["data"]) == 5
        report = api.report()
    assert report["streams"]["users"]["params"] == {"query": ["cursor", "limit", "updated_after"], "body": []}
    assert all("updated_after" in r["query"] for r in report["requests"][:1])


def test_a_cursor_sent_in_the_wrong_place_is_unfiltered_and_the_report_says_where_it_went():
    spec = spec_of("post_query", cursor_field="updated_at", updated_after_param="updated_after")
    with start(spec, mode="clean") as api:
        since = "2099-01-01T00:00:00Z"
        in_body = requests.post(api.url + "/users", json={"updated_after": since}).json()
        in_query = requests.post(api.url + "/users", params={"updated_after": since}, json={}).json()
        report = api.report()
    assert in_body["data"] == [] and len(in_query["data"]) == 5
    assert report["streams"]["users"]["params"] == {"query": ["updated_after"], "body": ["updated_after"]}
    assert [r["method"] for r in report["requests"]] == ["POST", "POST"]


def test_touch_changes_records_now_for_a_second_incremental_run():
    spec = spec_of("offset", cursor_field="updated_at", updated_after_param="since")
    with start(spec, mode="clean") as api:
        started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 1))
        ids = api.touch("users", 3)
        again = Client(api, spec).walk(spec["streams"][0], since=started)
    assert [r["id"] for r in again] == ids and len(ids) == 3


def test_wrong_method_unknown_path_and_foreign_cursor_are_refused_and_logged():
    with start(spec_of("post_query"), mode="clean") as api:
        assert requests.get(api.url + "/users").status_code == 405
        assert requests.get(api.url + "/nope").status_code == 404
        assert requests.post(api.url + "/users", json={"start_cursor": "garbage"}).status_code == 400
        assert requests.post(api.url + "/users", json={"limit": "ten"}).status_code == 400
        report = api.report()
    assert [(r["path"], r["stream"], r["status"]) for r in report["requests"]] == [
        ("/v2/users", "users", 405),
        ("/v2/nope", None, 404),
        ("/v2/users", "users", 400),
        ("/v2/users", "users", 400),
    ]
    assert "not a cursor" in report["requests"][2]["reason"] and report["streams"]["users"]["pages_served"] == 0


def write_pages(folder, pages):
    folder.mkdir(parents=True, exist_ok=True)
    for n, page in enumerate(pages, 1):
        (folder / f"page-{n:03d}.json").write_text(json.dumps(page))


REAL = [{"id": f"r{n}", "title": f"réel {n}", "nested": {"n": n}} for n in range(1, 8)]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_recorded_pages_are_served_in_the_pattern_and_end_the_chain(folder, pattern):
    spec = spec_of(pattern)
    p = spec["streams"][0]["pagination"]
    chunks = [REAL[:3], REAL[3:6], REAL[6:]] if pattern != "none" else [REAL]
    pages = []
    for n, chunk in enumerate(chunks):
        page: dict = {"data": chunk}
        if pattern in ("cursor", "post_query"):  # the real API's opaque cursors, the last one still set
            mock_api._put(page, p["next_cursor_path"], f"real-cursor-{n}")
            if p["has_more_path"]:
                mock_api._put(page, p["has_more_path"], True)
        elif pattern == "next_url":
            following = f"https://api.example.com/v2/users?page={n + 2}" if n < len(chunks) - 1 else None
            mock_api._put(page, p["next_url_path"], following)
        elif pattern == "offset":
            page["total"] = len(REAL)
        pages.append(page)
    write_pages(folder / "users", pages)
    mode = "unreliable" if pattern == "cursor" else "clean"  # faults on recorded pages once: each costs 1 s
    with start(spec, recorded=folder, mode=mode) as api:
        records = Client(api, spec).walk(spec["streams"][0])
        report = api.report()
    users = report["streams"]["users"]
    assert records == REAL == users["records"] and users["ended"]
    assert report["recorded"] == str(folder)
    assert [f["status"] for f in users["faults"]] == ([429, 503] if mode == "unreliable" else [])
    if pattern == "next_url":  # the real next URL's query, pointed at the mock
        assert report["requests"][-1]["query"] == {"page": "3", "forge_page": "2"}


def test_recorded_pages_in_the_folder_itself_for_one_stream_and_a_clear_error_when_missing(folder):
    write_pages(folder, [{"data": REAL}])
    with start(spec_of("none"), recorded=folder, mode="clean") as api:
        assert requests.get(api.url + "/users").json() == {"data": REAL}
    with pytest.raises(ValueError, match="page-001.json"):
        start(spec_of("none"), recorded=folder / "empty")


def test_report_over_http_and_counts_per_stream():
    spec = spec_of("offset")
    spec["streams"].append({**spec["streams"][0], "name": "teams", "endpoint": "teams/"})
    with start(spec, mode="clean") as api:
        Client(api, spec).walk(spec["streams"][1])
        report = requests.get(api.origin + "/_report").json()
    assert report["streams"]["users"]["requests"] == 0
    teams = report["streams"]["teams"]
    assert teams["path"] == "/v2/teams" and teams["requests"] == 5 and teams["records_served"] == 23
    assert teams["ids"][0] == "teams-0001" and report["credentials"] == CREDENTIALS
    assert isinstance(report["requests"][0].pop("at"), float)
    assert report["requests"][0] == {
        "method": "GET",
        "path": "/v2/teams",
        "stream": "teams",
        "query": {"limit": "5", "offset": "0"},
        "body": None,
        "auth_header": False,
        "early": False,
        "status": 200,
        "page": 0,
    }


def test_defaults_for_a_hand_written_spec_are_source_spec_s():
    stream = StreamSpec(name="x", endpoint="/x").model_dump()
    assert mock_api.PAGINATION_DEFAULTS == stream.pop("pagination")
    assert {k: stream[k] for k in mock_api.STREAM_DEFAULTS} == mock_api.STREAM_DEFAULTS
    hand = mock_api.normalized({"name": "x", "base_url": "http://h", "streams": [{"name": "x", "endpoint": "/x"}]})
    assert hand["streams"][0]["pagination"] == mock_api.PAGINATION_DEFAULTS
    spec = SourceSpec(name="x", base_url="http://h", streams=[]).model_dump()
    assert {k: spec[k] for k in ("auth", "api_key_header", "api_key_prefix")} == {
        k: hand[k] for k in ("auth", "api_key_header", "api_key_prefix")
    }


@pytest.mark.parametrize("command", ["script", "cli"])
def test_the_command_prints_the_url_and_serves(folder, command):
    (folder / "spec.json").write_text(json.dumps(spec_of("none", "bearer")))
    if command == "script":
        argv = [sys.executable, mock_api.__file__, str(folder / "spec.json"), "--clean"]
    else:
        argv = [sys.executable, "-m", "bizon_forge", "mock-api", str(folder / "spec.json"), "--clean"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
            ok = requests.get(url + "/users", headers={"Authorization": f"Bearer {CREDENTIALS['token']}"})
            assert len(ok.json()["data"]) == mock_api.RECORDS_PER_STREAM
        finally:
            process.terminate()


def test_a_pagination_that_never_ends_gets_410_past_the_cap():
    with start(spec_of("cursor"), mode="clean") as api:
        cap = mock_api.REQUEST_CAP_FACTOR * (6 + 2) + 20  # 23 records by 5: five pages and the empty one
        statuses = [requests.get(api.url + "/users").status_code for _ in range(cap + 2)]  # page 1, again and again
        users = api.report()["streams"]["users"]
    assert statuses == [200] * cap + [410, 410] and users["capped"] == 2 and not users["ended"]
    with start(spec_of("none"), mode="clean", request_cap=None) as api:
        assert all(requests.get(api.url + "/users").status_code == 200 for _ in range(100))


def test_a_page_size_cap_shows_an_offset_source_that_steps_by_page_size():
    spec = spec_of("offset")
    with start(spec, mode="clean", page_size_cap=3) as api:
        assert len(Client(api, spec).walk(spec["streams"][0])) == mock_api.RECORDS_PER_STREAM  # steps by len()
        guide = [requests.get(api.url + "/users", params={"offset": o, "limit": 5}).json() for o in range(0, 23, 5)]
    assert sum(len(page["data"]) for page in guide) == 15  # offset + page_size: 8 of 23 never asked for


def test_relative_next_links_when_asked():
    spec = spec_of("next_url")
    with start(spec, mode="clean", relative_next=True) as api:
        following = requests.get(api.url + "/users").json()["links"]["next"]
        assert following.startswith("/v2/users?page_token=")
        assert len(requests.get(api.origin + following).json()["data"]) == 5


@pytest.mark.parametrize(
    "sent",
    ["2025-03-01T10:00:00Z", "2025-03-01T10:00:00+00:00", "2025-03-01 10:00:00+00:00", "2025-03-01T10:00:00 00:00"]
    + ["2025-03-01T10:00:00", "2025-03-01T11:00:00+01:00", "2025-03-01T10:00:00.000001+00:00"],
)
def test_the_time_filter_reads_iso_8601_as_sources_send_it(sent):
    """Aware or naive (bizon 0.5.2's last_run), 'Z' or offset, and the space a hand-built URL makes of '+'."""
    moment = mock_api._parse_time(sent)
    assert moment.utcoffset() is not None
    assert abs(moment.timestamp() - mock_api._parse_time("2025-03-01T10:00:00Z").timestamp()) < 0.01


def test_the_module_runs_on_python_3_9():
    """validate_source may run it in the workspace's interpreter: 3.9 syntax, and a real 3.9 when there is one."""
    source = Path(mock_api.__file__).read_text()
    ast.parse(source, feature_version=(3, 9))
    assert "from __future__ import annotations" in source  # `X | None` in annotations stays a string
    candidates = [shutil.which("python3.9"), *map(str, Path.home().glob(".pyenv/versions/3.9*/bin/python"))]
    python = next((c for c in candidates if c and subprocess.run([c, "-V"], capture_output=True).returncode == 0), None)
    if python is None:
        pytest.skip("no Python 3.9 here")
    code = (
        "import mock_api, json, urllib.request as u; a = mock_api.start({'name': 'x', 'base_url': 'http://h', "
        "'streams': [{'name': 'x', 'endpoint': '/x'}]}, mode='clean'); "
        "print(len(json.load(u.urlopen(a.url + '/x'))['data']))"
    )
    ran = subprocess.run([python, "-c", code], cwd=Path(mock_api.__file__).parent, capture_output=True, text=True)
    assert ran.stdout.strip() == str(mock_api.RECORDS_PER_STREAM), ran.stderr


def test_a_post_query_reads_dotted_keys_as_paths_into_its_json_body():
    """GraphQL-style APIs nest the cursor and page size (variables.after): the mock reads them where they nest."""
    paging = Pagination(**{**PAGINATION["post_query"], "cursor_param": "variables.after"})
    paging.page_size_param = "variables.first"
    one = StreamSpec(name="users", endpoint="/users", pagination=paging)
    spec = SourceSpec(name="demo", base_url="https://api.example.com/v2", streams=[one]).model_dump()
    with start(spec, mode="clean") as api:
        url, records, cursor = api.url + "/users", [], None
        for _ in range(20):
            variables = {"first": 5, **({"after": cursor} if cursor else {})}
            data = requests.post(url, json={"variables": variables}, timeout=10).json()
            records += data["data"]
            cursor = data.get("next_cursor")
            if not cursor:
                break
        users = api.report()["streams"]["users"]
    assert records == users["records"] and users["ended"] and users["pages_served"] == 6
