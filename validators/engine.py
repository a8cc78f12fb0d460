"""The validation engine of both kinds: validate_destination and validate_source list their units and say what to
call next; this refuses what cannot be validated, runs the units, settles their findings and shapes the answer.

A kind is a small value (its checks' modules, its spec, what to call when its folder is missing): the engine
reads it, never asks which kind it runs.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bizon_forge import interpreter
from bizon_forge.connector import Connector
from bizon_forge.connector import Kind as ConnectorKind
from bizon_forge.findings import Finding, Refused, explained, failed, skipped
from bizon_forge.validators import cache
from bizon_forge.validators.catalog import Catalog, Check, collect
from bizon_forge.validators.report import ValidationResult
from bizon_forge.workspace import Workspace

Progress = Callable[[float, float, str], None]
Answer = Callable[[], list[Finding]]  # a unit's work: the findings of the checks it answers
HEARTBEAT_S = 5.0  # clients time out silent calls; a long check reports that it is still running this often
KEEP_LOGS = 5  # runs kept per connector
STALE_LOG_S = 900  # an older run cannot still be writing (the slowest check times out sooner)
LEVELS = ("fast", "full")
RANK = {"fail": 3, "warn": 2, "pass": 1, "skip": 0}  # of one check's answers (per stream), the one that stands
# A failure another explains: the answer lists it as a skip whose message starts so, the summary and the progress
# both say "folded ID into CAUSE" (a trial's progress said 7 failed where its answer said 2 failed, 5 skipped).
FOLDED = "Failed, folded into "


@dataclass(frozen=True)
class Kind:
    """What the engine needs to know of a kind of connector."""

    name: ConnectorKind  # destination | source
    modules: tuple[str, ...]  # where its checks are declared, in its checklist's order
    check_name: Callable[[str], list[Finding]]  # the name's findings (none when it is a valid name)
    dependencies: Callable[[Workspace, str], list[str]]  # what its stored spec declares ([] without one)
    not_found: Callable[[Workspace, str, str], Refused]  # (ws, name, folder) -> what to call first

    @property
    def catalog(self) -> Catalog:
        return collect(self.modules)


def silent(done: float, total: float, message: str) -> None:
    """The progress of a call nobody watches."""


# -- refusing what cannot be validated --------------------------------------------------------------------


def refuse(kind: Kind, ws: Workspace, name: str, level: str) -> None:
    """Raise Refused, with findings, for input no check can answer: every kind is refused the same way."""
    bad = kind.check_name(name)
    if bad:
        raise Refused(*bad)
    if level not in LEVELS:
        raise Refused(failed("validate.bad_level", f"Unknown level {level!r}.", "Use 'fast' or 'full'."))
    rel = Connector(name, kind.name).dir
    folder = ws.root / rel
    if folder.is_dir() and ws.root not in Path(os.path.realpath(folder)).parents:
        raise Refused(
            failed(
                "validate.unsafe_path",
                f"{rel} leads out of the workspace (a symlink).",
                f"Replace the symlink with the {kind.name}'s real folder.",
            )
        )
    if not folder.is_dir():
        raise kind.not_found(ws, name, rel)
    _refuse_without_interpreter(kind, ws, name)


def _refuse_without_interpreter(kind: Kind, ws: Workspace, name: str) -> None:
    """Every live check runs bizon in the workspace's interpreter: without one, say so once, not per check."""
    state = interpreter.require(ws, kind.dependencies(ws, name))
    if state.missing:
        raise Refused(
            failed(
                "install.missing",
                f"{', '.join(state.missing)} (declared by {name}) is not installed in {state.python}, which runs the "
                "checks.",
                f"install_dependencies(name={name!r}{_kind_argument(kind)}) installs it.",
            )
        )


def _kind_argument(kind: Kind) -> str:
    """install_dependencies takes a destination's name alone; a source's name with its kind, in case both exist."""
    return "" if kind.name == "destination" else f", kind={kind.name!r}"


def log_dir(ws: Workspace, name: str) -> Path:
    """A new folder for this run's logs; the oldest runs of `name` past KEEP_LOGS are removed."""
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


