"""What is particular to the Postal webhook, and payloads written out from Postal's
documentation, signed in the test with an RSA key generated here; the mapping of each kind
of event is in ``test_webhooks_contract.py``."""

from __future__ import annotations

import json
import time
from typing import Any

from .kits import PostalKit, post
from .kits.postal import postal_signature
from .webhook_helpers import (
    Outcome,
    email_result,
    recipient_outcome,
    send_email,
    set_message_id,
    stored_events,
)

#: The message of the examples of Postal's webhook page (docs.postalserver.io, Webhooks).
MESSAGE = {
    "id": 12345,
    "token": "abcdef123",
    "direction": "outgoing",
    "message_id": "5817a64332f44_4ec93ff59e79d154565eb@app34.mail",
    "to": "test@example.com",
    "from": "sales@awesomeapp.com",
    "subject": "Welcome to AwesomeApp",
    "timestamp": 1477945177.12994,
    "spam_status": "NotSpam",
    "tag": "welcome",
}


def test_documented_message_sent_then_bounced(make_app: Any) -> None:
    """The MessageSent and MessageBounced examples, found by the message's Message-ID (the
    tag is the sender's own). Changed: the events' top-level ``timestamp``, which is signed
    and must be within the retry horizon, and ``uuid``; the bounce is signed with
    ``X-Postal-Signature-256`` as newer Postal versions do."""
    kit = PostalKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app, to=("test@example.com",))
    set_message_id(app, email_id, "<5817a64332f44_4ec93ff59e79d154565eb@app34.mail>")
    sent = {
        "event": "MessageSent",
        "timestamp": time.time() - 60,
        "uuid": "6b6e0a4c-0f38-4a49-a5a3-62d9d5a5d001",
        "payload": {
            "message": MESSAGE,
            "status": "Sent",
            "details": "Message sent by SMTP to aspmx.l.google.com (2a00:1450:400c:c0b::1b) "
            "(from 2a00:67a0:a:15::2)",
            "output": "250 2.0.0 OK 1477944899 ly2si31746747wjb.95 - gsmtp\n",
            "sent_with_ssl": True,
            "timestamp": 1477945177.12994,
            "time": 0.15,
        },
    }
    bounced = {
        "event": "MessageBounced",
        "timestamp": time.time(),
        "uuid": "6b6e0a4c-0f38-4a49-a5a3-62d9d5a5d002",
        "payload": {
            "original_message": MESSAGE,
            "bounce": {
                "id": 12347,
                "token": "abcdef124",
                "direction": "incoming",
                "message_id": "5817a64332f44_4ec93ff59e79d154565eb@someserver.com",
                "to": "abcde@psrp.postal.yourdomain.com",
                "from": "postmaster@someserver.com",
                "subject": "Delivery Error",
                "timestamp": 1477945179.12994,
                "spam_status": "NotSpam",
                "tag": None,
            },
        },
    }
    body = json.dumps(sent).encode()
    assert post(app, kit, (body, kit.signed_headers(body))).status_code == 200
    body = json.dumps(bounced).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Postal-Signature-256": postal_signature(kit.key, body, "sha256"),
    }
    response = post(app, kit, (body, headers))
    assert response.status_code == 200, response.get_json()
    delivered, bounce = stored_events(app)
    assert delivered.smtp_code == "250"
    assert (bounce.email_id, bounce.address) == (email_id, "test@example.com")
    assert recipient_outcome(app, email_id, "test@example.com") == Outcome(
        "bounced", "Delivery Error", None, "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_body_changed_after_signing_is_refused(make_app: Any) -> None:
    """The signature covers the whole body: a MessageSent whose status was changed after
    signing is refused, nothing stored."""
    kit = PostalKit()
    app = kit.start(make_app)
    send_email(app, to=("test@example.com",))
    event = {
        "event": "MessageSent",
        "timestamp": time.time(),
        "uuid": "6b6e0a4c-0f38-4a49-a5a3-62d9d5a5d003",
        "payload": {"message": MESSAGE, "status": "Sent", "details": "", "output": ""},
    }
    body = json.dumps(event).encode()
    headers = kit.signed_headers(body)
    forged = body.replace(b'"Sent"', b'"HardFail"')
    assert post(app, kit, (forged, headers)).status_code == 401
    assert stored_events(app) == []
