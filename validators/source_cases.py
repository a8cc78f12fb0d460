"""validate_source full: the source against an API that misbehaves, one check per case of the mock (mock_api.py's
module doc says what each case serves), each judged by read-back against that case's ground truth.

All the cases of one stream run in ONE probe process (source_probe.py --cases): a source instance and a get() loop
per case, each in its own thread, against the case's prefix of one mock. What is judged, per case and stream: the
SourceRecord ids the source emitted (its own ids, not id_field looked up in data: a graphql source may land the
node or the edge), each served id exactly once and nothing else, each record's data what the API served for that
id; no retry sooner than a Retry-After; no page read twice; and, where the fault never lifts (error_in_200,
outage), get() raising: a stream that ends green there lost records.
"""

import json
from collections import Counter
from pathlib import Path

from bizon_forge.findings import Finding
from bizon_forge.validators.catalog import Check, answers, declared
from bizon_forge.validators.fakes import mock_api
from bizon_forge.validators.runtime import Run, run_logged
from bizon_forge.validators.source_code import (
    SRC_CONFIG_BASE,
    SRC_LAYOUT,
    SRC_METHODS,
    SRC_SOURCE_BASE,
    SRC_SYNTAX,
)
from bizon_forge.workspace import Workspace

PROBES = Path(__file__).parent / "probes"  # run in the workspace's interpreter
MARKER = "BIZON_FORGE_SOURCE_PROBE "
CASE_TIMEOUT_S = 60  # a case's get() loop; the slowest legitimate one waits a few Retry-Afters
PROBE_TIMEOUT_S = CASE_TIMEOUT_S + 60  # building every case's source, then the loops side by side


# -- discovery and the contract, declared here ----------------------------------------------------------------
# source_validation answers these (discovery(), contract()) and imports this module to run the cases; the cases
# name the contract's checks (REQUIRES, EXPLAINED_BY), so they are declared here, where both modules import them
# without an import cycle. Discovery's come along: pull.build is explained by discovery.source_list.

DISCOVERY = "Discovery"
CONTRACT = "Contract against the mock API"


DISCOVERY_SOURCE_LIST = Check(
    "discovery.source_list",
    DISCOVERY,
    "`bizon source list`, in the workspace's Python, lists the source with every stream of its spec.",
    "bizon finds sources by folder; an import error makes it print `NOT AVAILABLE` (exit 0) and a syntax error "
    "drops it from the list: the exit code says nothing, so the listing is read.",
    "Read the excerpt: an import error of the source's module is logged above the listing.",
    origin="facts",
    explained_by=(SRC_SYNTAX.id, SRC_LAYOUT.id, SRC_SOURCE_BASE.id, SRC_METHODS.id),
    kind="source",
)


DISCOVERY_STREAM_LIST = Check(
    "discovery.stream_list",
    DISCOVERY,
    "`bizon stream list NAME` lists every stream of the spec, `[Supports incremental]` where the spec names "
    "a cursor_field.",
    "It is how bizon (and a user) learns the streams; incremental support is read from get_records_after.",
    "streams() must return the spec's stream names; implement get_records_after for an incremental stream.",
    origin="facts",
    explained_by=(SRC_SYNTAX.id, SRC_LAYOUT.id, SRC_SOURCE_BASE.id, SRC_METHODS.id, DISCOVERY_SOURCE_LIST.id),
    kind="source",
)


PULL_BUILD = Check(
    "pull.build",
    CONTRACT,
    "The source builds as bizon's runner builds it (discovery by name and stream, its config class validating "
    "the check config's `source:` section pointed at the local mock API).",
    "Every run starts there.",
    "Read the excerpt: the config's validation or the source's __init__ raised.",
    explained_by=(SRC_SYNTAX.id, SRC_SOURCE_BASE.id, SRC_CONFIG_BASE.id, SRC_METHODS.id, DISCOVERY_SOURCE_LIST.id),
    kind="source",
)


BUILD = (PULL_BUILD.id,)


PULL_AUTH_SENT = Check(
    "pull.auth_sent",
    CONTRACT,
    "Every request carries the spec's authentication as the mock checks it (no 401).",
    "get_authenticator() sets session.auth; a request made outside self.session, or the wrong AuthBuilder, sends none.",
    "Return AuthBuilder.token/basic/oauth2(params=...) from get_authenticator and make every request through "
    "self.session.",
    explained_by=BUILD,
    requires=BUILD,
    kind="source",
)


