"""The pages' layout and the detail page's live refresh in a real browser (Playwright driving
Debian's Chromium): at a desktop width (1366 px) and a phone width (390 px), no page scrolls
sideways and nothing sticks out of its card, with the long addresses, subjects and error
texts that real mail has; the list gives its Subject column the room; an event that arrives
while the detail page is open appears on it without a reload.

The storage is SQLite (these tests are about the pages; storage runs on every database in
the other test modules)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email
from flask_maildelivery.testing import simulate_event

from .live_server import browser_log_app, served

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": 1366, "phone": 390}
LONG_SENDER = (
    '"Accounts Receivable, Northern Region" <accounts.receivable.northern.region'
    "@billing.subsidiary-with-a-rather-long-domain-name.example>"
)
LONG_ERROR = (
    "SMTPRecipientsRefused: {'procurement.department.central.purchasing@vendor-with-a-long-"
    "name.example': (550, b'5.1.1 <procurement.department.central.purchasing@vendor-with-a-"
    "long-name.example>: Recipient address rejected: User unknown in virtual mailbox table;"
    "_no_spaces_in_this_part_of_the_diagnostic_text_at_all_0123456789abcdef0123456789')}"
)
#: Every element of a page that sticks out of its card (or the page wider than the window):
#: a list of descriptions, empty when the layout holds.
OVERFLOW_JS = """
() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) {
    problems.push(`page is ${doc.scrollWidth}px wide in a ${window.innerWidth}px window`);
  }
  const cards = '.md-facts, .md-copy, .md-recipient, .md-table tbody tr, .md-filters, ' +
                '.md-flash, .md-error, .md-table-wrap';
  for (const card of document.querySelectorAll(cards)) {
    const box = card.getBoundingClientRect();
    if (card.scrollWidth > card.clientWidth + 1) {
      problems.push(`${card.className} scrolls: ${card.scrollWidth} > ${card.clientWidth}`);
    }
    for (const el of card.querySelectorAll('*')) {
      if (el.closest('.md-visually-hidden, thead')) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.right > box.right + 1 || r.left < box.left - 1) {
        const text = (el.textContent || '').trim().slice(0, 40);
        problems.push(`${el.tagName} "${text}" overflows ${card.className}`);
      }
    }
  }
  return problems;
}
"""


@dataclass
class LayoutLog:
    base_url: str
    app: Flask
    mail_delivery: MailDelivery
    failed_id: int
    waiting_id: int


@pytest.fixture(scope="module")
def layout_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LayoutLog]:
    app, mail_delivery = browser_log_app(
        "maildelivery_layout_test",
        tmp_path_factory.mktemp("layout") / "log.db",
        MAILDELIVERY_DETAIL_REFRESH_SECONDS=1,
    )
    to = [
        "procurement.department.central.purchasing@vendor-with-a-long-name.example",
        "ann@customer.test",
        "accounts.payable.team.for.all.european.subsidiaries@customer-group.example",
    ]
    with app.app_context():
        failed = mail_delivery.send(
            subject="Invoice INV-2026-000042 for the maintenance contract of the warehouse "
            "conveyor systems, third quarter, with the purchase order reference attached",
            sender=LONG_SENDER,
            to=to,
            text="Dear customer,\n\nplease find the invoice attached.\n" + "x" * 300,
            html="<p>Dear customer, please find the invoice attached.</p>",
            headers={"X-Reference": "PO-" + "7" * 120},
        )
        simulate_event(
            failed,
            "bounced",
            recipient=to[0],
            reason=LONG_ERROR,
            smtp_code="550",
            bounce_type="hard",
        )
        simulate_event(failed, "delivered", recipient=to[1])
        session = mail_delivery.session
        session.execute(sa.update(Email).where(Email.id == failed.id).values(error=LONG_ERROR))
        session.commit()
        waiting = mail_delivery.send(
            subject="Purchase order PO-7", to=["orders@vendor.test"], text="Our order."
        )
        failed_id, waiting_id = failed.id, waiting.id
    with served(app) as base_url:
        yield LayoutLog(base_url, app, mail_delivery, failed_id, waiting_id)


@pytest.fixture
def open_at(browser: Browser) -> Iterator[Any]:
    """``open_at(width)`` -> a page in a new context of that viewport width."""
    contexts = []

    def open_(width: int) -> Page:
        context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
        contexts.append(context)
        return context.new_page()

    yield open_
    for context in contexts:
        context.close()


@pytest.mark.parametrize("device", sorted(WIDTHS))
def test_no_page_scrolls_sideways_or_overflows_its_cards(
    layout_log: LayoutLog, open_at: Any, screenshots: Path, device: str
) -> None:
    page = open_at(WIDTHS[device])
    pages = {
        "list": "/maildelivery/?show=all",
        "detail": f"/maildelivery/{layout_log.failed_id}",
        "not-found": "/maildelivery/424242",
    }
    for name, path in pages.items():
        page.goto(f"{layout_log.base_url}{path}")
        if name == "detail":
            page.get_by_text("Headers", exact=True).click()  # the long header value too
        assert page.evaluate(OVERFLOW_JS) == [], f"{name} at {WIDTHS[device]} px"
        page.screenshot(path=str(screenshots / f"layout-{name}-{device}.png"), full_page=True)


def test_the_detail_cards_stack_on_a_phone(layout_log: LayoutLog, open_at: Any) -> None:
    for width, stacked in ((1366, False), (390, True)):
        page = open_at(width)
        page.goto(f"{layout_log.base_url}/maildelivery/{layout_log.failed_id}")
        facts = page.locator(".md-facts").bounding_box()
        copy = page.locator(".md-copy").bounding_box()
        assert facts is not None
        assert copy is not None
        assert (copy["y"] >= facts["y"] + facts["height"]) is stacked, width


def test_the_subject_column_gets_the_room(layout_log: LayoutLog, open_at: Any) -> None:
    page = open_at(1366)
    page.goto(f"{layout_log.base_url}/maildelivery/?show=all")
    row = page.locator(f'tr[data-email-id="{layout_log.failed_id}"]')
    subject = row.locator(".md-col-subject")
    subject_box = subject.bounding_box()
    sender_box, to_box = (cell.bounding_box() for cell in row.locator(".md-col-address").all())
    assert subject_box is not None
    assert sender_box is not None
    assert to_box is not None
    assert subject_box["width"] >= max(sender_box["width"], to_box["width"])
    # the 150-character subject takes a few lines, not a narrow column of many; the long
    # addresses wrap, but not a few letters a line
    line_height = float(subject.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)"))
    link_box = subject.locator("a").bounding_box()
    assert link_box is not None
    assert link_box["height"] <= 4 * line_height + 2
    assert min(sender_box["width"], to_box["width"]) >= 150


def test_the_detail_page_shows_an_event_that_arrives_while_it_is_open(
    layout_log: LayoutLog, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    api_calls: list[float] = []
    errors: list[str] = []
    api_path = f"/maildelivery/api/emails/{layout_log.waiting_id}"
    context.on(
        "request", lambda req: api_calls.append(time.monotonic()) if api_path in req.url else None
    )
    page = context.new_page()
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{layout_log.base_url}/maildelivery/{layout_log.waiting_id}")
        recipient = page.locator('article[data-address="orders@vendor.test"]')
        expect(recipient).to_contain_text("No event received yet.")
        expect(page.locator("#md-live")).to_have_attribute("data-state", "polling")
        with layout_log.app.app_context():
            email = layout_log.mail_delivery.session.get(Email, layout_log.waiting_id)
            assert email is not None
            simulate_event(email, "delivered", recipient="orders@vendor.test")
        # the poll interval is 1 s: the new status shows within a few, without a reload
        expect(recipient).to_contain_text("Delivered", timeout=5000)
        expect(page.locator(".md-header [data-result]")).to_have_attribute(
            "data-result", "delivered"
        )
        expect(page.locator("#md-live")).to_have_attribute("data-state", "final")
        # final: the script stops asking
        polled = len(api_calls)
        page.wait_for_timeout(2500)
        assert len(api_calls) == polled
        assert errors == []  # no policy violation, no failed request
    finally:
        context.close()
