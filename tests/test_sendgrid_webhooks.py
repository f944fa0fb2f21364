"""What is particular to the SendGrid webhook, and payloads copied from SendGrid's
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from .kits import SendGridKit, post
from .webhook_helpers import (
    Outcome,
    email_result,
    event_outcome,
    recipient_outcome,
    recipient_states,
    send_email,
    set_message_id,
    stored_events,
)


def test_documented_delivery_events(make_app: Any) -> None:
    """The deferred, delivered and bounce examples of SendGrid's Event Webhook Reference
    (sendgrid/docs, content/docs/for-developers/tracking-events/event.md), in one batch.
    Only ids changed: the custom argument carries the email's correlation id, and
    ``sg_message_id`` starts with the X-Message-Id the send stored (the documented
    ``14c5d75ce93.dfd.64b469`` is an older id form, with dots)."""
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("example@test.com",))
    set_message_id(app, email_id, "Hq4Z2XkVRTyVx0P1AbCdEf")
    events = [
        {
            "email": "example@test.com",
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "event": "deferred",
            "category": "cat facts",
            "sg_event_id": "t7LEShmowp86DTdUW8M-GQ==",
            "sg_message_id": "Hq4Z2XkVRTyVx0P1AbCdEf.filter0001.16648.5515E0B88.0",
            "response": "400 try again later",
            "attempt": "5",
            "maildelivery_id": public_id,
        },
        {
            "email": "example@test.com",
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "event": "delivered",
            "category": "cat facts",
            "sg_event_id": "rWVYmVk90MjZJ9iohOBa3w==",
            "sg_message_id": "Hq4Z2XkVRTyVx0P1AbCdEf.filter0001.16648.5515E0B88.0",
            "response": "250 OK",
            "maildelivery_id": public_id,
        },
        {
            "email": "example@test.com",
            "timestamp": 1513299569,
            "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "event": "bounce",
            "category": "cat facts",
            "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
            "sg_message_id": "Hq4Z2XkVRTyVx0P1AbCdEf.filter0001.16648.5515E0B88.0",
            "reason": "500 unknown recipient",
            "status": "5.0.0",
            "type": "bounce",
            "maildelivery_id": public_id,
        },
    ]
    body = json.dumps(events).encode()
    response = post(app, kit, (body, kit.signed_headers(body)))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 3, "duplicates": 0, "unmatched": 0}
    stored = {event.raw_type: event for event in stored_events(app)}
    assert event_outcome(stored["deferred"]) == Outcome(
        "deferred", "400 try again later", None, "soft"
    )
    assert event_outcome(stored["delivered"]) == Outcome("delivered", "250 OK", None, None)
    assert event_outcome(stored["bounce"]) == Outcome(
        "bounced", "500 unknown recipient", "5.0.0", "hard"
    )
    for event in stored.values():
        assert event.email_id == email_id
        assert event.correlation_id == public_id
        assert event.provider_message_id == "Hq4Z2XkVRTyVx0P1AbCdEf"
        assert event.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert stored["bounce"].provider_event_id == "6g4ZI7SA-xmRDv57GoPIPw=="
    # the same second: the bounce outranks the delivery
    assert recipient_outcome(app, email_id, "example@test.com") == Outcome(
        "bounced", "500 unknown recipient", "5.0.0", "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_classified_bounce_found_by_custom_argument(make_app: Any) -> None:
    """A bounce with the fields the Event Webhook Reference lists today (``type``,
    ``status``, ``reason``, ``bounce_classification``, a category list) and the email's
    correlation id as a custom argument; the email has no provider message id, so the
    custom argument alone finds it."""
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    events = [
        {
            "email": "rcpt@example.org",
            "timestamp": 1700000000,
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 no such user",
            "bounce_classification": "Invalid Address",
            "sg_event_id": "dGVzdC1ldmVudC0wMDAx",
            "sg_message_id": "AbCdEfGhIjKlMnOpQrStUv.recvd-test-0",
            "smtp-id": "<AbCdEfGhIjKlMnOpQrStUv@test.sendgrid.net>",
            "category": ["receipt"],
            "maildelivery_id": public_id,
        }
    ]
    body = json.dumps(events).encode()
    assert post(app, kit, (body, kit.signed_headers(body))).status_code == 200
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome("bounced", "550 5.1.1 no such user", "5.1.1", "hard")
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    assert event.provider_message_id == "AbCdEfGhIjKlMnOpQrStUv"
    assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "550 5.1.1 no such user", "5.1.1", "hard"
    )


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
