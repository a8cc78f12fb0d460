"""The main job, end to end: an agent's session with bizon-forge that ends with rows in a SQLite file, then a
source that ends with an API's records in a file.

Makes a bizon workspace from PyPI, drives the server over stdio with the official MCP client as an agent
would, shows each step's feedback (a progress bar on the long steps), runs the command the last answer
prints, exactly as printed (a real `bizon run` of the example sync), and prints the rows that landed.
Then a source for an HTTP API (one stream, cursor pagination, bearer auth): described, rendered, validated
fast and full; the local mock API served from its spec, the check config's printed `bizon run` against it,
and the records that landed, read and counted against what the mock served.
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
import yaml
from mcp import Client, StdioServerParameters
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bizon_forge import interpreter, workspace

HERE = Path(__file__).resolve().parent.parent
# `python demo/run.py [DIR]`: two demos in two folders share nothing (every port is picked free at run time).
DEMO = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE / ".demo"
NAME = "warehouse"
SOURCE = "crm"
# One stream of an HTTP API: cursor pagination (pattern A), bearer auth, incremental on updated_at.
SOURCE_SPEC = {
    "name": SOURCE,
    "base_url": "https://api.crm.example/v1",
    "auth": "bearer",
    "description": "Contacts of a CRM's REST API.",
    "streams": [
        {
            "name": "contacts",
            "endpoint": "/contacts",
            "records_path": "data",
            "id_field": "id",
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


async def agent(client: Client) -> str:
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


async def source_agent(client: Client) -> str:
    """The source's four calls after inspect_workspace; answers the stored spec's path."""
    stream = SOURCE_SPEC["streams"][0]
    console.print(
        f"\n[bold]A source[/bold]: {SOURCE_SPEC['base_url']}{stream['endpoint']}, {stream['pagination']['pattern']} "
        f"pagination, {SOURCE_SPEC['auth']} auth, incremental on {stream['cursor_field']}\n"
    )
    data = show("describe_source", await client.call_tool("describe_source", {"spec": SOURCE_SPEC}))
    spec_file = data["spec_file"]
    data = show("render_source", await client.call_tool("render_source", {"name": SOURCE}))
    for f in data.get("files", []):
        console.print(f"  {f['action']:8} {f['path']}")
    show("validate_source (fast)", await call_with_progress(client, "fast", "validate_source", {"name": SOURCE}))
    show(
        "validate_source (full)",
        await call_with_progress(client, "full", "validate_source", {"name": SOURCE, "level": "full"}),
    )
    return spec_file


async def session(root: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bizon_forge", "serve", "--workspace", str(root)],
        env=dict(os.environ),
    )
    async with Client(params) as client:
        print_rows(run_as_printed(root, await agent(client)))
        spec_file = await source_agent(client)
    land_from_mock(root, spec_file)


def run_as_printed(root: Path, answer: str) -> Path:
    """The command the last answer printed, run as printed (from another folder, as a user's shell would)."""
    command = answer.split("run it with: ", 1)[1]
    console.print(f"\n[bold]$[/bold] {command}")
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


def check_command(root: Path, spec_file: str, check_rel: str, printed: list[str]) -> str:
    """The check config's run through `bizon-forge mock-api SPEC --run --` (the mock on a free port for the run's
    length): the line its header prints when it prints one, else the same command made here."""
    for line in printed:
        if "mock-api" in line and "--run" in line:
            return line
    ws = workspace.Workspace(root=root, settings=workspace.Settings())
    return ws.bizon_command("run", check_rel, through=interpreter.forge_command("mock-api", spec_file, "--run", "--"))


def land_from_mock(root: Path, spec_file: str) -> None:
    """Run the check config against the mock API of the stored spec, served on a free port for the run's length,
    with the command as printed; count what landed in its file destination against what the mock served."""
    check_rel = f"bizon/connectors/sources/{SOURCE}/config/{SOURCE}.check.yml"
    text = (root / check_rel).read_text()
    printed = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#   ")]
    landed_id = yaml.safe_load(text)["destination"]["config"]["destination_id"]
    command = check_command(root, spec_file, check_rel, printed)
    console.print(f"\n[bold]$[/bold] {command}")
    console.print("  (the mock answers a 429 with Retry-After and a 503 on the way, as validate_source's)")
    report = DEMO / "mock-report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["BIZON_FORGE_MOCK_API_REPORT"] = str(report)  # what the mock served, written when the run ends
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], cwd=DEMO / "elsewhere", env=env, capture_output=True, text=True)
    tail = [ln for ln in (done.stdout + done.stderr).strip().splitlines() if "mock API served" in ln][-1:]
    console.print(f"  exit {done.returncode} in {time.perf_counter() - started:.1f} s: {' '.join(tail)}")
    if done.returncode != 0:
        console.print(done.stderr[-3000:])
        raise SystemExit("bizon run of the source failed")
    served = json.loads(report.read_text())["streams"][SOURCE_SPEC["streams"][0]["name"]]
    landed = root / f"{landed_id}.json"
    rows = [json.loads(ln) for ln in landed.read_text().splitlines() if ln.strip()]
    ids = [r["source_record_id"] for r in rows]
    table = Table(title=f"{landed.relative_to(DEMO)}: {len(rows)} records, {len(set(ids))} distinct ids (first 5)")
    for c in ("source_record_id", "name", "updated_at", "bizon_loaded_at"):
        table.add_column(c)
    for row in rows[:5]:
        data = json.loads(row["source_data"])
        table.add_row(
            row["source_record_id"], str(data.get("name")), str(data.get("updated_at")), row["bizon_loaded_at"]
        )
    console.print(table)
    faults = " and a ".join(str(f["status"]) for f in served["faults"])
    same = sorted(ids) == sorted(str(i) for i in served["ids"])
    console.print(
        f"  the mock holds {len(served['ids'])} records; it answered {served['requests']} requests, a {faults} "
        "among them: " + ("[green]every record landed, once[/]" if same else "[red]what landed differs[/]")
    )
    if not same:
        raise SystemExit("the records that landed are not the ones the mock served")


def main() -> None:
    started = time.perf_counter()
    if DEMO.exists() and any(DEMO.iterdir()) and not (DEMO / "workspace").exists():
        raise SystemExit(f"{DEMO} holds something else than an earlier demo: give an absent or empty folder")
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir(parents=True)
    # What `bizon-forge workspace init` does: the tree from PyPI, and its own interpreter in DIR/.venv.
    with console.status("making a bizon 0.6.4 workspace from PyPI, with its own .venv"):
        root = workspace.init(str(DEMO / "workspace"), "0.6.4")
        interpreter.make_venv(root)
    console.print(f"workspace: {root}\n")
    anyio.run(session, root)
    console.print(f"\ndemo took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
