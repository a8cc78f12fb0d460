"""`serve --http --stateless`: one server, many official clients of both protocol eras, each in its tree."""

import os
import shutil
import socket
import subprocess
import sys
import time

import anyio
import pytest
from mcp import Client

from bizon_forge import registry, workspace
from bizon_forge.server import app

pytestmark = pytest.mark.anyio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server(tmp_path):
    """A real `bizon-forge serve --http --stateless` process rooted at tmp_path/roots."""
    root = tmp_path / "roots"
    root.mkdir()
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    cmd = [sys.executable, "-m", "bizon_forge", "serve", "--http", "--stateless", "--no-auth", "--port", str(port)]
    server = subprocess.Popen([*cmd, "--workspace", str(root)], stdout=log, stderr=log, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp", root
    server.terminate()
    server.wait(timeout=10)
    log.close()


async def _make(url: str, label: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        r = await client.call_tool(
            "describe_target",
            {
                "name": label,
                "workspace": label,
                "fields": [{"name": "endpoint", "required": True, "description": "x"}],
            },
        )
        assert r.structured_content["ok"], r.content
        r = await client.call_tool("render_destination", {"name": label, "workspace": label})
        assert r.structured_content["ok"], r.content
        r = await client.call_tool("apply_registrations", {"name": label, "workspace": label})
        assert r.structured_content["registrations"] == dict.fromkeys(("enum", "import", "union", "factory"), "added")


async def test_concurrent_clients_of_both_eras_each_get_their_own_destination(http_server, pristine):
    url, root = http_server
    labels = {
        "dest_auto_a": "auto",
        "dest_auto_b": "auto",
        "dest_legacy_a": "legacy",
        "dest_legacy_b": "legacy",
    }
    for label in labels:
        shutil.copytree(pristine("0.6.4"), root / label, symlinks=True)
    async with anyio.create_task_group() as tg:
        for label, mode in labels.items():
            tg.start_soon(_make, url, label, mode)
    for label in labels:
        reg = registry.read(workspace.Workspace(root=root / label, settings=workspace.Settings()))
        mine = {v for v in reg.enum.values() if v and v.startswith("dest_")}
        assert mine == {label}, f"{label} holds {mine}"


async def test_validate_reports_progress_over_stateless_http(http_server, pristine):
    url, root = http_server
    shutil.copytree(pristine("0.6.4"), root / "progress", symlinks=True)
    await _make(url, "progress", "auto")
    seen = []

    async def on_progress(progress, total, message):
        seen.append(message)

    async with Client(url) as client:
        args = {"name": "progress", "workspace": "progress", "level": "fast"}
        result = await client.call_tool("validate_destination", args, progress_callback=on_progress)
    assert not result.is_error, result.content
    assert seen, "no progress notification reached the client"


def test_stateless_answers_stream_so_progress_reaches_the_client(monkeypatch):
    """A JSON-only answer (json_response=True) silently drops progress notifications."""
    seen = {}
    monkeypatch.setattr(app.MCPServer, "run", lambda self, transport="stdio", **kw: seen.update(kw, t=transport))
    app.serve(workspace.Settings(), http=True, port=1, stateless=True)
    assert seen["t"] == "streamable-http" and seen["stateless_http"] is True
    assert not seen.get("json_response", False)
