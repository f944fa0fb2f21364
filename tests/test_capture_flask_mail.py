"""Flask-Mail capture: an existing Flask-Mail app, changed by one line
(``mail_delivery.capture(mail)``), records every email it sends; delivery goes through a
real SMTP server."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from flask import Flask, jsonify
from flask_mail import BadHeaderError, Mail, Message

from flask_maildelivery import MailDelivery, SendRefused
from flask_maildelivery.contrib import DeliveryFailed
from flask_maildelivery.models import Email

from .capture_helpers import parse_message, recorded, smtp_app
from .conftest import AppFactory, SMTPServer, first_or_fail, free_port

PDF = b"%PDF-1.4 purchase order 12"


def install_purchasing(app: Flask) -> Mail:
    """The host's existing Flask-Mail code, as it was before flask-maildelivery."""
    mail = Mail(app)

    @app.post("/orders/<int:number>/send")
    def send_order(number: int) -> Any:
        message = Message(
            subject=f"Purchase order PO-{number}",
            sender=("Acme Purchasing", "purchasing@acme.test"),
            recipients=["vendor@supplier.test", ("Vera Vendor", "vera@supplier.test")],
            cc=["buyer@acme.test"],
            bcc=["archive@acme.test"],
            reply_to="buyer@acme.test",
            body=f"Please confirm purchase order PO-{number}.",
            html=f"<p>Please confirm <b>PO-{number}</b>.</p>",
            extra_headers={"X-Order": f"PO-{number}"},
        )
        message.attach(f"PO-{number}.pdf", "application/pdf", PDF)
        mail.send(message)
        return jsonify(ok=True)

    @app.post("/payslips")
    def send_payslip() -> Any:
        mail.send_message(
            "Your payslip",
            sender="hr@acme.test",
            recipients=["emp@acme.test"],
            body="Attached.",
        )
        return jsonify(ok=True)

    @app.post("/newsletter")
    def send_newsletter() -> Any:
        with mail.connect() as connection:
            for address in ("ann@customer.test", "bob@customer.test"):
                connection.send(
                    Message("News", sender="news@acme.test", recipients=[address], body="...")
                )
        return jsonify(ok=True)

    return mail


def _app(make_app: AppFactory, smtp_server: SMTPServer, **config: Any) -> Flask:
    # Flask-Mail suppresses sending when TESTING is set; this app really sends
    return smtp_app(make_app, smtp_server, MAIL_SUPPRESS_SEND=False, **config)


