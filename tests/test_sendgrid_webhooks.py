"""What is particular to the SendGrid webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .kits import SendGridKit, post
from .webhook_helpers import recipient_states, send_email, stored_events


def test_blocked_bounce_is_a_block(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("hard_bounce", public_id)
    event["type"] = "blocked"
    assert kit.post_events(app, [event]).status_code == 200
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
    event = kit.one_event("delivered", public_id)
    assert kit.post_events(app, [event]).status_code == 200


def test_signature_that_is_not_base64_is_refused(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    body, headers = kit.request([])
    headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64 !!"
    response = post(app, kit, (body, headers))
    assert response.status_code == 401
    assert "base64" in response.get_json()["error"]


def test_malformed_event_names_the_field(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    response = kit.post_events(app, [{"event": "delivered", "timestamp": 1700000000}])
    assert response.status_code == 400
    assert response.get_json()["details"] == {"0": {"email": ["Missing data for required field."]}}


def test_signature_over_reserialized_json_fails(make_app: Any) -> None:
    import json

    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    body, headers = kit.request([event])
    # the same JSON, serialized differently: the signature covers the raw bytes
    reserialized = json.dumps(json.loads(body), indent=1).encode()
    assert post(app, kit, (reserialized, headers)).status_code == 401
    assert stored_events(app) == []


def test_future_timestamp_is_refused(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    later = datetime.now(UTC) + timedelta(hours=1)
    response = kit.post_events(app, [], signed_at=later)
    assert response.status_code == 401
    assert "future" in response.get_json()["error"]


def test_configured_tolerance_is_used(make_app: Any) -> None:
    kit = SendGridKit()
    app = make_app(**kit.config(), MAILDELIVERY_SENDGRID_WEBHOOK_TOLERANCE=60)
    before = datetime.now(UTC) - timedelta(seconds=120)
    assert kit.post_events(app, [], signed_at=before).status_code == 401


def test_raw_event_is_stored_as_sent(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("hard_bounce", public_id, message_id="AbCdEfGhIjKlMnOpQrStUv")
    event["reason"] = '550 « Boîte inconnue » "quoted" \\ back\nslash ☃'
    event["nested"] = {"list": [1, 2.5, None, True], "big": 1152921504606846977}
    assert kit.post_events(app, [event]).status_code == 200
    [stored] = stored_events(app)
    assert stored.payload == event
    assert stored.reason == event["reason"]
    assert stored.provider_message_id == "AbCdEfGhIjKlMnOpQrStUv"
    assert recipient_states(app, email_id)["ann@customer.test"] == ("bounced", "hard")
