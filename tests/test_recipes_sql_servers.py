"""The sql recipe on real MariaDB and PostgreSQL servers started by the tests: `validate_destination level=full`
with the check config pointed at a scratch database (the data suite: emoji, 100,000-character records,
microseconds, full refresh, incremental, stream routing; data.unreliable_target behind a proxy that drops the
connection mid-flush and mid-publish, a lock held on the target, a wrong password), bugs planted in the rendered
destination that the latter must catch, and a full refresh that never hides the table from a reader polling it.

The MariaDB database is latin1 on purpose: the tables the recipe creates must be utf8mb4 themselves.
"""

import threading
import time

import pytest
import sqlalchemy as sa
import yaml

from bizon_forge import workspace
from bizon_forge.validators.validation import validate_destination
from tests.recipe_runs import CREATURE_IDS, bizon_run, forged_tree, run_ok, write_run_config
from tests.test_recipes_sql import UPSERTED, upserted

pytest_plugins = ("tests.postgres", "tests.mariadb")
NAME = "warehouse"


@pytest.fixture(scope="module")
def warehouse(pristine, tmp_path_factory):
    return forged_tree(pristine, tmp_path_factory, NAME, "sql")


def point_check_config(tree, url: str) -> None:
    """The check config's url at the server's scratch database, kept as the README says: a reference in the YAML,
    its value (which holds a password) in the tree's .env."""
    path = tree / f"bizon/connectors/destinations/{NAME}/config/{NAME}.check.yml"
    config = yaml.safe_load(path.read_text())
    config["destination"]["config"]["url"] = "env://WAREHOUSE_CHECK_URL"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (tree / ".env").write_text(f"WAREHOUSE_CHECK_URL={url}\n")


@pytest.mark.parametrize("server", ["mariadb_url", "postgres_url"])
def test_full_passes_against_the_server_and_reads_every_record_back(warehouse, server, request):
    url = request.getfixturevalue(server)
    point_check_config(warehouse, url)
    ws = workspace.resolve(None, workspace.Settings.from_paths([str(warehouse)]))
    result = validate_destination(ws, NAME, level="full", verbose=True, use_cache=False)
    # This machine's disk is not the server's: a full disk cannot reach it; data.publish_fails makes only
    # bizon-forge's receiver fail (a server's finalize() meets dropped connections in data.unreliable_target).
    not_here = {"data.full_disk", "data.failed_publish", "trap.plaintext_secret", "data.publish_fails"}
    failing = {f.id: f.message for f in result.findings if f.status != "pass" and f.id not in not_here}
    assert result.ok and not failing, failing
    assert {f.id: f.status for f in result.findings if f.id in not_here} == dict.fromkeys(not_here, "skip") | {
        "trap.plaintext_secret": "pass"
    }
    # The server behind a proxy that drops connections mid-flush and mid-publish, and a lock held on the target.
    unreliable = next(f for f in result.findings if f.id == "data.unreliable_target")
    print(unreliable.message)
    assert "COMMIT (answered, answer lost)" in unreliable.message, unreliable.message
    assert "raised after" in unreliable.message, unreliable.message
    assert "a wrong password failed the batch after 1 connection(s)" in unreliable.message, unreliable.message
    assert sa.engine.make_url(url).password not in result.model_dump_json()

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            # The checks wrote here under forge_* and drop_written() removed all of it once read back (issue 23).
            assert [t for t in tables if t.startswith("forge_")] == [], tables
            assert "drop_written() removed the" in result.wrote_to and "stayed" not in result.wrote_to, result.wrote_to
            # Publications cut between RENAME and DROP (the lost-connection case): each next run dropped the copy.
            assert not [t for t in tables if "__old_" in t], tables
    finally:
        engine.dispose()


def test_a_full_refresh_on_mariadb_never_hides_the_table_from_a_reader(warehouse, mariadb_url, tmp_path):
    config = write_run_config(warehouse, NAME, tmp_path, url=mariadb_url, destination_id="polled")
    run_ok(warehouse, config)  # the table exists from here on
    engine = sa.create_engine(mariadb_url)
    stop, reads, errors = threading.Event(), [], []

    def poll():
        # Autocommit, as a dashboard reads: an open transaction would hold a metadata lock that makes any
        # DDL on the table wait (MariaDB's lock_wait_timeout is a year).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            while not stop.is_set():
                try:
                    reads.append(connection.execute(sa.text("SELECT COUNT(*) FROM polled")).scalar())
                except sa.exc.DBAPIError as error:
                    errors.append(str(error.orig))
                time.sleep(0.002)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for _ in range(3):
            run_ok(warehouse, config)
    finally:
        stop.set()
        reader.join()
    with engine.connect() as connection:
        ids = sorted(connection.execute(sa.text("SELECT source_record_id FROM polled")).scalars())
        charsets = connection.execute(  # in a latin1 database (the checks' tables are dropped once read back)
            sa.text(
                "SELECT DISTINCT CCSA.character_set_name FROM information_schema.TABLES T "
                "JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY CCSA "
                "ON CCSA.collation_name = T.table_collation "
                "WHERE T.table_schema = DATABASE() AND T.table_name = 'polled'"
            )
        ).scalars()
        assert set(charsets) == {"utf8mb4"}
    engine.dispose()
    assert not errors, errors[:3]
    assert len(reads) > 50 and set(reads) == {5}, set(reads)
    assert ids == CREATURE_IDS


