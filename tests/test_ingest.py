"""Set-based ingest at the storage level: matching, unmatched events, atomicity."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.events import NormalizedEvent, content_event_id, normalize_message_id
from flask_maildelivery.ingest import apply_unmatched_events, ingest_events
from flask_maildelivery.models import Email, Event, Recipient, utcnow

from .conftest import SignalLog, get_or_fail


def _event(**kwargs: object) -> NormalizedEvent:
    base: dict[str, object] = {
        "provider": "sendgrid",
        "provider_event_id": "ev-1",
        "type": "delivered",
        "raw_type": "delivered",
        "occurred_at": utcnow(),
        "recipient": "ann@customer.test",
    }
    base.update(kwargs)
    return NormalizedEvent(**base)  # type: ignore[arg-type]


def _count(app: Flask, model: object, *where: object) -> int:
    session = MailDelivery.state(app).sessions()
    return int(session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def test_matches_by_correlation_id_then_message_id_and_address_case_insensitively(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    first = mail_delivery.send(subject="a", to=["Ann@Customer.test"], text="x")
    second = mail_delivery.send(subject="b", to=["bob@customer.test"], text="x")
    second.provider_message_id = "msg-2@mail.test"
    MailDelivery.state(app).sessions().commit()

    report = ingest_events(
        [
            _event(
                provider_event_id="1",
                maildelivery_id=first.public_id,
                recipient="ANN@customer.TEST",
            ),
            _event(
                provider_event_id="2",
                provider_message_id="msg-2@mail.test",
                recipient="bob@customer.test",
                type="bounced",
            ),
        ]
    )
    assert (report.stored, report.unmatched) == (2, 0)
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    assert get_or_fail(session, Email, first.id).recipients[0].status == "delivered"
    assert get_or_fail(session, Email, second.id).result == "error"


def test_an_event_before_its_email_is_applied_when_the_email_appears(
    app: Flask, mail_delivery: MailDelivery, signal_log: SignalLog
) -> None:
    # the provider's webhook beat the send's commit: only its message id is known
    report = ingest_events(
        [_event(provider_message_id="early@mail.test", type="bounced", reason="550")]
    )
    assert report.unmatched == 1
    assert _count(app, Event, Event.email_id.is_(None)) == 1

    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    sent.provider_message_id = "early@mail.test"
    MailDelivery.state(app).sessions().commit()
    signal_log.clear()
    report = apply_unmatched_events(app, [sent.id])
    assert report.recipient_changes
    assert report.result_changes
    assert [name for name, _ in signal_log] == ["recipient-status-changed", "email-result-changed"]
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    assert get_or_fail(session, Email, sent.id).result == "error"
    assert _count(app, Event, Event.email_id.is_(None)) == 0
    # applying again finds nothing left to do
    assert apply_unmatched_events(app).recipient_changes == []


def test_reconcile_command_applies_remaining_unmatched_events(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    ingest_events([_event(maildelivery_id="0" * 32, type="dropped")])  # unknown id for now
    session = MailDelivery.state(app).sessions()
    session.execute(sa.update(Email).where(Email.id == sent.id).values(public_id="0" * 32))
    session.commit()
    result = app.test_cli_runner().invoke(args=["maildelivery", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "1 recipient status change(s), 1 result change(s)" in result.output
    session.expire_all()
    assert get_or_fail(session, Email, sent.id).status == "dropped"


def test_a_database_error_mid_batch_leaves_nothing_behind(
    app: Flask, mail_delivery: MailDelivery, signal_log: SignalLog
) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    signal_log.clear()
    batch = [
        _event(provider_event_id=str(i), maildelivery_id=sent.public_id, type=t)
        for i, t in enumerate(["processed", "delivered", "opened"])
    ]
    engine = MailDelivery.state(app).db.engine

    def fail_on_recipient_update(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        # the events are inserted already when the recipients' update fails
        if statement.lstrip().upper().startswith("UPDATE MAILDELIVERY_RECIPIENT"):
            raise sa.exc.OperationalError(statement, parameters, Exception("server gone away"))

    sa.event.listen(engine, "before_cursor_execute", fail_on_recipient_update)
    try:
        with pytest.raises(sa.exc.OperationalError, match="server gone away"):
            ingest_events(batch)
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_recipient_update)
    assert _count(app, Event) == 0
    session = MailDelivery.state(app).sessions()
    assert get_or_fail(session, Email, sent.id).recipients[0].status == "queued"
    assert signal_log == []


def test_unknown_events_are_kept_and_change_nothing(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    ingest_events(
        [_event(maildelivery_id=sent.public_id, type="unknown", raw_type="group_resubscribe")]
    )
    assert _count(app, Event, Event.type == "unknown", Event.raw_type == "group_resubscribe") == 1
    assert _count(app, Recipient, Recipient.status == "queued") == 1


def test_repeats_inside_one_batch_are_stored_once(app: Flask, mail_delivery: MailDelivery) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    event = _event(maildelivery_id=sent.public_id)
    report = ingest_events([event, event, event])
    assert (report.stored, report.duplicates) == (1, 2)


def test_event_helpers() -> None:
    assert normalize_message_id(" <abc@mg.test> ") == "abc@mg.test"
    assert normalize_message_id("") is None
    payload = {"b": 1, "a": [1, 2]}
    assert content_event_id("brevo", payload) == content_event_id("brevo", {"a": [1, 2], "b": 1})
    assert content_event_id("brevo", payload) != content_event_id("mailjet", payload)
    with pytest.raises(ValueError, match="is not one of"):
        _event(type="exploded")
    with pytest.raises(ValueError, match="timezone-aware"):
        _event(occurred_at=utcnow().replace(tzinfo=None))


def test_equal_status_events_keep_the_latest_reason_whatever_the_order(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    sent = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    t0 = utcnow()
    ingest_events(
        [
            _event(
                provider_event_id="late",
                maildelivery_id=sent.public_id,
                type="deferred",
                reason="451 later",
                occurred_at=t0 + timedelta(minutes=9),
            )
        ]
    )
    ingest_events(
        [
            _event(
                provider_event_id="early",
                maildelivery_id=sent.public_id,
                type="deferred",
                reason="421 early",
                occurred_at=t0,
            )
        ]
    )
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    assert get_or_fail(session, Email, sent.id).recipients[0].reason == "451 later"
