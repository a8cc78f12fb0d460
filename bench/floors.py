"""The floors of validation, timed in the same run: the bare commands it cannot do without."""

import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bizon_forge import workspace
from bizon_forge.workspace import REGISTRATION_FILES, Workspace

IMPORT = "import bizon.common.models"
PROBE_MARKER = "BIZON_FORGE_PROBE "  # validators/contract_probe.py prints its result on this line

FULL_PARTS = ("ruff", "contract", "data", "smoke", "tests", "bizon suite")  # what validate full runs
# What validate_source full runs; sampled as "source <part>". fast runs the first three.
SOURCE_FULL_PARTS = ("static", "discovery", "contract", "cases", "tests", "bizon run")
SOURCE_FAST_PARTS = SOURCE_FULL_PARTS[:3]


@dataclass
class Floors:
    samples: dict[str, list[float]] = field(default_factory=dict)
    ruff_files: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # a floor that could not be measured, and why

    def median(self, name: str) -> float | None:
        got = self.samples.get(name)
        return statistics.median(got) if got else None


def _env(ws: Workspace, scratch: Path) -> dict[str, str]:
    """What validation adds to the workspace's environment: the check config's scratch folder."""
    from bizon_forge.connector import SCRATCH_VAR

    return {**ws.env(), SCRATCH_VAR: str(scratch)}


def _run(cmd: list[str], ws: Workspace, cwd: Path, env=None, check=None) -> float:
    """Seconds the command took; it must exit 0 and, with `check`, its stdout must satisfy check()."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env or ws.env(), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or (check and not check(done.stdout)):
        raise RuntimeError(f"floor command failed: {' '.join(cmd)}\n{done.stdout[-800:]}\n{done.stderr[-800:]}")
    return elapsed


def _all_passed(marker: str):
    def check(stdout: str) -> bool:
        lines = [json.loads(ln[len(marker) :]) for ln in stdout.splitlines() if ln.startswith(marker)]
        # a skip is the validator's answer too (data.unreliable_target on a target that is not the receiver)
        return bool(lines) and all(x.get("ok", x.get("status") in ("pass", "skip")) for x in lines)

    return check


def validation_parts(ws: Workspace, name: str, scratch: Path) -> dict[str, float]:
    """The subprocesses `validate_destination level=full` runs, each run bare and one after another:
    the contract probe, the data suite, the two smoke runs and their read-back, the destination's tests and
    bizon's suite. Same scripts, same arguments, same scratch target; none of the validator around them."""
    from importlib import resources

    from bizon_forge.validators import runtime

    scripts = resources.files("bizon_forge.validators.probes")
    base = ws.destination_dir(name)
    example, check = base / "config" / f"{name}.example.yml", base / "config" / f"{name}.check.yml"
    version = ws.bizon_version or "unknown"
    parts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        run_dir = Path(folder)
        env = _env(ws, run_dir)
        probe = [ws.python(), str(scripts / "contract_probe.py"), str(ws.root), name, str(example)]
        probe += ["contract", str(check), "forge_floor_contract"]
        parts["contract"] = _run(probe, ws, run_dir, env, _all_passed(PROBE_MARKER))
        suite = [ws.python(), str(scripts / "suite_probe.py"), str(ws.root), name, str(check), version, "floor"]
        parts["data"] = _run([*suite, "suite"], ws, run_dir, env, _all_passed(runtime.SUITE_MARKER))
        smoke = 0.0
        for id, buffer_size, _ in runtime.SMOKE_RUNS:  # each run, then its read-back
            destination_id = f"forge_floor_{id.split('.')[-1]}"
            folder_of_run = run_dir / id
            folder_of_run.mkdir()
            config = folder_of_run / "run.yml"
            config.write_text(runtime.smoke_config(check.read_text(), destination_id, buffer_size))
            smoke += _run([ws.python(), "-m", "bizon.cli.main", "run", str(config)], ws, folder_of_run, env)
            readback = [*suite, "readback", destination_id]
            smoke += _run(readback, ws, run_dir, env, _all_passed(runtime.SUITE_MARKER))
        parts["smoke"] = smoke
        pytest = [ws.python(), "-m", "pytest", *runtime.PYTEST_ARGS, f"--rootdir={ws.root}"]
        tests = ws.root / "tests" / "connectors" / "destinations" / name
        parts["tests"] = _run([*pytest, f"--confcutdir={tests}", str(tests)], ws, run_dir)
        suite_files = [str(ws.root / t) for t in runtime.BIZON_SUITE if (ws.root / t).is_file()]
        parts["bizon suite"] = _run([*pytest, *suite_files], ws, run_dir)
    return parts


