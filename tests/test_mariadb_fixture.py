"""The throwaway MariaDB server is real: a latin1 database, utf8mb4 tables on request, a password that counts."""

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

pytest_plugins = ("tests.mariadb",)


def test_mariadb_fixture_is_a_real_password_protected_server(mariadb_url):
    engine = sa.create_engine(mariadb_url)
    table = sa.Table(
        "probe",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64)),
        sa.Column("at", mysql.DATETIME(fsp=6)),
        mysql_charset="utf8mb4",
    )
    name, at = "bison 🦬 ñ", dt.datetime(2024, 2, 29, 23, 59, 58, 123456)
    try:
        with engine.begin() as connection:
            assert connection.execute(sa.text("SELECT DATABASE(), @@character_set_database")).one() == (
                "forge",
                "latin1",
            )
            table.create(connection)
            connection.execute(table.insert(), {"id": 1, "name": name, "at": at})
            assert connection.execute(sa.select(table.c.name, table.c.at)).one() == (name, at)
            charset = connection.execute(
                sa.text(
                    "SELECT CCSA.character_set_name FROM information_schema.tables t"
                    " JOIN information_schema.collation_character_set_applicability CCSA"
                    " ON CCSA.collation_name = t.table_collation"
                    " WHERE t.table_schema = 'forge' AND t.table_name = 'probe'"
                )
            ).scalar_one()
            assert charset == "utf8mb4"
    finally:
        engine.dispose()

    wrong = sa.engine.make_url(mariadb_url).set(password="not-the-password")
    bad = sa.create_engine(wrong)
    try:
        with pytest.raises(sa.exc.OperationalError, match="Access denied"), bad.connect():
            pass
    finally:
        bad.dispose()
