"""The sql recipe end to end: rendered over stdio, registered, then `bizon run` of the dummy source into
SQLite, a real PostgreSQL server and DuckDB; the table read back; a second full refresh leaves one copy.

One rendered destination serves all three databases: only its `url` changes.
"""

import json
import subprocess
import sys

import orjson
import pytest
import sqlalchemy as sa

from bizon_forge import workspace
from tests.recipe_runs import (
    CONTRACT_COLUMNS,
    CREATURE_IDS,
    UNNEST,
    forge,
    forged_tree,
    run_ok,
    write_run_config,
)

pytest_plugins = ("tests.postgres",)

# WRITE_SEMANTICS = "upsert" driven as bizon does, with the rendered tests' own helpers (their test judges SQLite):
# stream (ON CONFLICT / ON DUPLICATE KEY / delete+insert per batch), incremental (the same from staging to the
# target), then drop_written() leaves nothing of the destination_id; a user's table at a staging name is refused.
UPSERT_DRIVER = """
import importlib.util, json, sys
from bizon.engine.backend.adapters.sqlalchemy.backend import SQLAlchemyBackend
from bizon.engine.backend.adapters.sqlalchemy.config import SQLiteConfigDetails
from bizon.engine.backend.config import BackendTypes

spec = importlib.util.spec_from_file_location("rendered", sys.argv[1])
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)
url, seen = sys.argv[2], {}
backend = SQLAlchemyBackend(config=SQLiteConfigDetails(database="x", schema="x"), type=BackendTypes.SQLITE_IN_MEMORY)
backend.create_all_tables()
t.WarehouseDestination.WRITE_SEMANTICS = "upsert"
bizon, croco = t.CREATURES[0], t.CREATURES[1]
for mode in ("stream", "incremental"):
    destination = t.make_destination(backend, mode, url=url)
    destination.drop_written()
    batches = [
        t.stamped([{**bizon, "age": 1}, {**bizon, "age": 2}, {**croco, "age": 9}, {**croco, "age": 3}], [5, 5, 9, 3]),
        t.stamped([{**bizon, "age": 0}, {**croco, "age": 4}], [4, 10]),
    ]
    for batch in batches:
        assert destination.write_records(batch) == (True, None)
    if mode == "incremental":
        destination.finalize()
        again = t.make_destination(backend, mode, url=url)
        assert again.write_records(t.stamped([{**bizon, "age": 7}, {**croco, "age": 5}], [1, 11])) == (True, None)
        again.finalize()
    rows = destination.read_back().to_dicts()
    seen[mode] = {r["source_record_id"]: t.orjson.loads(r["source_data"])["age"] for r in rows}
destination.drop_written()
engine = t.sa.create_engine(url)  # a user's table at the staging name: refused, kept
with engine.begin() as connection:
    connection.execute(t.sa.text("CREATE TABLE creatures_temp (note VARCHAR(10))"))
    connection.execute(t.sa.text("INSERT INTO creatures_temp VALUES ('mine')"))
ok, message = t.make_destination(backend, "full_refresh", url=url).write_records(t.records(t.CREATURES))
seen["refused"] = not ok and "creatures_temp exists and is not a staging table of bizon's" in message
with engine.begin() as connection:
    seen["kept"] = connection.execute(t.sa.text("SELECT note FROM creatures_temp")).scalars().all()
    connection.execute(t.sa.text("DROP TABLE creatures_temp"))
engine.dispose()
print(json.dumps(seen))
"""
# bizon: the later of two rows at minute 5 (minutes 4 and 1 come later but are older); croco: minute 10, and in
# incremental minute 11 from a later run.
UPSERTED = {
    "stream": {"9898": 2, "88787": 4},
    "incremental": {"9898": 2, "88787": 5},
    "refused": True,
    "kept": ["mine"],
}


def upserted(tree, url: str, scratch) -> dict:
    """What UPSERT_DRIVER read back per mode, run with the tree's bizon against `url`."""
    rendered = tree / "tests/connectors/destinations/warehouse/test_warehouse_destination.py"
    driver = scratch / "upsert.py"
    driver.write_text(UPSERT_DRIVER)
    env = workspace.resolve(None, workspace.Settings.from_paths([str(tree)])).env()
    done = subprocess.run(
        [sys.executable, str(driver), str(rendered), url], cwd=scratch, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warehouse(pristine, tmp_path_factory):
    return forged_tree(pristine, tmp_path_factory, "warehouse", "sql", validate=True)


def read(url: str, table: str, schema: str | None = None) -> tuple[list[str], list[dict]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            # No reflection: duckdb-engine's fails under SQLAlchemy 2.1 (no pg_catalog.pg_collation).
            result = connection.execute(sa.select(sa.text("*")).select_from(sa.table(table, schema=schema)))
            return list(result.keys()), [dict(r) for r in result.mappings()]
    finally:
        engine.dispose()


def assert_two_full_refreshes_leave_one_copy(tree, config, url, table, schema=None, columns=CONTRACT_COLUMNS):
    for _ in range(2):
        output = run_ok(tree, config)
        got, rows = read(url, table, schema)
        assert got == columns
        key = "source_record_id" if "source_record_id" in columns else "id"
        assert sorted(str(r[key]) for r in rows) == CREATURE_IDS
    return output, rows


def test_sqlite_from_the_example_yaml(warehouse, tmp_path):
    """The example YAML as rendered: a SQLite file relative to the folder bizon runs in."""
    config = write_run_config(warehouse, "warehouse", tmp_path)
    url = f"sqlite:///{tmp_path / 'output/bizon_records.db'}"
    _, rows = assert_two_full_refreshes_leave_one_copy(warehouse, config, url, "warehouse_creatures")
    assert {orjson.loads(r["source_data"])["name"] for r in rows} >= {"bizon", "poulpo"}


def test_postgres_with_unnest_and_a_schema(warehouse, tmp_path, postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA IF NOT EXISTS forge"))
    engine.dispose()
    config = write_run_config(
        warehouse,
        "warehouse",
        tmp_path,
        url=postgres_url,
        db_schema="forge",
        destination_id="creatures",
        **UNNEST,
    )
    columns = ["id", "name", "age", *CONTRACT_COLUMNS[:-1]]
    output, rows = assert_two_full_refreshes_leave_one_copy(
        warehouse, config, postgres_url, "creatures", "forge", columns
    )
    assert sa.engine.make_url(postgres_url).password not in output
    assert {(r["name"], r["age"]) for r in rows} >= {("bizon", 26), ("croco", 23)}


def test_duckdb(warehouse, tmp_path):
    url = f"duckdb:///{tmp_path / 'target.duckdb'}"
    config = write_run_config(warehouse, "warehouse", tmp_path, url=url)
    assert_two_full_refreshes_leave_one_copy(warehouse, config, url, "warehouse_creatures")
    assert upserted(warehouse, url, tmp_path) == UPSERTED  # DuckDB: delete+insert in one transaction


@pytest.mark.anyio
async def test_sqlite_on_bizon_0_5_2(make_tree, tmp_path):
    tree = make_tree("0.5.2")
    await forge(tree, "warehouse", "sql")
    config = write_run_config(tree, "warehouse", tmp_path)
    url = f"sqlite:///{tmp_path / 'output/bizon_records.db'}"
    assert_two_full_refreshes_leave_one_copy(tree, config, url, "warehouse_creatures")
