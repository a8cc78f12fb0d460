"""validate_destination: run every check of a level once, the independent ones at the same time, and answer
one finding per check with the passes summed up in one line."""

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path

from bizon_forge import interpreter
from bizon_forge.atomic import workspace_lock
from bizon_forge.connector import Connector
from bizon_forge.findings import Refused
from bizon_forge.spec import destination as spec
from bizon_forge.validators import (
    agent_todo,
    cache,
    catalog,
    formatting,
    live,
    registered,
    runtime,
)
from bizon_forge.validators.code import DestinationCode
from bizon_forge.validators.report import CheckFinding, FixedFile, ValidationResult, explained, failed, skipped
from bizon_forge.validators.scratch import REFERENCE, Scratch
from bizon_forge.workspace import Workspace, read_regular

Progress = Callable[[float, float, str], None]
HEARTBEAT_S = 5.0  # clients time out silent calls; a long check reports that it is still running this often
KEEP_LOGS = 5  # runs kept per destination
STALE_LOG_S = 900  # an older run cannot still be writing (the slowest check times out sooner)


def _refuse_bad_input(ws: Workspace, name: str, level: str) -> None:
    bad = spec.check_name(name)
    if bad:
        raise Refused(*bad)
    if level not in ("fast", "full"):
        raise Refused(failed("validate.bad_level", f"Unknown level {level!r}.", "Use 'fast' or 'full'."))
    rel = Connector(name).dir
    folder = ws.root / rel
    if folder.is_dir() and ws.root not in Path(os.path.realpath(folder)).parents:
        raise Refused(
            failed(
                "validate.unsafe_path",
                f"{rel} leads out of the workspace (a symlink).",
                "Replace the symlink with the destination's real folder.",
            )
        )
    if not folder.is_dir():
        raise Refused(
            failed(
                "validate.not_found",
                f"{rel}/ does not exist in this workspace.",
                f"Call describe_target and render_destination(name={name!r}) first.",
            )
        )
    _refuse_without_interpreter(ws, name)


def _refuse_without_interpreter(ws: Workspace, name: str) -> None:
    """Every live check runs bizon in the workspace's interpreter: without one, say so once, not per check."""
    declared = spec.load(ws, name).dependencies if spec.spec_path(ws, name).is_file() else []
    state = interpreter.require(ws, declared)
    missing = state.missing
    if missing:
        raise Refused(
            failed(
                "install.missing",
                f"{', '.join(missing)} (declared by {name}) is not installed in {state.python}, which runs the checks.",
                f"install_dependencies(name={name!r}) installs it.",
            )
        )


