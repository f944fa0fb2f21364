"""The example ERP end to end in Chromium: the real stack (local SMTP server, SendGrid
simulator posting signed webhooks, the app on a loopback port) and a user's whole fix loop.

Screenshots of the ERP go to the ``screenshots`` folder (``scripts/screenshots`` refreshes
the documentation's copies in ``docs/_static/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

from example_app.simulator import SimulatorTiming
from example_app.stack import ExampleStack, start_stack

pytestmark = pytest.mark.browser

# short delays so the whole story (bounce, deferral, delivery) plays in seconds
FAST = SimulatorTiming(delivery=0.2, open=0.3, deferral=1.0, late_bounce=2.0, retry=0.3)
WAIT_MS = 20_000


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[ExampleStack]:
    """The example as ``python -m example_app`` runs it, on free ports and a fresh SQLite file."""
    running = start_stack(
        port=0,
        timing=FAST,
        instance_path=tmp_path,
        environ={},
        config={"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'erp.db'}"},
        demo_emails=True,
    )
    running.serve_in_background()
    try:
        yield running
    finally:
        running.stop()


def visit(page: Page, url: str) -> Response:
    """Navigate to ``url`` and return the main resource's response (Playwright gives none for
    a same-document navigation, which none of these pages is)."""
    response = page.goto(url)
    assert response is not None, f"no response for {url}"
    return response


def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    """A browser context of its own (no cookies shared) and a page in it."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    return context, context.new_page()


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(base + "login")
    page.fill("#username", username)
    page.fill("#password", "demo")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Invoices")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def reload_until(page: Page, selector: str) -> None:
    """Reload until ``selector`` matches (the provider's webhooks arrive asynchronously)."""
    waited = 0
    while not page.locator(selector).count():
        if waited > WAIT_MS:
            raise AssertionError(f"{selector!r} never matched on {page.url}")
        page.wait_for_timeout(250)
        waited += 250
        page.reload()


def test_clerk_sends_admin_finds_the_bounce_fixes_the_contact_and_resends(
    stack: ExampleStack, browser: Browser, screenshots: Path
) -> None:
    base = stack.url
    context, page = new_page(browser)

    # the clerk emails three invoices; Initech's address bounces
    sign_in(page, base, "acme.clerk")
    for number in ("INV-1008", "INV-1009", "INV-1010"):
        page.get_by_label(f"Select {number}").check()
    page.get_by_role("button", name="Email selected invoices").click()
    expect(page.locator(".flashes")).to_contain_text(
        "Emailed 3 invoice(s): INV-1008, INV-1009, INV-1010."
    )
    # the provider's events arrive through the signed webhook; a signal receiver shows the
    # outcome on each invoice
    reload_until(page, 'tr[data-invoice="INV-1008"] .email-outcome :text-is("bounced")')
    reload_until(page, 'tr[data-invoice="INV-1010"] .email-outcome :text-is("delivered")')
    reload_until(page, 'tr[data-invoice="INV-1009"] .email-outcome :text-is("opened")')
    # the demo emails of the first start have played out too, the delayed bounce included
    reload_until(page, 'tr[data-invoice="INV-1005"] .email-outcome :text-is("bounced")')
    reload_until(page, 'tr[data-invoice="INV-1004"] .email-outcome :text-is("delivered")')
    page.screenshot(path=str(screenshots / "example-invoices.png"))
    page.goto(base + "contacts?kind=customer")
    expect(page.locator('tr[data-contact="Initech"]')).to_contain_text("Address bounced")
    page.screenshot(path=str(screenshots / "example-contacts-bounced.png"))

    # the clerk has no access to the log
    assert visit(page, base + "maildelivery/").status == 403
    page.goto(base + "invoices")
    expect(page.get_by_role("link", name="Email delivery log")).to_have_count(0)
    sign_out(page)

    # the administrator sees the bounced email first
    sign_in(page, base, "acme.admin")
    page.get_by_role("link", name="Email delivery log").click()
    first = page.locator("#md-log tbody tr").first
    expect(first).to_contain_text("Invoice INV-1008 from Acme Supplies")
    expect(first.locator('[data-status="bounced"]')).to_be_visible()
    page.screenshot(path=str(screenshots / "example-log.png"), full_page=True)
    # the demo data shows every kind of outcome
    page.get_by_role("link", name="Show all emails").click()
    for result in ("failed", "warning", "delivered"):
        expect(page.locator(f'#md-log [data-result="{result}"]').first).to_be_visible()
    for status in ("bounced", "dropped", "failed", "deferred", "opened"):
        expect(page.locator(f'#md-log [data-status="{status}"]').first).to_be_visible()
    # an invoice the provider never reported on (sent two days ago) is overdue, and the one
    # first sent to a wrong address is resolved once its corrected copy is delivered
    expect(page.locator('#md-log [data-overdue="1"]')).to_have_count(1)
    reload_until(page, '#md-log [data-marker="resolved"]')
    page.goto(base + "maildelivery/")
    first = page.locator("#md-log tbody tr").first
    first.get_by_role("link", name="Invoice INV-1008 from Acme Supplies").click()
    detail_url = page.url
    bounced = page.locator('article.md-recipient[data-address="initech@bounce.example"]')
    expect(bounced.locator('[data-status="bounced"]').first).to_be_visible()
    expect(bounced).to_contain_text("550 5.1.1")
    expect(
        page.locator('article.md-recipient[data-address="accounting@acme.example"]')
    ).to_be_visible()

    # the contact link opens Initech's edit form; fix the address
    bounced.locator("a.md-contact-link").click()
    expect(page).to_have_url(re.compile(r"/contacts/\d+/edit\?next=/maildelivery/\d+$"))
    expect(page.get_by_role("heading", name="Edit customer Initech")).to_be_visible()
    expect(page.locator(".flag")).to_contain_text("initech@bounce.example")
    page.fill("#email", "ap@initech.example")
    page.get_by_role("button", name="Save").click()
    # saved, back on the email; the contacts list shows the new address, unflagged
    expect(page).to_have_url(detail_url)
    page.goto(base + "contacts?kind=customer")
    expect(page.locator('tr[data-contact="Initech"]')).to_contain_text("ap@initech.example")
    expect(page.locator('tr[data-contact="Initech"]')).not_to_contain_text("Address bounced")

    # resend from the detail page: the copy goes to the corrected address and ends delivered
    page.goto(detail_url)
    page.get_by_role("button", name=re.compile("Resend", re.I)).click()
    # the copy is a new record, linked to the first one
    expect(page).not_to_have_url(detail_url)
    expect(page).to_have_url(re.compile(r"/maildelivery/\d+$"))
    expect(page.locator(".md-facts")).to_contain_text("Copy of")
    expect(page.locator('article.md-recipient[data-address="ap@initech.example"]')).to_be_visible()
    assert page.locator('article.md-recipient[data-address="initech@bounce.example"]').count() == 0
    copy_url = page.url
    assert copy_url != detail_url
    reload_until(page, '.md-facts [data-result="delivered"]')
    page.goto(base + "invoices")
    reload_until(page, 'tr[data-invoice="INV-1008"] .email-outcome :text-is("delivered")')
    sign_out(page)

    # the other company's administrator sees none of Acme's emails
    sign_in(page, base, "globex.admin")
    page.goto(base + "maildelivery/?show=all")
    expect(page.locator("body")).not_to_contain_text("INV-1008")
    expect(page.locator("body")).not_to_contain_text("Acme Supplies <billing@acme.example>")
    assert visit(page, detail_url).status == 404
    assert visit(page, copy_url).status == 404
    context.close()


