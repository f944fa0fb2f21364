"""the overview's index

Revision ID: 0008_overview
Revises: 0006_webhook_inbox
Create Date: 2026-12-01 16:40:00.000000

* ``ix_maildelivery_email_tenant_sent_outcome`` (``tenant_id``, ``sent_at``, ``result``,
  ``status``, ``id``): the overview counts a tenant's emails of the last 30 days by day,
  result and status, and picks the failed ones to join their recipients, from this index
  alone (an index-only scan on PostgreSQL; no read of the wide email rows).
"""

from __future__ import annotations

from alembic import op

revision = "0008_overview"
down_revision = "0007_address_health"
branch_labels = None
depends_on = None

INDEX = "ix_maildelivery_email_tenant_sent_outcome"


def upgrade() -> None:
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.create_index(
            INDEX, ["tenant_id", "sent_at", "result", "status", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("maildelivery_email", schema=None) as batch_op:
        batch_op.drop_index(INDEX)
