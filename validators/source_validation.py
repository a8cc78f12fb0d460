"""validate_source: the checks of a source, answered as validate_destination answers a destination's.

fast: the static checks (source_code), discovery (`bizon source list`, `bizon stream list NAME`) and a contract
run per stream: source_probe.py, in the workspace's Python, builds the source pointed at a local mock API served
from the source's spec (mock_api.py: several pages, the spec's auth checked, a 429 with Retry-After and a 503 on
the way, an empty last page) and loops get() until `{}`; what came out is compared with what the mock served.
full adds the source's own tests, a real `bizon run` per stream from the mock into a scratch file destination,
read back, and per stream the mock's misbehaviour cases, all in one probe (source_cases.py). Every subprocess of
these can reach 127.0.0.1 only (loopback_only.py): nothing real is touched. live is the bounded read of the real API
(source_live.py), a few pages per stream, nothing written.
"""

import functools
import json
import math
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bizon_forge.atomic import workspace_lock
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, Refused, failed
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.source import SourceSpec, StreamSpec
from bizon_forge.validators import catalog, engine, source_cases, source_live
from bizon_forge.validators.catalog import Check, answers, declared, declared_ids
from bizon_forge.validators.engine import Kind, Progress, Units, variables_to_set
from bizon_forge.validators.fakes import mock_api
from bizon_forge.validators.report import ValidationResult
from bizon_forge.validators.runtime import PYTEST_ARGS, SMOKE_RUNNER, Run, run_logged
from bizon_forge.validators.scratch import references

# discovery's and the contract's checks are declared in source_cases, whose cases they explain (see there)
from bizon_forge.validators.source_cases import (
    BUILD,
    DISCOVERY_SOURCE_LIST,
    DISCOVERY_STREAM_LIST,
    PULL_AUTH_SENT,
    PULL_BUILD,
    PULL_EVERY_RECORD_ONCE,
    PULL_FULL_RECORDS,
    PULL_HTTP_ERRORS_RAISE,
    PULL_IDS_UNIQUE,
    PULL_INCREMENTAL,
    PULL_PAGINATION_ENDS,
    PULL_RETRY_5XX,
    PULL_RETRY_429,
    PULL_SECRETS_NOT_LOGGED,
)
from bizon_forge.validators.source_code import SRC_SOURCE_BASE, SRC_SYNTAX, SRC_TESTS_PRESENT, SourceCode
from bizon_forge.workspace import Workspace, read_regular

PROBES = Path(__file__).parent / "probes"  # run in the workspace's interpreter

PROBE_TIMEOUT_S = 90
RUN_TIMEOUT_S = 90
TESTS_TIMEOUT_S = 300
MARKER = "BIZON_FORGE_SOURCE_PROBE "
FULL = "Tests and a real run"
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")  # what the example config leaves to the user, e.g. <TOKEN_REFRESH_ENDPOINT>
LIVE_PAGES = 3  # a live read's pages per stream, unless asked


# -- the mock, the source's config pointed at it ---------------------------------------------------------


def _auth(spec: SourceSpec, api: mock_api.MockApi, case: str | None = None) -> dict | None:
    """The check config's authentication, pointed at the mock (at a case's token endpoint when given)."""
    c = api.credentials
    if spec.auth == "none":
        return None
    if spec.auth == "api_key":
        params = {"token": c["api_key"]}
        if spec.api_key_header != "Authorization":
            params["auth_header"] = spec.api_key_header
        return {"type": "api_key", "params": params}
    if spec.auth == "bearer":
        return {"type": "bearer", "params": {"token": c["token"]}}
    if spec.auth == "basic":
        return {"type": "basic", "params": {"username": c["username"], "password": c["password"]}}
    # oauth, client_credentials: bizon's oauth params, as the rest recipe's check config gives them
    # (source_render.auth_params, which validators may not import: it imports the mock), the mock's token endpoint
    token_url = api.case_token_url(case) if case else api.token_url
    params = {"token_refresh_endpoint": token_url, "client_id": c["client_id"], "client_secret": c["client_secret"]}
    if spec.auth == "oauth":
        return {"type": "oauth", "params": {**params, "refresh_token": c["refresh_token"]}}
    params["grant_type"] = "client_credentials"
    return {"type": "oauth", "params": params | ({"scopes": list(spec.scopes)} if spec.scopes else {})}


SECRETS = {  # the credentials of each auth kind that must never be logged
    "none": [],
    "api_key": ["api_key"],
    "bearer": ["token"],
    "basic": ["password"],
    "oauth": ["client_secret", "refresh_token"],
    "client_credentials": ["client_secret"],
}


def _secrets(spec: SourceSpec, api: mock_api.MockApi) -> list[str]:
    return [api.credentials[k] for k in SECRETS[spec.auth]]


def _config_section(ws: Workspace, name: str) -> dict:
    """The check config's (else the example's) `source:` section, without what the checks set or cannot resolve."""
    c = Connector(name, "source")
    for rel in (c.check_rel, c.example_rel):
        path = ws.root / rel
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                continue
            section = loaded.get("source") if isinstance(loaded, dict) else None
            if isinstance(section, dict):
                return {
                    k: v
                    for k, v in section.items()
                    if k not in ("authentication", "base_url", "stream", "name", "max_iterations")
                    and not (isinstance(v, str) and "://" in v and v.split("://")[0] in ("env", "secret", "gcp"))
                }
    return {}


