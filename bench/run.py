"""`make bench`: what bizon-forge costs a calling agent, each figure a median beside a floor of the same run.

Writes the table to stdout and bench/results.md; `--readme` also refreshes README.md's Benchmark section.
"""

import argparse
import operator
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
os.environ.setdefault("BIZON_FORGE_CACHE", str(REPO / ".cache"))

import cold_start  # noqa: E402 - after the cache is set: bizon_forge reads it
import floors as floor_runs  # noqa: E402
import many_clients  # noqa: E402
import session as sessions  # noqa: E402
import workflow  # noqa: E402
from report import Row, ratio, seconds, size, table, tokens, verdict, write_readme_section  # noqa: E402

from bizon_forge import workspace  # noqa: E402

# Budgets of issue 7, tools/list of issue 13 (destinations and sources together).
LIST_TOKENS = 2500
PATH_CALLS = 5
PATH_TOKENS = 6000
# A source's path (issue 13: 5 calls). Its tokens: the same budget as a destination's, what one connector may cost
# an agent's context whatever its kind (bench/notes.md says why).
SOURCE_PATH_CALLS = 5
SOURCE_PATH_TOKENS = 6000
COLD_RATIO = 1.2
QUICK_TOOL_S = 0.150  # describe, render; and register beyond its import check
VALIDATE_FAST_S = 1.0
# full runs its parts at once on 2 cores; it must cost no more than running them one after another.
VALIDATE_FULL_RATIO = 1.0
TOOL_NAMES = {
    "inspect": "inspect_workspace",
    "describe": "describe_target",
    "render": "render_destination",
    "register": "apply_registrations",
    "validate fast": "validate_destination fast",
    "validate full": "validate_destination full",
    "source inspect": "inspect_workspace",
    "source describe": "describe_source",
    "source render": "render_source",
    "source validate fast": "validate_source fast",
    "source validate full": "validate_source full",
}


def _toks(n: float) -> str:
    return f"{n:,.0f} tok"


def _times(x: float) -> str:
    return f"{x:.2f}×"


def paired(values: list[float], floors: list[float] | None, op) -> float | None:
    """Median over runs of op(value, its floor): each floor was sampled beside its value, so load cancels."""
    if not values or not floors or len(values) != len(floors):
        return None
    return statistics.median(op(v, f) for v, f in zip(values, floors, strict=True))


def _step_row(
    flow: workflow.Workflow, step: str, floor="", ratio_="", budget="", limit=None, status=None, label=""
) -> Row:
    label = label or f"`{TOOL_NAMES[step]}` warm"
    if step in flow.pending:
        why = flow.pending[step]
        return Row(label, "—", floor, "", budget, "pending" if why.startswith("pending") else f"failed: {why}")
    took, answer = flow.median(step), flow.answer_bytes(step)
    if status is None:
        status = "info" if limit is None else verdict(took, limit)
    if not flow.all_ok(step):
        status += " (answer ok=false)"
    return Row(label, f"{seconds(took)} · {size(answer)}", floor, ratio_, budget, status)


def _path_row(flow: workflow.Workflow, label: str, steps: tuple[str, ...], max_calls: int, max_tokens: int) -> Row:
    measured = [s for s in steps if s in flow.calls]
    path_bytes = sum(flow.answer_bytes(s) for s in measured)
    calls = len(steps)
    status = "met" if calls <= max_calls and tokens(path_bytes) <= max_tokens else "missed"
    if tokens(path_bytes) > max_tokens:
        status = f"missed by {_toks(tokens(path_bytes) - max_tokens)}"
    if len(measured) < calls:
        status += f" so far ({calls - len(measured)} answer(s) pending)"
    names = " → ".join(s.removeprefix("source ") for s in steps)
    return Row(
        f"{label}: {names}",
        f"{calls} calls · {size(path_bytes)}",
        "",
        "",
        f"≤ {max_calls} calls, ≤ {max_tokens:,} tok",
        status,
    )


def _parts_floor(floors, parts: tuple[str, ...], prefix: str = "") -> tuple[list[str], list[float]]:
    """The parts measured, and per run the sum of their samples: the work run one after another."""
    names = [p for p in parts if floors.median(prefix + p) is not None]
    per_run = [sum(run) for run in zip(*(floors.samples[prefix + p] for p in names), strict=False)]
    return names, per_run


