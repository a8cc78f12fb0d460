"""The happy paths over stdio, warm, each run in fresh workspaces: a destination's and a source's, latency and
answer size of every call."""

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
SOURCE = "bench_source"
# A source's happy path as issue 13 counts it, from nothing to a validated source; no registration step.
SOURCE_STEPS = ("source inspect", "source describe", "source render", "source validate fast", "source validate full")


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


def source_spec(name: str = SOURCE) -> dict:
    """README's Sources kind of API: one stream in pattern A (cursor, pages of 10) behind bearer auth, incremental
    on a field the API filters by; validate_source serves it from its local mock API (pages, a 429 and a 503)."""
    return {
        "name": name,
        "base_url": "https://api.example.com/v1",
        "auth": "bearer",
        "description": "Benchmark source.",
        "streams": [
            {
                "name": "users",
                "endpoint": "/users",
                "pagination": {
                    "pattern": "cursor",
                    "cursor_param": "after",
                    "next_cursor_path": "meta.next",
                    "page_size": 10,
                },
                "cursor_field": "updated_at",
                "updated_after_param": "updated_since",
            }
        ],
    }


def step_call(step: str, recipe: str, name: str = NAME) -> tuple[str, dict]:
    return {
        "source inspect": ("inspect_workspace", {}),
        "source describe": ("describe_source", {"spec": source_spec()}),
        "source render": ("render_source", {"name": SOURCE}),
        "source validate fast": ("validate_source", {"name": SOURCE, "level": "fast"}),
        "source validate full": ("validate_source", {"name": SOURCE, "level": "full"}),
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


def why_validation_failed(ws_root: Path, step: str) -> str:
    """The server withholds a crash's message; the validator run in-process says whether it is unfinished."""
    from bizon_forge.validators import validate_destination
    from bizon_forge.validators.source_validation import validate_source

    ws = workspace.resolve(str(ws_root), workspace.Settings.from_paths([str(ws_root)]))
    level = step.split()[-1]
    try:
        if step.startswith("source"):
            validate_source(ws, SOURCE, level=level)
        else:
            validate_destination(ws, NAME, level=level)
    except NotImplementedError as error:
        return f"pending: {error}"
    except Exception as error:  # noqa: BLE001 - reported in the table, not hidden
        return f"error: {type(error).__name__}: {error}"
    return "error: the tool failed over MCP but not in-process"


async def _path(client: Client, flow: Workflow, steps: tuple[str, ...], ws_root: Path, measured: bool, before=None):
    for step in steps:
        if step in flow.pending:
            continue
        if measured and before:
            before(step)
        tool, args = step_call(step, flow.recipe)
        got = await call(client, tool, {**args, "workspace": str(ws_root)})
        if "validate" in step and got.text.startswith("Error executing tool"):
            flow.pending[step] = why_validation_failed(ws_root, step)
            continue
        if measured:
            flow.calls.setdefault(step, []).append(got)


def _last_ok(flow: Workflow, step: str) -> bool:
    got = flow.calls.get(step, [])
    return bool(got) and got[-1].ok


async def measure(root: Path, runs: int, recipe: str, floors: FloorSampler) -> Workflow:
    """One server; run 0 warms it (imports, templates), runs 1..N are measured in fresh workspaces: the
    destination's path in one, the source's in another.

    Each measured run samples the floors beside the steps they belong to: a first import of a fresh tree just
    before register, the parts of validation just after each validate full.
    """
    roots = [workspace.init(str(root / f"ws{i}")) for i in range(runs + 1)]
    source_roots = [workspace.init(str(root / f"src{i}")) for i in range(runs + 1)]
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
            for i, (ws_root, src_root) in enumerate(zip(roots, source_roots, strict=True)):
                before = lambda step: floors.cold_import() if step == "register" else None  # noqa: E731
                await _path(client, flow, ("inspect", *STEPS), ws_root, bool(i), before)
                if i and _last_ok(flow, "register"):
                    floors.validation(workspace.resolve(str(ws_root), settings), NAME)
                await _path(client, flow, SOURCE_STEPS, src_root, bool(i))
                if i and "source validate full" not in flow.pending:
                    floors.source_validation(workspace.resolve(str(src_root), settings), SOURCE)
    return flow
