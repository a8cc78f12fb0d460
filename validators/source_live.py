"""A bounded live read of a source: its own code against the user's REAL API, at most a few pages per stream.

Sources only read, so this is safe where a destination's live write would not be. Per stream of the stored spec,
probes/source_live_probe.py (in the workspace's Python) builds the rendered source as bizon's runner does, with the
example config's `source:` section resolved as `bizon run` resolves it (env:// from the environment, then the
tree's .env; the tree's own resolver), and loops get() from `{}` until the API says no more or `max_pages` pages
were read. The answer says per stream: pages, records, why pagination ended, duplicate ids, whether id_field and
cursor_field are in every record, a sketch of the record schema, per-page timings and the first requests (secrets
masked). With `save=FOLDER` the bodies of the pages read are saved as FOLDER/<stream>/page-001.json, ...: the
recorded pages the mock API replays (fakes/mock_api.py, "Recorded responses"; validate_source(recorded=FOLDER)).
A stream's earlier pages there are replaced (a shorter read leaves no stale page-004.json); a stream that read no
page keeps them.

Findings (checks declared below, kind source, level live, so the source's checklist lists them): live.read
passes per stream that read without failure (reaching the page cap is no failure: "more pages exist");
live.http_error (with the API's status and message),
live.read_error, live.not_built, live.repeated (the next pagination came back: the run would never end),
live.timeout and live.probe_died fail; live.ids_unique and live.id_field fail; live.cursor_field, live.empty,
live.time_limit and live.save warn. Refused before anything runs: placeholders left in the example (live.config),
a referenced variable set nowhere (live.unset), max_pages out of 1..MAX_PAGES, a save folder outside the tree.

No secret reaches the answer, the kept log or the saved pages: the probe masks what it writes and prints, and
everything is masked again here with the values this side looked up.
"""

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from pydantic import BaseModel

from bizon_forge import interpreter
from bizon_forge.atomic import workspace_lock, write_all
from bizon_forge.connector import Connector
from bizon_forge.findings import Finding, Refused, Result, failed
from bizon_forge.spec import source as source_spec
from bizon_forge.spec.source import SourceSpec, StreamSpec
from bizon_forge.validators.catalog import Check, answers
from bizon_forge.validators.engine import log_dir
from bizon_forge.validators.runtime import Run, run_logged
from bizon_forge.validators.scratch import lookup, references
from bizon_forge.workspace import Workspace, read_regular

PROBE = Path(__file__).parent / "probes" / "source_live_probe.py"
MAX_PAGES = 20  # a live read samples the API; a sync reads it all
REQUESTS_SHOWN = 6  # per stream; the rest are counted
IDS_SHOWN = 5
SCHEMA_KEYS = 25
SECONDS_PER_PAGE = 45.0  # a slow page with its retries; the whole probe is bounded by the sum, up to TIMEOUT_CAP_S
TIMEOUT_CAP_S = 600.0
MIN_SECRET = 4  # as the probe: shorter values are no secret, and masking them would garble every text
MASK = "***"
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")  # what the example config leaves to the user, e.g. <TOKEN_REFRESH_ENDPOINT>
SECRET_KEY = re.compile(r"key|token|secret|passw|credential", re.I)
# The real API may sit behind the user's proxy or a private CA; the workspace's scrubbed environment drops these.
NETWORK_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


class RequestLine(BaseModel):
    page: int
    method: str
    url: str  # query parameters named like a key, token, secret or password are ***
    status: int | None = None
    bytes: int = 0
    seconds: float = 0.0
    retried: list[int | str] = []  # statuses (or errors) the source's retries absorbed before this answer
    auth: list[str] = []  # the credential headers sent, values masked: "Authorization: Bearer ***"
    body: str | None = None  # a POST's body, cut short