PULL_HTTP_ERRORS_RAISE = Check(
    "pull.http_errors_raise",
    CONTRACT,
    "An HTTP error the source is answered ends get() with an exception, never with an empty last page.",
    "A swallowed error (try/except returning [] and `{}`, or a session without raise_for_status) makes bizon "
    "end the run green with records missing.",
    "Let the error raise after the session's retries: `response.raise_for_status()` and no broad except.",
    limits="Judged when the mock's 429 or 503 reaches get() (no retry took it): a source whose retries absorb "
    "every fault passes here; src.errors_raised reads the code for the rest.",
    origin="facts",
    explained_by=BUILD,
    requires=BUILD,
    kind="source",
)


PULL_RETRY_429 = Check(
    "pull.retry_429",
    CONTRACT,
    "A 429 with `Retry-After: 1` on the second page is retried, not sooner than it says.",
    "APIs rate-limit; bizon's own session retries on https:// only, so over the mock's http:// only the "
    "source's own retries count (and over https a 429 without Retry-After is not retried at all).",
    "Mount Retry(status_forcelist=[429, ...], respect_retry_after_header=True) on http:// and https:// of "
    "self.session.",
    explained_by=(*BUILD, PULL_AUTH_SENT.id),
    requires=BUILD,
    kind="source",
)


PULL_RETRY_5XX = Check(
    "pull.retry_5xx",
    CONTRACT,
    "A 503 on the third page is retried and the stream goes on.",
    "An exception in get() ends bizon's run (the engine never retries a page).",
    "Put 500, 502, 503, 504 in the retry adapter's status_forcelist.",
    explained_by=(*BUILD, PULL_AUTH_SENT.id, PULL_RETRY_429.id),
    requires=BUILD,
    kind="source",
)


LOOP = (*BUILD, PULL_AUTH_SENT.id, PULL_RETRY_429.id, PULL_RETRY_5XX.id, PULL_HTTP_ERRORS_RAISE.id)


PULL_PAGINATION_ENDS = Check(
    "pull.pagination_ends",
    CONTRACT,
    "Looping get() from `{}` as bizon's producer does ends with next_pagination `{}`, after the API's last "
    "page, within 3x the pages the mock serves.",
    "bizon stops only on an empty next_pagination: no page limit, no repeated-cursor check. A pagination that "
    "never empties loops until killed and publishes nothing; one that stops early loses the last pages.",
    "Return `{}` when the API says there is no next page (null cursor, no next URL, a short or empty page), and "
    "send the cursor where the spec says (a misplaced cursor gets page 1 again).",
    origin="facts",
    explained_by=LOOP,
    requires=BUILD,
    kind="source",
)


LOOP_ENDED = (*BUILD, PULL_PAGINATION_ENDS.id)  # the records are judged once get()'s loop ended


PULL_EVERY_RECORD_ONCE = Check(
    "pull.every_record_once",
    CONTRACT,
    "Every record the mock served comes out of get() exactly once (none lost, none twice).",
    "The guide's Step 4 and the point of a source: bizon neither dedupes nor notices a lost page.",
    "Read which records are missing or doubled and on which page: an off-by-one end test, an offset advanced by "
    "page_size instead of the records received, a cursor read from the wrong page.",
    explained_by=(PULL_PAGINATION_ENDS.id, *LOOP),
    requires=LOOP_ENDED,
    kind="source",
)


PULL_IDS_UNIQUE = Check(
    "pull.ids_unique",
    CONTRACT,
    "SourceRecord ids are unique across every page and are the records' id_field.",
    "bizon does not dedupe; ids that collide across pages (a page index, a wrong field) merge records downstream.",
    "`SourceRecord(id=str(row[<id_field>]), ...)`.",
    explained_by=(PULL_PAGINATION_ENDS.id, *LOOP),
    requires=LOOP_ENDED,
    kind="source",
)


PULL_FULL_RECORDS = Check(
    "pull.full_records",
    CONTRACT,
    "Each record's `data` is the full record as the API served it (same keys, same values, nested objects kept).",
    "The guide's Step 4: full records as dict; downstream models read `source_data`.",
    "Pass the record itself as data, not a subset or a re-keyed copy.",
    explained_by=LOOP,
    requires=LOOP_ENDED,
    kind="source",
)