def test_french_log_and_a_contact_fixed_from_a_failed_email_returns_to_it(
    stack: ExampleStack, browser: Browser, screenshots: Path
) -> None:
    base = stack.url
    context, page = new_page(browser)
    sign_in(page, base, "acme.admin")

    # the switch in the header: the delivery log in French, the choice kept
    page.get_by_role("button", name="Français").click()
    expect(page).to_have_url(base + "invoices")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.get_by_role("link", name="Email delivery log").click()
    expect(page.get_by_role("link", name="Afficher tous les e-mails")).to_be_visible()
    expect(page.get_by_role("button", name="Filtrer")).to_be_visible()
    expect(page.get_by_role("button", name="Français")).to_have_attribute("aria-pressed", "true")
    page.screenshot(path=str(screenshots / "example-log-fr.png"), full_page=True)

    # Vandelay's invoice was refused by the mail server: open it, then its contact record
    page.get_by_role("link", name="Invoice INV-1006 from Acme Supplies").click()
    expect(page).to_have_url(re.compile(r"/maildelivery/\d+$"))
    detail_url = page.url
    refused = page.locator('article.md-recipient[data-address="vandelay@refused.example"]')
    refused.locator("a.md-contact-link").click()
    expect(page).to_have_url(re.compile(r"/contacts/\d+/edit\?next=/maildelivery/\d+$"))
    expect(page.get_by_role("heading", name="Edit customer Vandelay Industries")).to_be_visible()
    page.fill("#email", "ap@vandelay.example")
    page.get_by_role("button", name="Save").click()

    # saved, back on the email, still in French, ready to resend to the corrected address
    expect(page).to_have_url(detail_url)
    expect(page.locator(".flashes")).to_contain_text("Vandelay Industries saved.")
    expect(page.get_by_role("button", name="Renvoyer aux destinataires en échec")).to_be_visible()

    # and English again, on the same page
    page.get_by_role("button", name="English").click()
    expect(page).to_have_url(detail_url)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Resend to failed recipients")).to_be_visible()
    assert visit(page, base + "favicon.ico").status == 200
    context.close()
