"""The checks that run the workspace's code in subprocesses: import + contract, the tests, a real `bizon run`.

Every subprocess gets a timeout, the workspace's scrubbed environment, a scratch directory as its cwd, and a
log file that is capped: a destination that prints without end cannot flood the disk or the answer.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bizon_forge.findings import Finding, failed, passed, skipped
from bizon_forge.validators.catalog import Check, answers, data_suite
from bizon_forge.validators.checklist import (
    CHECKLIST_CHECK_CONNECTION_BOOL,
    CHECKLIST_DETAILS_BASE,
    CHECKLIST_WRITE_RECORDS_RETURNS,
)
from bizon_forge.validators.destination_syntax import (
    CHECKLIST_DESTINATION_BASE,
    SOURCE_SYNTAX,
    TRAP_WRITE_RECORDS_SIGNATURE,
)
from bizon_forge.validators.registered import (
    CHECKLIST_LITERAL_NAME,
    REGISTRATION_ENUM,
    REGISTRATION_FACTORY,
    REGISTRATION_SAME_NAME,
    REGISTRATION_UNION,
)
from bizon_forge.validators.traps import (
    TRAP_FACTORY_TOP_LEVEL_IMPORT,
    TRAP_LITERAL_OTHER_MEMBER,
    TRAP_MODELS_IMPORT_IN_CONFIG,
    TRAP_OPTIONAL_IMPORT_IN_CONFIG,
    TRAP_SETUP_IN_CHECK_CONNECTION,
    TRAP_WRITE_RECORDS_RAISES,
)
from bizon_forge.workspace import Workspace, tied_to_server

PROBES = Path(__file__).parent / "probes"  # scripts run in the workspace's interpreter

PROBE_TIMEOUT_S = 90
TESTS_TIMEOUT_S = 300
SMOKE_TIMEOUT_S = 180
LOG_CAP = 2_000_000  # bytes kept from the start of a subprocess's output
TAIL_CAP = 64_000  # bytes always kept from its end (errors and the probe's marker are there)
BIZON_SUITE = ("tests/cli/test_cli_imports.py", "tests/destination/test_config.py")
# Plugins of the interpreter's environment that cost seconds at pytest start-up; these tests never use them.
PYTEST_ARGS = (
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:faker",
    "-m",
    "not live",
)
# With no start delay bizon's consumer can miss the producer's end and wait on its queue forever: one run in
# three under load on 0.5; on 0.6.4 a first run in a fresh venv (imports compiling) did it too, its thread
# dump showing the consumer in queue.get() and no producer left. One second avoids it on both.
SMOKE_RUNNER = {"consumer_start_delay": 1, "is_alive_check_interval": 1}
DUMMY_SOURCE = {
    "name": "dummy",
    "stream": "creatures",
    "sync_mode": "full_refresh",
    "authentication": {"type": "api_key", "params": {"token": "dummy_key"}},
}


@dataclass
class Run:
    returncode: int | None
    timed_out: bool
    tail: str  # the end of the output, decoded
    seconds: float
    log: str  # workspace-relative
    marked: list[str]  # whole output lines that start with the marker asked for, wherever they came


def run_logged(
    ws: Workspace,
    cmd: list[str],
    cwd: Path,
    log: Path,
    timeout: float,
    marker: bytes | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run `cmd`, stream its merged output into `log` (capped), keep the tail, kill its group on timeout."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        tied_to_server(cmd),  # the agent's code must not outlive a server that is killed
        cwd=cwd,
        # faulthandler: a run that hangs is sent SIGABRT first, and its log then shows where each thread waited
        env={**ws.env(), "PYTHONFAULTHANDLER": "1", **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout also ends what it spawned
    )
    tail = bytearray()
    marked: list[str] = []
    with log.open("wb") as sink:
        sink.write(("$ " + " ".join(cmd) + "\n").encode())

        def pump():
            written, partial = 0, b""
            while chunk := proc.stdout.read1(65536):
                if marker is not None:
                    *lines, partial = (partial + chunk).split(b"\n")
                    partial = partial[-TAIL_CAP:]  # a marker line is short; an endless line is not one
                    marked.extend(ln.decode(errors="replace") for ln in lines if ln.startswith(marker))
                if written < LOG_CAP:
                    sink.write(chunk[: LOG_CAP - written])
                written += len(chunk)
                tail.extend(chunk)
                if len(tail) > 2 * TAIL_CAP:
                    del tail[: len(tail) - TAIL_CAP]
            if written > LOG_CAP:
                sink.write(f"\n[... {written - LOG_CAP} bytes not kept; the end follows ...]\n".encode())
                sink.write(bytes(tail[-TAIL_CAP:]))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _dump_threads(proc)
        # The run is over: what it left behind (a daemon a test or destination started) goes too, so the
        # pipe closes and the reader sees its end instead of waiting on a stray writer.
        _kill_group(proc)
        reader.join(timeout=10)
    return Run(
        returncode=None if timed_out else proc.returncode,
        timed_out=timed_out,
        tail=bytes(tail[-TAIL_CAP:]).decode(errors="replace"),
        seconds=time.perf_counter() - started,
        log=str(log.relative_to(ws.root)),
        marked=marked,
    )


def _ended(run: Run, timeout: float, what: str) -> str:
    """How a subprocess that gave no answer ended: out of time, or by its own exit."""
    return f"did not finish within {timeout} s" if run.timed_out else f"ended the {what} (exit {run.returncode})"


def _dump_threads(proc: subprocess.Popen) -> None:
    """Ask a hung Python to print every thread's stack (faulthandler on SIGABRT) before it is killed."""
    try:
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait(timeout=5)
    except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# What explains a failure of the checks that run the code, each tuple the one before it and more.
