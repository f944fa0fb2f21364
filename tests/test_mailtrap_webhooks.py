"""What is particular to the Mailtrap webhook, and a batch written out from Mailtrap's
documentation, signed in the test with a secret generated here; the mapping of each kind of
event is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .kits import MailtrapKit, post
from .webhook_helpers import (
    Outcome,
    email_result,
    recipient_outcome,
    send_email,
    set_message_id,
    stored_events,
)


def test_documented_batch(make_app: Any) -> None:
    """The delivery and bounce examples of Mailtrap's webhook payload reference
    (api-docs.mailtrap.io, "Receive events"), in one JSON batch. Changed: the custom
    variables, which also carry the correlation id of the bounced email; the delivered one
    is found by its message id."""
    kit = MailtrapKit()
    app = kit.start(make_app)
    delivered_id, _ = send_email(app, to=("receiver@example.com",))
    set_message_id(app, delivered_id, "1df37d17-0286-4d8b-8edf-bc4ec5be86e6")
    bounced_id, public_id = send_email(app, to=("receiver@example.com",))
    body = json.dumps(
        {
            "events": [
                {
                    "event": "delivery",
                    "message_id": "1df37d17-0286-4d8b-8edf-bc4ec5be86e6",
                    "sending_stream": "transactional",
                    "email": "receiver@example.com",
                    "timestamp": 1726358034,
                    "event_id": "bede7236-2284-43d6-a953-1fdcafd0fdbc",
                    "category": "Password reset",
                    "custom_variables": {"variable_a": "value", "variable_b": "value2"},
                },
                {
                    "event": "bounce",
                    "message_id": "2ef48e28-1397-4e9c-9fe0-cd5fd6e1e7f7",
                    "sending_stream": "transactional",
                    "email": "receiver@example.com",
                    "timestamp": 1726358035,
                    "event_id": "c0c3a0b1-8b47-4f5b-9a48-2a2f0f0cba57",
                    "category": "Password reset",
                    "custom_variables": {"variable_a": "value", "maildelivery_id": public_id},
                    "response": "bounced (550 5.1.1 The email account that you tried to reach "
                    "does not exist)",
                    "response_code": 550,
                    "bounce_category": "badmailbox",
                },
            ]
        }
    ).encode()
    response = post(app, kit, (body, kit.signed_headers(body)))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == 2
    delivery, bounce = stored_events(app)
    assert delivery.email_id == delivered_id
    assert delivery.occurred_at == datetime.fromtimestamp(1726358034, tz=UTC)
    assert bounce.email_id == bounced_id
    reason = "bounced (550 5.1.1 The email account that you tried to reach does not exist)"
    assert recipient_outcome(app, bounced_id, "receiver@example.com") == Outcome(
        "bounced", reason, "550", "hard"
    )
    assert email_result(app, delivered_id) == ("delivered", "")


def test_documented_soft_bounce_is_a_delay(make_app: Any) -> None:
    """Mailtrap's ``soft bounce`` is a temporary failure it retries ("will retry"): the
    recipient is deferred, not failed."""
    kit = MailtrapKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("receiver@example.com",))
    body = json.dumps(
        {
            "events": [
                {
                    "event": "soft bounce",
                    "message_id": "1df37d17-0286-4d8b-8edf-bc4ec5be86e6",
                    "sending_stream": "transactional",
                    "email": "receiver@example.com",
                    "timestamp": 1726358034,
                    "event_id": "bede7236-2284-43d6-a953-1fdcafd0fdbd",
                    "category": "Password reset",
                    "custom_variables": {"maildelivery_id": public_id},
                    "response": "451 4.7.1 Greylisted, please try again",
                    "response_code": 451,
                    "bounce_category": "greylisting",
                }
            ]
        }
    ).encode()
    assert post(app, kit, (body, kit.signed_headers(body))).status_code == 200
    assert recipient_outcome(app, email_id, "receiver@example.com") == Outcome(
        "deferred", "451 4.7.1 Greylisted, please try again", "451", "soft"
    )