def _log_dir(ws: Workspace, name: str) -> Path:
    base = ws.state_dir / "logs"
    base.mkdir(parents=True, exist_ok=True)
    old = sorted(p for p in base.glob(f"{name}-*") if p.is_dir())
    for stale in old[: max(0, len(old) - KEEP_LOGS + 1)]:
        try:
            running = time.time() - stale.stat().st_mtime < STALE_LOG_S  # its validation may still write
        except OSError:
            continue  # another validation pruned it
        if not running:
            shutil.rmtree(stale, ignore_errors=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(tempfile.mkdtemp(prefix=f"{name}-{stamp}-", dir=base))


def _checked_files(code: DestinationCode) -> list[str]:
    """What ruff judges: the destination's Python files (src and tests) and the three registration files."""
    parsed = [f.rel for f in [*code.python_files(), *code.registration.values()] if f.tree is not None]
    return parsed  # a file that does not parse is source.syntax's, not ruff's


class Units:
    """The subprocess checks of one validation, each answered from the cache or run on the pool."""

    def __init__(self, ws: Workspace, name: str, logs: Path, use_cache: bool, target: Scratch):
        self.ws, self.name, self.logs, self.use_cache, self.target = ws, name, logs, use_cache, target
        self._installed: str | None = None
        self.pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="bizon-forge-check")
        self.pending: dict[Future, tuple[str, str | None]] = {}
        self.done: dict[str, list[CheckFinding]] = {}
        self.cached: list[str] = []  # ids answered from the cache
        self.scratch: list[Path] = []

    def scratch_dir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bizon-forge-{self.name}-"))
        self.scratch.append(path)
        return path

    def submit(self, unit: str, fn, ids: list[str], inputs: list[Path] | None = None, extra=(), exclude=()):
        """Run `fn` on the pool, unless a passing answer for the same `inputs` (file contents) is cached.

        `inputs=None`: never cached (the check writes to a target, whose state is no input we can hash)."""
        use = inputs is not None and self.use_cache
        if use and self._installed is None:
            self._installed = cache.installed(self.ws)
        digest = (
            cache.key(self.ws, unit, inputs, (*extra, self._installed), exclude) if use and inputs is not None else None
        )
        if digest is not None:
            hit = cache.load(self.ws, self.name, unit, digest)
            if hit is not None:
                self.done[unit] = [f.model_copy(update={"message": f"{f.message} (cached)"}) for f in hit]
                self.cached += [f.id for f in hit]
                return

        def run() -> list[CheckFinding]:
            try:
                return fn()
            except Exception as error:  # a validator bug must not cost the agent the other findings
                first = failed(ids[0], f"bizon-forge could not run this check: {type(error).__name__}: {error}")
                return [first, *(skipped(i, f"Not run: {ids[0]} could not run.", ids[0]) for i in ids[1:])]

        self.pending[self.pool.submit(run)] = (unit, digest)

    def wait_all(self, progress: Progress, done: int, total: int) -> int:
        beats = 0
        started = time.perf_counter()
        while self.pending:
            finished, _ = wait(list(self.pending), timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            if not finished:
                beats += 1
                running = ", ".join(u for u, _ in self.pending.values())
                progress(
                    done + 0.9 * beats / (beats + 1),
                    total,
                    f"still running: {running} ({time.perf_counter() - started:.0f} s)",
                )
                continue
            for future in finished:
                unit, digest = self.pending.pop(future)
                findings = future.result()
                self.done[unit] = findings
                if digest is not None:
                    cache.store(self.ws, self.name, unit, digest, findings)
                done += 1
                beats = 0
                progress(done, total, f"{unit}: {_statuses(findings)}")
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


def _wrote(findings: list[CheckFinding]) -> bool:
    """Whether a check that writes records got as far as writing (its finding is an answer, not a skip)."""
    writers = ("contract.write_records", *catalog.DATA, "data.empty_last_buffer", "smoke.bizon_run")
    return any(f.id in writers and f.status in ("pass", "fail") for f in findings)


def _statuses(findings: list[CheckFinding]) -> str:
    """What a unit's findings say, in the words of their statuses: the progress line must not say more."""
    words = {"fail": "failed", "warn": "warned", "skip": "skipped", "pass": "passed"}
    parts = []
    for status in ("fail", "warn", "skip", "pass"):
        ids = [f.id for f in findings if f.status == status]
        if ids:
            parts.append(f"{words[status]} {', '.join(ids)}" if status != "pass" else f"{len(ids)} passed")
    return "; ".join(parts) or "nothing to judge"


def _not_finished(id: str, unfinished: list[str]) -> CheckFinding:
    message = f"Not run: code is left to write ({', '.join(unfinished)}); it runs once that is done."
    return skipped(id, message, unfinished[0])


def _settle(findings: dict[str, CheckFinding], unfinished: list[str]) -> None:
    """One root cause, one failure: a check whose failure an earlier failure explains becomes a skip."""
    for check in catalog.CHECKS:
        f = findings.get(check.id)
        if f is None:
            continue
        if check.needs_finished_code and unfinished and f.status != "skip":
            findings[check.id] = _not_finished(check.id, unfinished)
            continue
        findings[check.id] = explained(f, check.explained_by, findings)


def _moot(f: CheckFinding) -> bool:
    return f.status == "skip" and catalog.BY_ID[f.id].skip_is_not_applicable


def _summary(level: str, findings: list[CheckFinding], seconds: float, cached: list[str]) -> str:
    counts = {s: [f.id for f in findings if f.status == s] for s in ("pass", "fail", "warn", "skip")}
    parts = [f"{len(counts['pass'])} passed"]
    if counts["fail"]:
        parts.append(f"{len(counts['fail'])} failed ({', '.join(counts['fail'])})")
    if counts["warn"]:
        parts.append(f"{len(counts['warn'])} warned ({', '.join(counts['warn'])})")
    if counts["skip"]:
        few = f" ({', '.join(counts['skip'])})" if len(counts["skip"]) <= 4 else ""
        parts.append(f"{len(counts['skip'])} skipped{few}")
    from_cache = f", {', '.join(cached)} from cache" if cached else ""
    return f"{level}: {', '.join(parts)} in {seconds:.1f} s{from_cache}"


def _next(
    ws: Workspace, name: str, level: str, findings: list[CheckFinding], example: str, reads: list[str]
) -> str | None:
    failing = [f for f in findings if f.status == "fail"]
    if failing:
        fixable = any(f.id.startswith("format.") for f in failing)
        tip = f" (validate_destination(name={name!r}, fix=true) fixes formatting)" if fixable else ""
        return f"Fix the failures, each has a hint{tip}, then call validate_destination again."
    if level == "fast":
        return f"validate_destination(name={name!r}, level='full')"
    return f"Done. The example sync writes to its real target{'. ' if reads else '; '}{run_example(ws, example, reads)}"


def run_example(ws: Workspace, example: str, reads: list[str]) -> str:
    """How to run a connector's example config for real: the env:// variables it reads first, then the command."""
    command = ws.bizon_command("run", example)
    if not reads:
        return f"run it with: {command}"
    where = f"in the environment or in {ws.root / '.env'} (bizon run reads that file)"
    return f"It reads {', '.join(reads)}: set {'them' if len(reads) > 1 else 'it'} {where}, then run it with: {command}"


def validate_destination(
    ws: Workspace,
    name: str,
    level: str = "fast",
    fix: bool = False,
    verbose: bool = False,
    progress: Progress | None = None,
    use_cache: bool = True,
) -> ValidationResult:
    started = time.perf_counter()
    _refuse_bad_input(ws, name, level)
    report = progress or (lambda done, total, message: None)
    total = 3 + (6 if level == "full" else 0) + (1 if fix else 0)  # static, format, probe (+ 6 full units)
    done = 0
    report(done, total, "static checks")

    fixed: list[FixedFile] | None = None
    if fix:
        code = DestinationCode.load(ws, name)
        fixed = formatting.fix(ws, _checked_files(code), registered.our_lines(code))
        done += 1
        report(done, total, f"fix: {len(fixed)} file(s) changed")

    with workspace_lock(ws.state_dir):  # one consistent snapshot, not a registration half written
        code = DestinationCode.load(ws, name)
    # What is left for the agent decides what may run; the subprocesses start before the other static checks.
    results = {f.id: f for f in (check(code) for check in agent_todo.AGENT_CHECKS)}
    unfinished = [i for i, f in results.items() if f.status == "fail"]
    logs = _log_dir(ws, name)
    # A FIFO or folder at either path is no config (live.check_config says so); only regular files are read.
    texts = [
        read_regular(p).decode(errors="replace") if p.is_file() else None
        for p in (ws.root / code.check_rel, ws.root / code.example_rel)
    ]
    # A spec whose full refresh DELETEs first says the endpoint ignores "replace": the receiver then does too.
    declared = spec.stored(ws, name)
    target = Scratch(
        ws.root, name, texts[0], texts[1], honours_replace=not declared or declared.full_refresh != "delete_first"
    )
    example_reads = sorted(set(REFERENCE.findall(texts[1] or "")))  # what its sync needs set, for `next`
    units = Units(ws, name, logs, use_cache, target)
    try:
        results.update(_submit(units, code, level, unfinished))
        for check in catalog.STATIC:  # every check of the code its module declares; the agent's ran first
            if check not in agent_todo.AGENT_CHECKS:
                f = check(code)
                results[f.id] = f
        done += 1
        report(done, total, f"static: {sum(f.status == 'fail' for f in results.values())} failed")
        done = total - len(units.pending)  # skipped and cached units are done already
        report(done, total, "running: " + ", ".join(u for u, _ in units.pending.values()))
        units.wait_all(report, done, total)
    finally:
        units.close()
        target.close()
    for findings in units.done.values():
        results.update({f.id: f for f in findings})

    _settle(results, unfinished)
    ordered = sorted(results.values(), key=lambda f: catalog.ORDER[f.id])
    summary = _summary(level, ordered, time.perf_counter() - started, units.cached)
    # Unless asked, only what needs acting on: not the passes, not the skips another failure explains or that
    # say a check does not apply here.
    shown = ordered if verbose else [f for f in ordered if f.status != "pass" and not f.blocked_by and not _moot(f)]
    return ValidationResult(
        ok=not any(f.status == "fail" for f in ordered),
        findings=shown,
        level=level,
        summary=summary,
        log_dir=str(logs.relative_to(ws.root)),
        fixed=fixed,
        wrote_to=target.describe(code.check_rel) if _wrote(ordered) else None,
        next=_next(ws, name, level, ordered, code.example_rel, example_reads),
    )


def _submit(units: Units, code: DestinationCode, level: str, unfinished: list[str]) -> dict[str, CheckFinding]:
    """Start every subprocess check of the level (or answer it from the cache); returns those not run."""
    ws, name, logs = code.ws, code.name, units.logs
    not_run: dict[str, CheckFinding] = {}
    units.submit(
        "format",
        lambda: formatting.check(ws, _checked_files(code), registered.our_lines(code), logs / "ruff.log"),
        ["format.ruff_format", "format.ruff_check"],
    )
    everything = [ws.root / "bizon", ws.root / code.tests_dir]
    # Checks that write go only where the check config points, and only with finished code.
    gates = [live.check_config(code), live.check_references(code)]
    where = next((g for g in gates if g.status == "fail"), gates[0])
    writes = not unfinished and where.status != "fail"  # a warning says the limit; the checks still run
    env = units.target.env

    def not_live(id: str) -> CheckFinding:
        if unfinished:
            return _not_finished(id, unfinished)
        return skipped(
            id,
            f"Not run: it writes records, and only to a check config's scratch target ({where.message})",
            where.id,
        )

    live_ids = [i for i in catalog.RUNTIME if i.startswith("contract.")]
    not_run.update({i: not_live(i) for i in live_ids if not writes})
    units.submit(
        "probe",
        lambda: runtime.probe(
            ws,
            name,
            code.example_rel,
            code.check_rel if writes else None,
            units.target.run_id,
            units.scratch_dir(),
            logs / "probe.log",
            env("contract"),
        ),
        [i for i in catalog.RUNTIME if writes or i not in live_ids],
    )
    if level != "full":
        return not_run
    # bizon's suite reads what `bizon.cli.main` imports: every config, not the destination's own module.
    suite_inputs = [ws.root / "bizon", ws.root / "tests" / "conftest.py"]
    suite_inputs += [ws.root / t for t in runtime.BIZON_SUITE]
    units.submit(
        "tests.bizon_suite",
        lambda: [runtime.bizon_suite(ws, units.scratch_dir(), logs / "bizon-suite.log")],
        ["tests.bizon_suite"],
        suite_inputs,
        exclude=(ws.root / code.destination_rel, ws.root / code.example_rel, ws.root / code.check_rel),
    )
    if unfinished:
        not_run["tests.destination"] = _not_finished("tests.destination", unfinished)
    else:
        units.submit(
            "tests.destination",
            lambda: [runtime.destination_tests(ws, code.tests_dir, units.scratch_dir(), logs / "tests.log")],
            ["tests.destination"],
            everything,
        )
    if where.status == "fail":
        not_run["live.bizon_secrets_check"] = skipped("live.bizon_secrets_check", f"Not run: {where.message}", where.id)
    else:
        # Its answer follows from the check config, the tree's .env, bizon's resolvers and the values passed (hashed
        # here, never stored): the same inputs are answered from the cache, as a destination is edited and checked.
        passed = hashlib.sha256(json.dumps(units.target.passed_env, sort_keys=True).encode()).hexdigest()
        units.submit(
            "secrets",
            lambda: [live.secrets_check(ws, code.check_rel, units.scratch_dir(), logs / "secrets.log", env("secrets"))],
            ["live.bizon_secrets_check"],
            [ws.root / code.check_rel, ws.root / ".env", ws.root / "bizon" / "cli", ws.root / "bizon" / "engine"],
            extra=(passed,),
        )
    smoke_ids = [i for i, _, _ in runtime.SMOKE_RUNS]
    if not writes:
        not_run.update({i: not_live(i) for i in [*catalog.DATA, *smoke_ids]})
        return not_run
    run_id = units.target.run_id
    units.submit(
        "data",
        lambda: runtime.suite(
            ws, name, code.check_rel, run_id, list(catalog.DATA), units.scratch_dir(), logs / "data.log", env("data")
        ),
        list(catalog.DATA),
    )
    for row in runtime.SMOKE_RUNS:  # two units: each run and its read-back at once, in a folder of its own
        units.submit(
            row[0],
            lambda row=row: runtime.smoke(
                ws, name, code.check_rel, run_id, (row,), units.scratch_dir(), logs, env(row[0])
            ),
            [row[0]],
        )
    return not_run
