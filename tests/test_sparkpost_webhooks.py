"""What is particular to the SparkPost webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

from typing import Any

import pytest

from .kits import SparkPostKit
from .webhook_helpers import recipient_states, send_email, stored_events


def test_ping_is_acknowledged(make_app: Any) -> None:
    kit = SparkPostKit()
    app = kit.start(make_app)
    response = kit.post_events(app, [{"msys": {}}])
    assert response.status_code == 200
    assert stored_events(app) == []


@pytest.mark.parametrize(
    ("bounce_class", "status", "bounce_type"),
    [
        ("10", "bounced", "hard"),
        ("21", "deferred", "soft"),
        ("51", "bounced", "block"),
        ("60", "queued", None),
    ],
)
def test_bounce_classes(
    make_app: Any, bounce_class: str, status: str, bounce_type: str | None
) -> None:
    kit = SparkPostKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("hard_bounce", public_id)
    event["msys"]["message_event"]["bounce_class"] = bounce_class
    assert kit.post_events(app, [event]).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"] == (
        status,
        bounce_type if status != "queued" else None,
    )


def test_element_without_msys_is_400(make_app: Any) -> None:
    kit = SparkPostKit()
    app = kit.start(make_app)
    response = kit.post_events(app, [{"event": "delivery"}])
    assert response.status_code == 400
    assert "msys" in response.get_json()["error"]
