"""All-or-nothing writes: a file by rename, several as a journaled transaction, under a per-workspace lock.

Inside `workspace_lock` every write is confined to the workspace (no symlinked component, nothing read-only),
and `write_all` first saves the originals to a journal in the state folder: a process killed between two
renames leaves that journal behind, and the next call that takes the lock rolls the files back
(`roll_back_interrupted` takes it for a tool that only reads).
"""

import base64
import fcntl
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import cast

from bizon_forge.findings import Refused, failed
from bizon_forge.workspace import read_regular

LOCK_TIMEOUT_S = 60.0
JOURNAL = "journal.json"

log = logging.getLogger(__name__)

# The state folder of the workspace whose lock this thread holds: it roots confinement and the journal.
_held: ContextVar[Path | None] = ContextVar("bizon_forge_held_lock", default=None)


def _unsafe(path: Path, message: str, hint: str | None = None) -> Refused:
    return Refused(failed("workspace.unsafe_path", message, hint, file=str(path)))


def check_writable(path: Path) -> None:
    """Refuse a path that leaves the locked workspace, passes through a symlink, or was made read-only.

    Mode bits are checked rather than os.access(): a server running as root would otherwise
    overwrite a file its user protected with chmod a-w.
    """
    state = _held.get()
    if state is not None:
        root = state.parent
        if not path.is_absolute() or ".." in path.parts or root not in path.parents:
            raise _unsafe(path, f"{path} is outside the workspace {root}.")
        probe = path
        while probe != root:
            if probe.is_symlink():
                raise _unsafe(
                    path,
                    f"{probe.relative_to(root)} is a symlink; bizon-forge writes only real paths.",
                    f"Replace the symlink {probe} with a real file or folder.",
                )
            probe = probe.parent
    # The file, and the folder whose entry a rename replaces (or the nearest one a new file is made under).
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    for probe in ([path] if path.exists() else []) + [folder]:
        if not probe.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise Refused(
                failed(
                    "workspace.read_only",
                    f"{probe} is read-only; bizon-forge leaves protected files alone.",
                    f"Make it writable (chmod u+w {probe}) and call again.",
                    file=str(probe),
                )
            )


def write_text(path: Path, text: str) -> None:
    """Write a temporary file beside `path` and rename it into place: readers see old or new, never half."""
    check_writable(path)
    _replace(path, text.encode("utf-8"))


