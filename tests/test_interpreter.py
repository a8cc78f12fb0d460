"""The workspace's interpreter: a tree whose Python cannot run its bizon gets one finding, workspace.no_interpreter,
from every tool that needs one, naming the interpreter, what failed and the command that fixes it; installing a
destination's client libraries says plainly when the index cannot be reached or has no such package."""

import http.server
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bizon_forge import interpreter, workspace
from bizon_forge.dependencies import install_dependencies
from bizon_forge.describe import describe_target
from bizon_forge.findings import Refused
from bizon_forge.inspection import inspect_workspace
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec
from bizon_forge.validators import validate_destination
from tests.conftest import REPO, snapshot

runtime = interpreter.runtime_requirements


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A real Python with nothing installed: what a workspace gets when nobody made it an interpreter."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def with_python(root, python: str) -> workspace.Workspace:
    settings = workspace.Settings.from_paths([str(root)], python=python)
    return workspace.resolve(None, settings)


@pytest.mark.parametrize("kind", ["bare", "missing"])
def test_every_tool_that_runs_bizon_answers_no_interpreter_and_changes_nothing(tree, bare_python, kind):
    python = bare_python if kind == "bare" else str(tree / "no" / "python")
    ws = with_python(tree, python)
    assert describe_target(ws, DestinationSpec(name="acme", recipe="file", dependencies=["redis>=5"])).ok
    assert render_destination(ws, "acme").ok  # neither needs an interpreter
    before = snapshot(tree)

    found = inspect_workspace(ws)
    assert not found.ok and not found.interpreter.usable
    assert found.run is None and found.next is None  # no command that would not run; the finding says what will
    (finding,) = [f for f in found.findings if f.id == "workspace.no_interpreter"]
    assert python in finding.message and "--python" in finding.message
    if kind == "bare":
        assert "lacks" in finding.message and "requests" in finding.message
        # the fix for an interpreter the server was told to use: complete it with bizon's runtime dependencies
        assert finding.hint == "Run: " + shlex.join(interpreter.install_command(python, runtime(tree)))
        assert "'loguru>=0.7.2'" in finding.hint
    else:
        assert "does not run" in finding.message

    for call in (
        lambda: apply_registrations(ws, "acme"),
        lambda: validate_destination(ws, "acme"),
        lambda: install_dependencies(ws, "acme"),
    ):
        with pytest.raises(Refused) as refused:
            call()
        assert [f.id for f in refused.value.findings] == ["workspace.no_interpreter"]
        assert refused.value.findings[0] == finding
    assert snapshot(tree) == before


def test_without_python_settings_the_fix_is_a_workspace_venv_command_that_runs_as_printed(ws):
    hint = interpreter.fix_command(ws)
    # our console script, which runs from any folder (python -m would import a checkout's source folder there)
    script = shlex.quote(str(Path(sys.executable).with_name("bizon-forge")))
    assert hint == f"{script} workspace venv {shlex.quote(str(ws.root))}"
    # Its parser takes it (the command itself runs in tests/test_install.py, where a venv is worth making).
    argv = shlex.split(hint)[1:]
    from bizon_forge.cli import _parser

    parsed = _parser().parse_args(argv)
    assert (parsed.command, parsed.ws_command, parsed.dir) == ("workspace", "venv", str(ws.root))


