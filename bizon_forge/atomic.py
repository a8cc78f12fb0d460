"""All-or-nothing writes: one file by rename, several files as a transaction, under a per-workspace lock."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from bizon_forge.findings import Refused, fail

LOCK_TIMEOUT_S = 60.0


def write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path` and rename it into place, so readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A test may set this to a callable(path) that raises, to prove a failure mid-transaction restores everything.
_fault_after_write = None


def write_all(changes: dict[Path, str | None]) -> None:
    """Apply every change (text, or None to delete) or none: on any failure the originals are put back."""
    originals: dict[Path, bytes | None] = {p: (p.read_bytes() if p.exists() else None) for p in changes}
    done: list[Path] = []
    try:
        for path, text in changes.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                write_text(path, text)
            done.append(path)
            if _fault_after_write is not None:
                _fault_after_write(path)
    except BaseException:
        for path in reversed(done):
            old = originals[path]
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.restore")
                tmp.write_bytes(old)
                os.replace(tmp, path)
        raise


@contextmanager
def workspace_lock(state_dir: Path, timeout: float = LOCK_TIMEOUT_S):
    """Serialise writers to one workspace across server processes. The OS drops the lock when its holder dies."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(state_dir / "workspace.lock", timeout=timeout)
    try:
        with lock:
            yield
    except Timeout:
        raise Refused(
            fail(
                "workspace.busy",
                f"Another call held the workspace lock for over {timeout:.0f} s.",
                "Retry shortly; a long validation or another agent is writing to this workspace.",
            )
        ) from None
