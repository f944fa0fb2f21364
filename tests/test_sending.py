"""The outbound hook over a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery, SendCancelled, SendRefused, signals
from flask_maildelivery.models import Email, Recipient
from flask_maildelivery.testing import outbox
from flask_maildelivery.transports import OutgoingMessage, SendResult, Transport

from .conftest import AppFactory, SMTPServer, free_port, get_or_fail


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _count(app: Flask, model: Any) -> int:
    db = MailDelivery.state(app).db
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_send_to_cc_bcc_through_real_smtp(make_app: AppFactory, smtp_server: SMTPServer) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        mail_delivery = MailDelivery.state(app).extension
        sent = mail_delivery.send(
            subject="Invoice INV-0042",
            sender="billing@acme.test",
            to=["ann@customer.test", ("Bob", "bob@customer.test")],
            cc=["accounting@acme.test"],
            bcc=["archive@acme.test"],
            text="Please find the invoice attached.",
            html="<p>Please find the invoice attached.</p>",
            attachments=[("INV-0042.pdf", b"%PDF-1.4 test", "application/pdf")],
            metadata={"invoice": "INV-0042"},
            related=("invoice", 42),
            contacts={"ANN@customer.test": ("customer", 7)},
        )
        email_id, public_id = sent.id, sent.public_id

    assert len(smtp_server.messages) == 1
    received = smtp_server.messages[0]
    assert received.mail_from == "billing@acme.test"
    assert sorted(received.rcpt_tos) == sorted(
        ["ann@customer.test", "bob@customer.test", "accounting@acme.test", "archive@acme.test"]
    )
    message = _parse(received.data)
    assert message["X-MailDelivery-ID"] == public_id
    assert "Bcc" not in message
    assert "archive@acme.test" not in received.data.decode()
    assert [p.get_filename() for p in message.iter_attachments()] == ["INV-0042.pdf"]

    with app.app_context():
        db = MailDelivery.state(app).db
        stored = db.session.get(Email, email_id)
        assert stored is not None
        assert stored.result == "queued"
        assert stored.status == ""
        assert stored.error is None
        assert stored.transport == "smtp"
        assert stored.metadata_ == {"invoice": "INV-0042"}
        assert (stored.related_type, stored.related_id) == ("invoice", "42")
        assert stored.attachments == [
            {"filename": "INV-0042.pdf", "content_type": "application/pdf", "size": 13}
        ]
        assert stored.html_body == "<p>Please find the invoice attached.</p>"
        kinds = {r.address: (r.kind, r.status, r.name) for r in stored.recipients}
        assert kinds == {
            "ann@customer.test": ("to", "queued", None),
            "bob@customer.test": ("to", "queued", "Bob"),
            "accounting@acme.test": ("cc", "queued", None),
            "archive@acme.test": ("bcc", "queued", None),
        }
        ann = next(r for r in stored.recipients if r.address == "ann@customer.test")
        assert (ann.contact_type, ann.contact_id) == ("customer", "7")


def test_smtp_server_down_keeps_the_record_as_failed(make_app: AppFactory) -> None:
    # one attempt allowed: no retry is planned, so the recipients fail with the send (with
    # retries, see tests/test_retry.py, they are deferred)
    app = make_app(
        MAILDELIVERY_MAX_ATTEMPTS=1,
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=free_port(),
        MAILDELIVERY_SMTP_TIMEOUT=2,
    )
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(
            subject="Payslip", to=["emp@acme.test"], cc=["hr@acme.test"], text="..."
        )
        email_id = sent.id
    with app.app_context():
        db = MailDelivery.state(app).db
        stored = db.session.get(Email, email_id)
        assert stored is not None
        assert _count(app, Email) == 1
        assert stored.result == "failed"
        assert "cannot send through SMTP server" in (stored.error or "")
        assert [r.status for r in stored.recipients] == ["failed", "failed"]
        assert all(r.reason == stored.error for r in stored.recipients)


def test_too_many_recipients_is_refused_recorded_and_nothing_is_sent(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        addresses = [f"r{i}@customer.test" for i in range(1001)]
        with pytest.raises(
            SendRefused, match=r"1001 recipients, more than MAILDELIVERY_MAX_RECIPIENTS \(1000\)"
        ) as refused:
            MailDelivery.state(app).extension.send(subject="Newsletter", to=addresses, text="...")
        assert _count(app, Email) == 1
        assert refused.value.email is not None
        stored = get_or_fail(MailDelivery.state(app).sessions(), Email, refused.value.email.id)
        assert (stored.result, stored.error) == ("failed", str(refused.value))
        # the first MAILDELIVERY_MAX_RECIPIENTS are kept, each failed with the reason
        assert [r.address for r in stored.recipients] == addresses[:1000]
        assert {(r.status, r.reason) for r in stored.recipients} == {("failed", stored.error)}
    assert smtp_server.messages == []


def test_the_recipient_limit_can_be_lifted(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_MAX_RECIPIENTS=None)
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(
            subject="All", to=[f"r{i}@c.test" for i in range(1001)], text="x"
        )
        assert len(sent.recipients) == 1001


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to": ["not an address"]}, "to address 'not an address' is not an email address"),
        (
            {"to": ["ann@customer.test"], "cc": ["bob@"]},
            "cc address 'bob@' is not an email address",
        ),
        ({"to": []}, "the email has no recipient"),
        ({"to": ["ann@customer.test"], "headers": {"Bcc": "x@y.test"}}, "header 'Bcc' is set by"),
    ],
)
def test_invalid_sends_are_refused_with_a_clear_message_and_recorded(
    app: Flask, mail_delivery: MailDelivery, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(SendRefused, match=message) as refused:
        mail_delivery.send(subject="x", text="x", **kwargs)
    assert outbox() == []
    assert _count(app, Email) == 1
    assert refused.value.email is not None
    stored = get_or_fail(MailDelivery.state(app).sessions(), Email, refused.value.email.id)
    assert (stored.result, stored.error) == ("failed", str(refused.value))
    assert {r.status for r in stored.recipients} <= {"failed"}


def test_no_sender_is_refused(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_DEFAULT_SENDER=None)
    with app.app_context():
        with pytest.raises(SendRefused, match="MAILDELIVERY_DEFAULT_SENDER") as refused:
            MailDelivery.state(app).extension.send(subject="x", to=["a@b.test"], text="x")
        assert refused.value.email is not None
        assert (refused.value.email.sender, refused.value.email.result) == ("", "failed")


def test_before_send_can_change_the_message(app: Flask, mail_delivery: MailDelivery) -> None:
    def stamp(sender: Flask, message: EmailMessage) -> None:
        message["X-Company"] = "ACME"
        message.replace_header("Subject", "[ACME] " + str(message["Subject"]))

    with signals.before_send.connected_to(stamp, sender=app):
        sent = mail_delivery.send(subject="Invoice", to=["ann@customer.test"], text="x")
    assert sent.subject == "[ACME] Invoice"
    assert sent.headers["X-Company"] == "ACME"
    assert outbox()[0].mime["X-Company"] == "ACME"


def test_send_cancelled_is_recorded_and_reaches_the_caller(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    def veto(sender: Flask, message: EmailMessage) -> None:
        raise SendCancelled("customer opted out of email invoices")

    with signals.before_send.connected_to(veto, sender=app), pytest.raises(SendCancelled) as info:
        mail_delivery.send(subject="Invoice", to=["ann@customer.test"], text="x")
    assert outbox() == []
    assert info.value.email is not None
    stored = get_or_fail(MailDelivery.state(app).sessions(), Email, info.value.email.id)
    assert stored.result == "failed"
    assert (
        stored.error == "cancelled by a before_send receiver: customer opted out of email invoices"
    )
    assert [r.status for r in stored.recipients] == ["failed"]


@pytest.mark.parametrize(
    ("provider", "header", "check"),
    [
        (
            "sendgrid",
            "X-SMTPAPI",
            lambda v, pid: json.loads(v) == {"unique_args": {"maildelivery_id": pid}},
        ),
        (
            "mailgun",
            "X-Mailgun-Variables",
            lambda v, pid: json.loads(v) == {"maildelivery_id": pid},
        ),
        ("postmark", "X-PM-Metadata-maildelivery_id", lambda v, pid: v == pid),
        ("ses", "X-SES-MESSAGE-TAGS", lambda v, pid: v == f"maildelivery_id={pid}"),
        ("mailersend", "X-MailerSend-Tags", lambda v, pid: v == f"maildelivery_id:{pid}"),
        (
            "mailtrap",
            "X-MT-Custom-Variables",
            lambda v, pid: json.loads(v) == {"maildelivery_id": pid},
        ),
        ("mandrill", "X-MC-Metadata", lambda v, pid: json.loads(v) == {"maildelivery_id": pid}),
        ("postal", "X-Postal-Tag", lambda v, pid: v == f"maildelivery_id:{pid}"),
        (
            "unisender_go",
            "X-UNISENDER-GO",
            lambda v, pid: json.loads(v) == {"global_metadata": {"maildelivery_id": pid}},
        ),
    ],
)
def test_smtp_provider_custom_argument_header(
    make_app: AppFactory, smtp_server: SMTPServer, provider: str, header: str, check: Any
) -> None:
    app = make_app(**smtp_server.config(), MAILDELIVERY_SMTP_PROVIDER=provider)
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(subject="x", to=["a@b.test"], text="x")
        public_id = sent.public_id
    message = _parse(smtp_server.messages[0].data)
    assert check(str(message[header]), public_id)
    assert message["X-MailDelivery-ID"] == public_id


def test_an_smtp_provider_without_a_correlation_header_is_refused(make_app: AppFactory) -> None:
    # Mailjet, Brevo, SparkPost and Resend relays are not wired for a correlation header
    with pytest.raises(ValueError, match="MAILDELIVERY_SMTP_PROVIDER='mailjet' is not one of"):
        make_app(MAILDELIVERY_TRANSPORT="smtp", MAILDELIVERY_SMTP_PROVIDER="mailjet")


def test_one_connection_serves_a_burst_of_sends(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        for i in range(5):
            MailDelivery.state(app).extension.send(subject=f"#{i}", to=["a@b.test"], text="x")
    assert len(smtp_server.messages) == 5
    assert smtp_server.handler.connections == 1


def test_a_dropped_connection_is_reopened(make_app: AppFactory, smtp_server: SMTPServer) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        extension = MailDelivery.state(app).extension
        extension.send(subject="first", to=["a@b.test"], text="x")
        # the server closes idle connections; simulate that on our side of the socket
        connection = MailDelivery.state(app).transport._local.connection  # type: ignore[attr-defined]
        connection.sock.close()
        second = extension.send(subject="second", to=["a@b.test"], text="x")
        assert second.result == "queued"
    assert [_parse(m.data)["Subject"] for m in smtp_server.messages] == ["first", "second"]


def test_recipients_refused_by_the_server_fail_alone(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.refuse = {"nobody@customer.test"}
    app = make_app(**smtp_server.config())
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(
            subject="x", to=["ann@customer.test", "nobody@customer.test"], text="x"
        )
        email_id = sent.id
    with app.app_context():
        stored = MailDelivery.state(app).sessions().get(Email, email_id)
        assert stored is not None
        statuses = {r.address: (r.status, r.smtp_code) for r in stored.recipients}
        assert statuses == {
            "ann@customer.test": ("queued", None),
            "nobody@customer.test": ("failed", "550"),
        }
        assert stored.result == "warning"
    assert smtp_server.messages[0].rcpt_tos == ["ann@customer.test"]


def test_send_message_records_a_stdlib_message(app: Flask, mail_delivery: MailDelivery) -> None:
    message = EmailMessage()
    message["From"] = "Billing <billing@acme.test>"
    message["To"] = "Ann <ann@customer.test>, bob@customer.test"
    message["Cc"] = "accounting@acme.test"
    message["Bcc"] = "archive@acme.test"
    message["Reply-To"] = "help@acme.test"
    message["Subject"] = "Purchase order PO-7"
    message["X-Priority"] = "1"
    message.set_content("text body")
    message.add_alternative("<p>html body</p>", subtype="html")
    message.add_attachment(b"a,b\n", maintype="text", subtype="csv", filename="po.csv")

    sent = mail_delivery.send_message(message, related=("purchase_order", 7))
    assert sent.subject == "Purchase order PO-7"
    assert sent.reply_to == "help@acme.test"
    assert sent.text_body == "text body\n"
    assert sent.html_body == "<p>html body</p>\n"
    assert sent.attachments == [{"filename": "po.csv", "content_type": "text/csv", "size": 4}]
    assert sent.headers["X-Priority"] == "1"
    assert {(r.kind, r.address, r.name) for r in sent.recipients} == {
        ("to", "ann@customer.test", "Ann"),
        ("to", "bob@customer.test", None),
        ("cc", "accounting@acme.test", None),
        ("bcc", "archive@acme.test", None),
    }
    out = outbox()[0]
    assert "Bcc" not in out.mime
    assert out.envelope_recipients[-1] == "archive@acme.test"


def test_sent_by_and_tenant_come_from_host_callbacks(make_app: AppFactory) -> None:
    mail_delivery = MailDelivery()

    class User:
        def get_id(self) -> str:
            return "u-17"

    mail_delivery.user_loader(User)
    mail_delivery.tenant_loader(lambda: "company-b")
    app = make_app(mail_delivery)
    with app.app_context():
        sent = mail_delivery.send(subject="x", to=["a@b.test"], text="x")
        assert (sent.sent_by, sent.tenant_id) == ("u-17", "company-b")

    @mail_delivery.sent_by_loader
    def name(user: Any) -> str:
        return "clerk@acme"

    with app.app_context():
        assert mail_delivery.send(subject="x", to=["a@b.test"], text="x").sent_by == "clerk@acme"


def test_bodies_are_not_stored_when_switched_off(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_STORE_BODIES=False)
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(
            subject="x", to=["a@b.test"], text="secret", html="<p>secret</p>"
        )
        assert (sent.text_body, sent.html_body) == (None, None)
        assert outbox()[0].text == "secret"


def test_a_host_transport_that_raises_anything_keeps_the_record(make_app: AppFactory) -> None:
    app = make_app(MAILDELIVERY_TRANSPORT="tests.test_sending:BrokenTransport")
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(subject="x", to=["a@b.test"], text="x")
        assert sent.result == "failed"
        assert sent.error == "RuntimeError: provider SDK crashed"
        assert (
            MailDelivery.state(app)
            .sessions()
            .scalar(
                sa.select(sa.func.count())
                .select_from(Recipient)
                .where(Recipient.status == "failed")
            )
            == 1
        )


class BrokenTransport(Transport):
    """A host transport (named by dotted path) whose library raises."""

    name = "broken"

    def send(self, message: OutgoingMessage) -> SendResult:
        raise RuntimeError("provider SDK crashed")


def test_unknown_transport_name_fails_at_init_app(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="MAILDELIVERY_TRANSPORT='carrier-pigeon' is neither"):
        make_app(MAILDELIVERY_TRANSPORT="carrier-pigeon")


def test_non_ascii_subject_names_bodies_and_filenames_survive_the_wire(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        sent = MailDelivery.state(app).extension.send(
            subject="Facture n° 42 — Société Générale",
            to=[("Zoé Müller", "zoe@customer.test")],
            reply_to="Société Générale <compta@acme.test>",
            text="Veuillez trouver la facture ci-jointe. Merci, l'équipe",
            html="<p>Facture réglée à 100 %</p>",
            attachments=[("facture-été.pdf", b"%PDF-1.4", "application/pdf")],
            headers={"X-Dossier": "Crédit"},
        )
        assert sent.subject == "Facture n° 42 — Société Générale"
        assert sent.headers["Subject"] == "Facture n° 42 — Société Générale"
        assert sent.headers["X-Dossier"] == "Crédit"
    message = _parse(smtp_server.messages[0].data)
    assert message["Subject"] == "Facture n° 42 — Société Générale"
    assert message["To"].addresses[0].display_name == "Zoé Müller"
    # the name is encoded alone: the address stays readable
    reply_to = message["Reply-To"].addresses[0]
    assert (reply_to.display_name, reply_to.addr_spec) == ("Société Générale", "compta@acme.test")
    assert message["X-Dossier"] == "Crédit"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Veuillez trouver la facture ci-jointe. Merci, l'équipe"
    html = message.get_body(("html",))
    assert html is not None
    assert html.get_content() == "<p>Facture réglée à 100 %</p>"
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "facture-été.pdf"
    assert attachment.get_content() == b"%PDF-1.4"
    assert smtp_server.messages[0].data.isascii()


@pytest.mark.parametrize(
    "text",
    ["=?utf-8?q?caf=C3=A9?=", "  two leading spaces", "x" * 200, "Net 30 =? see terms"],
    ids=["encoded-word-lookalike", "leading-whitespace", "long-first-word", "equals-question"],
)
def test_header_text_arrives_as_it_was_set(
    make_app: AppFactory, smtp_server: SMTPServer, text: str
) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        MailDelivery.state(app).extension.send(
            subject=text, to=[(text, "ann@customer.test")], headers={"X-Note": text}, text="x"
        )
    message = _parse(smtp_server.messages[0].data)
    assert message["Subject"] == text
    assert message["X-Note"] == text
    # a display name is a phrase: readers show runs of whitespace as one space
    assert message["To"].addresses[0].display_name == " ".join(text.split())


def test_the_connection_is_closed_when_the_app_context_ends(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = make_app(**smtp_server.config())
    transport = MailDelivery.state(app).transport
    for burst in range(2):
        with app.app_context():
            for i in range(3):
                MailDelivery.state(app).extension.send(
                    subject=f"{burst}.{i}", to=["a@b.test"], text="x"
                )
            assert transport._local.connection is not None  # type: ignore[attr-defined]
        # a thread that ends now (a threaded server's request) leaves no socket open
        assert transport._local.connection is None  # type: ignore[attr-defined]
    assert smtp_server.handler.connections == 2
    assert len(smtp_server.messages) == 6
