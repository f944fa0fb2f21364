"""A send refused before the transport is recorded ``failed`` with the reason, keeping what
can be kept; no header injection gets onto the wire, no raw database error reaches the
caller, and the host's session is never touched (SPEC, "Sending: the outbound hook")."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_maildelivery import MailDelivery, SendRefused, signals
from flask_maildelivery.models import Base, Email
from flask_maildelivery.testing import outbox

from .conftest import AppFactory, SignalLog, SMTPServer
from .log_helpers import ADMIN, listed_ids, make_log_app


class HostBase(DeclarativeBase):
    """The declarative base of the host's own tables in these tests."""


class Ledger(HostBase):
    """A host table, written after each refusal to show the host's session still works."""

    __tablename__ = "host_refusal_ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(64))


@dataclass
class Host:
    """An app with a host table; ``db`` is the host's Flask-SQLAlchemy object."""

    app: Flask
    db: SQLAlchemy
    mail_delivery: MailDelivery = field(init=False)

    def __post_init__(self) -> None:
        self.mail_delivery = MailDelivery.state(self.app).extension

    def refuse(self, **kwargs: Any) -> SendRefused:
        """Send ``kwargs`` (subject and text by default), expecting a refusal."""
        arguments: dict[str, Any] = {"subject": "Invoice INV-0042", "text": "x", **kwargs}
        # the host's transaction is open when it sends: the refusal must leave it usable
        self.db.session.execute(sa.select(sa.func.count()).select_from(Ledger))
        with pytest.raises(SendRefused) as raised:
            self.mail_delivery.send(**arguments)
        return raised.value

    def stored(self) -> list[Email]:
        """Every stored email, read afresh through a session of its own."""
        with self.db.engine.connect() as connection:
            ids = connection.scalars(sa.select(Email.id).order_by(Email.id)).all()
        session = MailDelivery.state(self.app).sessions()
        session.expire_all()
        return [e for e in (session.get(Email, i) for i in ids) if e is not None]

    def check_host_session(self) -> None:
        """The host's session works: it writes, commits and reads back."""
        text = uuid.uuid4().hex
        self.db.session.add(Ledger(text=text))
        self.db.session.commit()
        assert self.db.session.scalar(sa.select(Ledger.text).where(Ledger.text == text)) == text


def _host(make_app: AppFactory, **config: Any) -> Iterator[Host]:
    db = SQLAlchemy(model_class=HostBase)
    app = make_app(db=db, **config)
    with app.app_context():
        HostBase.metadata.create_all(db.engine)
        try:
            yield Host(app, db)
        finally:
            db.session.rollback()
            HostBase.metadata.drop_all(db.engine)


@pytest.fixture
def host(make_app: AppFactory) -> Iterator[Host]:
    """A host app on the memory transport, recipient limit 3."""
    yield from _host(make_app, MAILDELIVERY_MAX_RECIPIENTS=3)


def check_refusal_record(host: Host, refused: SendRefused) -> Email:
    """The one refusal every test expects: one email, result ``failed``, the exception's
    text as its error, each recipient ``failed`` with it (a ``failed`` event each), nothing
    handed to the transport, the host's session usable."""
    assert outbox(host.app) == []
    [stored] = host.stored()
    assert refused.email is not None
    assert refused.email.id == stored.id
    assert stored.result == "failed"
    assert stored.error == str(refused)
    assert [(r.status, r.reason) for r in stored.recipients] == [
        ("failed", str(refused)) for _ in stored.recipients
    ]
    events = [(e.type, e.reason) for e in stored.events]
    assert events == [("failed", str(refused)) for _ in stored.recipients]
    host.check_host_session()
    return stored


INJECTED = "\r\nBcc: victim@evil.test"


