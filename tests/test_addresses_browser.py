"""The addresses page in a real browser (Playwright driving Debian's Chromium): from the
suppressed address to the host's contact record, corrected there, and the next invoice goes
out; or the suppression lifted on the page, and the next send goes to the address again.

The app is served by werkzeug from a thread on 127.0.0.1, on SQLite (storage runs on every
database in test_suppression.py and test_addresses_pages.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask, redirect, request
from markupsafe import escape
from playwright.sync_api import Browser, Page, expect
from werkzeug.wrappers import Response

from flask_maildelivery import MailDelivery
from flask_maildelivery.testing import outbox, simulate_event

from .live_server import browser_log_app, served

pytestmark = pytest.mark.browser


@dataclass
class LiveApp:
    base_url: str
    app: Flask
    mail_delivery: MailDelivery
    #: customer id -> address, as the host's customer table holds it
    customers: dict[str, str]


def _build_app(database: Path) -> LiveApp:
    app, mail_delivery = browser_log_app("maildelivery_addresses_browser_test", database)
    customers = {"7": "ann@old-customer.test", "8": "bob@customer.test"}
    mail_delivery.contact_url_loader(lambda kind, id_: f"/customers/{id_}/edit")

    def send_invoice(customer_id: str, number: str) -> int:
        address = customers[customer_id]
        email = mail_delivery.send(
            subject=f"Invoice {number}",
            to=[address],
            text=f"Invoice {number} attached.",
            contacts={address: ("customer", customer_id)},
        )
        return email.id

    @app.route("/customers/<customer_id>/edit", methods=["GET", "POST"])
    def edit_customer(customer_id: str) -> str | Response:
        if request.method == "POST":
            customers[customer_id] = request.form["email"]
            number = send_invoice(customer_id, "INV-0061")
            return redirect(f"/customers/{customer_id}/edit?sent={number}")
        health = mail_delivery.address_health(customers[customer_id])
        warning = (
            f'<p id="warning">This address is {health.state}: {escape(health.last_failure_reason)}</p>'
            if health.state != "ok"
            else ""
        )
        sent = request.args.get("sent")
        return (
            f"<h1>Customer {customer_id}</h1>{warning}"
            + (f'<p id="sent">Invoice sent as record no. {escape(sent)}</p>' if sent else "")
            + f'<form method="post"><label>Email <input name="email" value="{escape(customers[customer_id])}"></label>'
            '<button type="submit">Save and send the invoice</button></form>'
        )

    with app.app_context():
        for customer_id in customers:
            email = mail_delivery.send(
                subject="Invoice INV-0060",
                to=[customers[customer_id]],
                text="Invoice INV-0060 attached.",
                contacts={customers[customer_id]: ("customer", customer_id)},
            )
            simulate_event(
                email,
                "bounced",
                reason="550 5.1.1 mailbox does not exist",
                smtp_code="550",
                bounce_type="hard",
            )
    return LiveApp("", app, mail_delivery, customers)


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    live = _build_app(tmp_path_factory.mktemp("addresses") / "log.db")
    with served(live.app) as base_url:
        live.base_url = base_url
        yield live


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _last_sent(live: LiveApp) -> list[str]:
    with live.app.app_context():
        return outbox(live.app)[-1].envelope_recipients


def test_addresses_page_to_contact_record_fixed_and_the_next_send_goes_out(
    live_app: LiveApp, page: Page, screenshots: Path
) -> None:
    page.goto(f"{live_app.base_url}/maildelivery/")
    page.get_by_role("link", name="Addresses with problems").click()
    row = page.locator('#md-addresses tr[data-address="ann@old-customer.test"]')
    expect(row.locator('[data-state="suppressed"]')).to_have_text("Suppressed")
    expect(row).to_contain_text("550 5.1.1 mailbox does not exist")
    page.screenshot(path=str(screenshots / "log-addresses.png"), full_page=True)

    # a send to the suppressed address does not go out
    with live_app.app.app_context():
        sent_before = len(outbox(live_app.app))
        blocked = live_app.mail_delivery.send(
            subject="Reminder", to=["ann@old-customer.test"], text="Reminder."
        )
        assert len(outbox(live_app.app)) == sent_before
        assert blocked.recipients[0].status == "suppressed"

    row.get_by_role("link", name="Edit the contact record").click()
    page.wait_for_url("**/customers/7/edit")
    expect(page.locator("#warning")).to_contain_text("This address is suppressed")
    page.get_by_label("Email").fill("ann@customer.test")
    page.get_by_role("button", name="Save and send the invoice").click()
    expect(page.locator("#sent")).to_contain_text("Invoice sent as record no.")
    expect(page.locator("#warning")).to_have_count(0)
    assert _last_sent(live_app) == ["ann@customer.test"]


def test_lift_on_the_addresses_page_and_the_next_send_goes_out(
    live_app: LiveApp, page: Page
) -> None:
    page.goto(f"{live_app.base_url}/maildelivery/addresses?state=suppressed")
    row = page.locator('#md-addresses tr[data-address="bob@customer.test"]')
    row.get_by_role("button", name="Lift suppression").click()
    expect(page.locator(".md-flash")).to_contain_text(
        "The suppression of bob@customer.test was lifted"
    )
    expect(page.locator('#md-addresses tr[data-address="bob@customer.test"]')).to_have_count(0)
    page.goto(f"{live_app.base_url}/maildelivery/addresses")
    expect(page.locator('tr[data-address="bob@customer.test"] .md-lifted')).to_contain_text(
        "lifted by admin on"
    )
    page.goto(f"{live_app.base_url}/customers/8/edit")
    page.get_by_role("button", name="Save and send the invoice").click()
    expect(page.locator("#sent")).to_contain_text("Invoice sent as record no.")
    assert _last_sent(live_app) == ["bob@customer.test"]


def test_addresses_page_speaks_french(live_app: LiveApp, browser: Browser) -> None:
    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(f"{live_app.base_url}/maildelivery/addresses")
        expect(page.get_by_role("heading", name="Adresses en échec")).to_be_visible()
    finally:
        context.close()