def source_config(ws: Workspace, spec: SourceSpec, stream: str, api: mock_api.MockApi, case: str | None = None) -> dict:
    """The source's config pointed at the mock: its default API, or the prefix serving `case`."""
    url = api.case_url(case) if case else api.url
    config = {**_config_section(ws, spec.name), "name": spec.name, "stream": stream, "base_url": url}
    auth = _auth(spec, api, case)
    if auth is not None:
        config["authentication"] = auth
    return config


def _max_pages(spec: SourceSpec, stream: StreamSpec, api: mock_api.MockApi) -> int:
    served = len(api.report()["streams"][stream.name]["records"])
    expected = math.ceil(served / max(1, stream.pagination.page_size)) + 2
    return 3 * expected + 5


def _env(scratch: Path) -> dict[str, str]:
    """Only the loopback guard on top of the workspace's environment; no proxy stands between us and the mock."""
    return {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


# -- discovery -----------------------------------------------------------------------------------------


@answers(
    DISCOVERY_SOURCE_LIST,
    DISCOVERY_STREAM_LIST,
)
def discovery(ws: Workspace, spec: SourceSpec | None, name: str, scratch: Path, logs: Path) -> list[Finding]:
    base = [ws.python(), "-m", "bizon.cli.main"]
    listed = run_logged(ws, [*base, "source", "list"], scratch, logs / "source-list.log", PROBE_TIMEOUT_S)
    wanted = [s.name for s in spec.streams] if spec else []
    line = next((ln for ln in _stdout_lines(listed) if ln.split(" - ", 1)[0].strip() == name), None)
    out: list[Finding] = []
    if line is None:
        out.append(DISCOVERY_SOURCE_LIST.fail(f"`bizon source list` does not list {name}.", output=listed.tail))
    elif "NOT AVAILABLE" in line:
        msg = f"`bizon source list` says `{line.strip()[:120]}`: importing the source failed."
        out.append(DISCOVERY_SOURCE_LIST.fail(msg, output=listed.tail, log=listed.log))
    else:
        missing = [s for s in wanted if repr(s) not in line and f'"{s}"' not in line]
        if missing:
            msg = f"`bizon source list` lists {name} without the stream(s) {', '.join(missing)}: {line.strip()[:160]}"
            out.append(DISCOVERY_SOURCE_LIST.fail(msg))
        else:
            out.append(DISCOVERY_SOURCE_LIST.passed(line.strip()[:160]))
    streams = run_logged(ws, [*base, "stream", "list", name], scratch, logs / "stream-list.log", PROBE_TIMEOUT_S)
    lines = _stdout_lines(streams)
    shown = {ln.rsplit(" - ", 1)[-1].strip(): ln for ln in lines if ln.startswith("[")}
    problems = []
    for s in spec.streams if spec else []:
        if s.name not in shown:
            problems.append(f"{s.name} is not listed")
        elif s.cursor_field and "Supports incremental" not in shown[s.name]:
            problems.append(f"{s.name} has a cursor_field but is listed `Full refresh only` (no get_records_after)")
    if not shown:
        problems.append("no stream is listed")
    if problems:
        out.append(DISCOVERY_STREAM_LIST.fail(f"`bizon stream list {name}`: {'; '.join(problems)}.", log=streams.log))
    else:
        out.append(DISCOVERY_STREAM_LIST.passed(", ".join(shown.values())[:200]))
    return out


def _stdout_lines(run: Run) -> list[str]:
    """The listing's lines (bizon logs to stderr, merged here: the listing's lines do not start with a date)."""
    return [ln for ln in run.tail.splitlines() if " - " in ln and not ln[:4].isdigit() and "|" not in ln[:40]]


# -- the contract ------------------------------------------------------------------------------------------


@answers(
    PULL_BUILD,
    PULL_PAGINATION_ENDS,
    PULL_HTTP_ERRORS_RAISE,
    PULL_RETRY_429,
    PULL_RETRY_5XX,
    PULL_AUTH_SENT,
    PULL_EVERY_RECORD_ONCE,
    PULL_IDS_UNIQUE,
    PULL_FULL_RECORDS,
    PULL_SECRETS_NOT_LOGGED,
    PULL_INCREMENTAL,
)
def contract(
    ws: Workspace,
    spec: SourceSpec,
    stream: StreamSpec,
    scratch: Path,
    logs: Path,
    recorded: str | None,
) -> list[Finding]:
    with mock_api.start(spec.model_dump(mode="json"), recorded=recorded) as api:
        config = source_config(ws, spec, stream.name, api)
        log = logs / f"contract-{stream.name}.log"
        run, steps, pages = _probe(ws, spec, stream, config, scratch, log, _max_pages(spec, stream, api))
        loop = Loop(spec, stream, run, steps, pages, api.report())
        found = _judge(loop, _secrets(spec, api), _whole_log(ws, run))
        cause = next((i for i in CONTRACT_IDS if i in found and found[i].status == "fail"), None)
        for i, f in found.items():  # "nothing was served" because the loop ended first: that failure's skip
            if cause and f.status == "skip" and f.blocked_by is None:
                found[i] = f.model_copy(update={"blocked_by": cause})
        found[PULL_INCREMENTAL.id] = _incremental(ws, spec, stream, api, scratch, logs, found, recorded)
    return [found[i] for i in CONTRACT_IDS]


CONTRACT_IDS = tuple(declared_ids(contract))  # the contract's findings, in its declaration's order


def _probe(
    ws: Workspace,
    spec: SourceSpec,
    stream: StreamSpec,
    config: dict,
    scratch: Path,
    log: Path,
    max_pages: int,
    incremental: tuple[str, str] | None = None,
) -> tuple[Run, dict[str, dict], list[dict]]:
    tag = "incr" if incremental else "full"
    config_path = scratch / f"source-{stream.name}-{tag}.json"
    config_path.write_text(json.dumps(config))
    out = scratch / f"pages-{stream.name}-{tag}.jsonl"
    cmd = [ws.python(), str(PROBES / "source_probe.py"), str(ws.root), spec.name, stream.name, str(config_path)]
    cmd += [str(out), str(max_pages), *(incremental or ())]
    run = run_logged(ws, cmd, scratch, log, PROBE_TIMEOUT_S, marker=MARKER.encode(), env=_env(scratch))
    steps: dict[str, dict] = {}
    for line in run.marked:
        try:
            step = json.loads(line[len(MARKER) :])
            steps[step.pop("step")] = step
        except (ValueError, KeyError, AttributeError):
            continue
    pages = []
    if out.is_file():
        for line in out.read_text().splitlines():
            try:
                pages.append(json.loads(line))
            except ValueError:
                break
    return run, steps, pages


def _get(body: Any, path: str) -> Any:
    for key in path.split(".") if path else []:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def _ids(records: list[dict], id_field: str) -> list[str]:
    return [str(_get(r, id_field)) for r in records]


@dataclass(frozen=True)
class Loop:
    """What one contract run of a stream left to judge: the probe's run, its steps and pages, the mock's report."""

    spec: SourceSpec
    stream: StreamSpec
    run: Run
    steps: dict[str, dict]
    pages: list[dict]
    report: dict

    @property
    def where(self) -> str:
        return f"stream {self.stream.name}"

    @property
    def served(self) -> dict:
        """The mock's report of this stream."""
        return self.report["streams"][self.stream.name]

    @property
    def end(self) -> dict:
        """The probe's end of the get() loop (a 410 past the mock's request cap is a loop that never ends)."""
        end = self.steps.get("pages") or {"ok": False, "error": f"the probe ended (exit {self.run.returncode})"}
        if end.get("status") == 410 and self.served.get("capped"):
            return {**end, "never_ends": True, "repeated": None}
        return end

    @property
    def died_on(self) -> int | None:
        """The fault get() raised on, if it raised on one of the mock's (429, 5xx)."""
        status = self.end.get("status")
        return status if not self.end.get("ok") and status in (429, 500, 502, 503, 504) else None

    @property
    def out(self) -> list[dict]:
        return [r for p in self.pages for r in p["records"]]

    def out_ids(self) -> list[str]:
        """Each emitted record's id: its SourceRecord id when the API served that id, else its data's id_field
        (a record whose SourceRecord id is wrong still came out: pull.ids_unique says the rest)."""
        served = {str(i) for i in self.served["ids"]}
        return [
            str(r["id"]) if str(r["id"]) in served else str(_get(r["data"], self.stream.id_field)) for r in self.out
        ]

    def swallowed(self) -> dict | None:
        """The stream's last request, when it got an HTTP error and the loop still ended green."""
        last = next((r for r in reversed(self.report["requests"]) if r.get("stream") == self.stream.name), None)
        if self.end.get("ok") and last is not None and last.get("status", 200) >= 400 and not self.served["ended"]:
            return last
        return None


def _judge(loop: Loop, secrets: list[str], output: str) -> dict[str, Finding]:
    """The contract's findings of one stream: one small judge per check, in CONTRACT_IDS' order of need."""
    found = {PULL_SECRETS_NOT_LOGGED.id: _secrets_logged(loop, secrets, output), PULL_BUILD.id: _built(loop)}
    for judge in (_auth_sent, _retry_429, _retry_5xx, _http_errors_raise, _pagination_ends):
        finding = judge(loop, found)
        found[finding.id] = finding
    for judge in (_every_record_once, _ids_unique, _full_records):
        finding = judge(loop, found)
        found[finding.id] = finding
    return found


def _secrets_logged(loop: Loop, secrets: list[str], output: str) -> Finding:
    leaked = [x for x in secrets if x and x in output]
    if not secrets:
        return PULL_SECRETS_NOT_LOGGED.skip("The spec's auth is none: no secret to leak.")
    if leaked:
        return PULL_SECRETS_NOT_LOGGED.fail(
            f"The {loop.where} run's output holds a credential the mock issued ({len(leaked)} of {len(secrets)}).",
            log=loop.run.log,
        )
    return PULL_SECRETS_NOT_LOGGED.passed(f"{loop.where}: no credential in the output")


def _built(loop: Loop) -> Finding:
    build = loop.steps.get("build")
    if build and build.get("ok"):
        return PULL_BUILD.passed(f"{loop.where}: built in {build.get('seconds')} s")
    run = loop.run
    why = build["error"] if build else f"the probe ended first (exit {run.returncode}, timed out {run.timed_out})"
    return PULL_BUILD.fail(
        f"Building the source for {loop.where} failed: {why}"[:400],
        output=(build or {}).get("trace") or run.tail,
        log=run.log,
    )


def _auth_sent(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_AUTH_SENT.unmet(found)
    if unmet is not None:
        return unmet
    report = loop.report
    if report["unauthorized"]:
        reason = next((r.get("reason") for r in report["requests"] if r.get("status") == 401), "")
        return PULL_AUTH_SENT.fail(
            f"The mock answered 401 to {report['unauthorized']} request(s) of {loop.where}: {reason}."
        )
    if loop.spec.auth == "none":
        return PULL_AUTH_SENT.passed("The spec's auth is none.")
    return PULL_AUTH_SENT.passed(f"{loop.spec.auth}: every request authenticated")


def _retry_429(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_RETRY_429.unmet(found)
    if unmet is not None:
        return unmet
    where, early = loop.where, loop.served["early_retries"]
    if loop.died_on == 429:
        return PULL_RETRY_429.fail(
            f"get() raised on the mock's 429 (Retry-After: 1) in {where}: no retry on 429.",
            output=loop.end.get("trace"),
            log=loop.run.log,
        )
    if early:
        return PULL_RETRY_429.fail(f"{where}: retried the 429 sooner than its Retry-After ({early} early request(s)).")
    if 429 in [x["status"] for x in loop.served["faults"]]:
        return PULL_RETRY_429.passed(f"{where}: the 429 was retried after its Retry-After")
    return PULL_RETRY_429.skip(f"{where}: the mock served no 429 (recorded or clean mode, or the run ended first).")


def _retry_5xx(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_RETRY_5XX.unmet(found)
    if unmet is not None:
        return unmet
    died_on = loop.died_on
    if died_on and died_on != 429:
        return PULL_RETRY_5XX.fail(
            f"get() raised on the mock's {died_on} in {loop.where}: no retry on 5xx.",
            output=loop.end.get("trace"),
            log=loop.run.log,
        )
    if 503 in [x["status"] for x in loop.served["faults"]] and not died_on:
        return PULL_RETRY_5XX.passed(f"{loop.where}: the 503 was retried")
    return PULL_RETRY_5XX.skip(f"{loop.where}: the mock served no 503 before the run ended.")


def _http_errors_raise(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_HTTP_ERRORS_RAISE.unmet(found)
    if unmet is not None:
        return unmet
    where, s, end = loop.where, loop.served, loop.end
    last = loop.swallowed()
    if last is not None:
        return PULL_HTTP_ERRORS_RAISE.fail(
            f"{where}: the mock answered HTTP {last['status']} and get() returned next_pagination {{}}: a swallowed "
            f"HTTP error ended the stream green with {s['records_served']} of {len(s['records'])} records served.",
        )
    if loop.died_on or (not end.get("ok") and end.get("status")):
        return PULL_HTTP_ERRORS_RAISE.passed(f"{where}: HTTP {end.get('status')} raised from get()")
    if s["faults"]:
        return PULL_HTTP_ERRORS_RAISE.passed(f"{where}: no HTTP error reached the end of a page unraised")
    return PULL_HTTP_ERRORS_RAISE.skip(f"{where}: no HTTP error was served.")


def _never_ends(loop: Loop) -> Finding:
    stream, s, end = loop.stream, loop.served, loop.end
    post = stream.pagination.pattern in source_spec.POST_PATTERNS
    params = s["params"]["body" if post else "query"]
    hint = None
    cursor = stream.pagination.cursor_param
    if stream.pagination.pattern in source_spec.CURSOR_PATTERNS and not _sent(loop.report, stream.name, cursor, post):
        place = "the POST body" if post else "the query"
        hint = (
            f"The cursor is never sent as {cursor!r} in {place} (the mock got {params}): send it where the spec says."
        )
    repeated = end.get("repeated")
    msg = (
        f"{loop.where}: next_pagination {json.dumps(repeated)} came back twice: pagination never ends."
        if repeated is not None
        else f"{loop.where}: get() was still returning a next_pagination after {len(loop.pages)} pages (the mock "
        f"serves {s['pages_served']} pages and ended: {s['ended']}): pagination never ends."
    )
    return PULL_PAGINATION_ENDS.fail(msg, hint=hint, log=loop.run.log)


def _mixed(loop: Loop) -> str | None:
    """Another stream's records came out of this one: not a lost page, the request does not say which stream it is
    for (seen twice: a trial and a plant were told "the last pages are lost")."""
    own = {str(i) for i in loop.served["ids"]}
    other = {str(i): name for name, o in loop.report["streams"].items() if name != loop.stream.name for i in o["ids"]}
    emitted = [str(r["id"]) for r in loop.out] + loop.out_ids()  # its SourceRecord ids, and its data's id_field
    foreign = list(dict.fromkeys(i for i in emitted if i not in own and i in other))
    if not foreign:
        return None
    return (
        f"{loop.where}: {len(foreign)} of the records that came out are stream {other[foreign[0]]}'s records (first "
        f"{foreign[0]}): streams on one endpoint mixed, the request does not say which stream it is for. Send each "
        "stream's own query, body key or parameter, as the spec says."
    )


def _pagination_ends(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_PAGINATION_ENDS.unmet(found)
    if unmet is not None:
        return unmet
    where, s, end = loop.where, loop.served, loop.end
    if end.get("never_ends"):
        return _never_ends(loop)
    lost = len(s["ids"]) - len(set(loop.out_ids()) & {str(i) for i in s["ids"]})
    if lost and (mixed := _mixed(loop)):
        return PULL_PAGINATION_ENDS.fail(mixed)
    if end.get("ok") and not s["ended"] and loop.swallowed() is None and lost > 0:
        read = [
            r["page"] for r in loop.report["requests"] if r.get("stream") == loop.stream.name and r.get("status") == 200
        ]
        after = f" after the mock's page {read[-1] + 1}" if read else ""
        return PULL_PAGINATION_ENDS.fail(
            f"{where}: get() returned next_pagination {{}}{after} ({len(loop.pages)} page(s)), before the API's last "
            f"page: the last page(s) are lost ({lost} of {len(s['ids'])} records never came out).",
        )
    if end.get("ok"):
        return PULL_PAGINATION_ENDS.passed(f"{where}: ended with {{}} after {len(loop.pages)} pages")
    error = f"{where}: get() raised on page {end.get('page')}: {end.get('error', '')[:300]}"
    cause = next((i for i, x in found.items() if x.status == "fail"), None)
    if cause:
        return PULL_PAGINATION_ENDS.skip(f"Not judged: {error}", cause)
    return PULL_PAGINATION_ENDS.fail(
        error,
        hint="Read the excerpt: the page's request or parsing raised.",
        output=end.get("trace") or loop.run.tail,
        log=loop.run.log,
    )


def _every_record_once(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_EVERY_RECORD_ONCE.unmet(found, f" ({loop.where}'s loop did not end)")
    if unmet is not None:
        return unmet
    served_ids = [str(i) for i in loop.served["ids"]]
    counts = Counter(loop.out_ids())
    missing = [i for i in served_ids if counts[i] == 0]
    twice = sorted(i for i, c in counts.items() if c > 1)
    if not missing and not twice:
        return PULL_EVERY_RECORD_ONCE.passed(f"{loop.where}: {len(served_ids)} records, each once")
    if missing and (mixed := _mixed(loop)):
        return PULL_EVERY_RECORD_ONCE.fail(mixed)
    parts = []
    if missing:
        tail = " (the last ones served: the last page is lost)" if served_ids[-len(missing) :] == missing else ""
        parts.append(f"{len(missing)} of {len(served_ids)} served records never came out{tail} (first {missing[0]})")
    if twice:
        parts.append(f"{len(twice)} came out more than once ({', '.join(twice[:3])})")
    return PULL_EVERY_RECORD_ONCE.fail(f"{loop.where}: {'; '.join(parts)}.")


def _ids_unique(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_IDS_UNIQUE.unmet(found, f" ({loop.where}'s loop did not end)")
    if unmet is not None:
        return unmet
    where, id_field = loop.where, loop.stream.id_field
    record_ids = [str(r["id"]) for r in loop.out]
    dup = {
        i: [p["page"] + 1 for p in loop.pages if any(str(r["id"]) == i for r in p["records"])]
        for i, c in Counter(record_ids).items()
        if c > 1
    }
    if dup:
        first = next(iter(dup))
        return PULL_IDS_UNIQUE.fail(
            f"{where}: {len(dup)} SourceRecord id(s) collide across pages (id {first!r} on pages {dup[first]}): "
            "duplicate ids.",
        )
    wrong = [
        (r["id"], _get(r["data"], id_field))
        for r in loop.out
        if isinstance(r["data"], dict) and str(r["id"]) != str(_get(r["data"], id_field))
    ]
    if wrong:
        return PULL_IDS_UNIQUE.fail(
            f"{where}: SourceRecord id {wrong[0][0]!r} is not the record's {id_field} ({wrong[0][1]!r})."
        )
    return PULL_IDS_UNIQUE.passed(f"{where}: {len(record_ids)} unique ids")


def _full_records(loop: Loop, found: dict[str, Finding]) -> Finding:
    unmet = PULL_FULL_RECORDS.unmet(found, f" ({loop.where}'s loop did not end)")
    if unmet is not None:
        return unmet
    out = loop.out
    not_dict = [r for r in out if not isinstance(r["data"], dict)]
    if not_dict:
        return PULL_FULL_RECORDS.fail(
            f"{loop.where}: data is a {type(not_dict[0]['data']).__name__}, not the record's dict."
        )
    by_id = {str(i): r for i, r in zip(loop.served["ids"], loop.served["records"], strict=True)}
    differ = [(i, r["data"]) for i, r in zip(loop.out_ids(), out, strict=True) if i in by_id and r["data"] != by_id[i]]
    if not differ:
        return PULL_FULL_RECORDS.passed(f"{loop.where}: data is the served record")
    i, data = differ[0]
    keys = sorted(set(by_id[i]) ^ set(data)) or sorted(k for k in by_id[i] if by_id[i].get(k) != data.get(k))
    return PULL_FULL_RECORDS.fail(
        f"{loop.where}: {len(differ)} record(s) differ from what the API served (record {i}: keys {keys[:5]}).",
    )


def _sent(report: dict, stream: str, param: str, post: bool) -> bool:
    """Whether any request of the stream sent `param`: a dotted path into the JSON body (POST patterns), or a
    query parameter."""
    requests = [r for r in report["requests"] if r.get("stream") == stream]
    if post:
        return any(_get(r.get("body"), param) is not None for r in requests)
    return any(param in (r.get("query") or {}) for r in requests)


def _whole_log(ws: Workspace, run: Run) -> str:
    """The run's whole output as logged (capped at runtime.LOG_CAP), else its tail."""
    try:
        return (ws.root / run.log).read_text(errors="replace") + run.tail
    except OSError:
        return run.tail


def _incremental(
    ws: Workspace,
    spec: SourceSpec,
    stream: StreamSpec,
    api: mock_api.MockApi,
    scratch: Path,
    logs: Path,
    found: dict[str, Finding],
    recorded: str | None,
) -> Finding:
    if not stream.cursor_field:
        return PULL_INCREMENTAL.skip(f"stream {stream.name}: the spec names no cursor_field.")
    if recorded:
        return PULL_INCREMENTAL.skip(f"stream {stream.name}: recorded pages are not filtered by time.")
    unmet = PULL_INCREMENTAL.unmet(found)
    if unmet is not None:
        return unmet
    last_run = datetime.now(UTC) - timedelta(seconds=1)
    api.reset()
    touched = [str(i) for i in api.touch(stream.name)]
    config = source_config(ws, spec, stream.name, api)
    run, steps, pages = _probe(
        ws,
        spec,
        stream,
        config,
        scratch,
        logs / f"incremental-{stream.name}.log",
        _max_pages(spec, stream, api),
        (last_run.isoformat(), stream.cursor_field),
    )
    loop = steps.get("pages") or {}
    if not loop.get("ok"):
        return PULL_INCREMENTAL.fail(
            f"stream {stream.name}: get_records_after raised or never ended: {loop.get('error', run.tail[-200:])}"[
                :400
            ],
            log=run.log,
        )
    got = sorted(_ids([r["data"] for p in pages for r in p["records"] if isinstance(r["data"], dict)], stream.id_field))
    param = stream.updated_after_param
    post = stream.pagination.pattern in source_spec.POST_PATTERNS
    if param and not _sent(api.report(), stream.name, param, post):
        place, other = ("body", "query") if post else ("query", "body")
        where = f" (it went in the {other})" if _sent(api.report(), stream.name, param, not post) else ""
        return PULL_INCREMENTAL.fail(
            f"stream {stream.name}: the cursor filter {param!r} was not sent in the {place}{where}."
        )
    if got != sorted(touched):
        extra = len(set(got) - set(touched))
        lost = len(set(touched) - set(got))
        return PULL_INCREMENTAL.fail(
            f"stream {stream.name}: after {len(touched)} records changed, get_records_after brought {len(got)} "
            f"({lost} changed ones missing, {extra} unchanged ones again).",
        )
    return PULL_INCREMENTAL.passed(f"stream {stream.name}: exactly the {len(touched)} changed records")


# -- full: the source's tests and a real bizon run ----------------------------------------------------------


TESTS_SOURCE = Check(
    "tests.source",
    FULL,
    "The source's own tests (`tests/connectors/sources/<name>/`) pass, run with the tree's pytest.",
    "The guide's Step 4: tests; they are what keeps the source right after this check.",
    "Fix the failing test or the code it tests; they must run offline (requests-mock or a local server).",
    level="full",
    explained_by=(SRC_SYNTAX.id, SRC_SOURCE_BASE.id, SRC_TESTS_PRESENT.id),
    kind="source",
)


@answers(
    TESTS_SOURCE,
)
def source_tests(ws: Workspace, code: SourceCode, scratch: Path, log: Path) -> Finding:
    folder = code.tests_dir
    if not folder.is_dir() or not any(folder.rglob("test_*.py")):
        return TESTS_SOURCE.skip(
            f"No tests in {code.connector.tests_dir}/ (see src.tests_present).", SRC_TESTS_PRESENT.id
        )
    cmd = [ws.python(), "-m", "pytest", *PYTEST_ARGS, f"--rootdir={ws.root}", f"--confcutdir={folder}", str(folder)]
    run = run_logged(ws, cmd, scratch, log, TESTS_TIMEOUT_S, env=_env(scratch))
    if run.returncode == 0:
        return TESTS_SOURCE.passed(f"{code.connector.tests_dir}: passed in {run.seconds:.1f} s")
    if run.returncode == 5:
        return TESTS_SOURCE.skip(f"pytest collected no test in {code.connector.tests_dir}/.")
    return TESTS_SOURCE.fail(
        f"The source's tests failed (exit {run.returncode}){_failed_tests(_whole_log(ws, run))}.",
        output=run.tail,
        log=run.log,
    )


def _failed_tests(output: str, most: int = 4) -> str:
    """': test_a, test_b' from pytest's FAILED lines: which behaviour broke, not only that something did."""
    lines = [ln[len("FAILED ") :] for ln in output.splitlines() if ln.startswith("FAILED ")]
    failing = sorted({ln.split(" - ", 1)[0].rsplit("::", 1)[-1] for ln in lines})
    more = f" and {len(failing) - most} more" if len(failing) > most else ""
    return f": {', '.join(failing[:most])}{more}" if failing else ""


RUN_BIZON_RUN = Check(
    "run.bizon_run",
    FULL,
    "A real `bizon run` per stream (thread runner) from the mock API into a scratch `file` destination exits 0, "
    "and what landed is every served record exactly once, `source_data` the full record.",
    "The contract calls get() as the producer does; only a real run proves the engine, the queue and the "
    "destination take what the source gives (a datetime in data breaks 0.5.2's queue, a cursor that is not "
    "JSON breaks the cursor store).",
    "Read the excerpt: the run's error, or which records did not land.",
    limits="A full refresh: the watermark between incremental runs is not run. Each run's sqlite backend and "
    "file land in a folder removed afterwards.",
    level="full",
    explained_by=CONTRACT_IDS,
    # a run of a loop that never ends is a timeout: it runs once get() ended
    requires=(*BUILD, PULL_AUTH_SENT.id, PULL_PAGINATION_ENDS.id),
    kind="source",
)


@answers(
    RUN_BIZON_RUN,
)
def bizon_run(
    ws: Workspace, spec: SourceSpec, stream: StreamSpec, scratch: Path, logs: Path, recorded: str | None
) -> Finding:
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    shutil.copy(PROBES / "loopback_only.py", folder / "sitecustomize.py")
    with mock_api.start(spec.model_dump(mode="json"), recorded=recorded) as api:
        config = {
            "name": f"forge_check_{spec.name}_{stream.name}",
            "source": {**source_config(ws, spec, stream.name, api), "sync_mode": "full_refresh"},
            "destination": {"name": "file", "config": {"destination_id": "landed"}},
            "engine": {
                "backend": {
                    "type": "sqlite",
                    "config": {"database": "bizon", "schema": "public", "syncCursorInDBEvery": 1},
                },
                "runner": {"type": "thread", "config": dict(SMOKE_RUNNER)},
            },
        }
        (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        env = {**_env(folder), "PYTHONPATH": f"{folder}:{ws.root}"}
        cmd = [ws.python(), "-m", "bizon.cli.main", "run", "config.yml", "--runner", "thread"]
        run = run_logged(ws, cmd, folder, logs / f"bizon-run-{stream.name}.log", RUN_TIMEOUT_S, env=env)
        served = api.report()["streams"][stream.name]["records"]
    where = f"stream {stream.name}"
    if run.timed_out:
        return RUN_BIZON_RUN.fail(
            f"{where}: `bizon run` did not finish within {RUN_TIMEOUT_S} s.", output=run.tail, log=run.log
        )
    if run.returncode != 0:
        return RUN_BIZON_RUN.fail(f"{where}: `bizon run` exited {run.returncode}.", output=run.tail, log=run.log)
    if "Max iteration of" in run.tail:
        return RUN_BIZON_RUN.fail(
            f"{where}: bizon stopped at max_iterations and called the truncated run a success.", log=run.log
        )
    landed_file = folder / "landed.json"
    if not landed_file.is_file():
        got = sorted(p.name for p in folder.iterdir())
        return RUN_BIZON_RUN.fail(f"{where}: the run exited 0 and published no landed.json (found {got}).", log=run.log)
    rows = [json.loads(ln) for ln in landed_file.read_text().splitlines() if ln.strip()]
    data = [json.loads(r["source_data"]) for r in rows]
    served_ids = _ids(served, stream.id_field)
    landed_ids = _ids(data, stream.id_field)
    if sorted(landed_ids) != sorted(served_ids):
        counts = Counter(landed_ids)
        missing = [i for i in served_ids if counts[i] == 0]
        twice = [i for i, c in counts.items() if c > 1]
        return RUN_BIZON_RUN.fail(
            f"{where}: {len(rows)} records landed for {len(served_ids)} served ({len(missing)} missing, "
            f"{len(twice)} twice).",
            log=run.log,
        )
    by_id = dict(zip(served_ids, served, strict=True))
    if any(by_id[i] != d for i, d in zip(landed_ids, data, strict=True)):
        return RUN_BIZON_RUN.fail(f"{where}: a landed source_data differs from the served record.", log=run.log)
    return RUN_BIZON_RUN.passed(f"{where}: {len(rows)} records landed, each once, in {run.seconds:.1f} s")


# -- validate_source ----------------------------------------------------------------------------------


def _dependencies(ws: Workspace, name: str) -> list[str]:
    spec = source_spec.stored(ws, name)
    return spec.dependencies if spec else []


def _not_found(ws: Workspace, name: str, rel: str) -> Refused:
    """A source's folder is missing: render it if it was described, else describe it first."""
    if source_spec.stored(ws, name):
        message = f"{rel}/ does not exist in this workspace (its spec is stored: it was described, not rendered)."
        return Refused(
            failed("validate.not_found", message, f"Call render_source(name={name!r}) first."),
            next=f"render_source(name={name!r})",
        )
    hint = f"Call describe_source with a spec named {name!r}, then render_source(name={name!r})."
    return Refused(
        failed("validate.not_found", f"{rel}/ does not exist in this workspace.", hint),
        next="describe_source(spec=...)",
    )


SOURCE = Kind("source", catalog.SOURCE_MODULES, source_spec.check_name, _dependencies, _not_found)


def _recorded(ws: Workspace, recorded: str | None) -> str | None:
    """The absolute folder of the agent's saved pages, which must be in the workspace."""
    if recorded is None:
        return None
    folder = (ws.root / recorded).resolve()
    if (ws.root not in folder.parents and folder != ws.root) or not folder.is_dir():
        raise Refused(
            failed(
                "validate.recorded",
                f"{recorded} is no folder in the workspace.",
                "Save the pages under the workspace, e.g. recorded/<stream>/page-001.json.",
            )
        )
    return str(folder)


def validate_source(
    ws: Workspace,
    name: str,
    level: str = "fast",
    verbose: bool = False,
    progress: Progress | None = None,
    recorded: str | None = None,
    max_pages: int = LIVE_PAGES,
    save: str | None = None,
) -> ValidationResult | source_live.LiveReport:
    """fast, full: the checks against the mock API; live: the bounded live read of the real API (max_pages per
    stream; save: a folder for the pages read, which recorded= replays)."""
    if level == "live":
        engine.refuse(SOURCE, ws, name, "fast")  # the name, the folder, the interpreter: refused as at any level
        return source_live.live_read(ws, name, max_pages, save)
    if level not in engine.LEVELS:
        raise Refused(failed("validate.bad_level", f"Unknown level {level!r}.", "Use 'fast', 'full' or 'live'."))
    started = time.perf_counter()
    engine.refuse(SOURCE, ws, name, level)
    spec = source_spec.stored(ws, name)
    report = progress or engine.silent
    recorded = _recorded(ws, recorded)
    with workspace_lock(ws.state_dir):
        code = SourceCode.load(ws, name)
    found = {f.id: f for f in (check(code) for check in catalog.SOURCES.static)}
    logs = engine.log_dir(ws, f"source-{name}")
    units = Units(ws, f"source-{name}", logs, use_cache=False, workers=4, kind=SOURCE)
    try:
        total = 1 + _submit(units, ws, code, spec, level, recorded)
        report(1, total, "static checks")
        units.wait_all(report, 1, total, known=found)
    finally:
        units.close()
    for findings in units.answers():
        _merge(found, findings)
    if spec is None:
        found.update(_no_spec(name))
    ordered = engine.settle(SOURCE, level, found)
    nxt = _next(ws, name, level, ordered)
    return engine.answer(SOURCE, ws, level, ordered, started=started, logs=logs, verbose=verbose, units=units, next=nxt)


def _merge(found: dict[str, Finding], new: list[Finding]) -> None:
    """The engine's merge of each stream's answers, except that the failures of one check in several streams make
    one finding naming each stream (their messages say which)."""
    for f in new:
        old = found.get(f.id)
        if old is not None and old.status == f.status == "fail" and f.message not in old.message:
            found[f.id] = old.model_copy(update={"message": f"{old.message} | {f.message}"})
        else:
            engine.merge(found, [f])


def _next(ws: Workspace, name: str, level: str, findings: list[Finding]) -> str:
    if any(f.status == "fail" for f in findings):
        return f"Fix the failures, each has a hint, then call validate_source(name={name!r}) again."
    if level == "fast":
        return f"validate_source(name={name!r}, level='full')"
    return after_full(
        ws, name, f"validate_source(name={name!r}, level='live', max_pages={LIVE_PAGES}, save='recorded')"
    )


def after_full(ws: Workspace, name: str, live: str) -> str:
    """The `next` of a green full: what the example config needs filled in first (the live read needs it too),
    the bounded live read (`live`, as the caller calls it), then the whole sync's command, last, so that it runs
    as printed."""
    rel = Connector(name, "source").example_rel
    example = ws.root / rel
    text = read_regular(example).decode(errors="replace") if example.is_file() else ""
    placeholders = sorted(set(PLACEHOLDER.findall(text)))
    first = (f"Replace {', '.join(placeholders)} in {rel}. " if placeholders else "") + (
        f"{variables_to_set(ws, references(text))}. " if references(text) else ""
    )
    return (
        f"The example config reads the real API. {first}Then {live} reads {LIVE_PAGES} pages a stream of it "
        f"(nothing written) and saves them for the mock to replay. Last, the whole sync; run it with: "
        f"{ws.bizon_command('run', rel)}"
    )


def _submit(
    units: Units, ws: Workspace, code: SourceCode, spec: SourceSpec | None, level: str, recorded: str | None
) -> int:
    """Start discovery, each stream's contract (and full's run), full's tests; returns how many units."""
    name, logs, sub = code.name, units.logs, units.scratch_dir
    units.submit("discovery", lambda: discovery(ws, spec, name, sub(), logs), declared_ids(discovery))
    stream_ids = [*declared_ids(contract), *(declared_ids(bizon_run) if level == "full" else [])]
    for s in spec.streams if spec is not None else []:
        stream = functools.partial(_stream, ws, spec, s, level, sub, logs, recorded)
        units.submit(f"stream {s.name}", stream, stream_ids)
        if level == "full" and spec is not None:  # every case of the stream in one probe, beside its contract
            against = functools.partial(stream_cases, ws, spec, s, sub, logs, recorded)
            units.submit(f"cases {s.name}", against, declared_ids(source_cases.cases))
    if level == "full":
        units.submit(TESTS_SOURCE.id, lambda: [source_tests(ws, code, sub(), logs / "tests.log")], [TESTS_SOURCE.id])
    return len(units.submitted)


def stream_cases(
    ws: Workspace, spec: SourceSpec, stream: StreamSpec, scratch: Callable[[], Path], logs: Path, recorded: str | None
) -> list[Finding]:
    """The stream against every case of the mock that applies to the spec, in one probe."""
    with mock_api.start(spec.model_dump(mode="json"), recorded=recorded) as api:
        configs = {case: source_config(ws, spec, stream.name, api, case) for case in api.cases_for()}
        pages = _max_pages(spec, stream, api)
        return source_cases.cases(ws, spec.name, stream.name, configs, api, scratch(), logs, pages)


def _no_spec(name: str) -> dict[str, Finding]:
    """Without a stored spec there is no mock API to serve: the contract, the cases and the run are not run."""
    no_mock = {
        c.id: c.skip(f"No stored spec for {name}: no mock API to serve (call describe_source).")
        for c in (*declared(contract), *declared(source_cases.cases))
    }
    return {**no_mock, RUN_BIZON_RUN.id: RUN_BIZON_RUN.skip("No stored spec: no mock API to run from.")}


def _stream(
    ws: Workspace,
    spec: SourceSpec | None,
    stream: StreamSpec,
    level: str,
    scratch: Callable[[], Path],
    logs: Path,
    recorded: str | None,
) -> list[Finding]:
    """A stream's contract, then (full) its real run: only once get() ended, a run of a loop is a timeout."""
    assert spec is not None  # a stream is one of the stored spec's
    found = contract(ws, spec, stream, scratch(), logs, recorded)
    if level != "full":
        return found
    unmet = RUN_BIZON_RUN.unmet({f.id: f for f in found}, f" for stream {stream.name}")
    return [*found, unmet or bizon_run(ws, spec, stream, scratch(), logs, recorded)]