@pytest.mark.parametrize(
    ("kwargs", "message", "recipients"),
    [
        pytest.param(
            {"to": [f"r{i}@customer.test" for i in range(5)]},
            r"the email has 5 recipients, more than MAILDELIVERY_MAX_RECIPIENTS \(3\)",
            [("r0@customer.test", None), ("r1@customer.test", None), ("r2@customer.test", None)],
            id="too-many-recipients",
        ),
        pytest.param(
            {"to": ["ann@customer.test", "not an address"]},
            r"to address 'not an address' is not an email address",
            [("ann@customer.test", None), ("not an address", None)],
            id="invalid-address",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "subject": "Invoice" + INJECTED},
            r"the subject 'Invoice\\r\\nBcc: victim@evil.test' contains a line break \('\\r'\)",
            [("ann@customer.test", None)],
            id="crlf-in-subject",
        ),
        pytest.param(
            {"to": [("Ann" + INJECTED, "ann@customer.test")]},
            r"to display name 'Ann\\r\\nBcc: victim@evil.test' contains a line break",
            [("ann@customer.test", "Ann" + INJECTED)],
            id="crlf-in-display-name",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "headers": {"X-Note ": "x"}},
            r"header name 'X-Note ' contains the character ' '",
            [("ann@customer.test", None)],
            id="space-before-colon-in-header-name",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "headers": {"X-Note\r\nBcc": "victim@evil.test"}},
            r"header name 'X-Note\\r\\nBcc' contains the character '\\r'",
            [("ann@customer.test", None)],
            id="crlf-in-header-name",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "headers": {"X-Note": "ok" + INJECTED}},
            r"header X-Note value 'ok\\r\\nBcc: victim@evil.test' contains a line break",
            [("ann@customer.test", None)],
            id="crlf-in-header-value",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "subject": "Invoice\x00"},
            r"the subject 'Invoice\\x00' contains a NUL character: remove it",
            [("ann@customer.test", None)],
            id="nul-in-subject",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "subject": "x" * 999},
            r"the subject is 999 characters long, more than the 998 the log stores: shorten "
            r"it \(the record keeps the first 998\)",
            [("ann@customer.test", None)],
            id="subject-999-characters",
        ),
        pytest.param(
            {"to": [("N" * 256, "ann@customer.test")]},
            r"to name 'N{60}'... is 256 characters long, more than the 255 the log stores",
            [("ann@customer.test", "N" * 255)],
            id="name-256-characters",
        ),
        pytest.param(
            {"to": ["ann@customer.test"], "related": ("invoice", "9" * 65)},
            r"the related id \(related=\(type, id\)\) is 65 characters long, more than the 64",
            [("ann@customer.test", None)],
            id="related-id-65-characters",
        ),
        pytest.param(
            {"to": []},
            r"^the email has no recipient: pass at least one address in to, cc or bcc$",
            [],
            id="no-recipient",
        ),
    ],
)
def test_a_refused_send_is_recorded_failed_with_its_reason(
    host: Host, kwargs: dict[str, Any], message: str, recipients: list[tuple[str, str | None]]
) -> None:
    refused = host.refuse(**kwargs)
    assert re.search(message, str(refused)), str(refused)
    stored = check_refusal_record(host, refused)
    assert [(r.address, r.name) for r in stored.recipients] == recipients


def test_what_a_refused_send_keeps(host: Host) -> None:
    refused = host.refuse(
        subject="x" * 1200,
        sender=("Billing", "billing@acme.test"),
        to=["ann@customer.test"],
        cc=[("Bob", "bob@")],
        bcc=["archive@acme.test"],
        reply_to="help@acme.test",
        text="text body",
        html="<p>html body</p>",
        attachments=[("INV-0042.pdf", b"%PDF-1.4", "application/pdf")],
        headers={"X-Priority": "3"},
        metadata={"invoice": "INV-0042"},
        related=("invoice", 42),
        contacts={"ann@customer.test": ("customer", 7)},
    )
    assert str(refused) == (
        "cc address 'bob@' is not an email address: There must be something after the @-sign.; "
        "the subject is 1200 characters long, more than the 998 the log stores: shorten it "
        "(the record keeps the first 998)"
    )
    stored = check_refusal_record(host, refused)
    assert stored.subject == "x" * 998
    assert (stored.sender, stored.reply_to) == ("Billing <billing@acme.test>", "help@acme.test")
    assert (stored.text_body, stored.html_body) == ("text body", "<p>html body</p>")
    assert stored.attachments == [
        {"filename": "INV-0042.pdf", "content_type": "application/pdf", "size": 8}
    ]
    assert stored.headers == {"X-Priority": "3"}
    assert stored.metadata_ == {"invoice": "INV-0042"}
    assert (stored.related_type, stored.related_id) == ("invoice", "42")
    assert [(r.kind, r.address, r.name, r.contact_id) for r in stored.recipients] == [
        ("to", "ann@customer.test", None, "7"),
        ("cc", "bob@", "Bob", None),
        ("bcc", "archive@acme.test", None, None),
    ]