# Static failures that stop bizon from importing: a runtime failure after one of them is that failure again.
IMPORT_BLOCKERS = tuple(
    c.id
    for c in (
        SOURCE_SYNTAX,
        REGISTRATION_ENUM,
        REGISTRATION_UNION,
        CHECKLIST_LITERAL_NAME,
        TRAP_LITERAL_OTHER_MEMBER,
        TRAP_MODELS_IMPORT_IN_CONFIG,
        TRAP_OPTIONAL_IMPORT_IN_CONFIG,
    )
)
BUILD_BLOCKERS = (
    *IMPORT_BLOCKERS,
    *(
        c.id
        for c in (
            CHECKLIST_DETAILS_BASE,
            REGISTRATION_FACTORY,
            REGISTRATION_SAME_NAME,
            TRAP_FACTORY_TOP_LEVEL_IMPORT,
            CHECKLIST_DESTINATION_BASE,
            CHECKLIST_CHECK_CONNECTION_BOOL,
            TRAP_WRITE_RECORDS_SIGNATURE,
        )
    ),
)
WRITE_BLOCKERS = (
    *BUILD_BLOCKERS,
    *(c.id for c in (TRAP_WRITE_RECORDS_RAISES, CHECKLIST_WRITE_RECORDS_RETURNS, TRAP_SETUP_IN_CHECK_CONNECTION)),
)

# live.py's checks of the scratch target, declared here: the checks below are explained by them, and live.py runs
# its subprocess through run_logged above.
LIVE_CHECK_CONFIG = Check(
    "live.check_config",
    "Scratch target",
    "`config/<name>.check.yml` exists, is a bizon config for this destination, and its destination config "
    "differs from the example's in at least one field other than destination_id and buffer settings. The "
    "contract, data and smoke checks write only there. It warns when no field chooses the target, and when a "
    "sql destination that declares a server's driver checks on SQLite (a green then proves the code on SQLite "
    "only).",
    "The example config is the user's real sync: a check that writes there replaces someone's records.",
    "Point the check config (render_destination writes it next to the example) at a scratch target: a "
    "database, folder or endpoint that holds no real data. It may use env://BIZON_FORGE_SCRATCH (a fresh "
    "folder) and env://BIZON_FORGE_RECEIVER_URL (a local HTTP receiver), both made and removed by each "
    "validation.",
    limits="That it differs is checked, not that it is scratch.",
    origin="forge",
)


