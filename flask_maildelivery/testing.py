"""Helpers for host applications' own tests.

::

    from flask_maildelivery.testing import outbox, simulate_event

    def test_bounce_flags_the_contact(app):
        app.config["MAILDELIVERY_TRANSPORT"] = "memory"   # before init_app
        email = mail_delivery.send(subject="Invoice", to=["ann@customer.test"], text="...")
        assert outbox(app)[-1].subject == "Invoice"
        simulate_event(email, "bounced", recipient="ann@customer.test", reason="550 no such user")
        # your recipient_status_changed receiver ran
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, current_app

from .context import get_state
from .events import EVENT_TYPES, NormalizedEvent
from .ingest import IngestReport, ingest_events
from .models import Email, new_public_id, utcnow
from .transports import OutgoingMessage
from .transports.memory import MemoryTransport

#: Provider id stored on events made by :func:`simulate_event`.
SIMULATED_PROVIDER = "test"


def outbox(app: Flask | None = None) -> list[OutgoingMessage]:
    """The messages the ``memory`` transport of ``app`` (default: the current app) holds.

    :raises RuntimeError: the app does not use ``MAILDELIVERY_TRANSPORT = "memory"``.
    """
    transport = get_state(app or current_app).transport
    if not isinstance(transport, MemoryTransport):
        raise RuntimeError(
            'the outbox exists only with MAILDELIVERY_TRANSPORT = "memory"; set it in the '
            "test app's configuration before init_app"
        )
    return transport.outbox


def simulate_event(
    email: Email,
    type: str,
    *,
    recipient: str | None = None,
    reason: str | None = None,
    smtp_code: str | None = None,
    bounce_type: str | None = None,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
    app: Flask | None = None,
) -> IngestReport:
    """Apply a provider-neutral event (``delivered``, ``bounced``, ...) to a recipient of
    ``email`` through the same path as real webhook events, signals included.

    :param recipient: the address; default: the email's first recipient.
    :param event_id: give the same id twice to simulate a provider's retry (stored once).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"event type {type!r} is not one of {', '.join(EVENT_TYPES)}")
    address = recipient or email.recipients[0].address
    payload: dict[str, Any] = {"type": type, "recipient": address}
    return ingest_events(
        [
            NormalizedEvent(
                provider=SIMULATED_PROVIDER,
                provider_event_id=event_id or new_public_id(),
                type=type,
                raw_type=type,
                occurred_at=occurred_at or utcnow(),
                recipient=address,
                maildelivery_id=email.public_id,
                reason=reason,
                smtp_code=smtp_code,
                bounce_type=bounce_type,
                payload=payload,
            )
        ],
        app,
    )


__all__ = ["SIMULATED_PROVIDER", "outbox", "simulate_event"]
