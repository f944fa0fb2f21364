"""sendgrid webhook mapping: documented-shape payloads map onto the package's vocabulary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .webhook_kits import (
    MAPPING_KINDS,
    SendGridKit,
    check_mapping,
    post,
    recipient_states,
    send_email,
    stored_events,
)

KINDS = [k for k in MAPPING_KINDS if k in SendGridKit.kinds]


@pytest.mark.parametrize("kind", KINDS)
def test_mapping(make_app: Any, kind: str) -> None:
    check_mapping(make_app, SendGridKit(), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any) -> None:
    stored = check_mapping(make_app, SendGridKit(), "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_blocked_bounce_is_a_block(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app)
    event = kit.event(
        "hard_bounce",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=datetime.now(UTC),
        event_id="ev-block",
    )
    event["type"] = "blocked"
    assert post(app, kit, kit.request([event])).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"] == ("bounced", "block")


def test_pem_key_and_key_rotation(make_app: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    kit = SendGridKit()
    old = ec.generate_private_key(ec.SECP256R1())
    pem = (
        kit.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    app = make_app(MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY=[SendGridKit.public_b64(old), pem])
    _, public_id = send_email(app)
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=datetime.now(UTC),
        event_id="ev-1",
    )
    assert post(app, kit, kit.request([event])).status_code == 200


def test_signature_that_is_not_base64_is_refused(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config())
    body, headers = kit.request([])
    headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64 !!"
    response = post(app, kit, (body, headers))
    assert response.status_code == 401
    assert "base64" in response.get_json()["error"]


def test_malformed_event_names_the_field(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config())
    response = post(app, kit, kit.request([{"event": "delivered", "timestamp": 1700000000}]))
    assert response.status_code == 400
    assert response.get_json()["details"] == {"0": {"email": ["Missing data for required field."]}}


def test_signature_over_reserialized_json_fails(make_app: Any) -> None:
    import json

    kit = SendGridKit()
    app = make_app(**kit.config())
    _, public_id = send_email(app)
    event = kit.event(
        "delivered",
        address="ann@customer.test",
        public_id=public_id,
        message_id=None,
        at=datetime.now(UTC),
        event_id="ev-1",
    )
    body, headers = kit.request([event])
    # the same JSON, serialized differently: the signature covers the raw bytes
    reserialized = json.dumps(json.loads(body), indent=1).encode()
    assert post(app, kit, (reserialized, headers)).status_code == 401
    assert stored_events(app) == []


def test_future_timestamp_is_refused(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config())
    later = datetime.now(UTC) + timedelta(hours=1)
    response = post(app, kit, kit.request([], signed_at=later))
    assert response.status_code == 401
    assert "future" in response.get_json()["error"]


def test_configured_tolerance_is_used(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config(), MAILDELIVERY_SENDGRID_WEBHOOK_TOLERANCE=60)
    before = datetime.now(UTC) - timedelta(seconds=120)
    assert post(app, kit, kit.request([], signed_at=before)).status_code == 401


def test_raw_event_is_stored_as_sent(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app)
    event = kit.event(
        "hard_bounce",
        address="ann@customer.test",
        public_id=public_id,
        message_id="AbCdEfGhIjKlMnOpQrStUv",
        at=datetime.now(UTC),
        event_id="ev-raw",
    )
    event["reason"] = '550 « Boîte inconnue » "quoted" \\ back\nslash ☃'
    event["nested"] = {"list": [1, 2.5, None, True], "big": 1152921504606846977}
    assert post(app, kit, kit.request([event])).status_code == 200
    [stored] = stored_events(app)
    assert stored.payload == event
    assert stored.reason == event["reason"]
    assert stored.provider_message_id == "AbCdEfGhIjKlMnOpQrStUv"
    assert recipient_states(app, email_id)["ann@customer.test"] == ("bounced", "hard")
