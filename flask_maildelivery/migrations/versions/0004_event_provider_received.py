"""index of each provider's events by arrival

Revision ID: 0004_event_provider_received
Revises: 0003_email_status_rules
Create Date: 2026-12-01 15:00:00.000000

* ``ix_maildelivery_event_provider_received`` (``provider``, ``received_at``): the log
  checks that the provider behind the transport still reports (its last event) without
  scanning the events.
"""

from __future__ import annotations

from alembic import op

revision = "0004_event_provider_received"
down_revision = "0003_email_status_rules"
branch_labels = None
depends_on = None

INDEX = "ix_maildelivery_event_provider_received"


def upgrade() -> None:
    with op.batch_alter_table("maildelivery_event", schema=None) as batch_op:
        batch_op.create_index(INDEX, ["provider", "received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("maildelivery_event", schema=None) as batch_op:
        batch_op.drop_index(INDEX)
