"""What is particular to the Mailgun webhook, and payloads copied from Mailgun's
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .kits import MailgunKit, post
from .webhook_helpers import (
    Outcome,
    email_result,
    event_outcome,
    recipient_outcome,
    recipient_states,
    send_email,
    set_message_id,
    stored_events,
)


def test_documented_failures(make_app: Any) -> None:
    """The permanent and the temporary failure of Mailgun's Events reference
    (mailgun/documentation, source/api-events.rst: webhooks post the same event
    structure as ``event-data``), each signed as a webhook, unchanged but for the
    signature: both find their email by the message id the send API returned (with angle
    brackets, the events carry it without)."""
    kit = MailgunKit()
    app = kit.start(make_app)
    failed_id, _ = send_email(app, to=("recipient@example.com",))
    set_message_id(app, failed_id, "<20130822185902.31528.73196@samples.mailgun.org>")
    delayed_id, _ = send_email(app, to=("baz@example.com", "bar@example.com"))
    set_message_id(app, delayed_id, "<20130813230036.10303.40433@samples.mailgun.org>")
    permanent = {
        "signature": kit.signature(),
        "event-data": {
            "severity": "permanent",
            "tags": [],
            "envelope": {
                "transport": "smtp",
                "sender": "postmaster@samples.mailgun.org",
                "sending-ip": "184.173.153.199",
            },
            "delivery-status": {"message": "Relay Not Permitted", "code": 550, "description": None},
            "campaigns": [],
            "reason": "bounce",
            "user-variables": {},
            "flags": {"is-authenticated": True, "is-test-mode": False},
            "timestamp": 1377198389.769129,
            "message": {
                "headers": {
                    "to": "recipient@example.com",
                    "message-id": "20130822185902.31528.73196@samples.mailgun.org",
                    "from": "John Doe <sender@example.com>",
                    "subject": "Test Subject",
                },
                "attachments": [],
                "recipients": ["recipient@example.com"],
                "size": 557,
            },
            "recipient": "recipient@example.com",
            "event": "failed",
        },
    }
    temporary = {
        "signature": kit.signature(),
        "event-data": {
            "severity": "temporary",
            "tags": [],
            "envelope": {"sender": "me@samples.mailgun.org", "transport": ""},
            "delivery-status": {
                "code": 498,
                "message": "No MX for [example.com]",
                "retry-seconds": 900,
                "description": "No MX for [example.com]",
            },
            "campaigns": [],
            "reason": "generic",
            "user-variables": {},
            "flags": {"is-authenticated": True, "is-test-mode": False},
            "timestamp": 1376435471.10744,
            "message": {
                "headers": {
                    "to": "baz@example.com, bar@example.com",
                    "message-id": "20130813230036.10303.40433@samples.mailgun.org",
                    "from": "Excited User <me@samples.mailgun.org>",
                    "subject": "Hello",
                },
                "attachments": [],
                "recipients": ["baz@example.com", "bar@example.com"],
                "size": 370,
            },
            "recipient": "bar@example.com",
            "event": "failed",
        },
    }
    for body in (permanent, temporary):
        response = post(app, kit, (json.dumps(body).encode(), {"Content-Type": "application/json"}))
        assert response.status_code == 200, response.get_json()
    bounce, delay = stored_events(app)
    assert event_outcome(bounce) == Outcome("bounced", "Relay Not Permitted", "550", "hard")
    assert (bounce.email_id, bounce.correlation_id) == (failed_id, None)
    assert bounce.provider_message_id == "20130822185902.31528.73196@samples.mailgun.org"
    assert bounce.occurred_at == datetime(2013, 8, 22, 19, 6, 29, 769129, tzinfo=UTC)
    assert recipient_outcome(app, failed_id, "recipient@example.com") == Outcome(
        "bounced", "Relay Not Permitted", "550", "hard"
    )
    assert email_result(app, failed_id) == ("error", "bounced")
    # Mailgun will retry: a deferral of the one recipient it names
    assert event_outcome(delay) == Outcome("deferred", "No MX for [example.com]", "498", "soft")
    assert delay.email_id == delayed_id
    assert recipient_outcome(app, delayed_id, "bar@example.com") == Outcome(
        "deferred", "No MX for [example.com]", "498", "soft"
    )
    assert recipient_states(app, delayed_id)["baz@example.com"][0] == "queued"
    assert email_result(app, delayed_id) == ("processed", "deferred")


def test_permanent_failure_found_by_user_variable(make_app: Any) -> None:
    """A permanent failure with the fields of today's webhook ``event-data`` (``id``,
    ``tags``, ``enhanced-code``, ``attempt-no``) and the email's correlation id as a user
    variable."""
    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    body = {
        "signature": kit.signature(),
        "event-data": {
            "id": "EvT0001",
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "timestamp": 1700000000.25,
            "recipient": "rcpt@example.org",
            "tags": ["receipt"],
            "message": {"headers": {"message-id": "20240101000000.abc123@mg.example.com"}},
            "delivery-status": {
                "code": 550,
                "enhanced-code": "5.1.1",
                "message": "5.1.1 no such user",
                "attempt-no": 1,
            },
            "user-variables": {"maildelivery_id": public_id},
        },
    }
    response = post(app, kit, (json.dumps(body).encode(), {"Content-Type": "application/json"}))
    assert response.status_code == 200, response.get_json()
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome("bounced", "5.1.1 no such user", "550", "hard")
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    # Mailgun event ids are unique within a day only
    assert event.provider_event_id == "EvT0001:1700000000.25"
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "5.1.1 no such user", "550", "hard"
    )


def test_reused_token_is_refused_with_406(make_app: Any) -> None:
    kit = MailgunKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    body, headers = kit.request([event])
    assert post(app, kit, (body, headers)).status_code == 200
    # same token and signature, another body: the signature does not cover the body
    forged = body.replace(b"delivered", b"complained")
    response = post(app, kit, (forged, headers))
    assert response.status_code == 406
    assert "used already" in response.get_json()["error"]
    assert [e.type for e in stored_events(app)] == ["delivered"]


def test_token_of_a_failed_request_is_not_remembered(make_app: Any) -> None:
    """A request we failed to store is retried by Mailgun with the same token: accept it."""
    import sqlalchemy as sa

    from flask_maildelivery.extension import MailDelivery

    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    request = kit.request([event])
    with app.app_context():
        engine = MailDelivery.state(app).db.engine

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            raise sa.exc.OperationalError(statement, {}, Exception("database is gone"))

    sa.event.listen(engine, "before_cursor_execute", fail)
    try:
        assert post(app, kit, request).status_code == 503
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail)
    assert post(app, kit, request).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_suppressed_failure_is_dropped(make_app: Any) -> None:
    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("hard_bounce", public_id)
    event["reason"] = "suppress-bounce"
    assert kit.post_events(app, [event]).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "dropped"


def test_message_id_matches_with_or_without_brackets(make_app: Any) -> None:
    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app)
    set_message_id(app, email_id, "<20240101.abc@mg.acme.test>")
    event = kit.one_event("delivered", None, message_id="20240101.abc@mg.acme.test")
    assert kit.post_events(app, [event]).status_code == 200
    assert email_result(app, email_id) == ("delivered", "")


def test_documented_event_without_recipient_falls_back_to_the_to_header(make_app: Any) -> None:
    """The delivered event of Mailgun's Events reference (mailgun/documentation,
    source/api-events.rst) without its ``recipient`` field, as some webhook events come: the
    message's To header, which names one address, says whom (parsed from
    ``"Name <addr>"``)."""
    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app, to=("recipient@example.com",))
    set_message_id(app, email_id, "<20130503182626.18666.16540@sandboxf9.mailgun.org>")
    body = {
        "signature": kit.signature(),
        "event-data": {
            "tags": [],
            "envelope": {
                "transport": "smtp",
                "sender": "postmaster@sandboxf9.mailgun.org",
                "sending-ip": "184.173.153.199",
            },
            "delivery-status": {"message": "", "code": 250, "description": None},
            "campaigns": [],
            "user-variables": {},
            "flags": {"is-authenticated": True, "is-test-mode": False},
            "timestamp": 1377208314.173742,
            "message": {
                "headers": {
                    "to": "Recipient <recipient@example.com>",
                    "message-id": "20130503182626.18666.16540@sandboxf9.mailgun.org",
                    "from": "postmaster@sandboxf9.mailgun.org",
                    "subject": "Test Subject",
                },
                "attachments": [],
                "recipients": ["recipient@example.com"],
                "size": 586,
            },
            "event": "delivered",
        },
    }
    response = post(app, kit, (json.dumps(body).encode(), {"Content-Type": "application/json"}))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert stored.address == "recipient@example.com"
    assert recipient_states(app, email_id)["recipient@example.com"][0] == "delivered"
