"""Eight clients on one workspace at once, through two HTTP server processes.

Different names: all eight end up registered and the tree imports. The same name: exactly one adds it,
the other seven find it already present. The workspace lock (flock on the tree folder) is what serialises
writers across the two processes.
"""

import json
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack

import anyio
import pytest

from bizon_forge import registry, workspace
from tests.http_server import http_server

pytestmark = pytest.mark.anyio
CLIENTS = 8
ALL = ("enum", "import", "union", "factory")


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def shared(pristine, tmp_path_factory):
    """One 0.6.4 tree served by two HTTP server processes; yields (tree, [url, url])."""
    base = tmp_path_factory.mktemp("concurrency")
    tree = base / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    with ExitStack() as stack:
        ports = [stack.enter_context(http_server(tree, log=base / f"server{i}.log"))[0] for i in range(2)]
        yield tree, [f"http://127.0.0.1:{p}/mcp" for p in ports]
    for i in range(2):  # both processes really served calls
        assert "POST /mcp" in (base / f"server{i}.log").read_text()


async def register(url: str, tree, name: str) -> dict:
    """One client's whole session: describe, render, register. Returns each call's answer."""
    from mcp import Client

    out = {}
    where = {"workspace": str(tree)}
    async with Client(url) as client:
        fields = [{"name": "token", "required": True, "description": "API token", "secret": True}]
        for tool, args in (
            ("describe_target", {"name": name, "fields": fields}),
            ("render_destination", {"name": name}),
            ("apply_registrations", {"name": name}),
        ):
            r = await client.call_tool(tool, {**args, **where})
            assert not r.is_error, r.content[0].text[:1000]
            out[tool] = r.structured_content
    return out


async def run_clients(urls, tree, names) -> list[dict]:
    results: list[dict] = [{}] * len(names)

    async def one(i: int) -> None:
        results[i] = await register(urls[i % len(urls)], tree, names[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(names)):
            tg.start_soon(one, i)
    return results


_IMPORT = """
import importlib, json, sys
import bizon.common.models as models
for name in json.loads(sys.argv[1]):
    importlib.import_module(f"bizon.connectors.destinations.{name}.src.config")
    importlib.import_module(f"bizon.connectors.destinations.{name}.src.destination")
print(models.__file__)
"""


def imports(tree, names) -> None:
    env = {
        "PYTHONPATH": str(tree),
        "PATH": os.environ["PATH"],
        "PYTHONPYCACHEPREFIX": str(workspace.cache_dir() / "pycache"),
    }
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT, json.dumps(list(names))], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(tree))


async def test_eight_clients_register_eight_destinations(shared):
    tree, urls = shared
    names = [f"dest_{i}" for i in range(CLIENTS)]
    results = await run_clients(urls, tree, names)
    for name, result in zip(names, results, strict=True):
        for tool, answer in result.items():
            assert answer["ok"], (name, tool, answer)
        assert result["apply_registrations"]["registrations"] == dict.fromkeys(ALL, "added"), name
    ws = workspace.resolve(str(tree), workspace.Settings.from_paths([str(tree)]))
    reg = registry.read(ws)
    assert not reg.errors
    for name in names:
        pascal = "".join(p.capitalize() for p in name.split("_"))
        assert reg.enum[name.upper()] == name
        assert f"{pascal}Config" in reg.union
        assert reg.factory[name.upper()] == f"bizon.connectors.destinations.{name}.src.destination"
    assert not (tree / ".bizon-forge/journal.json").exists()
    imports(tree, names)


async def test_eight_clients_register_the_same_name(shared):
    tree, urls = shared
    results = await run_clients(urls, tree, ["shared"] * CLIENTS)
    outcomes = sorted(json.dumps(r["apply_registrations"]["registrations"], sort_keys=True) for r in results)
    added = json.dumps(dict.fromkeys(ALL, "added"), sort_keys=True)
    present = json.dumps(dict.fromkeys(ALL, "already_present"), sort_keys=True)
    assert outcomes.count(added) == 1 and outcomes.count(present) == CLIENTS - 1, outcomes
    assert all(r[tool]["ok"] for r in results for tool in r)
    actions = [{f["action"] for f in r["render_destination"]["files"]} for r in results]
    assert actions.count({"created"}) == 1 and actions.count({"unchanged"}) == CLIENTS - 1, actions
    source = (tree / "bizon/destination/config.py").read_text()
    assert source.count('SHARED = "shared"') == 1
    imports(tree, ["shared"])