def _replace(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WriteFailed(Exception):
    """A transaction stopped at `path`; the files it had written are back as they were, except `unrestored`."""

    def __init__(self, path: Path, cause: BaseException, written: list[Path], unrestored: list[Path]):
        self.path, self.cause, self.written, self.unrestored = path, cause, written, unrestored
        super().__init__(f"{path}: {type(cause).__name__}: {cause}")


def _put_back(path: Path, old: tuple[bytes, int] | None) -> None:
    if old is None:
        path.unlink(missing_ok=True)
        return
    content, mode = old
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.restore")
    tmp.write_bytes(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _restore(done: list[Path], originals: dict[Path, tuple[bytes, int] | None]) -> list[Path]:
    """Put back every written file, newest first; the paths that could not be put back."""
    stuck = []
    for path in reversed(done):
        try:
            _put_back(path, originals[path])
        except OSError:
            stuck.append(path)
    return stuck


def _landed(path: Path, text: str | None, old: tuple[bytes, int] | None) -> bool:
    """Whether the change to `path` is on disk although its write raised: an interrupt can land after the rename."""
    try:
        now = read_regular(path) if path.exists() else None
    except (OSError, Refused):
        return False
    return now == (None if text is None else text.encode("utf-8")) and now != (old[0] if old else None)


def _journal(state: Path | None) -> Path | None:
    return state / JOURNAL if state is not None else None


def _missing_dirs(paths) -> list[Path]:
    """Folders a write would create, deepest first, so a rollback can remove them again."""
    missing: set[Path] = set()
    for path in paths:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            missing.add(parent)
            parent = parent.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _remove_dirs(created: list[Path]) -> None:
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: something else lives there now


def recover(state_dir: Path) -> None:
    """Roll back a transaction whose process died between two renames (its journal is still there).

    Paths in the journal are relative to the workspace; one that would leave it is ignored, so a
    journal planted in a cloned tree cannot write outside it.
    """
    journal = state_dir / JOURNAL
    if not journal.exists():
        return
    root = state_dir.parent
    try:
        record = json.loads(read_regular(journal))
        entries = {
            root / rel: None if old is None else (base64.b64decode(old["data"]), int(old["mode"]))
            for rel, old in record["files"].items()
        }
        created = [root / rel for rel in record.get("created_dirs", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("unreadable journal %s left as it is", journal)
        return
    inside = {p: old for p, old in entries.items() if ".." not in p.parts and root in p.parents}
    for path, old in inside.items():
        if any(probe.is_symlink() for probe in (path, *path.parents) if root in probe.parents):
            continue
        for leftover in (*path.parent.glob(f".{path.name}.*.tmp"), path.with_name(f".{path.name}.restore")):
            leftover.unlink(missing_ok=True)
        _put_back(path, old)
    _remove_dirs([d for d in created if ".." not in d.parts and root in d.parents])
    journal.unlink(missing_ok=True)
    log.warning("rolled back an interrupted write of %d file(s) in %s", len(inside), root)


def write_all(changes: Mapping[Path, str | None]) -> None:
    """Apply every change (text, or None to delete) or none: on any failure the originals are put back.

    Unsafe paths are refused (Refused) before anything is written. Any other failure restores the
    originals and raises WriteFailed; KeyboardInterrupt and the like restore and propagate.
    """
    for path in changes:
        check_writable(path)
    originals = {p: (read_regular(p), p.stat().st_mode & 0o7777) if p.exists() else None for p in changes}
    created = _missing_dirs(changes)
    state = _held.get()
    journal = _journal(state)
    if state is not None and journal is not None:
        root = state.parent
        entries = {
            str(p.relative_to(root)): None
            if old is None
            else {"data": base64.b64encode(old[0]).decode(), "mode": old[1]}
            for p, old in originals.items()
        }
        record = {"files": entries, "created_dirs": [str(d.relative_to(root)) for d in created]}
        try:
            _replace(journal, json.dumps(record).encode())
        except OSError as error:  # a full disk stops us here, before any file of the tree was touched
            raise WriteFailed(journal, error, [], []) from error
    done: list[Path] = []
    current: Path | None = None
    unrestored: list[Path] = []
    try:
        for path, text in changes.items():
            current = path
            if text is None:
                path.unlink(missing_ok=True)
            else:
                write_text(path, text)
            done.append(path)
    except BaseException as error:
        landed = current is not None and current not in done and _landed(current, changes[current], originals[current])
        unrestored = _restore([*done, current] if current is not None and landed else done, originals)
        if not unrestored:
            _remove_dirs(created)
        if isinstance(error, Exception) and not isinstance(error, Refused):
            # current is set before the first thing that can fail
            raise WriteFailed(cast(Path, current), error, list(done), unrestored) from error
        raise
    finally:
        if journal is not None and not unrestored:  # a journal left behind is rolled back by the next lock
            journal.unlink(missing_ok=True)


def roll_back_interrupted(state_dir: Path) -> None:
    """If a write's process died mid-transaction (its journal is left), roll it back now; else do nothing.

    Every tool takes this step right after resolving its workspace, and only then: a refused call writes nothing.
    """
    if (state_dir / JOURNAL).exists():
        with workspace_lock(state_dir):  # taking the lock rolls the journal back
            pass


@contextmanager
def workspace_lock(state_dir: Path, timeout: float = LOCK_TIMEOUT_S):
    """Serialise writers to one workspace across server processes.

    The lock is flock() on the workspace folder itself: taking it creates nothing in the tree (a refused
    call leaves no trace), and the OS drops it when its holder dies, so a killed process blocks nobody.
    Not filelock: it locks a file it creates (and truncates), never a folder; a lock file in the tree would break
    the above, and one in our cache would not be shared by servers started with another HOME or
    BIZON_FORGE_CACHE (MCP hosts start servers with minimal environments), letting their writes interleave.
    """
    if state_dir.is_symlink():
        raise _unsafe(state_dir, f"{state_dir} is a symlink; the state folder must be a real folder in the tree.")
    fd = os.open(state_dir.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Refused(
                        failed(
                            "workspace.busy",
                            f"Another call held the workspace lock for over {timeout:.0f} s.",
                            "Retry shortly; a long validation or another agent is writing to this workspace.",
                        )
                    ) from None
                time.sleep(0.05)
        token = _held.set(state_dir)
        try:
            recover(state_dir)
            yield
        finally:
            _held.reset(token)
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
