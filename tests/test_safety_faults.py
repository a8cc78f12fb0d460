"""Faults while writing: after each file, on a really full disk, and a process killed mid-write.

The promise: the tree ends byte-identical or complete, never half. A kill between two renames does leave
one file changed on disk; the journal written before the renames lets the next call roll it back.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bizon_forge import atomic, describe, render, workspace
from bizon_forge.findings import Refused
from bizon_forge.registrations import apply_registrations
from bizon_forge.spec import destination as spec
from bizon_forge.workspace import REGISTRATION_FILES, STATE_DIR
from tests.conftest import stdio_client

REPO = Path(__file__).resolve().parent.parent
FIELDS = [{"name": "token", "required": True, "description": "API token", "secret": True}]
REGISTERED = dict.fromkeys(("enum", "import", "union", "factory"), "added")
RENDERED = (  # the order render_destination writes in; the record rides in the same transaction
    "bizon/connectors/destinations/acme/src/__init__.py",
    "bizon/connectors/destinations/acme/src/config.py",
    "bizon/connectors/destinations/acme/src/destination.py",
    "bizon/connectors/destinations/acme/config/acme.example.yml",
    "bizon/connectors/destinations/acme/config/acme.check.yml",
    ".bizon-forge/rendered/acme.json",
)


def tree_state(root: Path) -> dict[str, bytes]:
    """Every file and folder under root (minus git), by content: a new folder or temp file shows too."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__")]
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = b"<dir>"
        for name in filenames:
            p = os.path.join(dirpath, name)
            found[os.path.relpath(p, root)] = Path(p).read_bytes()
    return found


def open_ws(root: Path) -> workspace.Workspace:
    return workspace.resolve(str(root), workspace.Settings.from_paths([str(root)]))


def next_call(root: Path) -> workspace.Workspace:
    """What every tool does first: resolve the workspace, then roll back a write a dead process left."""
    ws = open_ws(root)
    atomic.roll_back_interrupted(ws.state_dir)
    return ws


def described(root: Path, rendered: bool = True) -> workspace.Workspace:
    ws = open_ws(root)
    assert describe.describe_target(ws, spec.DestinationSpec(name="acme", fields=FIELDS)).ok
    if rendered:
        assert render.render_destination(ws, "acme").ok
    return ws


@pytest.fixture
def fault(monkeypatch):
    """install(hook): after each file a transaction writes, atomic calls hook(path); install(None) undoes it."""
    real = atomic.write_text

    def install(hook):
        def write_then_hook(path, text):
            real(path, text)
            hook(path)

        monkeypatch.setattr(atomic, "write_text", real if hook is None else write_then_hook)

    return install


def fail_at(step: int, error, seen: list | None = None):
    count = [0]

    def hook(path):
        count[0] += 1
        if seen is not None:
            seen.append(path)
        if count[0] == step:
            raise error()

    return hook


ERRORS = {
    "crash": lambda: RuntimeError("injected"),
    "enospc": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
}