PULL_SECRETS_NOT_LOGGED = Check(
    "pull.secrets_not_logged",
    CONTRACT,
    "The contract run's output (the source's logs) holds none of the credentials the mock issued.",
    "Logs are kept and shared; bizon itself logs no credential, but an HTTPError names the full URL (a key "
    "sent in the query string lands in the log).",
    "Send keys in headers, and never log the config, its authentication or the request's headers.",
    origin="facts",
    skip_is_not_applicable=True,
    explained_by=BUILD,
    kind="source",
)


PULL_INCREMENTAL = Check(
    "pull.incremental",
    CONTRACT,
    "With a cursor_field in the spec: get_records_after(last_run) brings exactly the records changed since, "
    "sending the filter parameter where the spec says (query, or the POST body for pattern E).",
    "bizon calls it on every run after the first; a filter sent in the wrong place brings everything again.",
    "Send updated_after_param = source_state.last_run (aware UTC ISO 8601) where the spec says, or filter "
    "client-side on parsed datetimes.",
    limits="Not judged: the watermark bizon keeps between runs (full's run is one full refresh).",
    skip_is_not_applicable=True,
    explained_by=(*LOOP, PULL_PAGINATION_ENDS.id),
    requires=(PULL_PAGINATION_ENDS.id,),
    kind="source",
)


# -- the cases ----------------------------------------------------------------------------------------------

GROUP = "Against an API that misbehaves"
# A case is judged once the source builds and authenticates; a failure the plain contract already found (the same
# root cause, seen against a well-behaved API) explains the case's.
REQUIRES = (PULL_BUILD.id, PULL_AUTH_SENT.id)
EXPLAINED_BY = (
    PULL_PAGINATION_ENDS.id,
    PULL_HTTP_ERRORS_RAISE.id,
    PULL_RETRY_429.id,
    PULL_RETRY_5XX.id,
    PULL_EVERY_RECORD_ONCE.id,
    PULL_IDS_UNIQUE.id,
    PULL_FULL_RECORDS.id,
)
READ_BACK = (
    "Read back: the SourceRecord ids get() emitted, each served id exactly once and no other id, each record's "
    "data equal to what the API served for it (the node or the edge, as the spec lands), no page read twice."
)
NOT_APPLICABLE = "Skipped when the case does not apply to the spec"


def _case(case: str, what: str, why: str, fix: str, limits: str = "") -> Check:
    return Check(
        f"api.{case}",
        GROUP,
        what,
        why,
        fix,
        limits=limits,
        level="full",
        origin="forge",
        explained_by=EXPLAINED_BY,
        skip_is_not_applicable=True,
        kind="source",
        requires=REQUIRES,
    )


