"""What is particular to the Brevo webhook, and payloads copied from Brevo's documentation
posted as they are written there; the mapping of each kind of event, like the rest of what
every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .kits import BrevoKit, post
from .webhook_helpers import (
    Outcome,
    email_result,
    event_outcome,
    recipient_outcome,
    send_email,
    set_message_id,
    stored_events,
)


def test_documented_sent_event(make_app: Any) -> None:
    """The "Sent" (``request``) example of Brevo's transactional webhooks page
    (developers.brevo.com/docs/transactional-webhooks). Changed: the address, the webhook
    ``id`` and the ``message-id`` (placeholders or hidden on the page), ``ts_epoch``, which
    must be recent (Brevo signs nothing, so an old event is refused as a replay) and is in
    milliseconds as the page's field table says, and ``X-Mailin-custom``, which carries the
    email's correlation id."""
    kit = BrevoKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("example@domain.com",))
    set_message_id(app, email_id, "<201798300811.5787683@relay.domain.com>")
    event = {
        "event": "request",
        "email": "example@domain.com",
        "id": 26224,
        "date": "2020-10-09 00:00:00",
        "ts": 1604933619,
        "message-id": "201798300811.5787683@relay.domain.com",
        "ts_event": 1604933654,
        "subject": "My first Transactional",
        "X-Mailin-custom": json.dumps({"maildelivery_id": public_id}),
        "sending_ip": "xxx.xxx.xxx.xxx",
        "ts_epoch": int(datetime.now(UTC).timestamp() * 1000),
        "template_id": 22,
        "mirror_link": "https://app-smtp.brevo.com/log/preview/1a2000f4-4e33-23aa-ab68-900dxxx9152c",
        "contact_id": 8,
        "tags": ["transac_messages"],
    }
    response = post(app, kit, (json.dumps(event).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert event_outcome(stored) == Outcome("processed", None, None, None)
    assert (stored.email_id, stored.correlation_id) == (email_id, public_id)
    assert stored.provider_message_id == "201798300811.5787683@relay.domain.com"
    assert recipient_outcome(app, email_id, "example@domain.com") == Outcome(
        "processed", None, None, None
    )
    assert email_result(app, email_id) == ("processed", "")


def test_hard_bounce_keeps_the_reason(make_app: Any) -> None:
    """A hard bounce with the receiving server's answer in ``reason``, a recent
    ``ts_epoch`` and the email's correlation id in ``X-Mailin-custom``."""
    kit = BrevoKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("rcpt@example.org",))
    event = {
        "event": "hard_bounce",
        "email": "rcpt@example.org",
        "id": 123456,
        "message-id": "<202401010000.1234567890@smtp-relay.mailin.fr>",
        "date": "2024-01-01 01:00:00",
        "ts_epoch": int(datetime.now(UTC).timestamp() * 1000),
        "reason": "550 5.1.1 no such user",
        "tags": ["receipt"],
        "X-Mailin-custom": json.dumps({"maildelivery_id": public_id}),
    }
    response = post(app, kit, (json.dumps(event).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert event_outcome(stored) == Outcome("bounced", "550 5.1.1 no such user", None, "hard")
    assert (stored.email_id, stored.correlation_id) == (email_id, public_id)
    assert stored.provider_message_id == "202401010000.1234567890@smtp-relay.mailin.fr"
    assert recipient_outcome(app, email_id, "rcpt@example.org") == Outcome(
        "bounced", "550 5.1.1 no such user", None, "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_ts_epoch_is_milliseconds(make_app: Any) -> None:
    kit = BrevoKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    now = datetime.now(UTC)
    event = kit.one_event("delivered", public_id, at=now)
    assert kit.post_events(app, [event]).status_code == 200
    [stored] = stored_events(app)
    assert abs((stored.occurred_at - now).total_seconds()) < 1


def test_message_id_with_brackets_matches(make_app: Any) -> None:
    kit = BrevoKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app)
    message_id = "<202401010000.1234567890@smtp-relay.mailin.fr>"
    set_message_id(app, email_id, message_id)
    event = kit.one_event("hard_bounce", None, message_id=message_id)
    assert kit.post_events(app, [event]).status_code == 200
    assert email_result(app, email_id) == ("error", "bounced")


def _documented(event: str, public_id: str, **changes: Any) -> dict[str, Any]:
    """The example of Brevo's transactional webhooks page for ``event``
    (developers.brevo.com/docs/transactional-webhooks), with ``X-Mailin-custom`` carrying
    the email's correlation id and what ``changes`` says."""
    return {
        "event": event,
        "email": "example@domain.com",
        "id": 26224,
        "date": "2020-10-09 00:00:00",
        "ts": 1604933619,
        "message-id": "201798300811.5787683@relay.domain.com",
        "ts_event": 1604933654,
        "subject": "My first Transactional",
        "X-Mailin-custom": json.dumps({"maildelivery_id": public_id}),
        "sending_ip": "xxx.xxx.xxx.xxx",
        "ts_epoch": 1604933654000,
        "template_id": 22,
        "tags": ["transac_messages"],
        **changes,
    }


def test_documented_soft_bounce_is_final_and_complaint_is_known(make_app: Any) -> None:
    """Brevo's ``soft_bounce`` comes once Brevo stopped retrying (it retries deferred mail
    for about 36 hours): a soft bounce, not a delay. Its ``complaint`` event is a
    complaint."""
    kit = BrevoKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("example@domain.com",))
    bounce = _documented("soft_bounce", public_id, reason="server is down")
    response = post(app, kit, (json.dumps(bounce).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    assert recipient_outcome(app, email_id, "example@domain.com") == Outcome(
        "bounced", "server is down", None, "soft"
    )
    other_id, other_public_id = send_email(app, to=("example@domain.com",))
    complaint = _documented("complaint", other_public_id)
    response = post(app, kit, (json.dumps(complaint).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    assert recipient_outcome(app, other_id, "example@domain.com").status == "complained"


def test_event_without_ts_epoch_is_dated_by_ts_event(make_app: Any) -> None:
    """An event without ``ts_epoch`` (older webhooks send none) is dated by ``ts_event``
    (UTC seconds), not refused."""
    kit = BrevoKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("example@domain.com",))
    event = _documented("delivered", public_id)
    del event["ts_epoch"]
    response = post(app, kit, (json.dumps(event).encode(), kit.auth_headers()))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    assert stored.occurred_at == datetime.fromtimestamp(1604933654, tz=UTC)
    assert recipient_outcome(app, email_id, "example@domain.com").status == "delivered"
