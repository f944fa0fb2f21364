"""The example ERP (``example_app``): its pages, its host callbacks and signal receivers, the
invoice PDF, the SendGrid simulator and the local SMTP server."""

from __future__ import annotations

import base64
import json
import re
import smtplib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from example_app import create_app, demo, mail_delivery
from example_app.models import Contact, Invoice, Model, User, db
from example_app.pdf import invoice_pdf, text_pdf
from example_app.simulator import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ProviderSimulator,
    SimulatorTiming,
    load_or_create_key,
    outcome_for,
    public_key_b64,
    start_smtp_server,
)
from example_app.stack import free_port, uses_local_delivery
from flask_maildelivery.context import get_state
from flask_maildelivery.models import Email, utcnow
from flask_maildelivery.sending import resend_email
from flask_maildelivery.testing import outbox, simulate_event

from .conftest import clear_tables, first_or_fail, get_or_fail


@pytest.fixture(scope="module")
def erp_tables(database_url: str, schema: sa.Engine) -> Iterator[sa.Engine]:
    """The ERP's own tables next to the package's, on the test database."""
    engine = sa.create_engine(database_url)
    Model.metadata.drop_all(engine)
    Model.metadata.create_all(engine)
    yield engine
    Model.metadata.drop_all(engine)
    engine.dispose()


def clear_erp_tables(erp_tables: sa.Engine, schema: sa.Engine) -> None:
    """Delete every row of the ERP's tables, then of the package's (children first)."""
    with erp_tables.begin() as connection:
        for table in reversed(Model.metadata.sorted_tables):
            connection.execute(table.delete())
    clear_tables(schema)


