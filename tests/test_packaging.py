"""The package as it ships: a wheel built without a warning, holding every template and prompt, that runs from
where it is installed; the version said alike in pyproject.toml, server.json, CHANGELOG.md and the CLI."""

import json
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def test_the_version_and_the_registry_name_agree_everywhere():
    server = json.loads((REPO / "server.json").read_text())
    assert server["version"] == VERSION and [p["version"] for p in server["packages"]] == [VERSION]
    assert server["packages"][0]["identifier"] == PYPROJECT["project"]["name"]
    assert len(server["description"]) <= 100  # the registry's limit
    assert f"<!-- mcp-name: {server['name']} -->" in (REPO / "README.md").read_text()  # PyPI ownership marker
    assert f"## {VERSION} - " in (REPO / "CHANGELOG.md").read_text()
    assert (REPO / "LICENSE").read_text().startswith("MIT License") and PYPROJECT["project"]["license"] == "MIT"


def test_every_templates_folder_is_a_listed_package():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    folders = {p for p in (REPO / "templates").rglob("*") if p.is_dir() and p.name != "__pycache__"}
    missing = {"bizon_forge.templates." + ".".join(p.relative_to(REPO / "templates").parts) for p in folders}
    assert missing - listed == set()


@pytest.mark.slow
def test_the_wheel_builds_without_a_warning_and_runs_from_where_it_is_installed(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", tmp_path, REPO],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "warning" not in (built.stdout + built.stderr).lower(), built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = tmp_path.glob("bizon_forge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"bizon_forge/templates/{p.relative_to(REPO / 'templates')}" for p in (REPO / "templates").rglob("*.j2")}
    shipped |= {f"bizon_forge/prompts/{p.name}" for p in (REPO / "prompts").glob("*.md")}
    assert shipped - names == set()
    assert f"bizon_forge-{VERSION}.dist-info/licenses/LICENSE" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", "-t", target, wheel],
        check=True,
    )
    # From elsewhere, the installed copy first on the path (its dependencies from this environment).
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import bizon_forge.cli, bizon_forge.render as r; print(bizon_forge.cli.__file__); print(r.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.returncode == 0 and all(line.startswith(str(target)) for line in where.stdout.split()), where
    said = subprocess.run(
        [sys.executable, "-m", "bizon_forge", "--version"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert said.stdout.strip() == f"bizon-forge {VERSION}", said.stderr
