"""The delivery log pages through the test client, on every database: permissions, tenants,
the list (failed first, toggle, filters, search, keyset pages, empty states), the detail
page, the sandboxed body, resend with CSRF, CSV export, templates and translations."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from jinja2 import DictLoader

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email
from flask_maildelivery.testing import outbox, simulate_event
from flask_maildelivery.views.csrf import CSRF_SESSION_KEY
from flask_maildelivery.views.pages import BODY_CSP
from flask_maildelivery.vocabulary import EmailResult, EmailStatus

from .conftest import AppFactory
from .log_helpers import (
    ADMIN,
    CLERK,
    LogApp,
    User,
    cursor_link,
    listed_ids,
    make_log_app,
    send_delivered,
    send_failed,
)


@pytest.fixture
def log(make_app: AppFactory) -> LogApp:
    """An app with the log pages; the acting user is set per test (default: nobody)."""
    return make_log_app(make_app)


def _email_count(app: Flask) -> int:
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        return int(session.scalar(sa.select(sa.func.count()).select_from(Email)) or 0)


def _routes(email_id: int) -> list[tuple[str, str]]:
    """Every route of the pages and the API, for one email."""
    return [
        ("GET", "/maildelivery/"),
        ("GET", "/maildelivery/?show=all"),
        ("GET", "/maildelivery/export.csv"),
        ("GET", f"/maildelivery/{email_id}"),
        ("GET", f"/maildelivery/{email_id}/body.html"),
        ("POST", f"/maildelivery/{email_id}/resend"),
        ("GET", "/maildelivery/api/emails"),
        ("GET", f"/maildelivery/api/emails/{email_id}"),
    ]


def _setup(log: LogApp) -> tuple[int, int]:
    with log.app.app_context():
        return send_failed(log).id, send_delivered(log).id


# -- permissions --------------------------------------------------------------------------


def test_anonymous_without_flask_login_gets_401_everywhere(log: LogApp) -> None:
    failed_id, _ = _setup(log)
    client = log.client()
    for method, url in _routes(failed_id):
        assert client.open(url, method=method).status_code == 401, url
    assert _email_count(log.app) == 2  # the refused resend sent nothing


def test_anonymous_with_flask_login_goes_to_the_login_page(make_app: AppFactory) -> None:
    log = make_log_app(make_app, flask_login=True)
    failed_id, _ = _setup(log)
    client = log.client()
    for method, url in _routes(failed_id):
        response = client.open(url, method=method)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login?next="), url
    assert _email_count(log.app) == 2


def test_anonymous_with_flask_login_and_no_login_view_gets_401(make_app: AppFactory) -> None:
    log = make_log_app(make_app, flask_login=True, login_view=False)
    failed_id, _ = _setup(log)
    client = log.client()
    for method, url in _routes(failed_id):
        assert client.open(url, method=method).status_code == 401, url


def test_flask_login_admin_sees_the_log_and_clerk_gets_403(make_app: AppFactory) -> None:
    log = make_log_app(make_app, flask_login=True)
    failed_id, _ = _setup(log)
    admin, clerk = log.client(), log.client()
    admin.get("/login/admin")
    clerk.get("/login/clerk")
    assert listed_ids(admin.get("/maildelivery/").get_data(as_text=True)) == [failed_id]
    for method, url in _routes(failed_id):
        assert clerk.open(url, method=method).status_code == 403, url
    assert _email_count(log.app) == 2


def test_signed_in_without_permission_gets_403_everywhere(log: LogApp) -> None:
    failed_id, _ = _setup(log)
    log.viewer.user = CLERK
    client = log.client()
    for method, url in _routes(failed_id):
        assert client.open(url, method=method).status_code == 403, url
    assert _email_count(log.app) == 2


def test_an_unauthenticated_user_object_counts_as_anonymous(log: LogApp) -> None:
    failed_id, _ = _setup(log)
    log.viewer.user = User("ghost", is_admin=True, is_authenticated=False)
    assert log.client().get(f"/maildelivery/{failed_id}").status_code == 401


def test_permission_loader_grants_and_refuses(log: LogApp) -> None:
    failed_id, _ = _setup(log)
    log.extension.permission_loader(lambda user: user.id == "clerk")
    client = log.client()
    log.viewer.user = CLERK
    assert client.get("/maildelivery/").status_code == 200
    assert client.get(f"/maildelivery/{failed_id}").status_code == 200
    assert client.get(f"/maildelivery/api/emails/{failed_id}").status_code == 200
    log.viewer.user = ADMIN  # the callback replaces the is_admin default
    assert client.get("/maildelivery/").status_code == 403


def test_the_stylesheet_needs_no_permission(log: LogApp) -> None:
    response = log.client().get("/maildelivery/static/maildelivery.css")
    assert response.status_code == 200
    css = response.get_data(as_text=True)
    response.close()
    assert ".md-badge" in css
    assert "http" not in css  # nothing loads from the internet


# -- tenants ------------------------------------------------------------------------------


def test_another_tenants_email_is_404_on_every_route(log: LogApp) -> None:
    log.viewer.user = ADMIN
    log.viewer.tenant = "acme"
    with log.app.app_context():
        ours = send_failed(log, subject="Acme invoice").id
        log.viewer.tenant = "globex"
        theirs = send_failed(log, subject="Globex invoice").id
    log.viewer.tenant = "acme"
    client = log.client()
    with client.session_transaction() as session:
        session[CSRF_SESSION_KEY] = "token"
    for url in (
        f"/maildelivery/{theirs}",
        f"/maildelivery/{theirs}/body.html",
        f"/maildelivery/api/emails/{theirs}",
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(f"/maildelivery/{theirs}/resend", data={"csrf_token": "token"})
    assert response.status_code == 404
    assert _email_count(log.app) == 2  # nothing was resent
    assert client.get(f"/maildelivery/{ours}").status_code == 200
    for show in ("", "?show=all"):
        assert listed_ids(client.get(f"/maildelivery/{show}").get_data(as_text=True)) == [ours]
    exported = client.get("/maildelivery/export.csv?show=all").get_data(as_text=True)
    assert "Acme invoice" in exported
    assert "Globex invoice" not in exported
    api = client.get("/maildelivery/api/emails?show=all").get_json()
    assert [item["id"] for item in api["items"]] == [ours]


def test_a_host_without_tenants_does_not_see_tenant_emails(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        untenanted = send_failed(log).id
        tenanted = send_failed(log, tenant_id="acme").id
    client = log.client()
    assert listed_ids(client.get("/maildelivery/").get_data(as_text=True)) == [untenanted]
    assert client.get(f"/maildelivery/{tenanted}").status_code == 404


# -- the list -----------------------------------------------------------------------------


def test_list_shows_failed_emails_first_and_toggles_to_all(log: LogApp) -> None:
    log.viewer.user = ADMIN
    failed_id, delivered_id = _setup(log)
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert listed_ids(html) == [failed_id]
    assert 'href="/maildelivery/?show=all"' in html
    assert "Show all emails" in html
    for column in ("Record no.", "Sent", "Status", "Result", "Subject", "Sender", "To"):
        assert f'<th scope="col">{column}</th>' in html
    # labelled badges, not colour alone
    assert re.search(r'data-result="warning">.*?Warning</span>', html)
    assert re.search(r'data-status="bounced">.*?Bounced</span>', html)
    assert "ann@customer.test, bob@customer.test" in html

    html = client.get("/maildelivery/?show=all").get_data(as_text=True)
    assert listed_ids(html) == [delivered_id, failed_id]  # newest first
    assert "Show emails needing attention" in html
    assert 'href="/maildelivery/"' in html


def test_list_rows_link_to_the_detail_page_and_show_the_first_addresses(log: LogApp) -> None:
    log.viewer.user = ADMIN
    to = [f"r{n}@customer.test" for n in range(1, 6)]
    with log.app.app_context():
        many = send_failed(log, subject="", to=to).id
        two = send_failed(
            log, subject="<b>Invoice</b> & co", sender="Billing & Co <billing@acme.test>"
        ).id
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert listed_ids(html) == [two, many]
    # the first three addresses, then how many more
    assert "r1@customer.test, r2@customer.test, r3@customer.test" in html
    assert "r4@customer.test" not in html
    assert re.search(r'<span class="md-muted">\s*and 2 more\s*</span>', html)
    assert html.count("more</span>") == 1  # not on the row with two recipients
    assert html.count(f'href="/maildelivery/{many}"') == 2  # record no. and subject
    assert "(no subject)" in html
    assert "&lt;b&gt;Invoice&lt;/b&gt; &amp; co" in html  # escaped, never markup
    assert "Billing &amp; Co &lt;billing@acme.test&gt;" in html
    assert "<b>Invoice" not in html
    # behind a mount point (SCRIPT_NAME) the links keep it
    html = client.get("/maildelivery/", base_url="http://localhost/erp/").get_data(as_text=True)
    assert html.count(f'href="/erp/maildelivery/{two}"') == 2


def test_failed_only_covers_every_result_and_status_that_needs_attention(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        emails = {}
        for name, result, status in (
            ("refused", "failed", ""),
            ("warning", "warning", "bounced"),
            ("error", "error", "dropped"),
            ("deferred", "processed", "deferred"),
            ("recipient refused", "warning", "failed"),
            ("suppressed", "error", "suppressed"),
            ("complained", "delivered", "complained"),
            ("delivered", "delivered", ""),
            ("opened", "delivered", "opened"),
            ("queued", "queued", ""),
        ):
            email = send_delivered(log, subject=name)
            email.result, email.status = EmailResult(result), EmailStatus(status)
            emails[name] = email.id
        session.commit()
    ids = listed_ids(log.client().get("/maildelivery/").get_data(as_text=True))
    assert set(ids) == {
        emails[n]
        for n in (
            "refused",
            "warning",
            "error",
            "deferred",
            "recipient refused",
            "suppressed",
            "complained",
        )
    }


def test_a_complaint_and_a_refused_recipient_behind_an_open_need_attention(
    log: LogApp,
) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        # the To refused at send time, the Cc opened it: the email is not "opened"
        refused = log.extension.send(
            subject="Refused",
            to=["ann@customer.test"],
            cc=["bob@customer.test"],
            text="Please find the invoice attached.",
        )
        simulate_event(refused, "failed", recipient="ann@customer.test", reason="550 5.1.1")
        simulate_event(refused, "delivered", recipient="bob@customer.test")
        simulate_event(refused, "opened", recipient="bob@customer.test")
        complained = send_delivered(log, subject="Complained")
        simulate_event(complained, "opened", recipient="carl@customer.test")
        simulate_event(complained, "complained", recipient="carl@customer.test")
        # another customer: carl's complaint suppressed his address
        opened = send_delivered(log, subject="Opened", to=["dan@customer.test"])
        simulate_event(opened, "opened", recipient="dan@customer.test")
        ids = {"refused": refused.id, "complained": complained.id, "opened": opened.id}
    html = log.client().get("/maildelivery/").get_data(as_text=True)
    assert listed_ids(html) == [ids["complained"], ids["refused"]]
    assert re.search(r'data-status="failed">.*?Failed</span>', html)
    assert re.search(r'data-result="warning">.*?Warning</span>', html)
    assert re.search(r'data-status="complained">.*?Complained</span>', html)
    assert re.search(r'data-result="delivered">.*?Delivered</span>', html)
    assert 'data-status="opened"' not in html
    html = log.client().get("/maildelivery/?show=all").get_data(as_text=True)
    assert listed_ids(html) == [ids["opened"], ids["complained"], ids["refused"]]


#: The status filter's options, in each language of the pages.
STATUS_OPTIONS = {
    "en": [
        ("", "Any"),
        ("bounced", "Bounced"),
        ("dropped", "Dropped"),
        ("failed", "Failed"),
        ("suppressed", "Suppressed"),
        ("complained", "Complained"),
        ("deferred", "Deferred"),
        ("opened", "Opened"),
    ],
    "fr": [
        ("", "Tous"),
        ("bounced", "Rebondi"),
        ("dropped", "Abandonné"),
        ("failed", "Échec"),
        ("suppressed", "Adresse bloquée"),
        ("complained", "Signalé comme spam"),
        ("deferred", "Différé"),
        ("opened", "Ouvert"),
    ],
}


@pytest.mark.parametrize("language", sorted(STATUS_OPTIONS))
def test_the_status_filter_offers_every_email_status(make_app: AppFactory, language: str) -> None:
    from flask_babel import Babel

    log = make_log_app(make_app)
    Babel(log.app, locale_selector=lambda: language)
    log.viewer.user = ADMIN
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    select = re.search(r'<select name="status">(.*?)</select>', html, re.S)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))
    assert options == STATUS_OPTIONS[language]
    assert {value for value, _ in options} == set(EmailStatus)
    for value, _ in options[1:]:
        html = client.get(f"/maildelivery/?show=all&status={value}").get_data(as_text=True)
        assert f'<option value="{value}" selected>' in html, value


def test_list_empty_states_say_what_the_filter_shows(log: LogApp) -> None:
    log.viewer.user = ADMIN
    client = log.client()
    assert "No email has been sent yet." in client.get("/maildelivery/?show=all").get_data(
        as_text=True
    )
    with log.app.app_context():
        send_delivered(log)
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert 'id="md-empty"' in html
    # the test app's memory transport reports no outcomes: the log claims no delivery
    assert "No email failed when it was handed over. What happened next is not tracked." in html
    html = client.get("/maildelivery/?show=all&subject=nothing-like-this").get_data(as_text=True)
    assert "No email matches these filters." in html
    html = client.get("/maildelivery/?recipient=nobody@").get_data(as_text=True)
    assert "No email needing attention matches these filters." in html


def test_list_filters_by_status_result_and_dates(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        failed = send_failed(log)
        delivered = send_delivered(log)
        old = send_delivered(log, subject="Last year")
        old.sent_at = datetime(2025, 3, 1, 12, tzinfo=UTC)
        session.commit()
        ids = (failed.id, delivered.id, old.id)
        today = datetime.now(UTC).date()
    client = log.client()

    def shown(query: str) -> list[int]:
        response = client.get(f"/maildelivery/?show=all&{query}")
        assert response.status_code == 200, query
        return listed_ids(response.get_data(as_text=True))

    assert shown("status=bounced") == [ids[0]]
    assert shown("result=delivered") == [ids[1], ids[2]]
    assert shown("result=warning") == [ids[0]]
    assert shown("from=2025-03-01&to=2025-03-01") == [ids[2]]
    assert shown("to=2025-02-28") == []
    assert shown(f"from={today - timedelta(days=1)}") == [ids[1], ids[0]]


def test_list_searches_by_recipient_address_and_by_subject(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        a = send_delivered(log, subject="Invoice 100% paid", to=["Ann.Smith@Customer.test"]).id
        b = send_delivered(log, subject="Purchase order", to=["annabel@other.test"]).id
        c = send_delivered(log, subject="Payslip", to=["bob@customer.test"]).id
    client = log.client()

    def shown(query: str) -> list[int]:
        return listed_ids(client.get(f"/maildelivery/?show=all&{query}").get_data(as_text=True))

    assert shown("recipient=ann.smith@customer.test") == [a]  # exact address, any case
    assert shown("recipient=ANN") == [b, a]  # part of an address
    assert shown("recipient=customer.test") == [c, a]  # a domain
    assert shown("recipient=bob%25") == []  # LIKE wildcards are plain characters
    assert shown("subject=ORDER") == [b]  # subject contains, any case
    assert shown("subject=100%25") == [a]
    assert shown("subject=_") == []
    assert shown("recipient=bob@&subject=pay") == [c]


def test_list_refuses_bad_filters_with_a_clear_400(log: LogApp) -> None:
    log.viewer.user = ADMIN
    client = log.client()
    for query, message in (
        (
            "status=lost",
            "status must be one of bounced, dropped, failed, suppressed, complained, deferred, "
            "opened, not",
        ),
        ("result=great", "result must be one of"),
        ("show=some", "show must be"),
        ("from=yesterday", "from must be a date written YYYY-MM-DD"),
        ("from=2026-02-01&to=2026-01-01", "the date range ends before it starts"),
        ("cursor=not-a-cursor", "the page cursor is not valid"),
        ("subject=" + "x" * 400, "subject is longer than 320 characters"),
    ):
        response = client.get(f"/maildelivery/?{query}")
        assert response.status_code == 400, query
        assert message in response.get_data(as_text=True).replace("&#39;", "'"), query


def test_keyset_pages_walk_forward_and_back_without_gaps(make_app: AppFactory) -> None:
    log = make_log_app(make_app, MAILDELIVERY_PAGE_SIZE=2)
    log.viewer.user = ADMIN
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        emails = [send_delivered(log, subject=f"n{i}") for i in range(5)]
        # two emails sent in the same microsecond: the id breaks the tie
        emails[2].sent_at = emails[3].sent_at
        session.commit()
        expected = [e.id for e in sorted(emails, key=lambda e: (e.sent_at, e.id), reverse=True)]
    client = log.client()
    pages: list[list[int]] = []
    url: str | None = "/maildelivery/?show=all"
    html = ""
    while url:
        html = client.get(url).get_data(as_text=True)
        pages.append(listed_ids(html))
        url = cursor_link(html, "next")
    assert pages == [expected[0:2], expected[2:4], expected[4:5]]
    # and back from the last page
    back: list[list[int]] = []
    url = cursor_link(html, "prev")
    while url:
        html = client.get(url).get_data(as_text=True)
        back.append(listed_ids(html))
        url = cursor_link(html, "prev")
    assert back == [expected[2:4], expected[0:2]]
    # the first page reached going back offers the next page again
    assert cursor_link(html, "next") is not None


def test_the_list_never_counts_the_table(log: LogApp) -> None:
    log.viewer.user = ADMIN
    _setup(log)
    statements: list[str] = []
    with log.app.app_context():
        engine = MailDelivery.state(log.app).db.engine

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement.lower())

        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            assert log.client().get("/maildelivery/?show=all").status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
    # one page of emails (each with the count of its own copies), their first addresses,
    # and the failed webhook requests (an index range on the inbox's status)
    assert len(statements) == 3
    assert "limit" in statements[0]
    assert ".resent_from_id = maildelivery_email.id" in statements[0]
    assert "from maildelivery_webhook_inbox" in statements[2]
    assert "where maildelivery_webhook_inbox.status =" in statements[2]
    assert not any("count(*) from maildelivery_email" in s for s in statements)


def test_pages_read_through_the_packages_session_never_the_hosts(log: LogApp) -> None:
    """The pages and the API read through the package's own session: the host's
    ``db.session`` is not even set up for their requests."""
    log.viewer.user = ADMIN
    failed_id, _ = _setup(log)
    host_session_used: list[bool] = []

    @log.app.after_request
    def record(response: Any) -> Any:
        host_session_used.append(MailDelivery.state(log.app).db.session.registry.has())
        return response

    client = log.client()
    for url in (
        "/maildelivery/",
        "/maildelivery/?show=all",
        f"/maildelivery/{failed_id}",
        f"/maildelivery/{failed_id}/body.html",
        "/maildelivery/api/emails",
        f"/maildelivery/api/emails/{failed_id}",
        "/maildelivery/export.csv",
    ):
        assert client.get(url).status_code == 200, url
    assert host_session_used == [False] * 7


# -- the detail page ----------------------------------------------------------------------


def test_detail_shows_facts_copy_and_each_recipients_status_log(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        email = send_failed(
            log,
            reply_to="accounts@acme.test",
            attachments=[("INV-1.pdf", b"%PDF-1.4 data", "application/pdf")],
            related=("invoice", 42),
        ).id
    html = log.client().get(f"/maildelivery/{email}").get_data(as_text=True)
    for text in (
        f"<dd>{email}</dd>",
        "Billing &lt;billing@acme.test&gt;",
        "accounts@acme.test",
        "<dd>memory</dd>",
        '<a id="md-related" href="/invoices/42">invoice 42</a>',
        "INV-1.pdf",
        "application/pdf, 13 B",
        "550 5.1.1 mailbox does not exist",
        "<dd>550</dd>",
        "<dd>hard</dd>",
        'href="/contacts/customer/7/edit"',
        "Please find the invoice attached.",
        "X-MailDelivery-ID",
    ):
        assert text in html, text
    # headers are folded away; the HTML body is framed, sandboxed, with no script allowed
    assert re.search(r"<details class=\"md-fold\">\s*<summary>Headers</summary>", html)
    frame = re.search(r"<iframe[^>]*>", html)
    assert frame is not None
    assert " sandbox " in frame.group(0)
    assert "allow-" not in frame.group(0)
    assert f'src="/maildelivery/{email}/body.html"' in frame.group(0)
    # each recipient's timeline: bob was delivered, ann bounced
    ann = html[html.index('data-address="ann@customer.test"') :]
    assert re.search(r'data-status="bounced">.*?Bounced', ann)
    assert "Resend to failed recipients" in html


def test_detail_of_an_unknown_email_is_404(log: LogApp) -> None:
    log.viewer.user = ADMIN
    assert log.client().get("/maildelivery/999999").status_code == 404
    assert log.client().get("/maildelivery/999999/body.html").status_code == 404


def test_html_body_is_served_under_a_csp_that_loads_nothing_remote(log: LogApp) -> None:
    log.viewer.user = ADMIN
    html = '<p>Hi</p><script>alert(1)</script><img src="https://tracker.example/p.gif">'
    with log.app.app_context():
        email = send_failed(log, html=html).id
        text_only = send_failed(log, html=None).id
    response = log.client().get(f"/maildelivery/{email}/body.html")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == html
    csp = response.headers["Content-Security-Policy"]
    assert csp == BODY_CSP
    assert "default-src 'none'" in csp
    assert "sandbox" in csp
    assert "script-src" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert log.client().get(f"/maildelivery/{text_only}/body.html").status_code == 404


# -- resend -------------------------------------------------------------------------------


def _form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def test_resend_with_own_csrf_token_sends_to_the_fixed_address(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    client = log.client()
    page = client.get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert "csrf" not in log.app.extensions
    # no token, a wrong token: refused, nothing sent
    assert client.post(f"/maildelivery/{email_id}/resend").status_code == 400
    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert _email_count(log.app) == 1
    # the contact record was fixed in the host
    log.viewer.contact_addresses[("customer", "7")] = "ann.fixed@customer.test"
    response = client.post(
        f"/maildelivery/{email_id}/resend", data={"csrf_token": _form_token(page)}
    )
    assert response.status_code == 302
    with log.app.app_context():
        copy = (
            MailDelivery.state(log.app)
            .sessions()
            .scalars(sa.select(Email).where(Email.resent_from_id == email_id))
            .one()
        )
        assert [r.address for r in copy.recipients] == ["ann.fixed@customer.test"]
        assert outbox(log.app)[-1].to[0].address == "ann.fixed@customer.test"
    assert response.headers["Location"] == f"/maildelivery/{copy.id}"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"A copy was sent as record no. {copy.id}." in html
    assert f'href="/maildelivery/{email_id}"' in html  # "copy of" links back
    assert f"Record no. {copy.id}" in client.get(f"/maildelivery/{email_id}").get_data(as_text=True)


def test_resend_delegates_csrf_to_flask_wtf(make_app: AppFactory) -> None:
    from flask_wtf.csrf import CSRFProtect

    extension = MailDelivery()
    app = make_app(extension=extension)
    CSRFProtect(app)
    extension.user_loader(lambda: ADMIN)
    with app.app_context():
        email = extension.send(subject="x", to=["ann@customer.test"], text="x")
        from flask_maildelivery.testing import simulate_event

        simulate_event(email, "dropped", reason="suppressed")
        email_id = email.id
    client = app.test_client()
    page = client.get(f"/maildelivery/{email_id}").get_data(as_text=True)
    with client.session_transaction() as session:
        assert CSRF_SESSION_KEY not in session  # the form carries Flask-WTF's token
    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert _email_count(app) == 1
    # the address is unchanged since it was dropped: the resend needs the confirmation
    response = client.post(
        f"/maildelivery/{email_id}/resend", data={"csrf_token": _form_token(page), "confirm": "1"}
    )
    assert response.status_code == 302
    assert _email_count(app) == 2


def test_resend_without_failed_recipients_is_refused_with_a_message(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_delivered(log).id
    client = log.client()
    page = client.get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert "Resend to failed recipients" not in page
    with client.session_transaction() as session:
        session[CSRF_SESSION_KEY] = "t"
    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "t"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/maildelivery/{email_id}"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Not sent again:" in html
    assert "has no failed recipient to resend to" in html
    assert _email_count(log.app) == 1


def test_resend_of_an_unknown_email_is_404(log: LogApp) -> None:
    log.viewer.user = ADMIN
    client = log.client()
    with client.session_transaction() as session:
        session[CSRF_SESSION_KEY] = "t"
    assert client.post("/maildelivery/424242/resend", data={"csrf_token": "t"}).status_code == 404
    assert client.get("/maildelivery/1/resend").status_code == 405


# -- CSV export ---------------------------------------------------------------------------


def test_csv_export_streams_the_current_filter(make_app: AppFactory) -> None:
    log = make_log_app(make_app, MAILDELIVERY_PAGE_SIZE=2)
    log.viewer.user = ADMIN
    with log.app.app_context():
        failed = send_failed(log, subject="=HYPERLINK(1)").id
        delivered = [send_delivered(log, subject=f"ok {i}").id for i in range(4)]
    client = log.client()
    response = client.get("/maildelivery/export.csv")
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["id", "sent_at", "status", "result", "subject", "sender", "to", "cc", "bcc"]
    assert [r[0] for r in rows[1:]] == [str(failed)]
    assert rows[1][4] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert rows[1][6] == "ann@customer.test (bounced); bob@customer.test (delivered)"
    # every page of the filter, not only the first
    rows = list(
        csv.reader(
            io.StringIO(client.get("/maildelivery/export.csv?show=all").get_data(as_text=True))
        )
    )
    assert [int(r[0]) for r in rows[1:]] == [*reversed(delivered), failed]
    rows = list(
        csv.reader(
            io.StringIO(
                client.get("/maildelivery/export.csv?show=all&subject=ok 3").get_data(as_text=True)
            )
        )
    )
    assert [int(r[0]) for r in rows[1:]] == [delivered[3]]
    assert client.get("/maildelivery/export.csv?status=nope").status_code == 400


# -- templates and translations -----------------------------------------------------------


def test_pages_extend_the_hosts_base_template_and_templates_can_be_overridden(
    make_app: AppFactory,
) -> None:
    log = make_log_app(make_app, MAILDELIVERY_BASE_TEMPLATE="layout.html")
    log.app.jinja_loader = DictLoader(
        {
            "layout.html": "<html><head>{% block head %}<meta name=host>{% endblock %}</head>"
            "<body><nav>Host ERP</nav>{% block content %}{% endblock %}</body></html>",
            "maildelivery/error.html": "host error page: {{ message }}",
        }
    )
    log.viewer.user = ADMIN
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert "<nav>Host ERP</nav>" in html
    assert "<meta name=host>" in html  # super() keeps the host's head
    assert "/maildelivery/static/maildelivery.css" in html
    assert "Email delivery log" in html
    assert (
        client.get("/maildelivery/?status=x")
        .get_data(as_text=True)
        .startswith("host error page: status must be")
    )


def test_pages_are_english_without_flask_babel(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        email = send_failed(log)
        email_sent = email.sent_at
    assert "babel" not in log.app.extensions
    html = log.client().get("/maildelivery/").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Show all emails" in html
    assert email_sent is not None
    assert email_sent.strftime("%b") in html  # "Nov 27, 2026, ..." in English, UTC


def test_pages_follow_the_hosts_locale_selector(make_app: AppFactory) -> None:
    from flask_babel import Babel

    log = make_log_app(make_app)
    locale = {"value": "fr"}
    Babel(
        log.app, locale_selector=lambda: locale["value"], timezone_selector=lambda: "Europe/Paris"
    )
    log.viewer.user = ADMIN
    with log.app.app_context():
        failed = send_failed(log)
        send_delivered(log)
        session = MailDelivery.state(log.app).sessions()
        failed.sent_at = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
        session.commit()
        failed_id = failed.id
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert '<html lang="fr">' in html
    for french in (
        "E-mails à traiter",
        "Historique d'envoi des e-mails",
        "Afficher tous les e-mails",
        "Rebondi",
        "Alerte",
    ):
        assert french in html.replace("&#39;", "'"), french
    assert "16 janv. 2026, 00:30:00" in html  # the viewer's locale and time zone
    html = client.get("/maildelivery/?show=all").get_data(as_text=True)
    assert "Livré" in html
    html = client.get(f"/maildelivery/{failed_id}").get_data(as_text=True)
    assert "Journal des statuts" in html
    locale["value"] = "en"
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert "Show all emails" in html
    # badges are kept per locale: the French ones do not follow the viewer to English
    assert "Bounced" in html
    assert "Rebondi" not in html


def test_url_prefix_moves_pages_and_api(make_app: AppFactory) -> None:
    log = make_log_app(make_app, MAILDELIVERY_URL_PREFIX="/admin/mail/")
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    client = log.client()
    html = client.get("/admin/mail/").get_data(as_text=True)
    assert listed_ids(html) == [email_id]
    assert f'href="/admin/mail/{email_id}"' in html
    assert "/admin/mail/static/maildelivery.css" in html
    assert client.get(f"/admin/mail/api/emails/{email_id}").status_code == 200
    assert client.get("/maildelivery/").status_code == 404


def test_the_hosts_own_translations_stay_in_the_hosts_layout(make_app: AppFactory) -> None:
    from flask_babel import Babel

    log = make_log_app(make_app, MAILDELIVERY_BASE_TEMPLATE="layout.html")
    Babel(log.app, locale_selector=lambda: "fr")
    log.app.jinja_loader = DictLoader(
        {
            "layout.html": "<nav>{{ _('Invoices') }}</nav>{% block head %}{% endblock %}"
            "{% block content %}{% endblock %}"
        }
    )
    log.viewer.user = ADMIN
    html = log.client().get("/maildelivery/").get_data(as_text=True)
    # the host's `_` is the host's (no catalog here: the text stays as written), the
    # package's texts come from the package's catalog
    assert "<nav>Invoices</nav>" in html
    assert "Afficher tous les e-mails" in html


def test_export_reads_in_keyset_batches_without_gaps(log: LogApp) -> None:
    from flask_maildelivery.views import queries

    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        emails = [send_delivered(log, subject=f"n{i}") for i in range(5)]
        emails[1].sent_at = emails[2].sent_at  # a tie on sent_at across a batch boundary
        session.commit()
        expected = [e.id for e in sorted(emails, key=lambda e: (e.sent_at, e.id), reverse=True)]
        exported = [
            email.id
            for email, _ in queries.iter_emails(
                session, queries.LogFilter(show=queries.SHOW_ALL), None, batch_size=2
            )
        ]
    assert exported == expected
