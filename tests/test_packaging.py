"""The package as it ships: the version said alike in pyproject.toml, server.json, CHANGELOG.md and the CLI, every
templates folder a listed package (tests/test_wheel.py builds, checks and installs the wheel)."""

import json
import tomllib

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
