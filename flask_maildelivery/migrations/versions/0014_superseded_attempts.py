"""recount the recipients whose send was accepted on a retry

Revision ID: 0014_superseded_attempts
Revises: 0013_address_statistics
Create Date: 2026-12-01 20:10:00.000000

From this version the ``deferred`` events the package records for a failed send attempt
(provider ``maildelivery``, raw type ``attempt-N``) stop counting for a recipient once a
later attempt was accepted for it (``accepted-M``): see
:func:`flask_maildelivery.state.counted_facts`. Before, such a recipient stayed
``deferred``, and its email on the attention list, until a provider reported more. This
revision computes again, from their events and with the same rules as the package, the
state of the recipients still ``deferred`` that have an accepted attempt, then the
``result`` and ``status`` of their emails. Events are not changed.

Downgrade changes nothing: versions before read the recipients' stored state as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from flask_maildelivery.state import (
    HOOK_PROVIDER,
    SendAttempt,
    StatusFact,
    email_result,
    email_status,
    recipient_state,
)

revision = "0014_superseded_attempts"
down_revision = "0013_address_statistics"
branch_labels = None
depends_on = None

email = sa.table(
    "maildelivery_email",
    sa.column("id", sa.Integer()),
    sa.column("result", sa.String()),
    sa.column("status", sa.String()),
)
recipient = sa.table(
    "maildelivery_recipient",
    sa.column("id", sa.Integer()),
    sa.column("email_id", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("status_at", sa.DateTime()),
    sa.column("reason", sa.Text()),
    sa.column("smtp_code", sa.String()),
    sa.column("bounce_type", sa.String()),
)
event = sa.table(
    "maildelivery_event",
    sa.column("recipient_id", sa.Integer()),
    sa.column("provider", sa.String()),
    sa.column("provider_event_id", sa.String()),
    sa.column("type", sa.String()),
    sa.column("raw_type", sa.String()),
    sa.column("occurred_at", sa.DateTime()),
    sa.column("reason", sa.Text()),
    sa.column("smtp_code", sa.String()),
    sa.column("bounce_type", sa.String()),
)

#: Recipients recounted per statement.
CHUNK = 1000


def _chunks(items: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _utc(at: datetime | None) -> datetime | None:
    """Stored times are naive UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _fact(row: Any) -> StatusFact:
    """What one stored event says (as ``flask_maildelivery.ingest`` reads it)."""
    return StatusFact(
        status=row.type,
        at=_utc(row.occurred_at),
        reason=row.reason,
        smtp_code=row.smtp_code,
        bounce_type=row.bounce_type,
        tiebreak=f"{row.provider}:{row.provider_event_id}",
        attempt=SendAttempt.of_event(row.provider, row.type, row.raw_type),
    )


def upgrade() -> None:
    connection = op.get_bind()
    accepted = (
        sa.select(event.c.recipient_id)
        .where(
            event.c.recipient_id == recipient.c.id,
            event.c.provider == HOOK_PROVIDER,
            event.c.raw_type.like("accepted-%"),
        )
        .exists()
    )
    ids = list(
        connection.scalars(
            sa.select(recipient.c.id)
            .where(recipient.c.status == "deferred", accepted)
            .order_by(recipient.c.id)
        )
    )
    changed_emails: set[int] = set()
    for chunk in _chunks(ids):
        facts: dict[int, list[StatusFact]] = defaultdict(list)
        for row in connection.execute(
            sa.select(event).where(event.c.recipient_id.in_(chunk))
        ).all():
            facts[row.recipient_id].append(_fact(row))
        rows = connection.execute(
            sa.select(recipient.c.id, recipient.c.email_id, recipient.c.status).where(
                recipient.c.id.in_(chunk)
            )
        ).all()
        updates = []
        for recipient_id, email_id, old_status in rows:
            # written even when its status stays deferred: the provider's delay may be
            # the one that decides it now, with its own time and reason
            state = recipient_state(facts[recipient_id])
            updates.append(
                {
                    "b_id": recipient_id,
                    "b_status": str(state.status),
                    "b_status_at": state.at.replace(tzinfo=None) if state.at else None,
                    "b_reason": state.reason,
                    "b_smtp_code": state.smtp_code,
                    "b_bounce_type": state.bounce_type,
                }
            )
            if state.status != old_status:
                changed_emails.add(email_id)
        if updates:
            connection.execute(
                recipient.update()
                .where(recipient.c.id == sa.bindparam("b_id"))
                .values(
                    status=sa.bindparam("b_status"),
                    status_at=sa.bindparam("b_status_at"),
                    reason=sa.bindparam("b_reason"),
                    smtp_code=sa.bindparam("b_smtp_code"),
                    bounce_type=sa.bindparam("b_bounce_type"),
                ),
                updates,
            )
    for chunk in _chunks(sorted(changed_emails)):
        statuses: dict[int, list[str]] = defaultdict(list)
        for email_id, status in connection.execute(
            sa.select(recipient.c.email_id, recipient.c.status).where(
                recipient.c.email_id.in_(chunk)
            )
        ).all():
            statuses[email_id].append(status)
        updates = []
        for email_id, old_result, old_status in connection.execute(
            sa.select(email.c.id, email.c.result, email.c.status).where(email.c.id.in_(chunk))
        ).all():
            new_result = email_result(statuses[email_id], send_refused=old_result == "failed")
            new_status = email_status(statuses[email_id])
            if (new_result, new_status) != (old_result, old_status):
                updates.append(
                    {"b_id": email_id, "b_result": str(new_result), "b_status": str(new_status)}
                )
        if updates:
            connection.execute(
                email.update()
                .where(email.c.id == sa.bindparam("b_id"))
                .values(result=sa.bindparam("b_result"), status=sa.bindparam("b_status")),
                updates,
            )


def downgrade() -> None:
    """Nothing to undo: the recounted state is one the earlier rules can hold."""
