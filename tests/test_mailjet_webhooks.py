"""What is particular to the Mailjet webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .kits import MailjetKit, post
from .webhook_helpers import email_result, recipient_states, send_email, set_message_id


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
