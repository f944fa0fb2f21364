"""Emails sent and read back for the webhook tests: what a send stored, what an event
changed."""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa

from flask_maildelivery.events import normalize_message_id
from flask_maildelivery.extension import MailDelivery
from flask_maildelivery.models import Email, Event, Recipient, WebhookInbox
from flask_maildelivery.transports import OutgoingMessage, SendResult, Transport


def send_email(
    app: Any, to: tuple[str, ...] = ("ann@customer.test",), **kwargs: Any
) -> tuple[int, str]:
    """Send (memory transport); the stored email's ``(id, public_id)``."""
    with app.app_context():
        email = MailDelivery.state(app).extension.send(
            subject="Invoice INV-0042", to=list(to), text="Please find your invoice.", **kwargs
        )
        return email.id, email.public_id


def set_message_id(app: Any, email_id: int, message_id: str) -> None:
    """Store the provider message id the send API would have returned."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        session.execute(
            sa.update(Email)
            .where(Email.id == email_id)
            .values(provider_message_id=normalize_message_id(message_id))
        )
        session.commit()


def stored_events(app: Any) -> list[Event]:
    """Every stored event, oldest first (detached from the session)."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        events = list(session.scalars(sa.select(Event).order_by(Event.id)))
        session.expunge_all()
        return events


def inbox_rows(app: Any) -> list[WebhookInbox]:
    """Every webhook inbox row, oldest first (detached from the session)."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        rows = list(session.scalars(sa.select(WebhookInbox).order_by(WebhookInbox.id)))
        session.expunge_all()
        return rows


def recipient_states(app: Any, email_id: int) -> dict[str, tuple[str, str | None]]:
    """``address -> (status, bounce_type)`` of an email's recipients."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        rows = session.execute(
            sa.select(Recipient.address, Recipient.status, Recipient.bounce_type).where(
                Recipient.email_id == email_id
            )
        )
        return {a: (s, b) for a, s, b in rows}


class Outcome(NamedTuple):
    """What an event says happened, or what a recipient's events made of it: the
    normalized type (an event) or status (a recipient), the reason, the SMTP code and the
    bounce type."""

    status: str
    reason: str | None
    smtp_code: str | None
    bounce_type: str | None


def event_outcome(event: Event) -> Outcome:
    """The :class:`Outcome` a stored event reports."""
    return Outcome(event.type, event.reason, event.smtp_code, event.bounce_type)


def recipient_outcome(app: Any, email_id: int, address: str) -> Outcome:
    """The :class:`Outcome` of one recipient of an email."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        status, reason, smtp_code, bounce_type = session.execute(
            sa.select(
                Recipient.status, Recipient.reason, Recipient.smtp_code, Recipient.bounce_type
            ).where(Recipient.email_id == email_id, Recipient.address == address)
        ).one()
        return Outcome(status, reason, smtp_code, bounce_type)


def email_result(app: Any, email_id: int) -> tuple[str, str]:
    """``(result, status)`` of an email."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        session.expire_all()
        email = session.get(Email, email_id)
        assert email is not None
        return email.result, email.status


class KnownIdTransport(Transport):
    """Accepts every message and answers with the provider message id given in the send's
    metadata (``provider_message_id``): a provider API whose webhook beat the send."""

    name = "known-id"

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(provider_message_id=str(message.metadata["provider_message_id"]))