def source_rows(flow, floors) -> list[Row]:
    """A source's happy path (issue 13), its calls and the floors of its validation."""
    rows = [
        _step_row(
            flow,
            "source inspect",
            budget="in the source path",
            label="`inspect_workspace` warm (first call of the source path)",
        ),
        _step_row(flow, "source describe", budget="≤ 150 ms", limit=QUICK_TOOL_S),
        _step_row(flow, "source render", budget="≤ 150 ms", limit=QUICK_TOOL_S),
    ]
    for step, parts, budget in (
        ("source validate fast", floor_runs.SOURCE_FAST_PARTS, ""),
        ("source validate full", floor_runs.SOURCE_FULL_PARTS, f"≤ {VALIDATE_FULL_RATIO:.2f}× floor"),
    ):
        names, per_run = _parts_floor(floors, parts, "source ")
        got = paired(flow.seconds(step), per_run, operator.truediv)
        rows.append(
            _step_row(
                flow,
                step,
                floor=f"its parts one after another ({' + '.join(names)}): "
                f"{seconds(statistics.median(per_run)) if per_run else '—'}",
                ratio_=_times(got) if got else "",
                budget=budget,
                status=(verdict(got, VALIDATE_FULL_RATIO, _times) if budget else "info") if got else None,
            )
        )
    rows.append(_path_row(flow, "source happy path", workflow.SOURCE_STEPS, SOURCE_PATH_CALLS, SOURCE_PATH_TOKENS))
    for part in floor_runs.SOURCE_FULL_PARTS:
        if floors.median(f"source {part}") is not None:
            rows.append(
                Row(
                    f"floor: source {part} (as validate_source full runs it)",
                    seconds(floors.median(f"source {part}")),
                    status="floor",
                )
            )
    return rows


def build_rows(cold, flow, floors, crowd) -> list[Row]:
    cold_ratio = paired(cold.forge, cold.bare, operator.truediv)
    rows = [
        Row(
            "cold start: spawn → `tools/list` over stdio",
            seconds(cold.forge_median),
            f"bare MCPServer, 1 tool: {seconds(cold.bare_median)}",
            _times(cold_ratio),
            f"≤ {COLD_RATIO:.2f}× floor",
            verdict(cold_ratio, COLD_RATIO, _times),
        ),
        Row(
            "heavy modules imported by start-up (" + ", ".join(cold_start.HEAVY) + ")",
            ", ".join(cold.heavy_at_startup) or "none",
            "",
            "",
            "none",
            "met" if not cold.heavy_at_startup else "missed",
        ),
        Row(
            f"`tools/list` answer ({cold.tool_count} tools, destinations and sources together)",
            size(cold.list_bytes),
            "",
            "",
            f"≤ {LIST_TOKENS:,} tok",
            verdict(tokens(cold.list_bytes), LIST_TOKENS, _toks),
        ),
        _step_row(flow, "inspect", budget="optional, not in the path"),
        _step_row(flow, "describe", budget="≤ 150 ms", limit=QUICK_TOOL_S),
        _step_row(flow, "render", budget="≤ 150 ms", limit=QUICK_TOOL_S),
    ]
    cold_import = floors.median("import cold")
    over = paired(flow.seconds("register"), floors.samples.get("import cold"), operator.sub)
    rows.append(
        _step_row(
            flow,
            "register",
            floor=f"first import of a fresh tree: {seconds(cold_import)}",
            ratio_=f"floor + {seconds(over)}" if over is not None else "",
            budget="≤ floor + 150 ms",
            status=verdict(over, QUICK_TOOL_S) if over is not None else None,
        )
    )
    contract = floors.median("contract")
    fast_ratio = paired(flow.seconds("validate fast"), floors.samples.get("contract"), operator.truediv)
    rows.append(
        _step_row(
            flow,
            "validate fast",
            floor=f"its contract subprocess alone: {seconds(contract)}" if contract else "",
            ratio_=_times(fast_ratio) if fast_ratio else "",
            budget=f"≤ {seconds(VALIDATE_FAST_S)}",
            limit=VALIDATE_FAST_S,
        )
    )
    parts, per_run = _parts_floor(floors, floor_runs.FULL_PARTS)
    full_ratio = paired(flow.seconds("validate full"), per_run, operator.truediv)
    rows.append(
        _step_row(
            flow,
            "validate full",
            floor=f"its parts one after another ({' + '.join(parts)}): "
            f"{seconds(statistics.median(per_run)) if per_run else '—'}",
            ratio_=_times(full_ratio) if full_ratio else "",
            budget=f"≤ {VALIDATE_FULL_RATIO:.2f}× floor",
            status=verdict(full_ratio, VALIDATE_FULL_RATIO, _times) if full_ratio else None,
        )
    )
    rows.append(_path_row(flow, "destination happy path", workflow.STEPS, PATH_CALLS, PATH_TOKENS))
    rows += [
        Row(
            "floor: `import bizon.common.models` (warm byte-code)",
            seconds(floors.median("import")),
            status="floor",
        ),
        Row(
            f"floor: ruff check + format --check, {floors.ruff_files} files",
            seconds(floors.median("ruff")),
            status="floor",
        ),
    ]
    for part in floor_runs.FULL_PARTS[1:]:
        if floors.median(part) is not None:
            rows.append(
                Row(f"floor: {part} (bare, as validate full runs it)", seconds(floors.median(part)), status="floor")
            )
    rows += source_rows(flow, floors)
    crowd_steps = ["describe", "render", "register"] + (["validate fast"] if crowd.validated else [])
    alone = sum(flow.median(step) or 0.0 for step in crowd_steps)  # one client's path, from the warm runs
    cores = os.cpu_count() or 1
    serial = alone * crowd.clients / cores  # the same work, perfectly spread over every core
    rows += [
        Row(
            f"{crowd.clients} clients at once, stateless HTTP, one server ({' → '.join(crowd_steps)})",
            f"{crowd.succeeded}/{crowd.clients} ok in {seconds(crowd.wall)} · {crowd.throughput:.1f} calls/s",
            f"{crowd.clients} × one client alone / {cores} cores: {seconds(serial)}",
            ratio(crowd.wall, serial),
            "all succeed",
            "met" if not crowd.failures else f"failed: {len(crowd.failures)} problem(s)",
        ),
        Row(
            "slowest of the clients",
            seconds(crowd.slowest),
            f"median client {seconds(crowd.median_client)}",
            ratio(crowd.slowest, crowd.median_client),
            "",
            "info",
        ),
    ]
    return rows


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


