"""What an agent does with a recipe, through the real server over stdio, then a real `bizon run` into it."""

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import yaml

from bizon_forge import workspace
from tests.conftest import stdio_client


# Keeps a run of the dummy source to about a second (bizon waits 2 s before consuming by default).
# bizon 0.5.2's consumer misses the producer's end about one run in three with no delay and then waits
# forever on its queue; a 1 s delay avoids it.
def fast_engine(version: str | None) -> dict:
    delay = 1 if version == "0.5.2" else 0
    return {"runner": {"config": {"consumer_start_delay": delay, "is_alive_check_interval": 1}}}


CONTRACT_COLUMNS = [
    "bizon_id",
    "bizon_extracted_at",
    "bizon_loaded_at",
    "source_record_id",
    "source_timestamp",
    "source_data",
]
CREATURE_IDS = sorted(["9898", "88787", "98", "3333", "56565"])  # the 5 records of the dummy source's creatures
# bizon's own unnest: the dummy creatures' fields as typed columns.
UNNEST = {
    "unnest": True,
    "record_schemas": [
        {
            "destination_id": "creatures",
            "record_schema": [
                {"name": "id", "type": "INTEGER"},
                {"name": "name", "type": "STRING"},
                {"name": "age", "type": "INTEGER"},
            ],
        }
    ],
}


def ok(result) -> dict:
    data = result.structured_content
    assert data and data["ok"], result.content[0].text
    return data


async def forge(tree: Path, name: str, recipe: str, validate: bool = False, **spec) -> dict:
    """describe_target -> render_destination -> apply_registrations (-> validate_destination full)."""
    async with stdio_client(tree) as client:
        described = ok(await client.call_tool("describe_target", {"name": name, "recipe": recipe, **spec}))
        rendered = ok(await client.call_tool("render_destination", {"name": name}))
        ok(await client.call_tool("apply_registrations", {"name": name}))
        validated = None
        if validate:
            validated = ok(await client.call_tool("validate_destination", {"name": name, "level": "full"}))
    return {"describe": described, "render": rendered, "validate": validated}


def forged_tree(pristine, tmp_path_factory, name: str, recipe: str, version: str = "0.6.4", **spec) -> Path:
    """A fresh tree with one destination forged into it, for a module of tests to share (one server spawn)."""
    tree = tmp_path_factory.mktemp("forged") / f"{name}-{version}"
    shutil.copytree(pristine(version), tree, symlinks=True)
    anyio.run(functools.partial(forge, tree, name, recipe, **spec))
    return tree


def write_run_config(tree: Path, name: str, scratch: Path, **config) -> Path:
    """The rendered example YAML, with `config` over its destination settings and a fast engine."""
    example = tree / f"bizon/connectors/destinations/{name}/config/{name}.example.yml"
    run = yaml.safe_load(example.read_text())
    if "staging_directory" in run["destination"]["config"]:  # the http recipe's: never the real ~/.cache
        run["destination"]["config"]["staging_directory"] = str(scratch / "staging")
    run["destination"]["config"].update(config)
    run["engine"] = fast_engine(workspace.resolve(None, workspace.Settings.from_paths([str(tree)])).bizon_version)
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "run.yml"
    path.write_text(yaml.safe_dump(run, sort_keys=False))
    return path


def bizon_run(tree: Path, config: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`bizon run` of the tree's own bizon, from the config's folder (it writes ./bizon.sqlite3 there), with `env`
    (e.g. the variables the config references as env://NAME) over the workspace's scrubbed environment."""
    base = workspace.resolve(None, workspace.Settings.from_paths([str(tree)])).env()
    return subprocess.run(
        [sys.executable, "-m", "bizon.cli.main", "run", str(config)],
        cwd=config.parent,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_ok(tree: Path, config: Path) -> str:
    done = bizon_run(tree, config)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output
