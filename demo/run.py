"""The main job, end to end: an agent's session with bizon-forge that ends with rows in a SQLite file.

Makes a bizon workspace from PyPI, drives the server over stdio with the official MCP client as an agent
would, shows each step's feedback (a progress bar on the long steps), runs the command the last answer
prints, exactly as printed (a real `bizon run` of the example sync), and prints the rows that landed.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bizon_forge import interpreter, workspace

HERE = Path(__file__).resolve().parent.parent
DEMO = HERE / ".demo"
NAME = "warehouse"
console = Console(highlight=False, width=110)


def show(step: str, result) -> dict:
    data = result.structured_content or json.loads(result.content[0].text)
    ok = data.get("ok", not result.is_error)
    console.print(
        f"[bold]{step}[/bold] -> {'[green]ok' if ok else '[red]not ok'}[/]  ({len(result.content[0].text)} B)"
    )
    for f in data.get("findings", []):
        colour = {"fail": "red", "warn": "yellow", "skip": "dim", "pass": "green"}[f["status"]]
        where = f" {f['file']}:{f.get('line', '')}" if f.get("file") else ""
        console.print(f"  [{colour}]{f['status']:4}[/] {f['id']}{where}: {f['message']}")
    if data.get("summary"):
        console.print(f"  {data['summary']}")
    if data.get("wrote_to"):
        console.print(f"  [dim]the checks wrote to {data['wrote_to']}[/]")
    if data.get("next"):
        console.print(f"  [dim]next: {data['next']}[/]")
    if not ok:
        raise SystemExit(f"{step} failed")
    return data


async def call_with_progress(client: Client, step: str, tool: str, args: dict):
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(step, total=None)

        async def progress(done: float, total: float | None, message: str | None) -> None:
            bar.update(task, completed=done, total=total, description=f"{step}: {message or ''}")

        return await client.call_tool(tool, args, progress_callback=progress)


async def agent(root: Path) -> str:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bizon_forge", "serve", "--workspace", str(root)],
        env=dict(os.environ),
    )
    async with Client(params) as client:
        tools = await client.list_tools()
        console.print(f"server up: {len(tools.tools)} tools: {', '.join(t.name for t in tools.tools)}\n")
        data = show("inspect_workspace", await client.call_tool("inspect_workspace", {}))
        console.print(f"  bizon {data['bizon_version']}: {', '.join(d['name'] for d in data['destinations'])}")
        runner = data["interpreter"]
        console.print(f"  runs bizon with {runner['python']} ({runner['chosen_by']}); a sync: {data['run']}\n")
        spec = {
            "name": NAME,
            "recipe": "sql",
            "write_method": "batch_insert",
            "description": "A SQL warehouse reached through SQLAlchemy (SQLite for the demo).",
            "error_handling": {"transient": ["OperationalError"], "max_retries": 3, "backoff_seconds": 0.5},
            "batching": {"buffer_size_mb": 10},
        }
        show("describe_target", await client.call_tool("describe_target", spec))
        show("render_destination", await client.call_tool("render_destination", {"name": NAME}))
        data = show("apply_registrations", await client.call_tool("apply_registrations", {"name": NAME}))
        console.print("  " + ", ".join(f"{k}: {v}" for k, v in data.get("registrations", {}).items()))
        for edit in data.get("edits", []):
            added = [ln[1:].strip() for ln in edit["diff"].splitlines() if ln.startswith("+") and ln[1:2] != "+"]
            console.print(f"  {edit['path']}: +{len(added)} lines, first: [cyan]{added[0]}[/]")
        show(
            "validate_destination (fast)",
            await call_with_progress(client, "fast", "validate_destination", {"name": NAME}),
        )
        data = show(
            "validate_destination (full)",
            await call_with_progress(client, "full", "validate_destination", {"name": NAME, "level": "full"}),
        )
    return data["next"]


def run_as_printed(root: Path, answer: str) -> Path:
    """The command the last answer printed, run as printed (from another folder, as a user's shell would)."""
    command = answer.split("run it with: ", 1)[1]
    console.print(f"\n[bold]$[/bold] {command.replace(str(HERE), '~/bizon-forge')}")
    elsewhere = DEMO / "elsewhere"
    elsewhere.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], cwd=elsewhere, env=env, capture_output=True, text=True)
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:]
    console.print(f"  exit {done.returncode} in {time.perf_counter() - started:.1f} s: {' '.join(tail)}")
    if done.returncode != 0:
        console.print(done.stderr[-3000:])
        raise SystemExit("bizon run failed")
    return root / "output"  # the example's SQLite path is relative to the folder the command runs bizon from


def print_rows(scratch: Path) -> None:
    files = sorted(scratch.rglob("*.db")) + sorted(scratch.rglob("*.sqlite"))
    files = [f for f in files if f.name != "bizon.sqlite3"]
    if not files:
        raise SystemExit(f"no SQLite file was written under {scratch}")
    with sqlite3.connect(files[0]) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for name in tables:
            cursor = db.execute(f'select * from "{name}"')
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
            shown = [c for c in ("bizon_id", "source_record_id", "bizon_loaded_at", "source_data") if c in columns]
            table = Table(title=f"{files[0].relative_to(DEMO)}: table {name}, {len(rows)} rows, columns {columns}")
            for c in shown:
                table.add_column(c)
            for row in rows:
                record = dict(zip(columns, row, strict=True))
                table.add_row(*(str(record[c])[:40] for c in shown))
            console.print(table)


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    # What `bizon-forge workspace init` does: the tree from PyPI, and its own interpreter in DIR/.venv.
    with console.status("making a bizon 0.6.4 workspace from PyPI, with its own .venv"):
        root = workspace.init(str(DEMO / "workspace"), "0.6.4")
        interpreter.make_venv(root)
    console.print(f"workspace: {root}\n")
    print_rows(run_as_printed(root, anyio.run(agent, root)))


if __name__ == "__main__":
    main()
