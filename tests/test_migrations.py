"""The package's own migrations: they build exactly the models' schema, on every database,
with their own version table, and never touch the host's tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery, migrations
from flask_maildelivery.models import Base

from .conftest import AppFactory

PACKAGE_TABLES = {t.name for t in Base.metadata.sorted_tables}


def _built_on(obj: object, dialect: str) -> bool:
    """Whether ``obj`` is created on ``dialect`` (an index may be limited by ``ddl_if``)."""
    ddl_if = getattr(obj, "_ddl_if", None)
    return ddl_if is None or ddl_if.dialect is None or ddl_if.dialect == dialect


def _diff(engine: sa.Engine) -> list[object]:
    dialect = engine.dialect.name
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, reflected, compare_to: (
                    (type_ != "table" or name in PACKAGE_TABLES)
                    and (reflected or _built_on(obj, dialect))
                ),
            },
        )
        return list(compare_metadata(context, Base.metadata))


def test_migrations_and_models_agree(schema: sa.Engine) -> None:
    Base.metadata.drop_all(schema)
    try:
        migrations.upgrade(schema)
        assert migrations.current(schema) == migrations.head()
        assert _diff(schema) == []
        migrations.downgrade(schema)
        assert migrations.current(schema) is None
        assert PACKAGE_TABLES.isdisjoint(sa.inspect(schema).get_table_names())
    finally:
        with schema.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        Base.metadata.drop_all(schema)
        Base.metadata.create_all(schema)


def test_cli_upgrade_and_downgrade_leave_host_tables_alone(
    make_app: AppFactory, schema: sa.Engine
) -> None:
    db = SQLAlchemy()

    class Invoice(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "host_invoice_for_migration_test"
        id = sa.Column(sa.Integer, primary_key=True)

    app: Flask = make_app(db=db)
    Base.metadata.drop_all(schema)
    try:
        with app.app_context():
            db.create_all()
        runner = app.test_cli_runner()
        result = runner.invoke(args=["maildelivery", "db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert f"maildelivery schema at {migrations.head()}" in result.output
        tables = set(sa.inspect(schema).get_table_names())
        assert PACKAGE_TABLES | {migrations.VERSION_TABLE, Invoice.__tablename__} <= tables
        assert "alembic_version" not in tables  # the host's own Alembic table is not ours

        result = runner.invoke(args=["maildelivery", "db", "current"])
        assert result.output.strip() == migrations.head()
        result = runner.invoke(args=["maildelivery", "db", "downgrade"])
        assert result.exit_code == 0, result.output
        tables = set(sa.inspect(schema).get_table_names())
        assert PACKAGE_TABLES.isdisjoint(tables)
        assert Invoice.__tablename__ in tables
    finally:
        with app.app_context():
            db.drop_all()
        with schema.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        Base.metadata.drop_all(schema)
        Base.metadata.create_all(schema)
    assert MailDelivery.state(app).db is db