def test_every_email_of_an_existing_flask_mail_app_is_recorded(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = _app(make_app, smtp_server)
    mail = install_purchasing(app)
    MailDelivery.state(app).extension.capture(mail)  # the one added line
    client = app.test_client()

    with mail.record_messages() as outbox:
        assert client.post("/orders/12/send").json == {"ok": True}
        assert client.post("/payslips").json == {"ok": True}
        assert client.post("/newsletter").json == {"ok": True}
    # Flask-Mail's own test helper still sees every message
    assert [m.subject for m in outbox] == [
        "Purchase order PO-12",
        "Your payslip",
        "News",
        "News",
    ]

    assert recorded(app) == [
        (
            "Purchase order PO-12",
            "Acme Purchasing <purchasing@acme.test>",
            {
                "vendor@supplier.test": "to",
                "vera@supplier.test": "to",
                "buyer@acme.test": "cc",
                "archive@acme.test": "bcc",
            },
            "queued",
        ),
        ("Your payslip", "hr@acme.test", {"emp@acme.test": "to"}, "queued"),
        ("News", "news@acme.test", {"ann@customer.test": "to"}, "queued"),
        ("News", "news@acme.test", {"bob@customer.test": "to"}, "queued"),
    ]

    assert len(smtp_server.messages) == 4
    order = smtp_server.messages[0]
    assert order.mail_from == "purchasing@acme.test"
    assert sorted(order.rcpt_tos) == sorted(
        ["vendor@supplier.test", "vera@supplier.test", "buyer@acme.test", "archive@acme.test"]
    )
    message = parse_message(order.data)
    assert "Bcc" not in message
    assert message["X-Order"] == "PO-12"
    with app.app_context():
        stored = first_or_fail(MailDelivery.state(app).sessions(), Email)
        assert message["X-MailDelivery-ID"] == stored.public_id
        assert stored.reply_to == "buyer@acme.test"
        assert stored.text_body == "Please confirm purchase order PO-12."
        assert stored.html_body == "<p>Please confirm <b>PO-12</b>.</p>"
        assert stored.attachments == [
            {"filename": "PO-12.pdf", "content_type": "application/pdf", "size": len(PDF)}
        ]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == PDF


def test_without_the_capture_line_nothing_is_recorded(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = _app(make_app, smtp_server)
    install_purchasing(app)
    assert app.test_client().post("/payslips").json == {"ok": True}
    assert len(smtp_server.messages) == 1
    assert recorded(app) == []


def test_capture_twice_changes_nothing(make_app: AppFactory, smtp_server: SMTPServer) -> None:
    app = _app(make_app, smtp_server)
    mail = install_purchasing(app)
    extension = MailDelivery.state(app).extension
    extension.capture(mail)
    connect = mail.connect
    assert extension.capture(mail) is mail
    assert mail.connect is connect
    assert app.test_client().post("/payslips").json == {"ok": True}
    assert len(recorded(app)) == 1
    assert len(smtp_server.messages) == 1


def test_a_failed_delivery_is_recorded_and_raised_as_an_smtp_error(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = _app(make_app, smtp_server, MAILDELIVERY_SMTP_PORT=free_port())
    mail = install_purchasing(app)
    MailDelivery.state(app).extension.capture(mail)
    with app.app_context(), mail.record_messages() as outbox:
        with pytest.raises(smtplib.SMTPException) as raised:
            mail.send_message("Payslip", sender="hr@acme.test", recipients=["emp@acme.test"])
        assert isinstance(raised.value, DeliveryFailed)
        assert raised.value.email.result == "failed"
    assert outbox == []
    assert [(subject, result) for subject, _, _, result in recorded(app)] == [("Payslip", "failed")]


def test_a_header_injection_raises_flask_mail_s_error_and_is_recorded_as_refused(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = _app(make_app, smtp_server)
    mail = install_purchasing(app)
    MailDelivery.state(app).extension.capture(mail)
    with app.app_context(), pytest.raises(BadHeaderError) as raised:
        mail.send_message(
            "Invoice\nBcc: victim@example.test",
            sender="billing@acme.test",
            recipients=["ann@customer.test"],
        )
    assert isinstance(raised.value.__cause__, SendRefused)
    assert "the subject 'Invoice\\nBcc: victim@example.test' contains a line break" in str(
        raised.value
    )
    assert recorded(app) == [
        (
            "Invoice\nBcc: victim@example.test",
            "billing@acme.test",
            {"ann@customer.test": "to"},
            "failed",
        )
    ]
    assert smtp_server.messages == []


def test_a_folded_subject_is_sent_unfolded(make_app: AppFactory, smtp_server: SMTPServer) -> None:
    app = _app(make_app, smtp_server)
    mail = install_purchasing(app)
    MailDelivery.state(app).extension.capture(mail)
    with app.app_context():
        mail.send_message(
            "Invoice INV-0042\r\n from Acme",
            sender="billing@acme.test",
            recipients=["ann@customer.test"],
        )
    assert [subject for subject, _, _, _ in recorded(app)] == ["Invoice INV-0042 from Acme"]
    assert parse_message(smtp_server.messages[0].data)["Subject"] == "Invoice INV-0042 from Acme"


def test_an_app_without_maildelivery_keeps_flask_mail_s_own_sending(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    captured_app = _app(make_app, smtp_server)
    plain_app = Flask("plain")
    plain_app.config.update(
        MAIL_SERVER=smtp_server.host, MAIL_PORT=smtp_server.port, MAIL_SUPPRESS_SEND=False
    )
    mail = Mail()
    mail.init_app(captured_app)
    mail.init_app(plain_app)
    MailDelivery.state(captured_app).extension.capture(mail)

    with plain_app.app_context():
        mail.send_message("Plain", sender="a@acme.test", recipients=["x@customer.test"])
    with captured_app.app_context():
        mail.send_message("Captured", sender="a@acme.test", recipients=["y@customer.test"])

    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["x@customer.test"],
        ["y@customer.test"],
    ]
    assert [subject for subject, _, _, _ in recorded(captured_app)] == ["Captured"]
