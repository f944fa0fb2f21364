"""Signals: sent with the real app after the commit, once per real change, never for a repeat;
a receiver that raises is logged and loses nothing."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery, signals
from flask_maildelivery.models import Email, Event, Recipient, utcnow
from flask_maildelivery.testing import simulate_event

from .conftest import AppFactory, SignalLog, free_port, get_or_fail


def _names(log: SignalLog) -> list[str]:
    return [name for name, _ in log]


def test_sent_with_the_real_app_after_the_commit(
    app: Flask, mail_delivery: MailDelivery, database_url: str
) -> None:
    seen: list[tuple[object, str, str]] = []
    engine = sa.create_engine(database_url)

    def on_change(
        sender: Flask, recipient: Recipient, email: Email, old: str, new: str, event: Event
    ) -> None:
        # a second connection sees the change: the signal came after the commit
        with engine.connect() as other:
            stored = other.execute(
                sa.select(Recipient.status).where(Recipient.id == recipient.id)
            ).scalar_one()
        seen.append((sender, stored, new))

    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    with signals.recipient_status_changed.connected_to(on_change):
        simulate_event(sent, "delivered")
    engine.dispose()
    assert seen == [(app, "delivered", "delivered")]


def test_once_per_real_change_and_never_for_a_repeat(
    app: Flask, mail_delivery: MailDelivery, signal_log: SignalLog
) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test", "bob@customer.test"], text="x")
    assert _names(signal_log) == ["email-sent"]
    signal_log.clear()

    simulate_event(sent, "delivered", recipient="ann@customer.test", event_id="e1")
    assert _names(signal_log) == ["event-received", "recipient-status-changed"]
    _name, kwargs = signal_log[1]
    assert (kwargs["old"], kwargs["new"], kwargs["recipient"].address) == (
        "queued",
        "delivered",
        "ann@customer.test",
    )
    assert kwargs["event"].provider_event_id == "e1"
    assert kwargs["email"].id == sent.id
    signal_log.clear()

    # the same event again (a provider retry): acknowledged, nothing changes, no signal
    report = simulate_event(sent, "delivered", recipient="ann@customer.test", event_id="e1")
    assert (report.stored, report.duplicates) == (0, 1)
    assert signal_log == []

    # a new event that changes nothing (delivered again, another id): stored, no change signal
    simulate_event(sent, "processed", recipient="ann@customer.test", event_id="e2")
    assert _names(signal_log) == ["event-received"]
    signal_log.clear()

    simulate_event(sent, "delivered", recipient="bob@customer.test", event_id="e3")
    assert _names(signal_log) == [
        "event-received",
        "recipient-status-changed",
        "email-result-changed",
    ]
    assert (signal_log[2][1]["old"], signal_log[2][1]["new"]) == ("queued", "delivered")


def test_a_delayed_bounce_turns_delivered_into_error(
    app: Flask, mail_delivery: MailDelivery, signal_log: SignalLog
) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    now = utcnow()
    simulate_event(sent, "delivered", occurred_at=now)
    signal_log.clear()
    simulate_event(
        sent,
        "bounced",
        occurred_at=now + timedelta(hours=2),
        reason="550 5.1.1 no such user",
        smtp_code="550",
        bounce_type="hard",
    )
    results = [kw for name, kw in signal_log if name == "email-result-changed"]
    assert [(kw["old"], kw["new"]) for kw in results] == [("delivered", "error")]
    stored = MailDelivery.state(app).sessions().get(Email, sent.id)
    assert stored is not None
    MailDelivery.state(app).sessions().refresh(stored)
    assert (stored.result, stored.status) == ("error", "bounced")
    recipient = stored.recipients[0]
    MailDelivery.state(app).sessions().refresh(recipient)
    assert (recipient.status, recipient.reason, recipient.smtp_code, recipient.bounce_type) == (
        "bounced",
        "550 5.1.1 no such user",
        "550",
        "hard",
    )


def test_transport_failure_signals_each_change(make_app: AppFactory, signal_log: SignalLog) -> None:
    app = make_app(
        MAILDELIVERY_MAX_ATTEMPTS=1,
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=free_port(),
        MAILDELIVERY_SMTP_TIMEOUT=2,
    )
    with app.app_context():
        MailDelivery.state(app).extension.send(subject="x", to=["a@b.test", "c@d.test"], text="x")
    # the failure is recorded as a failed event per recipient, through the ingest path
    assert _names(signal_log) == [
        "event-received",
        "event-received",
        "recipient-status-changed",
        "recipient-status-changed",
        "email-result-changed",
    ]
    assert signal_log[2][1]["new"] == "failed"
    assert signal_log[2][1]["event"].raw_type == "send-failed"
    assert signal_log[4][1]["new"] == "failed"


def test_a_receiver_that_raises_is_logged_and_loses_nothing(
    app: Flask, mail_delivery: MailDelivery, signal_log: SignalLog, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Flask, **kwargs: object) -> None:
        raise RuntimeError("host receiver bug")

    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    with signals.recipient_status_changed.connected_to(broken), caplog.at_level(logging.ERROR):
        simulate_event(sent, "bounced")
    assert "host receiver bug" in caplog.text
    # the other receivers ran, and the change is stored
    assert "email-result-changed" in _names(signal_log)
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    assert get_or_fail(session, Email, sent.id).result == "error"
    assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1


def test_email_sent_receiver_that_raises_does_not_break_the_send(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    def broken(sender: Flask, **kwargs: object) -> None:
        raise RuntimeError("boom")

    with signals.email_sent.connected_to(broken):
        sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    assert sent.result == "queued"
