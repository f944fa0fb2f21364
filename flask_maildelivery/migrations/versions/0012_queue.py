"""send queue: queued, scheduled and retried sends

Revision ID: 0012_queue
Revises: 0006_webhook_inbox
Create Date: 2026-12-01 16:30:00.000000

* ``maildelivery_email.send_at``: when a scheduled send is due (``send(..., send_at=...)``).
* ``maildelivery_send_queue``: one row per send not handed to the transport yet (queued for
  a Celery worker, scheduled, or waiting for a retry), with the message as it goes out,
  its state (``waiting``, ``sending``), when it is due and the attempts made. A worker
  claims a row by moving it from ``waiting`` to ``sending``; the row is deleted once the
  transport accepted the message or it failed for good.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0012_queue"
down_revision = "0011_address_trigram"
branch_labels = None
depends_on = None

# as in 0001: naive UTC with microseconds; big integer keys (INTEGER on SQLite)
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BINARY = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("maildelivery_email") as batch:
        batch.add_column(sa.Column("send_at", TIMESTAMP, nullable=True))
    op.create_table(
        "maildelivery_send_queue",
        sa.Column("email_id", BIG_ID, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message", JSON, nullable=False),
        sa.Column("mime", BINARY, nullable=False),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["maildelivery_email.id"],
            name=op.f("fk_maildelivery_send_queue_email_id_maildelivery_email"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("email_id", name=op.f("pk_maildelivery_send_queue")),
    )
    op.create_index(
        "ix_maildelivery_send_queue_state_due",
        "maildelivery_send_queue",
        ["state", "due_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_maildelivery_send_queue_state_due", table_name="maildelivery_send_queue")
    op.drop_table("maildelivery_send_queue")
    with op.batch_alter_table("maildelivery_email") as batch:
        batch.drop_column("send_at")
