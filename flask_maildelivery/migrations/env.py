"""Alembic environment of flask-maildelivery: the package's tables only, own version table."""

from __future__ import annotations

from alembic import context

from flask_maildelivery.migrations import VERSION_TABLE
from flask_maildelivery.models import Base


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # the host's own tables live in the same database: never touch them
    if type_ == "table":
        return bool(name and name.startswith("maildelivery_")) and name != VERSION_TABLE
    return True


engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
