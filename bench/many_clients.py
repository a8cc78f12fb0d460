"""Many clients at once through one stateless streamable-HTTP server, each making its own destination."""

import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from mcp import Client

from bizon_forge import registry, workspace

READY_TIMEOUT_S = 30


@dataclass
class Crowd:
    clients: int
    wall: float = 0.0
    per_client: list[float] = field(default_factory=list)
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    validated: bool = False  # whether each client also ran validate fast

    @property
    def succeeded(self) -> int:
        return self.clients - len({f.split(":")[0] for f in self.failures})

    @property
    def throughput(self) -> float:
        return self.calls / self.wall if self.wall else 0.0

    @property
    def slowest(self) -> float:
        return max(self.per_client, default=0.0)

    @property
    def median_client(self) -> float:
        return statistics.median(self.per_client) if self.per_client else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_listening(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the HTTP server exited with {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the HTTP server did not listen on {port} within {READY_TIMEOUT_S} s")


def _steps(name: str, recipe: str, validate: bool) -> list[tuple[str, dict]]:
    from workflow import describe_args

    steps = [
        ("describe_target", describe_args(recipe, name)),
        ("render_destination", {"name": name}),
        ("apply_registrations", {"name": name}),
    ]
    if validate:
        steps.append(("validate_destination", {"name": name, "level": "fast"}))
    return steps


async def _client(url: str, label: str, recipe: str, validate: bool, crowd: Crowd) -> None:
    start = time.perf_counter()
    try:
        async with Client(url) as client:
            for tool, args in _steps(label, recipe, validate):
                result = await client.call_tool(tool, {**args, "workspace": label})
                crowd.calls += 1
                content = result.structured_content or {}
                if result.is_error or not content.get("ok"):
                    text = "".join(c.text for c in result.content if c.type == "text")
                    crowd.failures.append(f"{label}: {tool} answered {text[:300]}")
                    return
    except Exception as error:  # noqa: BLE001 - a failed client is a row in the table
        crowd.failures.append(f"{label}: {type(error).__name__}: {error}")
        return
    finally:
        crowd.per_client.append(time.perf_counter() - start)


def _check_isolation(root: Path, labels: list[str], crowd: Crowd) -> None:
    """Each tree holds its own destination fully registered and nobody else's."""
    for label in labels:
        reg = registry.read(workspace.Workspace(root=root / label, settings=workspace.Settings()))
        ours = reg.registered(label)
        foreign = sorted(v for v in reg.enum.values() if v and v.startswith("client_") and v != label)
        if not all(ours.values()):
            crowd.failures.append(f"{label}: registrations incomplete: {ours}")
        if foreign:
            crowd.failures.append(f"{label}: holds other clients' destinations: {foreign}")


async def measure(root: Path, clients: int, recipe: str, validate: bool) -> Crowd:
    labels = [f"client_{i:02d}" for i in range(1, clients + 1)]
    for label in labels:
        workspace.init(str(root / label))
    port = _free_port()
    log = root.parent / "http-server.log"
    cmd = [sys.executable, "-m", "bizon_forge", "serve", "--http", "--stateless", "--no-auth", "--port", str(port)]
    with log.open("w") as sink:
        server = subprocess.Popen([*cmd, "--workspace", str(root)], stdout=sink, stderr=sink, env=dict(os.environ))
    crowd = Crowd(clients=clients, validated=validate)
    try:
        _wait_until_listening(port, server, log)
        url = f"http://127.0.0.1:{port}/mcp"
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for label in labels:
                tg.start_soon(_client, url, label, recipe, validate, crowd)
        crowd.wall = time.perf_counter() - start
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    _check_isolation(root, labels, crowd)
    return crowd
