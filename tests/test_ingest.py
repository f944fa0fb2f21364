"""Set-based ingest at the storage level: matching, unmatched events, atomicity."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.events import NormalizedEvent, content_event_id, normalize_message_id
from flask_maildelivery.ingest import apply_unmatched_events, ingest_events
from flask_maildelivery.models import Email, Event, Recipient, utcnow
from flask_maildelivery.state import HOOK_PROVIDER, SendAttempt

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


def test_each_recipient_takes_every_detail_of_the_event_that_decides_it(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    email = mail_delivery.send(
        subject="x", to=["ann@customer.test", "bob@customer.test", "cy@customer.test"], text="x"
    )
    other = mail_delivery.send(subject="y", to=["ann@customer.test"], text="y")
    t0 = utcnow()
    reason = "550 5.1.1 mailbox unavailable " + "x" * 2000
    report = ingest_events(
        [
            # Ann: a delivery, then a later bounce: the bounce decides, with all its details
            _event(provider_event_id="a1", maildelivery_id=email.public_id, occurred_at=t0),
            _event(
                provider_event_id="a2",
                maildelivery_id=email.public_id,
                type="bounced",
                raw_type="bounce",
                occurred_at=t0 + timedelta(seconds=1),
                reason=reason,
                smtp_code="550",
                bounce_type="hard",
            ),
            # Bob: two deferrals, the later one decides
            _event(
                provider_event_id="b1",
                maildelivery_id=email.public_id,
                recipient="Bob@Customer.test",
                type="deferred",
                raw_type="deferred",
                occurred_at=t0 + timedelta(seconds=3),
                reason="451 try later",
                smtp_code="451",
                bounce_type="soft",
            ),
            _event(
                provider_event_id="b2",
                maildelivery_id=email.public_id,
                recipient="bob@customer.test",
                type="deferred",
                raw_type="deferred",
                occurred_at=t0 + timedelta(seconds=2),
                reason="421 busy",
                smtp_code="421",
                bounce_type="soft",
            ),
        ]
    )
    assert report.stored == 4
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    recipients = {r.address: r for r in get_or_fail(session, Email, email.id).recipients}

    def state(recipient: Recipient) -> tuple[object, ...]:
        return (
            recipient.status,
            recipient.status_at,
            recipient.reason,
            recipient.smtp_code,
            recipient.bounce_type,
        )

    assert state(recipients["ann@customer.test"]) == (
        "bounced",
        t0 + timedelta(seconds=1),
        reason,
        "550",
        "hard",
    )
    assert state(recipients["bob@customer.test"]) == (
        "deferred",
        t0 + timedelta(seconds=3),
        "451 try later",
        "451",
        "soft",
    )
    # a recipient without events, and the same address on another email, are left alone
    assert state(recipients["cy@customer.test"])[0] == "queued"
    assert state(get_or_fail(session, Email, other.id).recipients[0])[0] == "queued"
    assert get_or_fail(session, Email, email.id).result == "warning"


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


def _attempt_event(email: Email, attempt: SendAttempt, at: datetime) -> NormalizedEvent:
    """The outbound hook's record of a send attempt for Ann."""
    return _event(
        provider=HOOK_PROVIDER,
        provider_event_id=f"{email.public_id}:{attempt.raw_type}:ann@customer.test",
        type=attempt.status,
        raw_type=attempt.raw_type,
        occurred_at=at,
        maildelivery_id=email.public_id,
        reason=attempt.raw_type,
    )


@pytest.mark.parametrize("kind", ["deferred", "delivered", "bounced"])
def test_send_attempts_and_a_provider_event_in_any_order_give_one_state(
    app: Flask, mail_delivery: MailDelivery, kind: str
) -> None:
    t0 = utcnow().replace(microsecond=0)
    states = set()
    for order in itertools.permutations(range(3)):
        # (the first bounce suppresses Ann's address)
        email = mail_delivery.send(
            subject="x", to=["ann@customer.test"], text="x", ignore_suppression=True
        )
        events = [
            _attempt_event(email, SendAttempt(1, accepted=False), t0),
            _event(
                provider_event_id=f"sg-{email.id}",
                type=kind,
                raw_type=kind,
                occurred_at=t0 + timedelta(minutes=1),
                maildelivery_id=email.public_id,
                reason=f"provider says {kind}",
            ),
            _attempt_event(email, SendAttempt(2, accepted=True), t0 + timedelta(minutes=2)),
        ]
        for index in order:
            ingest_events([events[index]])
        # a repeat changes nothing
        assert ingest_events(events).stored == 0
        session = MailDelivery.state(app).sessions()
        session.expire_all()
        stored = get_or_fail(session, Email, email.id)
        (recipient,) = stored.recipients
        states.add(
            (
                stored.result,
                stored.status,
                recipient.status,
                recipient.status_at,
                recipient.reason,
            )
        )
    result = {"deferred": "processed", "delivered": "delivered", "bounced": "error"}[kind]
    status = {"deferred": "deferred", "delivered": "", "bounced": "bounced"}[kind]
    assert states == {
        (result, status, kind, t0 + timedelta(minutes=1), f"provider says {kind}"),
    }


def test_an_accepted_attempt_ends_the_deferral_of_its_recipients_only(
    app: Flask, mail_delivery: MailDelivery, signal_log: SignalLog
) -> None:
    email = mail_delivery.send(subject="x", to=["ann@customer.test", "bob@customer.test"], text="x")
    t0 = utcnow()
    failed = SendAttempt(1, accepted=False)
    ingest_events(
        [
            _attempt_event(email, failed, t0),
            _event(
                provider=HOOK_PROVIDER,
                provider_event_id=f"{email.public_id}:{failed.raw_type}:bob@customer.test",
                type=failed.status,
                raw_type=failed.raw_type,
                occurred_at=t0,
                maildelivery_id=email.public_id,
                recipient="bob@customer.test",
            ),
        ]
    )
    signal_log.clear()
    # the retry went to Ann only (Bob refused on that attempt is recorded apart)
    ingest_events([_attempt_event(email, SendAttempt(2, accepted=True), t0)])
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    stored = get_or_fail(session, Email, email.id)
    assert [(r.address, r.status) for r in stored.recipients] == [
        ("ann@customer.test", "processed"),
        ("bob@customer.test", "deferred"),
    ]
    assert (stored.result, stored.status) == ("processed", "deferred")
    assert [(name, kwargs.get("old"), kwargs.get("new")) for name, kwargs in signal_log] == [
        ("event-received", None, None),
        ("recipient-status-changed", "deferred", "processed"),
    ]


def test_a_provider_event_applied_late_by_reconcile_after_the_accepted_attempt(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    email = mail_delivery.send(subject="x", to=["ann@customer.test"], text="x")
    t0 = utcnow()
    ingest_events([_attempt_event(email, SendAttempt(1, accepted=False), t0)])
    # the provider's delay notice names only a message id not stored yet
    early = ingest_events(
        [_event(provider_message_id="late@mail.test", type="deferred", reason="421 later")]
    )
    assert early.unmatched == 1
    ingest_events([_attempt_event(email, SendAttempt(2, accepted=True), t0)])
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    assert get_or_fail(session, Email, email.id).status == ""

    stored = get_or_fail(session, Email, email.id)
    stored.provider_message_id = "late@mail.test"
    session.commit()
    report = apply_unmatched_events(app)
    assert report.recipient_changes == [(stored.recipients[0].id, "processed", "deferred")]
    session.expire_all()
    stored = get_or_fail(session, Email, email.id)
    assert (stored.status, stored.recipients[0].reason) == ("deferred", "421 later")
