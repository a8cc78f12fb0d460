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

from bizon_forge.validators.report import CheckFinding, failed, passed, skipped
from bizon_forge.workspace import Workspace, tied_to_server

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


# -- import + contract --------------------------------------------------------------------------------

MARKER = "BIZON_FORGE_PROBE "
PROBE_STEPS = (  # (the probe's step, its finding id, what it does)
    ("import", "import.models", "`import bizon.common.models`"),
    ("config", "import.config_validate", "Validating the example config"),
    ("build", "contract.build", "Building the destination"),
    ("write", "contract.write_records", "write_records"),
    ("finalize", "contract.finalize", "finalize()"),
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
) -> list[CheckFinding]:
    """import.models, import.config_validate and, given a check config, contract.* against its target."""
    script = Path(__file__).with_name("contract_probe.py")
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
    ids = [i for _, i, _ in PROBE_STEPS] if contract else ["import.models", "import.config_validate"]
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


def _probe_failure(ws: Workspace, name: str, id: str, got: dict, example: str, run: Run) -> CheckFinding:
    error = got["error"]
    file, line = _innermost_frame(got.get("trace", ""), ws.root)
    messages = {
        "import.models": f"`import bizon.common.models` failed: {error}",
        "import.config_validate": f"The example config does not validate: {error}",
        "contract.build": f"Building the destination from the check config failed: {error}",
        "contract.write_records": f"write_records on 3 real records (into the check config's target) failed: {error}",
        "contract.finalize": f"finalize() after the write raised: {error}",
    }
    missing = re.search(r"No module named '([\w.]+)'", error)
    if missing and id in ("import.models", "contract.build"):
        module = missing.group(1).split(".")[0]
        return failed(
            id,
            _one_line(messages[id]),
            file=file,
            line=line,
            hint=f"`{module}` is not installed in {ws.python()}, which runs this workspace's bizon. Declare its "
            f"distribution: describe_target(name={name!r}, ..., dependencies=['DIST>=VERSION']), then "
            f"apply_registrations and install_dependencies(name={name!r}) record and install it.",
            output=got.get("trace") or _log_tail(run),
            log=run.log,
        )
    unset = re.search(r"environment variable '(\w+)' is not set", error)
    if unset and id in ("import.config_validate", "contract.build"):
        return failed(
            id,
            _one_line(messages[id]),
            file=example if id == "import.config_validate" else None,
            hint=f"Set {unset.group(1)} in {ws.root / '.env'} (bizon run reads it too; keep it out of git), or in the "
            f"environment the bizon-forge server runs in (`env` in mcp.json, `claude mcp add -e {unset.group(1)}=...`, "
            "then restart the server). The checks get exactly the variables the configs reference as env://NAME "
            "(never BIZON_FORGE_* ones); an unset one that only the example references gets a stand-in, as the "
            "example is validated and never run.",
            output=got.get("trace") or _log_tail(run),
            log=run.log,
        )
    if id == "import.config_validate":
        file, line = example, None
        if not (ws.root / example).is_file():
            hint = "render_destination writes one; it is what `bizon run` and the contract and smoke checks use."
            return failed(id, f"There is no example config at {example}.", file=example, hint=hint)
    return failed(
        id,
        _one_line(messages[id]),
        file=file,
        line=line,
        output=got.get("trace") or _log_tail(run),
        log=run.log,
    )


def _log_tail(run: Run) -> str:
    """What the destination logged before the probe's verdict (its own words about the failure)."""
    return "\n".join(ln for ln in run.tail.splitlines() if not ln.startswith(MARKER))


def _one_line(text: str, limit: int = 300) -> str:
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


def destination_tests(ws: Workspace, tests_dir: str, scratch: Path, log: Path) -> CheckFinding:
    id = "tests.destination"
    folder = ws.root / tests_dir
    if not folder.is_dir() or not any(folder.rglob("test_*.py")):
        return skipped(id, f"No tests in {tests_dir}/; add a test_*.py there (bizon's pattern: sqlite backend).")
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


