"""The sql recipe end to end: rendered over stdio, registered, then `bizon run` of the dummy source into
SQLite, a real PostgreSQL server and DuckDB; the table read back; a second full refresh leaves one copy.

One rendered destination serves all three databases: only its `url` changes.
"""

import orjson
import pytest
import sqlalchemy as sa

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


@pytest.mark.anyio
async def test_sqlite_on_bizon_0_5_2(make_tree, tmp_path):
    tree = make_tree("0.5.2")
    await forge(tree, "warehouse", "sql")
    config = write_run_config(tree, "warehouse", tmp_path)
    url = f"sqlite:///{tmp_path / 'output/bizon_records.db'}"
    assert_two_full_refreshes_leave_one_copy(tree, config, url, "warehouse_creatures")
