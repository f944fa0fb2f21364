"""The ``mailgun`` transport against a fake Mailgun Messages API on loopback."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Response

from flask_maildelivery import MailDelivery
from flask_maildelivery.transports import TransportError
from flask_maildelivery.transports.mailgun import MailgunTransport

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

API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
DOMAIN = "mg.acme.test"
MESSAGE_ID = "<20261127033000.1.5E5C2A8F1B@mg.acme.test>"


def messages_api(
    answer: Callable[[ReceivedRequest], Response] | None = None,
) -> Callable[[ReceivedRequest], Response]:
    """A fake ``POST /v3/<domain>/messages``: basic auth ``api:<key>``, a form with
    ``from``, ``to``, ``subject`` and a body, then ``answer`` (default: 200 with an id)."""

    def respond(request: ReceivedRequest) -> Response:
        if request.method != "POST" or request.path != f"/v3/{DOMAIN}/messages":
            return json_response(404, {"message": "not found"})
        expected = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response("Forbidden", status=401, mimetype="text/plain")
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")
        ):
            return json_response(400, {"message": "unsupported content type"})
        for field in ("from", "to", "subject"):
            if not request.form.get(field):
                return json_response(400, {"message": f"{field} parameter is missing"})
        if not (request.form.get("text") or request.form.get("html")):
            return json_response(
                400, {"message": "Need at least one of 'text' or 'html' parameters specified"}
            )
        if answer is not None:
            return answer(request)
        return json_response(200, {"id": MESSAGE_ID, "message": "Queued. Thank you."})

    return respond


def config(provider: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "MAILDELIVERY_TRANSPORT": "mailgun",
        "MAILDELIVERY_MAILGUN_API_KEY": API_KEY,
        "MAILDELIVERY_MAILGUN_DOMAIN": DOMAIN,
        "MAILDELIVERY_MAILGUN_API_URL": provider.url,
        "MAILDELIVERY_HTTP_TIMEOUT": 5,
        **extra,
    }


def test_sends_the_documented_request_and_stores_the_message_id(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = messages_api()
    app = make_app(**config(provider_server))
    email = send_invoice(app)

    [request] = provider_server.requests
    assert request.method == "POST"
    assert request.path == f"/v3/{DOMAIN}/messages"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert list(request.form.items(multi=True)) == [
        ("from", "Acme Billing <billing@acme.test>"),
        ("to", "ann@customer.test"),
        ("to", "Bob Martin <bob@customer.test>"),
        ("cc", "accounting@customer.test"),
        ("bcc", "archive@acme.test"),
        ("subject", "Invoice INV-0042"),
        ("text", TEXT),
        ("html", HTML),
        ("h:Reply-To", "accounts@acme.test"),
        ("h:X-MailDelivery-ID", email.public_id),
        ("h:X-Invoice", "INV-0042"),
        ("v:maildelivery_id", email.public_id),
    ]
    assert request.files == [("attachment", "INV-0042.pdf", "application/pdf", PDF)]

    record = stored(app, email.id)
    assert record.transport == "mailgun"
    assert record.result == "queued"
    assert record.error is None
    # stored without the angle brackets, as the webhook events report it
    assert record.provider_message_id == "20261127033000.1.5E5C2A8F1B@mg.acme.test"
    assert record.recipients == {
        "ann@customer.test": ("to", "queued", None),
        "bob@customer.test": ("to", "queued", None),
        "accounting@customer.test": ("cc", "queued", None),
        "archive@acme.test": ("bcc", "queued", None),
    }


def test_without_attachments_the_form_is_urlencoded(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = messages_api()
    app = make_app(**config(provider_server))
    with app.app_context():
        MailDelivery.state(app).extension.send(subject="Reminder", to=["ann@customer.test"])
    [request] = provider_server.requests
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # an email without any body goes out with a text body of one space
    assert request.form.getlist("text") == [" "]
    assert request.files == []


def test_a_webhook_event_with_only_the_message_id_finds_the_email(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = messages_api()
    app = make_app(**config(provider_server))
    email = send_invoice(app)
    # Mailgun's events carry message.headers.message-id without angle brackets
    deliver_by_message_id(app, "mailgun", MESSAGE_ID.strip("<>"), "ann@customer.test")

    assert event_email_ids(app) == [email.id]
    assert stored(app, email.id).recipients["ann@customer.test"][1] == "delivered"


def test_a_refusal_is_recorded_failed_with_mailgun_s_reason(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = messages_api(
        lambda request: json_response(
            400, {"message": "to parameter is not a valid address. please check documentation"}
        )
    )
    app = make_app(**config(provider_server))
    email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "failed"
    assert record.error == (
        "Mailgun refused the message (HTTP 400): to parameter is not a valid address. "
        "please check documentation"
    )
    assert {status for _, status, _ in record.recipients.values()} == {"failed"}
    assert email_count(app) == 1


def test_a_wrong_api_key_is_refused_by_the_fake_and_recorded(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    provider_server.responder = messages_api()
    app = make_app(**config(provider_server, MAILDELIVERY_MAILGUN_API_KEY="key-wrong"))
    email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "failed"
    assert record.error == (
        "Mailgun refused the message (HTTP 401): Forbidden (check the Mailgun credentials in "
        "the MAILDELIVERY_* settings)"
    )


@pytest.mark.parametrize("answer", ["429", "500", "timeout", "connection refused"])
def test_transient_failures_are_retryable_and_the_email_is_kept(
    make_app: AppFactory, provider_server: FakeProvider, answer: str
) -> None:
    extra: dict[str, Any] = {}
    if answer == "429":
        provider_server.responder = messages_api(
            lambda request: json_response(429, {"message": "Too many requests"})
        )
    elif answer == "500":
        provider_server.responder = messages_api(
            lambda request: Response("Internal Server Error", status=500)
        )
    elif answer == "timeout":
        provider_server.responder = messages_api(provider_server.hang)
        extra["MAILDELIVERY_HTTP_TIMEOUT"] = 0.3
    else:
        extra["MAILDELIVERY_MAILGUN_API_URL"] = f"http://127.0.0.1:{free_port()}"
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


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("MAILDELIVERY_MAILGUN_API_KEY", "set it to a Mailgun API key"),
        ("MAILDELIVERY_MAILGUN_DOMAIN", "set it to the sending domain"),
    ],
)
def test_missing_settings_fail_at_init_app(
    make_app: AppFactory, missing: str, message: str
) -> None:
    settings: dict[str, Any] = {
        "MAILDELIVERY_TRANSPORT": "mailgun",
        "MAILDELIVERY_MAILGUN_API_KEY": API_KEY,
        "MAILDELIVERY_MAILGUN_DOMAIN": DOMAIN,
    }
    del settings[missing]
    with pytest.raises(ValueError, match=message) as raised:
        make_app(**settings)
    assert missing in str(raised.value)


def test_the_eu_region_is_a_base_url(make_app: AppFactory) -> None:
    app = make_app(
        MAILDELIVERY_TRANSPORT="mailgun",
        MAILDELIVERY_MAILGUN_API_KEY=API_KEY,
        MAILDELIVERY_MAILGUN_DOMAIN=DOMAIN,
        MAILDELIVERY_MAILGUN_API_URL="https://api.eu.mailgun.net/",
    )
    transport = MailDelivery.state(app).transport
    assert isinstance(transport, MailgunTransport)
    assert transport.url == f"https://api.eu.mailgun.net/v3/{DOMAIN}/messages"
