"""Answers of subprocess checks whose inputs did not change, keyed by the contents of every file they read and
by the distributions installed in the interpreter that runs them (a `pip uninstall` is a change).

Only checks that stay inside the workspace are cached: one that writes to a target depends on its state.
Only passing answers are kept: a failure may be a flake or a service that was down, and is worth a rerun.
One entry per destination and check, so the store cannot grow past a few files per destination.
"""

import hashlib
import json
import subprocess
from pathlib import Path

from bizon_forge.atomic import write_text
from bizon_forge.findings import Finding
from bizon_forge.workspace import Workspace, read_regular

SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


# Printed by the workspace's interpreter: every installed distribution with its version and where it lives.
_DISTRIBUTIONS = (
    "import importlib.metadata as m\n"
    "print(sorted((d.metadata['Name'] or '', d.version, str(d.locate_file(''))) for d in m.distributions()))"
)


def installed(ws: Workspace) -> str:
    """A digest of the distributions the workspace's interpreter has installed (its answer, whatever it is)."""
    try:
        done = subprocess.run(
            [ws.python(), "-I", "-c", _DISTRIBUTIONS], capture_output=True, timeout=60, env=ws.env(), cwd=ws.root
        )
        answer = done.stdout + done.stderr + str(done.returncode).encode()
    except (OSError, subprocess.TimeoutExpired) as error:
        answer = repr(error).encode()
    return hashlib.sha256(answer).hexdigest()


def key(ws: Workspace, unit: str, paths: list[Path], extra: tuple = (), exclude: tuple = ()) -> str:
    """A digest of the unit, the interpreter, the environment, our own code and every file under `paths`."""
    h = hashlib.sha256()
    env = {k: v for k, v in ws.env().items() if k != "PYTHONPYCACHEPREFIX"}
    h.update(json.dumps([unit, ws.python(), env, [str(e) for e in extra]], sort_keys=True).encode())
    for code in sorted(Path(__file__).parent.glob("*.py")):  # a new validator invalidates old answers
        h.update(code.read_bytes())
    for base in paths:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
        for p in files:
            if SKIP_PARTS.isdisjoint(p.parts) and not any(p == e or e in p.parents for e in exclude):
                h.update(str(p.relative_to(ws.root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _path(ws: Workspace, name: str, unit: str) -> Path:
    return ws.state_dir / "cache" / name / f"{unit}.json"


def load(ws: Workspace, name: str, unit: str, digest: str) -> list[Finding] | None:
    path = _path(ws, name, unit)
    try:
        data = json.loads(read_regular(path))
    except (OSError, ValueError):
        return None
    if data.get("key") != digest:
        return None
    return [Finding.model_validate(f) for f in data["findings"]]


def store(ws: Workspace, name: str, unit: str, digest: str, findings: list[Finding]) -> None:
    if any(f.status != "pass" for f in findings):
        _path(ws, name, unit).unlink(missing_ok=True)
        return
    data = {"key": digest, "findings": [f.model_dump(mode="json") for f in findings]}
    write_text(_path(ws, name, unit), json.dumps(data) + "\n")