API_LAST_PAGE_WITH_RECORDS = _case(
    "last_page_with_records",
    "The page holding the last records says there is no more (null cursor, has_more false, no next URL, "
    "hasNextPage false; offset: the total reached) and no empty page follows: its records come out, then `{}`. "
    + READ_BACK,
    "Most real APIs end this way; the default mock's empty last page hides a source that drops the records of "
    "the page that says it is the last.",
    "Emit the records of every page, the last one too, and return `{}` as next_pagination on the page that says "
    "there is no more.",
    limits=f"{NOT_APPLICABLE} (a stream without pagination, recorded pages).",
)
API_SHORT_PAGES = _case(
    "short_pages",
    "Pages in the middle shorter than asked (and more pages after them) do not end the stream. " + READ_BACK,
    "APIs filter pages after paging (deleted or hidden records): a short page is no last page.",
    "End only on what the API says (the cursor, has_more, the next URL, the total): never on a page shorter than "
    "the page size; advance an offset by the records received.",
    limits=f"{NOT_APPLICABLE} (no pagination, page size 1, recorded pages).",
)
API_PAGE_SIZE_CAP = _case(
    "page_size_cap",
    "A server that silently caps the page size below the spec's (7 when 100 was asked) loses no record. " + READ_BACK,
    "APIs clamp the page size without saying so: a source that steps an offset by page_size, or ends on a page "
    "shorter than asked, skips records.",
    "Step an offset by the records received, and end only on what the API says.",
    limits=f"{NOT_APPLICABLE} (no pagination, page size 1, recorded pages).",
)
API_TOTAL_CHANGES = _case(
    "total_changes",
    "Offset with total_path: a total on the first page below the real count (exact on later pages) does not "
    "end the stream early. " + READ_BACK,
    "Records are added while a sync pages; a total read once and trusted loses the records added.",
    "Read the total from every page, not only the first; and keep paging while pages are full.",
    limits=f"{NOT_APPLICABLE} (only offset with total_path; not over recorded pages).",
)
API_ERROR_IN_200 = _case(
    "error_in_200",
    "A page answering a non-retryable error inside an HTTP 200 (the spec's body_errors shape, GraphQL's "
    "`errors` array by default) on every try makes get() raise; the stream never ends green, and the error is "
    "not retried until the mock's request cap answers 410.",
    "A 200 with an `errors` array read as an empty last page ends bizon's run green with the rest of the stream "
    "lost; a retry loop on it never ends.",
    "Check the body for the spec's errors (errors_path, ok_path) before reading records: raise on a code that is "
    "neither retryable nor a re-auth code.",
    limits=f"{NOT_APPLICABLE} (no body_errors and no graphql). Judged on get(): what bizon's run does with the "
    "exception is run.bizon_run's.",
)
API_THROTTLED_IN_200 = _case(
    "throttled_in_200",
    "A retryable code inside a 200 (THROTTLED, with retry_after 1 s) on page 2 is waited out (no request "
    "sooner) and retried; every record once. " + READ_BACK,
    "GraphQL APIs throttle in the body, not with a 429: HTTP retries never see it.",
    "On a retryable code, wait the retry_after the body (or the Retry-After header) gives, then send the same "
    "request again.",
    limits=f"{NOT_APPLICABLE} (body_errors without retryable_codes).",
)
API_HTML_5XX = _case(
    "html_5xx",
    "A page answering 502, then 504, with an HTML body (a proxy's) is retried; every record once. " + READ_BACK,
    "Gateways answer HTML, not JSON: a source parsing the body before the status, or retrying only 503, fails.",
    "Retry 500, 502, 503, 504 before parsing; raise_for_status after the retries.",
)
API_DROPPED_CONNECTION = _case(
    "dropped_connection",
    "A page whose answer is cut mid-body once (Content-Length promised, connection closed) is retried, POST "
    "too; every record once. " + READ_BACK,
    "Connections drop; urllib3 retries reads, but not a POST unless told, and a body cut short raises in json().",
    "Retry on read errors (Retry(read=..., allowed_methods including POST: these requests only read)) or catch "
    "ChunkedEncodingError and send the page's request again.",
)
API_OUTAGE = _case(
    "outage",
    "A page answering 503 (Retry-After: 0) on every try makes get() raise after its retries: the stream never "
    "ends green.",
    "An outage longer than the retries is common; a source that reads the last 503 as an end of stream ends "
    "bizon's run green with records lost.",
    "Let the error raise once the retries are spent (raise_for_status, raise_on_status), never return `{}` on it.",
    limits="Judged on get(): what bizon's run does with the exception is run.bizon_run's.",
)
API_TOKEN_EXPIRY = _case(
    "token_expiry",
    "An access token that dies after page 2 (a 401, or an in-body UNAUTHENTICATED where the spec's body errors "
    "have reauth codes) is renewed and the same page asked again: every record once, no page repeated. " + READ_BACK,
    "Tokens live minutes, syncs hours; a source that restarts the stream on a new token reads pages twice, one "
    "that gives up loses the rest.",
    "On 401 (or a reauth code) get a new token and send the same request again, keeping the pagination.",
    limits=f"{NOT_APPLICABLE} (auth neither oauth nor client_credentials).",
)
API_SHARED_ENDPOINT = _case(
    "shared_endpoint",
    "Streams sharing one endpoint each get only their own records (the request tells them apart: the GraphQL "
    "field, a body key, a query parameter). " + READ_BACK,
    "A request without what tells the streams apart gets another stream's records, landed under the wrong name.",
    "Send each stream's own body (or the endpoint's own query parameters) on every page.",
    limits=f"{NOT_APPLICABLE} (no two streams on one endpoint).",
)
CHECKS = (  # in the mock's order of its cases (api_cases.CASES)
    API_LAST_PAGE_WITH_RECORDS,
    API_SHORT_PAGES,
    API_PAGE_SIZE_CAP,
    API_TOTAL_CHANGES,
    API_ERROR_IN_200,
    API_THROTTLED_IN_200,
    API_HTML_5XX,
    API_DROPPED_CONNECTION,
    API_OUTAGE,
    API_TOKEN_EXPIRY,
    API_SHARED_ENDPOINT,
)
BY_CASE = {c.id.removeprefix("api."): c for c in CHECKS}


# -- running every case of a stream in one probe ------------------------------------------------------------


