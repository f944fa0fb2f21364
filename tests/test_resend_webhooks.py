"""What is particular to the Resend webhook, and payloads copied from Resend's
documentation posted as they are written there; the mapping of each kind of event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .kits import ResendKit, post
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


def test_documented_delay_then_failure(make_app: Any) -> None:
    """The examples of Resend's ``email.delivery_delayed`` and ``email.failed`` webhook
    pages (resend.com/docs/webhooks/emails/delivery-delayed and .../failed), each a Svix
    message of its own. Changed: the tags, which also carry the email's correlation id; the
    email's id at the send API is the documented ``email_id``."""
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("delivered@resend.dev",))
    set_message_id(app, email_id, "56761188-7520-42d8-8898-ff6fc54ce618")
    delayed = {
        "type": "email.delivery_delayed",
        "created_at": "2024-02-22T23:41:12.126Z",
        "data": {
            "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
            "created_at": "2024-02-22T23:41:11.894719+00:00",
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme <onboarding@resend.dev>",
            "to": ["delivered@resend.dev"],
            "subject": "Sending this example",
            "template_id": "43f68331-0622-4e15-8202-246a0388854b",
            "tags": {"category": "confirm_email", "maildelivery_id": public_id},
        },
    }
    failed = {
        "type": "email.failed",
        "created_at": "2024-11-22T23:41:12.126Z",
        "data": {
            "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
            "created_at": "2024-11-22T23:41:11.894719+00:00",
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme <onboarding@resend.dev>",
            "to": ["delivered@resend.dev"],
            "subject": "Sending this example",
            "template_id": "43f68331-0622-4e15-8202-246a0388854b",
            "failed": {"reason": "reached_daily_quota"},
            "tags": {"category": "confirm_email", "maildelivery_id": public_id},
        },
    }
    for svix_id, payload in (("msg_delayed_1", delayed), ("msg_failed_1", failed)):
        body = json.dumps(payload).encode()
        response = post(app, kit, (body, kit.signed_headers(body, svix_id)))
        assert response.status_code == 200, response.get_json()
    deferred, dropped = stored_events(app)
    assert event_outcome(deferred) == Outcome("deferred", None, None, None)
    assert event_outcome(dropped) == Outcome("dropped", "reached_daily_quota", None, None)
    for event in (deferred, dropped):
        assert (event.email_id, event.correlation_id) == (email_id, public_id)
        assert event.provider_message_id == "56761188-7520-42d8-8898-ff6fc54ce618"
    assert dropped.provider_event_id == "msg_failed_1"
    assert dropped.occurred_at == datetime(2024, 11, 22, 23, 41, 12, 126000, tzinfo=UTC)
    assert recipient_outcome(app, email_id, "delivered@resend.dev") == Outcome(
        "dropped", "reached_daily_quota", None, None
    )
    assert email_result(app, email_id) == ("error", "dropped")


def test_permanent_bounce_is_hard(make_app: Any) -> None:
    """A bounce of type ``Permanent``, subtype ``General`` (not a suppression), with the
    email's correlation id as a tag."""
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    event = {
        "type": "email.bounced",
        "created_at": "2024-01-01T00:00:01.000Z",
        "data": {
            "email_id": "00000000-0000-4000-8000-0000000000aa",
            "to": ["rcpt@example.org"],
            "from": "App <noreply@example.com>",
            "subject": "Receipt",
            "created_at": "2024-01-01T00:00:00.000Z",
            "bounce": {
                "type": "Permanent",
                "subType": "General",
                "message": "The recipient's mail server permanently rejected the email.",
            },
            "tags": {"maildelivery_id": public_id},
        },
    }
    body = json.dumps(event).encode()
    response = post(app, kit, (body, kit.signed_headers(body, "msg_bounce_1")))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    reason = "The recipient's mail server permanently rejected the email."
    assert event_outcome(stored) == Outcome("bounced", reason, None, "hard")
    assert (stored.email_id, stored.correlation_id) == (email_id, public_id)
    assert stored.provider_message_id == "00000000-0000-4000-8000-0000000000aa"
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", reason, None, "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_window_follows_the_retry_horizon_and_can_be_narrowed(make_app: Any) -> None:
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    # the last Svix retry comes about 28 hours after the first attempt
    then = datetime.now(UTC) - timedelta(hours=27)
    response = kit.post_events(
        app, [kit.one_event("delivered", public_id, at=then)], signed_at=then
    )
    assert response.status_code == 200, response.get_json()
    assert recipient_outcome(app, email_id, "ann@customer.test").status == "delivered"
    narrow = kit.start(make_app, MAILDELIVERY_RESEND_WEBHOOK_TOLERANCE=300)
    _, public_id = send_email(narrow)
    then = datetime.now(UTC) - timedelta(seconds=400)
    event = kit.one_event("delivered", public_id, at=then)
    response = kit.post_events(narrow, [event], signed_at=then)
    assert response.status_code == 401
    assert "300 s tolerance" in response.get_json()["error"]


