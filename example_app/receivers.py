"""Host code on the package's signals: keep invoices and contacts up to date.

* every invoice shows the outcome of its latest email (``email_sent``, ``email_result_changed``);
* a contact whose address hard-bounced is flagged until the address changes
  (``recipient_status_changed``).

Signals arrive after the package committed its own change, so the receivers write in their
own short transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import signals
from flask_maildelivery.models import Email, Recipient

from .models import Contact, Invoice, db


def _commit(statement: Any) -> None:
    try:
        db.session.execute(statement)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def _sync_invoice(email: Email) -> None:
    if email.related_type != "invoice" or not str(email.related_id).isdigit():
        return
    # an older email's late news must not overwrite the outcome of a newer one (a resend)
    _commit(
        sa.update(Invoice)
        .where(
            Invoice.id == int(str(email.related_id)),
            sa.or_(Invoice.email_id.is_(None), Invoice.email_id <= email.id),
        )
        .values(email_id=email.id, email_result=email.result, email_status=email.status)
    )


def on_email_sent(sender: Flask, *, email: Email, **_: Any) -> None:
    """An invoice email went out: show it on the invoice."""
    _sync_invoice(email)


def on_email_result_changed(sender: Flask, *, email: Email, old: str, new: str, **_: Any) -> None:
    """An invoice email's result changed (delivered, warning, error, ...)."""
    _sync_invoice(email)


def on_recipient_status_changed(
    sender: Flask, *, recipient: Recipient, email: Email, old: str, new: str, **_: Any
) -> None:
    """Flag the contact whose address bounced, while it still holds that address."""
    _sync_invoice(email)
    if new != "bounced" or recipient.bounce_type == "soft":
        return
    if not recipient.contact_type or not str(recipient.contact_id).isdigit():
        return
    _commit(
        sa.update(Contact)
        .where(
            Contact.id == int(str(recipient.contact_id)),
            Contact.kind == recipient.contact_type,
            sa.func.lower(Contact.email) == recipient.address.lower(),
        )
        .values(
            bounced_address=recipient.address,
            bounce_reason=recipient.reason,
            bounced_at=datetime.now(UTC).replace(tzinfo=None),
        )
    )


def connect(app: Flask) -> None:
    """Subscribe the receivers for signals sent by ``app`` only."""
    signals.email_sent.connect(on_email_sent, sender=app)
    signals.email_result_changed.connect(on_email_result_changed, sender=app)
    signals.recipient_status_changed.connect(on_recipient_status_changed, sender=app)
