"""Bugs planted in sources rendered by the rest recipe (issue 22, point 3): each a small text replacement of the
rendered source.py (every `old` found exactly once: a template change that moves the text fails the plant loudly,
never lets it pass silently), what it breaks, the mock's case that shows it, and the checks of `validate_source
full` that must name it.

Two specs, rendered with the real render_source into a real bizon tree: a CRM's GraphQL API (two Relay connections on
one endpoint, OAuth2 client credentials, errors inside a 200 with GraphQL's default codes) for the bugs only GraphQL
shows, and a plain REST API (cursor + has_more, an API key, an incremental filter) for the others.

`probe` runs the planted source's own get() loop (bizon_forge's source probe, in the tree's Python, as the producer
loops) against one case of the mock, so each plant is proven a real bug without validate_source."""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bizon_forge import workspace
from bizon_forge.connector import Connector
from bizon_forge.source_describe import describe_source, parse_spec
from bizon_forge.source_render import render_source
from bizon_forge.validators.fakes import mock_api

PROBE = Path(mock_api.__file__).parent.parent / "probes" / "source_probe.py"
BASE = "https://api.example.com/v2"
FIELDS = "edges { cursor node { id updated_at } } pageInfo { hasNextPage endCursor }"
GRAPHQL = "crm_graphql"
REST = "shop_rest"
SPECS: dict[str, dict] = {
    # two connections on one POST /graphql, told apart by the query; one lands nodes, one whole edges
    GRAPHQL: {
        "name": GRAPHQL,
        "base_url": BASE,
        "auth": "client_credentials",
        "token_url": "https://auth.example.com/oauth/token",
        "scopes": ["crm.read"],
        "streams": [
            {
                "name": "contacts",
                "endpoint": "/graphql",
                "connection_path": "data.contacts",
                "cursor_field": "updated_at",
                "updated_after_param": "variables.since",
                "body": {
                    "query": "query($first: Int, $after: String, $since: DateTime) { contacts(first: $first, "
                    "after: $after, since: $since) { " + FIELDS + " } }"
                },
                "pagination": {"pattern": "graphql", "page_size": 5},
            },
            {
                "name": "companies",
                "endpoint": "/graphql",
                "connection_path": "data.companies",
                "land": "edge",
                "id_field": "node.id",
                "body": {
                    "query": "query($first: Int, $after: String) { companies(first: $first, after: $after) { "
                    + FIELDS
                    + " } }"
                },
                "pagination": {"pattern": "graphql", "page_size": 5},
            },
        ],
    },
    # Stripe-like: a cursor (the last id) and has_more, an API key in its own header, incremental server-side
    REST: {
        "name": REST,
        "base_url": BASE,
        "auth": "api_key",
        "api_key_header": "X-API-Key",
        "streams": [
            {
                "name": "users",
                "endpoint": "/users",
                "cursor_field": "updated_at",
                "updated_after_param": "updated_since",
                "pagination": {
                    "pattern": "cursor",
                    "page_size": 5,
                    "cursor_param": "starting_after",
                    "next_cursor_path": "next_cursor",
                    "has_more_path": "has_more",
                },
            }
        ],
    },
}

# The rendered text the plants replace (shared by several plants).
CALL = "        document = self._call(stream, url, params, body)\n"
RAISE_200 = (
    "            raise RuntimeError(\n"
    '                f"Stream {self.config.stream}: the API answered an error inside a 200"\n'
)
MISSING_RECORDS = (
    '            raise ValueError(f"Stream {stream}: the response has no {path!r} (records_path); its keys differ.")\n'
)
LENIENT_RECORDS = (MISSING_RECORDS, "            return []  # no records there: an empty page\n")
RETRYABLE = '            if not last and code in BODY_ERRORS["retryable_codes"]:\n'
REAUTH_401 = (
    "                self._renew_token()\n"
    '                logger.info(f"{self.config.stream}: 401, a new token and the same request again")\n'
    "                continue\n"
)
THROTTLE_ENDS = '            if code in BODY_ERRORS["retryable_codes"]:\n                return {}\n'
RESTART = '                raise PermissionError("token expired")\n'
REAUTH_200 = (
    '                logger.info(f"{self.config.stream}: {code} in the body, a new token and the same request again")\n'
    "                continue\n"
)


