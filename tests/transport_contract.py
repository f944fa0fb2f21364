"""What every provider API transport test does: send one complete invoice email through the
hook, read back what was stored, and apply a webhook event that carries only the provider's
message id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import Email, Event

PDF = b"%PDF-1.4 invoice INV-0042"
TEXT = "Please find invoice INV-0042 attached."
HTML = "<p>Please find invoice <b>INV-0042</b> attached.</p>"


@dataclass(frozen=True)
class Sent:
    """The ids of an email just sent."""

    id: int
    public_id: str


def send_invoice(app: Flask) -> Sent:
    """Send the reference email: two to (one named), one cc, one bcc, reply-to, text, HTML,
    one attachment, one host header."""
    with app.app_context():
        email = MailDelivery.state(app).extension.send(
            subject="Invoice INV-0042",
            sender=("Acme Billing", "billing@acme.test"),
            to=["ann@customer.test", ("Bob Martin", "bob@customer.test")],
            cc=["accounting@customer.test"],
            bcc=["archive@acme.test"],
            reply_to="accounts@acme.test",
            text=TEXT,
            html=HTML,
            attachments=[("INV-0042.pdf", PDF, "application/pdf")],
            headers={"X-Invoice": "INV-0042"},
        )
        return Sent(email.id, email.public_id)


@dataclass(frozen=True)
class Stored:
    """An email as read back from the database after the send."""

    id: int
    public_id: str
    result: str
    error: str | None
    provider_message_id: str | None
    transport: str | None
    recipients: dict[str, tuple[str, str, str | None]]


def stored(app: Flask, email_id: int) -> Stored:
    """Read email ``email_id`` in a fresh session: ``recipients`` maps each address to
    ``(kind, status, reason)``."""
    with app.app_context():
        session = MailDelivery.state(app).db.session
        email = session.get(Email, email_id)
        assert email is not None, f"email {email_id} was not kept"
        return Stored(
            id=email.id,
            public_id=email.public_id,
            result=email.result,
            error=email.error,
            provider_message_id=email.provider_message_id,
            transport=email.transport,
            recipients={r.address: (r.kind, r.status, r.reason) for r in email.recipients},
        )


def email_count(app: Flask) -> int:
    """How many emails are stored."""
    with app.app_context():
        session = MailDelivery.state(app).db.session
        return int(session.scalar(sa.select(sa.func.count()).select_from(Email)) or 0)


def deliver_by_message_id(app: Flask, provider: str, message_id: str, recipient: str) -> None:
    """Ingest a ``delivered`` event that names the message only by the provider's id, the
    way that provider's webhook adapter reports it (no ``maildelivery_id``)."""
    with app.app_context():
        report = ingest_events(
            [
                NormalizedEvent(
                    provider=provider,
                    provider_event_id=f"{provider}-delivered-{message_id}",
                    type="delivered",
                    raw_type="delivered",
                    occurred_at=datetime.now(UTC),
                    recipient=recipient,
                    provider_message_id=message_id,
                    payload={"message_id": message_id},
                )
            ],
            app,
        )
        assert report.stored == 1
        assert report.unmatched == 0


def event_email_ids(app: Flask) -> list[int | None]:
    """The email each stored event was matched to."""
    with app.app_context():
        session = MailDelivery.state(app).db.session
        return list(session.scalars(sa.select(Event.email_id).order_by(Event.id)))
