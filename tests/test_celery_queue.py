"""MAILDELIVERY_QUEUE = "celery" with a real Celery worker on the machine's Redis (one test on
RabbitMQ) and a real SMTP server: the request records and returns, the worker sends after
the commit, exactly once, retrying transient failures with backoff; webhook requests are
applied by a task."""

from __future__ import annotations

import mailbox
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email, Event, WebhookInbox
from flask_maildelivery.tasks import (
    APPLY_INBOX,
    FETCH_BOUNCES,
    PURGE,
    RETRY_DUE,
    SEND_EMAIL,
    beat_schedule,
)

from .bounce_helpers import BOUNCE_ADDRESS, email_for, sample
from .conftest import AppFactory, RecordingHandler, SignalLog, SMTPServer, free_port, get_or_fail
from .kits.sendgrid import SendGridKit
from .log_helpers import ADMIN, make_log_app
from .queue_kit import (
    RABBITMQ_URL,
    celery_app,
    queue_rows,
    running_worker,
    smtp_server_on,
    wait_for,
)

#: The public id of the email the corpus's Postfix DSN reports on.
BOUNCE_PUBLIC_ID = "5f0c1b2a9d8e4f7a8b6c3d2e1f0a9b8c"


@pytest.fixture
def celery() -> Celery:
    """A Celery app on Redis with a queue of its own."""
    return celery_app()


def _queue_config(port: int) -> dict[str, Any]:
    """Celery sends through the SMTP server on ``port``, retried soon."""
    return {
        "MAILDELIVERY_QUEUE": "celery",
        "MAILDELIVERY_TRANSPORT": "smtp",
        "MAILDELIVERY_SMTP_HOST": "127.0.0.1",
        "MAILDELIVERY_SMTP_PORT": port,
        "MAILDELIVERY_SMTP_TIMEOUT": 5,
        "MAILDELIVERY_RETRY_BACKOFF": 0.2,
    }


def _queued_app(make_app: AppFactory, celery: Celery, port: int, **config: Any) -> Flask:
    app = make_app(**_queue_config(port), **config)
    MailDelivery.state(app).extension.init_celery(celery, app=app)
    return app


def _send(app: Flask, **kwargs: Any) -> Email:
    extension: MailDelivery = MailDelivery.state(app).extension
    with app.app_context():
        return extension.send(
            subject="Payslip 2026-11",
            to=["emp@acme.test"],
            cc=["hr@acme.test"],
            text="Your payslip is attached.",
            attachments=[("payslip.pdf", b"%PDF-1.4 payslip", "application/pdf")],
            **kwargs,
        )


def _stored(app: Flask, email_id: int) -> tuple[str, str | None, list[str]]:
    """The email's result, error and its recipients' statuses, read afresh."""
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        session.expire_all()
        email = get_or_fail(session, Email, email_id)
        return str(email.result), email.error, [str(r.status) for r in email.recipients]


def _raw_types(app: Flask, email_id: int, address: str = "emp@acme.test") -> list[str]:
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        return list(
            session.scalars(
                sa.select(Event.raw_type)
                .where(Event.email_id == email_id, Event.address == address)
                .order_by(Event.id)
            )
        )


def test_tasks_are_registered_under_the_package_name(make_app: AppFactory, celery: Celery) -> None:
    app = _queued_app(make_app, celery, free_port())
    assert app.extensions["maildelivery"].tasks.enqueue_send is not None
    assert {SEND_EMAIL, APPLY_INBOX, RETRY_DUE, PURGE, FETCH_BOUNCES} <= set(celery.tasks)
    assert {entry["task"] for entry in beat_schedule().values()} == {RETRY_DUE, PURGE}
    with_bounces = beat_schedule(bounces_every=300)
    assert with_bounces[FETCH_BOUNCES] == {"task": FETCH_BOUNCES, "schedule": 300}
    assert celery.conf.beat_schedule == {}  # documented, not imposed


def test_the_request_records_and_the_worker_sends_once_with_signals(
    make_app: AppFactory, celery: Celery, smtp_server: SMTPServer, signal_log: SignalLog
) -> None:
    app = _queued_app(make_app, celery, smtp_server.port)
    sent_from: list[str] = []

    def where(sender: Any, **kwargs: Any) -> None:
        sent_from.append(threading.current_thread().name)

    from flask_maildelivery import signals

    signals.email_sent.connect(where)
    try:
        email = _send(app)
        # recorded and committed, not sent: no worker runs yet
        assert email.result == "queued"
        assert _stored(app, email.id)[0] == "queued"
        assert queue_rows(app) == 1
        assert smtp_server.messages == []
        assert signal_log == []

        with running_worker(celery):
            wait_for(lambda: queue_rows(app) == 0, what="the worker to send")
            message = wait_for(lambda: smtp_server.messages, what="the message")
    finally:
        signals.email_sent.disconnect(where)

    assert len(message) == 1
    assert sorted(message[0].rcpt_tos) == ["emp@acme.test", "hr@acme.test"]
    assert b'filename="payslip.pdf"' in message[0].data
    assert [name for name, _ in signal_log] == ["email-sent"]
    assert len(sent_from) == 1
    assert sent_from[0] != threading.current_thread().name
    assert _stored(app, email.id) == ("queued", None, ["queued", "queued"])


