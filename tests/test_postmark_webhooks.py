"""What is particular to the Postmark webhook, and payloads copied from Postmark's
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from .kits import PostmarkKit, basic, post
from .kits.postmark import postmark_time
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


def test_documented_delivery_then_bounce(make_app: Any) -> None:
    """The examples of Postmark's delivery and bounce webhook pages
    (postmarkapp.com/developer/webhooks/delivery-webhook and .../bounce-webhook), posted one
    record per request: a bounce after the delivery wins. Changed: the times, which must be
    recent (Postmark signs nothing, so an old record is refused as a replay), and the
    metadata, which also carries the email's correlation id."""
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("john@example.com",))
    set_message_id(app, email_id, "883953f4-6105-42a2-a16a-77a8eac79483")
    now = datetime.now(UTC)
    delivery = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": "john@example.com",
        "Tag": "welcome-email",
        "DeliveredAt": postmark_time(now - timedelta(minutes=5)),
        "Details": "Test delivery webhook details",
        "Metadata": {"a_key": "a_value", "b_key": "b_value", "maildelivery_id": public_id},
    }
    bounce = {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value", "b_key": "b_value", "maildelivery_id": public_id},
        "ServerID": 23,
        "Description": (
            "The server was unable to deliver your message (ex: unknown user, mailbox not found)."
        ),
        "Details": "Test bounce details",
        "Email": "john@example.com",
        "From": "sender@example.com",
        "BouncedAt": postmark_time(now),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Test subject",
        "Content": "<Full dump of bounce>",
    }
    for record in (delivery, bounce):
        response = post(app, kit, (json.dumps(record).encode(), kit.auth_headers()))
        assert response.status_code == 200, response.get_json()
    delivered, bounced = stored_events(app)
    assert event_outcome(delivered) == Outcome(
        "delivered", "Test delivery webhook details", None, None
    )
    assert event_outcome(bounced) == Outcome("bounced", "Test bounce details", None, "hard")
    assert bounced.raw_type == "Bounce:HardBounce"
    assert bounced.provider_event_id == "Bounce:4323372036854775807"
    for event in (delivered, bounced):
        assert (event.email_id, event.correlation_id) == (email_id, public_id)
        assert event.provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert recipient_outcome(app, email_id, "john@example.com") == Outcome(
        "bounced", "Test bounce details", None, "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_hard_bounce_reason_is_the_smtp_answer_in_details(make_app: Any) -> None:
    """A hard bounce whose ``Details`` holds the receiving server's answer, with a recent
    ``BouncedAt`` and the email's correlation id in ``Metadata``."""
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    record = {
        "RecordType": "Bounce",
        "ID": 4242,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageStream": "outbound",
        "MessageID": "00000000-0000-4000-8000-000000000042",
        "Email": "rcpt@example.org",
        "BouncedAt": postmark_time(datetime.now(UTC)),
        "Details": "550 5.1.1 no such user",
        "Inactive": True,
        "CanActivate": True,
        "Tag": "receipt",
        "Metadata": {"maildelivery_id": public_id},
    }
    response = post(app, kit, (json.dumps(record).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [event] = stored_events(app)
    assert event_outcome(event) == Outcome("bounced", "550 5.1.1 no such user", None, "hard")
    assert (event.email_id, event.correlation_id) == (email_id, public_id)
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "550 5.1.1 no such user", None, "hard"
    )


def test_rotated_credentials_are_accepted(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    body, headers = kit.request([event])
    headers["Authorization"] = basic("old-hook", "old-pass")
    assert post(app, kit, (body, headers)).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_missing_credentials_get_a_basic_challenge(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    response = kit.post_events(app, [{"RecordType": "Delivery"}], mode="missing")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_seven_digit_fractions_and_offsets_are_parsed(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    now = datetime.now(UTC).astimezone(timezone(timedelta(hours=-4)))
    event = kit.one_event("delivered", public_id, at=now)
    event["DeliveredAt"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "3-04:00"
    assert kit.post_events(app, [event]).status_code == 200
    [stored] = stored_events(app)
    assert abs((stored.occurred_at - now).total_seconds()) < 1


def test_reactivation_is_not_an_unsubscribe(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    record = {
        "RecordType": "SubscriptionChange",
        "MessageID": "00000000-0000-4000-8000-000000000001",
        "Recipient": "ann@customer.test",
        "ChangedAt": datetime.now(UTC).isoformat(),
        "SuppressSending": False,
        "Metadata": {"maildelivery_id": public_id},
    }
    assert kit.post_events(app, [record]).status_code == 200
    assert [e.type for e in stored_events(app)] == ["unknown"]
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "queued"


def _subscription_change(public_id: str, **changes: Any) -> dict[str, Any]:
    """The example of Postmark's subscription change webhook page
    (postmarkapp.com/developer/webhooks/subscription-change-webhook). Changed: the metadata,
    which carries the email's correlation id, and what ``changes`` says."""
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 123456,
        "MessageStream": "outbound",
        "ChangedAt": "2020-02-01T10:53:34.416071Z",
        "Recipient": "bounced-address@wildbit.com",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "HardBounce",
        "Tag": "my-tag",
        "Metadata": {"example": "value", "maildelivery_id": public_id},
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "status", "bounce_type"),
    [
        ({}, "bounced", "hard"),
        ({"SuppressionReason": "SpamComplaint"}, "complained", None),
        ({"SuppressionReason": "ManualSuppression", "Origin": "Customer"}, "dropped", None),
        ({"SuppressionReason": "ManualSuppression", "Origin": "Recipient"}, "unsubscribed", None),
        ({"SuppressSending": False}, "queued", None),
    ],
    ids=["hard-bounce", "spam-complaint", "manual", "unsubscribe", "reactivated"],
)
def test_documented_subscription_change_maps_by_its_suppression_reason(
    make_app: Any, changes: dict[str, Any], status: str, bounce_type: str | None
) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("bounced-address@wildbit.com",))
    record = _subscription_change(public_id, **changes)
    response = post(app, kit, (json.dumps(record).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert stored.raw_type == "SubscriptionChange"
    assert stored.occurred_at == datetime(2020, 2, 1, 10, 53, 34, 416071, tzinfo=UTC)
    assert recipient_states(app, email_id)["bounced-address@wildbit.com"] == (status, bounce_type)


def test_documented_soft_bounce_is_final_and_a_bounce_without_bounced_at_is_kept(
    make_app: Any,
) -> None:
    """The example of Postmark's bounce webhook page with ``Type: SoftBounce`` (Postmark
    reports it once it stopped trying: a failure, soft), and the same record without its
    optional ``BouncedAt``: it is dated when it arrived instead of refused."""
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("john@example.com", "jane@example.com"))
    record = {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "SoftBounce",
        "TypeCode": 4096,
        "Name": "Soft bounce",
        "Tag": "Test",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"a_key": "a_value", "maildelivery_id": public_id},
        "ServerID": 23,
        "Description": "Unable to temporarily deliver this message.",
        "Details": "Test bounce details",
        "Email": "john@example.com",
        "From": "sender@example.com",
        "BouncedAt": "2019-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": False,
        "CanActivate": True,
        "Subject": "Test subject",
        "Content": "<Full dump of bounce>",
    }
    response = post(app, kit, (json.dumps(record).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    assert recipient_outcome(app, email_id, "john@example.com") == Outcome(
        "bounced", "Test bounce details", None, "soft"
    )
    without_time = {key: value for key, value in record.items() if key != "BouncedAt"} | {
        "ID": 4323372036854775808,
        "Email": "jane@example.com",
        "Type": "HardBounce",
    }
    before = datetime.now(UTC)
    response = post(app, kit, (json.dumps(without_time).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    stored = next(e for e in stored_events(app) if e.address == "jane@example.com")
    assert stored.occurred_at >= before - timedelta(seconds=1)
    assert recipient_states(app, email_id)["jane@example.com"] == ("bounced", "hard")
    assert email_result(app, email_id) == ("error", "bounced")
