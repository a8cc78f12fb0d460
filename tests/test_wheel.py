"""The package as a user gets it: `python -m build` (the sdist, then the wheel built from it) without a warning,
`twine check --strict` passing on both, every template and prompt in the wheel, and the wheel installed into a
fresh venv, where `bizon-forge --version` answers and the server answers an MCP client's initialize over stdio."""

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import anyio
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def run(cmd: list, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """From a folder that is not this checkout (whose bizon_forge/ `python -c` would import first)."""
    away = Path(env.get("TMPDIR", "/tmp"))
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout, cwd=away)


async def _initialize(command: str, tree: Path, env: dict) -> tuple[str, str, int]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=command, args=["serve", "--workspace", str(tree)], env=env)
    async with Client(params) as client:
        info = client.server_info
        assert info is not None
        return info.name, info.version, len((await client.list_tools()).tools)


def test_the_built_wheel_passes_twine_installs_in_a_fresh_venv_and_serves(tmp_path, make_tree):
    # PYTHONDONTWRITEBYTECODE (set where these tests run, say) makes setuptools warn that it skips byte-compiling
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith("VIRTUAL_ENV")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the test extra's uv, for --installer
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "build", "--installer", "uv", "--outdir", dist, REPO], env)
    assert built.returncode == 0, built.stderr[-3000:]
    said = built.stdout + built.stderr
    assert "warning" not in said.lower(), [line for line in said.splitlines() if "warning" in line.lower()]
    (wheel,) = dist.glob("bizon_forge-*.whl")
    (sdist,) = dist.glob("bizon_forge-*.tar.gz")
    checked = run([sys.executable, "-m", "twine", "check", "--strict", wheel, sdist], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"bizon_forge/templates/{p.relative_to(REPO / 'templates')}" for p in (REPO / "templates").rglob("*.j2")}
    shipped |= {f"bizon_forge/prompts/{p.name}" for p in (REPO / "prompts").glob("*.md")}
    assert shipped - names == set()
    assert f"bizon_forge-{VERSION}.dist-info/licenses/LICENSE" in names

    venv = tmp_path / "venv"
    uv = Path(sys.executable).parent / "uv"
    assert run([uv, "venv", "-q", "--python", sys.executable, venv], env).returncode == 0
    installed = run([uv, "pip", "install", "-q", "--python", venv / "bin" / "python", wheel], env, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    forge = venv / "bin" / "bizon-forge"
    version = run([forge, "--version"], {**env, "PATH": str(venv / "bin")})
    assert version.stdout.strip() == f"bizon-forge {VERSION}", version.stderr
    where = run([venv / "bin" / "python", "-c", "import bizon_forge.render as r; print(r.__file__)"], env)
    assert where.stdout.startswith(str(venv)), where  # the installed copy, not this checkout
    name, served, tools = anyio.run(_initialize, str(forge), make_tree("0.6.4"), env)
    assert (name, served) == ("bizon-forge", VERSION) and tools >= 7
