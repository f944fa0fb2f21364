"""What is particular to the Postmark webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .kits import PostmarkKit, basic, post
from .webhook_helpers import recipient_states, send_email, stored_events


def test_rotated_credentials_are_accepted(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    body, headers = kit.request([event])
    headers["Authorization"] = basic("old-hook", "old-pass")
    assert post(app, kit, (body, headers)).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_missing_credentials_get_a_basic_challenge(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    response = kit.post_events(app, [{"RecordType": "Delivery"}], mode="missing")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_seven_digit_fractions_and_offsets_are_parsed(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    now = datetime.now(UTC).astimezone(timezone(timedelta(hours=-4)))
    event = kit.one_event("delivered", public_id, at=now)
    event["DeliveredAt"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "3-04:00"
    assert kit.post_events(app, [event]).status_code == 200
    [stored] = stored_events(app)
    assert abs((stored.occurred_at - now).total_seconds()) < 1


def test_reactivation_is_not_an_unsubscribe(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    record = {
        "RecordType": "SubscriptionChange",
        "MessageID": "00000000-0000-4000-8000-000000000001",
        "Recipient": "ann@customer.test",
        "ChangedAt": datetime.now(UTC).isoformat(),
        "SuppressSending": False,
        "Metadata": {"maildelivery_id": public_id},
    }
    assert kit.post_events(app, [record]).status_code == 200
    assert [e.type for e in stored_events(app)] == ["unknown"]
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "queued"
