"""trigram index of recipient addresses (PostgreSQL)

Revision ID: 0011_address_trigram
Revises: 0006_webhook_inbox
Create Date: 2026-12-04 16:30:00.000000

* ``ix_maildelivery_recipient_address_key_trigram`` (PostgreSQL only): a GIN index with
  ``gin_trgm_ops`` on ``address_key``, so that the log finds an address by any part of it
  (``address_key LIKE '%customer.test%'``, a domain) through the index. It needs the
  ``pg_trgm`` extension: the migration creates it when the database user may; when it may
  not (or the index cannot be built), the migration leaves a warning and does nothing else,
  and the log keeps searching by the start of an address, with a notice saying so. Run the
  upgrade again as a user allowed to ``CREATE EXTENSION pg_trgm`` (or have the extension
  created by one) to get the index.
* SQLite and MySQL/MariaDB: nothing to do; the log searches addresses with
  ``LIKE '%...%'`` over ``ix_maildelivery_recipient_address_key``.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0011_address_trigram"
down_revision = "0008_overview"
branch_labels = None
depends_on = None

TRIGRAM_INDEX = "ix_maildelivery_recipient_address_key_trigram"

logger = logging.getLogger("flask_maildelivery.migrations")


def _create_extension(bind: sa.Connection) -> bool:
    # in a savepoint: a user not allowed to create the extension keeps the upgrade going
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return False
    return True


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if not _create_extension(bind):
        logger.warning(
            "the pg_trgm extension could not be created: the delivery log searches recipient"
            " addresses by their start only; run flask maildelivery db upgrade again as a"
            " database user allowed to CREATE EXTENSION pg_trgm"
        )
        return
    try:
        # a savepoint: pg_trgm installed in a schema outside the search path leaves the
        # operator class unknown; the rest of the upgrade goes on
        with bind.begin_nested():
            op.create_index(
                TRIGRAM_INDEX,
                "maildelivery_recipient",
                ["address_key"],
                postgresql_using="gin",
                postgresql_ops={"address_key": "gin_trgm_ops"},
            )
    except sa.exc.DBAPIError as exc:
        logger.warning(
            "the trigram index of recipient addresses could not be built (%s): the delivery"
            " log searches recipient addresses by their start only",
            exc.orig,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # the extension stays: other tables of the database may use it
        op.execute(sa.text(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}"))