@pytest.fixture
def erp(
    erp_tables: sa.Engine, schema: sa.Engine, database_url: str, tmp_path: Path
) -> Iterator[Flask]:
    """The ERP on the test database with the memory transport and the demo records."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "MAILDELIVERY_TRANSPORT": "memory",
            "WTF_CSRF_ENABLED": False,
        },
        instance_path=tmp_path,
        environ={},
    )
    with app.app_context():
        demo.seed_records()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        clear_erp_tables(erp_tables, schema)


def sign_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": demo.DEMO_PASSWORD})
    assert response.status_code == 302, response.text
    return client


def invoice_ids(app: Flask, *numbers: str) -> list[int]:
    with app.app_context():
        return [
            first_or_fail(db.session, Invoice, Invoice.number == number).id for number in numbers
        ]


def contact_named(name: str) -> Contact:
    return first_or_fail(db.session, Contact, Contact.name == name)


def contact_id(name: str, app: Flask) -> int:
    with app.app_context():
        return contact_named(name).id


# -- pages --------------------------------------------------------------------------------


def test_sign_in_shows_only_the_own_companys_invoices(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    page = client.get("/invoices").text
    assert "INV-1001" in page
    assert "GX-2001" not in page
    other = sign_in(erp, "globex.admin").get("/invoices").text
    assert "GX-2001" in other
    assert "INV-1001" not in other


def test_wrong_password_is_refused_and_anonymous_users_go_to_sign_in(erp: Flask) -> None:
    client = erp.test_client()
    response = client.post("/login", data={"username": "acme.clerk", "password": "nope"})
    assert response.status_code == 200
    assert "wrong password" in response.text
    response = client.get("/invoices")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_sign_in_never_redirects_off_site(erp: Flask) -> None:
    client = erp.test_client()
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": "acme.clerk", "password": demo.DEMO_PASSWORD},
    )
    assert response.headers["Location"] == "/invoices"


def test_forms_need_a_csrf_token_by_default(
    erp_tables: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url, "MAILDELIVERY_TRANSPORT": "memory"},
        instance_path=tmp_path,
        environ={},
    )
    response = app.test_client().post("/login", data={"username": "x", "password": "y"})
    assert response.status_code == 400
    assert "CSRF" in response.text
    with app.app_context():
        db.engine.dispose()


def test_clerk_emails_selected_invoices_to_customer_with_accounting_in_cc_and_pdf(
    erp: Flask,
) -> None:
    client = sign_in(erp, "acme.clerk")
    ids = invoice_ids(erp, "INV-1001", "INV-1008", "INV-1010")
    response = client.post("/invoices/email", data={"invoice_id": [str(i) for i in ids]})
    assert response.status_code == 302
    with erp.app_context():
        sent = outbox(erp)
        assert len(sent) == 3
        by_subject = {m.subject: m for m in sent}
        message = by_subject["Invoice INV-1008 from Acme Supplies"]
        assert [a.address for a in message.to] == ["initech@bounce.example"]
        assert [a.address for a in message.cc] == ["accounting@acme.example"]
        assert message.sender.address == "billing@acme.example"
        [attachment] = message.attachments
        assert attachment.filename == "INV-1008.pdf"
        assert attachment.content_type == "application/pdf"
        assert attachment.content.startswith(b"%PDF-1.4")
        clerk = first_or_fail(db.session, User, User.username == "acme.clerk")
        emails = db.session.scalars(sa.select(Email).order_by(Email.id)).all()
        assert {e.tenant_id for e in emails} == {str(clerk.company_id)}
        assert {e.sent_by for e in emails} == {"acme.clerk"}
        email = next(e for e in emails if e.subject == message.subject)
        assert (email.related_type, email.related_id) == ("invoice", str(ids[1]))
        to = next(r for r in email.recipients if r.kind == "to")
        initech = contact_named("Initech")
        assert (to.contact_type, to.contact_id) == ("customer", str(initech.id))
        assert email.attachments == [
            {
                "filename": "INV-1008.pdf",
                "content_type": "application/pdf",
                "size": len(attachment.content),
            }
        ]
    page = client.get("/invoices").text
    assert "Emailed 3 invoice(s): INV-1001, INV-1008, INV-1010." in page
    row = re.search(r'data-invoice="INV-1008".*?</tr>', page, re.S)
    assert row is not None
    assert "queued" in row.group(0)


def test_erp_sender_replaces_the_companys_from_address(erp: Flask) -> None:
    erp.config["ERP_SENDER"] = "invoices@verified.example"
    sign_in(erp, "acme.clerk").post(
        "/invoices/email", data={"invoice_id": [str(i) for i in invoice_ids(erp, "INV-1001")]}
    )
    with erp.app_context():
        [message] = outbox(erp)
        assert message.sender.formatted() == "Acme Supplies <invoices@verified.example>"


def test_another_companys_invoices_cannot_be_emailed(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [foreign] = invoice_ids(erp, "GX-2001")
    response = client.post(
        "/invoices/email", data={"invoice_id": [str(foreign)]}, follow_redirects=True
    )
    assert "Select the invoices to email." not in response.text
    with erp.app_context():
        assert outbox(erp) == []
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Email)) == 0
    assert client.get(f"/invoices/{foreign}").status_code == 404


def test_an_invalid_customer_address_is_reported_and_the_others_are_sent(erp: Flask) -> None:
    with erp.app_context():
        contact_named("Contoso Ltd").email = "not an address"
        db.session.commit()
    client = sign_in(erp, "acme.clerk")
    ids = invoice_ids(erp, "INV-1001", "INV-1002")
    page = client.post(
        "/invoices/email", data={"invoice_id": [str(i) for i in ids]}, follow_redirects=True
    ).text
    assert "INV-1002 was not sent" in page
    assert "Emailed 1 invoice(s): INV-1001." in page
    with erp.app_context():
        assert [m.subject for m in outbox(erp)] == ["Invoice INV-1001 from Acme Supplies"]
        # the refused one is in the log, failed, with the reason
        refused = db.session.scalar(
            sa.select(Email).where(Email.subject == "Invoice INV-1002 from Acme Supplies")
        )
        assert refused is not None
        assert refused.result == "failed"
        assert "to address 'not an address' is not an email address" in (refused.error or "")


def test_the_auditor_reads_but_cannot_email_or_edit(erp: Flask) -> None:
    client = sign_in(erp, "acme.auditor")
    ids = invoice_ids(erp, "INV-1001")
    assert client.post("/invoices/email", data={"invoice_id": [str(ids[0])]}).status_code == 403
    northwind = contact_id("Northwind Traders", erp)
    assert client.get(f"/contacts/{northwind}/edit").status_code == 403
    assert "Email selected invoices" not in client.get("/invoices").text


def _bounced_invoice_email(erp: Flask, client: FlaskClient) -> tuple[int, int]:
    """INV-1008 emailed and bounced for Initech: ``(email id, Initech's contact id)``."""
    [invoice_id] = invoice_ids(erp, "INV-1008")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        email = first_or_fail(db.session, Email)
        simulate_event(email, "bounced", recipient="initech@bounce.example", bounce_type="hard")
        return email.id, contact_named("Initech").id


def test_the_auditor_reads_the_log_but_neither_resends_nor_reviews(erp: Flask) -> None:
    email_id, _ = _bounced_invoice_email(erp, sign_in(erp, "acme.clerk"))
    auditor = sign_in(erp, "acme.auditor")
    assert auditor.get("/maildelivery/").status_code == 200
    detail = auditor.get(f"/maildelivery/{email_id}")
    assert detail.status_code == 200
    assert "initech@bounce.example" in detail.text
    assert "Resend to failed recipients" not in detail.text
    assert auditor.post(f"/maildelivery/{email_id}/resend").status_code == 403
    assert auditor.post(f"/maildelivery/{email_id}/review").status_code == 403
    assert auditor.post(f"/maildelivery/api/emails/{email_id}/review").status_code == 403
    with erp.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Email)) == 1
        assert get_or_fail(db.session, Email, email_id).reviewed_at is None
        users = {u.username: u for u in db.session.scalars(sa.select(User))}
        assert mail_delivery.callbacks.may_view_log(users["globex.auditor"])
        assert not mail_delivery.callbacks.may_act(users["globex.auditor"])
        assert mail_delivery.callbacks.may_act(users["acme.admin"])
    # the administrator may act on the same email
    admin = sign_in(erp, "acme.admin")
    assert "Resend to failed recipients" in admin.get(f"/maildelivery/{email_id}").text
    assert admin.post(f"/maildelivery/{email_id}/review").status_code == 302


