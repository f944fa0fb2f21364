"""Flask-Mailman capture: an existing Flask-Mailman app, changed by one configuration line
(``MAIL_BACKEND``), records every email it sends; delivery goes through a real SMTP server."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
from flask import Flask, jsonify
from flask_mailman import EmailMessage, EmailMultiAlternatives, Mail

from flask_maildelivery import MailDelivery
from flask_maildelivery.contrib import DeliveryFailed
from flask_maildelivery.models import Email

from .capture_helpers import parse_message, recorded, smtp_app
from .conftest import AppFactory, SMTPServer, first_or_fail, free_port

BACKEND = "flask_maildelivery.contrib.mailman.EmailBackend"
PDF = b"%PDF-1.4 invoice 7"


def install_invoicing(app: Flask) -> Mail:
    """The host's existing Flask-Mailman code, as it was before flask-maildelivery."""
    mail = Mail()
    mail.init_app(app)

    @app.post("/invoices/<int:number>/send")
    def send_invoice(number: int) -> Any:
        message = EmailMultiAlternatives(
            subject=f"Invoice INV-{number:04d}",
            body=f"Please find invoice INV-{number:04d} attached.",
            from_email="Acme Billing <billing@acme.test>",
            to=["ann@customer.test", "Bob Martin <bob@customer.test>"],
            cc=["accounting@customer.test"],
            bcc=["archive@acme.test"],
            reply_to=["accounts@acme.test"],
            headers={"X-Invoice": f"INV-{number:04d}"},
        )
        message.attach_alternative(f"<p>Invoice <b>INV-{number:04d}</b></p>", "text/html")
        message.attach(f"INV-{number:04d}.pdf", PDF, "application/pdf")
        return jsonify(sent=message.send())

    @app.post("/reminders")
    def send_reminder() -> Any:
        sent = mail.send_mail(
            "Payment reminder",
            "Invoice INV-0007 is due.",
            "billing@acme.test",
            ["carol@customer.test"],
        )
        return jsonify(sent=sent)

    @app.post("/statements")
    def send_statements() -> Any:
        with mail.get_connection() as connection:
            sent = connection.send_messages(
                [
                    EmailMessage(
                        "Statement March",
                        "Your statement.",
                        "billing@acme.test",
                        [address],
                        bcc=["archive@acme.test"],
                    )
                    for address in ("dave@customer.test", "erin@customer.test")
                ]
            )
        return jsonify(sent=sent)

    @app.post("/announcements")
    def send_announcements() -> Any:
        sent = mail.send_mass_mail(
            (
                ("New prices", "From May.", "sales@acme.test", ["frank@customer.test"]),
                ("New prices", "From May.", "sales@acme.test", ["grace@customer.test"]),
            )
        )
        return jsonify(sent=sent)

    return mail


