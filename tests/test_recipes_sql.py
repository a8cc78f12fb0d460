"""The sql recipe end to end: rendered over stdio, registered, then `bizon run` of the dummy source into
SQLite, a real PostgreSQL server and DuckDB; the table read back; a second full refresh leaves one copy."""

import orjson
import pytest
import sqlalchemy as sa

from tests.recipe_runs import CONTRACT_COLUMNS, CREATURE_IDS, UNNEST, forge, run_ok, write_run_config

pytest_plugins = ("tests.postgres",)
pytestmark = pytest.mark.anyio


def read(url: str, table: str, schema: str | None = None) -> tuple[list[str], list[dict]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            # No reflection: duckdb-engine's fails under SQLAlchemy 2.1 (no pg_catalog.pg_collation).
            result = connection.execute(sa.select(sa.text("*")).select_from(sa.table(table, schema=schema)))
            rows = [dict(r) for r in result.mappings()]
            return list(result.keys()), rows
    finally:
        engine.dispose()


async def test_sqlite(tree, tmp_path):
    """On both bizon layouts: the example YAML as rendered (a SQLite file relative to where bizon runs)."""
    await forge(tree, "warehouse", "sql")
    config = write_run_config(tree, "warehouse", tmp_path / "run")
    for _ in range(2):
        run_ok(tree, config)
        columns, rows = read(f"sqlite:///{tmp_path / 'run/output/bizon_records.db'}", "warehouse_creatures")
        assert columns == CONTRACT_COLUMNS
        assert sorted(r["source_record_id"] for r in rows) == CREATURE_IDS
    assert {orjson.loads(r["source_data"])["name"] for r in rows} >= {"bizon", "poulpo"}


async def test_postgres_with_unnest_and_a_schema(make_tree, tmp_path, postgres_url):
    tree = make_tree("0.6.4")
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA IF NOT EXISTS forge"))
    engine.dispose()
    await forge(tree, "pg_warehouse", "sql")
    config = write_run_config(
        tree,
        "pg_warehouse",
        tmp_path / "run",
        url=postgres_url,
        db_schema="forge",
        destination_id="creatures",
        **UNNEST,
    )
    password = sa.engine.make_url(postgres_url).password
    for _ in range(2):
        output = run_ok(tree, config)
        assert password not in output
        columns, rows = read(postgres_url, "creatures", schema="forge")
        assert columns == ["id", "name", "age", *CONTRACT_COLUMNS[:-1]]
        assert sorted(str(r["id"]) for r in rows) == CREATURE_IDS
    assert {(r["name"], r["age"]) for r in rows} >= {("bizon", 26), ("croco", 23)}


async def test_duckdb(make_tree, tmp_path):
    tree = make_tree("0.6.4")
    await forge(tree, "duck", "sql")
    url = f"duckdb:///{tmp_path / 'target.duckdb'}"
    config = write_run_config(tree, "duck", tmp_path / "run", url=url)
    for _ in range(2):
        run_ok(tree, config)
        columns, rows = read(url, "duck_creatures")
        assert columns == CONTRACT_COLUMNS
        assert sorted(r["source_record_id"] for r in rows) == CREATURE_IDS