LIVE_CHECK_REFERENCES = Check(
    "live.check_references",
    "Scratch target",
    "Every `env://NAME` the check config references is set, in the environment of the bizon-forge server "
    "or in the workspace's `.env` (the environment wins, as in `bizon run`). The live checks get exactly "
    "those variables and no other of the server's environment; skip when the check config references none.",
    "The checks run with a scrubbed environment: an unset reference would stop every live check with bizon's "
    "'environment variable is not set'.",
    "Set the variable in the workspace's .env (bizon run reads it too) or in the server's environment.",
    skip_is_not_applicable=True,
    origin="forge",
)


LIVE_BIZON_SECRETS_CHECK = Check(
    "live.bizon_secrets_check",
    "Scratch target",
    "`bizon secrets check` on the check config (bizon's own masked dry run of its env:// and gsm:// references, "
    "inline ${...} included) resolves every reference, with the variables the live checks get and the tree's "
    ".env. Skip when the config references nothing or the tree's bizon has no `secrets check`.",
    "bizon resolves references itself, with rules of its own (inline syntax, gsm:// settings): its word on "
    "the check config is the one `bizon run` will follow.",
    "Fix the references bizon names (a typo in the name, an unclosed ${...}), or set the variables.",
    level="full",
    origin="facts",
)


# -- import + contract --------------------------------------------------------------------------------

MARKER = "BIZON_FORGE_PROBE "


IMPORT_MODELS = Check(
    "import.models",
    "Import and contract",
    "`import bizon.common.models` works in the workspace's Python, and imports the workspace's bizon.",
    "Every bizon command starts with that import.",
    "Read the excerpt: the last line names the module and the error.",
    origin="facts",
    explained_by=IMPORT_BLOCKERS,
)
IMPORT_CONFIG_VALIDATE = Check(
    "import.config_validate",
    "Import and contract",
    "The example YAML (`config/<name>.example.yml`) validates as a BizonConfig and targets this destination.",
    "It is what `bizon config validate` and `bizon run` check first.",
    "Fix the fields the validation error names, in the YAML or in config.py.",
    origin="facts",
    explained_by=(*IMPORT_BLOCKERS, REGISTRATION_SAME_NAME.id),
)
CONTRACT_BUILD = Check(
    "contract.build",
    "Import and contract",
    "`DestinationFactory.get_destination()` builds the destination from the check config "
    "(`config/<name>.check.yml`) on a sqlite backend.",
    "This is how the engine builds it in a run.",
    "Read the excerpt: the constructor or the factory branch raised.",
    origin="forge",
    # at full, bizon's own dry run of the check config's references names an unresolvable one first
    explained_by=(*BUILD_BLOCKERS, LIVE_BIZON_SECRETS_CHECK.id),
    needs_finished_code=True,
)
CONTRACT_WRITE_RECORDS = Check(
    "contract.write_records",
    "Import and contract",
    "`write_records()` on a real six-column DataFrame of 3 records (bizon's destination_record_schema) "
    "returns `(True, None)` and raises nothing. The records go to the check config's scratch target, never "
    "to the example's.",
    "The engine passes exactly that frame and unpacks exactly that pair.",
    "Read the excerpt; the frame holds bizon_id, bizon_extracted_at, bizon_loaded_at, source_record_id, "
    "source_timestamp, source_data.",
    limits="Not judged here: what landed (the full level's data.* checks read it back).",
    origin="forge",
    explained_by=WRITE_BLOCKERS,
    needs_finished_code=True,
)
CONTRACT_FINALIZE = Check(
    "contract.finalize",
    "Import and contract",
    "`finalize()` after that write raises nothing.",
    "It runs once after the last flush; an exception there fails the run after the data was written.",
    "Read the excerpt: publishing the staged records failed.",
    origin="forge",
    explained_by=WRITE_BLOCKERS,
    needs_finished_code=True,
)


