"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:27:48.359247
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# naive UTC with microseconds on every database (MySQL's DATETIME keeps none by default)
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "maildelivery_email",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("sent_by", sa.String(length=255), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column(
            "text_body",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "html_body",
            sa.Text()
            .with_variant(mysql.LONGTEXT(), "mariadb")
            .with_variant(mysql.LONGTEXT(), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "headers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("related_type", sa.String(length=64), nullable=True),
        sa.Column("related_id", sa.String(length=64), nullable=True),
        sa.Column("transport", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column(
            "resent_from_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["resent_from_id"],
            ["maildelivery_email.id"],
            name=op.f("fk_maildelivery_email_resent_from_id_maildelivery_email"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maildelivery_email")),
        sa.UniqueConstraint("public_id", name=op.f("uq_maildelivery_email_public_id")),
    )
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maildelivery_email_provider_message_id"),
            ["provider_message_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_maildelivery_email_related", ["related_type", "related_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_maildelivery_email_resent_from_id"), ["resent_from_id"], unique=False
        )
        batch_op.create_index(
            "ix_maildelivery_email_tenant_result_sent",
            ["tenant_id", "result", "sent_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_maildelivery_email_tenant_sent", ["tenant_id", "sent_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_maildelivery_email_tenant_status_sent",
            ["tenant_id", "status", "sent_at"],
            unique=False,
        )

    op.create_table(
        "maildelivery_recipient",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("email_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("address_key", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=3), nullable=False),
        sa.Column("contact_type", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("smtp_code", sa.String(length=16), nullable=True),
        sa.Column("bounce_type", sa.String(length=16), nullable=True),
        sa.Column("status_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["maildelivery_email.id"],
            name=op.f("fk_maildelivery_recipient_email_id_maildelivery_email"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maildelivery_recipient")),
    )
    with op.batch_alter_table("maildelivery_recipient", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maildelivery_recipient_address_key"), ["address_key"], unique=False
        )
        batch_op.create_index(
            "ix_maildelivery_recipient_contact", ["contact_type", "contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_maildelivery_recipient_email_id"), ["email_id"], unique=False
        )

    op.create_table(
        "maildelivery_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("email_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("raw_type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("smtp_code", sa.String(length=16), nullable=True),
        sa.Column("bounce_type", sa.String(length=16), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["maildelivery_email.id"],
            name=op.f("fk_maildelivery_event_email_id_maildelivery_email"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["maildelivery_recipient.id"],
            name=op.f("fk_maildelivery_event_recipient_id_maildelivery_recipient"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maildelivery_event")),
        sa.UniqueConstraint(
            "provider",
            "provider_event_id",
            name=op.f("uq_maildelivery_event_provider_provider_event_id"),
        ),
    )
    with op.batch_alter_table("maildelivery_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maildelivery_event_provider_message_id"),
            ["provider_message_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_maildelivery_event_recipient_id"), ["recipient_id"], unique=False
        )
        batch_op.create_index(
            "ix_maildelivery_event_unmatched", ["email_id", "correlation_id"], unique=False
        )


def downgrade() -> None:
    # dropping a table drops its indexes (MySQL refuses to drop an index a foreign key uses)
    op.drop_table("maildelivery_event")
    op.drop_table("maildelivery_recipient")
    op.drop_table("maildelivery_email")
