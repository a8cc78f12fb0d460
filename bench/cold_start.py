"""Cold start: process spawn to a tools/list answer over stdio, bizon-forge against a bare MCPServer."""

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

BARE_SERVER = Path(__file__).with_name("bare_server.py")
HEAVY = ("libcst", "jinja2", "polars", "bizon")  # issue 7: kept off the start-up path
STARTUP_PROBE = f"""
import sys
from bizon_forge.server.app import build_server
from bizon_forge.workspace import Settings
build_server(Settings())
print(" ".join(m for m in {HEAVY!r} if m in sys.modules))
"""


@dataclass
class ColdStart:
    forge: list[float]
    bare: list[float]
    list_bytes: int  # the tools/list result as the client receives it, compact JSON
    tool_count: int
    heavy_at_startup: list[str]

    @property
    def forge_median(self) -> float:
        return statistics.median(self.forge)

    @property
    def bare_median(self) -> float:
        return statistics.median(self.bare)


async def _spawn_to_list(args: list[str], errlog):
    params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))
    start = time.perf_counter()
    async with Client(stdio_client(params, errlog=errlog)) as client:
        listed = await client.list_tools()
        elapsed = time.perf_counter() - start
    return elapsed, listed


async def measure(workspace: Path, runs: int, log: Path) -> ColdStart:
    forge_args = ["-m", "bizon_forge", "serve", "--workspace", str(workspace)]
    forge, bare, listed = [], [], None
    with log.open("w") as errlog:
        # Interleaved, so drift on a busy machine hits both sides alike; an unmeasured pair warms the cache.
        for i in range(runs + 1):
            elapsed_bare, _ = await _spawn_to_list([str(BARE_SERVER)], errlog)
            elapsed_forge, listed = await _spawn_to_list(forge_args, errlog)
            if i:
                bare.append(elapsed_bare)
                forge.append(elapsed_forge)
    wire = listed.model_dump_json(by_alias=True, exclude_none=True)
    probe = subprocess.run([sys.executable, "-c", STARTUP_PROBE], capture_output=True, text=True, check=True)
    return ColdStart(
        forge=forge,
        bare=bare,
        list_bytes=len(wire.encode()),
        tool_count=len(listed.tools),
        heavy_at_startup=probe.stdout.split(),
    )
