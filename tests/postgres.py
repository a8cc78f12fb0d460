"""A real, throwaway PostgreSQL server for the sql recipe's tests: initdb + pg_ctl on a free port, once.

Load it with `pytest_plugins = ("tests.postgres",)`. `.ci/run` installs Debian's postgresql on a fresh
machine; the cluster lives in a temporary folder, removed afterwards. As root, the server runs as the
`postgres` user (initdb and pg_ctl refuse root). Password authentication is on, so a test can check that
the password in a URL never leaks.
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

USER = "forge"


def bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A SQLAlchemy URL (psycopg2, with a password) to the `postgres` database of a fresh cluster."""
    binaries = bin_dir()
    if binaries is None:
        pytest.fail("PostgreSQL is not installed: run .ci/run, or apt-get install postgresql.")
    base = Path(tempfile.mkdtemp(prefix="forge-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")  # Debian's package creates it
        os.chown(base, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    data, log = base / "data", base / "server.log"

    def run(*cmd: str) -> None:
        done = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(cmd[:2])} failed: {done.stderr[-2000:]}\n{tail}")

    run(
        str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
        "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
    )  # fmt: skip
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        yield f"postgresql+psycopg2://{USER}:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)