PROBE_STEPS = (  # (the probe's step, its finding id, what it does)
    ("import", IMPORT_MODELS.id, "`import bizon.common.models`"),
    ("config", IMPORT_CONFIG_VALIDATE.id, "Validating the example config"),
    ("build", CONTRACT_BUILD.id, "Building the destination"),
    ("write", CONTRACT_WRITE_RECORDS.id, "write_records"),
    ("finalize", CONTRACT_FINALIZE.id, "finalize()"),
)
RUNTIME = tuple(id for _, id, _ in PROBE_STEPS)
# The data checks: no answer while the code cannot write, there is no scratch target, or nothing reads back;
# and a record that does not land exact explains every later data failure.
DATA_BLOCKERS = (*WRITE_BLOCKERS, *RUNTIME, LIVE_CHECK_CONFIG.id, LIVE_CHECK_REFERENCES.id, LIVE_BIZON_SECRETS_CHECK.id)


@answers(
    IMPORT_MODELS,
    IMPORT_CONFIG_VALIDATE,
    CONTRACT_BUILD,
    CONTRACT_WRITE_RECORDS,
    CONTRACT_FINALIZE,
)
def probe(
    ws: Workspace,
    name: str,
    example: str,
    check: str | None,
    run_id: str,
    cwd: Path,
    log: Path,
    env: dict[str, str],
) -> list[Finding]:
    """import.models, import.config_validate and, given a check config, contract.* against its target."""
    script = PROBES / "contract_probe.py"
    contract = check is not None
    cmd = [ws.python(), str(script), str(ws.root), name, str(ws.root / example)]
    cmd += ["contract", str(ws.root / check), f"forge_{run_id}_contract"] if check is not None else ["import"]
    run = run_logged(ws, cmd, cwd, log, PROBE_TIMEOUT_S, marker=MARKER.encode(), env=env)
    result = {}
    for line in run.marked:
        try:
            step = json.loads(line[len(MARKER) :])
            result[step.pop("step")] = step
        except (ValueError, KeyError, AttributeError):
            continue  # the destination printed something that looks like our marker
    ids = [i for _, i, _ in PROBE_STEPS] if contract else [IMPORT_MODELS.id, IMPORT_CONFIG_VALIDATE.id]
    out, blocked = [], None
    for step, id, what in PROBE_STEPS:
        if id not in ids:
            continue
        got = result.get(step)
        if got is None and blocked is None:
            # The step that was running when the probe died or ran out of time.
            out.append(failed(id, f"{what} {_ended(run, PROBE_TIMEOUT_S, 'probe')}.", output=run.tail, log=run.log))
            blocked = id
        elif got is None:
            out.append(skipped(id, f"Not run: {blocked} failed.", blocked))
        elif got["ok"]:
            out.append(passed(id, f"ok ({got['seconds']} s)"))
        else:
            out.append(_probe_failure(ws, name, id, got, example, run))
            blocked = blocked or id
    return out


