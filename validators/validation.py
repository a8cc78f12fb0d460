"""validate_destination: run every check of a level once, the independent ones at the same time, and answer
one finding per check with the passes summed up in one line.

What is a destination's lives here: its units (ruff, the probe, the tests, bizon's suite, the secrets check, the
data suite, the smoke runs), the scratch target they write to, and its `next`. Refusing, running, settling and
the answer are the engine's (engine.py), the same for a source."""

import functools
import hashlib
import json
import time

from bizon_forge.atomic import workspace_lock
from bizon_forge.findings import Finding, Refused, failed
from bizon_forge.spec import destination as spec
from bizon_forge.validators import (
    agent_todo,
    catalog,
    engine,
    formatting,
    live,
    registered,
    runtime,
)
from bizon_forge.validators.catalog import declared, declared_ids
from bizon_forge.validators.code import DestinationCode
from bizon_forge.validators.engine import Kind, Progress, Units, not_finished, run_example
from bizon_forge.validators.report import FixedFile, ValidationResult
from bizon_forge.validators.scratch import REFERENCE, Scratch
from bizon_forge.workspace import Workspace, read_regular


def _dependencies(ws: Workspace, name: str) -> list[str]:
    return spec.load(ws, name).dependencies if spec.spec_path(ws, name).is_file() else []


def _not_found(ws: Workspace, name: str, rel: str) -> Refused:
    return Refused(
        failed(
            "validate.not_found",
            f"{rel}/ does not exist in this workspace.",
            f"Call describe_target and render_destination(name={name!r}) first.",
        )
    )


DESTINATION = Kind("destination", catalog.MODULES, spec.check_name, _dependencies, _not_found)
(TESTS,) = declared(runtime.destination_tests)
(SUITE,) = declared(runtime.bizon_suite)
(SECRETS,) = declared(live.secrets_check)


def _checked_files(code: DestinationCode) -> list[str]:
    """What ruff judges: the destination's Python files (src and tests) and the three registration files."""
    parsed = [f.rel for f in [*code.python_files(), *code.registration.values()] if f.tree is not None]
    return parsed  # a file that does not parse is source.syntax's, not ruff's


def _wrote(findings: list[Finding]) -> bool:
    """Whether a check that writes records got as far as writing (its finding is an answer, not a skip)."""
    writers = (
        runtime.CONTRACT_WRITE_RECORDS.id,
        *catalog.DATA,
        runtime.DATA_EMPTY_LAST_BUFFER.id,
        runtime.SMOKE_BIZON_RUN.id,
    )
    return any(f.id in writers and f.status in ("pass", "fail") for f in findings)


def _next(ws: Workspace, name: str, level: str, findings: list[Finding], example: str, reads: list[str]) -> str | None:
    failing = [f for f in findings if f.status == "fail"]
    if failing:
        fixable = any(f.id.startswith("format.") for f in failing)
        tip = f" (validate_destination(name={name!r}, fix=true) fixes formatting)" if fixable else ""
        return f"Fix the failures, each has a hint{tip}, then call validate_destination again."
    if level == "fast":
        return f"validate_destination(name={name!r}, level='full')"
    return f"Done. The example sync writes to its real target{'. ' if reads else '; '}{run_example(ws, example, reads)}"


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
    engine.refuse(DESTINATION, ws, name, level)
    report = progress or engine.silent
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
    logs = engine.log_dir(ws, name)
    target, example_reads = _target(ws, code)
    units = Units(ws, name, logs, use_cache, kind=DESTINATION)
    try:
        results.update(_submit(units, target, code, level, unfinished))
        for check in catalog.STATIC:  # every check of the code its module declares; the agent's ran first
            if check not in agent_todo.AGENT_CHECKS:
                f = check(code)
                results[f.id] = f
        done += 1
        report(done, total, f"static: {sum(f.status == 'fail' for f in results.values())} failed")
        done = total - len(units.pending)  # skipped and cached units are done already
        report(done, total, "running: " + ", ".join(u for u, _ in units.pending.values()))
        units.wait_all(report, done, total, known=results)
    finally:
        units.close()
        cleanup = target.clean_up(ws, code.check_rel, logs)  # drops what earlier validations left, if it can
        target.close()
    for findings in units.answers():
        engine.merge(results, findings)

    ordered = engine.settle(DESTINATION, level, results, unfinished)
    return engine.answer(
        DESTINATION,
        ws,
        level,
        ordered,
        started=started,
        logs=logs,
        verbose=verbose,
        units=units,
        fixed=fixed,
        wrote_to=target.describe(code.check_rel, cleanup) if _wrote(ordered) else None,
        next=_next(ws, name, level, ordered, code.example_rel, example_reads),
    )


def _target(ws: Workspace, code: DestinationCode) -> tuple[Scratch, list[str]]:
    """The scratch target the check config points at, for the checks that write, and the variables the example's
    sync reads (for `next`)."""
    # A FIFO or folder at either path is no config (live.check_config says so); only regular files are read.
    texts = [
        read_regular(p).decode(errors="replace") if p.is_file() else None
        for p in (ws.root / code.check_rel, ws.root / code.example_rel)
    ]
    # A spec whose full refresh DELETEs first says the endpoint ignores "replace": the receiver then does too.
    declared_spec = spec.stored(ws, code.name)
    honours = not declared_spec or declared_spec.full_refresh != "delete_first"
    reads = sorted(set(REFERENCE.findall(texts[1] or "")))
    return Scratch(ws.root, code.name, texts[0], texts[1], honours_replace=honours), reads


