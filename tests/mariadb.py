"""A real, throwaway MariaDB server for the sql recipe's tests: mariadb-install-db + mariadbd on a free port, once.

Load it with `pytest_plugins = ("tests.mariadb",)`. `.ci/run` installs Debian's mariadb-server on a fresh
machine (its system service is never needed); the datadir lives in a temporary folder, removed afterwards.
As root, the server runs as the `mysql` user (`--user=mysql`, the datadir owned by that account). Password
authentication is on, so a test can check that the password in a URL never leaks. The `forge` database is
deliberately latin1: whatever a test creates there must ask for utf8mb4 itself.
"""

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
import pytest

from tests.http_server import free_port

USER = "forge"
DATABASE = "forge"


def binary(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((path for path in fallbacks if os.access(path, os.X_OK)), None)


@pytest.fixture(scope="session")
def mariadb_url():
    """A SQLAlchemy URL (pymysql, with a password) to the latin1 `forge` database of a fresh server."""
    install_db = binary("mariadb-install-db", "/usr/bin/mariadb-install-db")
    server = binary("mariadbd", "/usr/sbin/mariadbd")
    if install_db is None or server is None:
        pytest.fail("MariaDB is not installed: run .ci/run, or apt-get install mariadb-server.")
    base = Path(tempfile.mkdtemp(prefix="forge-maria-"))
    as_user: list[str] = []
    admin = pwd.getpwuid(os.geteuid()).pw_name  # root@localhost, or the installing user, via unix_socket
    if os.geteuid() == 0:
        account = pwd.getpwnam("mysql")  # Debian's package creates it
        os.chown(base, account.pw_uid, account.pw_gid)
        as_user = ["--user=mysql"]  # mariadbd refuses root; it drops to this account itself
    data, sock, log = base / "data", base / "mysqld.sock", base / "error.log"

    def tail() -> str:
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    done = subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", *as_user, "--auth-root-authentication-method=socket",
         "--skip-test-db", "--skip-name-resolve"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"mariadb-install-db failed: {done.stderr[-2000:]}\n{done.stdout[-2000:]}")
    port = free_port()
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", *as_user, f"--port={port}", f"--socket={sock}",
         f"--pid-file={base / 'mysqld.pid'}", f"--log-error={log}", "--bind-address=127.0.0.1",
         "--skip-name-resolve", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0",
         "--skip-innodb-doublewrite", "--innodb-buffer-pool-size=64M", "--skip-performance-schema"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    password = secrets.token_hex(16)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"mariadbd exited with {process.returncode}:\n{tail()}")
            try:
                connection = pymysql.connect(unix_socket=str(sock), user=admin, connect_timeout=5)
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mariadbd was not ready after 60 s:\n{tail()}")
                time.sleep(0.1)
        with connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET latin1")
            cursor.execute(f"CREATE USER {USER}@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cursor.execute(f"GRANT ALL ON *.* TO {USER}@'127.0.0.1'")
        yield f"mysql+pymysql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(base, ignore_errors=True)
