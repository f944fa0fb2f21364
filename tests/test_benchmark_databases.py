"""The benchmarks create the database their URL names when the server lacks it: tried on each
test database's server with a new database name, dropped afterwards."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from benchmarks.database_setup import create_database_if_missing


def drop_database(url: sa.URL) -> None:
    postgresql = url.get_backend_name() == "postgresql"
    server = url.set(database="postgres" if postgresql else "information_schema")
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            quoted = connection.dialect.identifier_preparer.quote_identifier(url.database or "")
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")
    finally:
        engine.dispose()


def test_a_missing_database_is_created_once(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # SQLite makes its file on first connection: nothing to create
        assert create_database_if_missing(url) is False
        assert capsys.readouterr().out == ""
        return
    new = url.set(database=f"md_bench_{secrets.token_hex(4)}")
    try:
        assert create_database_if_missing(new) is True
        assert f"created the missing database {new.database!r}" in capsys.readouterr().out
        engine = sa.create_engine(new)
        try:
            with engine.connect() as connection:
                assert connection.scalar(sa.text("SELECT 1")) == 1
        finally:
            engine.dispose()
        assert create_database_if_missing(new) is False
        assert capsys.readouterr().out == ""
    finally:
        drop_database(new)