def probe_cases(
    ws: Workspace, spec_name: str, stream: str, configs: dict[str, dict], scratch: Path, log: Path, max_pages: int
) -> tuple[Run, dict[str, dict], dict[str, list[dict]]]:
    """One probe for every case of a stream: its run, each case's end marker and each case's pages."""
    cases_path = scratch / f"cases-{stream}.json"
    fast = mock_api.api_cases.MUST_FAIL  # only whether get() raises is judged: its waits are cut short
    items = [{"case": c, "config": cfg, "fast_waits": c in fast} for c, cfg in configs.items()]
    cases_path.write_text(json.dumps(items))
    out_dir = scratch / f"cases-{stream}"
    out_dir.mkdir(exist_ok=True)
    cmd = [ws.python(), str(PROBES / "source_probe.py"), "--cases", str(ws.root), spec_name, stream]
    cmd += [str(cases_path), str(out_dir), str(max_pages), str(CASE_TIMEOUT_S)]
    env = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    run = run_logged(ws, cmd, scratch, log, PROBE_TIMEOUT_S, marker=MARKER.encode(), env=env)
    ends: dict[str, dict] = {}
    for line in run.marked:
        try:
            step = json.loads(line[len(MARKER) :])
        except ValueError:
            continue
        if isinstance(step, dict) and step.get("step") == "case":
            ends[str(step.get("case"))] = step
    return run, ends, {case: _pages(out_dir / f"{case}.jsonl") for case in configs}


def _pages(path: Path) -> list[dict]:
    pages = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                pages.append(json.loads(line))
            except ValueError:
                break
    return pages


# -- judging a case ------------------------------------------------------------------------------------------


def judge(case: str, stream: str, end: dict | None, pages: list[dict], report: dict, run: Run) -> Finding:
    """A case's finding for one stream, from the probe's end of its loop, the pages it emitted and the case's
    report (the mock's ground truth)."""
    check = BY_CASE[case]
    where = f"stream {stream} ({case})"
    s = report["streams"][stream]
    if end is None or end.get("timed_out") or end.get("build") is False:
        why = (end or {}).get("error") or f"the probe ended first (exit {run.returncode}, timed out {run.timed_out})"
        return check.fail(
            f"{where}: the case did not finish: {why}"[:400], output=(end or {}).get("trace"), log=run.log
        )
    if s["capped"]:
        return check.fail(
            f"{where}: the source kept asking after {s['requests']} requests, until the mock's request cap answered "
            f"410 ({s['capped']} time(s)): a failure retried forever, or a pagination that never ends.",
            log=run.log,
        )
    if case in mock_api.api_cases.MUST_FAIL:
        return _must_fail(check, where, end, pages, s)
    if case in mock_api.api_cases.ABSORBED and not _struck(case, s) and end.get("ok"):
        return check.skip(f"{where}: the case's fault was never served (the stream ended first): nothing judged.")
    return _read_back(check, where, end, pages, s, report, stream, run)


def _struck(case: str, s: dict) -> bool:
    """Whether the case's fault reached the source: a served fault, or for token_expiry a refused dead token."""
    if case == "token_expiry":
        return bool(s["unauthorized"])
    return any(f.get("fault") for f in s["faults"])


def _read_pages(report: dict, stream: str) -> list[int]:
    """The mock's page index of each page the source read (the 200 answers of the stream, faults left out)."""
    return [
        r["page"]
        for r in report["requests"]
        if r.get("stream") == stream and r.get("status") == 200 and not r.get("fault") and r.get("page") is not None
    ]


def _emitted(pages: list[dict]) -> list[dict]:
    return [r for p in pages for r in p["records"]]


def _lost(pages: list[dict], s: dict) -> list[str]:
    got = {str(r["id"]) for r in _emitted(pages)}
    return [str(i) for i in s["ids"] if str(i) not in got]


def _must_fail(check: Check, where: str, end: dict, pages: list[dict], s: dict) -> Finding:
    fault = next((f for f in s["faults"] if f.get("fault")), None)
    if end.get("ok"):
        lost = _lost(pages, s)
        first = f" (first {lost[0]})" if lost else ""
        how = (
            f"the mock answered page {fault['page'] + 1} with a fault that never lifts (HTTP {fault['status']}) and"
            if fault
            else "before the case's fault was served,"
        )
        return check.fail(
            f"{where}: {how} get() returned next_pagination {{}}: the stream ended green with {len(lost)} of "
            f"{len(s['ids'])} records lost{first}.",
        )
    if end.get("never_ends"):
        return check.fail(f"{where}: get() never ended ({end.get('pages')} pages).")
    if fault is None:
        return check.fail(f"{where}: get() raised before the case's fault was served: {end.get('error', '')[:200]}")
    return check.passed(f"{where}: get() raised on the fault of page {fault['page'] + 1}: {end.get('error', '')[:120]}")


