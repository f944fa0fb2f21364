"""The package's own Alembic migrations (version table ``maildelivery_alembic_version``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

#: Alembic's version table for this package: separate from the host's own migrations.
VERSION_TABLE = "maildelivery_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).parent)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration that migrates the package's tables on ``engine``."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the package's migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Revert the package's migrations down to ``revision``."""
    command.downgrade(alembic_config(engine), revision)


def head() -> str | None:
    """The newest revision of the package's migrations."""
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return ScriptDirectory.from_config(cfg).get_current_head()


def current(engine: Engine) -> Any:
    """The revision the database is at (``None`` before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
