"""indexes of the log pages

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:45:00.000000

* ``ix_maildelivery_email_sent`` (``sent_at``, ``id``): the log lists emails newest first.
  PostgreSQL orders by the trailing columns of ``ix_maildelivery_email_tenant_sent`` only
  after an equality on ``tenant_id``, and ``tenant_id IS NULL`` (a host with one tenant) is
  not one, so without this index every page sorted the whole table.
* ``ix_maildelivery_recipient_address_key_pattern`` (PostgreSQL only): the log searches
  recipients by address prefix (``address_key LIKE 'ann@%'``); PostgreSQL uses a plain b-tree
  for that only under the C collation, a ``varchar_pattern_ops`` index under any collation.
  MySQL/MariaDB and SQLite use the existing ``ix_maildelivery_recipient_address_key``.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PATTERN_INDEX = "ix_maildelivery_recipient_address_key_pattern"


def upgrade() -> None:
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.create_index("ix_maildelivery_email_sent", ["sent_at", "id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            PATTERN_INDEX,
            "maildelivery_recipient",
            ["address_key"],
            postgresql_ops={"address_key": "varchar_pattern_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(PATTERN_INDEX, table_name="maildelivery_recipient")
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.drop_index("ix_maildelivery_email_sent")
