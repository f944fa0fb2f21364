"""The ``mailgun`` transport against a fake Mailgun Messages API on loopback: what is
particular to Mailgun (the shared scenarios are in ``test_transport_contract.py``)."""

from __future__ import annotations

import base64
from collections.abc import Callable

from werkzeug.wrappers import Response

from flask_maildelivery import MailDelivery
from flask_maildelivery.transports.mailgun import MailgunTransport

from .conftest import AppFactory
from .fake_provider import FakeProvider, ReceivedRequest, json_response
from .transport_contract import HTML, PDF, TEXT, TransportKit

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


KIT = TransportKit(
    name="mailgun",
    credentials={"MAILDELIVERY_MAILGUN_API_KEY": API_KEY, "MAILDELIVERY_MAILGUN_DOMAIN": DOMAIN},
    api_url_setting="MAILDELIVERY_MAILGUN_API_URL",
    api=messages_api,
    missing_settings=(
        ("MAILDELIVERY_MAILGUN_API_KEY", "set it to a Mailgun API key"),
        ("MAILDELIVERY_MAILGUN_DOMAIN", "set it to the sending domain"),
    ),
    refusal=lambda request: json_response(
        400, {"message": "to parameter is not a valid address. please check documentation"}
    ),
    refusal_error=(
        "Mailgun refused the message (HTTP 400): to parameter is not a valid address. "
        "please check documentation"
    ),
    wrong_credentials={"MAILDELIVERY_MAILGUN_API_KEY": "key-wrong"},
    wrong_credentials_error=(
        "Mailgun refused the message (HTTP 401): Forbidden (check the Mailgun credentials in "
        "the MAILDELIVERY_* settings)"
    ),
    wrong_credentials_header=(
        "Authorization",
        "Basic " + base64.b64encode(b"api:key-wrong").decode(),
    ),
    transient={
        "429": lambda request: json_response(429, {"message": "Too many requests"}),
        "500": lambda request: Response("Internal Server Error", status=500),
    },
    # stored without the angle brackets, as the webhook events report it
    stored_message_id=MESSAGE_ID.strip("<>"),
    # Mailgun's events carry message.headers.message-id without angle brackets
    webhook_message_id=MESSAGE_ID.strip("<>"),
)


def test_sends_the_documented_request(make_app: AppFactory, provider_server: FakeProvider) -> None:
    _, email, request = KIT.send_invoice(make_app, provider_server)
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


def test_without_attachments_the_form_is_urlencoded(
    make_app: AppFactory, provider_server: FakeProvider
) -> None:
    app = KIT.start(make_app, provider_server)
    with app.app_context():
        MailDelivery.state(app).extension.send(subject="Reminder", to=["ann@customer.test"])
    [request] = provider_server.requests
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # an email without any body goes out with a text body of one space
    assert request.form.getlist("text") == [" "]
    assert request.files == []


def test_the_eu_region_is_a_base_url(make_app: AppFactory) -> None:
    app = make_app(
        MAILDELIVERY_TRANSPORT="mailgun",
        **KIT.credentials,
        MAILDELIVERY_MAILGUN_API_URL="https://api.eu.mailgun.net/",
    )
    transport = MailDelivery.state(app).transport
    assert isinstance(transport, MailgunTransport)
    assert transport.url == f"https://api.eu.mailgun.net/v3/{DOMAIN}/messages"
