"""The ``sendgrid`` transport against a fake SendGrid v3 Mail Send API on loopback: what is
particular to SendGrid (the shared scenarios are in ``test_transport_contract.py``)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Response

from flask_maildelivery import MailDelivery

from .conftest import AppFactory, outgoing_message
from .fake_provider import FakeProvider, ReceivedRequest, json_response
from .transport_contract import HTML, PDF, TEXT, TransportKit, send_invoice

API_KEY = "SG.test-key.abcdef"
X_MESSAGE_ID = "W86EgYT6SQKk0lRflfLRsA"
# the event webhook's sg_message_id is "<X-Message-Id>.<suffix>"
SG_MESSAGE_ID = f"{X_MESSAGE_ID}.filterdrecv-5645d9c87f-78xgx-1-6163A1C8-1.0"


def sendgrid_error(status: int, message: str, field: str | None = None) -> Response:
    return json_response(status, {"errors": [{"message": message, "field": field, "help": None}]})


def mail_send(
    answer: Callable[[ReceivedRequest], Response] | None = None,
) -> Callable[[ReceivedRequest], Response]:
    """A fake ``POST /v3/mail/send``: checks the bearer key and the body's required fields
    as SendGrid does, then gives ``answer`` (default: 202 with ``X-Message-Id``)."""

    def respond(request: ReceivedRequest) -> Response:
        if request.method != "POST" or request.path != "/v3/mail/send":
            return sendgrid_error(404, "Not Found")
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return sendgrid_error(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )
        if request.headers.get("Content-Type") != "application/json":
            return sendgrid_error(415, "Content-Type should be application/json.")
        body = request.json()
        for personalization in body.get("personalizations") or [None]:
            if not isinstance(personalization, dict) or not personalization.get("to"):
                return sendgrid_error(400, "The to array is required", "personalizations.0.to")
        if not body.get("from", {}).get("email"):
            return sendgrid_error(400, "The from email is required", "from.email")
        types = [c["type"] for c in body.get("content", [])]
        if not types or ("text/plain" in types and types[0] != "text/plain"):
            return sendgrid_error(400, "text/plain must be first", "content")
        if answer is not None:
            return answer(request)
        return Response(status=202, headers={"X-Message-Id": X_MESSAGE_ID})

    return respond


KIT = TransportKit(
    name="sendgrid",
    credentials={"MAILDELIVERY_SENDGRID_API_KEY": API_KEY},
    api_url_setting="MAILDELIVERY_SENDGRID_API_URL",
    api=mail_send,
    missing_settings=(("MAILDELIVERY_SENDGRID_API_KEY", "set it to a SendGrid API key"),),
    refusal=lambda request: sendgrid_error(
        403, "The from address does not match a verified Sender Identity.", "from"
    ),
    refusal_error=(
        "SendGrid refused the message (HTTP 403): The from address does not match a verified "
        "Sender Identity. (field from) (check the SendGrid credentials in the MAILDELIVERY_* "
        "settings)"
    ),
    wrong_credentials={"MAILDELIVERY_SENDGRID_API_KEY": "SG.revoked"},
    wrong_credentials_error=(
        "SendGrid refused the message (HTTP 401): The provided authorization grant is invalid, "
        "expired, or revoked (check the SendGrid credentials in the MAILDELIVERY_* settings)"
    ),
    wrong_credentials_header=("Authorization", "Bearer SG.revoked"),
    transient={
        "429": lambda request: sendgrid_error(429, "too many requests"),
        "500": lambda request: Response("", status=500),
    },
    stored_message_id=X_MESSAGE_ID,
    # the webhook adapter cuts the sg_message_id's suffix, so the event names the message by
    # the X-Message-Id prefix
    webhook_message_id=SG_MESSAGE_ID.split(".", 1)[0],
    webhook_recipient="bob@customer.test",
)


def test_sends_the_documented_request(make_app: AppFactory, provider_server: FakeProvider) -> None:
    _, email, request = KIT.send_invoice(make_app, provider_server)
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "personalizations": [
            {
                "to": [
                    {"email": "ann@customer.test"},
                    {"email": "bob@customer.test", "name": "Bob Martin"},
                ],
                "cc": [{"email": "accounting@customer.test"}],
                "bcc": [{"email": "archive@acme.test"}],
            }
        ],
        "from": {"email": "billing@acme.test", "name": "Acme Billing"},
        "reply_to": {"email": "accounts@acme.test"},
        "subject": "Invoice INV-0042",
        "content": [
            {"type": "text/plain", "value": TEXT},
            {"type": "text/html", "value": HTML},
        ],
        "attachments": [
            {
                "content": base64.b64encode(PDF).decode(),
                "filename": "INV-0042.pdf",
                "type": "application/pdf",
                "disposition": "attachment",
            }
        ],
        "headers": {"X-MailDelivery-ID": email.public_id, "X-Invoice": "INV-0042"},
        "custom_args": {"maildelivery_id": email.public_id},
    }


def test_a_header_added_by_a_before_send_receiver_is_sent(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    from flask_maildelivery import signals

    def add_header(sender: Any, message: Any) -> None:
        message["X-Tenant"] = "acme-fr"
        message.replace_header("Subject", "[ACME] " + str(message["Subject"]))

    app = KIT.start(make_app, provider_server)
    with signals.before_send.connected_to(add_header):
        email = send_invoice(app)
    body = provider_server.requests[0].json()
    assert body["subject"] == "[ACME] Invoice INV-0042"
    assert body["headers"] == {
        "X-MailDelivery-ID": email.public_id,
        "X-Invoice": "INV-0042",
        "X-Tenant": "acme-fr",
    }


def test_one_connection_serves_several_sends(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    app = KIT.start(make_app, provider_server)
    transport = MailDelivery.state(app).transport
    for _ in range(3):
        transport.send(outgoing_message())
    ports = {request.client_port for request in provider_server.requests}
    assert len(provider_server.requests) == 3
    assert len(ports) == 1


def test_duplicate_addresses_are_sent_once(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    # SendGrid refuses an address that appears twice in a personalization
    app = KIT.start(make_app, provider_server)
    with app.app_context():
        MailDelivery.state(app).extension.send(
            subject="Statement",
            to=["ann@customer.test"],
            cc=["ANN@customer.test", "bob@customer.test"],
            text="...",
        )
    body = provider_server.requests[0].json()
    assert body["personalizations"] == [
        {"to": [{"email": "ann@customer.test"}], "cc": [{"email": "bob@customer.test"}]}
    ]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("MAILDELIVERY_HTTP_TIMEOUT", None, "MAILDELIVERY_HTTP_TIMEOUT=None is not a number"),
        ("MAILDELIVERY_HTTP_TIMEOUT", 0, "set it to a positive number"),
        ("MAILDELIVERY_SENDGRID_API_URL", "api.sendgrid.com", "is not a base URL"),
    ],
)
def test_bad_http_settings_fail_at_init_app(
    make_app: AppFactory, setting: str, value: Any, message: str
) -> None:
    settings: dict[str, Any] = {
        "MAILDELIVERY_TRANSPORT": "sendgrid",
        "MAILDELIVERY_SENDGRID_API_KEY": API_KEY,
        setting: value,
    }
    with pytest.raises(ValueError, match=message):
        make_app(**settings)