@dataclass(frozen=True)
class Plant:
    spec: str  # GRAPHQL or REST
    edits: tuple[tuple[str, str], ...]  # (old, new) in the rendered source.py, each old found exactly once
    caught_by: tuple[str, ...]  # the check ids of validate_source full that must fail
    case: str | None  # the mock's case that shows the bug (None: the default API)
    stream: str  # the stream the sanity probe reads
    # what the planted loop does against that case (the unplanted one does not): lost, repeated, raised, unfiltered
    # (an incremental run brings unchanged records), green_on_must_fail, capped (asks past the mock's request cap)
    symptom: str


PLANTS: dict[str, Plant] = {
    # a. The lenient parse: an error inside a 200 ({"errors": [...], "data": null}) read as an empty last page.
    "error_in_200_read_as_last_page": Plant(
        GRAPHQL,
        ((RAISE_200, "            return document\n" + RAISE_200), LENIENT_RECORDS),
        ("api.error_in_200",),
        "error_in_200",
        "contacts",
        "green_on_must_fail",
    ),
    # b. An in-body THROTTLED read as the end of the stream, not waited out.
    "throttle_in_200_not_waited_out": Plant(
        GRAPHQL,
        (
            (RETRYABLE, THROTTLE_ENDS + RETRYABLE),
            LENIENT_RECORDS,
        ),
        ("api.throttled_in_200",),
        "throttled_in_200",
        "contacts",
        "lost",
    ),
    # b, raised: the THROTTLED code not retried at all: a sync fails on the API's first busy moment.
    "throttle_in_200_raised": Plant(
        GRAPHQL,
        ((RETRYABLE, "            if False:\n"),),
        ("api.throttled_in_200",),
        "throttled_in_200",
        "contacts",
        "raised",
    ),
    # e. A token that died mid-stream handled by a new token and the stream started again from its first page.
    "token_expiry_restarts_the_stream": Plant(
        GRAPHQL,
        (
            (REAUTH_401, "                self._renew_token()\n" + RESTART),
            (REAUTH_200, RESTART),
            (
                CALL,
                "        try:\n"
                "            document = self._call(stream, url, params, body)\n"
                "        except PermissionError:  # a new token: read the stream again from its start\n"
                "            pagination = {}\n"
                "            url, params, body = self._request(stream, {}, since, stream['page_size'])\n"
                "            document = self._call(stream, url, params, body)\n",
            ),
        ),
        ("api.token_expiry",),
        "token_expiry",
        "contacts",
        "repeated",
    ),
    # f. The next cursor taken from the page's first edge, not pageInfo.endCursor: pages overlap.
    "cursor_of_the_first_edge": Plant(
        GRAPHQL,
        (
            (
                '            cursor = dig(document, stream["next_cursor_path"])\n',
                '            cursor = (dig(document, stream["records_path"]) or [{}])[0].get("cursor")\n',
            ),
        ),
        ("pull.every_record_once",),
        None,
        "contacts",
        "repeated",
    ),
    # g. Streams keyed by their endpoint: every stream on /graphql sends the first one's query, reads its nodes.
    "streams_on_one_endpoint_mixed": Plant(
        GRAPHQL,
        (
            (
                "        return STREAMS[self.config.stream]\n",
                "        endpoint = STREAMS[self.config.stream]['endpoint']\n"
                "        return next(s for s in STREAMS.values() if s['endpoint'] == endpoint)\n",
            ),
        ),
        # The companies stream's requests reach the mock as contacts' (routed by the query): its chain never ends,
        # and full names that (api.shared_endpoint is then skipped, explained by it).
        ("pull.pagination_ends",),
        "shared_endpoint",
        "companies",
        "lost",
    ),
    # i. Every error inside a 200 retried, without end: the run never fails (the mock's request cap stops it).
    "error_in_200_retried_forever": Plant(
        GRAPHQL,
        (
            ("        for attempt in range(MAX_RETRIES + 1):\n", "        for attempt in range(10**6):\n"),
            (RAISE_200, "            time.sleep(0.05)\n            continue\n" + RAISE_200),
        ),
        ("api.error_in_200",),
        "error_in_200",
        "contacts",
        "capped",
    ),
    # c. The last page dropped: a page with records that says there is no more is not emitted.
    "last_page_dropped": Plant(
        REST,
        (
            (
                "return SourceIteration(records=records, next_pagination=next_pagination)",
                "return SourceIteration(records=records if next_pagination else [], next_pagination=next_pagination)",
            ),
        ),
        ("api.last_page_with_records",),
        "last_page_with_records",
        "users",
        "lost",
    ),
    # d. A page shorter than asked taken for the last one.
    "short_page_taken_as_last": Plant(
        REST,
        (
            (
                '            return {"cursor": cursor} if more else {}\n',
                '            return {"cursor": cursor} if more and len(raw) >= stream["page_size"] else {}\n',
            ),
        ),
        ("api.short_pages", "api.page_size_cap"),
        "short_pages",
        "users",
        "lost",
    ),
    # h. The incremental filter not sent: an incremental run reads everything again.
    "incremental_filter_not_sent": Plant(
        REST,
        (("        if after:\n            params[after] = since.isoformat()\n", ""),),
        ("pull.incremental",),
        None,
        "users",
        "unfiltered",
    ),
    # j. A 5xx that outlived the retries swallowed as the end of the stream.
    "5xx_swallowed_as_end_of_stream": Plant(
        REST,
        (
            (
                CALL,
                "        try:\n"
                "            document = self._call(stream, url, params, body)\n"
                "        except Exception as error:  # the server is down: nothing more to read\n"
                '            if getattr(getattr(error, "response", None), "status_code", 0) < 500:\n'
                "                raise\n"
                "            return SourceIteration(records=[], next_pagination={})\n",
            ),
        ),
        ("api.outage",),
        "outage",
        "users",
        "green_on_must_fail",
    ),
}
# plant -> why validate_source full does not catch it yet (a finding for the integrator; xfail strict)
NOT_CAUGHT: dict[str, str] = {}