def _submit(
    units: Units, target: Scratch, code: DestinationCode, level: str, unfinished: list[str]
) -> dict[str, Finding]:
    """Start every subprocess check of the level (or answer it from the cache); returns those not run."""
    ws, name, logs = code.ws, code.name, units.logs
    units.submit(
        "format",
        lambda: formatting.check(ws, _checked_files(code), registered.our_lines(code), logs / "ruff.log"),
        declared_ids(formatting.check),
    )
    # Checks that write go only where the check config points, and only with finished code.
    gates = [live.check_config(code), live.check_references(code)]
    where = next((g for g in gates if g.status == "fail"), gates[0])
    writes = not unfinished and where.status != "fail"  # a warning says the limit; the checks still run

    def not_live(id: str) -> Finding:
        if unfinished:
            return not_finished(id, unfinished)
        return catalog.BY_ID[id].skip(
            f"Not run: it writes records, and only to a check config's scratch target ({where.message})", where.id
        )

    live_ids = [i for i in runtime.RUNTIME if i.startswith("contract.")]
    not_run = {i: not_live(i) for i in live_ids if not writes}
    units.submit(
        "probe",
        lambda: runtime.probe(
            ws,
            name,
            code.example_rel,
            code.check_rel if writes else None,
            target.run_id,
            units.scratch_dir(),
            logs / "probe.log",
            target.env("contract"),
        ),
        [i for i in runtime.RUNTIME if writes or i not in live_ids],
    )
    if level != "full":
        return not_run
    not_run.update(_submit_full(units, target, code, unfinished, where))
    if not writes:
        smoke_ids = [i for i, _, _ in runtime.SMOKE_RUNS]
        not_run.update({i: not_live(i) for i in [*catalog.DATA, *smoke_ids]})
    else:
        _submit_writes(units, target, code)
    return not_run


def _submit_full(
    units: Units, target: Scratch, code: DestinationCode, unfinished: list[str], where: Finding
) -> dict[str, Finding]:
    """full's checks that write nothing: the destination's tests, bizon's suite, bizon's own secrets check."""
    ws, logs = code.ws, units.logs
    not_run: dict[str, Finding] = {}
    # bizon's suite reads what `bizon.cli.main` imports: every config, not the destination's own module.
    suite_inputs = [ws.root / "bizon", ws.root / "tests" / "conftest.py"]
    suite_inputs += [ws.root / t for t in runtime.BIZON_SUITE]
    units.submit(
        SUITE.id,
        lambda: [runtime.bizon_suite(ws, units.scratch_dir(), logs / "bizon-suite.log")],
        [SUITE.id],
        suite_inputs,
        exclude=(ws.root / code.destination_rel, ws.root / code.example_rel, ws.root / code.check_rel),
    )
    if unfinished:
        not_run[TESTS.id] = not_finished(TESTS.id, unfinished)
    else:
        units.submit(
            TESTS.id,
            lambda: [runtime.destination_tests(ws, code.tests_dir, units.scratch_dir(), logs / "tests.log")],
            [TESTS.id],
            [ws.root / "bizon", ws.root / code.tests_dir],
        )
    if where.status == "fail":
        not_run[SECRETS.id] = SECRETS.skip(f"Not run: {where.message}", where.id)
        return not_run
    # Its answer follows from the check config, the tree's .env, bizon's resolvers and the values passed (hashed
    # here, never stored): the same inputs are answered from the cache, as a destination is edited and checked.
    passed = hashlib.sha256(json.dumps(target.passed_env, sort_keys=True).encode()).hexdigest()
    units.submit(
        "secrets",
        lambda: [
            live.secrets_check(ws, code.check_rel, units.scratch_dir(), logs / "secrets.log", target.env("secrets"))
        ],
        [SECRETS.id],
        [ws.root / code.check_rel, ws.root / ".env", ws.root / "bizon" / "cli", ws.root / "bizon" / "engine"],
        extra=(passed,),
    )
    return not_run


def _submit_writes(units: Units, target: Scratch, code: DestinationCode) -> None:
    """full's checks that write to the scratch target: the data suite and the two smoke runs."""
    ws, name, logs, run_id, env = code.ws, code.name, units.logs, target.run_id, target.env
    units.submit(
        "data",
        lambda: runtime.suite(
            ws, name, code.check_rel, run_id, list(catalog.DATA), units.scratch_dir(), logs / "data.log", env("data")
        ),
        list(catalog.DATA),
    )
    for row in runtime.SMOKE_RUNS:  # two units: each run and its read-back at once, in a folder of its own
        smoke = functools.partial(
            runtime.smoke, ws, name, code.check_rel, run_id, (row,), units.scratch_dir(), logs, env(row[0])
        )
        units.submit(row[0], smoke, [row[0]])
