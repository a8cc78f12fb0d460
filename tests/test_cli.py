"""The CLI as a user meets it: every option explained, a version, no fixed port for the mock, a line at least
every 5 s, and a Ctrl-C that ends cleanly with the command that resumes."""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bizon_forge import cli
from bizon_forge.validators.fakes.mock_api import CREDENTIALS
from tests.conftest import REPO

FORGE = [sys.executable, "-m", "bizon_forge"]
SPEC = {
    "name": "crm",
    "base_url": "https://api.crm.example/v1",
    "auth": "bearer",
    "description": "Contacts.",
    "streams": [
        {
            "name": "contacts",
            "endpoint": "/contacts",
            "records_path": "data",
            "id_field": "id",
            "pagination": {"pattern": "cursor", "cursor_param": "after", "next_cursor_path": "meta.next"},
        }
    ],
}
# What a command under `mock-api --run` sees: the mock's URL, served on a free port, answering the mock's token.
CLIENT = f"""
import os, sys, urllib.request
url = os.environ["BIZON_FORGE_MOCK_API_URL"]
request = urllib.request.Request(url + "/contacts", headers={{"Authorization": "Bearer {CREDENTIALS["token"]}"}})
print(url, urllib.request.urlopen(request, timeout=10).status)
sys.exit(7)
"""


def options(parser: argparse.ArgumentParser, path: str = "bizon-forge"):
    """Every option and positional of every (sub)command, with the command's name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_option_has_help_and_the_version_is_printed():
    missing = [f"{path} {a.dest}" for path, a in options(cli._parser()) if not (a.help or "").strip()]
    assert missing == []
    named = {f"{path} {a.option_strings[0]}" for path, a in options(cli._parser()) if a.option_strings}
    assert {
        "bizon-forge serve --host",
        "bizon-forge workspace init --bizon-version",
        "bizon-forge generate --json",
    } <= named
    done = subprocess.run([*FORGE, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("bizon-forge ") and done.stdout.split()[1][0].isdigit()
    text = subprocess.run([*FORGE, "serve", "--help"], capture_output=True, text=True).stdout
    assert "(default: 127.0.0.1)" in text and "(default: 8765)" in text and "(default: False)" not in text
    text = subprocess.run([*FORGE, "validate", "--help"], capture_output=True, text=True).stdout
    assert "validate_destination" not in text.split("positional")[0]  # the usage speaks of sources too


def test_mock_api_run_takes_a_free_port_while_8798_is_held_and_two_runs_share_nothing(tmp_path):
    spec = tmp_path / "crm.json"
    spec.write_text(json.dumps(SPEC))
    with socket.socket() as held:
        try:  # the port the demo and check configs used to print, held (here, or already by another process)
            held.bind(("127.0.0.1", 8798))
            held.listen()
        except OSError:
            socket.create_connection(("127.0.0.1", 8798), timeout=5).close()  # someone else holds it
        runs = [
            subprocess.Popen(
                [*FORGE, "mock-api", str(spec), "--clean", "--run", "--", sys.executable, "-c", CLIENT],
                env={**os.environ, "BIZON_FORGE_MOCK_API_REPORT": str(tmp_path / f"report{n}.json")},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(2)
        ]
        answers = [(run.communicate(timeout=60), run.returncode) for run in runs]
    urls = set()
    for n, ((out, err), code) in enumerate(answers):
        assert code == 7, err  # the command's own exit code
        url, status = out.split()
        assert status == "200" and ":8798/" not in url and url.endswith("/v1")
        urls.add(url)
        assert "mock API served contacts: 1 requests" in err
        report = json.loads((tmp_path / f"report{n}.json").read_text())
        assert report["streams"]["contacts"]["requests"] == 1
    assert len(urls) == 2
    done = subprocess.run([*FORGE, "mock-api", str(spec), "--run"], capture_output=True, text=True)
    assert done.returncode == 2 and "--run -- COMMAND" in done.stderr


def test_a_long_step_prints_a_line_at_least_every_heartbeat(monkeypatch, capsys):
    monkeypatch.setattr(cli, "HEARTBEAT_S", 0.3)
    with cli._heartbeat("validating x (full)"):
        time.sleep(1.4)
    first, *beats = [ln for ln in capsys.readouterr().err.splitlines() if "validating x (full)" in ln]
    assert first.strip() == "validating x (full) ..."  # said at once, before the first beat
    assert 3 <= len(beats) <= 5 and beats[0].strip().startswith("... validating x (full):")


@pytest.fixture
def hanging_index(monkeypatch):
    """An index that never answers: workspace init waits on it until interrupted."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            release.wait(30)  # then closes without an answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    release.set()
    server.shutdown()
    server.server_close()


def interrupt(argv: list[str], after: float, env: dict | None = None) -> tuple[int, str]:
    """Run the CLI, Ctrl-C its process group (as a terminal does) after `after` s; its exit code and stderr."""
    proc = subprocess.Popen(
        [*FORGE, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env or dict(os.environ),
    )
    time.sleep(after)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_ctrl_c_ends_init_and_serve_without_a_traceback_and_says_what_resumes(hanging_index, tmp_path, make_tree):
    env = {**os.environ, "BIZON_FORGE_INDEX_URL": hanging_index, "BIZON_FORGE_CACHE": str(tmp_path / "cache")}
    code, err = interrupt(["workspace", "init", str(tmp_path / "new")], 3, env)
    assert code == 130 and "Traceback" not in err, err
    assert "before bizon's tree was in place" in err and "Run it again:" in err and "workspace init" in err
    assert not (tmp_path / "new").exists()

    tree = make_tree()  # a tree that an init left without its .venv
    code, err = interrupt(["workspace", "venv", str(tree)], 1.5)
    assert "Traceback" not in err, err
    if code == 130:  # else the venv was made within 1.5 s (uv with a warm cache): nothing to resume
        assert f"Resume with: {cli.forge_command('workspace', 'venv', str(tree))}" in err

    code, err = interrupt(["serve", "--workspace", str(tree)], 3)
    assert code == 130 and err.strip() == "bizon-forge serve stopped.", err


@pytest.mark.slow
def test_ctrl_c_during_checks_stops_after_them_and_a_second_one_at_once(make_tree):
    """validate's checks run in sessions of their own: the first Ctrl-C lets them end and clean up (and says so
    at once), a second stops at once; neither leaves a process behind nor prints a traceback."""
    tree = make_tree()
    spec = REPO / "examples" / "file_destination.yml"
    python = ["--python", sys.executable]
    subprocess.run([*FORGE, "generate", str(spec), "--workspace", str(tree), *python], check=True, capture_output=True)
    validate = ["validate", "lake", "--workspace", str(tree), "--level", "full", "--no-cache", *python]
    for twice in (False, True):
        proc = subprocess.Popen(
            [*FORGE, *validate], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        time.sleep(6)
        os.killpg(proc.pid, signal.SIGINT)
        if twice:
            time.sleep(1)
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 130 and "Traceback" not in err, err
        assert "stopping: the checks under way end" in err and "Run it again:" in err
        assert ("Stopped at once" in err) == twice
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", str(tree)], capture_output=True, text=True).stdout.split()
    assert left == []