def test_no_sender_at_all_is_recorded_with_an_empty_sender(make_app: AppFactory) -> None:
    for host in _host(make_app, MAILDELIVERY_DEFAULT_SENDER=None):
        refused = host.refuse(to=["ann@customer.test"])
        assert str(refused) == (
            "the email has no sender: pass sender=... to send() or set MAILDELIVERY_DEFAULT_SENDER"
        )
        stored = check_refusal_record(host, refused)
        assert stored.sender == ""
        assert [r.address for r in stored.recipients] == ["ann@customer.test"]


def test_an_invalid_address_is_kept_as_typed_and_cut_to_its_column(host: Host) -> None:
    long_a = "a" * 300 + "@" + "x" * 30 + "1.test"
    long_b = "a" * 300 + "@" + "x" * 30 + "2.test"
    refused = host.refuse(to=[long_a, long_b, "ann\x00@customer.test"])
    assert str(refused).startswith(f"to address '{'a' * 60}'... is not an email address: ")
    assert "(and 2 more invalid addresses)" in str(refused)
    stored = check_refusal_record(host, refused)
    # two addresses cut to the same 320 characters make one recipient; the NUL is replaced
    assert [r.address for r in stored.recipients] == [long_a[:320], "ann\ufffd@customer.test"]


def test_a_value_from_a_host_callback_is_checked_too(make_app: AppFactory) -> None:
    mail_delivery = MailDelivery()
    mail_delivery.tenant_loader(lambda: "t" * 65)
    db = SQLAlchemy(model_class=HostBase)
    app = make_app(mail_delivery, db=db)
    with app.app_context():
        HostBase.metadata.create_all(db.engine)
        try:
            host = Host(app, db)
            refused = host.refuse(to=["ann@customer.test"], metadata={"note": "a\x00b"})
            assert str(refused) == (
                "the tenant id is 65 characters long, more than the 64 the log stores: shorten "
                "it (the record keeps the first 64); the metadata contains a NUL character: "
                "remove it"
            )
            stored = check_refusal_record(host, refused)
            assert stored.tenant_id == "t" * 64
            assert stored.metadata_ == {"note": "a\ufffdb"}
        finally:
            db.session.rollback()
            HostBase.metadata.drop_all(db.engine)


def test_an_unpaired_surrogate_is_refused_and_replaced_in_the_record(host: Host) -> None:
    refused = host.refuse(to=["ann@customer.test"], subject="Facture \udce9t\xe9")
    assert "an unpaired surrogate ('\\udce9'), which is not text" in str(refused)
    stored = check_refusal_record(host, refused)
    assert stored.subject == "Facture \ufffdt\xe9"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda m: m.__setitem__("X-Company", "ACME" + INJECTED),
            r"header X-Company value 'ACME\\r\\nBcc: victim@evil.test' contains a line break",
            id="injected-header-value",
        ),
        pytest.param(
            lambda m: m.__setitem__("X Company", "ACME"),
            r"header name 'X Company' contains the character ' '",
            id="header-name-with-a-space",
        ),
        pytest.param(
            lambda m: m.replace_header("Subject", "Invoice" + INJECTED),
            r"the subject 'Invoice\\r\\nBcc: victim@evil.test' contains a line break",
            id="injected-subject",
        ),
        pytest.param(
            lambda m: m.replace_header("Subject", "y" * 999),
            r"the subject is 999 characters long, more than the 998",
            id="subject-too-long",
        ),
        pytest.param(
            lambda m: m.__setitem__("Sender", "not an address"),
            r"header Sender value 'not an address' is not valid",
            id="structured-header-with-a-defect",
        ),
    ],
)
def test_a_before_send_receiver_s_changes_are_checked(
    host: Host, change: Any, message: str, signal_log: SignalLog
) -> None:
    def receiver(sender: Flask, message: Message) -> None:
        change(message)

    with signals.before_send.connected_to(receiver, sender=host.app):
        refused = host.refuse(to=["ann@customer.test"])
    assert re.search(message, str(refused)), str(refused)
    check_refusal_record(host, refused)
    # recorded through the failure path: its signals, and no email_sent
    names = [name for name, _ in signal_log]
    assert names == ["event-received", "recipient-status-changed", "email-result-changed"]
    assert (signal_log[2][1]["old"], signal_log[2][1]["new"]) == ("queued", "failed")


