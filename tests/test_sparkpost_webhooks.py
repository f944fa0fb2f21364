"""sparkpost webhook mapping: documented-shape payloads map onto the package's vocabulary."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from .webhook_kits import (
    MAPPING_KINDS,
    SparkPostKit,
    check_mapping,
    post,
    recipient_states,
    send_email,
    stored_events,
)

KINDS = [k for k in MAPPING_KINDS if k in SparkPostKit.kinds]


@pytest.mark.parametrize("kind", KINDS)
def test_mapping(make_app: Any, kind: str) -> None:
    check_mapping(make_app, SparkPostKit(), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any) -> None:
    stored = check_mapping(make_app, SparkPostKit(), "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_ping_is_acknowledged(make_app: Any) -> None:
    kit = SparkPostKit()
    app = make_app(**kit.config())
    response = post(app, kit, kit.request([{"msys": {}}]))
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
    app = make_app(**kit.config())
    email_id, public_id = send_email(app)
    event = kit.event(
        "hard_bounce",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=datetime.now(UTC),
        event_id=secrets.token_hex(6),
    )
    event["msys"]["message_event"]["bounce_class"] = bounce_class
    assert post(app, kit, kit.request([event])).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"] == (
        status,
        bounce_type if status != "queued" else None,
    )


def test_element_without_msys_is_400(make_app: Any) -> None:
    kit = SparkPostKit()
    app = make_app(**kit.config())
    response = post(app, kit, kit.request([{"event": "delivery"}]))
    assert response.status_code == 400
    assert "msys" in response.get_json()["error"]