def source_parts(ws: Workspace, name: str, scratch: Path) -> dict[str, float]:
    """The parts `validate_source level=full` runs at once, run one after another, each as it runs them: the static
    checks, discovery (`bizon source list`, `bizon stream list NAME`), per stream the contract probe against the
    mock API (and its incremental probe), per stream the mock's misbehaviour cases in one probe, the source's tests,
    per stream a real `bizon run` from the mock into a scratch file, read back. The parts are the validator's own
    functions (each starts its own mock and builds the config the subprocesses run with); only the thread pool
    around them is left out."""
    import functools

    from bizon_forge.spec import source as source_spec
    from bizon_forge.validators import catalog
    from bizon_forge.validators import source_validation as checks
    from bizon_forge.validators.engine import log_dir
    from bizon_forge.validators.source_code import SourceCode

    spec = source_spec.stored(ws, name)
    if spec is None:
        raise RuntimeError(f"floor: no stored source spec for {name}")
    parts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        base = Path(folder)
        logs = log_dir(ws, f"floor-source-{name}")  # the checks name their logs relative to the tree

        def timed(part: str, run) -> None:
            start = time.perf_counter()
            found = run()
            parts[part] = parts.get(part, 0.0) + time.perf_counter() - start
            bad = [f"{f.id}: {f.message}" for f in found if f.status == "fail"]
            if bad:
                raise RuntimeError(f"floor part {part} failed: {'; '.join(bad)}"[:600])

        code = SourceCode.load(ws, name)
        timed("static", lambda: [check(SourceCode.load(ws, name)) for check in catalog.SOURCES.static])
        timed("discovery", lambda: checks.discovery(ws, spec, name, _sub(base), logs))
        for stream in spec.streams:
            timed("contract", functools.partial(checks.contract, ws, spec, stream, _sub(base), logs, None))
        for stream in spec.streams:  # every case of the mock that applies, in one probe per stream
            cases = functools.partial(checks.stream_cases, ws, spec, stream, lambda: _sub(base), logs, None)
            timed("cases", cases)
        timed("tests", lambda: [checks.source_tests(ws, code, _sub(base), logs / "tests.log")])
        for stream in spec.streams:
            run = functools.partial(checks.bizon_run, ws, spec, stream, _sub(base), logs, None)
            timed("bizon run", lambda run=run: [run()])
    return parts


def _ruff(ws: Workspace, files: list[str]) -> float:
    from ruff.__main__ import find_ruff_bin

    ruff = find_ruff_bin()
    check = _run([ruff, "check", "--no-cache", *files], ws, ws.root)
    return check + _run([ruff, "format", "--check", "--no-cache", *files], ws, ws.root)


class FloorSampler:
    """Takes one sample of each floor right beside the step it is the floor of, so drift hits both alike."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.floors = Floors()
        self.fresh = 0

    def _add(self, name: str, seconds: float) -> None:
        self.floors.samples.setdefault(name, []).append(seconds)

    def cold_import(self) -> None:
        """What apply_registrations pays: the first import of a fresh tree, no byte-code cached for it yet."""
        self.fresh += 1
        root = workspace.init(str(self.scratch / f"fresh{self.fresh}"))
        fresh = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
        self._add("import cold", _run([fresh.python(), "-c", IMPORT], fresh, fresh.root))

    def validation(self, registered: Workspace, name: str) -> None:
        """The parts of validation, on the tree just validated: `name` registered, byte-code warm."""
        ws = registered
        tests = ws.root / "tests" / "connectors" / "destinations" / name
        files = sorted(
            str(p.relative_to(ws.root)) for p in [*(ws.destination_dir(name) / "src").glob("*.py"), *tests.glob("*.py")]
        )
        files += REGISTRATION_FILES
        self.floors.ruff_files = len(files)
        self._add("import", _run([ws.python(), "-c", IMPORT], ws, ws.root))
        self._add("ruff", _ruff(ws, files))
        if "parts" in self.floors.errors:
            return
        try:
            for part, took in validation_parts(ws, name, self.scratch).items():
                self._add(part, took)
        except RuntimeError as error:  # the probes are the validators' code: report it, measure the rest
            self.floors.errors["parts"] = str(error)[:600]

    def source_validation(self, ws: Workspace, name: str) -> None:
        """The parts of validate_source full, on the tree just validated."""
        if "source parts" in self.floors.errors:
            return
        try:
            for part, took in source_parts(ws, name, self.scratch).items():
                self._add(f"source {part}", took)
        except Exception as error:  # noqa: BLE001 - the checks are the validators' code: report it, measure the rest
            self.floors.errors["source parts"] = f"{type(error).__name__}: {error}"[:600]


def _sub(base: Path) -> Path:
    """A fresh folder for one check's scratch, as validate_source's units get one each."""
    return Path(tempfile.mkdtemp(dir=base))