async def bench(args, scratch: Path) -> tuple[list[Row], list[str]]:
    say = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"cold start, {args.cold_runs} runs each side")
    pristine = workspace.init(str(scratch / "pristine"))
    cold = await cold_start.measure(pristine, args.cold_runs, scratch / "cold-start.log")
    say(
        f"happy paths (destination: {args.recipe} recipe; source: rest) and their floors, "
        f"1 warm-up + {args.runs} runs in fresh workspaces"
    )
    (scratch / "paths").mkdir()
    (scratch / "floors").mkdir()
    sampler = floor_runs.FloorSampler(scratch / "floors")
    flow = await workflow.measure(scratch / "paths", args.runs, args.recipe, sampler)
    floors = sampler.floors
    validate = "validate fast" not in flow.pending
    say(f"{args.clients} clients over stateless HTTP")
    (scratch / "clients").mkdir()
    crowd = await many_clients.measure(scratch / "clients", args.clients, args.recipe, validate)
    problems = crowd.failures + [f"{k}: {v}" for k, v in {**flow.pending, **floors.errors}.items()]
    session_rows = await replay_sessions(scratch)
    return build_rows(cold, flow, floors, crowd) + session_rows, problems


async def replay_sessions(scratch: Path) -> list[Row]:
    """Issue 25: an agent's whole session per kind, replayed once (its bytes do not vary), and every resource."""
    print("[bench] an agent's session per kind, replayed over stdio", file=sys.stderr, flush=True)
    (scratch / "sessions").mkdir()
    replayed, sizes = await sessions.replay(scratch / "sessions")
    return sessions.rows(replayed, sizes)


async def sessions_only(args, scratch: Path) -> tuple[list[Row], list[str]]:
    return await replay_sessions(scratch), []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per median (default 5)")
    parser.add_argument("--cold-runs", type=int, default=9, help="spawns per side for cold start (default 9)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--recipe", default="file", choices=["custom", "sql", "file", "http"])
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--readme", action="store_true", help="also refresh README.md's Benchmark section")
    parser.add_argument("--keep", action="store_true", help="keep the scratch workspaces")
    parser.add_argument(
        "--sessions", action="store_true", help="only replay the two agent sessions (about 2 min); writes no file"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="bizon-forge-bench-")).resolve()
    try:
        rows, problems = anyio.run(sessions_only if args.sessions else bench, args, scratch)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
            # Byte-code of the scratch trees, kept under the cache by Workspace.env(): never reused.
            shutil.rmtree(workspace.cache_dir() / "pycache" / str(scratch).lstrip("/"), ignore_errors=True)
    if args.sessions:
        print(f"Replayed at {_commit()}; tokens ≈ bytes/4.\n\n" + table(rows))
        return
    header = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at {_commit()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, mcp {version('mcp')}; medians of {args.runs} runs "
        f"({args.cold_runs} for cold start); "
        f"ratios are medians of per-run ratios to a floor sampled beside each run; tokens ≈ bytes/4; "
        f"recipe `{args.recipe}`; the bench took {time.perf_counter() - started:.0f} s.\n"
    )
    body = header + "\n" + table(rows)
    if problems:
        body += "\nProblems:\n" + "".join(f"- {p}\n" for p in problems)
    print(body)
    args.out.write_text("# bizon-forge benchmark\n\n" + body)
    if args.readme:
        notes = HERE / "notes.md"
        write_readme_section(REPO / "README.md", body + ("\n" + notes.read_text() if notes.exists() else ""))


if __name__ == "__main__":
    main()