# What a destination may get wrong against a server that drops connections and holds locks (data.unreliable_target),
# planted in the rendered sql destination and run on PostgreSQL only: the case is the same on both servers. (A wrong
# password retried as transient fails it too, "4 connections for one batch": left out for the suite's time; the
# unplanted test above requires one connection.)
PLANTED = {
    # A commit between clearing the target and putting the staged rows in: a drop in between empties the target.
    "non_atomic_publish": [
        (
            "            target.drop(connection)\n",
            "            with self.engine.begin() as clearing:  # committed on its own\n"
            "                target.drop(clearing)\n",
        )
    ],
    # A database error in finalize() logged and answered False: bizon ignores the answer, the run "succeeds".
    "finalize_swallows_db_error": [("raise RuntimeError(message) from error", "return False")],
    # A batch retried after a COMMIT whose answer was lost, without taking out what that COMMIT wrote.
    "retry_duplicates": [("retried=attempt.retry_state.attempt_number > 1", "retried=False")],
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_planted_failures_against_an_unreliable_server_fail_full(warehouse, postgres_url, bug):
    point_check_config(warehouse, postgres_url)
    source = warehouse / f"bizon/connectors/destinations/{NAME}/src/destination.py"
    original = planted = source.read_text()
    for old, new in PLANTED[bug]:
        assert planted.count(old) == 1, f"the rendered file no longer holds {old!r} once"
        planted = planted.replace(old, new)
    source.write_text(planted)
    try:
        ws = workspace.resolve(None, workspace.Settings.from_paths([str(warehouse)]))
        result = validate_destination(ws, NAME, level="full", verbose=True)
    finally:
        source.write_text(original)
    found = {f.id: f for f in result.findings}
    assert not result.ok
    unreliable = found["data.unreliable_target"]
    print(bug, "->", unreliable.message, "| hint:", unreliable.hint)
    assert unreliable.status == "fail", (unreliable.status, unreliable.message)


# The process killed where a lost connection hurts most: MariaDB between RENAME TABLE (committed on its own) and the
# DROP of the old copy; PostgreSQL inside the publication's transaction, the target dropped and not yet replaced.
CUT_SHORT = {
    "mariadb_url": (
        '                connection.execute(sa.text(f"DROP TABLE {quote.format_table(old)}"))\n',
        '                __import__("os")._exit(3)  # planted: killed between RENAME and DROP\n',
    ),
    "postgres_url": (
        "            target.drop(connection)\n",
        "            target.drop(connection)\n"
        '            __import__("os")._exit(3)  # planted: killed mid-publication\n',
    ),
}


def tables_of(url: str, prefix: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {t for t in sa.inspect(connection).get_table_names() if t.startswith(prefix)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", ["mariadb_url", "postgres_url"])
def test_a_cut_short_publication_leaves_nothing_after_the_next_run_and_staging_is_bizons(
    warehouse, server, request, tmp_path
):
    """0 orphans after the next run; bizon_id indexed; upsert keeps the later write per key; drop_written() leaves
    nothing; a user's table at the staging name is refused and kept."""
    url = request.getfixturevalue(server)
    config = write_run_config(warehouse, NAME, tmp_path, url=url, destination_id="cut")
    run_ok(warehouse, config)
    source = warehouse / f"bizon/connectors/destinations/{NAME}/src/destination.py"
    original = source.read_text()
    old, new = CUT_SHORT[server]
    assert original.count(old) == 1, f"the rendered file no longer holds {old!r} once"
    source.write_text(original.replace(old, new))
    try:
        assert bizon_run(warehouse, config).returncode == 3
    finally:
        source.write_text(original)
    left = tables_of(url, "cut")
    assert left - {"cut"}, left  # the cut left something: an old copy (MariaDB), the staging (PostgreSQL)
    run_ok(warehouse, config)
    assert tables_of(url, "cut") == {"cut"}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            ids = sorted(connection.execute(sa.text("SELECT source_record_id FROM cut")).scalars())
            indexes = sa.inspect(connection).get_indexes("cut")
    finally:
        engine.dispose()
    assert ids == CREATURE_IDS
    assert ["bizon_id"] in [i["column_names"] for i in indexes], indexes
    assert upserted(warehouse, url, tmp_path) == UPSERTED
    assert tables_of(url, "creatures") == set()