def _probe_failure(ws: Workspace, name: str, id: str, got: dict, example: str, run: Run) -> Finding:
    error = got["error"]
    file, line = _innermost_frame(got.get("trace", ""), ws.root)
    messages = {
        IMPORT_MODELS.id: f"`import bizon.common.models` failed: {error}",
        IMPORT_CONFIG_VALIDATE.id: f"The example config does not validate: {error}",
        CONTRACT_BUILD.id: f"Building the destination from the check config failed: {error}",
        CONTRACT_WRITE_RECORDS.id: f"write_records on 3 real records (into the check config's target) failed: {error}",
        CONTRACT_FINALIZE.id: f"finalize() after the write raised: {error}",
    }
    missing = re.search(r"No module named '([\w.]+)'", error)
    if missing and id in (IMPORT_MODELS.id, CONTRACT_BUILD.id):
        module = missing.group(1).split(".")[0]
        return failed(
            id,
            one_line(messages[id]),
            file=file,
            line=line,
            hint=f"`{module}` is not installed in {ws.python()}, which runs this workspace's bizon. Declare its "
            f"distribution: describe_target(name={name!r}, ..., dependencies=['DIST>=VERSION']), then "
            f"apply_registrations and install_dependencies(name={name!r}) record and install it.",
            output=got.get("trace") or _log_tail(run),
            log=run.log,
        )
    unset = re.search(r"environment variable '(\w+)' is not set", error)
    if unset and id in (IMPORT_CONFIG_VALIDATE.id, CONTRACT_BUILD.id):
        return failed(
            id,
            one_line(messages[id]),
            file=example if id == IMPORT_CONFIG_VALIDATE.id else None,
            hint=f"Set {unset.group(1)} in {ws.root / '.env'} (bizon run reads it too; keep it out of git), or in the "
            f"environment the bizon-forge server runs in (`env` in mcp.json, `claude mcp add -e {unset.group(1)}=...`, "
            "then restart the server). The checks get exactly the variables the configs reference as env://NAME "
            "(never BIZON_FORGE_* ones); an unset one that only the example references gets a stand-in, as the "
            "example is validated and never run.",
            output=got.get("trace") or _log_tail(run),
            log=run.log,
        )
    if id == IMPORT_CONFIG_VALIDATE.id:
        file, line = example, None
        if not (ws.root / example).is_file():
            hint = "render_destination writes one; it is what `bizon run` and the contract and smoke checks use."
            return failed(id, f"There is no example config at {example}.", file=example, hint=hint)
    return failed(
        id,
        one_line(messages[id]),
        file=file,
        line=line,
        output=got.get("trace") or _log_tail(run),
        log=run.log,
    )


def _log_tail(run: Run) -> str:
    """What the destination logged before the probe's verdict (its own words about the failure)."""
    return "\n".join(ln for ln in run.tail.splitlines() if not ln.startswith(MARKER))


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _innermost_frame(trace: str, root: Path) -> tuple[str | None, int | None]:
    """The deepest traceback frame inside the workspace, as (workspace-relative path, line)."""
    found: tuple[str | None, int | None] = (None, None)
    prefix = str(root) + os.sep
    for m in re.finditer(r'File "([^"]+)", line (\d+)', trace):
        path = m.group(1)
        if path.startswith(prefix):
            found = (path[len(prefix) :], int(m.group(2)))
    return found


# -- tests ------------------------------------------------------------------------------------------------

SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|errors?|skipped|deselected)\b.*?) in [\d.]+s", re.M)


def _pytest_summary(tail: str) -> str:
    found = SUMMARY.findall(tail)
    return found[-1] if found else ""


def _first_failure(tail: str) -> tuple[str | None, int | None]:
    m = re.search(r"^(tests/[^\s:]+\.py):(\d+): ", tail, re.M)
    return (m.group(1), int(m.group(2))) if m else (None, None)


TESTS_DESTINATION = Check(
    "tests.destination",
    "Tests and smoke",
    "The destination's own tests (`tests/connectors/destinations/<name>/`) pass, run with the tree's "
    "pytest "
    "and `--confcutdir` at that folder.",
    "The guide's `pytest tests/` fails offline; the destination's tests are the part that is about it.",
    "Fix the failing test or the code it tests; they must run offline and bring their own fixtures.",
    level="full",
    explained_by=(*WRITE_BLOCKERS, *RUNTIME),
    needs_finished_code=True,
)


@answers(TESTS_DESTINATION)
def destination_tests(ws: Workspace, tests_dir: str, scratch: Path, log: Path) -> Finding:
    id = TESTS_DESTINATION.id
    folder = ws.root / tests_dir
    if not folder.is_dir() or not any(folder.rglob("test_*.py")):
        return TESTS_DESTINATION.skip(
            f"No tests in {tests_dir}/; add a test_*.py there (bizon's pattern: sqlite backend)."
        )
    cmd = [
        ws.python(),
        "-m",
        "pytest",
        *PYTEST_ARGS,
        f"--rootdir={ws.root}",
        f"--confcutdir={folder}",
        str(folder),
    ]
    return _pytest_finding(id, run_logged(ws, cmd, scratch, log, TESTS_TIMEOUT_S), tests_dir)


