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

# bizon's defaults sleep 2 s before consuming and between liveness checks; a smoke run needs neither.
DUMMY_TO_LOGGER = """\
name: dummy_to_logger
source: {name: dummy, stream: creatures, authentication: {type: api_key, params: {token: dummy_key}}}
destination: {name: logger, config: {dummy: dummy}}
engine: {runner: {config: {consumer_start_delay: 0, is_alive_check_interval: 1}}}
"""


@dataclass
class Floors:
    samples: dict[str, list[float]] = field(default_factory=dict)
    ruff_files: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # a floor that could not be measured, and why

    def median(self, name: str) -> float | None:
        got = self.samples.get(name)
        return statistics.median(got) if got else None


def _timed(cmd: list[str], ws: Workspace, cwd: Path, check=None) -> float:
    """Seconds the command took; it must exit 0 and, with `check`, its stdout must satisfy check()."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ws.env(), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or (check and not check(done.stdout)):
        raise RuntimeError(f"floor command failed: {' '.join(cmd)}\n{done.stdout[-800:]}\n{done.stderr[-800:]}")
    return elapsed


def contract_probe() -> Path | None:
    """The validators' import + contract subprocess, when they ship one."""
    from importlib import resources

    script = resources.files("bizon_forge.validators") / "contract_probe.py"
    return Path(str(script)) if script.is_file() else None


def _contract(ws: Workspace, name: str, script: Path, scratch: Path) -> float:
    example = ws.destination_dir(name) / "config" / f"{name}.example.yml"
    cmd = [ws.python(), str(script), str(ws.root), name, str(example), "contract"]
    with tempfile.TemporaryDirectory(dir=scratch) as run_dir:  # the destination writes into its cwd
        return _timed(cmd, ws, Path(run_dir), check=_probe_passed)


def _probe_passed(stdout: str) -> bool:
    marker = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(PROBE_MARKER)), None)
    if marker is None:
        return False
    steps = json.loads(marker[len(PROBE_MARKER) :])
    return all(step.get("ok") for step in steps.values() if isinstance(step, dict))


def _ruff(ws: Workspace, files: list[str]) -> float:
    from ruff.__main__ import find_ruff_bin

    ruff = find_ruff_bin()
    check = _timed([ruff, "check", "--no-cache", *files], ws, ws.root)
    return check + _timed([ruff, "format", "--check", "--no-cache", *files], ws, ws.root)


class FloorSampler:
    """Takes one sample of each floor right beside the step it is the floor of, so drift hits both alike."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.floors = Floors()
        self.script = contract_probe()
        self.yml = scratch / "dummy_to_logger.yml"
        self.yml.write_text(DUMMY_TO_LOGGER)
        self.fresh = 0

    def _add(self, name: str, seconds: float) -> None:
        self.floors.samples.setdefault(name, []).append(seconds)

    def cold_import(self) -> None:
        """What apply_registrations pays: the first import of a fresh tree, no byte-code cached for it yet."""
        self.fresh += 1
        root = workspace.init(str(self.scratch / f"fresh{self.fresh}"))
        fresh = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
        self._add("import cold", _timed([fresh.python(), "-c", IMPORT], fresh, fresh.root))

    def validation(self, registered: Workspace, name: str) -> None:
        """The parts of validation, on the tree just validated: `name` registered, byte-code warm."""
        ws = registered
        tests = ws.root / "tests" / "connectors" / "destinations" / name
        files = sorted(
            str(p.relative_to(ws.root)) for p in [*(ws.destination_dir(name) / "src").glob("*.py"), *tests.glob("*.py")]
        )
        files += REGISTRATION_FILES
        self.floors.ruff_files = len(files)
        self._add("import", _timed([ws.python(), "-c", IMPORT], ws, ws.root))
        self._add("ruff", _ruff(ws, files))
        if self.script and "contract" not in self.floors.errors:
            try:
                self._add("contract", _contract(ws, name, self.script, self.scratch))
            except RuntimeError as error:  # the probe is the validators' code: report it, measure the rest
                self.floors.errors["contract"] = str(error)[:600]
                self.floors.samples.pop("contract", None)
        with tempfile.TemporaryDirectory(dir=self.scratch) as run_dir:  # bizon run writes ./bizon.sqlite3
            pipeline = [ws.python(), "-m", "bizon.cli.main", "run", str(self.yml)]
            self._add("pipeline", _timed(pipeline, ws, Path(run_dir)))
