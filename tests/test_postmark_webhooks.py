"""postmark webhook mapping: documented-shape payloads map onto the package's vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from .webhook_kits import (
    MAPPING_KINDS,
    PostmarkKit,
    check_mapping,
    post,
    recipient_states,
    send_email,
    stored_events,
)

KINDS = [k for k in MAPPING_KINDS if k in PostmarkKit.kinds]


@pytest.mark.parametrize("kind", KINDS)
def test_mapping(make_app: Any, kind: str) -> None:
    check_mapping(make_app, PostmarkKit(), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any) -> None:
    stored = check_mapping(make_app, PostmarkKit(), "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_rotated_credentials_are_accepted(make_app: Any) -> None:
    from .webhook_kits import basic

    kit = PostmarkKit()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app)
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=datetime.now(UTC),
        event_id="x",
    )
    body, headers = kit.request([event])
    headers["Authorization"] = basic("old-hook", "old-pass")
    assert post(app, kit, (body, headers)).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_missing_credentials_get_a_basic_challenge(make_app: Any) -> None:
    kit = PostmarkKit()
    app = make_app(**kit.config())
    response = post(app, kit, kit.request([{"RecordType": "Delivery"}], mode="missing"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_seven_digit_fractions_and_offsets_are_parsed(make_app: Any) -> None:
    kit = PostmarkKit()
    app = make_app(**kit.config())
    _, public_id = send_email(app)
    now = datetime.now(UTC).astimezone(timezone(timedelta(hours=-4)))
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=now,
        event_id="x",
    )
    event["DeliveredAt"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "3-04:00"
    assert post(app, kit, kit.request([event])).status_code == 200
    [stored] = stored_events(app)
    assert abs((stored.occurred_at - now).total_seconds()) < 1


def test_reactivation_is_not_an_unsubscribe(make_app: Any) -> None:
    kit = PostmarkKit()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app)
    record = {
        "RecordType": "SubscriptionChange",
        "MessageID": "00000000-0000-4000-8000-000000000001",
        "Recipient": "ann@customer.test",
        "ChangedAt": datetime.now(UTC).isoformat(),
        "SuppressSending": False,
        "Metadata": {"maildelivery_id": public_id},
    }
    assert post(app, kit, kit.request([record])).status_code == 200
    assert [e.type for e in stored_events(app)] == ["unknown"]
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "queued"
