"""Address health and suppression: a hard bounce or a complaint suppresses an address, and
the next send skips it (``MAILDELIVERY_SUPPRESSION = "block"``), warns (``"warn"``) or
ignores it (``"off"``); a delivery or a lift ends it. On every database, over the same
ingest path as webhook events (:func:`flask_maildelivery.testing.simulate_event`)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import AddressHealth, MailDelivery, migrations, signals
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import AddressRecord, Email, Event, Recipient, new_public_id
from flask_maildelivery.testing import outbox, simulate_event

from .conftest import AppFactory, SMTPServer, get_or_fail, migrating

ANN = "ann@customer.test"
BOB = "bob@customer.test"
BOUNCE = "550 5.1.1 no such user"


def _extension(app: Flask) -> MailDelivery:
    extension: MailDelivery = MailDelivery.state(app).extension
    return extension


def _send(app: Flask, *to: str, **kwargs: Any) -> Email:
    return _extension(app).send(subject="Invoice", to=list(to), text="Your invoice.", **kwargs)


def _bounce(
    app: Flask, email: Email, address: str = ANN, bounce_type: str = "hard", **kwargs: Any
) -> None:
    simulate_event(
        email, "bounced", recipient=address, reason=BOUNCE, bounce_type=bounce_type, **kwargs
    )


def _find(app: Flask, address: str = ANN, tenant: str = "") -> AddressRecord | None:
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    return session.scalar(
        sa.select(AddressRecord).where(
            AddressRecord.tenant_key == tenant, AddressRecord.address_key == address.lower()
        )
    )


def _record(app: Flask, address: str = ANN, tenant: str = "") -> AddressRecord:
    record = _find(app, address, tenant)
    assert record is not None, f"no record of {address} for tenant {tenant!r}"
    return record


def _recipient(app: Flask, email_id: int, address: str) -> Recipient:
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    recipient = session.scalar(
        sa.select(Recipient).where(Recipient.email_id == email_id, Recipient.address == address)
    )
    assert recipient is not None
    return recipient


def _events(app: Flask, email_id: int, raw_type: str) -> list[Event]:
    session = MailDelivery.state(app).sessions()
    return list(
        session.scalars(
            sa.select(Event).where(Event.email_id == email_id, Event.raw_type == raw_type)
        )
    )


@pytest.fixture
def suppressed_log() -> Iterator[list[dict[str, Any]]]:
    log: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        log.append(kwargs)

    signals.address_suppressed.connect(receiver)
    yield log
    signals.address_suppressed.disconnect(receiver)


def test_hard_bounce_suppresses_and_the_next_send_skips_the_address(
    make_app: AppFactory, smtp_server: SMTPServer, suppressed_log: list[dict[str, Any]]
) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        first = _send(app, ANN, BOB, contacts={ANN: ("customer", 7)})
        first_id = first.id
        _bounce(app, first)
        record = _record(app)
        assert (record.hard_bounces, record.soft_bounces, record.complaints) == (1, 0, 0)
        assert record.suppressed
        assert record.suppressed_cause == "hard"
        assert record.suppressed_email_id == first_id
        assert record.last_failure_reason == BOUNCE
        assert (record.contact_type, record.contact_id) == ("customer", "7")
        assert [(s["address"], s["reason"], s["email"].id) for s in suppressed_log] == [
            (ANN, BOUNCE, first_id)
        ]
        # the same bounce reported again, and a second source: still one suppression
        _bounce(app, first)
        assert _record(app).hard_bounces == 1
        assert len(suppressed_log) == 1

        smtp_server.messages.clear()
        second = _send(app, ANN, BOB)
        second_id = second.id
        assert [m.rcpt_tos for m in smtp_server.messages] == [[BOB]]
        ann = _recipient(app, second_id, ANN)
        assert ann.status == "suppressed"
        day = f"{datetime.now(UTC):%Y-%m-%d}"
        assert ann.reason == f"address bounced on {day} (record no. {first_id}): {BOUNCE}"
        assert _recipient(app, second_id, BOB).status == "queued"
        stored = get_or_fail(MailDelivery.state(app).sessions(), Email, second_id)
        assert (stored.result, stored.status) == ("warning", "suppressed")


def test_every_recipient_suppressed_is_recorded_without_calling_the_transport(
    app: Flask, signal_log: list[tuple[str, dict[str, Any]]]
) -> None:
    _bounce(app, _send(app, ANN))
    sent = len(outbox(app))
    email = _send(app, ANN)
    assert len(outbox(app)) == sent
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    stored = get_or_fail(session, Email, email.id)
    assert (stored.result, stored.status, stored.error) == ("error", "suppressed", None)
    assert [r.status for r in stored.recipients] == ["suppressed"]
    assert email.id not in [kw["email"].id for name, kw in signal_log if name == "email-sent"]


def test_complaint_suppresses(app: Flask) -> None:
    email = _send(app, ANN)
    simulate_event(email, "complained", recipient=ANN, reason="abuse report")
    record = _record(app)
    assert (record.complaints, record.suppressed, record.suppressed_cause) == (
        1,
        True,
        "complaint",
    )
    second = _send(app, ANN)
    assert str(_recipient(app, second.id, ANN).reason).startswith(
        f"address complained on {datetime.now(UTC):%Y-%m-%d} (record no. {email.id})"
    )


def test_soft_bounces_suppress_after_the_limit_in_a_row(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_SOFT_BOUNCE_LIMIT=3)
    start = datetime.now(UTC) - timedelta(hours=1)
    with app.app_context():

        def soft(minutes: int) -> None:
            _bounce(
                app,
                _send(app, ANN),
                bounce_type="soft",
                occurred_at=start + timedelta(minutes=minutes),
            )

        soft(1)
        soft(2)
        record = _record(app)
        assert (record.soft_bounces, record.soft_bounce_streak, record.suppressed) == (2, 2, False)
        assert AddressHealth.of(ANN, record).state == "failing"
        # a delivery in between starts the count again
        simulate_event(_send(app, ANN), "delivered", occurred_at=start + timedelta(minutes=3))
        soft(4)
        soft(5)
        record = _record(app)
        assert (record.soft_bounces, record.soft_bounce_streak, record.suppressed) == (4, 2, False)
        soft(6)
        record = _record(app)
        assert (record.soft_bounce_streak, record.suppressed, record.suppressed_cause) == (
            3,
            True,
            "soft",
        )


def test_a_later_delivery_lifts_the_suppression_an_earlier_one_does_not(app: Flask) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    old = _send(app, ANN)
    bounced = _send(app, ANN)
    _bounce(app, bounced, occurred_at=start + timedelta(minutes=30))
    # a delivery report of an older email, arriving late: the address stays suppressed
    simulate_event(old, "delivered", occurred_at=start)
    record = _record(app)
    assert record.suppressed
    assert record.last_delivered_at == start

    copy = _send(app, ANN, ignore_suppression=True)
    simulate_event(copy, "delivered", occurred_at=start + timedelta(minutes=60))
    record = _record(app)
    assert not record.suppressed
    assert record.lifted_by == "delivery"
    assert record.lifted_at is not None
    assert record.hard_bounces == 1  # the history stays
    assert _extension(app).address_health(ANN).state == "failing"
    assert _recipient(app, _send(app, ANN).id, ANN).status == "queued"


def test_a_bounce_older_than_the_last_delivery_does_not_suppress(app: Flask) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    # the record starts at the address's first failure; deliveries then keep it current
    _bounce(app, _send(app, ANN), bounce_type="soft", occurred_at=start)
    delivered, bounced = _send(app, ANN), _send(app, ANN)
    simulate_event(delivered, "delivered", occurred_at=start + timedelta(minutes=10))
    _bounce(app, bounced, occurred_at=start + timedelta(minutes=5))
    record = _record(app)
    assert (record.hard_bounces, record.soft_bounces, record.suppressed) == (1, 1, False)
    assert record.last_delivered_at == start + timedelta(minutes=10)


def test_a_lift_is_recorded_and_the_next_send_goes_out(app: Flask) -> None:
    class Admin:
        def get_id(self) -> str:
            return "admin-3"

    _bounce(app, _send(app, ANN))
    extension = _extension(app)
    assert extension.lift_suppression("Ann@Customer.test", user=Admin()) is True
    assert extension.lift_suppression(ANN, user=Admin()) is False  # nothing left to lift
    record = _record(app)
    assert (record.suppressed, record.lifted_by) == (False, "admin-3")
    assert record.lifted_at is not None
    sent = len(outbox(app))
    assert _recipient(app, _send(app, ANN).id, ANN).status == "queued"
    assert len(outbox(app)) == sent + 1
    assert extension.lift_suppression("nobody@customer.test") is False


@pytest.mark.parametrize(
    ("config", "kwargs", "warning"),
    [
        ({"MAILDELIVERY_SUPPRESSION": "warn"}, {}, "MAILDELIVERY_SUPPRESSION"),
        ({}, {"ignore_suppression": True}, "ignore_suppression"),
    ],
    ids=["warn", "ignore_suppression"],
)
def test_sent_anyway_with_a_warning_in_the_log(
    make_app: AppFactory, config: dict[str, Any], kwargs: dict[str, Any], warning: str
) -> None:
    app = make_app(**config)
    with app.app_context():
        _bounce(app, _send(app, ANN))
        email = _send(app, ANN, BOB, **kwargs)
        assert outbox(app)[-1].envelope_recipients == [ANN, BOB]
        assert _recipient(app, email.id, ANN).status == "queued"
        (event,) = _events(app, email.id, "suppression-warning")
        assert event.type == "unknown"
        assert event.reason is not None
        assert event.reason.startswith(f"sent although suppressed ({warning}): address bounced")
        assert event.recipient_id == _recipient(app, email.id, ANN).id


def test_off_keeps_the_records_and_suppresses_nothing(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_SUPPRESSION="off")
    with app.app_context():
        _bounce(app, _send(app, ANN))
        assert _record(app).suppressed
        email = _send(app, ANN)
        assert outbox(app)[-1].envelope_recipients == [ANN]
        assert _events(app, email.id, "suppression-warning") == []
        assert _recipient(app, email.id, ANN).status == "queued"


def test_tenant_b_bounce_does_not_suppress_tenant_a(app: Flask) -> None:
    _bounce(app, _send(app, ANN, tenant_id="b"))
    assert _record(app, tenant="b").suppressed
    assert _find(app, tenant="a") is None
    extension = _extension(app)
    assert extension.address_health(ANN, tenant_id="a").state == "ok"
    assert extension.address_health(ANN, tenant_id="b").state == "suppressed"
    email = _send(app, ANN, tenant_id="a")
    assert _recipient(app, email.id, ANN).status == "queued"
    blocked = _send(app, ANN, tenant_id="b")
    assert _recipient(app, blocked.id, ANN).status == "suppressed"


def _event(email: Email, type: str, address: str, at: datetime, **kwargs: Any) -> NormalizedEvent:
    return NormalizedEvent(
        provider="simulated",
        provider_event_id=new_public_id(),
        type=type,
        raw_type=type,
        occurred_at=at,
        recipient=address,
        maildelivery_id=email.public_id,
        payload={},
        **kwargs,
    )


def test_one_batch_records_the_failing_addresses_and_keeps_the_recorded_ones_current(
    app: Flask, suppressed_log: list[dict[str, Any]]
) -> None:
    """Deliveries, bounces and tenants mixed in one batch: an address that only got
    deliveries has no record and gets none, a recorded one is kept current (the delivery
    lifts its suppression and the record takes the address as sent and the contact), a
    failing one gets its record with the batch's deliveries folded in."""
    carol, dave = "carol@customer.test", "dave@customer.test"
    start = datetime.now(UTC) - timedelta(hours=2)
    _bounce(app, _send(app, ANN), occurred_at=start)
    assert _record(app).suppressed
    to_ann = _send(app, "Ann@Customer.test", contacts={"Ann@Customer.test": ("customer", 9)})
    to_bob = _send(app, BOB)
    carol_delivered, carol_bounced = _send(app, carol), _send(app, carol)
    dave_delivered, dave_bounced = _send(app, dave), _send(app, dave)
    bob_b = _send(app, BOB, tenant_id="b")
    minute = timedelta(minutes=1)
    report = ingest_events(
        [
            _event(to_ann, "delivered", "Ann@Customer.test", start + 60 * minute),
            _event(to_bob, "delivered", BOB, start + 60 * minute),
            _event(carol_delivered, "opened", carol, start + 10 * minute),
            _event(carol_bounced, "bounced", carol, start + 20 * minute, reason=BOUNCE),
            _event(dave_delivered, "delivered", dave, start + 30 * minute),
            _event(dave_bounced, "bounced", dave, start + 20 * minute, reason=BOUNCE),
            _event(bob_b, "bounced", BOB, start + 60 * minute, reason=BOUNCE),
        ],
        app,
    )
    assert report.stored == 7
    ann = _record(app)
    assert (ann.suppressed, ann.lifted_by, ann.hard_bounces) == (False, "delivery", 1)
    assert ann.last_delivered_at == start + 60 * minute
    assert (ann.address, ann.contact_type, ann.contact_id) == ("Ann@Customer.test", "customer", "9")
    assert _find(app, BOB) is None
    carol_record = _record(app, carol)
    assert (carol_record.hard_bounces, carol_record.suppressed) == (1, True)
    assert carol_record.last_delivered_at == start + 10 * minute
    assert carol_record.suppressed_email_id == carol_bounced.id
    dave_record = _record(app, dave)
    # the bounce is older than the delivery: counted, but the address has worked since
    assert (dave_record.hard_bounces, dave_record.suppressed) == (1, False)
    assert dave_record.last_delivered_at == start + 30 * minute
    assert _record(app, BOB, tenant="b").suppressed
    assert sorted((s["address"], s["tenant_id"]) for s in suppressed_log) == [
        (ANN, None),
        (BOB, "b"),
        (carol, None),
    ]