def test_a_refusal_that_cannot_be_recorded_says_so(tmp_path: Path) -> None:
    # only SQLite makes the host's own uncommitted writes block the package's: this test
    # runs on a SQLite file of its own, whatever the database of the run
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    sqlite_app = AppFactory(url)
    hosts = _host(sqlite_app, SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.5}})
    try:
        _check_unrecordable_refusal(hosts)
    finally:
        sqlite_app.teardown()


def _check_unrecordable_refusal(hosts: Iterator[Host]) -> None:
    for host in hosts:
        host.db.session.add(Ledger(text="uncommitted"))
        host.db.session.flush()
        with pytest.raises(SendRefused) as raised:
            host.mail_delivery.send(subject="x" + INJECTED, to=["ann@customer.test"], text="x")
        assert str(raised.value).startswith(
            "the subject 'x\\r\\nBcc: victim@evil.test' contains a line break"
        )
        assert "(and the email could not be recorded, so it was not sent: " in str(raised.value)
        assert raised.value.email is None
        host.db.session.rollback()
        assert host.stored() == []
        host.check_host_session()


# -- what goes out is what was set ---------------------------------------------------------

#: Headers every message of the property below carries, and no other.
SENT_HEADERS = {
    "content-type",
    "mime-version",
    "content-transfer-encoding",
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "x-maildelivery-id",
    "x-note",
}


@dataclass
class WireCase:
    """The app and SMTP server of the property, built once per database."""

    host: Host
    smtp: SMTPServer


@pytest.fixture
def wire(make_app: AppFactory, smtp_server: SMTPServer) -> Iterator[WireCase]:
    for host in _host(make_app, **smtp_server.config()):
        yield WireCase(host, smtp_server)


@settings(
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(subject=st.text(max_size=200), name=st.text(max_size=80), value=st.text(max_size=200))
def test_any_text_is_refused_or_arrives_exactly_as_set(
    wire: WireCase, subject: str, name: str, value: str
) -> None:
    host, smtp = wire.host, wire.smtp
    received = len(smtp.messages)
    refused: SendRefused | None = None
    try:
        sent = host.mail_delivery.send(
            subject=subject,
            to=[(name, "ann@customer.test")],
            headers={"X-Note": value},
            text="x",
        )
    except SendRefused as exc:
        refused = exc
    if refused is not None:
        assert refused.email is not None
        assert refused.email.result == "failed"
        assert refused.email.error == str(refused)
        assert len(smtp.messages) == received
        host.check_host_session()
        return
    assert sent.result == "queued"
    assert len(smtp.messages) == received + 1
    parsed = email.message_from_bytes(smtp.messages[-1].data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    header_names = parsed.keys()
    assert {h.lower() for h in header_names} == SENT_HEADERS
    assert len(header_names) == len(SENT_HEADERS)
    assert parsed["Subject"] == subject
    assert parsed["X-Note"] == value
    # a display name is a phrase: runs of whitespace in it are one space
    [recipient] = sent.recipients
    assert recipient.name == (" ".join(name.split()) or None)
    assert parsed["To"].addresses[0].display_name == (recipient.name or "")
    assert parsed["To"].addresses[0].addr_spec == "ann@customer.test"
    assert sent.subject == subject


def test_refused_emails_show_on_the_log_pages_and_the_api(make_app: AppFactory) -> None:
    log = make_log_app(make_app, MAILDELIVERY_DEFAULT_SENDER=None)
    log.viewer.user = ADMIN
    refusals = []
    with log.app.app_context():
        for kwargs in (
            {"subject": "", "to": []},
            {"subject": "Invoice" + INJECTED, "to": [("Ann" + INJECTED, "ann@")]},
        ):
            with pytest.raises(SendRefused) as raised:
                log.extension.send(text="x", **kwargs)
            assert raised.value.email is not None
            refusals.append((raised.value.email.id, str(raised.value)))
    client = log.client()
    listing = client.get("/maildelivery/")
    assert listing.status_code == 200
    assert sorted(listed_ids(listing.text)) == sorted(i for i, _ in refusals)
    for email_id, error in refusals:
        detail = client.get(f"/maildelivery/{email_id}")
        assert detail.status_code == 200
        assert str(escape(error)) in detail.text
        api = client.get(f"/maildelivery/api/emails/{email_id}")
        assert (api.json["result"], api.json["error"]) == ("failed", error)
    export = client.get("/maildelivery/export.csv")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert {row["result"] for row in rows} == {"failed"}
