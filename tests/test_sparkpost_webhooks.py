"""What is particular to the SparkPost webhook, and payloads copied from SparkPost's
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from .kits import SparkPostKit, epoch, post
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


def test_documented_injection_sample(make_app: Any) -> None:
    """The injection event of SparkPost's event samples
    (``GET /api/v1/webhooks/events/samples?events=injection``, as anymail's SparkPost tests
    copy it in full), in a batch of one. Changed: the timestamp, which must be recent
    (SparkPost signs nothing, so an old event is refused as a replay), and ``rcpt_meta``,
    which also carries the email's correlation id; the email's transmission id is the
    documented one."""
    kit = SparkPostKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("recipient@example.com",))
    set_message_id(app, email_id, "65832150921904138")
    batch = [
        {
            "msys": {
                "message_event": {
                    "type": "injection",
                    "campaign_id": "Example Campaign Name",
                    "customer_id": "1",
                    "event_id": "92356927693813856",
                    "friendly_from": "sender@example.com",
                    "ip_pool": "Example-Ip-Pool",
                    "message_id": "000443ee14578172be22",
                    "msg_from": "sender@example.com",
                    "msg_size": "1337",
                    "rcpt_meta": {"customKey": "customValue", "maildelivery_id": public_id},
                    "rcpt_tags": ["male", "US"],
                    "rcpt_to": "recipient@example.com",
                    "raw_rcpt_to": "recipient@example.com",
                    "rcpt_type": "cc",
                    "routing_domain": "example.com",
                    "sending_ip": "127.0.0.1",
                    "sms_coding": "ASCII",
                    "sms_dst": "7876712656",
                    "sms_dst_npi": "E164",
                    "sms_dst_ton": "International",
                    "sms_segments": 5,
                    "sms_src": "1234",
                    "sms_src_npi": "E164",
                    "sms_src_ton": "Unknown",
                    "sms_text": "lol",
                    "subaccount_id": "101",
                    "subject": "Summer deals are here!",
                    "template_id": "templ-1234",
                    "template_version": "1",
                    "timestamp": str(epoch(datetime.now(UTC))),
                    "transmission_id": "65832150921904138",
                }
            }
        }
    ]
    response = post(app, kit, (json.dumps(batch).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome("processed", None, None, None)
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    assert event.provider_message_id == "65832150921904138"
    assert event.provider_event_id == "92356927693813856"
    assert recipient_outcome(app, email_id, "recipient@example.com") == Outcome(
        "processed", None, None, None
    )
    assert email_result(app, email_id) == ("processed", "")


def test_invalid_recipient_bounce_is_hard(make_app: Any) -> None:
    """A bounce of class 10 (invalid recipient) with the SMTP code and answer, a recent
    timestamp and the email's correlation id in ``rcpt_meta``."""
    kit = SparkPostKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    batch = [
        {
            "msys": {
                "message_event": {
                    "type": "bounce",
                    "event_id": "900000000000000001",
                    "transmission_id": "700000000000000042",
                    "message_id": "0000aaaa0000bbbb",
                    "raw_rcpt_to": "rcpt@example.org",
                    "rcpt_to": "rcpt@example.org",
                    "timestamp": str(epoch(datetime.now(UTC))),
                    "bounce_class": "10",
                    "error_code": "550",
                    "raw_reason": "550 5.1.1 no such user",
                    "campaign_id": "receipt",
                    "rcpt_meta": {"maildelivery_id": public_id},
                }
            }
        }
    ]
    response = post(app, kit, (json.dumps(batch).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome("bounced", "550 5.1.1 no such user", "550", "hard")
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    assert event.provider_message_id == "700000000000000042"
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "550 5.1.1 no such user", "550", "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


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
        ("21", "bounced", "soft"),
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


def test_documented_delivery_with_an_iso_timestamp(make_app: Any) -> None:
    """The delivery event of SparkPost's event samples (developers.sparkpost.com/api/
    events) with its ``timestamp`` in ISO 8601, as some events carry it, instead of epoch
    seconds: read as such, not refused. Changed: ``rcpt_meta`` carries the email's
    correlation id."""
    kit = SparkPostKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("recipient@example.com",))
    batch = [
        {
            "msys": {
                "message_event": {
                    "type": "delivery",
                    "campaign_id": "Example Campaign Name",
                    "customer_id": "1",
                    "delv_method": "esmtp",
                    "event_id": "92356927693813856",
                    "friendly_from": "sender@example.com",
                    "ip_address": "127.0.0.1",
                    "ip_pool": "Example-Ip-Pool",
                    "message_id": "000443ee14578172be22",
                    "msg_from": "sender@example.com",
                    "msg_size": "1337",
                    "num_retries": "2",
                    "queue_time": "12",
                    "rcpt_meta": {"customKey": "customValue", "maildelivery_id": public_id},
                    "rcpt_tags": ["male", "US"],
                    "rcpt_to": "recipient@example.com",
                    "raw_rcpt_to": "recipient@example.com",
                    "rcpt_type": "cc",
                    "routing_domain": "example.com",
                    "sending_ip": "127.0.0.1",
                    "subaccount_id": "101",
                    "subject": "Summer deals are here!",
                    "template_id": "templ-1234",
                    "template_version": "1",
                    "timestamp": "2016-02-02T19:50:00.000Z",
                    "transmission_id": "65832150921904138",
                }
            }
        }
    ]
    response = post(app, kit, (json.dumps(batch).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert stored.occurred_at == datetime(2016, 2, 2, 19, 50, tzinfo=UTC)
    assert recipient_states(app, email_id)["recipient@example.com"][0] == "delivered"