class StreamReport(BaseModel):
    name: str
    pages: int = 0
    records: int = 0
    ended: str  # end | page_limit | error | repeated | time_limit | not_built | timeout | probe_died
    why: str
    status: int | None = None  # an HTTP error's status
    error: str | None = None
    api_message: str | None = None  # the error answer's body, cut short
    duplicates: int = 0  # records whose id an earlier record had
    duplicate_ids: list[str] = []
    id_field: str = "id"
    id_missing: int = 0  # records without id_field
    cursor_field: str | None = None
    cursor_missing: int | None = None
    schema_sketch: dict[str, str] = {}  # top-level key -> JSON types, and in how many records when not all
    page_seconds: list[float] = []
    requests: list[RequestLine] = []  # the first REQUESTS_SHOWN
    request_count: int = 0
    statuses: dict[str, int] = {}
    saved_pages: int = 0


class LiveReport(Result):
    name: str
    config: str  # the example config read (workspace-relative)
    variables: dict[str, str] = {}  # the variables it references -> where their values were found (never the values)
    max_pages: int
    streams: list[StreamReport] = []
    saved: str | None = None  # the folder the pages were saved to (workspace-relative)
    log: str | None = None
    seconds: float = 0.0


@dataclass
class _Config:
    rel: str
    path: Path
    env: dict[str, str]  # the referenced variables, for the probe only
    where: dict[str, str]
    secrets: list[str]


# -- what the read needs, refused before anything runs ------------------------------------------------------


def _refuse(ws: Workspace, name: str, max_pages: int) -> SourceSpec:
    bad = source_spec.check_name(name)
    if bad:
        raise Refused(*bad)
    if not 1 <= max_pages <= MAX_PAGES:
        raise Refused(failed("live.max_pages", f"max_pages is {max_pages}; a live read takes 1 to {MAX_PAGES}."))
    spec = source_spec.stored(ws, name)
    if spec is None or not (ws.root / Connector(name, "source").code_rel).is_file():
        todo = f"render_source(name={name!r})" if spec else "describe_source(spec=...)"
        raise Refused(failed("live.not_found", f"No rendered source {name} with a stored spec.", f"Call {todo}."))
    state = interpreter.require(ws, spec.dependencies)
    if state.missing:
        raise Refused(
            failed(
                "install.missing",
                f"{', '.join(state.missing)} (declared by {name}) is not installed in {state.python}.",
                f"install_dependencies(name={name!r}, kind='source') installs it.",
            )
        )
    return spec


def _folder(ws: Workspace, save: str | None) -> Path | None:
    if save is None:
        return None
    folder = (ws.root / save).resolve()
    if ws.root.resolve() not in folder.parents:
        raise Refused(LIVE_SAVE.fail(f"{save} is not a folder under the workspace.", "Give e.g. save='recorded'."))
    return folder


def _config(ws: Workspace, name: str) -> _Config:
    rel = Connector(name, "source").example_rel
    path = ws.root / rel
    if not path.is_file():
        raise Refused(failed("live.config", f"{rel} does not exist.", f"render_source(name={name!r}) writes it."))
    try:
        loaded = yaml.safe_load(read_regular(path).decode(errors="replace"))
    except yaml.YAMLError as error:
        raise Refused(failed("live.config", f"{rel} is no valid YAML: {error}"[:400], file=rel)) from None
    section = loaded.get("source") if isinstance(loaded, dict) else None
    if not isinstance(section, dict):
        raise Refused(failed("live.config", f"{rel} has no `source:` section.", f"render_source(name={name!r})"))
    text = yaml.safe_dump(section)
    holes = sorted(set(PLACEHOLDER.findall(text)))
    if holes:
        raise Refused(failed("live.config", f"{rel} still holds {', '.join(holes)}.", "Replace them.", file=rel))
    names = references(text)
    found = lookup(ws.root, names)
    unset = [n for n in names if n not in found]
    if unset:
        raise Refused(
            failed(
                "live.unset",
                f"{rel} references {', '.join(unset)}, set neither in the server's environment nor in "
                f"{ws.root / '.env'}.",
                f"Set {', '.join(unset)} in the workspace's .env (bizon run reads it too; keep it out of git).",
                file=rel,
            )
        )
    env = {n: value for n, (value, _) in found.items()}
    return _Config(rel, path, env, {n: w for n, (_, w) in found.items()}, _secrets(section, env.values()))


