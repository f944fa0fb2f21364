"""The addresses page and its JSON API: worst first, keyset pages, tenant scope, the
contact link, the lift action (CSRF, action permission), the health on the detail page,
English and French."""

from __future__ import annotations

import re

import pytest

from flask_maildelivery.testing import simulate_event

from .conftest import AppFactory
from .log_helpers import ADMIN, CLERK, LogApp, User, csrf_client, make_log_app, send_failed

AUDITOR = User("auditor", is_admin=True)
PAGE = "/maildelivery/addresses"
API = "/maildelivery/api/addresses"


@pytest.fixture
def log(make_app: AppFactory) -> LogApp:
    log = make_log_app(make_app, MAILDELIVERY_PAGE_SIZE=2)
    log.viewer.user = ADMIN
    log.extension.action_permission_loader(lambda user: user.id != AUDITOR.id)
    return log


def _listed(html: str) -> list[str]:
    return re.findall(r'<tr data-address="([^"]+)"', html)


def _fill(log: LogApp) -> None:
    """ann: suppressed (hard bounce); dora: 2 soft bounces; eve: 1 soft bounce; carl:
    delivered only; all for the tenant ``None``. tenant ``b``: zed suppressed."""
    with log.app.app_context():
        send_failed(log, to=["ann@customer.test", "carl@customer.test"])
        for _ in range(2):
            email = log.extension.send(subject="Reminder", to=["dora@customer.test"], text="x")
            simulate_event(email, "bounced", bounce_type="soft", reason="452 mailbox full")
        email = log.extension.send(
            subject="Reminder",
            to=["eve@customer.test"],
            text="x",
            contacts={"eve@customer.test": ("vendor", 4)},
        )
        simulate_event(email, "bounced", bounce_type="soft", reason="452 mailbox full")
        send_failed(log, to=["zed@customer.test", "carl@customer.test"], tenant_id="b")


def test_worst_first_with_keyset_pages_and_filters(log: LogApp) -> None:
    _fill(log)
    client = csrf_client(log)
    first = client.get(PAGE).get_data(as_text=True)
    assert _listed(first) == ["ann@customer.test", "dora@customer.test"]
    assert 'href="/contacts/customer/7/edit"' in first  # ann's contact record
    assert "550 5.1.1 mailbox does not exist" in first
    assert "Lift suppression" in first
    next_link = re.search(r'<a rel="next"[^>]*href="([^"]+)"', first)
    assert next_link is not None
    second = client.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert _listed(second) == ["eve@customer.test"]
    assert 'rel="next"' not in second
    suppressed = client.get(f"{PAGE}?state=suppressed").get_data(as_text=True)
    assert _listed(suppressed) == ["ann@customer.test"]
    failing = client.get(f"{PAGE}?state=failing&contact_type=vendor").get_data(as_text=True)
    assert _listed(failing) == ["eve@customer.test"]
    # the other tenant's addresses stay with it
    log.viewer.tenant = "b"
    assert _listed(client.get(PAGE).get_data(as_text=True)) == ["zed@customer.test"]


@pytest.mark.parametrize(
    "query",
    ["state=gone", "cursor=not-a-cursor", "cursor=MnwxfDE", f"contact_type={'x' * 65}"],
)
def test_bad_filters_are_a_clear_400(log: LogApp, query: str) -> None:
    response = csrf_client(log).get(f"{PAGE}?{query}")
    assert response.status_code == 400
    api = csrf_client(log).get(f"{API}?{query}")
    assert api.status_code == 400
    assert api.get_json()["error"]


def test_permissions_follow_the_log(log: LogApp) -> None:
    _fill(log)
    log.viewer.user = CLERK
    assert csrf_client(log).get(PAGE).status_code == 403
    assert csrf_client(log).get(f"{API}/ann@customer.test").status_code == 403
    log.viewer.user = None
    assert csrf_client(log).get(PAGE).status_code == 401


def test_lift_needs_csrf_and_the_action_permission_and_is_recorded(log: LogApp) -> None:
    _fill(log)
    client = csrf_client(log)
    form = {"address": "ann@customer.test", "csrf_token": "token"}
    assert client.post(f"{PAGE}/lift", data={"address": "ann@customer.test"}).status_code == 400
    log.viewer.user = AUDITOR
    assert "Lift suppression" not in client.get(PAGE).get_data(as_text=True)
    assert client.post(f"{PAGE}/lift", data=form).status_code == 403
    with log.app.app_context():
        assert log.extension.address_health("ann@customer.test").suppressed
    log.viewer.user = ADMIN
    response = client.post(f"{PAGE}/lift", data=form)
    assert response.status_code == 302
    assert response.headers["Location"] == PAGE
    page = client.get(f"{PAGE}?contact_type=customer").get_data(as_text=True)
    assert "The suppression of ann@customer.test was lifted" in page
    assert _listed(page) == ["ann@customer.test"]
    assert "lifted by admin on" in page
    with log.app.app_context():
        health = log.extension.address_health("ann@customer.test")
    assert (health.suppressed, health.lifted_by, health.state) == (False, "admin", "failing")
    # again: nothing to lift, said plainly
    client.post(f"{PAGE}/lift", data=form)
    assert "ann@customer.test is not suppressed" in client.get(PAGE).get_data(as_text=True)


def test_the_api_lists_and_reads_addresses(log: LogApp) -> None:
    _fill(log)
    client = csrf_client(log)
    data = client.get(f"{API}?limit=1").get_json()
    (item,) = data["items"]
    assert item["address"] == "ann@customer.test"
    assert item["state"] == "suppressed"
    assert item["hard_bounces"] == 1
    assert item["contact_url"] == "/contacts/customer/7/edit"
    assert item["last_failure_url"].startswith("/maildelivery/api/emails/")
    rest = client.get(f"{API}?limit=5&cursor={data['next_cursor']}").get_json()
    assert [i["address"] for i in rest["items"]] == ["dora@customer.test", "eve@customer.test"]
    assert rest["next_cursor"] is None
    one = client.get(f"{API}/Dora@Customer.test").get_json()
    assert (one["state"], one["soft_bounces"], one["suppressed"]) == ("failing", 2, False)
    unknown = client.get(f"{API}/new@customer.test").get_json()
    assert (unknown["state"], unknown["hard_bounces"], unknown["last_failure_at"]) == (
        "ok",
        0,
        None,
    )
    log.viewer.tenant = "b"
    assert client.get(f"{API}/ann@customer.test").get_json()["state"] == "ok"


def test_the_detail_page_shows_each_recipients_health(log: LogApp) -> None:
    _fill(log)
    with log.app.app_context():
        email = log.extension.send(
            subject="Invoice INV-9", to=["ann@customer.test", "dora@customer.test"], text="x"
        )
        email_id = email.id
    page = csrf_client(log).get(f"/maildelivery/{email_id}").get_data(as_text=True)
    health = re.findall(r'<dd class="md-address-health" data-state="(\w+)">\s*([^<]*)', page)
    assert [(state, text.split(",")[0]) for state, text in health] == [
        ("suppressed", "bounced once"),
        ("failing", "bounced 2 times"),
    ]
    assert "Suppressed since" in page


def test_french(log: LogApp) -> None:
    from flask_babel import Babel

    Babel(log.app, locale_selector=lambda: "fr")
    _fill(log)
    page = csrf_client(log).get(PAGE).get_data(as_text=True).replace("&#39;", "'")
    assert "Adresses en échec" in page
    assert "Lever la suppression" in page
