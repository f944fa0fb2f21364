"""Webhook batches against the database: a failure mid-batch leaves nothing of the batch
behind, the request kept in the inbox for a retry; an
event that beats its email is applied when the email appears, or by ``reconcile``; the
endpoint is exempt from CSRF protection."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flask_maildelivery.extension import MailDelivery
from flask_maildelivery.models import Email, Recipient, utcnow
from flask_maildelivery.webhooks import inbox

from .kits import SendGridKit, post
from .webhook_helpers import (
    email_result,
    inbox_rows,
    recipient_states,
    send_email,
    stored_events,
)

ADDRESSES = tuple(f"r{i}@customer.test" for i in range(5))


@pytest.mark.parametrize(
    ("failing_table", "column"),
    [("maildelivery_recipient", "status"), ("maildelivery_email", "result")],
    ids=["recipient-update", "email-update"],
)
def test_database_failure_mid_batch_keeps_the_request_in_the_inbox(
    make_app: Any, failing_table: str, column: str
) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    emails = [send_email(app, to=ADDRESSES) for _ in range(4)]
    now = datetime.now(UTC)
    events = [
        kit.one_event(kind, public_id, at=now, address=address)
        for _, public_id in emails
        for address in ADDRESSES
        for kind in ("delivered", "open")
    ]
    with app.app_context():
        engine = MailDelivery.state(app).db.engine
    statements: list[str] = []

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split()[0])
        # the state update of that table (not the no-op write that takes SQLite's lock);
        # MariaDB names the joined table too (``UPDATE recipient, event SET``)
        updated = re.match(rf"\s*UPDATE {failing_table}\b[^;]*? SET ", statement)
        if updated and column in statement:
            raise sa.exc.OperationalError(statement, {}, Exception("injected failure"))

    sa.event.listen(engine, "before_cursor_execute", fail)
    try:
        response = post(app, kit, kit.request(events))
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail)
    # the request is stored: the provider must not retry
    [row] = inbox_rows(app)
    assert response.status_code == 200
    assert response.get_json() == {"inbox": row.id, "status": "failed"}
    assert "INSERT" in statements  # the failure came after the events were written
    assert stored_events(app) == []
    for email_id, _ in emails:
        assert set(recipient_states(app, email_id).values()) == {("queued", None)}
        assert email_result(app, email_id) == ("queued", "")
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.error is not None
    assert "injected failure" in row.error
    # applied again once the fault is gone: everything, once
    with app.app_context():
        outcome = inbox.apply(app, row.id)
    assert outcome.report is not None
    assert outcome.report.stored == len(events)
    assert len(stored_events(app)) == len(events)
    [row] = inbox_rows(app)
    assert (row.status, row.attempts, row.error) == ("applied", 2, None)
    assert row.applied_at is not None


def test_event_before_its_email_is_applied_when_the_email_appears(
    make_app: Any, signal_log: Any
) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config(), MAILDELIVERY_TRANSPORT="tests.webhook_helpers:KnownIdTransport")
    message_id = "AbCdEfGhIjKlMnOpQrStUv"
    event = kit.one_event("delivered", None, message_id=message_id, event_id="early-1")
    response = kit.post_events(app, [event])
    assert response.get_json() == {"stored": 1, "duplicates": 0, "unmatched": 1}
    [stored] = stored_events(app)
    assert stored.email_id is None
    signal_log.clear()
    email_id, _ = send_email(app, metadata={"provider_message_id": message_id})
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"
    assert email_result(app, email_id) == ("delivered", "")
    assert ("recipient-status-changed", "queued", "delivered") in [
        (n, kw.get("old"), kw.get("new")) for n, kw in signal_log
    ]
    [stored] = stored_events(app)
    assert stored.email_id == email_id


def test_reconcile_applies_what_remains_unmatched(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    message_id = "ZyXwVuTsRqPoNmLkJiHgFe"
    bounce = kit.one_event(
        "hard_bounce", None, message_id=message_id, address="Ann@Customer.test", event_id="early-2"
    )
    assert kit.post_events(app, [bounce]).get_json()["unmatched"] == 1
    # the email is recorded by a path that does not look for waiting events (an import, a
    # crash between the send and the id's commit)
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        email = Email(
            sender="billing@acme.test",
            subject="Invoice",
            provider_message_id=message_id,
            result="queued",
            sent_at=utcnow() - timedelta(minutes=1),
        )
        email.recipients.append(
            Recipient(address="ann@customer.test", address_key="ann@customer.test", kind="to")
        )
        session.add(email)
        session.commit()
        email_id = email.id
    result = app.test_cli_runner().invoke(args=["maildelivery", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "1 recipient status change(s), 1 result change(s)" in result.output
    assert recipient_states(app, email_id)["ann@customer.test"] == ("bounced", "hard")
    assert email_result(app, email_id) == ("error", "bounced")
    again = app.test_cli_runner().invoke(args=["maildelivery", "reconcile"])
    assert "0 recipient status change(s), 0 result change(s)" in again.output


@pytest.mark.parametrize("csrf_first", [True, False])
def test_webhooks_are_exempt_from_csrf(database_url: str, schema: Any, csrf_first: bool) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from flask_wtf.csrf import CSRFProtect

    kit = SendGridKit()
    app = Flask("csrf_host")
    app.config.update(
        SECRET_KEY="k",
        SQLALCHEMY_DATABASE_URI=database_url,
        MAILDELIVERY_TRANSPORT="memory",
        **kit.config(),
    )
    db = SQLAlchemy(app)
    csrf = CSRFProtect()
    if csrf_first:
        csrf.init_app(app)
    MailDelivery(app, db=db)
    if not csrf_first:
        csrf.init_app(app)

    @app.post("/host-form")
    def host_form() -> str:
        return "ok"

    client = app.test_client()
    try:
        assert client.post("/host-form").status_code == 400  # the host's forms stay protected
        event = kit.one_event("delivered", None, event_id="csrf-1")
        body, headers = kit.request([event])
        response = client.post("/maildelivery/webhooks/sendgrid", data=body, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
    finally:
        with app.app_context():
            from .conftest import clear_tables

            db.session.remove()
            clear_tables(db.engine)
            db.engine.dispose()


def test_chunked_body_above_the_limit_is_413(make_app: Any) -> None:
    import io

    kit = SendGridKit()
    app = make_app(**kit.config(), MAILDELIVERY_WEBHOOK_MAX_BYTES=100_000)
    event = kit.one_event("delivered", None, event_id="big")
    body, headers = kit.request([event] * 1000)
    assert len(body) > 100_000
    response = app.test_client().post(
        "/maildelivery/webhooks/sendgrid",
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        # what a WSGI server sets for a chunked request body
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert stored_events(app) == []


def test_large_body_within_the_limit_is_read_whole(make_app: Any) -> None:
    import io

    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app, to=ADDRESSES)
    events = [
        kit.one_event("delivered", public_id, address=a, event_id=f"e{i}-{a}")
        for i in range(60)
        for a in ADDRESSES
    ]
    body, headers = kit.request(events)
    assert len(body) > 64 * 1024  # read in several chunks
    response = app.test_client().post(
        "/maildelivery/webhooks/sendgrid",
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        # what a WSGI server sets for a chunked request body
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == len(events)
