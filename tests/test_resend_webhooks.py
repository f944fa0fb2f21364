"""What is particular to the Resend webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .kits import ResendKit, post
from .webhook_helpers import email_result, send_email, stored_events


def test_default_tolerance_is_five_minutes(make_app: Any) -> None:
    kit = ResendKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    then = datetime.now(UTC) - timedelta(seconds=400)
    event = kit.one_event("delivered", public_id, at=then)
    response = kit.post_events(app, [event], signed_at=then)
    assert response.status_code == 401
    assert "300 s tolerance" in response.get_json()["error"]


def test_tags_as_a_list_and_several_addresses(make_app: Any) -> None:
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("ann@customer.test", "bob@customer.test"))
    event = kit.one_event("delivered", None, event_id="msg_2")
    event["data"]["tags"] = [{"name": "maildelivery_id", "value": public_id}]
    event["data"]["to"] = ["ann@customer.test", "bob@customer.test"]
    assert kit.post_events(app, [event]).status_code == 200
    assert email_result(app, email_id) == ("delivered", "")
    assert {e.provider_event_id for e in stored_events(app)} == {
        "msg_2:ann@customer.test",
        "msg_2:bob@customer.test",
    }


def test_only_v1_signatures_count(make_app: Any) -> None:
    kit = ResendKit()
    app = kit.start(make_app)
    body, headers = kit.request(
        [{"__id": "msg_3", "type": "email.sent", "created_at": "x", "data": {}}]
    )
    headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    assert post(app, kit, (body, headers)).status_code == 401
