"""What is particular to the MailerSend webhook, and payloads written out from MailerSend's
documentation, signed in the test with a secret generated here; the mapping of each kind of
event is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .kits import MailerSendKit, post
from .webhook_helpers import (
    Outcome,
    email_result,
    event_outcome,
    recipient_outcome,
    send_email,
    set_message_id,
    stored_events,
)


def _documented(type_: str, activity: dict[str, Any], morph: Any) -> dict[str, Any]:
    """The example of MailerSend's webhooks page (developers.mailersend.com/api/v1/
    webhooks.html, the first payload version) for ``type_``, unchanged but for the activity
    and ``morph`` given."""
    return {
        "type": f"activity.{type_}",
        "domain_id": "7z3m5jgrogdpyo6n",
        "created_at": "2022-08-16T09:38:06.000000Z",
        "webhook_id": "7z3m5jgrogdpyo6n",
        "url": "https://www.mailersend.com/webhook",
        "data": {
            "object": "activity",
            "id": activity["id"],
            "type": type_,
            "created_at": "2022-08-16T09:38:06.000000Z",
            "email": {
                "object": "email",
                "id": "62fb66bec1b8f2c2e5ef4da2",
                "created_at": "2022-08-16T09:38:06.000000Z",
                "from": "test@example.com",
                "subject": "Test subject",
                "status": activity["status"],
                "tags": None,
                "headers": None,
                "message": {
                    "object": "message",
                    "id": "62fb66bd3e6b82a3b31c6c22",
                    "created_at": "2022-08-16T09:38:05.000000Z",
                },
                "recipient": {
                    "object": "recipient",
                    "id": "62c69be04d8ec4d5ac3cb7b3",
                    "email": "test@example.com",
                    "created_at": "2022-07-07T08:36:48.000000Z",
                },
            },
            "morph": morph,
            "template_id": "7nxe3yjmxpx4p0e3",
        },
    }


def test_documented_sent_then_hard_bounce(make_app: Any) -> None:
    """The ``activity.sent`` example, then the same message's ``activity.hard_bounced``
    with its ``recipient_bounce`` morph: found by the message id (MailerSend echoes no
    custom data here), the bounce wins."""
    kit = MailerSendKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app, to=("test@example.com",))
    set_message_id(app, email_id, "62fb66bd3e6b82a3b31c6c22")
    sent = _documented("sent", {"id": "62fb66bef54a112e920b5493", "status": "sent"}, None)
    bounced = _documented(
        "hard_bounced",
        {"id": "62fb66bef54a112e920b5494", "status": "rejected"},
        {
            "object": "recipient_bounce",
            "reason": "Host or domain name not found",
            "readable_reason": "The domain of the recipient's address does not exist.",
        },
    )
    for payload in (sent, bounced):
        body = json.dumps(payload).encode()
        response = post(app, kit, (body, kit.signed_headers(body)))
        assert response.status_code == 200, response.get_json()
    processed, bounce = stored_events(app)
    assert event_outcome(processed) == Outcome("processed", None, None, None)
    reason = "The domain of the recipient's address does not exist."
    assert event_outcome(bounce) == Outcome("bounced", reason, None, "hard")
    assert bounce.provider_event_id == "62fb66bef54a112e920b5494"
    assert bounce.occurred_at == datetime(2022, 8, 16, 9, 38, 6, tzinfo=UTC)
    assert recipient_outcome(app, email_id, "test@example.com") == Outcome(
        "bounced", reason, None, "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_test_ping_stores_nothing_and_tags_carry_the_correlation_id(make_app: Any) -> None:
    """The ``webhook.test`` ping MailerSend posts when a webhook is saved stores nothing; an
    activity of the current payload version finds its email by the ``maildelivery_id:`` tag
    (``X-MailerSend-Tags`` over SMTP)."""
    kit = MailerSendKit()
    app = kit.start(make_app)
    ping = json.dumps({"type": "webhook.test", "data": {}}).encode()
    assert post(app, kit, (ping, kit.signed_headers(ping))).status_code == 200
    assert stored_events(app) == []
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    body = json.dumps(event).encode()
    assert post(app, kit, (body, kit.signed_headers(body))).status_code == 200
    [stored] = stored_events(app)
    assert (stored.email_id, stored.correlation_id) == (email_id, public_id)