# -- running units ------------------------------------------------------------------------------------------


def guarded(fn: Answer, ids: list[str]) -> Answer:
    """`fn`, whose crash is a failure of its first check and a skip of the others: a validator bug must not cost
    the agent the other findings."""

    def run() -> list[Finding]:
        try:
            return fn()
        except Exception as error:
            first = failed(ids[0], f"bizon-forge could not run this check: {type(error).__name__}: {error}")
            return [first, *(skipped(i, f"Not run: {ids[0]} could not run.", ids[0]) for i in ids[1:])]

    return run


class Units:
    """The subprocess checks of one validation, each answered from the cache or run on the pool."""

    def __init__(
        self, ws: Workspace, name: str, logs: Path, use_cache: bool = True, workers: int = 6, kind: Kind | None = None
    ):
        self.ws, self.name, self.logs, self.use_cache, self.kind = ws, name, logs, use_cache, kind
        self._installed: str | None = None
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bizon-forge-check")
        self.pending: dict[Future, tuple[str, str | None]] = {}
        self.done: dict[str, list[Finding]] = {}
        self.submitted: list[str] = []  # the units in the order they were listed, which is the order they merge in
        self.cached: list[str] = []  # ids answered from the cache
        self.scratch: list[Path] = []
        self.seen: dict[str, Finding] = {}  # every finding known so far (the caller's static ones too), merged
        self.report: Progress = silent
        self.steps = 0.0  # the progress's total: the units, then one step for the answer (finish)

    def scratch_dir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"bizon-forge-{self.name}-"))
        self.scratch.append(path)
        return path

    def submit(
        self, unit: str, fn: Answer, ids: list[str], inputs: list[Path] | None = None, extra=(), exclude=()
    ) -> None:
        """Run `fn` on the pool, unless a passing answer for the same `inputs` (file contents) is cached.

        `inputs=None`: never cached (the check writes to a target, whose state is no input we can hash)."""
        self.submitted.append(unit)
        digest = self._digest(unit, inputs, extra, exclude)
        if digest is not None:
            hit = cache.load(self.ws, self.name, unit, digest)
            if hit is not None:
                self.done[unit] = [f.model_copy(update={"message": f"{f.message} (cached)"}) for f in hit]
                merge(self.seen, self.done[unit])
                self.cached += [f.id for f in hit]
                return
        self.pending[self.pool.submit(guarded(fn, ids))] = (unit, digest)

    def _digest(self, unit: str, inputs: list[Path] | None, extra, exclude) -> str | None:
        if inputs is None or not self.use_cache:
            return None
        if self._installed is None:
            self._installed = cache.installed(self.ws)
        return cache.key(self.ws, unit, inputs, (*extra, self._installed), exclude)

    def wait_all(self, progress: Progress, done: int, total: int, known: dict[str, Finding] | None = None) -> int:
        """Collect every unit as it finishes, saying so; while none does, say every HEARTBEAT_S what still runs.

        `known`: the findings the caller has already (its static checks), so that a unit's failure they explain
        is said to be folded as the answer will say it. The total gains one step, the answer's (`finish`)."""
        self.report, self.steps = progress, total + 1
        total += 1
        merge(self.seen, list((known or {}).values()))
        beats = 0
        started = time.perf_counter()
        while self.pending:
            finished, _ = wait(list(self.pending), timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            if not finished:
                beats += 1
                running = ", ".join(u for u, _ in self.pending.values())
                seconds = time.perf_counter() - started
                progress(done + 0.9 * beats / (beats + 1), total, f"still running: {running} ({seconds:.0f} s)")
                continue
            for future in finished:
                unit, findings = self._collect(future)
                done += 1
                beats = 0
                progress(done, total, f"{unit}: {statuses(findings, self._folds(findings))}")
        return done

    def _folds(self, findings: list[Finding]) -> dict[str, str]:
        """Of a finished unit's failures, those the findings known so far explain: id -> the cause it folds into,
        settled the way the answer settles them (the final word is `finish`'s: a later unit may change it)."""
        merge(self.seen, findings)
        if self.kind is None:
            return {}
        settled = fold_all(self.kind, dict(self.seen), [])
        # a cause that has not answered yet (a required check of a later unit) is no cause to name yet
        folds = {f.id: folded_into(settled.get(f.id)) for f in findings if f.status == "fail"}
        return {id: cause for id, cause in folds.items() if cause is not None and cause in self.seen}

    def finish(self, summary: str) -> None:
        """The last progress line: the answer's summary, in the answer's words (what failed, what was folded)."""
        self.report(self.steps, self.steps, summary)

    def _collect(self, future: Future) -> tuple[str, list[Finding]]:
        unit, digest = self.pending.pop(future)
        findings = future.result()  # guarded: a crash is already a finding
        self.done[unit] = findings
        if digest is not None:
            cache.store(self.ws, self.name, unit, digest, findings)
        return unit, findings

    def answers(self) -> Iterable[list[Finding]]:
        """Every unit's findings, in the order the units were submitted."""
        return (self.done[u] for u in self.submitted if u in self.done)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


def statuses(findings: list[Finding], folds: dict[str, str] | None = None) -> str:
    """What a unit's findings say, in the words of their statuses: the progress line must not say more. `folds`:
    the failures another explains (id -> cause), said as the answer's summary says them."""
    folds = folds or {}
    words = {"fail": "failed", "warn": "warned", "skip": "skipped", "pass": "passed"}
    parts = []
    for status in ("fail", "warn", "skip", "pass"):
        ids = list(dict.fromkeys(f.id for f in findings if f.status == status and f.id not in folds))
        if ids:
            parts.append(f"{words[status]} {', '.join(ids)}" if status != "pass" else f"{len(ids)} passed")
        if status == "fail" and folds:
            parts.append(f"folded {', '.join(f'{id} into {cause}' for id, cause in folds.items())}")
    return "; ".join(parts) or "nothing to judge"


def merge(found: dict[str, Finding], new: list[Finding]) -> None:
    """Several answers of one check (one per stream): a failure wins, then a warning, then a pass, then a skip."""
    for f in new:
        old = found.get(f.id)
        if old is None or RANK[f.status] > RANK[old.status]:
            found[f.id] = f


# -- settling and the answer ---------------------------------------------------------------------------------


def not_finished(id: str, unfinished: list[str]) -> Finding:
    message = f"Not run: code is left to write ({', '.join(unfinished)}); it runs once that is done."
    return skipped(id, message, unfinished[0])


def _settled(check: Check, f: Finding, found: dict[str, Finding], unfinished: list[str]) -> Finding:
    if check.needs_finished_code and unfinished and f.status != "skip":
        return not_finished(check.id, unfinished)
    blocked = check.unmet(found) if f.status != "skip" else None
    if blocked is not None:
        return blocked
    f = explained(f, check.explained_by, found)
    if f.status in ("fail", "warn") and not f.hint:
        return f.model_copy(update={"hint": check.fix})  # a finding built without its declaration's default
    return f


def _folded(raw: Finding, settled: Finding) -> Finding:
    """A failure another explains, said as such: a skip naming its cause, which keeps what the failure said."""
    cause = settled.blocked_by or "an earlier check"
    message = f"{FOLDED}{cause}: {cause} did not pass and explains it; fix that first. It said: {raw.message}"
    return settled.model_copy(update={"message": message, "log": raw.log, "excerpt": raw.excerpt})


def folded_into(f: Finding | None) -> str | None:
    """The cause a folded failure names (None for any other finding)."""
    if f is None or f.status != "skip" or not f.message.startswith(FOLDED):
        return None
    return f.blocked_by or f.message[len(FOLDED) :].split(":", 1)[0]


def fold_all(kind: Kind, found: dict[str, Finding], unfinished: list[str]) -> dict[str, Finding]:
    """`found`, settled in the checklist's order (in place, and returned): see settle."""
    for check in kind.catalog.checks:
        f = found.get(check.id)
        if f is not None:
            settled = _settled(check, f, found, unfinished)
            found[check.id] = _folded(f, settled) if f.status == "fail" and settled.status == "skip" else settled
    return found


def settle(kind: Kind, level: str, found: dict[str, Finding], unfinished: list[str] | None = None) -> list[Finding]:
    """One root cause, one failure: a check whose failure an earlier failure explains, or whose required check did
    not pass, becomes a skip (a failure so explained is folded: its message says into what). Returns the findings
    of the level in the checklist's order."""
    checks = kind.catalog
    rank = LEVELS.index(level)
    fold_all(kind, found, unfinished or [])
    wanted = [f for f in found.values() if f.id in checks.order and LEVELS.index(checks.by_id[f.id].level) <= rank]
    return sorted(wanted, key=lambda f: checks.order[f.id])


def summary(level: str, findings: list[Finding], seconds: float, cached: list[str]) -> str:
    """Every finding counted once: a failure another explains is counted as folded (naming its cause), not as a
    skip, so that the summary agrees with the progress that reported it."""
    folds = {f.id: cause for f in findings if (cause := folded_into(f))}
    counts = {
        s: [f.id for f in findings if f.status == s and f.id not in folds] for s in ("pass", "fail", "warn", "skip")
    }
    parts = [f"{len(counts['pass'])} passed"]
    if counts["fail"]:
        parts.append(f"{len(counts['fail'])} failed ({', '.join(counts['fail'])})")
    if folds:
        parts.append(f"{len(folds)} folded ({', '.join(f'{id} into {cause}' for id, cause in folds.items())})")
    if counts["warn"]:
        parts.append(f"{len(counts['warn'])} warned ({', '.join(counts['warn'])})")
    if counts["skip"]:
        few = f" ({', '.join(counts['skip'])})" if len(counts["skip"]) <= 4 else ""
        parts.append(f"{len(counts['skip'])} skipped{few}")
    from_cache = f", {', '.join(cached)} from cache" if cached else ""
    return f"{level}: {', '.join(parts)} in {seconds:.1f} s{from_cache}"


def variables_to_set(ws: Workspace, reads: list[str]) -> str:
    """The env:// variables an example config reads, and where to set them ('' when none)."""
    if not reads:
        return ""
    where = f"in the environment or in {ws.root / '.env'} (bizon run reads that file)"
    return f"It reads {', '.join(reads)}: set {'them' if len(reads) > 1 else 'it'} {where}"


def run_example(ws: Workspace, example: str, reads: list[str]) -> str:
    """How to run a connector's example config for real: the env:// variables it reads first, then the command."""
    command = ws.bizon_command("run", example)
    first = variables_to_set(ws, reads)
    return f"{first}, then run it with: {command}" if first else f"run it with: {command}"


def answer(
    kind: Kind,
    ws: Workspace,
    level: str,
    ordered: list[Finding],
    *,
    started: float,
    logs: Path,
    verbose: bool = False,
    units: Units | None = None,
    **kind_fields: Any,
) -> ValidationResult:
    """The answer: unless asked, only what needs acting on, not the passes, not the skips another failure explains
    or that say a check does not apply here; the summary counts them all, the folded failures by name. `units`:
    the validation's units (what came from the cache; their progress ends with the summary). `kind_fields`:
    `next`, and what only a kind has (a destination's `fixed` and `wrote_to`)."""
    by_id = kind.catalog.by_id
    moot = {f.id for f in ordered if f.status == "skip" and by_id[f.id].skip_is_not_applicable}
    shown = ordered if verbose else [f for f in ordered if f.status != "pass" and not f.blocked_by and f.id not in moot]
    said_so = summary(level, ordered, time.perf_counter() - started, units.cached if units else [])
    if units is not None:
        units.finish(said_so)
    return ValidationResult(
        ok=not any(f.status == "fail" for f in ordered),
        findings=shown,
        level=level,
        summary=said_so,
        log_dir=str(logs.relative_to(ws.root)),
        **kind_fields,
    )