TESTS_BIZON_SUITE = Check(
    "tests.bizon_suite",
    "Tests and smoke",
    "A service-free part of bizon's suite passes: tests/cli/test_cli_imports.py and tests/destination/test_config.py.",
    "They guard what a new destination can break: optional imports on the CLI path and destination configs.",
    "Read the failing test; usually an optional import reached config.py.",
    level="full",
    origin="facts",
    explained_by=(*IMPORT_BLOCKERS, IMPORT_MODELS.id),
)


@answers(TESTS_BIZON_SUITE)
def bizon_suite(ws: Workspace, scratch: Path, log: Path) -> Finding:
    id = TESTS_BIZON_SUITE.id
    present = [t for t in BIZON_SUITE if (ws.root / t).is_file()]
    if not present:
        return TESTS_BIZON_SUITE.skip(f"The tree has none of {', '.join(BIZON_SUITE)}.")
    cmd = [
        ws.python(),
        "-m",
        "pytest",
        *PYTEST_ARGS,
        f"--rootdir={ws.root}",
        *(str(ws.root / t) for t in present),
    ]
    return _pytest_finding(id, run_logged(ws, cmd, scratch, log, TESTS_TIMEOUT_S), " + ".join(present))


def _pytest_finding(id: str, run: Run, what: str) -> Finding:
    summary = _pytest_summary(run.tail)
    if run.timed_out:
        return failed(id, f"pytest {what} timed out after {TESTS_TIMEOUT_S} s.", output=run.tail, log=run.log)
    if run.returncode == 0:
        return passed(id, f"{what}: {summary or 'passed'}")
    if run.returncode == 5:
        return skipped(id, f"pytest collected no tests from {what}.")
    if "No module named pytest" in run.tail:
        return failed(
            id,
            "The workspace's Python has no pytest.",
            hint="Install bizon's test group into it: pip install 'pytest>=7.2.2,<8'.",
            log=run.log,
        )
    file, line = _first_failure(run.tail)
    failures = "\n".join(ln for ln in run.tail.splitlines() if ln.startswith(("FAILED", "ERROR")))
    return failed(
        id,
        f"pytest {what}: {summary or f'exit {run.returncode}'}.",
        file=file,
        line=line,
        output=failures or run.tail,
        log=run.log,
    )


# -- the data suite and the smoke runs, judged by read-back ------------------------------------------------

SUITE_MARKER = "BIZON_FORGE_SUITE "
SUITE_TIMEOUT_S = 240
SUITE_SCRIPT = PROBES / "suite_probe.py"
# The dummy source's creatures: what a `bizon run` of it must leave in the target.
DUMMY_IDS = sorted(["9898", "88787", "98", "3333", "56565"])


def _suite_cmd(ws: Workspace, name: str, check: str, run_id: str, *mode: str) -> list[str]:
    version = ws.bizon_version or "unknown"
    return [ws.python(), str(SUITE_SCRIPT), str(ws.root), name, str(ws.root / check), version, run_id, *mode]


def _suite_answers(run: Run) -> list[dict]:
    answers = []
    for line in run.marked:
        try:
            answers.append(json.loads(line[len(SUITE_MARKER) :]))
        except ValueError:
            continue  # the destination printed something that looks like our marker
    return answers


# The data suite's checks, declared in suite_probe.py beside the code of its cases (it runs in the workspace's
# interpreter and cannot import these): each case's words are its own, the rest is the same for all.
DATA_SUITE = tuple(
    Check(
        case["id"],
        "Data, read back from the scratch target",
        case["what"],
        case["why"],
        case["fix"],
        limits=case.get("limits", ""),
        level="full",
        origin=case.get("origin", "forge"),
        explained_by=(*DATA_BLOCKERS, *case["after"]),
        needs_finished_code=True,
    )
    for case in data_suite()
)
# By the probe's order (test_catalog holds each name to its id); the others are named where they are used.
DATA_READ_BACK, DATA_EXACT, DATA_SEVERAL_FLUSHES, *_ = DATA_SUITE
READ_BLOCKERS = (*DATA_BLOCKERS, DATA_READ_BACK.id)
LANDED = (*READ_BLOCKERS, DATA_EXACT.id)


