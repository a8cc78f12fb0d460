"""Cold start: process spawn to a tools/list answer over stdio, bizon-forge against a bare MCPServer."""

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mcp import Client, StdioServerParameters

BARE_SERVER = Path(__file__).with_name("bare_server.py")


@dataclass
class ColdStart:
    forge: list[float]
    bare: list[float]
    list_bytes: int  # the tools/list result as the client receives it, compact JSON
    tool_count: int

    @property
    def forge_median(self) -> float:
        return statistics.median(self.forge)

    @property
    def bare_median(self) -> float:
        return statistics.median(self.bare)


async def _spawn_to_list(args: list[str]):
    params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ))
    start = time.perf_counter()
    async with Client(params) as client:
        listed = await client.list_tools()
        elapsed = time.perf_counter() - start
    return elapsed, listed


async def measure(workspace: Path, runs: int) -> ColdStart:
    forge_args = ["-m", "bizon_forge", "serve", "--workspace", str(workspace)]
    forge, bare, listed = [], [], None
    # Interleaved, so drift on a shared machine hits both sides alike; one unmeasured pair warms the OS cache.
    for i in range(runs + 1):
        elapsed_bare, _ = await _spawn_to_list([str(BARE_SERVER)])
        elapsed_forge, listed = await _spawn_to_list(forge_args)
        if i:
            bare.append(elapsed_bare)
            forge.append(elapsed_forge)
    wire = listed.model_dump_json(by_alias=True, exclude_none=True)
    return ColdStart(forge=forge, bare=bare, list_bytes=len(wire.encode()), tool_count=len(listed.tools))
