"""resend webhook mapping: documented-shape payloads map onto the package's vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .webhook_kits import (
    MAPPING_KINDS,
    ResendKit,
    check_mapping,
    email_result,
    post,
    send_email,
    stored_events,
)

KINDS = [k for k in MAPPING_KINDS if k in ResendKit.kinds]


@pytest.mark.parametrize("kind", KINDS)
def test_mapping(make_app: Any, kind: str) -> None:
    check_mapping(make_app, ResendKit(), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any) -> None:
    stored = check_mapping(make_app, ResendKit(), "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_default_tolerance_is_five_minutes(make_app: Any) -> None:
    kit = ResendKit()
    app = make_app(**kit.config())
    _, public_id = send_email(app)
    then = datetime.now(UTC) - timedelta(seconds=400)
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=then,
        event_id="msg_1",
    )
    response = post(app, kit, kit.request([event], signed_at=then))
    assert response.status_code == 401
    assert "300 s tolerance" in response.get_json()["error"]


def test_tags_as_a_list_and_several_addresses(make_app: Any) -> None:
    kit = ResendKit()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app, to=("ann@customer.test", "bob@customer.test"))
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=None,
        message_id=None,
        at=datetime.now(UTC),
        event_id="msg_2",
    )
    event["data"]["tags"] = [{"name": "maildelivery_id", "value": public_id}]
    event["data"]["to"] = ["ann@customer.test", "bob@customer.test"]
    assert post(app, kit, kit.request([event])).status_code == 200
    assert email_result(app, email_id) == ("delivered", "")
    assert {e.provider_event_id for e in stored_events(app)} == {
        "msg_2:ann@customer.test",
        "msg_2:bob@customer.test",
    }


def test_only_v1_signatures_count(make_app: Any) -> None:
    kit = ResendKit()
    app = make_app(**kit.config())
    body, headers = kit.request(
        [{"__id": "msg_3", "type": "email.sent", "created_at": "x", "data": {}}]
    )
    headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    assert post(app, kit, (body, headers)).status_code == 401
