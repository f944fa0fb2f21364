"""webhook inbox and single-use tokens

Revision ID: 0006_webhook_inbox
Revises: 0005_review_and_resend
Create Date: 2026-12-03 10:00:00.000000

* ``maildelivery_webhook_inbox``: every authenticated webhook request, kept as received
  (a few headers, the raw body) before its events are applied, with its status
  (``pending``, ``applied``, ``failed``), the last error and the number of attempts.
* ``maildelivery_webhook_token``: single-use tokens (Mailgun), unique per provider, so a
  replay is refused by every process sharing the database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0006_webhook_inbox"
down_revision = "0005_review_and_resend"
branch_labels = None
depends_on = None

# as in 0001: naive UTC with microseconds; big integer keys (INTEGER on SQLite)
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BINARY = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "maildelivery_webhook_inbox",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("body", BINARY, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("applied_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maildelivery_webhook_inbox")),
    )
    op.create_index(
        "ix_maildelivery_webhook_inbox_status_received",
        "maildelivery_webhook_inbox",
        ["status", "received_at"],
        unique=False,
    )
    op.create_table(
        "maildelivery_webhook_token",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maildelivery_webhook_token")),
        sa.UniqueConstraint(
            "provider", "token", name=op.f("uq_maildelivery_webhook_token_provider_token")
        ),
    )
    op.create_index(
        op.f("ix_maildelivery_webhook_token_expires_at"),
        "maildelivery_webhook_token",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_maildelivery_webhook_token_expires_at"), table_name="maildelivery_webhook_token"
    )
    op.drop_table("maildelivery_webhook_token")
    op.drop_index(
        "ix_maildelivery_webhook_inbox_status_received", table_name="maildelivery_webhook_inbox"
    )
    op.drop_table("maildelivery_webhook_inbox")
