"""What is particular to the Mailjet webhook, and payloads copied from Mailjet's
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .kits import MailjetKit, epoch, post
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


def test_documented_sent_and_bounce_grouped(make_app: Any) -> None:
    """The sample sent and bounce events of Mailjet's Event API guide
    (mailjet/api-documentation, guides/_event-api.md), grouped in one array as the
    "Version 2" callback sends them. Changed: ``time``, which must be recent (Mailjet signs
    nothing, so an old event is refused as a replay), and ``CustomID``, which carries the
    email's correlation id instead of "helloworld"."""
    kit = MailjetKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("api@mailjet.com", "bounce@mailjet.com"))
    now = epoch(datetime.now(UTC))
    events = [
        {
            "event": "sent",
            "time": now,
            "MessageID": 19421777835146490,
            "email": "api@mailjet.com",
            "mj_campaign_id": 7257,
            "mj_contact_id": 4,
            "customcampaign": "",
            "mj_message_id": "19421777835146490",
            "smtp_reply": "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)",
            "CustomID": public_id,
            "Payload": "",
        },
        {
            "event": "bounce",
            "time": now,
            "MessageID": 13792286917004336,
            "email": "bounce@mailjet.com",
            "mj_campaign_id": 0,
            "mj_contact_id": 0,
            "customcampaign": "",
            "CustomID": public_id,
            "Payload": "",
            "blocked": True,
            "hard_bounce": True,
            "error_related_to": "recipient",
            "error": "user unknown",
        },
    ]
    response = post(app, kit, (json.dumps(events).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    stored = {event.raw_type: event for event in stored_events(app)}
    sent, bounce = stored["sent"], stored["bounce"]
    assert event_outcome(sent) == Outcome(
        "delivered", "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)", None, None
    )
    assert event_outcome(bounce) == Outcome("bounced", "recipient / user unknown", None, "hard")
    for event in (sent, bounce):
        assert (event.email_id, event.correlation_id) == (email_id, public_id)
    # the 17-digit ids are kept as text, every digit
    assert sent.provider_message_id == "19421777835146490"
    assert bounce.provider_message_id == "13792286917004336"
    assert recipient_outcome(app, email_id, "api@mailjet.com") == Outcome(
        "delivered", "sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)", None, None
    )
    assert recipient_outcome(app, email_id, "bounce@mailjet.com") == Outcome(
        "bounced", "recipient / user unknown", None, "hard"
    )
    assert email_result(app, email_id) == ("warning", "bounced")


def test_hard_bounce_with_a_host_payload(make_app: Any) -> None:
    """A hard bounce with a recent ``time``, a 19-digit ``MessageID``, the email's
    correlation id in ``CustomID`` and a ``Payload`` of the host's own (a JSON string
    without our key)."""
    kit = MailjetKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    set_message_id(app, email_id, "1234567890123456789")
    event = {
        "event": "bounce",
        "time": epoch(datetime.now(UTC)),
        "MessageID": 1234567890123456789,
        "email": "rcpt@example.org",
        "mj_campaign_id": 0,
        "mj_contact_id": 0,
        "customcampaign": "receipt",
        "CustomID": public_id,
        "Payload": '{"tenant":"t1"}',
        "blocked": False,
        "hard_bounce": True,
        "error_related_to": "recipient",
        "error": "user unknown",
    }
    response = post(app, kit, (json.dumps(event).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert event_outcome(stored) == Outcome("bounced", "recipient / user unknown", None, "hard")
    assert (stored.email_id, stored.correlation_id) == (email_id, public_id)
    assert stored.provider_message_id == "1234567890123456789"
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "recipient / user unknown", None, "hard"
    )


def test_grouped_events_and_large_message_ids(make_app: Any) -> None:
    kit = MailjetKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app, to=("ann@customer.test", "bob@customer.test"))
    message_id = "1152921504606846977"  # above 2**60: must not lose digits
    set_message_id(app, email_id, message_id)
    now = datetime.now(UTC)
    events = [
        kit.one_event("delivered", None, message_id=message_id, at=now, address=a)
        for a in ("ann@customer.test", "bob@customer.test")
    ]
    body = json.dumps(events)
    response = post(app, kit, (body.encode(), kit.auth_headers("valid")))
    assert response.status_code == 200
    assert response.get_json()["stored"] == 2
    assert email_result(app, email_id) == ("delivered", "")


def test_custom_id_carries_the_correlation_id(make_app: Any) -> None:
    kit = MailjetKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("open", None)
    event["CustomID"] = public_id
    assert kit.post_events(app, [event]).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "opened"