# -- a failure after each file --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=("0.6.4", "0.5.2"))
def rendered_tree(request, pristine, tmp_path_factory):
    """A tree with `acme` described and rendered, shared by the step tests: each leaves it as it found it."""
    root = tmp_path_factory.mktemp("faults") / request.param
    shutil.copytree(pristine(request.param), root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    described(root)
    return root, tree_state(root)


@pytest.mark.parametrize("kind", ERRORS)
@pytest.mark.parametrize("step", (1, 2, 3))
def test_apply_registrations_fails_after_file(step, kind, rendered_tree, fault):
    root, before = rendered_tree
    assert tree_state(root) == before  # precondition: an earlier case left it whole
    seen = []
    fault(fail_at(step, ERRORS[kind], seen))
    result = apply_registrations(open_ws(root), "acme")
    assert [str(p.relative_to(root)) for p in seen] == list(REGISTRATION_FILES)[:step]
    assert not result.ok and [f.id for f in result.findings] == ["registration.write_failed"], result
    assert tree_state(root) == before


@pytest.fixture(scope="module")
def described_tree(pristine, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "described"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    described(root, rendered=False)
    return root, tree_state(root)


@pytest.mark.parametrize("kind", ERRORS)
@pytest.mark.parametrize("step", range(1, len(RENDERED) + 1))
def test_render_destination_fails_after_file(step, kind, described_tree, fault):
    root, before = described_tree
    assert tree_state(root) == before
    ws = open_ws(root)
    seen = []
    fault(fail_at(step, ERRORS[kind], seen))
    with pytest.raises(Refused) as refused:
        render.render_destination(ws, "acme")
    assert [str(p.relative_to(root)) for p in seen] == list(RENDERED[:step])
    assert [f.id for f in refused.value.findings] == ["render.write_failed"]
    assert tree_state(root) == before  # created files and their new folders are gone again


@pytest.mark.skipif(not shutil.which("chattr"), reason="needs chattr to make a folder immutable")
def test_a_restore_that_fails_is_finished_by_the_next_call(make_tree, fault):
    """The rollback itself fails (folder made immutable): the journal stays, the next call completes it."""
    root = make_tree("0.6.4")
    ws = described(root)
    before = tree_state(root)
    folder = root / "bizon/destination"  # holds the enum file written first

    def freeze_then_fail(path):
        if path.name == "models.py":
            subprocess.run(["chattr", "+i", str(folder)], check=True)
            raise RuntimeError("injected")

    fault(freeze_then_fail)
    try:
        result = apply_registrations(ws, "acme")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert [f.id for f in result.findings] == ["registration.write_failed", "workspace.restore_failed"]
    assert (root / STATE_DIR / atomic.JOURNAL).exists()
    assert tree_state(root) != before  # the enum file could not be put back yet
    fault(None)
    next_call(root)  # the next call of any tool rolls the journal back
    assert tree_state(root) == before


def test_a_planted_journal_cannot_write_outside_the_tree(make_tree, tmp_path):
    """A journal is data from the tree: paths that leave it are ignored when rolling back."""
    root = make_tree("0.6.4")
    ws = described(root)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    journal = {
        "files": {
            "../../victim.txt": None,
            str(victim): None,
            "bizon/../../victim.txt": None,
        },
        "created_dirs": ["..", str(tmp_path)],
    }
    (ws.state_dir / atomic.JOURNAL).write_text(json.dumps(journal))
    next_call(root)
    assert victim.read_text() == "untouched\n" and tmp_path.is_dir()
    assert not (ws.state_dir / atomic.JOURNAL).exists()


# -- a really full disk ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs; skipped where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); ENOSPC is simulated instead")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk so that `leave` bytes stay free."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    size = st.f_bavail * st.f_frsize - leave
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(size, 1))
    return filler


def test_apply_registrations_on_a_full_disk(small_disk, pristine):
    """Sweep the free space a page at a time: every failure leaves the tree as it was, until it completes."""
    root = small_disk / "tree"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True, ignore=shutil.ignore_patterns(".git", "docs"))
    ws = described(root)
    before = tree_state(root)
    # The journal holds the three originals in base64; start the sweep a little below its size.
    journal_pages = sum((root / rel).stat().st_size for rel in REGISTRATION_FILES) * 4 // 3 // 4096
    stopped_at = []
    for pages in range(max(0, journal_pages - 2), 64):
        filler = fill(small_disk, pages * 4096)
        result = apply_registrations(ws, "acme")
        filler.unlink()
        if result.ok:
            break
        assert [f.id for f in result.findings] == ["registration.write_failed"], result.findings
        assert "No space left" in result.findings[0].message
        assert tree_state(root) == before, f"with {pages} pages free"
        where = result.findings[0].file
        if not stopped_at or stopped_at[-1] != where:
            stopped_at.append(where)
    assert result.ok and result.registrations == REGISTERED, "never completed with 64 pages free"
    # Before it completed, the disk ran out at the journal and at each of the three files in turn.
    assert stopped_at == [f"{STATE_DIR}/{atomic.JOURNAL}", *REGISTRATION_FILES]