def render(root: Path) -> workspace.Workspace:
    """Both specs described and rendered (the real recipe) in the bizon tree at `root`."""
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    for spec in SPECS.values():
        described = describe_source(ws, parse_spec(spec))
        assert described.ok, described.findings
        rendered = render_source(ws, spec["name"])
        assert rendered.ok and rendered.findings == [], rendered
    return ws


def plant(root: Path, bug: str) -> None:
    """Plant `bug` in the rendered source at `root`; an `old` not found exactly once fails here."""
    path = root / Connector(PLANTS[bug].spec, "source").code_rel
    text = path.read_text()
    for old, new in PLANTS[bug].edits:
        assert text.count(old) == 1, (bug, "found", text.count(old), "times:", old)
        text = text.replace(old, new)
    path.write_text(text)


def planted_copy(rendered: Path, dest: Path, bug: str | None) -> workspace.Workspace:
    """A copy of the rendered tree, `bug` planted in it (None: the source as rendered)."""
    shutil.copytree(rendered, dest, symlinks=True)
    if bug is not None:
        plant(dest, bug)
    return workspace.resolve(None, workspace.Settings.from_paths([str(dest)]))


def _auth(spec: dict, api: mock_api.MockApi, case: str | None) -> dict:
    """The mock's own credentials, in the authentication block the rendered source reads."""
    c = api.credentials
    if spec["auth"] == "api_key":
        return {"type": "api_key", "params": {"token": c["api_key"]}}
    token_url = api.case_token_url(case) if case else api.token_url
    params = {"token_refresh_endpoint": token_url, "client_id": c["client_id"], "client_secret": c["client_secret"]}
    return {"type": "oauth", "params": {**params, "grant_type": "client_credentials", "scopes": spec["scopes"]}}


def probe(
    ws: workspace.Workspace,
    name: str,
    stream: str,
    api: mock_api.MockApi,
    case: str | None,
    scratch: Path,
    since: tuple[str, str] | None = None,
) -> dict:
    """The source's get() loop (get_records_after from `since`: (last_run ISO, cursor_field)) against `case` of
    the mock: {"ok", "ids" (emitted, in order), "error"}."""
    spec = SPECS[name]
    url = api.case_url(case) if case else api.url
    config = {"name": name, "stream": stream, "base_url": url, "authentication": _auth(spec, api, case)}
    scratch.mkdir(parents=True, exist_ok=True)
    tag = f"{name}-{stream}-{case}-{bool(since)}"
    config_path, out = scratch / f"{tag}.json", scratch / f"{tag}.jsonl"
    config_path.write_text(json.dumps(config))
    cmd = [ws.python(), str(PROBE), str(ws.root), name, stream, str(config_path), str(out), "200", *(since or ())]
    env = {**ws.env(), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ws.root, timeout=180)
    steps = {}
    for line in done.stdout.splitlines():
        if line.startswith("BIZON_FORGE_SOURCE_PROBE "):
            step = json.loads(line.split(" ", 1)[1])
            steps[step.pop("step")] = step
    pages = [json.loads(ln) for ln in out.read_text().splitlines()] if out.is_file() else []
    ids = [r["id"] for page in pages for r in page["records"]]
    outcome = steps.get("pages") or steps.get("build") or {"ok": False, "error": done.stderr[-2000:]}
    return {"ok": bool(outcome.get("ok")), "ids": ids, "error": outcome.get("error")}