def test_saving_a_contact_opened_from_a_failed_email_returns_to_that_email(erp: Flask) -> None:
    admin = sign_in(erp, "acme.admin")
    email_id, initech = _bounced_invoice_email(erp, admin)
    detail = admin.get(f"/maildelivery/{email_id}").text
    edit_url = f"/contacts/{initech}/edit?next=/maildelivery/{email_id}"
    assert f'href="{edit_url}"' in detail
    form = admin.get(edit_url).text
    assert f'<input type="hidden" name="next" value="/maildelivery/{email_id}">' in form
    assert f'<a href="/maildelivery/{email_id}">Cancel</a>' in form
    response = admin.post(edit_url, data={"name": "Initech", "email": "ap@initech.example"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/maildelivery/{email_id}"
    # an invalid address keeps the form, and the way back, on the page
    response = admin.post(edit_url, data={"name": "Initech", "email": "ap@@initech"})
    assert response.status_code == 200
    assert 'name="next"' in response.text
    # opened from the contacts list, saving returns to the list
    response = admin.post(
        f"/contacts/{initech}/edit", data={"name": "Initech", "email": "ap@initech.example"}
    )
    assert response.headers["Location"] == "/contacts?kind=customer"
    with erp.test_request_context("/invoices"):
        assert (
            mail_delivery.callbacks.contact_url("customer", str(initech))
            == f"/contacts/{initech}/edit"
        )


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/maildelivery/1",
        "//evil.example/maildelivery/1",
        "/\\evil.example/x",
        "\\\\evil.example/x",
        "javascript:alert(1)",
        "/\t/evil.example",
        "maildelivery/1",
        "",
    ],
)
def test_next_must_be_a_path_on_this_site(erp: Flask, target: str) -> None:
    admin = sign_in(erp, "acme.admin")
    initech = contact_id("Initech", erp)
    response = admin.post(
        f"/contacts/{initech}/edit",
        data={"name": "Initech", "email": "ap@initech.example", "next": target},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/contacts?kind=customer"
    response = admin.post("/language", data={"language": "fr", "next": target})
    assert response.headers["Location"] == "/"
    response = erp.test_client().post(
        "/login?" + urlencode({"next": target}),
        data={"username": "acme.clerk", "password": demo.DEMO_PASSWORD},
    )
    assert response.headers["Location"] == "/invoices"
    with erp.app_context():
        assert get_or_fail(db.session, Contact, initech).email == "ap@initech.example"


def test_the_language_switch_shows_the_log_in_french(erp: Flask) -> None:
    admin = sign_in(erp, "acme.admin")
    _bounced_invoice_email(erp, admin)
    page = admin.get("/maildelivery/").text
    assert '<html lang="en">' in page
    assert "Resend to failed recipients" not in page
    assert 'placeholder="Address or domain"' in page
    response = admin.post("/language", data={"language": "fr", "next": "/maildelivery/?show=all"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/maildelivery/?show=all"
    page = admin.get("/maildelivery/?show=all").text
    assert '<html lang="fr">' in page
    assert 'placeholder="Adresse ou domaine"' in page
    assert 'value="fr" lang="fr" aria-pressed="true"' in page
    # the choice outlives the request; English again with the switch
    assert '<html lang="fr">' in admin.get("/invoices").text
    admin.post("/language", data={"language": "en", "next": "/invoices"})
    assert '<html lang="en">' in admin.get("/maildelivery/").text
    # no switch used: the browser's preference
    french_browser = erp.test_client()
    page = french_browser.get("/login", headers={"Accept-Language": "fr-CA,fr;q=0.9"}).text
    assert '<html lang="fr">' in page
    assert '<html lang="en">' in erp.test_client().get("/login").text
    # a language the ERP does not offer is refused and changes nothing
    response = admin.post("/language", data={"language": "de", "next": "/invoices"})
    assert response.status_code == 400
    assert "language must be one of en, fr" in response.text
    assert '<html lang="en">' in admin.get("/invoices").text


def test_the_favicon_is_served_to_anyone(erp: Flask) -> None:
    client = erp.test_client()
    with client.get("/favicon.ico") as response:
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        assert response.data.startswith(b"<svg")
    page = client.get("/login").text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    with client.get("/static/favicon.svg") as response:
        assert response.status_code == 200


def test_users_page_shows_who_may_read_the_log_and_admins_grant_it(erp: Flask) -> None:
    admin = sign_in(erp, "acme.admin")
    page = admin.get("/users").text
    clerk_row = re.search(r'data-user="acme.clerk".*?</tr>', page, re.S)
    auditor_row = re.search(r'data-user="acme.auditor".*?</tr>', page, re.S)
    assert clerk_row is not None
    assert auditor_row is not None
    assert "no" in clerk_row.group(0)
    assert "granted" not in clerk_row.group(0)
    assert "yes" in auditor_row.group(0)
    assert "(granted)" in auditor_row.group(0)
    assert "globex" not in page
    with erp.app_context():
        clerk = first_or_fail(db.session, User, User.username == "acme.clerk")
        clerk_id = clerk.id
        assert not mail_delivery.callbacks.may_view_log(clerk)
    assert (
        sign_in(erp, "acme.clerk")
        .post(f"/users/{clerk_id}/email-log-access", data={"grant": "1"})
        .status_code
        == 403
    )
    admin.post(f"/users/{clerk_id}/email-log-access", data={"grant": "1"})
    with erp.app_context():
        clerk = get_or_fail(db.session, User, clerk_id)
        assert clerk.can_view_email_log
        assert mail_delivery.callbacks.may_view_log(clerk)
    with erp.app_context():
        foreign = db.session.scalar(sa.select(User.id).where(User.username == "globex.clerk"))
    assert admin.post(f"/users/{foreign}/email-log-access", data={"grant": "1"}).status_code == 404


def test_contact_edit_refuses_an_invalid_address_and_keeps_the_record(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    initech = contact_id("Initech", erp)
    response = client.post(
        f"/contacts/{initech}/edit", data={"name": "Initech", "email": "ap@@initech"}
    )
    assert response.status_code == 200
    assert "error-text" in response.text
    with erp.app_context():
        assert get_or_fail(db.session, Contact, initech).email == "initech@bounce.example"
    foreign = contact_id("Duff Brewing", erp)
    assert client.get(f"/contacts/{foreign}/edit").status_code == 404


def test_the_invoice_pdf_is_a_valid_pdf(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1001")
    response = client.get(f"/invoices/{invoice_id}/pdf")
    assert response.mimetype == "application/pdf"
    check_pdf(response.data)
    assert b"(Invoice INV-1001) Tj" in response.data


def check_pdf(data: bytes) -> None:
    """Every cross-reference entry points at its object, and startxref at the table."""
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")
    startxref = int(data.rsplit(b"startxref", 1)[1].split()[0])
    assert data[startxref:].startswith(b"xref")
    lines = data[startxref:].split(b"\n")
    count = int(lines[1].split()[1])
    for number in range(1, count):
        offset = int(lines[2 + number].split()[0])
        assert data[offset:].startswith(b"%d 0 obj" % number)
    length_match = re.search(rb"/Length (\d+)", data)
    assert length_match is not None
    length = int(length_match.group(1))
    stream = data.split(b"stream\n", 1)[1]
    assert stream[length:].startswith(b"\nendstream")


def test_text_pdf_escapes_parentheses_and_backslashes() -> None:
    data = text_pdf(["a (b) \\ c", "Café"])
    check_pdf(data)
    assert b"(a \\(b\\) \\\\ c) Tj" in data


# -- host callbacks and signal receivers ---------------------------------------------------


def test_host_callbacks(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1008")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.test_request_context():
        initech = contact_named("Initech")
        assert (
            mail_delivery.callbacks.contact_url("customer", str(initech.id))
            == f"/contacts/{initech.id}/edit"
        )
        assert mail_delivery.callbacks.contact_url("vendor", str(initech.id)) is None
        assert mail_delivery.callbacks.contact_url("customer", "x") is None
        assert (
            mail_delivery.callbacks.contact_address("customer", str(initech.id))
            == "initech@bounce.example"
        )
        assert (
            mail_delivery.callbacks.related_url("invoice", str(invoice_id))
            == f"/invoices/{invoice_id}"
        )
        assert mail_delivery.callbacks.related_url("order", "1") is None
        email = first_or_fail(db.session, Email)
        [(name, content, ctype)] = mail_delivery.callbacks.attachments_for_resend(email)
        assert (name, ctype) == ("INV-1008.pdf", "application/pdf")
        assert content == invoice_pdf(get_or_fail(db.session, Invoice, invoice_id))
        users = {u.username: u for u in db.session.scalars(sa.select(User))}
        assert mail_delivery.callbacks.may_view_log(users["acme.admin"])
        assert mail_delivery.callbacks.may_view_log(users["acme.auditor"])
        assert not mail_delivery.callbacks.may_view_log(users["acme.clerk"])
        assert mail_delivery.callbacks.current_tenant() is None


def test_a_hard_bounce_flags_the_contact_until_its_address_changes(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1008")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        email = first_or_fail(db.session, Email)
        simulate_event(email, "delivered", recipient="accounting@acme.example")
        simulate_event(email, "deferred", recipient="initech@bounce.example", reason="421 later")
    assert "Address bounced" not in client.get("/contacts?kind=customer").text
    with erp.app_context():
        email = first_or_fail(db.session, Email)
        simulate_event(
            email,
            "bounced",
            recipient="initech@bounce.example",
            reason="550 5.1.1 no such user",
            bounce_type="hard",
        )
        invoice = get_or_fail(db.session, Invoice, invoice_id)
        assert (invoice.email_result, invoice.email_status) == ("warning", "bounced")
        initech = contact_named("Initech")
        assert initech.bounced_address == "initech@bounce.example"
        assert initech.bounce_reason == "550 5.1.1 no such user"
        initech_id = initech.id
    page = client.get("/contacts?kind=customer").text
    row = re.search(r'data-contact="Initech".*?</tr>', page, re.S)
    assert row is not None
    assert "Address bounced" in row.group(0)
    invoices_page = client.get("/invoices").text
    row = re.search(r'data-invoice="INV-1008".*?</tr>', invoices_page, re.S)
    assert row is not None
    assert "warning" in row.group(0)
    assert "bounced" in row.group(0)
    # saving the same address keeps the flag; a new address clears it
    client.post(
        f"/contacts/{initech_id}/edit",
        data={"name": "Initech Inc", "email": "initech@bounce.example"},
    )
    assert "Address bounced" in client.get("/contacts?kind=customer").text
    client.post(
        f"/contacts/{initech_id}/edit", data={"name": "Initech Inc", "email": "ap@initech.example"}
    )
    assert "Address bounced" not in client.get("/contacts?kind=customer").text


def test_the_contact_form_warns_of_a_suppressed_address_until_it_is_corrected(
    erp: Flask,
) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1008")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        simulate_event(
            first_or_fail(db.session, Email),
            "bounced",
            recipient="initech@bounce.example",
            reason="550 5.1.1 no such user",
            bounce_type="hard",
        )
        initech_id = contact_named("Initech").id
    form = client.get(f"/contacts/{initech_id}/edit").text
    warning = re.search(r'id="address-health" data-state="(\w+)">([^<]*)', form)
    assert warning is not None
    assert warning.group(1) == "suppressed"
    assert "Invoices to initech@bounce.example are not sent" in warning.group(2)
    # emailed again: the customer is skipped, the accounting copy goes out
    with erp.app_context():
        sent = len(outbox(erp))
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        assert outbox(erp)[sent].envelope_recipients == ["accounting@acme.example"]
    client.post(
        f"/contacts/{initech_id}/edit", data={"name": "Initech", "email": "ap@initech.example"}
    )
    assert 'id="address-health"' not in client.get(f"/contacts/{initech_id}/edit").text
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        assert "ap@initech.example" in outbox(erp)[-1].envelope_recipients


def invoice_row(client: FlaskClient, number: str) -> str:
    """The row of invoice ``number`` on the invoices page."""
    row = re.search(rf'data-invoice="{number}".*?</tr>', client.get("/invoices").text, re.S)
    assert row is not None, number
    return row.group(0)


def test_an_invoice_refused_for_its_customer_shows_failed_though_its_cc_opened_it(
    erp: Flask,
) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1006")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        email = first_or_fail(db.session, Email)
        simulate_event(
            email, "failed", recipient="vandelay@refused.example", reason="550 5.1.1 user unknown"
        )
        simulate_event(email, "delivered", recipient="accounting@acme.example")
        simulate_event(email, "opened", recipient="accounting@acme.example")
        invoice = get_or_fail(db.session, Invoice, invoice_id)
        assert (invoice.email_result, invoice.email_status) == ("warning", "failed")
    row = invoice_row(client, "INV-1006")
    assert '<span class="badge failed">failed</span>' in row
    assert "opened" not in row


def test_a_spam_complaint_shows_on_the_invoice(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1009")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        email = first_or_fail(db.session, Email)
        for address in ("ap@northwind.example", "accounting@acme.example"):
            simulate_event(email, "delivered", recipient=address)
        simulate_event(email, "opened", recipient="accounting@acme.example")
        simulate_event(email, "complained", recipient="ap@northwind.example")
        invoice = get_or_fail(db.session, Invoice, invoice_id)
        assert (invoice.email_result, invoice.email_status) == ("delivered", "complained")
    assert '<span class="badge complained">complained</span>' in invoice_row(client, "INV-1009")


def test_a_bounce_for_an_address_the_contact_no_longer_holds_does_not_flag_it(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1008")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        contact_named("Initech").email = "ap@initech.example"
        db.session.commit()
        email = first_or_fail(db.session, Email)
        simulate_event(email, "bounced", recipient="initech@bounce.example", bounce_type="hard")
        assert contact_named("Initech").bounced_address is None


def test_resend_after_the_fix_goes_to_the_corrected_address_with_the_pdf(erp: Flask) -> None:
    client = sign_in(erp, "acme.clerk")
    [invoice_id] = invoice_ids(erp, "INV-1008")
    client.post("/invoices/email", data={"invoice_id": [str(invoice_id)]})
    with erp.app_context():
        first = first_or_fail(db.session, Email)
        simulate_event(first, "bounced", recipient="initech@bounce.example", bounce_type="hard")
        initech_id = contact_named("Initech").id
        first_id = first.id
    client.post(
        f"/contacts/{initech_id}/edit", data={"name": "Initech", "email": "ap@initech.example"}
    )
    with erp.test_request_context():
        second = resend_email(get_state(erp), first_id)
        assert second.resent_from_id == first_id
        message = outbox(erp)[-1]
        assert [a.address for a in message.to] == ["ap@initech.example"]
        assert message.cc == []
        assert [a.filename for a in message.attachments] == ["INV-1008.pdf"]
        assert message.attachments[0].content == invoice_pdf(
            get_or_fail(db.session, Invoice, invoice_id)
        )
        [recipient] = second.recipients
        assert (recipient.contact_type, recipient.contact_id) == ("customer", str(initech_id))
        simulate_event(second, "delivered", recipient="ap@initech.example")
        invoice = get_or_fail(db.session, Invoice, invoice_id)
        assert (invoice.email_id, invoice.email_result) == (second.id, "delivered")
        # late news about the first email does not hide the newer email's outcome
        simulate_event(first, "delivered", recipient="accounting@acme.example")
        invoice = get_or_fail(db.session, Invoice, invoice_id)
        assert (invoice.email_id, invoice.email_result) == (second.id, "delivered")
    page = client.get(f"/invoices/{invoice_id}").text
    assert page.count('class="badge delivered"') == 1
    assert 'class="badge warning"' in page


def test_receivers_ignore_other_apps(erp: Flask, make_app: Any) -> None:
    """The receivers are connected for the ERP app only: another app's emails reach them not."""
    other = make_app()
    with other.app_context():
        from flask_maildelivery import MailDelivery

        email = MailDelivery.state(other).extension.send(
            subject="x", to=["initech@bounce.example"], text="x", related=("invoice", 1)
        )
        simulate_event(email, "bounced", bounce_type="hard")
    with erp.app_context():
        assert contact_named("Initech").bounced_address is None
        assert (
            db.session.scalar(sa.select(sa.func.count()).where(Invoice.email_id.is_not(None))) == 0
        )


# -- demo data ---------------------------------------------------------------------------


def test_demo_seed_runs_once_and_sends_one_email_per_outcome(
    erp_tables: sa.Engine, schema: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "MAILDELIVERY_TRANSPORT": "memory",
        },
        instance_path=tmp_path,
        environ={},
    )
    try:
        assert demo.seed(app, emails=True) is True
        assert demo.seed(app, emails=True) is False
        with app.app_context():
            to = sorted(m.to[0].address for m in outbox(app))
            # the demo emails, the payslip, and the invoice first sent to a wrong address
            assert len(to) == len(demo.DEMO_EMAILED) + 2
            assert demo.DEMO_WRONG_ADDRESS in to
            outcomes = {outcome_for(address) for address in to}
            assert {"bounce", "drop", "slow", "full", "late", "open", "quiet"} - outcomes == {
                "bounce"
            }
            assert "former.employee@refused.example" in to
            assert outcome_for("ap@stuck.example") == "stuck"
            assert "ap@stuck.example" in to
            # the invoice the provider never reported on went out two days ago: overdue
            stuck = first_or_fail(
                mail_delivery.session, Email, Email.subject.contains(demo.DEMO_OVERDUE)
            )
            assert stuck.sent_at is not None
            assert utcnow() - stuck.sent_at > timedelta(days=1)
            assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == len(
                demo.DEMO_USERS
            )
            tenants = db.session.scalars(sa.select(Email.tenant_id).distinct()).all()
            assert len(tenants) == 2
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        clear_erp_tables(erp_tables, schema)


# -- configuration -----------------------------------------------------------------------


def test_environment_switches_database_and_transport(tmp_path: Path) -> None:
    public_key = public_key_b64(load_or_create_key(tmp_path))
    app = create_app(
        instance_path=tmp_path,
        environ={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}",
            "MAILDELIVERY_TRANSPORT": "console",
            "MAILDELIVERY_SMTP_PORT": "2525",
            "MAILDELIVERY_SMTP_USE_TLS": "true",
            "MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key,
        },
    )
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("other.db")
    assert app.config["MAILDELIVERY_TRANSPORT"] == "console"
    assert app.config["MAILDELIVERY_SMTP_PORT"] == 2525
    assert app.config["MAILDELIVERY_SMTP_USE_TLS"] is True
    assert app.config["MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY"] == public_key
    assert app.config["MAILDELIVERY_BASE_TEMPLATE"] == "maildelivery_layout.html"
    # the secret key is made once and kept
    again = create_app(instance_path=tmp_path, environ={})
    assert app.config["SECRET_KEY"] == again.config["SECRET_KEY"]
    assert len(app.config["SECRET_KEY"]) == 64
    assert uses_local_delivery({}, {})
    assert not uses_local_delivery({"MAILDELIVERY_TRANSPORT": "sendgrid"}, {})
    assert not uses_local_delivery({}, {"MAILDELIVERY_SMTP_HOST": "smtp.example.net"})


# -- the SendGrid simulator and the local SMTP server -------------------------------------


def test_simulator_key_is_made_once_and_signs_like_sendgrid(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert load_or_create_key(tmp_path).private_numbers() == key.private_numbers()
    assert (tmp_path / "sendgrid-simulator-key.pem").stat().st_mode & 0o077 == 0
    simulator = ProviderSimulator(key, "http://127.0.0.1:9/")
    body, headers = simulator.signed_request([{"email": "a@b.example", "event": "delivered"}])
    public = serialization.load_der_public_key(base64.b64decode(public_key_b64(key)))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    signed = headers[TIMESTAMP_HEADER].encode() + body
    public.verify(base64.b64decode(headers[SIGNATURE_HEADER]), signed, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(
            base64.b64decode(headers[SIGNATURE_HEADER]), signed + b" ", ec.ECDSA(hashes.SHA256())
        )
    assert json.loads(body)[0]["timestamp"] == int(headers[TIMESTAMP_HEADER])


def test_a_corrupt_key_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "sendgrid-simulator-key.pem").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="delete it"):
        load_or_create_key(tmp_path)


class WebhookRecorder:
    """A real HTTP server on loopback that records the webhook POSTs it receives; the first
    ``fail_first`` requests are answered 503 (to see the simulator retry)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/maildelivery/webhooks/sendgrid"

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.requests.append((dict(request.headers), request.get_data()))
            status = 503 if len(self.requests) <= self.fail_first else 200
        return Response("", status=status)(environ, start_response)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            ok = self.requests[self.fail_first :]
            return [e for _, body in ok for e in json.loads(body)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_smtp_server_and_simulator_post_signed_sendgrid_events(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    recorder = WebhookRecorder(fail_first=1)
    timing = SimulatorTiming(delivery=0.05, open=0.05, deferral=0.1, late_bounce=0.2, retry=0.05)
    simulator = ProviderSimulator(key, recorder.url, timing)
    simulator.start()
    port = free_port()
    smtp = start_smtp_server(simulator, "127.0.0.1", port)
    try:
        message = EmailMessage()
        message["From"] = "billing@acme.example"
        message["To"] = "Ann <ann@customer.example>, bad@bounce.example, slow@slow.example"
        message["Cc"] = "late@late.example, gone@drop.example"
        message["Subject"] = "Invoice"
        message["X-SMTPAPI"] = json.dumps({"unique_args": {"maildelivery_id": "abc123"}})
        message.set_content("hello")
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            refused = client.send_message(
                message,
                to_addrs=[
                    "ann@customer.example",
                    "bad@bounce.example",
                    "slow@slow.example",
                    "late@late.example",
                    "gone@drop.example",
                    "nobody@refused.example",
                ],
            )
        assert set(refused) == {"nobody@refused.example"}
        assert refused["nobody@refused.example"][0] == 550
        expected = 5 + 1 + 2 + 1 + 2 + 2  # processed each, then the outcomes
        wait_for(lambda: len(recorder.events()) >= expected)
    finally:
        smtp.stop()
        simulator.stop()
        recorder.close()
    public = serialization.load_der_public_key(base64.b64decode(public_key_b64(key)))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for headers, body in recorder.requests:
        public.verify(
            base64.b64decode(headers[SIGNATURE_HEADER]),
            headers[TIMESTAMP_HEADER].encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    events = recorder.events()
    assert {e["maildelivery_id"] for e in events} == {"abc123"}
    assert len({e["sg_event_id"] for e in events}) == len(events)
    by_address: dict[str, list[str]] = {}
    for e in events:
        by_address.setdefault(e["email"], []).append(e["event"])
    # a retried POST arrives late, as with SendGrid: compare each recipient's events as a set,
    # and the order where a delay decides it
    assert {address: sorted(names) for address, names in by_address.items()} == {
        "ann@customer.example": ["delivered", "open", "processed"],
        "bad@bounce.example": ["bounce", "processed"],
        "slow@slow.example": ["deferred", "delivered", "processed"],
        "late@late.example": ["bounce", "delivered", "processed"],
        "gone@drop.example": ["dropped", "processed"],
    }
    assert by_address["slow@slow.example"][-2:] == ["deferred", "delivered"]
    assert by_address["late@late.example"][-2:] == ["delivered", "bounce"]
    bounce = next(
        e for e in events if e["event"] == "bounce" and e["email"] == "bad@bounce.example"
    )
    assert bounce["type"] == "bounce"
    assert bounce["reason"].startswith("550 5.1.1")
    # the first POST was answered 503 and was retried
    assert len(recorder.requests) == len(simulator.posts)
    assert simulator.posts[0][0] == 503
    assert [m.maildelivery_id for m in simulator.received] == ["abc123"]


# -- with the log pages and the webhooks ---------------------------------------------------


def email_id_of(app: Flask, number: str) -> int:
    with app.app_context():
        invoice = first_or_fail(db.session, Invoice, Invoice.number == number)
        assert invoice.email_id is not None
        return invoice.email_id


def test_log_pages_sit_in_the_erp_layout_with_the_erps_permission_and_tenants(erp: Flask) -> None:
    sign_in(erp, "acme.clerk").post(
        "/invoices/email", data={"invoice_id": [str(i) for i in invoice_ids(erp, "INV-1008")]}
    )
    email_id = email_id_of(erp, "INV-1008")
    anonymous = erp.test_client().get("/maildelivery/")
    assert anonymous.status_code == 302
    assert "/login" in anonymous.headers["Location"]
    assert sign_in(erp, "acme.clerk").get("/maildelivery/").status_code == 403
    assert sign_in(erp, "globex.admin").get(f"/maildelivery/{email_id}").status_code == 404
    for username in ("acme.admin", "acme.auditor"):
        page = sign_in(erp, username).get(f"/maildelivery/{email_id}?show=all")
        assert page.status_code == 200
        # the ERP's header and navigation around the log page
        assert 'class="erp"' in page.text
        assert "Sign out" in page.text
        assert "Invoice INV-1008 from Acme Supplies" in page.text
        initech = contact_id("Initech", erp)
        assert f'href="/contacts/{initech}/edit?next=/maildelivery/{email_id}"' in page.text


def _fast_stack(database_url: str, tmp_path: Path, **options: Any) -> Any:
    """The whole example on a free port, its simulator in a hurry, no demo emails, serving
    in the background (``options``: more arguments of ``start_stack``)."""
    from example_app.stack import start_stack

    stack = start_stack(
        port=0,
        timing=SimulatorTiming(delivery=0.05, open=0.05, deferral=0.2, late_bounce=0.3, retry=0.2),
        instance_path=tmp_path,
        environ={},
        config={"SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False},
        demo_emails=False,
        **options,
    )
    stack.serve_in_background()
    return stack


def _invoice_state(app: Flask, number: str) -> tuple[str | None, str | None]:
    """The email result and status an invoice shows."""
    with app.app_context():
        db.session.expire_all()
        invoice = first_or_fail(db.session, Invoice, Invoice.number == number)
        return invoice.email_result, invoice.email_status


def _email_two_invoices(app: Flask, timeout: float = 10.0) -> FlaskClient:
    """The clerk emails INV-1008 (its customer's address bounces) and INV-1009 (delivered,
    then opened); returns once both invoices show those outcomes."""
    clerk = sign_in(app, "acme.clerk")
    clerk.post(
        "/invoices/email",
        data={"invoice_id": [str(i) for i in invoice_ids(app, "INV-1008", "INV-1009")]},
    )
    wait_for(lambda: _invoice_state(app, "INV-1008") == ("warning", "bounced"), timeout)
    wait_for(lambda: _invoice_state(app, "INV-1009") == ("delivered", "opened"), timeout)
    return clerk


def test_real_stack_delivers_bounces_flags_and_resends_on_every_database(
    erp_tables: sa.Engine, schema: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    """SMTP server, SendGrid simulator and signed webhooks against the app on a real port:
    the fix loop at the HTTP level."""
    stack = _fast_stack(database_url, tmp_path)
    app = stack.app
    try:
        clerk = _email_two_invoices(app)

        def invoice_state(number: str) -> tuple[str | None, str | None]:
            return _invoice_state(app, number)

        with app.app_context():
            assert contact_named("Initech").bounced_address == "initech@bounce.example"
        first = email_id_of(app, "INV-1008")
        initech = contact_id("Initech", app)
        clerk.post(
            f"/contacts/{initech}/edit", data={"name": "Initech", "email": "ap@initech.example"}
        )
        admin = sign_in(app, "acme.admin")
        response = admin.post(f"/maildelivery/{first}/resend")
        assert response.status_code in (302, 303)
        wait_for(lambda: email_id_of(app, "INV-1008") != first)
        wait_for(lambda: invoice_state("INV-1008")[0] == "delivered")
        with app.app_context():
            copy = get_or_fail(db.session, Email, email_id_of(app, "INV-1008"))
            assert copy.resent_from_id == first
            assert [r.address for r in copy.recipients] == ["ap@initech.example"]
            assert [a["filename"] for a in copy.attachments] == ["INV-1008.pdf"]
            assert contact_named("Initech").bounced_address is None
        assert stack.simulator is not None
        assert {status for status, _ in stack.simulator.posts} == {200}
    finally:
        stack.stop()
        clear_erp_tables(erp_tables, schema)


def test_queue_celery_mode_sends_and_applies_events_through_a_worker(
    erp_tables: sa.Engine, schema: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    """``python -m example_app --queue celery``: the same story, with the sends and the
    simulator's webhook requests handled by a Celery worker on Redis."""
    from .queue_kit import REDIS_URL, queue_rows

    stack = _fast_stack(database_url, tmp_path, queue="celery", broker_url=REDIS_URL)
    app = stack.app
    try:
        assert stack.worker is not None
        _email_two_invoices(app, timeout=30)
        assert queue_rows(app) == 0
        assert stack.simulator is not None
        # the simulator's requests were stored, then applied by the worker
        assert {status for status, _ in stack.simulator.posts} == {200}
    finally:
        stack.stop()
        clear_erp_tables(erp_tables, schema)


def test_late_example_bounces_as_a_real_dsn_read_from_the_local_bounce_mailbox(
    erp_tables: sa.Engine, schema: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    """With the SMTP transport, late.example's delayed bounce is a mail server's DSN to the
    tagged envelope sender, delivered into a local Maildir and read from there."""
    from flask_maildelivery.models import Event, Recipient

    stack = _fast_stack(database_url, tmp_path)
    app = stack.app
    try:
        assert stack.bounce_maildir == tmp_path / "bounce-mailbox"
        with app.app_context():
            email_id = mail_delivery.send(
                subject="Statement", to=["hooli@late.example"], text="Your statement."
            ).id

        def recipient_status() -> str:
            with app.app_context():
                session = get_state(app).sessions()
                session.expire_all()
                return first_or_fail(session, Recipient, Recipient.email_id == email_id).status

        wait_for(lambda: recipient_status() == "bounced", timeout=30)
        with app.app_context():
            session = get_state(app).sessions()
            dsn = first_or_fail(session, Event, Event.email_id == email_id, Event.provider == "dsn")
            assert dsn.type == "bounced"
            assert dsn.reason is not None
            assert dsn.reason.startswith("550 5.2.1")
        # read from the Maildir and kept there, marked read (once its events are committed)
        cur = tmp_path / "bounce-mailbox" / "cur"
        wait_for(lambda: len(list(cur.iterdir())) == 1)
        assert next(cur.iterdir()).name.endswith(":2,S")
        assert list((tmp_path / "bounce-mailbox" / "new").iterdir()) == []
        assert stack.smtp is not None
        assert stack.simulator is not None
        assert stack.simulator.received[0].mail_from.startswith("bounces+")
    finally:
        stack.stop()
        clear_erp_tables(erp_tables, schema)


def test_a_port_in_use_is_refused_and_leaves_nothing_running(
    erp_tables: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    import errno
    import socket

    from example_app.stack import start_stack

    smtp_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use") as info:
            start_stack(
                port=taken.getsockname()[1],
                smtp_port=smtp_port,
                instance_path=tmp_path,
                environ={},
                config={"SQLALCHEMY_DATABASE_URI": database_url},
            )
    assert info.value.errno == errno.EADDRINUSE
    # the SMTP server was stopped again: its port is free
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", smtp_port))


def test_an_api_transport_keeps_its_client_across_requests(
    erp_tables: sa.Engine, schema: sa.Engine, database_url: str, tmp_path: Path
) -> None:
    """The per-request SMTP hang-up leaves a provider API transport's shared client open."""
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False},
        instance_path=tmp_path,
        environ={"MAILDELIVERY_TRANSPORT": "sendgrid", "MAILDELIVERY_SENDGRID_API_KEY": "SG.test"},
    )
    from flask_maildelivery import MailDelivery

    transport = MailDelivery.state(app).transport
    assert transport.name == "sendgrid"
    assert app.test_client().get("/login").status_code == 200
    assert not transport.client.is_closed  # type: ignore[attr-defined]
    with app.app_context():
        db.engine.dispose()
