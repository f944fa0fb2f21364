"""The delivery log's JSON API on every database: permissions, tenants, filters, cursor
pagination, one email with its recipients and events, and clear JSON errors."""

from __future__ import annotations

import pytest

from .conftest import AppFactory
from .log_helpers import ADMIN, CLERK, LogApp, make_log_app, send_delivered, send_failed

API = "/maildelivery/api/emails"


@pytest.fixture
def log(make_app: AppFactory) -> LogApp:
    """An app with the API; the acting user is set per test (default: nobody)."""
    return make_log_app(make_app)


def test_anonymous_gets_401_and_no_data(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    client = log.client()
    for url in (API, f"{API}/{email_id}"):
        response = client.get(url)
        assert response.status_code == 401
        assert "subject" not in response.get_data(as_text=True)
        assert response.get_json() == {"error": response.get_json()["error"]}


def test_flask_login_can_answer_401_for_the_api_and_redirect_for_pages(
    make_app: AppFactory,
) -> None:
    log = make_log_app(make_app, flask_login=True)
    log.app.login_manager.blueprint_login_views = {"maildelivery_api": None}  # type: ignore[attr-defined]
    client = log.client()
    assert client.get(API).status_code == 401
    assert client.get("/maildelivery/").status_code == 302


def test_signed_in_without_permission_gets_403(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    log.viewer.user = CLERK
    client = log.client()
    for url in (API, f"{API}/{email_id}"):
        response = client.get(url)
        assert response.status_code == 403
        assert "error" in response.get_json()


def test_permission_loader_grants_the_api(log: LogApp) -> None:
    log.extension.permission_loader(lambda user: user.id == "clerk")
    log.viewer.user = CLERK
    assert log.client().get(API).status_code == 200


def test_another_tenants_email_is_404(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        log.viewer.tenant = "globex"
        theirs = send_failed(log).id
        log.viewer.tenant = "acme"
        ours = send_failed(log).id
    client = log.client()
    response = client.get(f"{API}/{theirs}")
    assert response.status_code == 404
    assert response.get_json() == {"error": f"no email {theirs}"}
    assert client.get(f"{API}/{ours}").status_code == 200
    assert [i["id"] for i in client.get(f"{API}?show=all").get_json()["items"]] == [ours]


def test_list_is_failed_first_with_the_same_filters_as_the_page(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        failed = send_failed(log, subject="Invoice A").id
        delivered = send_delivered(log, subject="Order B", to=["zoe@vendor.test"]).id
    client = log.client()
    body = client.get(API).get_json()
    assert [i["id"] for i in body["items"]] == [failed]
    item = body["items"][0]
    assert item["result"] == "warning"
    assert item["status"] == "bounced"
    assert item["to"] == ["ann@customer.test", "bob@customer.test"]
    assert item["recipient_count"] == 2
    assert item["url"] == f"{API}/{failed}"
    assert item["sent_at"].endswith("+00:00")
    assert body["next_cursor"] is None
    assert body["previous_cursor"] is None

    def ids(query: str) -> list[int]:
        response = client.get(f"{API}?{query}")
        assert response.status_code == 200, query
        return [i["id"] for i in response.get_json()["items"]]

    assert ids("show=all") == [delivered, failed]
    assert ids("show=all&recipient=ZOE@") == [delivered]
    assert ids("show=all&subject=invoice") == [failed]
    assert ids("show=all&result=delivered") == [delivered]
    assert ids("show=all&status=bounced") == [failed]
    assert ids("show=all&to=2000-01-01") == []


def test_list_pages_by_cursor(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        sent = [send_delivered(log, subject=f"n{i}").id for i in range(5)]
    client = log.client()
    seen: list[int] = []
    url = f"{API}?show=all&limit=2"
    pages = 0
    while True:
        body = client.get(url).get_json()
        seen += [i["id"] for i in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        url = f"{API}?show=all&limit=2&cursor={body['next_cursor']}"
    assert seen == list(reversed(sent))
    assert pages == 3
    back = client.get(f"{API}?show=all&limit=2&cursor={body['previous_cursor']}").get_json()
    assert [i["id"] for i in back["items"]] == list(reversed(sent))[2:4]


def test_bad_input_gets_a_json_400(log: LogApp) -> None:
    log.viewer.user = ADMIN
    client = log.client()
    for query, message in (
        ("status=lost", "status must be one of"),
        ("cursor=%%%", "the page cursor is not valid"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=many", "limit must be a whole number"),
        ("limit=501", "limit must be a whole number"),
        ("from=2026-13-01", "from must be a date"),
    ):
        response = client.get(f"{API}?{query}")
        assert response.status_code == 400, query
        assert message in response.get_json()["error"], query


def test_one_email_with_recipients_events_and_links(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        email = send_failed(
            log,
            related=("invoice", 42),
            attachments=[("INV.pdf", b"12345", "application/pdf")],
            metadata={"invoice": "INV-1"},
        )
        email_id, public_id = email.id, email.public_id
    body = log.client().get(f"{API}/{email_id}").get_json()
    assert body["id"] == email_id
    assert body["public_id"] == public_id
    assert body["result"] == "warning"
    assert body["status"] == "bounced"
    assert body["sender"] == "Billing <billing@acme.test>"
    assert body["html_body"] == "<p>Please find the invoice attached.</p>"
    assert body["attachments"] == [
        {"filename": "INV.pdf", "content_type": "application/pdf", "size": 5}
    ]
    assert body["metadata"] == {"invoice": "INV-1"}
    assert body["headers"]["X-MailDelivery-ID"] == public_id
    assert body["related_url"] == "/invoices/42"
    ann, bob = body["recipients"]
    assert ann["address"] == "ann@customer.test"
    assert ann["status"] == "bounced"
    assert ann["reason"] == "550 5.1.1 mailbox does not exist"
    assert ann["smtp_code"] == "550"
    assert ann["bounce_type"] == "hard"
    assert ann["contact_url"] == "/contacts/customer/7/edit"
    assert [e["type"] for e in ann["events"]] == ["bounced"]
    assert ann["events"][0]["occurred_at"].endswith("+00:00")
    assert bob["status"] == "delivered"
    assert bob["contact_url"] is None
    assert [e["type"] for e in bob["events"]] == ["delivered"]
    assert body["other_events"] == []


def test_unknown_email_is_a_json_404(log: LogApp) -> None:
    log.viewer.user = ADMIN
    response = log.client().get(f"{API}/123456")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no email 123456"}
