"""Retries and scheduled sends without a task queue: the request records a transient
failure as ``failed`` with its recipients ``deferred``, and ``flask maildelivery retry``
(cron) sends again, with backoff, up to MAILDELIVERY_MAX_ATTEMPTS; scheduled sends go when
due; a send is claimed before it is handed over, so racing senders send it once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email, Event, QueuedSend
from flask_maildelivery.sending.queue import MAX_BACKOFF, backoff_delay, claim
from flask_maildelivery.sending.retry import send_queued

from .conftest import (
    AppFactory,
    RecordingHandler,
    SignalLog,
    SMTPServer,
    free_port,
    get_or_fail,
)
from .kits.sendgrid import SendGridKit
from .log_helpers import ADMIN, LogApp, make_log_app
from .queue_kit import queue_rows, smtp_server_on
from .test_overview_rollup import recount, snapshot


def _smtp_app(make_app: AppFactory, port: int, **config: Any) -> Flask:
    return make_app(
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=port,
        MAILDELIVERY_SMTP_TIMEOUT=5,
        MAILDELIVERY_RETRY_BACKOFF=0.05,
        **config,
    )


def _send(app: Flask, **kwargs: Any) -> int:
    with app.app_context():
        email = MailDelivery.state(app).extension.send(
            subject="Payslip 2026-11",
            to=["emp@acme.test"],
            cc=["hr@acme.test"],
            text="Your payslip is attached.",
            attachments=[("payslip.pdf", b"%PDF-1.4 payslip", "application/pdf")],
            **kwargs,
        )
        return int(email.id)


def _retry(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["maildelivery", "retry", *args])


def _stored(app: Flask, email_id: int) -> Email:
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        session.expire_all()
        email = get_or_fail(session, Email, email_id)
        # load what the assertions read while the session is open
        _ = [(r.status, r.reason) for r in email.recipients], list(email.events)
        return email


def _events(app: Flask, email_id: int) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        rows = session.execute(
            sa.select(Event.type, Event.raw_type, Event.address)
            .where(Event.email_id == email_id)
            .order_by(Event.id)
        ).all()
        return [(str(t), raw, address) for t, raw, address in rows]


def test_backoff_doubles_from_the_setting_with_jitter_up_to_six_hours() -> None:
    no_jitter = [backoff_delay(n, 60, jitter=lambda: 0.0) for n in (1, 2, 3, 4)]
    assert no_jitter == [60, 120, 240, 480]
    assert backoff_delay(1, 60, jitter=lambda: 1.0) == 75
    assert backoff_delay(20, 60, jitter=lambda: 0.0) == MAX_BACKOFF == 6 * 3600
    assert backoff_delay(20, 60, jitter=lambda: 1.0) == MAX_BACKOFF
    delays = {backoff_delay(2, 60) for _ in range(50)}
    assert all(120 <= d <= 150 for d in delays)
    assert len(delays) > 1


def test_server_down_defers_then_the_retry_command_delivers_once(make_app: AppFactory) -> None:
    port = free_port()
    app = _smtp_app(make_app, port)
    email_id = _send(app)

    failed = _stored(app, email_id)
    assert failed.result == "failed"
    assert "cannot send through SMTP server" in (failed.error or "")
    assert [r.status for r in failed.recipients] == ["deferred", "deferred"]
    assert all("attempt 1 of 5 failed" in (r.reason or "") for r in failed.recipients)
    assert queue_rows(app) == 1

    with smtp_server_on(port) as server:
        time.sleep(0.2)  # past the backoff
        result = _retry(app)
        assert result.exit_code == 0, result.output
        assert f"email {email_id}: sent" in result.output
        assert len(server.messages) == 1
        assert b"%PDF-1.4 payslip" not in server.messages[0].data  # base64 in the MIME
        assert b"payslip.pdf" in server.messages[0].data
        assert sorted(server.messages[0].rcpt_tos) == ["emp@acme.test", "hr@acme.test"]

        again = _retry(app)
        assert again.output.strip() == "no queued email is due"
        assert len(server.messages) == 1

    sent = _stored(app, email_id)
    assert sent.error is None
    # the result follows the recipients again: deferred, then accepted by the server
    assert sent.result == "processed"
    assert queue_rows(app) == 0
    assert _events(app, email_id) == [
        ("deferred", "attempt-1", "emp@acme.test"),
        ("deferred", "attempt-1", "hr@acme.test"),
        ("processed", "accepted-2", "emp@acme.test"),
        ("processed", "accepted-2", "hr@acme.test"),
    ]


class _RejectingHandler(RecordingHandler):
    """Answers DATA with a permanent refusal."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "554 5.7.1 message refused by policy"


