"""The benchmarks' databases: each script creates the PostgreSQL (or MySQL/MariaDB) database
its URL names when the server does not have it yet, so a first run needs no manual step."""

from __future__ import annotations

import sqlalchemy as sa

#: Per backend: the database to connect to on the server, and how to ask whether a database
#: exists.
_SERVER = {
    "postgresql": ("postgres", "SELECT 1 FROM pg_database WHERE datname = :name"),
    "mysql": (
        "information_schema",
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name",
    ),
    "mariadb": (
        "information_schema",
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name",
    ),
}


def create_database_if_missing(url: str | sa.URL) -> bool:
    """Create the database ``url`` names when its server lacks it; return whether it did.

    Connects to the server's ``postgres`` database (``information_schema`` on MySQL/MariaDB)
    in autocommit mode, since ``CREATE DATABASE`` cannot run in a transaction. SQLite and other
    backends are left alone (SQLite creates its file on first connection).
    """
    url = sa.make_url(url)
    name = url.database
    backend = url.get_backend_name()
    if backend not in _SERVER or not name:
        return False
    server_database, exists = _SERVER[backend]
    engine = sa.create_engine(url.set(database=server_database), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if connection.scalar(sa.text(exists), {"name": name}) is not None:
                return False
            quoted = connection.dialect.identifier_preparer.quote_identifier(name)
            options = (
                " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                if backend != "postgresql"
                else ""
            )
            connection.exec_driver_sql(f"CREATE DATABASE {quoted}{options}")
    finally:
        engine.dispose()
    print(f"created the missing database {name!r} on {url.render_as_string(hide_password=True)}")
    return True
