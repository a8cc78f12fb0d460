"""A real `bizon-forge serve --http --no-auth` process for the safety tests (loopback, so it may serve without
credentials; tests/test_http_auth.py covers them), on a free port, stopped afterwards."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def http_server(*roots: Path, log: Path, extra: tuple[str, ...] = (), env: dict | None = None):
    """Yield the port of a server that accepts connections; its output goes to `log`."""
    port = free_port()
    args = [sys.executable, "-m", "bizon_forge", "serve", "--http", "--no-auth", "--port", str(port), *extra]
    for root in roots:
        args += ["--workspace", str(root)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("server never listened") from None
                time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