def test_every_email_of_an_existing_mailman_app_is_recorded(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = smtp_app(make_app, smtp_server, MAIL_BACKEND=BACKEND)
    install_invoicing(app)
    client = app.test_client()

    assert client.post("/invoices/7/send").json == {"sent": 1}
    assert client.post("/reminders").json == {"sent": 1}
    assert client.post("/statements").json == {"sent": 2}
    assert client.post("/announcements").json == {"sent": 2}

    assert recorded(app) == [
        (
            "Invoice INV-0007",
            "Acme Billing <billing@acme.test>",
            {
                "ann@customer.test": "to",
                "bob@customer.test": "to",
                "accounting@customer.test": "cc",
                "archive@acme.test": "bcc",
            },
            "queued",
        ),
        ("Payment reminder", "billing@acme.test", {"carol@customer.test": "to"}, "queued"),
        (
            "Statement March",
            "billing@acme.test",
            {"dave@customer.test": "to", "archive@acme.test": "bcc"},
            "queued",
        ),
        (
            "Statement March",
            "billing@acme.test",
            {"erin@customer.test": "to", "archive@acme.test": "bcc"},
            "queued",
        ),
        ("New prices", "sales@acme.test", {"frank@customer.test": "to"}, "queued"),
        ("New prices", "sales@acme.test", {"grace@customer.test": "to"}, "queued"),
    ]

    # delivered by the MAILDELIVERY_TRANSPORT (smtp) to the real server, correlated
    assert len(smtp_server.messages) == 6
    invoice = smtp_server.messages[0]
    assert sorted(invoice.rcpt_tos) == sorted(
        ["ann@customer.test", "bob@customer.test", "accounting@customer.test", "archive@acme.test"]
    )
    message = parse_message(invoice.data)
    assert "Bcc" not in message
    assert message["Reply-To"] == "accounts@acme.test"
    assert message["X-Invoice"] == "INV-0007"
    with app.app_context():
        stored = first_or_fail(MailDelivery.state(app).sessions(), Email)
        assert message["X-MailDelivery-ID"] == stored.public_id
        assert stored.reply_to == "accounts@acme.test"
        assert stored.text_body == "Please find invoice INV-0007 attached."
        assert stored.html_body == "<p>Invoice <b>INV-0007</b></p>"
        assert stored.attachments == [
            {"filename": "INV-0007.pdf", "content_type": "application/pdf", "size": len(PDF)}
        ]
        assert stored.headers["X-Invoice"] == "INV-0007"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == PDF


def test_without_the_configuration_line_nothing_is_recorded(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    # the same app with Flask-Mailman's own SMTP backend: mail goes out, no record
    app = smtp_app(make_app, smtp_server, MAIL_BACKEND="smtp")
    install_invoicing(app)
    assert app.test_client().post("/reminders").json == {"sent": 1}
    assert len(smtp_server.messages) == 1
    assert recorded(app) == []


def test_a_failed_delivery_is_recorded_and_raised_as_an_smtp_error(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = smtp_app(make_app, smtp_server, MAIL_BACKEND=BACKEND, MAILDELIVERY_SMTP_PORT=free_port())
    mail = install_invoicing(app)
    with app.app_context():
        with pytest.raises(smtplib.SMTPException) as raised:
            mail.send_mail("Payslip", "...", "hr@acme.test", ["emp@acme.test"])
        assert isinstance(raised.value, DeliveryFailed)
        assert "cannot send through SMTP server" in str(raised.value)
        # fail_silently: the count says nothing went out, the record is still kept
        assert (
            mail.send_mail("Payslip", "...", "hr@acme.test", ["emp@acme.test"], fail_silently=True)
            == 0
        )
    assert [(subject, result) for subject, _, _, result in recorded(app)] == [
        ("Payslip", "failed"),
        ("Payslip", "failed"),
    ]


def test_an_invalid_address_is_refused_recorded_and_nothing_is_sent(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = smtp_app(make_app, smtp_server, MAIL_BACKEND=BACKEND)
    mail = install_invoicing(app)
    with app.app_context(), pytest.raises(ValueError, match="is not an email address"):
        mail.send_mail("Invoice", "...", "billing@acme.test", ["not an address"])
    assert smtp_server.messages == []
    # recorded as refused, the address as typed
    assert recorded(app) == [("Invoice", "billing@acme.test", {"not an address": "to"}, "failed")]


def test_html_bodies_and_mime_attachments_are_recorded(make_app: AppFactory) -> None:
    from email.mime.application import MIMEApplication

    from flask_maildelivery.testing import outbox

    app = make_app(MAIL_BACKEND=BACKEND)  # the memory transport
    Mail().init_app(app)
    part = MIMEApplication(PDF, "pdf")
    part.add_header("Content-Disposition", "attachment", filename="INV-0008.pdf")
    with app.app_context():
        message = EmailMessage(
            "Invoice INV-0008",
            "<p>Invoice <b>INV-0008</b></p>",
            "billing@acme.test",
            ["ann@customer.test"],
            headers={"From": "Acme Billing <billing@acme.test>", "Message-ID": "<x@acme.test>"},
        )
        message.content_subtype = "html"
        message.attach(part)
        message.attach("notes.txt", "Paid by transfer.", "text/plain")
        assert message.send() == 1
        [sent] = outbox(app)
        assert sent.sender.formatted() == "Acme Billing <billing@acme.test>"
        assert (sent.text, sent.html) == (None, "<p>Invoice <b>INV-0008</b></p>")
        assert [(a.filename, a.content, a.content_type) for a in sent.attachments] == [
            ("INV-0008.pdf", PDF, "application/pdf"),
            ("notes.txt", b"Paid by transfer.", "text/plain"),
        ]
        # Message-ID is the hook's own, not the extra header's
        assert sent.mime["Message-ID"] != "<x@acme.test>"
    assert [(s, r) for s, _, _, r in recorded(app)] == [("Invoice INV-0008", "queued")]
