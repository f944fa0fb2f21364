"""review and resolution of an email

Revision ID: 0005_review_and_resend
Revises: 0004_event_provider_received
Create Date: 2026-12-01 15:00:00.000000

* ``reviewed_at``, ``reviewed_by``: someone marked the email reviewed; it leaves the
  attention list.
* ``resolved_by_id`` (foreign key to the copy, ``ON DELETE SET NULL``, indexed like
  ``resent_from_id``, which MySQL/MariaDB would otherwise index on their own): the copy whose
  delivery resolved the email; it leaves the attention list too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005_review_and_resend"
down_revision = "0004_event_provider_received"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_maildelivery_email_resolved_by_id_maildelivery_email"
INDEX = "ix_maildelivery_email_resolved_by_id"
# as in 0001: naive UTC with microseconds; big integer keys (INTEGER on SQLite)
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewed_at", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("resolved_by_id", BIG_ID, nullable=True))
        batch_op.create_foreign_key(
            FOREIGN_KEY, "maildelivery_email", ["resolved_by_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(INDEX, ["resolved_by_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.drop_constraint(FOREIGN_KEY, type_="foreignkey")
        batch_op.drop_index(INDEX)
        batch_op.drop_column("resolved_by_id")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("reviewed_at")