def test_render_destination_on_a_full_disk(small_disk, pristine):
    root = small_disk / "tree"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True, ignore=shutil.ignore_patterns(".git", "docs"))
    ws = described(root, rendered=False)
    before = tree_state(root)
    failures = 0
    for pages in range(64):
        filler = fill(small_disk, pages * 4096)
        try:
            result = render.render_destination(ws, "acme")
        except Refused as refused:
            assert [f.id for f in refused.findings] == ["render.write_failed"]
            assert tree_state(root) == before, f"with {pages} pages free"
            failures += 1
            continue
        finally:
            filler.unlink()
        break
    assert result.ok and {f.action for f in result.files} == {"created"}
    assert failures >= 2  # at least the journal and one connector file ran out of space first


# -- a process killed mid-write ----------------------------------------------------------------------------

_HANG = """
import sys, time
from pathlib import Path
from bizon_forge import atomic, workspace
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination

root, tool, step, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
count = [0]
write_text = atomic.write_text

def write_then_hang(path, text):
    write_text(path, text)
    count[0] += 1
    if count[0] == step:
        marker.write_text(str(path))
        time.sleep(3600)

atomic.write_text = write_then_hang
ws = workspace.resolve(root, workspace.Settings.from_paths([root]))
if tool == "hold_lock":
    with atomic.workspace_lock(ws.state_dir):
        marker.write_text("locked")
        time.sleep(3600)
run = apply_registrations if tool == "apply" else render_destination
run(ws, "acme")
"""


def spawn_until(marker: Path, *args: str) -> subprocess.Popen:
    """Start the hanging child and wait (polling, no timing assertion) until it reached its fault point."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HANG, *args, str(marker)], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"child exited early: {child.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("child never reached its fault point")
        time.sleep(0.05)
    return child


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()


@pytest.mark.parametrize(("tool", "step"), [("apply", 1), ("apply", 2), ("render", 3)])
def test_killed_mid_write_is_rolled_back_by_the_next_call(tool, step, make_tree, tmp_path):
    root = make_tree("0.6.4")
    described(root, rendered=tool == "apply")
    before = tree_state(root)
    written = list(REGISTRATION_FILES if tool == "apply" else RENDERED)[:step]

    kill(spawn_until(tmp_path / "marker", str(root), tool, str(step)))

    # On disk the kill does leave the tree half-edited: the renames done so far, and the journal.
    after_kill = tree_state(root)
    changed = sorted(rel for rel in set(before) | set(after_kill) if before.get(rel) != after_kill.get(rel))
    assert f"{STATE_DIR}/{atomic.JOURNAL}" in changed
    assert set(written) <= set(changed)
    # Resolving alone writes nothing; the next call's explicit step takes the lock (the dead holder's lock is
    # gone) and rolls the journal back: byte-identical, no temp files, no new folders.
    open_ws(root)
    assert tree_state(root) == after_kill
    next_call(root)
    assert tree_state(root) == before


@pytest.mark.anyio
async def test_over_mcp_a_refused_call_writes_nothing_and_the_next_call_rolls_back(make_tree, tmp_path):
    """The server takes the step for every tool, after its refusals: a call refused the tree leaves even the
    journal alone; the next call it accepts (a read-only one) finds the tree restored."""
    root, elsewhere = make_tree("0.6.4"), make_tree("0.6.4")
    described(root)
    before = tree_state(root)
    kill(spawn_until(tmp_path / "marker", str(root), "apply", "2"))
    half = tree_state(root)
    assert half != before
    async with stdio_client(elsewhere) as client:  # root is outside this server's roots
        refused = (await client.call_tool("inspect_workspace", {"workspace": str(root)})).structured_content
    assert [f["id"] for f in refused["findings"]] == ["workspace.outside_roots"]
    assert tree_state(root) == half
    async with stdio_client(root) as client:
        answer = (await client.call_tool("inspect_workspace", {})).structured_content
    assert answer["ok"], answer
    assert tree_state(root) == before


def test_a_lock_left_by_a_killed_process_blocks_nobody(make_tree, tmp_path):
    root = make_tree("0.6.4")
    ws = described(root)
    child = spawn_until(tmp_path / "marker", str(root), "hold_lock", "0")
    try:
        with pytest.raises(Refused) as busy:
            with atomic.workspace_lock(ws.state_dir, timeout=0.2):
                pass
        assert busy.value.findings[0].id == "workspace.busy"  # the child really holds it
    finally:
        kill(child)
    with atomic.workspace_lock(ws.state_dir, timeout=30):  # the OS released it with the process
        pass