def test_tags_as_a_list_and_several_addresses(make_app: Any) -> None:
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("ann@customer.test", "bob@customer.test"))
    event = kit.one_event("delivered", None, event_id="msg_2")
    event["data"]["tags"] = [{"name": "maildelivery_id", "value": public_id}]
    event["data"]["to"] = ["ann@customer.test", "bob@customer.test"]
    assert kit.post_events(app, [event]).status_code == 200
    assert email_result(app, email_id) == ("delivered", "")
    assert {e.provider_event_id for e in stored_events(app)} == {
        "msg_2:ann@customer.test",
        "msg_2:bob@customer.test",
    }


@pytest.mark.parametrize(("kind", "type_"), [("open", "opened"), ("click", "clicked")])
def test_open_and_click_name_no_recipient(make_app: Any, kind: str, type_: str) -> None:
    # the event's "to" lists the message's addresses, not the reader's: no recipient opened
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("ann@customer.test", "bob@customer.test"))
    for address in ("ann@customer.test", "bob@customer.test"):
        event = kit.one_event("delivered", public_id, address=address)
        assert kit.post_events(app, [event]).status_code == 200
    event = kit.one_event(kind, public_id, event_id="msg_open")
    event["data"]["to"] = ["ann@customer.test", "bob@customer.test"]
    assert kit.post_events(app, [event]).status_code == 200
    [stored] = [e for e in stored_events(app) if e.type == type_]
    assert (stored.email_id, stored.recipient_id, stored.address) == (email_id, None, None)
    assert stored.provider_event_id == "msg_open"
    assert {s for s, _ in recipient_states(app, email_id).values()} == {"delivered"}
    assert email_result(app, email_id) == ("delivered", "")


def test_only_v1_signatures_count(make_app: Any) -> None:
    kit = ResendKit()
    app = kit.start(make_app)
    body, headers = kit.request(
        [{"__id": "msg_3", "type": "email.sent", "created_at": "x", "data": {}}]
    )
    headers["svix-signature"] = headers["svix-signature"].replace("v1,", "v2,")
    assert post(app, kit, (body, headers)).status_code == 401


def test_documented_bounce_with_named_recipient_is_found(make_app: Any) -> None:
    """The example of Resend's ``email.bounced`` page (resend.com/docs/webhooks/emails/
    bounced), a transient bounce: Resend sends through SES, which reports it once retries
    stopped (final, soft). Changed: ``to``, written ``"Name <addr>"`` as a send may give it;
    the bounce object, a transient one; the tags, which carry the email's correlation id."""
    kit = ResendKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("delivered@resend.dev",))
    event = {
        "type": "email.bounced",
        "created_at": "2024-11-22T23:41:12.126Z",
        "data": {
            "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
            "created_at": "2024-11-22T23:41:11.894719+00:00",
            "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
            "from": "Acme <onboarding@resend.dev>",
            "to": ["Delivered Example <delivered@resend.dev>"],
            "subject": "Sending this example",
            "template_id": "43f68331-0622-4e15-8202-246a0388854b",
            "bounce": {
                "message": "The recipient's mailbox is full.",
                "subType": "MailboxFull",
                "type": "Transient",
            },
            "tags": {"category": "confirm_email", "maildelivery_id": public_id},
        },
    }
    body = json.dumps(event).encode()
    response = post(app, kit, (body, kit.signed_headers(body, "msg_bounced_named")))
    assert response.status_code == 200, response.get_json()
    assert recipient_outcome(app, email_id, "delivered@resend.dev") == Outcome(
        "bounced", "The recipient's mailbox is full.", None, "soft"
    )