@answers(*DATA_SUITE)
def suite(ws: Workspace, name: str, check: str, run_id: str, ids: list[str], cwd: Path, log: Path, env) -> list:
    """data.*: the standard suite against the check config's target, one finding per case."""
    cmd = _suite_cmd(ws, name, check, run_id, "suite")
    run = run_logged(ws, cmd, cwd, log, SUITE_TIMEOUT_S, marker=SUITE_MARKER.encode(), env=env)
    answers = {a.get("case"): a for a in _suite_answers(run)}
    setup = answers.get("setup")
    out, blocked = [], None
    for id in ids:
        got = answers.get(id)
        if setup is not None:
            out.append(
                failed(id, f"The suite could not start: {setup['message']}", output=setup.get("trace"), log=run.log)
            )
        elif got is None and blocked is None:
            out.append(failed(id, f"This case {_ended(run, SUITE_TIMEOUT_S, 'suite')}.", output=run.tail, log=run.log))
            blocked = id
        elif got is None:
            out.append(skipped(id, f"Not run: {blocked} did not finish.", blocked))
        elif got["status"] == "pass":
            out.append(passed(id, got["message"]))
        elif got["status"] == "skip":
            out.append(skipped(id, got["message"], got.get("blocked_by")))
        else:
            file, line = _innermost_frame(got.get("trace", ""), ws.root)
            out.append(
                failed(
                    id,
                    one_line(got["message"]),
                    file=file,
                    line=line,
                    hint=got.get("hint"),
                    output=got.get("trace"),
                    log=run.log,
                )
            )
    return out


def smoke_config(check_text: str, destination_id: str, buffer_size: int | None) -> str:
    """The check config with the offline dummy source, its own destination_id and the runner's waits turned down."""
    import yaml

    config = yaml.safe_load(check_text) or {}
    config["source"] = dict(DUMMY_SOURCE)
    config.pop("transforms", None)
    destination = config.setdefault("destination", {}) or {}
    details = dict(destination.get("config") or {})
    details["destination_id"] = destination_id
    for key in ("unnest", "record_schemas"):  # read-back judges bizon's six columns
        details.pop(key, None)
    if buffer_size is not None:
        details["buffer_size"] = buffer_size
    destination["config"] = details
    config["destination"] = destination
    engine = config.setdefault("engine", {}) or {}
    config["engine"] = engine
    runner = engine.setdefault("runner", {}) or {}
    engine["runner"] = runner
    runner["config"] = {**(runner.get("config") or {}), **SMOKE_RUNNER}
    runner.pop("type", None)  # the thread runner: the only one that calls finalize()
    engine.pop("backend", None)  # the default sqlite file, in the run's own directory
    engine.pop("queue", None)
    return yaml.safe_dump(config, sort_keys=False)


SMOKE_BIZON_RUN = Check(
    "smoke.bizon_run",
    "Data, read back from the scratch target",
    "`bizon run` of the dummy source into the check config's target (fast runner settings, its own "
    "destination_id) exits 0, the destination logs no ERROR, and the 5 records read back.",
    "Only a real run proves the engine, the buffer and finalize work together; its log line proves nothing.",
    "Read the excerpt and the full log; the destination's error is usually near the end.",
    level="full",
    origin="facts",
    explained_by=READ_BLOCKERS,
    needs_finished_code=True,
)
DATA_EMPTY_LAST_BUFFER = Check(
    "data.empty_last_buffer",
    "Data, read back from the scratch target",
    "`bizon run` with `buffer_size: 0` (every iteration written at once, the last buffer empty) leaves the "
    "dummy source's 5 records in the target, read back.",
    "bizon returns before finalize() when the buffer is empty at the last iteration: staged records are never "
    "published, and the run says it succeeded.",
    "Override write_or_buffer_records to call finalize() when bizon skips it (the recipes show how), or write "
    "straight to the target.",
    level="full",
    origin="forge",
    explained_by=(*LANDED, DATA_SEVERAL_FLUSHES.id, SMOKE_BIZON_RUN.id),
    needs_finished_code=True,
)


