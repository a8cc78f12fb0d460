"""bizon-forge installed as MCP servers are installed (a plain `pip install` of the project into its own venv,
no extras, no uv): the workspace gets its own interpreter, every recipe passes `full`, and every command the
answers print runs as printed: the fix for a missing interpreter, and the final `bizon run`.

The MariaDB flow needs no command bizon-forge did not print: the driver named by a `mysql+pymysql://` URL is
recorded as the tree's extra, installed into the workspace's interpreter, the tree's own import guard passes,
and the printed sync lands its records in a real MariaDB server.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import anyio
import pytest
import sqlalchemy as sa

from tests.conftest import REPO

pytest_plugins = ("tests.mariadb",)
pytestmark = pytest.mark.slow


def shell(command: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a printed command exactly as printed, as a user's shell would."""
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv holding only `pip install <this repo>`, and an environment whose PATH has no uv and no bizon."""
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = str(REPO / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != ours)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}, "PATH": path}
    assert subprocess.run(["bash", "-c", "command -v uv bizon"], env=env, capture_output=True).returncode != 0
    return venv, env, root


def forge(installed, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    venv, env, root = installed
    return subprocess.run(
        [str(venv / "bin" / "bizon-forge"), *args], capture_output=True, text=True, env=env, cwd=root, timeout=timeout
    )


def generate(installed, ws, spec: dict) -> dict:
    path = ws.parent / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    done = forge(installed, "generate", str(path), "--workspace", str(ws), "--level", "full", "--json")
    return json.loads(done.stdout) if done.stdout.startswith("{") else {"ok": False, "stderr": done.stderr}


def test_the_server_own_environment_lacks_bizons_runtime(installed):
    venv, _, _ = installed
    lacks = subprocess.run([str(venv / "bin" / "python"), "-c", "import loguru"], capture_output=True)
    assert lacks.returncode != 0  # so everything below runs bizon with the workspace's own interpreter


def test_a_tree_without_interpreter_is_told_the_command_and_that_command_fixes_it(installed):
    venv, env, root = installed
    ws = root / "bare-ws"
    assert forge(installed, "workspace", "init", str(ws), "--no-venv").returncode == 0
    out = generate(installed, ws, {"name": "lake", "recipe": "file"})
    assert [s["step"] for s in out["steps"]] == ["describe", "render", "register"]
    (finding,) = out["findings"]
    assert finding["id"] == "workspace.no_interpreter" and str(venv / "bin" / "python") in finding["message"]
    command = finding["hint"].removeprefix("Run: ")
    assert command == f"{venv / 'bin' / 'bizon-forge'} workspace venv {ws}"
    fixed = shell(command, env)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert (ws / ".venv" / "bin" / "bizon").exists()
    again = generate(installed, ws, {"name": "lake", "recipe": "file"})
    assert again["ok"], again


@pytest.fixture(scope="module")
def workspace_with_venv(installed):
    _, env, root = installed
    ws = root / "ws"
    done = forge(installed, "workspace", "init", str(ws))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"run a sync: cd {ws} && .venv/bin/bizon run FILE" in done.stdout
    clean = subprocess.run(["git", "-C", str(ws), "status", "--porcelain"], capture_output=True, text=True)
    assert clean.stdout == ""  # the venv is bizon's .gitignore'd .venv/
    # The printed server command starts a server an MCP client can use, as printed.
    serve = re.search(r"^serve it to an agent over stdio: (.+)$", done.stdout, re.M).group(1)
    assert anyio.run(_tools_of, shlex.split(serve), env) >= 7
    return ws


async def _tools_of(command: list[str], env: dict) -> int:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async with Client(StdioServerParameters(command=command[0], args=command[1:], env=env)) as client:
        return len((await client.list_tools()).tools)


@pytest.mark.parametrize("recipe", ["sql", "file", "http"])
def test_each_recipe_passes_full_and_the_printed_sync_runs_as_printed(installed, workspace_with_venv, recipe):
    _, env, _ = installed
    ws = workspace_with_venv
    spec = {"name": f"e2e_{recipe}", "recipe": recipe}
    receiver = None
    if recipe == "http":  # the user's endpoint (here a local receiver that honours "replace": true), in the spec
        from bizon_forge.validators.fakes.receiver import Receiver

        receiver = Receiver()
        spec["full_refresh"] = "replace_flag"
        spec["fields"] = [{"name": "endpoint", "default": receiver.url, "description": "The ingest API."}]
    try:
        out = generate(installed, ws, spec)
        assert out["ok"], out
        command = re.search(r"run it with: (.+)$", out["next"]).group(1)
        assert command.startswith(f"cd {ws} && .venv/bin/bizon run ")
        run_env = env
        if receiver:
            assert not receiver.stored, "validation wrote to the endpoint the example names"
            # Its token is a reference; `next` says to set it in the tree's .env, which bizon run reads.
            assert "E2E_HTTP_AUTH_TOKEN" in out["next"] and ".env" in out["next"]
            (ws / ".env").write_text("E2E_HTTP_AUTH_TOKEN=tok-e2e\n")
            run_env = {**env, "HOME": str(ws.parent / "home")}  # its staging is under ~/.cache: not the real one
        ran = shell(command, run_env)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        if receiver:
            assert sum(map(len, receiver.stored.values())) > 0, receiver.stored
    finally:
        if receiver:
            receiver.close()


def test_a_mariadb_destination_needs_no_command_bizon_forge_did_not_print(installed, workspace_with_venv, mariadb_url):
    _, env, _ = installed
    ws = workspace_with_venv
    out = generate(installed, ws, {"name": "maria_dw", "recipe": "sql", "dependencies": ["mysql+pymysql://"]})
    assert out["ok"], out
    assert [s["step"] for s in out["steps"]] == ["describe", "render", "register", "install", "validate"]
    pyproject = (ws / "pyproject.toml").read_text()
    assert 'maria_dw = ["pymysql>=1.1"]' in pyproject
    python = ws / ".venv" / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import pymysql"], env=env).returncode == 0
    guard = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cli/test_cli_imports.py"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    assert guard.returncode == 0, guard.stdout[-2000:]

    # The example reads its URL (a secret) from the environment; the user puts it in the tree's .env, as `next`
    # says, and runs what was printed.
    example = ws / "bizon/connectors/destinations/maria_dw/config/maria_dw.example.yml"
    assert 'url: "env://MARIA_DW_URL"' in example.read_text()
    assert "It reads MARIA_DW_URL" in out["next"] and str(ws / ".env") in out["next"]
    (ws / ".env").write_text(f"MARIA_DW_URL={mariadb_url}\n")
    command = re.search(r"run it with: (.+)$", out["next"]).group(1)
    ran = shell(command, env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            landed = [t for t in tables if conn.execute(sa.text(f"SELECT COUNT(*) FROM `{t}`")).scalar()]
    finally:
        engine.dispose()
    assert landed, tables


def test_the_installed_server_says_its_version_and_lists_install_dependencies(installed, workspace_with_venv):
    from mcp import Client, StdioServerParameters

    venv, env, _ = installed

    async def talk():
        params = StdioServerParameters(
            command=str(venv / "bin" / "bizon-forge"), args=["serve", "--workspace", str(workspace_with_venv)], env=env
        )
        async with Client(params) as client:
            info = client.server_info
            tools = await client.list_tools()
            found = await client.call_tool("inspect_workspace", {})
            return info, [t.name for t in tools.tools], found.structured_content

    info, names, found = anyio.run(talk)
    assert "install_dependencies" in names
    assert found["interpreter"]["chosen_by"] == "the workspace's .venv" and found["interpreter"]["usable"]
    assert found["run"] == f"cd {workspace_with_venv} && .venv/bin/bizon run FILE"
    assert info.name == "bizon-forge" and info.version == "0.1.0"


def test_the_readme_uvx_form_serves_from_the_clone(installed, workspace_with_venv):
    """The host snippets' `uvx --from /path/to/bizon-forge bizon-forge serve ...`, with uvx from the test extra."""
    from mcp import Client, StdioServerParameters

    _, env, _ = installed
    uvx = REPO / ".venv" / "bin" / "uvx"  # it builds an environment of its own from the clone

    async def talk():
        args = ["--from", str(REPO), "bizon-forge", "serve", "--workspace", str(workspace_with_venv)]
        async with Client(StdioServerParameters(command=str(uvx), args=args, env=env)) as client:
            found = await client.call_tool("inspect_workspace", {})
            return client.server_info, found.structured_content

    info, found = anyio.run(talk)
    assert info.version == "0.1.0" and found["ok"] and found["interpreter"]["usable"]