def test_server_down_then_up_defers_then_delivers(make_app: AppFactory, celery: Celery) -> None:
    port = free_port()
    app = _queued_app(make_app, celery, port)
    with running_worker(celery):
        email = _send(app)
        wait_for(
            lambda: _stored(app, email.id)[2] == ["deferred", "deferred"],
            what="a deferred attempt",
        )
        result, error, _ = _stored(app, email.id)
        assert result == "processed"
        assert "cannot send through SMTP server" in (error or "")
        with smtp_server_on(port) as server:
            wait_for(lambda: queue_rows(app) == 0, what="the retry to send")
            assert len(server.messages) == 1
    raw = _raw_types(app, email.id)
    assert raw[0] == "attempt-1"
    assert raw[-1].startswith("accepted-")
    assert all(name.startswith("attempt-") for name in raw[:-1])
    assert _stored(app, email.id)[1] is None


def test_a_retry_that_goes_through_leaves_deferred_and_the_attention_list(
    make_app: AppFactory, celery: Celery, signal_log: SignalLog
) -> None:
    port = free_port()
    kit = SendGridKit()
    log = make_log_app(make_app, **_queue_config(port), **kit.config())
    log.viewer.user = ADMIN
    log.extension.init_celery(celery, app=log.app)
    app, client = log.app, log.client()

    def attention() -> list[int]:
        return [item["id"] for item in client.get("/maildelivery/api/emails").get_json()["items"]]

    with running_worker(celery):
        email = _send(app)
        wait_for(lambda: _stored(app, email.id)[2] == ["deferred", "deferred"], what="deferral")
        assert attention() == [email.id]
        # the deferral's signals go after its commit
        wait_for(lambda: [n for n, _ in signal_log if n == "email-result-changed"], what="signals")
        signal_log.clear()
        with smtp_server_on(port) as server:
            wait_for(
                lambda: _stored(app, email.id)[2] == ["processed", "processed"],
                what="the accepted retry to count",
            )
            assert len(server.messages) == 1
    # the embedded worker stops cold, which sends no worker_shutdown: close the SMTP
    # connection it kept, as a real worker's shutdown does
    MailDelivery.state(app).transport.close()
    assert _stored(app, email.id) == ("processed", None, ["processed", "processed"])
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        assert get_or_fail(session, Email, email.id).status == ""
    assert attention() == []
    detail = client.get(f"/maildelivery/api/emails/{email.id}").get_json()
    for recipient in detail["recipients"]:
        reasons = [e["reason"] for e in recipient["events"]]
        assert reasons[0].startswith("attempt 1 of 5 failed: cannot send through SMTP server")
        assert reasons[-1].startswith("accepted on attempt ")
        assert recipient["reason"] == reasons[-1]
    # the status change is signalled once per recipient; the result stays "processed"
    changes = [
        (name, kwargs["old"], kwargs["new"])
        for name, kwargs in signal_log
        if name in ("recipient-status-changed", "email-result-changed")
    ]
    assert changes == [("recipient-status-changed", "deferred", "processed")] * 2

    # a provider's delay notice after the acceptance still counts
    response = kit.post_events(
        app, [kit.one_event("deferred", email.public_id, address="hr@acme.test")]
    )
    assert response.status_code == 200
    with running_worker(celery):
        wait_for(
            lambda: _stored(app, email.id)[2] == ["processed", "deferred"],
            what="the provider's deferral",
        )
    assert attention() == [email.id]


class _RejectingHandler(RecordingHandler):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "554 5.7.1 message refused by policy"


def test_a_permanent_refusal_fails_after_one_attempt(make_app: AppFactory, celery: Celery) -> None:
    port = free_port()
    with smtp_server_on(port, _RejectingHandler()):
        app = _queued_app(make_app, celery, port)
        with running_worker(celery):
            email = _send(app)
            wait_for(lambda: _stored(app, email.id)[0] == "failed", what="the failure")
    _, error, statuses = _stored(app, email.id)
    assert "554" in (error or "")
    assert statuses == ["failed", "failed"]
    assert _raw_types(app, email.id) == ["send-failed"]
    assert queue_rows(app) == 0