def bizon_suite(ws: Workspace, scratch: Path, log: Path) -> CheckFinding:
    id = "tests.bizon_suite"
    present = [t for t in BIZON_SUITE if (ws.root / t).is_file()]
    if not present:
        return skipped(id, f"The tree has none of {', '.join(BIZON_SUITE)}.")
    cmd = [
        ws.python(),
        "-m",
        "pytest",
        *PYTEST_ARGS,
        f"--rootdir={ws.root}",
        *(str(ws.root / t) for t in present),
    ]
    return _pytest_finding(id, run_logged(ws, cmd, scratch, log, TESTS_TIMEOUT_S), " + ".join(present))


def secrets_check(ws: Workspace, check: str, cwd: Path, log: Path, env: dict[str, str]) -> CheckFinding:
    """live.bizon_secrets_check: bizon's own masked dry run of the check config's references, with exactly the
    variables the live checks get (its find_dotenv also reads the tree's .env, as `bizon run` does)."""
    id = "live.bizon_secrets_check"
    cmd = [ws.python(), "-m", "bizon.cli.main", "secrets", "check", str(ws.root / check)]
    run = run_logged(ws, cmd, cwd, log, PROBE_TIMEOUT_S, env=env)
    if "No such command 'secrets'" in run.tail:
        return skipped(id, "This tree's bizon has no `bizon secrets check`.")
    if "No gsm:// / env:// references found" in run.tail:
        return skipped(id, f"bizon secrets check {check}: the check config references nothing to resolve.")
    lines = [ln.strip() for ln in run.tail.splitlines() if ln.strip()]
    if run.returncode == 0 and not run.timed_out:
        return passed(id, f"bizon secrets check {check}: {lines[-1] if lines else 'passed'}")
    unresolved = [ln for ln in lines if "✗" in ln]
    return failed(
        id,
        f"bizon secrets check {check} failed: {len(unresolved) or 'some'} reference(s) did not resolve"
        + (f" ({_one_line(unresolved[0])})" if unresolved else "")
        + ".",
        file=check,
        output="\n".join(unresolved) or run.tail,
        log=run.log,
    )


def _pytest_finding(id: str, run: Run, what: str) -> CheckFinding:
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
SUITE_SCRIPT = Path(__file__).with_name("suite_probe.py")
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
                    _one_line(got["message"]),
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


SMOKE_RUNS = (  # (finding id, buffer_size, what it proves)
    ("smoke.bizon_run", None, "bizon run of the dummy source"),
    ("data.empty_last_buffer", 0, "bizon run with buffer_size: 0 (every iteration flushed, the last buffer empty)"),
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


def _judge_run(ws, name, id, destination_id, what, run: Run, read: dict | None, reading: Run) -> CheckFinding:
    if run.timed_out:
        return failed(id, f"{what} did not finish in {SMOKE_TIMEOUT_S} s.", output=run.tail, log=run.log)
    if run.returncode != 0:
        status = next((ln for ln in reversed(run.tail.splitlines()) if "Pipeline finished" in ln), "")
        file, line = _innermost_frame(run.tail, ws.root)
        return failed(
            id,
            _one_line(f"{what} exited {run.returncode}. {status}"),
            file=file,
            line=line,
            output=run.tail,
            log=run.log,
        )
    errors = [ln for ln in run.tail.splitlines() if "| ERROR" in ln and f"destinations.{name}." in ln]
    if errors:
        return failed(
            id,
            _one_line(f"{what} exited 0, but the destination logged an error: {errors[0]}"),
            output="\n".join(errors),
            log=run.log,
        )
    if read is None or read.get("status") != "pass":
        why = (read or {}).get("message") or f"the read-back ended (exit {reading.returncode})"
        return failed(
            id,
            _one_line(f"{what} exited 0, but reading the target back failed: {why}"),
            output=(read or {}).get("trace") or reading.tail,
            log=reading.log,
        )
    got = sorted(str(row[0]) for row in read["rows"])
    if got != DUMMY_IDS:
        return failed(
            id,
            _one_line(
                f"{what} exited 0, but {destination_id} holds {len(got)} record(s), not the dummy source's 5: "
                f"read back source_record_id {got[:8]}, expected {DUMMY_IDS}."
            ),
            log=run.log,
        )
    return passed(
        id, f"{what}: exit 0 in {run.seconds:.1f} s, and the 5 records it sent read back from {destination_id}."
    )
