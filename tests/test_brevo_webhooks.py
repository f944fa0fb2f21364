"""What is particular to the Brevo webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .kits import BrevoKit
from .webhook_helpers import email_result, send_email, set_message_id, stored_events


def test_ts_epoch_is_milliseconds(make_app: Any) -> None:
    kit = BrevoKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    now = datetime.now(UTC)
    event = kit.one_event("delivered", public_id, at=now)
    assert kit.post_events(app, [event]).status_code == 200
    [stored] = stored_events(app)
    assert abs((stored.occurred_at - now).total_seconds()) < 1


def test_message_id_with_brackets_matches(make_app: Any) -> None:
    kit = BrevoKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app)
    message_id = "<202401010000.1234567890@smtp-relay.mailin.fr>"
    set_message_id(app, email_id, message_id)
    event = kit.one_event("hard_bounce", None, message_id=message_id)
    assert kit.post_events(app, [event]).status_code == 200
    assert email_result(app, email_id) == ("error", "bounced")
