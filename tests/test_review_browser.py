"""Review and resend in a real browser (Playwright driving Debian's Chromium): from the
attention list to the email, marked reviewed; a resend to an unchanged address, confirmed.

The app is served by werkzeug from a thread on 127.0.0.1, on SQLite (storage runs on every
database in test_review_and_resend.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from flask_maildelivery.testing import simulate_event

from .live_server import browser_log_app, served

pytestmark = pytest.mark.browser


@dataclass
class LiveApp:
    """The served app, its base URL and its two failed emails."""

    base_url: str
    to_review: int
    to_resend: int


def _build_app(database: Path) -> tuple[Flask, int, int]:
    app, mail_delivery = browser_log_app("maildelivery_review_browser_test", database)
    with app.app_context():
        emails = []
        for number, address in (
            ("INV-0050", "dan@customer.test"),
            ("INV-0051", "eve@customer.test"),
        ):
            email = mail_delivery.send(
                subject=f"Invoice {number}", to=[address], text=f"Invoice {number} attached."
            )
            simulate_event(
                email,
                "bounced",
                recipient=address,
                reason=f"550 5.1.1 <{address}>: mailbox does not exist",
                smtp_code="550",
                bounce_type="hard",
            )
            emails.append(email.id)
    return app, emails[0], emails[1]


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app, to_review, to_resend = _build_app(tmp_path_factory.mktemp("review") / "log.db")
    with served(app) as base_url:
        yield LiveApp(base_url, to_review, to_resend)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _row(page: Page, email_id: int) -> Any:
    return page.locator(f'#md-log tbody tr[data-email-id="{email_id}"]')


def test_attention_list_to_detail_to_review_and_back(
    live_app: LiveApp, page: Page, screenshots: Path
) -> None:
    page.goto(f"{live_app.base_url}/maildelivery/")
    expect(_row(page, live_app.to_review)).to_be_visible()
    _row(page, live_app.to_review).get_by_role("link", name="Invoice INV-0050").click()
    page.wait_for_url(f"**/maildelivery/{live_app.to_review}")
    expect(page.locator("#md-reviewed")).to_contain_text("Not reviewed")

    page.get_by_role("button", name="Mark reviewed").click()
    page.wait_for_url(f"**/maildelivery/{live_app.to_review}")
    expect(page.locator(".md-flash")).to_contain_text("Marked reviewed")
    expect(page.locator("#md-reviewed")).to_contain_text("Reviewed by admin on")
    expect(page.get_by_role("button", name="Undo review")).to_be_visible()
    page.screenshot(path=str(screenshots / "log-reviewed.png"), full_page=True)

    page.get_by_role("link", name="← Delivery log").click()
    expect(_row(page, live_app.to_review)).to_have_count(0)
    page.get_by_role("link", name="Show all emails").click()
    expect(_row(page, live_app.to_review).locator('[data-marker="reviewed"]')).to_have_text(
        "Reviewed"
    )

    # undo: back on the attention list
    page.goto(f"{live_app.base_url}/maildelivery/{live_app.to_review}")
    page.get_by_role("button", name="Undo review").click()
    expect(page.get_by_role("button", name="Mark reviewed")).to_be_visible()
    page.goto(f"{live_app.base_url}/maildelivery/")
    expect(_row(page, live_app.to_review)).to_be_visible()


def test_resend_to_an_unchanged_address_asks_first(
    live_app: LiveApp, page: Page, screenshots: Path
) -> None:
    page.goto(f"{live_app.base_url}/maildelivery/{live_app.to_resend}")
    page.get_by_role("button", name="Resend to failed recipients").click()
    page.wait_for_url(f"**/maildelivery/{live_app.to_resend}?resend=confirm")
    question = page.locator("#md-confirm-resend")
    expect(question.get_by_role("heading", name="Resend to the same address?")).to_be_visible()
    expect(question).to_contain_text("eve@customer.test")
    expect(question).to_contain_text("550 5.1.1 <eve@customer.test>: mailbox does not exist")
    page.screenshot(path=str(screenshots / "log-resend-confirm.png"), full_page=True)

    question.get_by_role("button", name="Resend to the same address").click()
    expect(page).not_to_have_url(f"{live_app.base_url}/maildelivery/{live_app.to_resend}")
    expect(page.locator(".md-flash")).to_contain_text("A copy was sent as record no.")
    expect(page.locator(".md-facts")).to_contain_text(f"Record no. {live_app.to_resend}")

    # a second resend while the copy is on its way is refused
    page.goto(f"{live_app.base_url}/maildelivery/{live_app.to_resend}")
    expect(page.locator("#md-copies")).to_be_visible()
    page.get_by_role("button", name="Resend to failed recipients").click()
    page.wait_for_url(f"**/maildelivery/{live_app.to_resend}")
    expect(page.locator(".md-flash--error")).to_contain_text("is still on its way")


def test_review_and_confirmation_speak_french(live_app: LiveApp, browser: Browser) -> None:
    context = browser.new_context(locale="fr-FR")
    try:
        page = context.new_page()
        page.goto(f"{live_app.base_url}/maildelivery/{live_app.to_review}?resend=confirm")
        expect(page.get_by_role("button", name="Marquer comme vérifié")).to_be_visible()
        expect(page.get_by_role("heading", name="Renvoyer à la même adresse ?")).to_be_visible()
    finally:
        context.close()
