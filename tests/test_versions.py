"""Every bizon version from 0.5.0 on, in a fresh workspace made the way a user makes one (`bizon-forge workspace
init DIR --bizon-version V`, its own .venv): a destination registers and validates (`generate --level fast`), and
its own tests run with the command the guide resource prints, as printed.

bizon 0.5.0's bizon.common.models imports the bigquery destination, whose google-cloud-bigquery is an extra, and
from 0.5.5 on the destinations' conftest imports it: without `workspace init` installing that extra, 0.5.0 could
register nothing and no version could collect a destination's tests. 0.5.0 also goes through a venv without that
extra first: `generate` stops at one workspace.no_interpreter finding (the probe finds every module the registration
modules import), and its command, run as printed, fixes it.

`make test` runs the versions that differ (0.5.0: the import in models.py; the newest: the conftest), one
subprocess chain per version, side by side. Every version from 0.5.0 on (listed from PyPI by bizon_forge/sdist.py),
also side by side: BIZON_FORGE_VERSIONS=all .venv/bin/python -m pytest -p no:xdist tests/test_versions.py
"""

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from packaging.version import Version

from bizon_forge import interpreter, sdist, workspace
from tests.conftest import REPO

pytestmark = pytest.mark.slow

FLOOR = Version("0.5.0")
FORGE = [sys.executable, "-m", "bizon_forge"]


def versions() -> list[str]:
    """The versions to try: every release from 0.5.0 on when BIZON_FORGE_VERSIONS=all, else the two that differ."""
    if os.environ.get("BIZON_FORGE_VERSIONS") != "all":
        return ["0.5.0", "0.6.4"]
    released = sdist.released_versions(sdist.project_files("bizon") or [])
    return [str(v) for v in sorted(released) if v >= FLOOR and not v.is_prerelease]


def guide_test_command(name: str) -> str:
    """The command the guide resource (corrections.md) gives for a destination's own tests, for `name`."""
    text = (REPO / "prompts" / "corrections.md").read_text()
    found = re.search(r"own tests need neither: `([^`]+)`", text)
    assert found, "the guide resource no longer states the command that runs a destination's tests"
    return found.group(1).replace("NAME", name)


def run(cmd: list[str] | str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    # as on a user's machine: byte-code written (the tree's tests import google.cloud.bigquery, seconds to compile)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV") and k != "PYTHONDONTWRITEBYTECODE"}
    args = ["bash", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def generate(ws: Path, base: Path, version: str) -> dict:
    spec = base / f"spec-{version}.json"
    spec.write_text(json.dumps({"name": "lake", "recipe": "file"}))
    gen = run([*FORGE, "generate", str(spec), "--workspace", str(ws), "--level", "fast", "--json"], base)
    return json.loads(gen.stdout) if gen.stdout.startswith("{") else {"ok": False, "stderr": gen.stderr[-1500:]}


def without_the_extra(ws: Path, base: Path, version: str) -> dict | None:
    """0.5.0 as an older bizon-forge left it: a venv with the tree but not the bigquery extra its models import.
    `generate` must stop at one workspace.no_interpreter finding whose command, run as printed, fixes the venv."""
    uv = interpreter.uv()
    assert uv, "the test extra installs uv"
    python = ws / ".venv" / "bin" / "python"
    for cmd in (
        [uv, "venv", "-q", "--python", sys.executable, ws / ".venv"],
        [uv, "pip", "install", "-q", "--python", python, "-e", ws],
    ):
        done = run(cmd, base)
        assert done.returncode == 0, done.stderr
    answer = generate(ws, base, version)
    findings = [f["id"] for f in answer.get("findings", [])]
    if answer.get("ok") or findings != ["workspace.no_interpreter"] or "google.cloud.bigquery" not in str(answer):
        return {"version": version, "step": "gap", "out": answer}
    fixed = run(answer["findings"][0]["hint"].removeprefix("Run: "), base)
    if fixed.returncode:
        return {"version": version, "step": "fix", "out": fixed.stdout[-1500:] + fixed.stderr[-1500:]}
    return None


def one_version(version: str, base: Path) -> dict:
    """init, generate at fast, the guide's test command: what each answered (and how long it took). 0.5.0 first
    goes through the gap an older init left (without_the_extra)."""
    started = time.monotonic()
    ws = base / f"bizon-{version}"
    gap = version == "0.5.0"
    init = run(
        [*FORGE, "workspace", "init", str(ws), "--bizon-version", version, *(["--no-venv"] if gap else [])], base
    )
    if init.returncode:
        return {"version": version, "step": "init", "out": init.stdout[-1500:] + init.stderr[-1500:]}
    failed = without_the_extra(ws, base, version) if gap else None
    if failed:
        return failed
    took = {"init": round(time.monotonic() - started, 1)}
    answer = generate(ws, base, version)
    took["generate"] = round(time.monotonic() - started - sum(took.values()), 1)
    if not answer.get("ok"):
        return {"version": version, "step": "generate", "out": answer}
    tests = run(guide_test_command("lake"), ws)
    if tests.returncode:
        return {"version": version, "step": "tests", "out": tests.stdout[-2500:] + tests.stderr[-1000:]}
    took["tests"] = round(time.monotonic() - started - sum(took.values()), 1)
    return {"version": version, "step": "done", "took_s": took, "tests": tests.stdout[-200:]}


def test_every_version_registers_validates_and_runs_its_destination_tests(tmp_path):
    wanted = versions()
    for version in wanted:  # fetched one after another (cached): the runs below then only read the cache
        workspace.sdist(version)
    with ThreadPoolExecutor(max_workers=min(len(wanted), 4)) as pool:
        results = list(pool.map(lambda v: one_version(v, tmp_path), wanted))
    print(json.dumps(results))  # each version's seconds per step (pytest -s shows them)
    failures = [r for r in results if r["step"] != "done"]
    assert not failures, json.dumps(failures, indent=1)
    for r in results:
        assert re.search(r"\d+ passed", r["tests"]), r  # the guide's command ran the destination's tests
    assert "bigquery" in workspace.needed_extras(tmp_path / "bizon-0.5.0")
