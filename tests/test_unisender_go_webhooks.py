"""What is particular to the Unisender Go webhook, and the callback example of Unisender
Go's documentation, authenticated in the test with an API key generated here; the mapping of
each kind of event is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from .kits import UnisenderGoKit, post
from .kits.unisender_go import unisender_body
from .webhook_helpers import (
    Outcome,
    recipient_outcome,
    send_email,
    stored_events,
)


def _documented(public_id: str, status: str, delivery_info: dict[str, Any]) -> dict[str, Any]:
    """The callback example of Unisender Go's webhook page (godocs.unisender.ru, "Callback
    format"). Changed: the metadata, which also carries the email's correlation id, and the
    status and delivery info given."""
    return {
        "events_by_user": [
            {
                "user_id": 456,
                "project_id": "6432890213745872",
                "project_name": "MyProject",
                "events": [
                    {
                        "event_name": "transactional_email_status",
                        "event_data": {
                            "job_id": "1a3Q2V-0000OZ-S0",
                            "metadata": {
                                "key1": "val1",
                                "key2": "val2",
                                "maildelivery_id": public_id,
                            },
                            "email": "recipient.email@example.com",
                            "status": status,
                            "event_time": "2015-11-30 15:09:42",
                            "url": "http://some.url.com",
                            "delivery_info": delivery_info,
                        },
                    },
                    {
                        "event_name": "transactional_spam_block",
                        "event_data": {
                            "block_time": "2015-11-30 15:09:42",
                            "block_type": "one_smtp",
                            "domain": "domain_name",
                            "SMTP_blocks_count": 8,
                            "domain_status": "blocked",
                        },
                    },
                ],
            }
        ]
    }


def test_documented_callback(make_app: Any) -> None:
    """The example as written (a ``hard_bounced`` status with its delivery info): the
    recipient bounced, dated by ``event_time`` (UTC); the spam block, about a domain, is
    kept as ``unknown`` and changes nothing."""
    kit = UnisenderGoKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("recipient.email@example.com",))
    data = _documented(
        public_id,
        "hard_bounced",
        {
            "delivery_status": "err_delivery_failed",
            "destination_response": "550 Spam rejected",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "ip": "111.111.111.111",
        },
    )
    response = post(app, kit, (unisender_body(data, kit.api_key), {}))
    assert response.status_code == 200, response.get_json()
    bounce, block = stored_events(app)
    assert bounce.occurred_at == datetime(2015, 11, 30, 15, 9, 42, tzinfo=UTC)
    assert bounce.provider_message_id == "1a3Q2V-0000OZ-S0"
    assert (block.type, block.raw_type, block.email_id) == (
        "unknown",
        "transactional_spam_block",
        None,
    )
    assert recipient_outcome(app, email_id, "recipient.email@example.com") == Outcome(
        "bounced", "550 Spam rejected", None, "hard"
    )


def test_auth_is_checked_over_the_body_as_sent(make_app: Any) -> None:
    """``auth`` is the MD5 of the body as sent, with the key in its place: the same callback
    spaced differently is accepted when its auth was computed over that text, and a body
    changed after it was computed is refused."""
    kit = UnisenderGoKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("recipient.email@example.com",))
    data = _documented(public_id, "delivered", {})
    spaced = json.dumps({"auth": kit.api_key, **data}, indent=2)
    auth = hashlib.md5(spaced.encode(), usedforsecurity=False).hexdigest()
    body = spaced.replace(kit.api_key, auth, 1).encode()
    tampered = body.replace(b'"delivered"', b'"hard_bounced"')
    assert post(app, kit, (tampered, {})).status_code == 401
    assert stored_events(app) == []
    response = post(app, kit, (body, {}))
    assert response.status_code == 200, response.get_json()
    assert recipient_outcome(app, email_id, "recipient.email@example.com").status == "delivered"
