"""The ``postmark`` transport against a fake Postmark Email API on loopback."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Response

from flask_maildelivery import MailDelivery
from flask_maildelivery.transports import TransportError

from .conftest import AppFactory, free_port, outgoing_message
from .fake_provider import FakeProvider, ReceivedRequest, json_response
from .transport_contract import (
    HTML,
    PDF,
    TEXT,
    deliver_by_message_id,
    email_count,
    event_email_ids,
    send_invoice,
    stored,
)

SERVER_TOKEN = "b7f2a5c1-3c1d-4f2e-9a7b-0c9d8e7f6a5b"
MESSAGE_ID = "0a129aee-e1cd-480d-b08d-4f48548ff48d"


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


def config(provider: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "MAILDELIVERY_TRANSPORT": "postmark",
        "MAILDELIVERY_POSTMARK_SERVER_TOKEN": SERVER_TOKEN,
        "MAILDELIVERY_POSTMARK_API_URL": provider.url,
        "MAILDELIVERY_HTTP_TIMEOUT": 5,
        **extra,
    }


def test_sends_the_documented_request_and_stores_the_message_id(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = email_api()
    app = make_app(**config(provider_server, MAILDELIVERY_POSTMARK_MESSAGE_STREAM="invoices"))
    email = send_invoice(app)

    [request] = provider_server.requests
    assert request.method == "POST"
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

    record = stored(app, email.id)
    assert record.transport == "postmark"
    assert record.result == "queued"
    assert record.error is None
    assert record.provider_message_id == MESSAGE_ID
    assert record.recipients == {
        "ann@customer.test": ("to", "queued", None),
        "bob@customer.test": ("to", "queued", None),
        "accounting@customer.test": ("cc", "queued", None),
        "archive@acme.test": ("bcc", "queued", None),
    }


def test_the_default_message_stream_is_outbound(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = email_api()
    app = make_app(**config(provider_server))
    send_invoice(app)
    assert provider_server.requests[0].json()["MessageStream"] == "outbound"


def test_an_answer_without_message_id_still_counts_as_sent(
    make_app: AppFactory, provider_server: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    provider_server.responder = email_api(
        lambda request: json_response(200, {"ErrorCode": 0, "Message": "OK"})
    )
    app = make_app(**config(provider_server))
    with caplog.at_level(logging.WARNING, logger="flask_maildelivery.transports"):
        email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "queued"
    assert record.provider_message_id is None
    assert 'Postmark accepted the message but its answer has no "MessageID"' in caplog.text


def test_a_webhook_event_with_only_the_message_id_finds_the_email(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = email_api()
    app = make_app(**config(provider_server))
    email = send_invoice(app)
    # Postmark's webhooks carry the same MessageID the Email API answered
    deliver_by_message_id(app, "postmark", MESSAGE_ID, "accounting@customer.test")

    assert event_email_ids(app) == [email.id]
    assert stored(app, email.id).recipients["accounting@customer.test"][1] == "delivered"


def test_a_refusal_is_recorded_failed_with_postmark_s_reason(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    reason = (
        "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
        "addresses: ann@customer.test."
    )
    provider_server.responder = email_api(lambda request: postmark_error(422, 406, reason))
    app = make_app(**config(provider_server))
    email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "failed"
    assert record.error == f"Postmark refused the message (HTTP 422): ErrorCode 406: {reason}"
    assert {status for _, status, _ in record.recipients.values()} == {"failed"}
    assert email_count(app) == 1


def test_a_wrong_server_token_is_refused_by_the_fake_and_recorded(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = email_api()
    app = make_app(**config(provider_server, MAILDELIVERY_POSTMARK_SERVER_TOKEN="not-a-token"))
    email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "failed"
    assert "HTTP 401): ErrorCode 10: The Server Token you provided" in (record.error or "")


@pytest.mark.parametrize("answer", ["429", "500", "timeout", "connection refused"])
def test_transient_failures_are_retryable_and_the_email_is_kept(
    make_app: AppFactory, provider_server: FakeProvider, answer: str
) -> None:
    extra: dict[str, Any] = {}
    if answer == "429":
        provider_server.responder = email_api(
            lambda request: postmark_error(429, 429, "Rate limit exceeded")
        )
    elif answer == "500":
        provider_server.responder = email_api(
            lambda request: postmark_error(500, 0, "Internal server error")
        )
    elif answer == "timeout":
        provider_server.responder = email_api(provider_server.hang)
        extra["MAILDELIVERY_HTTP_TIMEOUT"] = 0.3
    else:
        extra["MAILDELIVERY_POSTMARK_API_URL"] = f"http://127.0.0.1:{free_port()}"
    app = make_app(**config(provider_server, **extra))

    with pytest.raises(TransportError) as raised:
        MailDelivery.state(app).transport.send(outgoing_message())
    assert raised.value.retryable is True

    email = send_invoice(app)
    record = stored(app, email.id)
    assert record.result == "failed"
    assert "temporary failure, sending again later may succeed" in (record.error or "")
    assert len(record.recipients) == 4
    assert email_count(app) == 1


def test_missing_server_token_fails_at_init_app(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="MAILDELIVERY_POSTMARK_SERVER_TOKEN: set it to the"):
        make_app(MAILDELIVERY_TRANSPORT="postmark")
