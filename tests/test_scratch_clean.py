"""Scratch is left clean (issue 23): every check that writes to the check config's target drops what it wrote
through the destination's drop_written() once it has read it back, and `wrote_to` says what stayed. Each check
config here points at a target that outlives a validation (a folder, a receiver, a SQLite file of the test's
own), as a user's scratch database or bucket does: 10 validations of each recipe leave nothing there."""

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from bizon_forge import connector, workspace
from bizon_forge.describe import describe_target
from bizon_forge.registrations import apply_registrations
from bizon_forge.render import render_destination
from bizon_forge.spec.destination import DestinationSpec
from bizon_forge.validators.fakes.receiver import Receiver
from bizon_forge.validators.probes import contract_probe
from bizon_forge.validators.validation import validate_destination
from tests.broken.install import install_good

pytestmark = pytest.mark.slow
RUNS = 10


def test_the_probes_find_the_drops_file_where_the_validation_reads_it():
    # contract_probe.py runs without bizon-forge: its copy of the variable's name is held equal here.
    assert contract_probe.SCRATCH_VAR == connector.SCRATCH_VAR


def set_config(ws: workspace.Workspace, name: str, which: str = "check", **details) -> None:
    path = ws.root / f"bizon/connectors/destinations/{name}/config/{name}.{which}.yml"
    config = yaml.safe_load(path.read_text())
    config["destination"]["config"].update(details)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def tree(pristine, tmp_path_factory):
    """One tree with a destination of the file and http recipes, the hand-written ndjson and one of the sql
    recipe, each check config pointing at a scratch target of this module's (under `scratch/`)."""
    root = tmp_path_factory.mktemp("clean") / "tree"
    shutil.copytree(pristine("0.6.4"), root, symlinks=True)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(root)]))
    for spec in (
        DestinationSpec(name="lake", recipe="file"),
        DestinationSpec(name="hook", recipe="http", full_refresh="replace_flag"),
        DestinationSpec(name="warehouse", recipe="sql"),
    ):
        assert describe_target(ws, spec).ok and render_destination(ws, spec.name).ok
        assert apply_registrations(ws, spec.name).ok
    install_good(ws)
    scratch = root.parent / "scratch"
    set_config(ws, "lake", directory=str(scratch / "lake"))
    set_config(ws, "ndjson", directory=str(scratch / "ndjson"))
    # One SQLite file every unit of a validation writes at once (as to a user's scratch database): the driver's 5 s
    # wait for a writer's lock is not always enough under load.
    set_config(ws, "warehouse", url=f"sqlite:///{scratch / 'warehouse.db'}?timeout=60")
    receiver = Receiver()
    set_config(ws, "hook", "example", endpoint="https://ingest.example.com/records")
    set_config(ws, "hook", endpoint=receiver.url, staging_directory=str(scratch / "hook-staging"))
    yield ws, scratch, receiver
    receiver.close()


def validate(ws, name: str, runs: int = RUNS) -> tuple[list, float]:
    """One validation at full (the data suite and the smoke runs write the most), then fast ones (the contract
    probe writes): `runs` in all. What a check judges is not asked here (other modules do), only that the checks
    that write ran."""
    started = time.perf_counter()
    results = []
    for n in range(runs):
        result = validate_destination(ws, name, level="full" if n == 0 else "fast", verbose=True, use_cache=False)
        ran = {f.id: f.status for f in result.findings if f.id.startswith(("contract.", "data.", "smoke."))}
        failed = [(f.id, f.message, f.excerpt) for f in result.findings if f.status == "fail"]
        assert ran["contract.finalize"] == "pass" and (n or ran["smoke.bizon_run"] != "skip"), failed
        results.append(result)
    return results, time.perf_counter() - started


@pytest.mark.parametrize("name", ["lake", "hook"])
def test_ten_validations_of_a_recipe_leave_nothing_in_scratch(tree, name):
    ws, scratch, receiver = tree
    results, seconds = validate(ws, name)
    # A recipe passes its own full validation against a target that is not the checks' receiver: for the http
    # recipe, through the HTTP fault proxy (a cut-off answer, a dropped connection, 429s), retried safely.
    assert results[0].ok, [(f.id, f.message) for f in results[0].findings if f.status == "fail"]
    if name == "lake":
        assert everything(scratch / "lake") == []  # the files, their staging, no temporaries
    else:
        assert {i: r for i, r in receiver.stored.items() if r} == {}
        assert everything(scratch / "hook-staging") == []
    for result in results:
        assert "drop_written() removed the" in result.wrote_to and "stayed" not in result.wrote_to, result.wrote_to
    full = results[0].wrote_to
    assert int(full.split("drop_written() removed the ")[1].split()[0]) >= 10, full  # the suite's ids, not one
    print(f"{name}: {RUNS} validations in {seconds:.1f} s")


def test_a_custom_destination_says_what_stayed_until_it_drops_and_then_drops_the_old_too(tree):
    ws, scratch, _ = tree
    folder = scratch / "ndjson"
    destination = ws.root / "bizon/connectors/destinations/ndjson/src/destination.py"
    original = destination.read_text()

    def hook(body: str) -> None:
        anchor = "    def check_connection(self) -> bool:"
        method = f"    def drop_written(self) -> None:\n{body}\n\n"
        destination.write_text(original.replace(anchor, method + anchor, 1))

    # The good destination has no hook: what the contract probe wrote stays, and the answer says so.
    first = validate_destination(ws, "ndjson", use_cache=False)
    assert first.ok and "1 destination_id(s) stayed" in first.wrote_to, first.wrote_to
    assert "has no drop_written()" in first.wrote_to
    # A hook that leaves the records is not taken at its word: read_back() still answers them.
    hook("        self.staging.unlink(missing_ok=True)")
    second = validate_destination(ws, "ndjson", use_cache=False)
    assert second.ok and "2 destination_id(s) stayed" in second.wrote_to, second.wrote_to
    assert "read_back() still answers 3 record(s) after drop_written()" in second.wrote_to
    assert len(everything(folder)) == 2
    # A hook that works drops what this validation wrote and what the two before left.
    hook("        self.target.unlink(missing_ok=True)\n        self.staging.unlink(missing_ok=True)")
    results, seconds = validate(ws, "ndjson", RUNS - 2)
    assert "and 2 that earlier validations left" in results[0].wrote_to, results[0].wrote_to
    assert everything(folder) == []  # after RUNS validations in all
    assert all("stayed" not in r.wrote_to for r in results)
    print(f"ndjson: {RUNS - 2} validations in {seconds:.1f} s")


def test_ten_validations_of_the_sql_recipe_leave_no_forge_table(tree):
    ws, scratch, _ = tree
    results, seconds = validate(ws, "warehouse")
    with sqlite3.connect(scratch / "warehouse.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert [t for t in tables if t.startswith("forge_")] == []
    # At full, the units write one SQLite file at once: the recipe's transactions take the write lock at BEGIN
    # (IMMEDIATE), so each waits its turn instead of failing with "database is locked", and every drop lands.
    assert results[0].ok, [(f.id, f.message) for f in results[0].findings if f.status == "fail"]
    for result in results:
        assert "stayed" not in result.wrote_to, result.wrote_to
    print(f"warehouse: {RUNS} validations in {seconds:.1f} s")
