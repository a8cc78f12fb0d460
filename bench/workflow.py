"""The happy path of a full workflow over stdio, warm, each run in a fresh workspace: latency, answer size."""

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from floors import FloorSampler
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from bizon_forge import workspace

NAME = "bench_target"
# The happy path as the issue counts it; inspect_workspace is measured too but is optional (describe_target's
# answer already says what exists).
STEPS = ("describe", "render", "register", "validate fast", "validate full")


@dataclass
class Call:
    seconds: float
    answer_bytes: int
    ok: bool
    text: str


@dataclass
class Workflow:
    recipe: str
    calls: dict[str, list[Call]] = field(default_factory=dict)  # step -> one Call per measured run
    pending: dict[str, str] = field(default_factory=dict)  # step -> why it could not be measured
    workspaces: list[Path] = field(default_factory=list)

    def median(self, step: str) -> float | None:
        got = self.calls.get(step)
        return statistics.median(c.seconds for c in got) if got else None

    def seconds(self, step: str) -> list[float]:
        return [c.seconds for c in self.calls.get(step, [])]

    def answer_bytes(self, step: str) -> int | None:
        got = self.calls.get(step)
        return round(statistics.median(c.answer_bytes for c in got)) if got else None

    def all_ok(self, step: str) -> bool:
        return all(c.ok for c in self.calls.get(step, []))


def describe_args(recipe: str, name: str = NAME) -> dict:
    args = {"name": name, "recipe": recipe, "description": "Benchmark target."}
    if recipe == "custom":
        args["fields"] = [{"name": "endpoint", "required": True, "description": "Where records go."}]
    if recipe == "http":
        args["full_refresh"] = "delete_first"
    return args


def step_call(step: str, recipe: str, name: str = NAME) -> tuple[str, dict]:
    return {
        "inspect": ("inspect_workspace", {}),
        "describe": ("describe_target", describe_args(recipe, name)),
        "render": ("render_destination", {"name": name}),
        "register": ("apply_registrations", {"name": name}),
        "validate fast": ("validate_destination", {"name": name, "level": "fast"}),
        "validate full": ("validate_destination", {"name": name, "level": "full"}),
    }[step]


async def call(client: Client, tool: str, args: dict) -> Call:
    start = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = time.perf_counter() - start
    text = "".join(c.text for c in result.content if c.type == "text")
    ok = not result.is_error and bool((result.structured_content or {}).get("ok"))
    return Call(seconds=elapsed, answer_bytes=len(text.encode()), ok=ok, text=text)


def why_validation_failed(ws_root: Path, level: str) -> str:
    """The server withholds a crash's message; the validator run in-process says whether it is unfinished."""
    from bizon_forge.validators import validate_destination

    ws = workspace.resolve(str(ws_root), workspace.Settings.from_paths([str(ws_root)]))
    try:
        validate_destination(ws, NAME, level=level)
    except NotImplementedError as error:
        return f"pending: {error}"
    except Exception as error:  # noqa: BLE001 - reported in the table, not hidden
        return f"error: {type(error).__name__}: {error}"
    return "error: the tool failed over MCP but not in-process"


async def measure(root: Path, runs: int, recipe: str, floors: FloorSampler) -> Workflow:
    """One server; run 0 warms it (imports, templates), runs 1..N are measured in fresh workspaces.

    Each measured run samples the floors beside the steps they belong to: a first import of a fresh tree just
    before register, the parts of validation just after validate full.
    """
    roots = [workspace.init(str(root / f"ws{i}")) for i in range(runs + 1)]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bizon_forge", "serve", "--workspace", str(root)],
        env=dict(os.environ),
    )
    flow = Workflow(recipe=recipe, workspaces=roots[1:])
    settings = workspace.Settings.from_paths([str(root)])
    # The server's log (a crash's traceback included) goes to a file, not into the table.
    with (root / "stdio-server.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            for i, ws_root in enumerate(roots):
                for step in ("inspect", *STEPS):
                    if step in flow.pending:
                        continue
                    if i and step == "register":
                        floors.cold_import()
                    tool, args = step_call(step, recipe)
                    got = await call(client, tool, {**args, "workspace": str(ws_root)})
                    if step.startswith("validate") and got.text.startswith("Error executing tool"):
                        flow.pending[step] = why_validation_failed(ws_root, step.split()[1])
                        continue
                    if i:
                        flow.calls.setdefault(step, []).append(got)
                registered = flow.calls.get("register", [])
                if i and registered and registered[-1].ok:
                    floors.validation(workspace.resolve(str(ws_root), settings), NAME)
    return flow