def test_address_health_of_an_unknown_a_failing_and_a_suppressed_address(app: Flask) -> None:
    extension = _extension(app)
    assert extension.address_health("new@customer.test") == AddressHealth(
        address="new@customer.test"
    )
    email = _send(app, ANN, BOB)
    _bounce(app, email, BOB, bounce_type="soft")
    _bounce(app, email, ANN)
    health = extension.address_health("ANN@customer.test")
    assert (health.state, health.hard_bounces, health.suppressed) == ("suppressed", 1, True)
    assert health.last_failure_email_id == email.id
    assert health.suppressed_reason == BOUNCE
    bob = extension.address_health(BOB)
    assert (bob.state, bob.soft_bounces, bob.suppressed) == ("failing", 1, False)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MAILDELIVERY_SUPPRESSION", "yes", 'set it to "block"'),
        ("MAILDELIVERY_SOFT_BOUNCE_LIMIT", 0, "1 or more"),
        ("MAILDELIVERY_SOFT_BOUNCE_LIMIT", "5", "whole number"),
    ],
)
def test_settings_that_mean_nothing_are_refused(
    make_app: AppFactory, key: str, value: Any, message: str
) -> None:
    with pytest.raises(RuntimeError, match=re.escape(message)):
        make_app(**{key: value})


