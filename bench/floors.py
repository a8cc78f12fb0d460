"""The floors of validation, timed in the same run: the bare commands it cannot do without."""

import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bizon_forge import workspace
from bizon_forge.workspace import REGISTRATION_FILES, Workspace

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

    def median(self, name: str) -> float | None:
        got = self.samples.get(name)
        return statistics.median(got) if got else None


def _timed(cmd: list[str], ws: Workspace, cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ws.env(), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"floor command failed: {' '.join(cmd)}\n{done.stdout[-800:]}\n{done.stderr[-800:]}"
        )
    return elapsed


def _ruff(ws: Workspace, files: list[str]) -> float:
    from ruff.__main__ import find_ruff_bin

    ruff = find_ruff_bin()
    check = _timed([ruff, "check", "--no-cache", *files], ws, ws.root)
    return check + _timed([ruff, "format", "--check", "--no-cache", *files], ws, ws.root)


def measure(registered: Workspace, name: str, scratch: Path, runs: int) -> Floors:
    """`registered` holds destination `name`, imported once (warm byte-code), as validation finds it."""
    floors = Floors()
    src = sorted(
        str(p.relative_to(registered.root)) for p in (registered.destination_dir(name) / "src").glob("*.py")
    )
    files = [*src, *REGISTRATION_FILES]
    floors.ruff_files = len(files)
    yml = scratch / "dummy_to_logger.yml"
    yml.write_text(DUMMY_TO_LOGGER)
    import_cmd = [registered.python(), "-c", "import bizon.common.models"]
    for i in range(runs):
        floors.samples.setdefault("import", []).append(_timed(import_cmd, registered, registered.root))
        floors.samples.setdefault("ruff", []).append(_ruff(registered, files))
        with tempfile.TemporaryDirectory(dir=scratch) as run_dir:  # bizon run writes ./bizon.sqlite3
            pipeline = [registered.python(), "-m", "bizon.cli.main", "run", str(yml)]
            floors.samples.setdefault("pipeline", []).append(_timed(pipeline, registered, Path(run_dir)))
        # What apply_registrations pays: the first import of a fresh tree, no byte-code cached for it yet.
        fresh_root = workspace.init(str(scratch / f"fresh{i}"))
        fresh = workspace.resolve(None, workspace.Settings.from_paths([str(fresh_root)]))
        floors.samples.setdefault("import cold", []).append(_timed(import_cmd, fresh, fresh.root))
    return floors