def _read_back(
    check: Check, where: str, end: dict, pages: list[dict], s: dict, report: dict, stream: str, run: Run
) -> Finding:
    if end.get("never_ends"):
        return check.fail(f"{where}: get() still returned a next_pagination after {end.get('pages')} pages.")
    if not end.get("ok"):
        read = _read_pages(report, stream)
        last = f" after the mock's page {read[-1] + 1}" if read else " on the first page"
        return check.fail(
            f"{where}: get() raised{last}: {str(end.get('error', ''))[:300]}",
            output=end.get("trace"),
            log=run.log,
        )
    problem = _records_problem(pages, s, report, stream) or _timing_problem(s)
    if problem:
        return check.fail(f"{where}: {problem}")
    return check.passed(f"{where}: {len(s['ids'])} records, each once, in {len(pages)} pages")


def _records_problem(pages: list[dict], s: dict, report: dict, stream: str) -> str | None:
    out = _emitted(pages)
    served = [str(i) for i in s["ids"]]
    counts = Counter(str(r["id"]) for r in out)
    other = {str(i): name for name, o in report["streams"].items() if name != stream for i in o["ids"]}
    mixed = [i for i in counts if i not in set(served) and i in other]
    if mixed:
        return (
            f"{len(mixed)} record(s) of stream {other[mixed[0]]} came out (first {mixed[0]}): streams on one "
            "endpoint mixed, the request does not say which stream it is for."
        )
    foreign = [i for i in counts if i not in set(served)]
    if foreign:
        return (
            f"{len(foreign)} SourceRecord id(s) are no id the API served (first {foreign[0]!r}): ids not the records'."
        )
    missing = [i for i in served if counts[i] == 0]
    if missing:
        return _missing(missing, served, s, report, stream)
    twice = sorted(i for i, c in counts.items() if c > 1)
    if twice:
        return f"{len(twice)} record(s) came out more than once (first {twice[0]}): duplicates."
    by_id = {str(i): r for i, r in zip(s["ids"], s["records"], strict=True)}
    differ = [r for r in out if r["data"] != by_id[str(r["id"])]]
    if differ:
        return (
            f"{len(differ)} record(s) differ from what the API served (first {differ[0]['id']}): data not the record."
        )
    return None


def _missing(missing: list[str], served: list[str], s: dict, report: dict, stream: str) -> str:
    read = _read_pages(report, stream)
    last = read[-1] + 1 if read else 0
    head = f"{len(missing)} of {len(served)} served records never came out (first {missing[0]})"
    if not s["ended"]:
        return (
            f"{head}: get() returned next_pagination {{}} after the mock's page {last}, and the API had more "
            "pages: the last pages are lost."
        )
    if served[-len(missing) :] == missing:
        return f"{head}: the mock's page {last} held them and said it was the last: the last page's records are lost."
    return f"{head}: records lost on the way (the source read the mock's pages {', '.join(str(p + 1) for p in read)})."


def _timing_problem(s: dict) -> str | None:
    if s["early_retries"]:
        return f"{s['early_retries']} request(s) came sooner than the Retry-After the API gave: early retries."
    if s["pages_repeated"]:
        pages = ", ".join(str(p + 1) for p in s["pages_repeated"])
        return f"the mock's page(s) {pages} were read more than once: pages repeated (a restarted stream?)."
    return None


@answers(*CHECKS)
def cases(
    ws: Workspace,
    spec_name: str,
    stream: str,
    configs: dict[str, dict],
    api: mock_api.MockApi,
    scratch: Path,
    logs: Path,
    max_pages: int,
) -> list[Finding]:
    """Every case of one stream, run in one probe against `api`; `configs`: the source's config per case to run
    (the others do not apply)."""
    if not configs:
        return [c.skip(f"stream {stream}: the case does not apply to this spec.") for c in declared(cases)]
    run, ends, pages = probe_cases(ws, spec_name, stream, configs, scratch, logs / f"cases-{stream}.log", max_pages)
    found = []
    for c in declared(cases):
        case = c.id.removeprefix("api.")
        if case not in configs:
            found.append(c.skip(f"stream {stream}: the case does not apply to this spec."))
            continue
        found.append(judge(case, stream, ends.get(case), pages[case], api.report(case), run))
    return found