def test_permanent_failure_fails_after_one_attempt(make_app: AppFactory) -> None:
    port = free_port()
    with smtp_server_on(port, _RejectingHandler()):
        app = _smtp_app(make_app, port)
        email_id = _send(app)
    email = _stored(app, email_id)
    assert email.result == "failed"
    assert "554" in (email.error or "")
    assert [r.status for r in email.recipients] == ["failed", "failed"]
    assert queue_rows(app) == 0
    assert _retry(app).output.strip() == "no queued email is due"


def test_the_last_attempt_fails_the_email(make_app: AppFactory) -> None:
    app = _smtp_app(make_app, free_port(), MAILDELIVERY_MAX_ATTEMPTS=3)
    email_id = _send(app)
    for attempt in (2, 3):
        time.sleep(0.5)  # past the backoff (0.05 s doubled, plus jitter)
        result = _retry(app)
        assert result.exit_code == 0, result.output
        outcome = "deferred" if attempt < 3 else "failed"
        assert f"email {email_id}: {outcome}" in result.output
    email = _stored(app, email_id)
    assert email.result == "failed"
    assert "attempt 3 of 3; no more attempts" in (email.error or "")
    assert [r.status for r in email.recipients] == ["failed", "failed"]
    assert [raw for _, raw, address in _events(app, email_id) if address == "emp@acme.test"] == [
        "attempt-1",
        "attempt-2",
        "send-failed",
    ]
    assert queue_rows(app) == 0


def test_a_scheduled_send_waits_for_its_time(make_app: AppFactory, smtp_server: SMTPServer) -> None:
    app = _smtp_app(make_app, smtp_server.port)
    send_at = datetime.now(UTC) + timedelta(seconds=1.5)
    email_id = _send(app, send_at=send_at)
    scheduled = _stored(app, email_id)
    assert scheduled.send_at == send_at
    assert scheduled.sent_at == send_at
    assert scheduled.result == "queued"

    assert _retry(app).output.strip() == "no queued email is due"
    assert smtp_server.messages == []

    time.sleep(max(0.0, (send_at - datetime.now(UTC)).total_seconds()) + 0.1)
    result = _retry(app)
    assert f"email {email_id}: sent" in result.output
    assert len(smtp_server.messages) == 1
    sent = _stored(app, email_id)
    assert sent.sent_at is not None
    assert sent.sent_at >= send_at
    assert queue_rows(app) == 0


def test_a_naive_send_at_is_refused(make_app: AppFactory) -> None:
    app = make_app()
    with pytest.raises(ValueError, match="aware datetime"):
        _send(app, send_at=datetime(2030, 1, 1, 9, 0))


def test_an_unknown_queue_is_refused_at_init_app(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="MAILDELIVERY_QUEUE='rq'"):
        make_app(MAILDELIVERY_QUEUE="rq")


def test_celery_queue_without_init_celery_says_so_and_keeps_the_email(
    make_app: AppFactory,
) -> None:
    app = make_app(MAILDELIVERY_QUEUE="celery")
    with pytest.raises(RuntimeError, match=r"call mail_delivery.init_celery\(celery_app\)"):
        _send(app)
    assert queue_rows(app) == 1
    with app.app_context():
        assert MailDelivery.state(app).extension.session.scalar(sa.select(Email.result)) == (
            "queued"
        )


