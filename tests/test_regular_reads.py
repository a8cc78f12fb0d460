"""A FIFO where bizon-forge reads a file: the call refuses at once with workspace.not_a_file, writes nothing.

Opening a FIFO for reading waits for a writer forever, and most of these reads happen under the workspace
lock. Each call runs in a thread with a deadline, so a regression fails here instead of hanging the suite;
the FIFO is then opened for writing to set the stuck thread free.
"""

import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

import anyio
import pytest

from bizon_forge import atomic, describe, registrations, render, workspace
from bizon_forge.findings import Refused
from bizon_forge.spec import destination as spec
from bizon_forge.validators import validate_destination
from bizon_forge.workspace import read_regular
from tests.conftest import snapshot, stdio_client

DEADLINE_S = 10.0  # the refusals take well under a second; only a blocked read gets near this
NAME = "piped"
SRC = f"bizon/connectors/destinations/{NAME}/src"


def rendered(root: Path) -> workspace.Workspace:
    ws = open_ws(root)
    assert describe.describe_target(ws, spec.DestinationSpec(name=NAME)).ok
    assert render.render_destination(ws, NAME).ok
    return ws


def open_ws(root: Path) -> workspace.Workspace:
    return workspace.resolve(str(root), workspace.Settings.from_paths([str(root)]))


def plant_fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def set_free(fifo: Path) -> None:
    """Open the FIFO for writing and close it: a reader blocked on it gets end-of-file."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader yet


def refusal_within_deadline(call, fifo: Path) -> tuple[Refused, float]:
    out: dict = {}

    def run():
        try:
            out["answer"] = call()
        except Refused as refused:
            out["refused"] = refused

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(DEADLINE_S)
    seconds = time.monotonic() - started
    blocked = thread.is_alive()
    for _ in range(50):
        if not thread.is_alive():
            break
        set_free(fifo)
        thread.join(0.1)
    assert not blocked, f"the call was still blocked after {DEADLINE_S:.0f} s: it read the FIFO {fifo}"
    assert "refused" in out, f"answered instead of refusing: {out.get('answer')}"
    return out["refused"], seconds


def assert_names(refused: Refused, fifo: Path) -> None:
    (finding,) = refused.findings
    assert finding.id == "workspace.not_a_file" and finding.status == "fail"
    assert finding.file == str(fifo) and "named pipe" in finding.message and finding.hint


# Where the FIFO goes (relative to the tree) and the call that reads it, on a described and rendered tree.
CASES = {
    "connector_config-apply": (f"{SRC}/config.py", lambda ws: registrations.apply_registrations(ws, NAME)),
    "pyproject-apply": ("pyproject.toml", lambda ws: registrations.apply_registrations(ws, NAME)),
    "pyproject-validate": ("pyproject.toml", lambda ws: validate_destination(ws, NAME)),
    "destination_file-validate": (f"{SRC}/destination.py", lambda ws: validate_destination(ws, NAME)),
    "connector_config-validate_fix": (f"{SRC}/config.py", lambda ws: validate_destination(ws, NAME, fix=True)),
    "example_config-validate": (
        f"bizon/connectors/destinations/{NAME}/config/{NAME}.example.yml",
        lambda ws: validate_destination(ws, NAME),
    ),
    "test_file-validate": (
        f"tests/connectors/destinations/{NAME}/test_extra.py",
        lambda ws: validate_destination(ws, NAME),
    ),
    "render_record-render": (f".bizon-forge/rendered/{NAME}.json", lambda ws: render.render_destination(ws, NAME)),
    # Resolving reads no journal; the step every tool takes next does.
    "journal-roll_back": (".bizon-forge/journal.json", lambda ws: atomic.roll_back_interrupted(ws.state_dir)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fifo_where_a_file_is_read_is_refused_at_once_and_nothing_is_written(make_tree, case):
    rel, call = CASES[case]
    ws = rendered(make_tree("0.6.4"))
    fifo = plant_fifo(ws.root / rel)
    before = snapshot(ws.root)

    refused, seconds = refusal_within_deadline(lambda: call(ws), fifo)

    assert_names(refused, fifo)
    assert seconds < DEADLINE_S
    assert snapshot(ws.root) == before
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced"


def test_a_fifo_in_the_validation_cache_is_refused(make_tree):
    ws = rendered(make_tree("0.6.4"))
    # bizon's own suite is cached (it reads only files); checks that write to a target never are.
    fifo = plant_fifo(ws.state_dir / "cache" / NAME / "tests.bizon_suite.json")
    before = snapshot(ws.root)

    refused, _ = refusal_within_deadline(lambda: validate_destination(ws, NAME, level="full"), fifo)

    assert_names(refused, fifo)
    # The cache is read after the run's log folder is made; the logs are the only change.
    after = {rel: data for rel, data in snapshot(ws.root).items() if not rel.startswith(".bizon-forge/logs/")}
    assert after == before


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_fifo_journal_is_an_answer_over_the_wire_not_a_hang(make_tree):
    """Every tool takes the lock, which reads a journal left behind: the agent gets a finding, every time."""
    root = make_tree("0.6.4")
    fifo = plant_fifo(root / ".bizon-forge" / "journal.json")
    try:
        async with stdio_client(root) as client:
            with anyio.fail_after(DEADLINE_S):
                result = await client.call_tool("inspect_workspace", {})
    finally:
        set_free(fifo)
    answer = result.structured_content
    assert answer["ok"] is False
    assert [(f["id"], f["file"]) for f in answer["findings"]] == [("workspace.not_a_file", str(fifo))]


def test_read_regular_reads_a_regular_file_and_refuses_every_other_kind(tmp_path):
    (tmp_path / "file").write_bytes(b"x" * 3_000_000)  # more than one read's worth
    assert read_regular(tmp_path / "file") == b"x" * 3_000_000
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing")
    fifo = plant_fifo(tmp_path / "fifo")
    refused, _ = refusal_within_deadline(lambda: read_regular(fifo), fifo)
    assert_names(refused, fifo)
    short = Path(tempfile.mkdtemp())  # a socket's path must be short (108 bytes)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(short / "sock"))
        for path, kind in ((tmp_path, "a folder"), (short / "sock", "a socket")):
            with pytest.raises(Refused) as refused:
                read_regular(path)
            (finding,) = refused.value.findings
            assert finding.id == "workspace.not_a_file" and f"is {kind}," in finding.message, finding
    finally:
        server.close()
        shutil.rmtree(short)
