"""recipient address prefix index (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:45:00.000000

The log pages search recipients by address prefix (``address_key LIKE 'ann@%'``). PostgreSQL
uses a plain b-tree index for that only under the C collation; a ``varchar_pattern_ops``
index serves it under any collation. MySQL/MariaDB and SQLite use the existing
``ix_maildelivery_recipient_address_key``.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_maildelivery_recipient_address_key_pattern"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            INDEX,
            "maildelivery_recipient",
            ["address_key"],
            postgresql_ops={"address_key": "varchar_pattern_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="maildelivery_recipient")
