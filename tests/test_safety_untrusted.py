"""validate_destination runs code an agent wrote. Through a real server over stdio:

- a write_records that loops forever ends in a timeout finding, and the server answers other calls meanwhile;
- one that prints without end, or megabytes plus a megabyte-long error, ends in a finding of bounded size
  with a capped log;
- one that reads the environment finds none of the server's own secrets in it.

The probe's time limit is lowered (the real mechanism, a shorter number) so a hang costs seconds, not 90.
"""

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import anyio
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.anyio
PROBE_TIMEOUT_S = 6
SECRET = f"s3cr3t-{uuid.uuid4().hex}"

# The server as `bizon-forge serve`, with only the probe's time limit lowered.
SERVE = """
import sys
from bizon_forge.validators import runtime
runtime.PROBE_TIMEOUT_S = int(sys.argv[1])
from bizon_forge.cli import main
main(["serve", *sys.argv[2:]])
"""

DESTINATION = """from typing import Tuple, Union

import polars as pl

from bizon.common.models import SyncMetadata
from bizon.destination.destination import AbstractDestination
from bizon.engine.backend.backend import AbstractBackend
from bizon.monitoring.monitor import AbstractMonitor
from bizon.source.callback import AbstractSourceCallback

from .config import {pascal}DestinationConfig


class {pascal}Destination(AbstractDestination):
    def __init__(
        self,
        sync_metadata: SyncMetadata,
        config: {pascal}DestinationConfig,
        backend: AbstractBackend,
        source_callback: AbstractSourceCallback,
        monitor: AbstractMonitor,
    ):
        super().__init__(
            sync_metadata=sync_metadata,
            config=config,
            backend=backend,
            source_callback=source_callback,
            monitor=monitor,
        )

    def check_connection(self) -> bool:
        return True

    def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:
{body}
"""

BODIES = {
    "looper": """        while True:
            df_destination_records.height
""",
    "flooder": """        import sys

        while True:
            sys.stdout.write("flood " * 10_000 + "\\n")
""",
    "shouter": """        import sys

        for _ in range(500):
            sys.stdout.write("shout " * 10_000 + "\\n")
        return False, "y" * 5_000_000
""",
    "snooper": """        import json
        import os

        env = dict(os.environ)
        print("ENV", json.dumps(env))
        with open({dump!r}, "w") as handle:
            json.dump(env, handle)
        return True, None
""",
}


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
async def agent_tree(pristine, tmp_path_factory):
    """A tree with four registered destinations whose write_records the 'agent' wrote, and a server on it."""
    import shutil

    from mcp import Client, StdioServerParameters

    base = tmp_path_factory.mktemp("untrusted")
    tree = base / "tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    dump = base / "snooper-env.json"
    env = {**os.environ, "BIZON_FORGE_TEST_SECRET": SECRET}
    args = ["-c", SERVE, str(PROBE_TIMEOUT_S), "--workspace", str(tree)]
    async with Client(StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(REPO))) as client:
        for name, body in BODIES.items():
            pascal = name.capitalize()
            r = await client.call_tool("describe_target", {"name": name})
            assert r.structured_content["ok"], r.structured_content
            r = await client.call_tool("render_destination", {"name": name})
            assert r.structured_content["ok"], r.structured_content
            source = DESTINATION.format(pascal=pascal, body=body.format(dump=str(dump)))
            (tree / f"bizon/connectors/destinations/{name}/src/destination.py").write_text(source)
            r = await client.call_tool("apply_registrations", {"name": name})
            assert r.structured_content["ok"], r.structured_content
        yield client, tree, dump


def finding(result, id: str) -> dict:
    found = [f for f in result.structured_content["findings"] if f["id"] == id]
    assert found, result.structured_content
    return found[0]


async def test_an_endless_write_records_times_out_while_the_server_keeps_answering(agent_tree):
    client, tree, _ = agent_tree
    results = {}
    answered_meanwhile = 0

    async def validate(name):
        results[name] = await client.call_tool("validate_destination", {"name": name})

    async with anyio.create_task_group() as tg:
        tg.start_soon(validate, "looper")
        tg.start_soon(validate, "flooder")
        while len(results) < 2:
            r = await client.call_tool("inspect_workspace", {})
            assert r.structured_content["ok"]
            answered_meanwhile += len(results) < 2
            await anyio.sleep(0.2)
    assert answered_meanwhile >= 3  # other calls were answered while both validations hung
    for name in ("looper", "flooder"):
        f = finding(results[name], "contract.write_records")
        assert f["status"] == "fail" and f"did not finish within {PROBE_TIMEOUT_S} s" in f["message"], f
    # The flood was cut: a bounded answer, a capped log.
    from bizon_forge.validators import runtime

    answer = results["flooder"].content[0].text
    assert len(answer) < 20_000, len(answer)
    log = (
        tree
        / results["flooder"].structured_content["log_dir"]
        / finding(results["flooder"], "contract.write_records")["log"]
    )
    assert log.stat().st_size <= runtime.LOG_CAP + runtime.TAIL_CAP + 4096