SMOKE_RUNS = (  # (finding id, buffer_size, what it proves)
    (SMOKE_BIZON_RUN.id, None, "bizon run of the dummy source"),
    (DATA_EMPTY_LAST_BUFFER.id, 0, "bizon run with buffer_size: 0 (every iteration flushed, the last buffer empty)"),
)


@answers(
    DATA_EMPTY_LAST_BUFFER,
    SMOKE_BIZON_RUN,
)
def smoke(ws: Workspace, name: str, check: str, run_id: str, which: tuple, cwd: Path, logs: Path, env) -> list:
    """Real `bizon run`s (`which`: rows of SMOKE_RUNS) into the check config's target, each judged by reading
    the target back."""
    check_text = (ws.root / check).read_text()
    runs = {}
    for id, buffer_size, what in which:
        destination_id = f"forge_{run_id}_{id.split('.')[-1]}"
        folder = cwd / id
        folder.mkdir()
        config = folder / "run.yml"
        config.write_text(smoke_config(check_text, destination_id, buffer_size))
        cmd = [ws.python(), "-m", "bizon.cli.main", "run", str(config)]
        runs[id] = (destination_id, what, run_logged(ws, cmd, folder, logs / f"{id}.log", SMOKE_TIMEOUT_S, env=env))
    reading = run_logged(
        ws,
        _suite_cmd(ws, name, check, run_id, "readback", *(d for d, _, _ in runs.values())),
        cwd,
        logs / f"{'+'.join(runs)}.read-back.log",
        PROBE_TIMEOUT_S,
        marker=SUITE_MARKER.encode(),
        env=env,
    )
    read = {a.get("destination_id"): a for a in _suite_answers(reading)}
    setup = next((a for a in _suite_answers(reading) if a.get("case") == "setup"), None)
    return [_judge_run(ws, name, id, *runs[id], read.get(runs[id][0]) or setup, reading) for id in runs]


def _judge_run(ws, name, id, destination_id, what, run: Run, read: dict | None, reading: Run) -> Finding:
    if run.timed_out:
        return failed(id, f"{what} did not finish in {SMOKE_TIMEOUT_S} s.", output=run.tail, log=run.log)
    if run.returncode != 0:
        status = next((ln for ln in reversed(run.tail.splitlines()) if "Pipeline finished" in ln), "")
        file, line = _innermost_frame(run.tail, ws.root)
        return failed(
            id,
            one_line(f"{what} exited {run.returncode}. {status}"),
            file=file,
            line=line,
            output=run.tail,
            log=run.log,
        )
    errors = [ln for ln in run.tail.splitlines() if "| ERROR" in ln and f"destinations.{name}." in ln]
    if errors:
        return failed(
            id,
            one_line(f"{what} exited 0, but the destination logged an error: {errors[0]}"),
            output="\n".join(errors),
            log=run.log,
        )
    if read is None or read.get("status") != "pass":
        why = (read or {}).get("message") or f"the read-back ended (exit {reading.returncode})"
        return failed(
            id,
            one_line(f"{what} exited 0, but reading the target back failed: {why}"),
            output=(read or {}).get("trace") or reading.tail,
            log=reading.log,
        )
    got = sorted(str(row[0]) for row in read["rows"])
    if got != DUMMY_IDS:
        return failed(
            id,
            one_line(
                f"{what} exited 0, but {destination_id} holds {len(got)} record(s), not the dummy source's 5: "
                f"read back source_record_id {got[:8]}, expected {DUMMY_IDS}."
            ),
            log=run.log,
        )
    return passed(
        id, f"{what}: exit 0 in {run.seconds:.1f} s, and the 5 records it sent read back from {destination_id}."
    )
