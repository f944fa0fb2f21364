"""The ``postmark`` transport against a fake Postmark Email API on loopback: what is
particular to Postmark (the shared scenarios are in ``test_transport_contract.py``)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

import pytest
from werkzeug.wrappers import Response

from .conftest import AppFactory
from .fake_provider import FakeProvider, ReceivedRequest, json_response
from .transport_contract import HTML, PDF, TEXT, TransportKit, send_invoice, stored

SERVER_TOKEN = "b7f2a5c1-3c1d-4f2e-9a7b-0c9d8e7f6a5b"
MESSAGE_ID = "0a129aee-e1cd-480d-b08d-4f48548ff48d"
INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: ann@customer.test."
)


def postmark_error(status: int, code: int, message: str) -> Response:
    return json_response(status, {"ErrorCode": code, "Message": message})


def email_api(
    answer: Callable[[ReceivedRequest], Response] | None = None,
) -> Callable[[ReceivedRequest], Response]:
    """A fake ``POST /email``: the ``X-Postmark-Server-Token`` header, JSON in and out, the
    required ``From``/``To``/body fields, then ``answer`` (default: 200 with a MessageID)."""

    def respond(request: ReceivedRequest) -> Response:
        if request.method != "POST" or request.path != "/email":
            return postmark_error(404, 404, "Not found")
        if request.headers.get("X-Postmark-Server-Token") != SERVER_TOKEN:
            return postmark_error(
                401,
                10,
                "The Server Token you provided in the X-Postmark-Server-Token "
                "request header was invalid.",
            )
        if request.headers.get("Accept") != "application/json":
            return postmark_error(406, 0, "Accept must be application/json")
        if request.headers.get("Content-Type") != "application/json":
            return postmark_error(415, 0, "Content-Type must be application/json")
        body = request.json()
        if not body.get("From"):
            return postmark_error(422, 300, "Invalid 'From' address: ''.")
        if not (body.get("To") or body.get("Cc") or body.get("Bcc")):
            return postmark_error(422, 300, "Zero recipients specified")
        if not (body.get("TextBody") or body.get("HtmlBody")):
            return postmark_error(422, 300, "Provide either email TextBody or HtmlBody or both.")
        if answer is not None:
            return answer(request)
        return json_response(
            200,
            {
                "To": body["To"],
                "SubmittedAt": "2026-11-27T03:30:00.1234567Z",
                "MessageID": MESSAGE_ID,
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    return respond


KIT = TransportKit(
    name="postmark",
    credentials={"MAILDELIVERY_POSTMARK_SERVER_TOKEN": SERVER_TOKEN},
    api_url_setting="MAILDELIVERY_POSTMARK_API_URL",
    api=email_api,
    missing_settings=(
        ("MAILDELIVERY_POSTMARK_SERVER_TOKEN", "MAILDELIVERY_POSTMARK_SERVER_TOKEN: set it to the"),
    ),
    refusal=lambda request: postmark_error(422, 406, INACTIVE),
    refusal_error=f"Postmark refused the message (HTTP 422): ErrorCode 406: {INACTIVE}",
    wrong_credentials={"MAILDELIVERY_POSTMARK_SERVER_TOKEN": "not-a-token"},
    wrong_credentials_error=(
        "Postmark refused the message (HTTP 401): ErrorCode 10: The Server Token you provided "
        "in the X-Postmark-Server-Token request header was invalid. (check the Postmark "
        "credentials in the MAILDELIVERY_* settings)"
    ),
    wrong_credentials_header=("X-Postmark-Server-Token", "not-a-token"),
    transient={
        "429": lambda request: postmark_error(429, 429, "Rate limit exceeded"),
        "500": lambda request: postmark_error(500, 0, "Internal server error"),
    },
    stored_message_id=MESSAGE_ID,
    # Postmark's webhooks carry the same MessageID the Email API answered
    webhook_message_id=MESSAGE_ID,
    webhook_recipient="accounting@customer.test",
    options={"MAILDELIVERY_POSTMARK_MESSAGE_STREAM": "invoices"},
)


def test_sends_the_documented_request(make_app: AppFactory, provider_server: FakeProvider) -> None:
    _, email, request = KIT.send_invoice(make_app, provider_server, **KIT.options)
    assert request.path == "/email"
    assert request.headers["X-Postmark-Server-Token"] == SERVER_TOKEN
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "From": "Acme Billing <billing@acme.test>",
        "To": "ann@customer.test, Bob Martin <bob@customer.test>",
        "Cc": "accounting@customer.test",
        "Bcc": "archive@acme.test",
        "Subject": "Invoice INV-0042",
        "TextBody": TEXT,
        "HtmlBody": HTML,
        "ReplyTo": "accounts@acme.test",
        "Headers": [
            {"Name": "X-MailDelivery-ID", "Value": email.public_id},
            {"Name": "X-Invoice", "Value": "INV-0042"},
        ],
        "Metadata": {"maildelivery_id": email.public_id},
        "Attachments": [
            {
                "Name": "INV-0042.pdf",
                "Content": base64.b64encode(PDF).decode(),
                "ContentType": "application/pdf",
            }
        ],
        "MessageStream": "invoices",
    }


def test_the_default_message_stream_is_outbound(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    app = KIT.start(make_app, provider_server)
    send_invoice(app)
    assert provider_server.requests[0].json()["MessageStream"] == "outbound"


def test_an_answer_without_message_id_still_counts_as_sent(
    make_app: AppFactory, provider_server: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    app = KIT.start(
        make_app,
        provider_server,
        lambda request: json_response(200, {"ErrorCode": 0, "Message": "OK"}),
    )
    with caplog.at_level(logging.WARNING, logger="flask_maildelivery.transports"):
        email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "queued"
    assert record.provider_message_id is None
    assert 'Postmark accepted the message but its answer has no "MessageID"' in caplog.text