THREADS = 8
BATCHES_PER_THREAD = 3


def test_concurrent_events_for_one_address_keep_exact_counts(
    make_app: AppFactory, suppressed_log: list[dict[str, Any]]
) -> None:
    """8 threads apply batches that bounce (soft, hard) or deliver emails to the same
    address at once: every email counts once, the counts are exact, and the address is
    suppressed once (row locks on PostgreSQL and MariaDB, the write lock on SQLite)."""
    app = make_app(MAILDELIVERY_SOFT_BOUNCE_LIMIT=1000)
    with app.app_context():
        emails = [_send(app, ANN, BOB) for _ in range(THREADS * BATCHES_PER_THREAD)]
        plans: list[list[tuple[int, str]]] = [[] for _ in range(THREADS)]
        for index, email in enumerate(emails):
            kind = ("soft", "hard", "delivered")[index % 3]
            plans[index % THREADS].append((email.id, kind))
    start = datetime.now(UTC) - timedelta(hours=1)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(plan: list[tuple[int, str]]) -> None:
        try:
            with app.app_context():
                session = MailDelivery.state(app).sessions()
                loaded = [(get_or_fail(session, Email, id_), kind) for id_, kind in plan]
                session.commit()  # end the read: the batches below lock what they change
                barrier.wait()
                for position, (email, kind) in enumerate(loaded):
                    at = start + timedelta(seconds=position)
                    if kind == "delivered":
                        # older than every bounce: it lifts nothing
                        earlier = at - timedelta(minutes=30)
                        simulate_event(email, "delivered", recipient=ANN, occurred_at=earlier)
                    else:
                        # reported twice, as a provider retry would: counted once
                        for _ in range(2):
                            _bounce(
                                app,
                                email,
                                bounce_type=kind,
                                occurred_at=at,
                                event_id=f"{email.public_id}-{kind}",
                            )
                    simulate_event(
                        email, "bounced", recipient=BOB, bounce_type="soft", occurred_at=at
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    per_kind = len(emails) // 3
    with app.app_context():
        ann = _record(app)
        assert (ann.hard_bounces, ann.soft_bounces, ann.complaints) == (per_kind, per_kind, 0)
        assert ann.failures == 2 * per_kind
        assert ann.suppressed
        bob = _record(app, BOB)
        assert (bob.hard_bounces, bob.soft_bounces, bob.suppressed) == (0, len(emails), False)
    assert [s["address"] for s in suppressed_log] == [ANN]


#: Recipients stored before 0007: (email id, tenant, address, status, bounce type, minute,
#: reason).
OLD_RECIPIENTS = [
    (1, None, "Ann@customer.test", "bounced", "hard", 10, "550 no such user"),
    (1, None, "bob@customer.test", "delivered", None, 10, None),
    (2, None, "ann@customer.test", "delivered", None, 5, None),
    (2, None, "carol@customer.test", "complained", None, 20, "abuse"),
    (3, "b", "ann@customer.test", "bounced", "soft", 30, "452 mailbox full"),
    (4, None, "dave@customer.test", "delivered", None, 50, None),
    (5, None, "dave@customer.test", "bounced", None, 40, "550 gone"),
]


def test_0007_backfills_the_address_records_from_the_stored_states(schema: sa.Engine) -> None:
    start = datetime(2026, 11, 30, 10, 0)
    with migrating(schema):
        migrations.upgrade(schema, "0006_webhook_inbox")
        with schema.begin() as connection:
            emails = sorted({(row[0], row[1]) for row in OLD_RECIPIENTS})
            for email_id, tenant in emails:
                connection.execute(
                    sa.text(
                        "INSERT INTO maildelivery_email (id, public_id, tenant_id, created_at,"
                        " updated_at, sender, subject, attachments, headers, metadata, status,"
                        " result) VALUES (:id, :public_id, :tenant, :at, :at,"
                        " 'billing@acme.test', 'Invoice', '[]', '{}', '{}', '', 'queued')"
                    ),
                    {"id": email_id, "public_id": f"old{email_id}", "tenant": tenant, "at": start},
                )
            for email_id, _, address, status, bounce_type, minute, reason in OLD_RECIPIENTS:
                connection.execute(
                    sa.text(
                        "INSERT INTO maildelivery_recipient (email_id, address, address_key, kind,"
                        " status, bounce_type, status_at, reason, updated_at) VALUES (:email_id,"
                        " :address, :key, 'to', :status, :bounce_type, :status_at, :reason, :at)"
                    ),
                    {
                        "email_id": email_id,
                        "address": address,
                        "key": address.lower(),
                        "status": status,
                        "bounce_type": bounce_type,
                        "status_at": start + timedelta(minutes=minute),
                        "reason": reason,
                        "at": start,
                    },
                )
        migrations.upgrade(schema, "0007_address_health")
        with schema.connect() as connection:
            rows = connection.execute(
                sa.select(
                    AddressRecord.tenant_key,
                    AddressRecord.address_key,
                    AddressRecord.hard_bounces,
                    AddressRecord.soft_bounces,
                    AddressRecord.complaints,
                    AddressRecord.failures,
                    AddressRecord.last_failure_reason,
                    AddressRecord.last_failure_email_id,
                    AddressRecord.suppressed,
                    AddressRecord.suppressed_cause,
                    AddressRecord.suppressed_email_id,
                    AddressRecord.last_delivered_at,
                )
            ).all()
        found = {(row[0], row[1]): tuple(row[2:]) for row in rows}

        def at(minute: int) -> datetime:
            return (start + timedelta(minutes=minute)).replace(tzinfo=UTC)

        assert found == {
            ("", "ann@customer.test"): (1, 0, 0, 1, "550 no such user", 1, True, "hard", 1, at(5)),
            ("", "carol@customer.test"): (0, 0, 1, 1, "abuse", 2, True, "complaint", 2, None),
            ("b", "ann@customer.test"): (
                0,
                1,
                0,
                1,
                "452 mailbox full",
                3,
                False,
                None,
                None,
                None,
            ),
            # delivered after it bounced: counted, not suppressed
            ("", "dave@customer.test"): (1, 0, 0, 1, "550 gone", 5, False, None, None, at(50)),
        }
        migrations.downgrade(schema, "0006_webhook_inbox")
        assert "maildelivery_address" not in sa.inspect(schema).get_table_names()
