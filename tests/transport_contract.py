"""What every provider API transport test does: send one complete invoice email through the
hook, read back what was stored, and apply a webhook event that carries only the provider's
message id; and :class:`TransportKit`, what the contract tests need to know of one provider."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import Email, Event

from .fake_provider import FakeProvider, ReceivedRequest, Responder

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
        session = MailDelivery.state(app).sessions()
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
        session = MailDelivery.state(app).sessions()
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
        session = MailDelivery.state(app).sessions()
        return list(session.scalars(sa.select(Event.email_id).order_by(Event.id)))


#: How the reference email's recipients are stored once the provider accepted it.
QUEUED_RECIPIENTS = {
    "ann@customer.test": ("to", "queued", None),
    "bob@customer.test": ("to", "queued", None),
    "accounting@customer.test": ("cc", "queued", None),
    "archive@acme.test": ("bcc", "queued", None),
}


@dataclass(frozen=True)
class TransportKit:
    """One provider API transport as the contract tests drive it: its settings, its fake API
    and the way the provider words each answer the transport must handle."""

    #: The ``MAILDELIVERY_TRANSPORT`` name, also the webhook provider name.
    name: str
    #: The settings the transport needs, with working values (the fake API accepts them).
    credentials: dict[str, Any]
    #: The setting that points the transport at the fake API.
    api_url_setting: str
    #: ``api(answer)``: the fake API; it checks a request as the provider does, then answers
    #: with ``answer`` (``None``: the provider's success answer).
    api: Callable[[Responder | None], Responder]
    #: Each required setting and what the error says when it is missing (a ``match`` regex).
    missing_settings: tuple[tuple[str, str], ...]
    #: The provider refusing the message for good, and the error recorded for it.
    refusal: Responder
    refusal_error: str
    #: Settings with a wrong credential, and the error recorded when the fake refuses it.
    wrong_credentials: dict[str, Any]
    wrong_credentials_error: str
    #: The header that carries the wrong credential as sent, when it is sent as-is.
    wrong_credentials_header: tuple[str, str] | None
    #: The provider's wording of the failures worth retrying (rate limit, server error...),
    #: by case name; a timeout and a refused connection are tested for every provider.
    transient: dict[str, Responder]
    #: The message id as stored after a send, and as the webhook adapter reports it.
    stored_message_id: str
    webhook_message_id: str
    #: The recipient the webhook test delivers to.
    webhook_recipient: str = "ann@customer.test"
    #: Settings the success test adds (a provider option that must not change the outcome).
    options: dict[str, Any] = field(default_factory=dict)

    def config(self, provider: FakeProvider, **extra: Any) -> dict[str, Any]:
        """The app config sending through ``provider`` (the fake API), ``extra`` on top."""
        return {
            "MAILDELIVERY_TRANSPORT": self.name,
            **self.credentials,
            self.api_url_setting: provider.url,
            "MAILDELIVERY_HTTP_TIMEOUT": 5,
            **extra,
        }

    def start(
        self,
        make_app: Callable[..., Flask],
        provider: FakeProvider,
        answer: Responder | None = None,
        **extra: Any,
    ) -> Flask:
        """An app sending through ``provider``, which answers as :attr:`api` does with
        ``answer``; ``extra`` settings on top."""
        provider.responder = self.api(answer)
        return make_app(**self.config(provider, **extra))

    def send_invoice(
        self, make_app: Callable[..., Flask], provider: FakeProvider, **extra: Any
    ) -> tuple[Flask, Sent, ReceivedRequest]:
        """Send the reference email through ``provider`` answering with success: the app, the
        email and the one request the provider received (a POST)."""
        app = self.start(make_app, provider, **extra)
        email = send_invoice(app)
        [request] = provider.requests
        assert request.method == "POST"
        return app, email, request
