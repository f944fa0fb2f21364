"""recompute the emails' status and result with the 0.2.0 rules

Revision ID: 0003_email_status_rules
Revises: 0002
Create Date: 2026-12-01 14:45:00.000000

Before 0.2.0 an email's ``status`` looked only for ``bounced``, ``dropped`` and ``deferred``
recipients, then ``opened``: an email whose To recipient was refused (``failed``) and whose
Cc opened it showed ``opened``, and a spam complaint showed nothing. From 0.2.0 the status is
the first of ``bounced``, ``dropped``, ``failed``, ``suppressed``, ``complained``,
``deferred`` that any recipient has, else ``opened`` when one opened or clicked, else empty
(``flask_maildelivery.state.email_status``). This revision recomputes every stored email's
``status`` and ``result`` from its recipients' statuses, in one ``UPDATE`` of correlated
``EXISTS`` subqueries (the same on SQLite, PostgreSQL and MySQL/MariaDB).

The rules are written out here, not imported from ``state.py``: a migration keeps doing what
it did when it was written. ``updated_at`` is left alone: no fact about the email changed,
only how it is summed up.

Downgrade gives back what versions before 0.2.0 can read: recipients and events
``suppressed`` (a status they do not know) become ``dropped``, the nearest they know (not
sent), and ``status`` is recomputed with their rule. ``result`` stays as it is: both rules
count ``suppressed`` and ``dropped`` alike as failures.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_email_status_rules"
down_revision = "0002"
branch_labels = None
depends_on = None

email = sa.table("maildelivery_email", sa.column("id"), sa.column("status"), sa.column("result"))
recipient = sa.table("maildelivery_recipient", sa.column("email_id"), sa.column("status"))
event = sa.table("maildelivery_event", sa.column("type"))

#: Email statuses, most notable first: the first one any recipient has is the email's.
NOTABLE = ("bounced", "dropped", "failed", "suppressed", "complained", "deferred")
#: Before 0.2.0.
OLD_NOTABLE = ("bounced", "dropped", "deferred")
#: Recipients that did not get the email.
FAILURES = ("bounced", "dropped", "suppressed", "failed")
#: Recipients that got it: ``delivered`` or above but below ``bounced`` in the status order.
SUCCESSES = ("delivered", "opened", "clicked", "unsubscribed", "complained")


def _any_recipient(*conditions: sa.ColumnElement[bool]) -> sa.Exists:
    """``EXISTS`` a recipient of the email being updated that meets ``conditions``."""
    return sa.exists().where(recipient.c.email_id == email.c.id, *conditions)


def _status(notable: tuple[str, ...]) -> sa.Case[str]:
    return sa.case(
        *((_any_recipient(recipient.c.status == name), sa.literal(name)) for name in notable),
        (_any_recipient(recipient.c.status.in_(("opened", "clicked"))), sa.literal("opened")),
        else_=sa.literal(""),
    )


def _result() -> sa.Case[str]:
    # the result rule with n recipients: failures == n -> error, failures > 0 -> warning,
    # successes == n -> delivered, any processed or deferred -> processed, else queued;
    # "failed" (the send itself was refused) is kept, and no recipient at all is queued
    return sa.case(
        (email.c.result == "failed", sa.literal("failed")),
        (~_any_recipient(), sa.literal("queued")),
        (~_any_recipient(recipient.c.status.not_in(FAILURES)), sa.literal("error")),
        (_any_recipient(recipient.c.status.in_(FAILURES)), sa.literal("warning")),
        (~_any_recipient(recipient.c.status.not_in(SUCCESSES)), sa.literal("delivered")),
        (
            _any_recipient(recipient.c.status.in_(("processed", "deferred"))),
            sa.literal("processed"),
        ),
        else_=sa.literal("queued"),
    )


def upgrade() -> None:
    # MySQL/MariaDB assign left to right and let a later assignment read an earlier one:
    # neither expression reads the other's column
    op.execute(email.update().values(status=_status(NOTABLE), result=_result()))


def downgrade() -> None:
    op.execute(
        recipient.update().where(recipient.c.status == "suppressed").values(status="dropped")
    )
    op.execute(event.update().where(event.c.type == "suppressed").values(type="dropped"))
    op.execute(email.update().values(status=_status(OLD_NOTABLE)))