def _secrets(section: dict, values: Iterable[str]) -> list[str]:
    """The values to hide: the referenced variables' and the literal credentials the config's auth carries."""
    auth = section.get("authentication")
    params = auth.get("params") if isinstance(auth, dict) else None
    params = params if isinstance(params, dict) else {}
    literal = [v for k, v in params.items() if isinstance(v, str) and SECRET_KEY.search(str(k)) and "://" not in v]
    return sorted({s for s in [*values, *literal] if len(s) >= MIN_SECRET}, key=len, reverse=True)


# -- masking --------------------------------------------------------------------------------------------------


def _forms(secret: str) -> list[str]:
    return [secret, json.dumps(secret)[1:-1], quote(secret, safe="")]


def mask_text(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        for form in _forms(secret):
            text = text.replace(form, MASK)
    return text


def masked(value: Any, secrets: list[str]) -> Any:
    """`value` (JSON-like) with every secret inside its strings, keys too, replaced by ***."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, dict):
        return {mask_text(str(k), secrets): masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, secrets) for v in value]
    return value


# -- the probe -------------------------------------------------------------------------------------------------


def _env(config: _Config) -> dict[str, str]:
    env = {k: os.environ[k] for k in NETWORK_ENV if k in os.environ}
    no_proxy = ",".join(
        p for p in (os.environ.get("NO_PROXY") or os.environ.get("no_proxy"), "127.0.0.1,localhost") if p
    )
    return {**env, "NO_PROXY": no_proxy, "no_proxy": no_proxy, **config.env}


def _probe(ws: Workspace, spec: SourceSpec, config: _Config, max_pages: int, logs: Path) -> tuple[Run, list[dict]]:
    timeout = min(TIMEOUT_CAP_S, 30 + SECONDS_PER_PAGE * max_pages * len(spec.streams))
    scratch = Path(tempfile.mkdtemp(prefix=f"bizon-forge-live-{spec.name}-"))
    try:
        request = {
            "config": str(config.path),
            "streams": [s.name for s in spec.streams],
            "max_pages": max_pages,
            "budget_s": timeout - 20,  # the probe stops starting pages first, so what it read is still written
            "secret_vars": sorted(config.env),
        }
        (scratch / "request.json").write_text(json.dumps(request))
        out = scratch / "pages.jsonl"
        cmd = [ws.python(), str(PROBE), str(ws.root), spec.name, str(scratch / "request.json"), str(out)]
        run = run_logged(ws, cmd, scratch, logs / "live.log", timeout, env=_env(config))
        lines = []
        for raw in out.read_text(encoding="utf-8").splitlines() if out.is_file() else []:
            try:
                lines.append(masked(json.loads(raw), config.secrets))
            except ValueError:
                break  # cut by the timeout
        return run, lines
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _scrub(path: Path, secrets: list[str]) -> None:
    """The kept log, masked again here: what the source printed went through the probe's mask, this is the floor."""
    if path.is_file() and secrets:
        path.write_text(mask_text(path.read_text(encoding="utf-8", errors="replace"), secrets), encoding="utf-8")


# -- the answer per stream -------------------------------------------------------------------------------------


def _dig(value: Any, path: str) -> Any:
    for key in path.split(".") if path else []:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else type(value).__name__


def schema_sketch(rows: list[Any]) -> dict[str, str]:
    """Top-level key -> its JSON types ("string|null"), with "(k/n)" when only k of n records have it."""
    kinds: dict[str, Counter] = {}
    for row in rows:
        for key, value in (row if isinstance(row, dict) else {}).items():
            kinds.setdefault(str(key), Counter())[_kind(value)] += 1
    sketch = {}
    for key, seen in list(kinds.items())[:SCHEMA_KEYS]:
        present = sum(seen.values())
        types = "|".join(k for k, _ in seen.most_common())
        sketch[key] = types if present == len(rows) else f"{types} ({present}/{len(rows)})"
    if len(kinds) > SCHEMA_KEYS:
        sketch["…"] = f"{len(kinds) - SCHEMA_KEYS} more keys"
    return sketch


def _why(ended: dict, pages: int, max_pages: int, run: Run) -> str:
    status = f"HTTP {ended['status']}: " if ended.get("status") else ""
    detail = ended.get("message") or ended.get("error") or ""
    return {
        "end": f"the API said no more: next pagination {{}} after page {pages}",
        "page_limit": f"page limit {max_pages} reached: more pages exist",
        "error": f"page {pages + 1} failed: {status}{detail}"[:400],
        "repeated": f"the source asked for the same next page twice after page {pages}: it would never end",
        "time_limit": f"the read's time ran out after page {pages}: more pages may exist",
        "not_built": f"the source was not built: {ended.get('error')}"[:400],
        "timeout": f"the read ran out of time after page {pages} (the whole read is bounded)",
        "probe_died": f"the read ended (exit {run.returncode}) after page {pages}, before this stream ended",
    }[ended["end"]]


def _requests(lines: list[dict]) -> list[RequestLine]:
    return [RequestLine(page=line["page"] + 1, **r) for line in lines if "page" in line for r in line["requests"]]


def stream_report(stream: StreamSpec, lines: list[dict], max_pages: int, run: Run) -> StreamReport:
    fallback = "timeout" if run.timed_out else "probe_died"  # no line says how the stream ended
    pages = [line for line in lines if "records" in line]
    ended = next((line for line in lines if "end" in line), {"end": fallback})
    records = [r for page in pages for r in page["records"]]
    ids = Counter(str(r["id"]) for r in records)
    requests = _requests(lines)
    return StreamReport(
        name=stream.name,
        pages=len(pages),
        records=len(records),
        ended=ended["end"],
        why=_why(ended, len(pages), max_pages, run),
        status=ended.get("status"),
        error=ended.get("error"),
        api_message=ended.get("message"),
        duplicates=sum(n - 1 for n in ids.values()),
        duplicate_ids=[i for i, n in ids.items() if n > 1][:IDS_SHOWN],
        id_field=stream.id_field,
        id_missing=sum(_dig(r["data"], stream.id_field) is None for r in records),
        cursor_field=stream.cursor_field,
        cursor_missing=sum(_dig(r["data"], stream.cursor_field) is None for r in records)
        if stream.cursor_field
        else None,
        schema_sketch=schema_sketch([r["data"] for r in records]),
        page_seconds=[page.get("seconds", 0.0) for page in pages],
        requests=requests[:REQUESTS_SHOWN],
        request_count=len(requests),
        statuses=dict(Counter(str(r.status) for r in requests)),
    )


# -- the checks of a live read (validate_source level "live"), declared for the source's checklist -------------------

LIVE = "A bounded live read of the real API (level live)"


def _live(name: str, what: str, why: str, fix: str, limits: str = "") -> Check:
    """The check `live.<name>` (named as source_cases names `api.<case>`: the id is typed once, here)."""
    return Check(f"live.{name}", LIVE, what, why, fix, limits=limits, level="live", origin="forge", kind="source")


LIVE_READ = _live(
    "read",
    "Per stream, the source's own code reads at most max_pages pages of the real API without a failure (the page "
    "cap reached is no failure).",
    "The mock API proves the code against the spec; only the real API proves the spec against the API.",
    "Read the stream's report: its pages, why pagination ended, the first requests (secrets masked).",
    limits="A sample of the API, not a sync: what lies past max_pages is not read; nothing is written anywhere.",
)
LIVE_HTTP_ERROR = _live(
    "http_error",
    "No page of the live read answers an HTTP error.",
    "A 401/403 is the credentials, a 404 the base_url or endpoint: the spec or the environment, not the code.",
    "The finding's hint says which: the variable's value, the auth type and header, or base_url and endpoint.",
)
LIVE_READ_ERROR = _live(
    "read_error",
    "Reading a page raises no error other than an HTTP one (parsing, a missing records_path).",
    "The real API's shape may differ from the spec's: another records_path, cursor path or record shape.",
    "Compare the spec's paths with the saved pages (save='recorded').",
)
LIVE_NOT_BUILT = _live(
    "not_built",
    "The source builds from the example config, its env:// variables resolved as `bizon run` resolves them.",
    "The live read runs what a user runs: the example config, not the check config.",
    "Read the error: usually a variable's value or the authentication block of the example config.",
)
LIVE_REPEATED = _live(
    "repeated",
    "The next pagination never comes back: the read would end.",
    "bizon stops only on an empty next_pagination; a repeated one loops forever against the real API.",
    "Check the pagination paths of the spec against the saved pages (save='recorded').",
)
LIVE_TIMEOUT = _live(
    "timeout",
    "The whole read finishes within its bound (SECONDS_PER_PAGE per page, at most TIMEOUT_CAP_S).",
    "A page that never answers would hang a sync as well.",
    "Read the log: the request that hung, its retries.",
)
LIVE_PROBE_DIED = _live(
    "probe_died",
    "The read's process lives until every stream ended.",
    "A crash of the interpreter (a native library, memory) says nothing about pagination: it must be seen.",
    "Read the log's end.",
)
LIVE_IDS_UNIQUE = _live(
    "ids_unique",
    "No record id repeats within the pages read.",
    "A real API that repeats ids across pages (or an id_field that is not unique) lands duplicates.",
    "Name the field that identifies a record as id_field, or check the pagination does not overlap pages.",
)
LIVE_ID_FIELD = _live(
    "id_field",
    "Every record read holds the spec's id_field.",
    "A record without its id lands with a wrong or empty id.",
    "Name the field that identifies a record (a dotted path inside it) and render again.",
)
LIVE_CURSOR_FIELD = _live(
    "cursor_field",
    "Every record read holds the spec's cursor_field (incremental streams).",
    "An incremental run cannot tell whether a record without it changed.",
    "Name the field holding the record's update time, or drop cursor_field.",
)
LIVE_EMPTY = _live(
    "empty",
    "The API answered some records (a warning when none).",
    "No records is an empty account, or a records_path that reads nothing.",
    "Check records_path against a saved page.",
)
LIVE_TIME_LIMIT = _live(
    "time_limit",
    "The read of a stream ended before its share of the time ran out (a warning when not).",
    "A slow API: more pages may exist than the read saw.",
    "Read again with fewer pages, or look at the per-page timings.",
)
LIVE_SAVE = _live(
    "save",
    "With save=FOLDER, every page read is saved as FOLDER/<stream>/page-NNN.json (a warning when one cannot be).",
    "Saved pages are what the mock replays (validate_source recorded=FOLDER): the real API's shapes in the checks.",
    "Read the note: a body that is no JSON, or one too large to keep.",
)
FAILED_END = {  # how a stream's read ended -> the check its failure is
    "not_built": LIVE_NOT_BUILT,
    "repeated": LIVE_REPEATED,
    "timeout": LIVE_TIMEOUT,
    "probe_died": LIVE_PROBE_DIED,
}


@answers(
    LIVE_READ,
    LIVE_HTTP_ERROR,
    LIVE_READ_ERROR,
    LIVE_NOT_BUILT,
    LIVE_REPEATED,
    LIVE_TIMEOUT,
    LIVE_PROBE_DIED,
    LIVE_IDS_UNIQUE,
    LIVE_ID_FIELD,
    LIVE_CURSOR_FIELD,
    LIVE_EMPTY,
    LIVE_TIME_LIMIT,
)
def findings(s: StreamReport) -> list[Finding]:
    """What is wrong with one stream's read; a read that only stopped at the page limit is no failure."""
    found = []
    if s.ended in ("error", "not_built", "repeated", "timeout", "probe_died"):
        check = (LIVE_HTTP_ERROR if s.status else LIVE_READ_ERROR) if s.ended == "error" else FAILED_END[s.ended]
        found.append(check.fail(f"{s.name}: {s.why}", _hint(s)))
    if s.duplicates:
        shown = ", ".join(s.duplicate_ids)
        found.append(LIVE_IDS_UNIQUE.fail(f"{s.name}: {s.duplicates} duplicate ids in {s.pages} pages ({shown})."))
    if s.id_missing:
        found.append(
            LIVE_ID_FIELD.fail(
                f"{s.name}: id_field {s.id_field!r} is missing in {s.id_missing} of {s.records} records."
            )
        )
    if s.cursor_missing:
        found.append(
            LIVE_CURSOR_FIELD.warn(
                f"{s.name}: cursor_field {s.cursor_field!r} is missing in {s.cursor_missing} of {s.records} records: "
                "an incremental run cannot tell whether they changed.",
            )
        )
    if s.ended in ("end", "page_limit") and s.records == 0:
        found.append(LIVE_EMPTY.warn(f"{s.name}: the API answered no records.", "Check records_path."))
    if s.ended == "time_limit":
        found.append(LIVE_TIME_LIMIT.warn(f"{s.name}: {s.why}"))
    if not any(f.status == "fail" for f in found):
        summary = f"{s.name}: {s.pages} pages, {s.records} records; {s.why}"
        found.insert(0, LIVE_READ.passed(summary))
    return found


def _hint(s: StreamReport) -> str:
    if s.status in (401, 403):
        return "The API refused the credentials: check the variable's value and the spec's auth type and header."
    if s.status == 404:
        return "Check base_url and the stream's endpoint in the spec."
    if s.ended == "repeated":
        return "Check the pagination paths of the spec against the saved pages (save='recorded')."
    return "Read the log; the error is the API's or the source's own."


# -- saving the pages ------------------------------------------------------------------------------------------


@answers(LIVE_SAVE)
def _save(ws: Workspace, folder: Path, lines: list[dict], reports: list[StreamReport]) -> list[Finding]:
    """FOLDER/<stream>/page-001.json ... (the recorded format), stale pages of an earlier read removed."""
    changes: dict[Path, str | None] = {}
    found: list[Finding] = []
    for report in reports:
        pages = [line for line in lines if line.get("stream") == report.name and "records" in line]
        missing = next((line for line in pages if line.get("body") is None), None)
        if missing is not None:
            note = missing.get("body_note")
            found.append(LIVE_SAVE.warn(f"{report.name}: pages not saved: page {missing['page'] + 1}: {note}."))
            continue
        where = folder / report.name
        new = {
            where / f"page-{i:03d}.json": json.dumps(p["body"], indent=1, ensure_ascii=False)
            for i, p in enumerate(pages, 1)
        }
        stale = {p: None for p in where.glob("page-*.json") if p not in new} if where.is_dir() else {}
        changes.update({**stale, **new})
        report.saved_pages = len(new)
    if changes:
        with workspace_lock(ws.state_dir):
            write_all(changes)
    return found


# -- the read --------------------------------------------------------------------------------------------------


def live_read(ws: Workspace, name: str, max_pages: int = 3, save: str | None = None) -> LiveReport:
    started = time.perf_counter()
    spec = _refuse(ws, name, max_pages)
    folder = _folder(ws, save)
    config = _config(ws, name)
    logs = log_dir(ws, f"live-{name}")
    run, lines = _probe(ws, spec, config, max_pages, logs)
    _scrub(ws.root / run.log, config.secrets)
    streams = [
        stream_report(s, [line for line in lines if line.get("stream") == s.name], max_pages, run) for s in spec.streams
    ]
    found = [f for s in streams for f in findings(s)]
    if folder is not None:
        found += _save(ws, folder, lines, streams)
    ok = not any(f.status == "fail" for f in found)
    report = LiveReport(
        ok=ok,
        findings=found,
        next=_next(name, ok, save),
        name=name,
        config=config.rel,
        variables=config.where,
        max_pages=max_pages,
        streams=streams,
        saved=str(folder.relative_to(ws.root.resolve())) if folder is not None else None,
        log=run.log,
        seconds=round(time.perf_counter() - started, 2),
    )
    return LiveReport.model_validate(masked(report.model_dump(), config.secrets))


def _next(name: str, ok: bool, save: str | None) -> str:
    if not ok:
        return "Fix what failed (each finding has a hint), then read again."
    if save is None:
        return "Read again with save='recorded' to keep these pages, and replay them in the checks."
    return f"validate_source(name={name!r}, level='full', recorded={save!r}) replays the saved pages."
