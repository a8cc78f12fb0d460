"""Shared fixtures: real bizon trees from PyPI (0.6.4 and 0.5.2) and a real MCP client over stdio."""

import os
import shutil
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bizon_forge import workspace

REPO = Path(__file__).resolve().parent.parent
VERSIONS = ("0.6.4", "0.5.2")
# Connectors the tests install into bizon trees, with their own tests: those run there, under that tree's bizon.
collect_ignore_glob = ["broken/*", "sources/*"]
# `make test-fast` skips the tests marked slow: the modules below (every test runs bizon pipelines, real servers
# or many subprocesses), every test that takes a fixture starting a server, and tests marked one by one.
SLOW_MODULES = {
    "test_validate_corpus",
    "test_validate_data",
    "test_validate_scratch",
    "test_recipes_sql",
    "test_recipes_sql_servers",
    "test_recipes_file",
    "test_recipes_http",
    "test_bizon_semantics",
    "test_safety_concurrency",
    "test_safety_corpus",
    "test_safety_faults",
    "test_safety_untrusted",
    "test_audit",
    "test_smoke_stdio",
}
SERVER_FIXTURES = {"postgres_url", "mariadb_url", "served", "http_server"}


# The longest modules (minutes each, serially), handed out first when xdist runs the suite.
LONGEST = ("test_validate_data", "test_install", "test_validate_corpus")


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _module(item) in SLOW_MODULES or SERVER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):
        # An xdist worker: `--dist loadfile` hands out whole modules in collection order, so the long ones go first
        # (the longest, then the all-slow ones) and the short ones fill in; a module keeps its own order.
        fast = {_module(item) for item in items if item.get_closest_marker("slow") is None}

        def rank(item) -> int:
            name = _module(item)
            return LONGEST.index(name) if name in LONGEST else len(LONGEST) + (name in fast)

        items.sort(key=rank)


os.environ.setdefault("BIZON_FORGE_CACHE", str(REPO / ".cache"))


@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    """One unpacked, git-committed tree per bizon version; tests copy it, never touch it."""
    made = {}

    def get(version: str) -> Path:
        if version not in made:
            made[version] = workspace.init(str(tmp_path_factory.mktemp("pristine") / f"bizon-{version}"), version)
        return made[version]

    return get


@pytest.fixture
def make_tree(pristine, tmp_path):
    """make_tree(version) -> a fresh copy of a bizon tree under tmp_path/roots."""
    count = [0]

    def make(version: str = "0.6.4") -> Path:
        count[0] += 1
        dest = tmp_path / "roots" / f"ws{count[0]}-{version}"
        shutil.copytree(pristine(version), dest, symlinks=True)
        return dest

    return make


@pytest.fixture(params=VERSIONS)
def tree(request, make_tree) -> Path:
    """A fresh bizon tree, once per supported version."""
    return make_tree(request.param)


@pytest.fixture
def ws(tree) -> workspace.Workspace:
    return workspace.resolve(None, workspace.Settings.from_paths([str(tree)]))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (minus git internals and byte-code), for byte-identical comparisons."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts and "__pycache__" not in p.parts
    }


def server_params(*roots: Path, extra: tuple[str, ...] = ()):
    from mcp import StdioServerParameters

    args = ["-m", "bizon_forge", "serve"]
    for root in roots:
        args += ["--workspace", str(root)]
    env = {k: v for k, v in os.environ.items()}
    return StdioServerParameters(command=sys.executable, args=[*args, *extra], env=env)


@asynccontextmanager
async def stdio_client(*roots: Path, extra: tuple[str, ...] = ()):
    """A real server process, spoken to by the official client over stdio."""
    from mcp import Client

    async with Client(server_params(*roots, extra=extra)) as client:
        yield client


@pytest.fixture
def anyio_backend():
    return "asyncio"