async def test_megabytes_of_output_and_error_give_a_bounded_finding(agent_tree):
    client, tree, _ = agent_tree
    r = await client.call_tool("validate_destination", {"name": "shouter"})
    f = finding(r, "contract.write_records")
    assert f["status"] == "fail" and len(f["message"]) < 1000, f["message"][:200]
    assert len(r.content[0].text) < 20_000
    from bizon_forge.validators import runtime

    assert (
        tree / r.structured_content["log_dir"] / f["log"]
    ).stat().st_size <= runtime.LOG_CAP + runtime.TAIL_CAP + 4096


async def test_code_reading_the_environment_finds_no_server_secret(agent_tree):
    client, tree, dump = agent_tree
    r = await client.call_tool("validate_destination", {"name": "snooper"})
    assert finding_status(r, "contract.write_records") in ("pass", None), r.structured_content
    seen = json.loads(dump.read_text())
    assert "PATH" in seen and "PYTHONPATH" in seen  # it really dumped the environment it ran with
    assert "BIZON_FORGE_TEST_SECRET" not in seen and SECRET not in dump.read_text()
    # The validator's own scratch places (for the check config) are the only BIZON_FORGE_ names it passes.
    ours = {"BIZON_FORGE_SCRATCH", "BIZON_FORGE_RECEIVER_URL"}
    assert not any(k.startswith(("BIZON_FORGE_", "PYTEST_")) for k in set(seen) - ours), sorted(seen)
    logs = tree / r.structured_content["log_dir"]
    assert all(SECRET not in p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())
    assert SECRET not in r.content[0].text


def finding_status(result, id: str) -> str | None:
    found = [f["status"] for f in result.structured_content["findings"] if f["id"] == id]
    return found[0] if found else None


def _processes(*needles: str) -> list[int]:
    """Pids whose command line holds every needle (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if all(n in cmdline for n in needles):
                found.append(int(entry.name))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_an_endless_write_records_dies_with_a_killed_server(pristine, tmp_path):
    """The host kills the server mid-validation: the agent's endless loop goes with it, it does not run on."""
    import shutil

    from mcp import Client, StdioServerParameters

    tree = tmp_path / "killed-tree"
    shutil.copytree(pristine("0.6.4"), tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    args = ["-c", SERVE, "600", "--workspace", str(tree)]  # a probe timeout the test never reaches
    killed = False
    with anyio.move_on_after(60):
        try:
            async with Client(StdioServerParameters(command=sys.executable, args=args, cwd=str(REPO))) as client:
                assert (await client.call_tool("describe_target", {"name": "looper"})).structured_content["ok"]
                assert (await client.call_tool("render_destination", {"name": "looper"})).structured_content["ok"]
                source = DESTINATION.format(pascal="Looper", body=BODIES["looper"])
                (tree / "bizon/connectors/destinations/looper/src/destination.py").write_text(source)
                assert (await client.call_tool("apply_registrations", {"name": "looper"})).structured_content["ok"]
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.call_tool, "validate_destination", {"name": "looper"})
                    # the probe is in write_records' loop once it has spent a few seconds of CPU there
                    while not (probes := _processes("contract_probe.py", str(tree))) or _cpu_seconds(probes[0]) < 3:
                        await anyio.sleep(0.2)
                    (server,) = [p for p in _processes(str(tree), "--workspace") if p != os.getpid()]
                    os.kill(server, signal.SIGKILL)
                    killed = True
                    tg.cancel_scope.cancel()
        except Exception:  # the client's transport breaks with the server: expected here
            pass
    assert killed, "the validation never reached the agent's write_records"
    for _ in range(50):
        if not _processes("contract_probe.py", str(tree)):
            break
        time.sleep(0.1)
    left = _processes("contract_probe.py", str(tree))
    for pid in left:  # a failing run must not leave the loop eating a core for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, "the agent's loop outlived the server"