def test_a_send_stuck_in_sending_is_reported_not_sent_again(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = _smtp_app(make_app, smtp_server.port, MAILDELIVERY_QUEUE_TIMEOUT=0)
    email_id = _send(app, send_at=datetime.now(UTC))
    with app.app_context():
        # a worker claims it, then dies before handing it over
        assert claim(MailDelivery.state(app).sessions(), email_id) is not None

    result = _retry(app)
    assert f"email {email_id} stuck in 'sending'" in result.output
    assert f"flask maildelivery retry --release {email_id}" in result.output
    assert smtp_server.messages == []

    released = _retry(app, "--release", str(email_id), "--release", "999999")
    assert "not stuck in 'sending' (sent, failed or not queued): 999999" in released.output
    assert f"email {email_id}: sent" in released.output
    assert len(smtp_server.messages) == 1
    assert queue_rows(app) == 0


def test_racing_senders_hand_a_send_over_once(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = _smtp_app(make_app, smtp_server.port)
    email_id = _send(app, send_at=datetime.now(UTC))
    start = threading.Barrier(6)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            with app.app_context():
                start.wait()
                attempt = send_queued(app, email_id)
                outcomes.append(attempt.outcome.value if attempt.outcome else "not claimed")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(outcomes) == ["not claimed"] * 5 + ["sent"]
    assert len(smtp_server.messages) == 1
    with app.app_context():
        session = MailDelivery.state(app).extension.session
        assert session.scalar(sa.select(sa.func.count()).select_from(QueuedSend)) == 0


def test_the_detail_page_and_the_api_show_where_a_send_stands(make_app: AppFactory) -> None:
    log = make_log_app(
        make_app,
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=free_port(),
        MAILDELIVERY_RETRY_BACKOFF=600,
    )
    log.viewer.user = ADMIN
    send_at = datetime(2031, 3, 1, 8, 30, tzinfo=UTC)
    with log.app.app_context():
        scheduled = log.extension.send(
            subject="Report", to=["a@b.test"], text="x", send_at=send_at
        ).id
        deferred = log.extension.send(subject="Payslip", to=["c@d.test"], text="x").id
    client = log.client()

    page = client.get(f"/maildelivery/{scheduled}").get_data(as_text=True)
    assert "Scheduled for" in page
    assert "Queued, due" in page
    assert "2031" in page
    api = client.get(f"/maildelivery/api/emails/{scheduled}").get_json()
    assert api["send_at"] == "2031-03-01T08:30:00+00:00"
    assert api["queue"]["state"] == "waiting"
    assert api["queue"]["attempts"] == 0

    page = client.get(f"/maildelivery/{deferred}").get_data(as_text=True)
    assert "Waiting for attempt 2, due" in page
    api = client.get(f"/maildelivery/api/emails/{deferred}").get_json()
    assert api["send_at"] is None
    assert api["queue"]["attempts"] == 1
    assert "cannot send through SMTP server" in api["queue"]["last_error"]

    from flask_babel import Babel

    Babel(log.app, locale_selector=lambda: "fr")
    french = client.get(f"/maildelivery/{deferred}").get_data(as_text=True)
    assert "En attente de la tentative 2" in french


# -- a retry that goes through: the earlier attempts' deferrals stop counting --------------

API = "/maildelivery/api/emails"


def _log_app(make_app: AppFactory, port: int, **config: Any) -> LogApp:
    """An SMTP app with the log pages (the acting user an admin) and SendGrid's webhook."""
    log = make_log_app(
        make_app,
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=port,
        MAILDELIVERY_SMTP_TIMEOUT=5,
        MAILDELIVERY_RETRY_BACKOFF=0.05,
        **SENDGRID.config(),
        **config,
    )
    log.viewer.user = ADMIN
    return log


def _attention_ids(log: LogApp) -> list[int]:
    """The record numbers on the default list ("Emails needing attention")."""
    return [item["id"] for item in log.client().get(API).get_json()["items"]]


def _recipient_logs(log: LogApp, email_id: int) -> dict[str, list[tuple[str, str, str]]]:
    """Each recipient's status log from the API: ``(type, raw type, reason)`` per event."""
    detail = log.client().get(f"{API}/{email_id}").get_json()
    return {
        r["address"]: [(e["type"], e["raw_type"], e["reason"]) for e in r["events"]]
        for r in detail["recipients"]
    }


def _retry_once_due(app: Flask) -> Any:
    time.sleep(0.3)  # past the backoff (0.05 s, plus jitter)
    result = _retry(app)
    assert result.exit_code == 0, result.output
    return result


SENDGRID = SendGridKit()


def test_a_retry_that_goes_through_is_no_longer_deferred(
    make_app: AppFactory, signal_log: SignalLog
) -> None:
    port = free_port()
    log = _log_app(make_app, port)
    email_id = _send(log.app)
    deferred = _stored(log.app, email_id)
    assert (deferred.result, deferred.status) == ("failed", "deferred")
    assert email_id in _attention_ids(log)
    signal_log.clear()

    with smtp_server_on(port) as server:
        result = _retry_once_due(log.app)
        assert f"email {email_id}: sent" in result.output
        assert len(server.messages) == 1

    sent = _stored(log.app, email_id)
    assert (sent.result, sent.status, sent.error) == ("processed", "", None)
    assert [(r.status, r.reason) for r in sent.recipients] == [
        ("processed", "accepted on attempt 2"),
        ("processed", "accepted on attempt 2"),
    ]
    assert _attention_ids(log) == []
    # the log keeps both attempts
    for events in _recipient_logs(log, email_id).values():
        assert [(type_, raw) for type_, raw, _ in events] == [
            ("deferred", "attempt-1"),
            ("processed", "accepted-2"),
        ]
        assert events[0][2].startswith("attempt 1 of 5 failed: cannot send through SMTP server")
        assert events[1][2] == "accepted on attempt 2"
    page = log.client().get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert "attempt 1 of 5 failed" in page
    assert "accepted on attempt 2" in page
    # each change signalled once, after the commit
    changes = [
        (name, kwargs.get("old"), kwargs.get("new"))
        for name, kwargs in signal_log
        if name != "event-received"
    ]
    assert sorted(changes, key=str) == sorted(
        [
            ("email-result-changed", "failed", "processed"),
            ("recipient-status-changed", "deferred", "processed"),
            ("recipient-status-changed", "deferred", "processed"),
            ("email-sent", None, None),
        ],
        key=str,
    )
    # a provider's own delivery delay after the acceptance counts again
    response = SENDGRID.post_events(
        log.app, [SENDGRID.one_event("deferred", sent.public_id, address="emp@acme.test")]
    )
    assert response.status_code == 200
    later = _stored(log.app, email_id)
    assert (later.result, later.status) == ("processed", "deferred")
    assert [(r.address, r.status, r.reason) for r in later.recipients] == [
        ("emp@acme.test", "deferred", "421 try again later"),
        ("hr@acme.test", "processed", "accepted on attempt 2"),
    ]
    assert _attention_ids(log) == [email_id]
    # the overview's rollups moved the email with each change
    assert snapshot(log.app) == recount(log.app)


def test_a_recipient_refused_on_the_accepting_attempt_stays_failed(
    make_app: AppFactory,
) -> None:
    port = free_port()
    log = _log_app(make_app, port)
    email_id = _send(log.app)
    handler = RecordingHandler()
    handler.refuse = {"hr@acme.test"}
    with smtp_server_on(port, handler) as server:
        assert f"email {email_id}: sent" in _retry_once_due(log.app).output
        assert server.messages[0].rcpt_tos == ["emp@acme.test"]

    email = _stored(log.app, email_id)
    assert (email.result, email.status) == ("warning", "failed")
    assert [(r.address, r.status) for r in email.recipients] == [
        ("emp@acme.test", "processed"),
        ("hr@acme.test", "failed"),
    ]
    assert "550 5.1.1 mailbox unavailable" in (email.recipients[1].reason or "")
    logs = _recipient_logs(log, email_id)
    assert [raw for _, raw, _ in logs["hr@acme.test"]] == ["attempt-1", "smtp-refused"]
    assert [raw for _, raw, _ in logs["emp@acme.test"]] == ["attempt-1", "accepted-2"]
    assert _attention_ids(log) == [email_id]
    # the overview's rollups count the refused recipient's failure and the email's outcome
    assert snapshot(log.app) == recount(log.app)


class _ReportingHandler(RecordingHandler):
    """Posts a provider's webhook request while the message is being accepted: the
    provider's event is stored before the accepting attempt is recorded."""

    def __init__(self, report: Callable[[], None]) -> None:
        super().__init__()
        self.report = report

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.report()
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize(("kind", "expected"), [("deferred", "deferred"), ("delivered", "")])
def test_a_provider_event_gives_the_same_state_before_or_after_the_accepted_attempt(
    make_app: AppFactory, kind: str, expected: str
) -> None:
    port = free_port()
    log = _log_app(make_app, port)
    early, late = _send(log.app), _send(log.app)
    public_ids = {id_: _stored(log.app, id_).public_id for id_ in (early, late)}
    at = datetime.now(UTC).replace(microsecond=0)

    def report(email_id: int) -> None:
        event = SENDGRID.one_event(
            kind, public_ids[email_id], address="emp@acme.test", at=at, event_id=f"sg-{email_id}"
        )
        responses.append(SENDGRID.post_events(log.app, [event]).status_code)

    responses: list[int] = []
    # the first email's provider event is stored while its retry is accepted, before the
    # accepted attempt is recorded; the second's after
    with smtp_server_on(port, _ReportingHandler(lambda: report(early))):
        time.sleep(0.3)
        with log.app.app_context():
            assert send_queued(log.app, early).outcome is not None
    with smtp_server_on(port):
        with log.app.app_context():
            assert send_queued(log.app, late).outcome is not None
        report(late)
    assert responses == [200, 200]

    def state(email_id: int) -> tuple[Any, ...]:
        email = _stored(log.app, email_id)
        return (
            email.result,
            email.status,
            [(r.address, r.status, r.reason, r.smtp_code) for r in email.recipients],
            email.recipients[0].status_at,  # the provider event's time
        )

    assert state(early) == state(late)
    result, status, recipients, status_at = state(early)
    assert (result, status, status_at) == ("processed", expected, at)
    assert [r[1] for r in recipients] == [kind, "processed"]
    # the log is in event time order: the provider's time is in whole seconds
    assert sorted(raw for _, raw, _ in _recipient_logs(log, early)["emp@acme.test"]) == [
        "accepted-2",
        "attempt-1",
        kind,
    ]
