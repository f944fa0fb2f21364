"""The helpers host apps use in their own tests."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_maildelivery import MailDelivery, signals
from flask_maildelivery.models import Recipient
from flask_maildelivery.testing import outbox, simulate_event

from .conftest import AppFactory


def test_outbox_holds_what_was_sent(app: Flask, mail_delivery: MailDelivery) -> None:
    mail_delivery.send(subject="Invoice", to=["ann@customer.test"], bcc=["x@acme.test"], text="x")
    (message,) = outbox()
    assert message.subject == "Invoice"
    assert message.envelope_recipients == ["ann@customer.test", "x@acme.test"]


def test_outbox_needs_the_memory_transport(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_TRANSPORT="console")
    with app.app_context(), pytest.raises(RuntimeError, match='MAILDELIVERY_TRANSPORT = "memory"'):
        outbox()


def test_simulate_event_drives_a_host_receiver(app: Flask, mail_delivery: MailDelivery) -> None:
    flagged: list[str] = []

    def flag_contact(sender: Flask, recipient: Recipient, new: str, **kwargs: object) -> None:
        if new == "bounced":
            flagged.append(recipient.address)

    sent = mail_delivery.send(subject="x", to=["ann@customer.test", "bob@customer.test"], text="x")
    with signals.recipient_status_changed.connected_to(flag_contact, sender=app):
        simulate_event(sent, "delivered")
        simulate_event(sent, "bounced", recipient="bob@customer.test", reason="550 unknown user")
    assert flagged == ["bob@customer.test"]


def test_simulate_event_refuses_an_unknown_type(app: Flask, mail_delivery: MailDelivery) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    with pytest.raises(ValueError, match="'exploded' is not one of"):
        simulate_event(sent, "exploded")


def test_console_transport_prints_the_message(
    make_app: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(MAILDELIVERY_TRANSPORT="console")
    with app.app_context():
        MailDelivery.state(app).extension.send(
            subject="Hello console", to=["a@b.test"], bcc=["c@d.test"], text="x"
        )
    out = capsys.readouterr().out
    assert "--- envelope to: a@b.test, c@d.test" in out
    assert "Subject: Hello console" in out
    assert "Bcc" not in out
