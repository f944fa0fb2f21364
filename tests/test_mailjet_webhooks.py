"""mailjet webhook mapping: documented-shape payloads map onto the package's vocabulary."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from .webhook_kits import (
    MAPPING_KINDS,
    MailjetKit,
    check_mapping,
    email_result,
    post,
    recipient_states,
    send_email,
    set_message_id,
)

KINDS = [k for k in MAPPING_KINDS if k in MailjetKit.kinds]


@pytest.mark.parametrize("kind", KINDS)
def test_mapping(make_app: Any, kind: str) -> None:
    check_mapping(make_app, MailjetKit(), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any) -> None:
    stored = check_mapping(make_app, MailjetKit(), "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_grouped_events_and_large_message_ids(make_app: Any) -> None:
    kit = MailjetKit()
    app = make_app(**kit.config())
    email_id, _ = send_email(app, to=("ann@customer.test", "bob@customer.test"))
    message_id = "1152921504606846977"  # above 2**60: must not lose digits
    set_message_id(app, email_id, message_id)
    now = datetime.now(UTC)
    events = [
        kit.event(
            "delivered", address=a, public_id=None, message_id=message_id, at=now, event_id="x"
        )
        for a in ("ann@customer.test", "bob@customer.test")
    ]
    body = json.dumps(events)
    response = post(app, kit, (body.encode(), kit.auth_headers("valid")))
    assert response.status_code == 200
    assert response.get_json()["stored"] == 2
    assert email_result(app, email_id) == ("delivered", "")


def test_custom_id_carries_the_correlation_id(make_app: Any) -> None:
    kit = MailjetKit()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app)
    event = kit.event(
        "open",
        address="ann@customer.test",
        public_id=None,
        message_id=None,
        at=datetime.now(UTC),
        event_id="x",
    )
    event["CustomID"] = public_id
    assert post(app, kit, kit.request([event])).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "opened"