def test_the_last_attempt_fails_the_email(make_app: AppFactory, celery: Celery) -> None:
    app = _queued_app(make_app, celery, free_port(), MAILDELIVERY_MAX_ATTEMPTS=3)
    with running_worker(celery):
        email = _send(app)
        wait_for(lambda: _stored(app, email.id)[0] == "failed", what="the last attempt")
    _, error, statuses = _stored(app, email.id)
    assert "attempt 3 of 3; no more attempts" in (error or "")
    assert statuses == ["failed", "failed"]
    assert _raw_types(app, email.id) == ["attempt-1", "attempt-2", "send-failed"]
    assert queue_rows(app) == 0


def test_a_task_delivered_several_times_sends_once(
    make_app: AppFactory, celery: Celery, smtp_server: SMTPServer
) -> None:
    app = _queued_app(make_app, celery, smtp_server.port)
    email = _send(app)
    send_task = celery.tasks[SEND_EMAIL]
    for _ in range(5):
        send_task.delay(email.id)
    # four threads take the six deliveries of the task at once
    with running_worker(celery, concurrency=4):
        wait_for(lambda: queue_rows(app) == 0, what="the send")
        time.sleep(1.0)  # the other deliveries ran too
    assert len(smtp_server.messages) == 1


def test_a_scheduled_send_is_not_sent_before_its_time(
    make_app: AppFactory, celery: Celery, smtp_server: SMTPServer
) -> None:
    app = _queued_app(make_app, celery, smtp_server.port)
    with running_worker(celery):
        send_at = datetime.now(UTC) + timedelta(seconds=3)
        email = _send(app, send_at=send_at)
        time.sleep(1.5)
        assert smtp_server.messages == []
        assert queue_rows(app) == 1
        wait_for(lambda: smtp_server.messages, what="the scheduled send")
        received_at = datetime.now(UTC)
    assert received_at >= send_at
    assert len(smtp_server.messages) == 1
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        stored = get_or_fail(session, Email, email.id)
        assert stored.send_at == send_at
        assert stored.sent_at is not None
        assert stored.sent_at >= send_at


def test_a_webhook_request_is_stored_then_applied_by_a_task(
    make_app: AppFactory, celery: Celery, smtp_server: SMTPServer
) -> None:
    kit = SendGridKit()
    app = _queued_app(make_app, celery, smtp_server.port, **kit.config())
    email = _send(app)
    response = kit.post_events(
        app, [kit.one_event("delivered", email.public_id, address="emp@acme.test")]
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "stored"
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        assert session.scalar(sa.select(WebhookInbox.status)) == "pending"
    with running_worker(celery):
        wait_for(lambda: _stored(app, email.id)[2][0] == "delivered", what="the event")
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        session.expire_all()
        assert session.scalar(sa.select(WebhookInbox.status)) == "applied"


def test_the_periodic_task_reads_the_bounce_mailbox(
    make_app: AppFactory, celery: Celery, tmp_path: Path
) -> None:
    maildir = mailbox.Maildir(tmp_path / "bounces", create=True)
    maildir.add(sample("postfix_hard.eml"))
    app = make_app(
        MAILDELIVERY_QUEUE="celery",
        MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        MAILDELIVERY_BOUNCE_MAILBOX=f"maildir://{tmp_path / 'bounces'}",
    )
    MailDelivery.state(app).extension.init_celery(celery, app=app)
    with app.app_context():
        email_id = email_for(app, ["nobody@customer.example"], BOUNCE_PUBLIC_ID)
    celery.tasks[FETCH_BOUNCES].delay()
    with running_worker(celery):
        wait_for(
            lambda: _stored(app, email_id)[2] == ["bounced"], what="the bounce read by the task"
        )
    assert [name for name in (tmp_path / "bounces" / "new").iterdir()] == []


def test_a_queued_send_goes_through_rabbitmq(make_app: AppFactory, smtp_server: SMTPServer) -> None:
    celery = celery_app(RABBITMQ_URL)
    app = _queued_app(make_app, celery, smtp_server.port)
    email = _send(app)
    with running_worker(celery):
        wait_for(lambda: smtp_server.messages, what="the send through RabbitMQ")
    assert len(smtp_server.messages) == 1
    assert _stored(app, email.id)[0] == "queued"
    assert queue_rows(app) == 0


def test_a_worker_reuses_one_smtp_connection(
    make_app: AppFactory, celery: Celery, smtp_server: SMTPServer
) -> None:
    app = _queued_app(make_app, celery, smtp_server.port)
    emails = [_send(app) for _ in range(5)]
    with running_worker(celery):
        wait_for(lambda: len(smtp_server.messages) == len(emails), what="five sends")
    assert smtp_server.handler.connections == 1
