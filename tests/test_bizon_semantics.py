"""What bizon itself does with a destination, per supported version: each statement of the contract resource
(prompts/contract.md) and the recipes' comments, observed by running that bizon.

A plain destination (no bizon-forge lifecycle code) logs every write_records and finalize call; `bizon run`
of the dummy source drives it; the log and bizon's own job table say what happened.
"""

import sqlite3

import pytest
import yaml

from bizon_forge import workspace
from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec, FieldSpec
from tests.recipe_runs import bizon_run, fast_engine

NAME = "observed"
DESTINATION = """from typing import Tuple, Union

import polars as pl
from loguru import logger

from bizon.destination.destination import AbstractDestination


class ObservedDestination(AbstractDestination):
    def check_connection(self) -> bool:
        return True

    def write_records(self, df_destination_records: pl.DataFrame) -> Tuple[bool, Union[str, None]]:
        logger.info(f"FORGE-EVENT write {df_destination_records.height}")
        if self.config.fail_on_write:
            return False, "planned failure"
        return True, None

    def finalize(self) -> bool:
        logger.info("FORGE-EVENT finalize")
        if self.config.raise_in_finalize:
            raise RuntimeError("planned finalize failure")
        return True
"""


@pytest.fixture(scope="module", params=["0.5.2", "0.6.4"])
def observed(request, pristine, tmp_path_factory):
    import shutil

    tree = tmp_path_factory.mktemp("semantics") / request.param
    shutil.copytree(pristine(request.param), tree, symlinks=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(tree)]))
    fields = [
        FieldSpec(name="fail_on_write", type="bool", default=False, description="Answer (False, msg)."),
        FieldSpec(name="raise_in_finalize", type="bool", default=False, description="Raise in finalize()."),
    ]
    assert describe_target(ws, DestinationSpec(name=NAME, fields=fields)).ok
    assert render_destination(ws, NAME).ok
    (tree / f"bizon/connectors/destinations/{NAME}/src/destination.py").write_text(DESTINATION)
    assert apply_registrations(ws, NAME).ok
    return tree, request.param


def run(observed, tmp_path, **details) -> tuple[int, list[str], str | None]:
    """`bizon run` of the dummy source into the observed destination: exit code, events, the job's status."""
    tree, version = observed
    config = {
        "name": "observe",
        "source": {
            "name": "dummy",
            "stream": "creatures",
            "authentication": {"type": "api_key", "params": {"token": "dummy_key"}},
        },
        "destination": {"name": NAME, "config": {"destination_id": "creatures", **details}},
        "engine": fast_engine(version),
    }
    path = tmp_path / "run.yml"
    path.write_text(yaml.safe_dump(config))
    done = bizon_run(tree, path)
    output = done.stdout + done.stderr
    events = [line.split("FORGE-EVENT ", 1)[1].strip() for line in output.splitlines() if "FORGE-EVENT " in line]
    with sqlite3.connect(tmp_path / "bizon.sqlite3") as db:
        status = db.execute("SELECT status FROM stream_jobs ORDER BY created_at DESC LIMIT 1").fetchone()
    return done.returncode, events, status[0] if status else None


def test_a_normal_run_writes_once_then_finalizes(observed, tmp_path):
    code, events, status = run(observed, tmp_path)
    assert (code, events, status) == (0, ["write 5", "finalize"], "succeeded")


def test_false_from_write_records_is_fatal_on_06_and_not_on_05(observed, tmp_path):
    _, version = observed
    code, events, _ = run(observed, tmp_path, fail_on_write=True)
    if version.startswith("0.5."):
        # The failure is only recorded: the run goes on, finalize() publishes what was staged, exit 0.
        assert (code, events) == (0, ["write 5", "finalize"])
    else:
        assert code != 0 and events == ["write 5"]  # DestinationWriteError; finalize() never runs


def test_an_empty_last_buffer_skips_finalize_on_both(observed, tmp_path):
    code, events, _ = run(observed, tmp_path, buffer_size=0)
    writes = [e for e in events if e.startswith("write")]
    assert code == 0 and len(writes) >= 2, events  # every iteration flushed on its own
    assert "finalize" not in events  # "No records to write ... buffer is empty": bizon returns first


def test_the_job_is_marked_succeeded_before_finalize_runs(observed, tmp_path):
    code, events, status = run(observed, tmp_path, raise_in_finalize=True)
    assert events == ["write 5", "finalize"]
    assert code != 0  # the exception ends the run...
    assert status == "succeeded"  # ...but the job was recorded as succeeded before finalize() raised


def test_bizon_run_reads_the_trees_dotenv_from_any_folder(observed, tmp_path):
    """What `next` teaches: a variable an example references as env://NAME may live in a .env at the tree's root,
    and `bizon run` finds it from another working folder (find_dotenv walks up from bizon/cli/main.py)."""
    tree, _ = observed
    dotenv = tree / ".env"
    dotenv.write_text("FORGE_SEMANTICS_FLAG=true\n")
    try:
        code, events, _ = run(observed, tmp_path, raise_in_finalize="env://FORGE_SEMANTICS_FLAG")
    finally:
        dotenv.unlink()
    assert code != 0 and events == ["write 5", "finalize"]  # the flag came from .env: finalize raised
    config = tmp_path / "run.yml"  # the same config, now without the .env
    done = bizon_run(tree, config)
    assert done.returncode != 0 and "FORGE_SEMANTICS_FLAG" in done.stdout + done.stderr
