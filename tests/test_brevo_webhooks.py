"""brevo webhook mapping: documented-shape payloads map onto the package's vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from .webhook_kits import (
    MAPPING_KINDS,
    BrevoKit,
    check_mapping,
    email_result,
    post,
    send_email,
    set_message_id,
    stored_events,
)

KINDS = [k for k in MAPPING_KINDS if k in BrevoKit.kinds]


@pytest.mark.parametrize("kind", KINDS)
def test_mapping(make_app: Any, kind: str) -> None:
    check_mapping(make_app, BrevoKit(), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any) -> None:
    stored = check_mapping(make_app, BrevoKit(), "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_ts_epoch_is_milliseconds(make_app: Any) -> None:
    kit = BrevoKit()
    app = make_app(**kit.config())
    _, public_id = send_email(app)
    now = datetime.now(UTC)
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=now,
        event_id="x",
    )
    assert post(app, kit, kit.request([event])).status_code == 200
    [stored] = stored_events(app)
    assert abs((stored.occurred_at - now).total_seconds()) < 1


def test_message_id_with_brackets_matches(make_app: Any) -> None:
    kit = BrevoKit()
    app = make_app(**kit.config())
    email_id, _ = send_email(app)
    message_id = "<202401010000.1234567890@smtp-relay.mailin.fr>"
    set_message_id(app, email_id, message_id)
    event = kit.event(
        "hard_bounce",
        address="ann@customer.test",
        public_id=None,
        message_id=message_id,
        at=datetime.now(UTC),
        event_id="x",
    )
    assert post(app, kit, kit.request([event])).status_code == 200
    assert email_result(app, email_id) == ("error", "bounced")