class NoPackages(http.server.BaseHTTPRequestHandler):
    """A package index that has nothing: every project page is a 404."""

    def do_GET(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def empty_index():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoPackages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()
    server.server_close()


def _declared(ws, deps):
    """Described, rendered and registered: the extra records `deps`, as install_dependencies requires."""
    assert describe_target(ws, DestinationSpec(name="acme", recipe="file", dependencies=deps)).ok
    assert render_destination(ws, "acme", overwrite=True).ok
    assert apply_registrations(ws, "acme").ok


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_an_unreachable_index_gets_its_own_finding(ws, monkeypatch, installer):
    if installer == "pip":
        monkeypatch.setattr(interpreter, "uv", lambda: None)
    elif interpreter.uv() is None:
        pytest.fail("uv is in the test extra: `make setup` installs it")
    for var, value in {
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # port 9 (discard): nothing listens
        "UV_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_RETRIES": "1",  # with 0, pip never says why it found nothing
        "PIP_TIMEOUT": "2",
        "UV_HTTP_TIMEOUT": "2",
        "PIP_FIND_LINKS": "",
        "PIP_NO_INDEX": "",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    _declared(ws, ["bizon-forge-test-absent>=1"])
    result = install_dependencies(ws, "acme")
    assert not result.ok and [f.id for f in result.findings] == ["install.index_unreachable"], result.findings
    assert "bizon-forge-test-absent" in result.command and result.command in result.findings[0].hint


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_name_the_index_does_not_have_is_not_found(ws, monkeypatch, empty_index, installer):
    if installer == "pip":
        monkeypatch.setattr(interpreter, "uv", lambda: None)
    monkeypatch.setenv("PIP_INDEX_URL", empty_index)
    monkeypatch.setenv("UV_INDEX_URL", empty_index)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    _declared(ws, ["bizon-forge-test-absent>=1"])
    result = install_dependencies(ws, "acme")
    assert not result.ok and [f.id for f in result.findings] == ["install.not_found"], result.findings


@pytest.mark.slow
def test_installed_libraries_are_not_installed_again_and_nothing_declared_is_a_pass(ws):
    _declared(ws, ["pymysql>=1.1"])  # in this interpreter already (the test extra)
    result = install_dependencies(ws, "acme")
    assert result.ok and "already installed" in result.findings[0].message and "pymysql>=1.1" in result.installed
    _declared(ws, [])
    nothing = install_dependencies(ws, "acme")
    assert nothing.ok and [f.id for f in nothing.findings] == ["install.nothing"]
    assert nothing.next == "validate_destination(name='acme')"


def test_what_the_tree_does_not_record_is_not_installed(ws):
    _declared(ws, ["pymysql>=1.1"])
    assert describe_target(ws, DestinationSpec(name="acme", recipe="file", dependencies=["redis>=5"])).ok
    with pytest.raises(Refused) as refused:
        install_dependencies(ws, "acme")  # the agent skipped apply_registrations after changing its mind
    (finding,) = refused.value.findings
    assert finding.id == "install.not_recorded" and "records pymysql>=1.1" in finding.message
    assert finding.hint.startswith("apply_registrations(name='acme')")


def test_an_answer_is_remembered_until_the_interpreter_changes(ws):
    """A warm call asks no subprocess; an install into the interpreter (a new *.dist-info) asks again."""
    wanted = f"forge-probe-test-{os.getpid()}>=1"
    first = interpreter.probe(ws, ["pymysql>=1.1", wanted])
    assert first.usable and first.missing == [wanted]
    (ws.root / "bizon-marker").write_text("")  # nothing the answer depends on
    assert interpreter.probe(ws, ["pymysql>=1.1", wanted]) is first
    site = next((Path(sys.executable).parent.parent / "lib").glob("python3*/site-packages"))
    marker = site / f"forge_probe_test_{os.getpid()}-1.0.dist-info"  # what an install adds
    marker.mkdir()
    try:
        (marker / "METADATA").write_text(f"Name: forge-probe-test-{os.getpid()}\nVersion: 1.0\n")
        again = interpreter.probe(ws, ["pymysql>=1.1", wanted])
        assert again is not first and again.libraries.get(wanted) == "1.0" and not again.missing
    finally:
        shutil.rmtree(marker)


def test_under_uvx_the_printed_commands_name_the_source_not_uvx_cache(tmp_path):
    """uvx runs bizon-forge from a cache entry (archive-vN/HASH) that uv may collect: a printed command names what
    `uvx --from` installed from instead (a folder, a git URL, or the release)."""
    import sysconfig

    from bizon_forge.interpreter import uvx_source

    assert uvx_source(sys.prefix) is None
    prefix = tmp_path / "uv" / "archive-v0" / "Yzr2SIUEnaqGojb_"
    info = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"])
    info = info / "bizon_forge-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: bizon-forge\nVersion: 0.1.0\n")
    assert uvx_source(str(prefix)) == "bizon-forge==0.1.0"  # from an index: no direct_url.json
    for direct, source in (
        ({"url": "file:///home/me/bizon%20forge", "dir_info": {}}, "/home/me/bizon forge"),
        (
            {"url": "https://github.com/o/bizon-forge", "vcs_info": {"vcs": "git"}},
            "git+https://github.com/o/bizon-forge",
        ),
    ):
        (info / "direct_url.json").write_text(json.dumps(direct))
        assert uvx_source(str(prefix)) == source
    assert interpreter.forge_command("serve") != f"uvx --from {REPO} bizon-forge serve"  # here: not under uvx


def test_a_venv_without_pip_and_no_uv_is_one_finding_naming_both_ways_out(make_tree, monkeypatch):
    """A .venv `uv venv` made (no pip) with no uv to install into it: workspace.no_installer, not pip's error."""
    tree = make_tree()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tree / ".venv")], check=True)
    monkeypatch.setattr(interpreter, "uv", lambda: None)  # this machine's uv, out of reach as on a bare one
    with pytest.raises(Refused) as caught:
        interpreter.make_venv(tree)
    (finding,) = caught.value.findings
    assert finding.id == "workspace.no_installer" and "uv" in finding.hint
    assert interpreter.forge_command("workspace", "venv", str(tree)) in finding.hint
