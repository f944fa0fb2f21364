"""What is particular to the Mandrill webhook, and the batch of Mandrill's documentation,
signed in the test with a key generated here; the mapping of each kind of event is in
``test_webhooks_contract.py``."""

from __future__ import annotations

import json
from typing import Any

from .kits import MandrillKit, post, webhook_url
from .kits.mandrill import mandrill_signature
from .webhook_helpers import (
    Outcome,
    email_result,
    recipient_outcome,
    send_email,
    stored_events,
)


def _message(public_id: str, **extra: Any) -> dict[str, Any]:
    """The message of the examples of Mandrill's webhook format page
    (mailchimp.com/developer/transactional/guides/track-respond-activity-webhooks), with
    ``extra``; the metadata also carries the email's correlation id."""
    return {
        "ts": 1365109999,
        "subject": "This an example webhook message",
        "email": "example.webhook@mandrillapp.com",
        "sender": "example.sender@mandrillapp.com",
        "tags": ["webhook-example"],
        "opens": [],
        "clicks": [],
        "metadata": {"user_id": 111, "maildelivery_id": public_id},
        "_version": "exampleaaaaaaaaaaaaaaa",
        **extra,
    }


def test_documented_send_and_hard_bounce(make_app: Any) -> None:
    """A ``send`` and a ``hard_bounce`` as the page writes them, in one form post: the send
    is a delivery, the bounce (with its ``diag``) wins."""
    kit = MandrillKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("example.webhook@mandrillapp.com",))
    events = [
        {
            "event": "send",
            "msg": _message(public_id, state="sent", _id="exampleaaaaaaaaaaaaaaaaaaaaaaaaa"),
            "_id": "exampleaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ts": 1485557013,
        },
        {
            "event": "hard_bounce",
            "msg": _message(
                public_id,
                state="bounced",
                _id="exampleaaaaaaaaaaaaaaaaaaaaaaaaa",
                bounce_description="bad_mailbox",
                bgtools_code=10,
                diag="smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            ),
            "_id": "exampleaaaaaaaaaaaaaaaaaaaaaaaaa",
            "ts": 1485557014,
        },
    ]
    response = post(app, kit, kit.form_request({"mandrill_events": json.dumps(events)}))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == 2
    reason = "smtp;550 5.1.1 The email account that you tried to reach does not exist."
    assert recipient_outcome(app, email_id, "example.webhook@mandrillapp.com") == Outcome(
        "bounced", reason, None, "hard"
    )
    assert email_result(app, email_id) == ("error", "bounced")


def test_signature_covers_the_registered_url(make_app: Any) -> None:
    """Mandrill signs the URL as registered: a request signed for another URL is refused, and
    ``MAILDELIVERY_MANDRILL_WEBHOOK_URL`` names the registered one when a proxy changes what
    the application sees. The empty batch Mandrill posts when a webhook is added is
    accepted."""
    kit = MandrillKit()
    registered = "https://erp.example" + webhook_url("mandrill")
    fields = {"mandrill_events": "[]"}
    body, headers = kit.form_request(fields)
    headers["X-Mandrill-Signature"] = mandrill_signature(kit.key, registered, fields)
    app = kit.start(make_app)
    response = post(app, kit, (body, headers))
    assert response.status_code == 401
    assert "MAILDELIVERY_MANDRILL_WEBHOOK_URL" in response.get_json()["error"]
    app = kit.start(make_app, MAILDELIVERY_MANDRILL_WEBHOOK_URL=registered)
    response = post(app, kit, (body, headers))
    assert response.status_code == 200, response.get_json()
    assert stored_events(app) == []