def symptom(bug: str, got: dict, report: dict, truth: list[str]) -> str | None:
    """What is wrong with a loop's outcome `got` for the plant's symptom (None: nothing of it)."""
    kind = PLANTS[bug].symptom
    ids = got["ids"]
    if kind == "green_on_must_fail":
        return f"ended green with {len(ids)} of {len(truth)} records; the fault never lifted" if got["ok"] else None
    if kind == "capped":
        served = report["streams"][PLANTS[bug].stream]
        return f"{served['requests']} requests, {served['capped']} past the cap" if served["capped"] else None
    if kind == "unfiltered":
        return f"{len(ids)} records for {len(truth)} changed" if got["ok"] and len(ids) > len(truth) else None
    if kind == "raised":
        return f"failed after {len(ids)} of {len(truth)} records: {got['error'][:200]}" if got["error"] else None
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if kind == "repeated" and twice:  # the probe stops a loop at a next page it already asked for; bizon would not
        repeated = report["streams"][PLANTS[bug].stream]["pages_repeated"]
        return f"emitted {len(ids)} records for {len(truth)} ({len(twice)} twice; pages served again: {repeated})"
    missing = [i for i in truth if i not in ids]
    if kind == "lost" and got["ok"] and missing:  # a loud failure is no silent loss
        return f"ended green with {len(ids)} records, {len(missing)} of the {len(truth)} served missing"
    return None


# -- validate_source full on the planted copies (test_source_plants_<spec>_<version>.py) -------------------------


def rendered_tree(pristine: Path, folder: Path) -> Path:
    """One rendered tree per module (version): each test copies it, never touches it."""
    root = folder / "tree"
    shutil.copytree(pristine, root, symlinks=True)
    render(root)
    return root


def params(spec: str) -> list:
    """The plants of a spec as pytest params, those full does not catch yet marked xfail(strict)."""
    import pytest

    return [
        pytest.param(bug, marks=pytest.mark.xfail(strict=True, reason=NOT_CAUGHT[bug])) if bug in NOT_CAUGHT else bug
        for bug, plant in PLANTS.items()
        if plant.spec == spec
    ]


def _full(ws: workspace.Workspace, name: str) -> tuple[object, dict[str, str]]:
    from bizon_forge.validators.source_validation import validate_source

    result = validate_source(ws, name, "full", verbose=True)
    return result, {f.id: f"{f.status}: {f.message}" for f in result.findings}


def assert_passes_full(rendered: Path, dest: Path, name: str) -> None:
    """The source as rendered passes full, every case of the mock that applies to its spec judged and passed."""
    result, found = _full(planted_copy(rendered, dest, None), name)
    failing = {i: m for i, m in found.items() if m.startswith("fail")}
    assert result.ok and not failing, (name, result.summary, failing)
    cases = [f"api.{case}" for case in mock_api.cases_for(SPECS[name])]
    assert all(found.get(i, "").startswith("pass") for i in cases), {i: found.get(i) for i in cases}


def assert_fails_full(rendered: Path, dest: Path, bug: str) -> None:
    """The planted source fails full, with a failing finding of each check that must name the bug."""
    plant = PLANTS[bug]
    result, found = _full(planted_copy(rendered, dest, bug), plant.spec)
    failing = {i: m for i, m in found.items() if m.startswith("fail")}
    print(f"{bug}: {result.summary}; " + "; ".join(f"{i} {found.get(i)}" for i in plant.caught_by))
    missed = [i for i in plant.caught_by if i not in failing]
    assert not result.ok and not missed, (
        bug,
        "not named by",
        missed,
        result.summary,
        failing,
        {i: found.get(i) for i in missed},
    )
