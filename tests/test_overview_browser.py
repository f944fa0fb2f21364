"""The overview page in a real browser (Playwright driving Debian's Chromium), under a strict
Content-Security-Policy: the chart is the server's SVG, its bars are as tall as the table's
numbers say, and a screenshot of the page is kept."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Response
from playwright.sync_api import Browser

from flask_maildelivery import MailDelivery, rollup
from flask_maildelivery.models import utcnow
from flask_maildelivery.testing import simulate_event

from .live_server import browser_log_app, served

pytestmark = pytest.mark.browser

#: No inline script or style anywhere, nothing from another origin.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'"
#: (days ago, outcome per recipient) of the emails the page shows.
EMAILS = [
    *((days, ["delivered"]) for days in range(0, 30, 2) for _ in range(1 + days % 5)),
    *((days, ["bounced", "delivered"]) for days in (1, 3, 3, 8, 20)),
    *((days, ["bounced"]) for days in (2, 9, 9, 9)),
    *((days, ["processed"]) for days in (0, 0, 1)),
    *((days, ["dropped", "bounced"]) for days in (4, 15)),
]


@pytest.fixture
def overview_url(tmp_path: Path) -> Iterator[str]:
    app, mail_delivery = browser_log_app("maildelivery_overview_browser", tmp_path / "log.db")

    @app.after_request
    def _strict(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = STRICT_CSP
        return response

    now = utcnow()
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        for n, (days, outcomes) in enumerate(EMAILS):
            to = [
                f"r{n}.{k}@{'bad' if o != 'delivered' else 'good'}{k}.test"
                for k, o in enumerate(outcomes)
            ]
            email = mail_delivery.send(subject=f"Invoice {n}", to=to, text="x")
            for address, outcome in zip(to, outcomes, strict=True):
                simulate_event(email, outcome, recipient=address, reason="550 5.1.1 unknown user")
            # as a queued send's hand-over moves it, with its rollup
            rollup.move_sent_at(session, email, now - timedelta(days=days, minutes=n))
            session.commit()
    with served(app) as base_url:
        yield f"{base_url}/maildelivery/overview"


def test_the_charts_bars_match_the_table(
    browser: Browser, overview_url: str, screenshots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en")
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    page.goto(overview_url)
    assert page.locator("h1").inner_text() == "Delivery overview"

    table: dict[str, dict[str, int]] = {}
    for row in page.locator("#md-chart-table tbody tr").all():
        day = row.get_attribute("data-day") or ""
        table[day] = {
            cell.get_attribute("data-series") or "": int(cell.inner_text().replace(",", ""))
            for cell in row.locator("td[data-series]").all()
        }
    assert sum(sum(counts.values()) for counts in table.values()) == len(EMAILS)

    chart = page.locator("svg#md-chart")
    assert chart.get_attribute("role") == "img"
    assert chart.locator("title").first.text_content() == "Emails per day, by result"
    bars = chart.locator("rect.md-bar").all()
    heights_per_email = set()
    drawn: dict[str, dict[str, int]] = {day: {} for day in table}
    for bar in bars:
        day = bar.locator("xpath=..").get_attribute("data-day") or ""
        series = bar.get_attribute("data-series") or ""
        count = int(bar.get_attribute("data-count") or 0)
        drawn[day][series] = count
        box = bar.bounding_box()
        assert box is not None
        # the height on screen is proportional to the count: one email, one height
        heights_per_email.add(round(box["height"] / count, 1))
        # its fill comes from the stylesheet, which the CSP let load
        fill = bar.evaluate("element => getComputedStyle(element).fill")
        assert fill not in ("", "none", "rgb(0, 0, 0)")
        assert f"{count}" in (bar.locator("title").text_content() or "")
    assert max(heights_per_email) - min(heights_per_email) <= 0.2
    assert {d: {s: n for s, n in c.items() if n} for d, c in table.items()} == drawn
    # the tallest day reaches the top of the plot
    peak = int(chart.get_attribute("data-peak") or 0)
    assert peak == max(sum(counts.values()) for counts in table.values())

    assert not [text for text in refused if "Content Security Policy" in text]
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)
    context.close()


def test_the_overview_is_french_for_a_french_browser(browser: Browser, overview_url: str) -> None:
    context = browser.new_context(locale="fr-FR", java_script_enabled=False)
    page = context.new_page()
    page.goto(overview_url)
    assert (
        page.locator("h1").inner_text() == "Vue d\N{RIGHT SINGLE QUOTATION MARK}ensemble des envois"
    )
    assert page.locator("svg#md-chart rect.md-bar").count() > 0
    context.close()
