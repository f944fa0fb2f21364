"""The log pages in a real browser (Playwright driving Debian's Chromium).

The app is served by werkzeug from a thread on 127.0.0.1; the storage is SQLite (these tests
are about the pages; storage runs on every database in test_log_pages.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from playwright.sync_api import Browser, Page

from flask_maildelivery.testing import simulate_event

from .live_server import browser_log_app, served

pytestmark = pytest.mark.browser


@dataclass
class LiveLog:
    """The served app: its base URL, the paths it was asked for, the two emails, and a
    "tracker" on another origin that the email's remote image points at."""

    base_url: str
    failed_id: int
    delivered_id: int
    tracker_url: str
    served_paths: list[str] = field(default_factory=list)
    tracker_hits: list[str] = field(default_factory=list)


def _tracker(hits: list[str]) -> Flask:
    tracker = Flask("tracker")

    @tracker.route("/<path:path>")
    def pixel(path: str) -> str:
        hits.append(path)
        return ""

    return tracker


def _build_app(database: Path, served_paths: list[str], tracker: str) -> tuple[Flask, int, int]:
    app, mail_delivery = browser_log_app("maildelivery_browser_test", database)
    mail_delivery.contact_url_loader(lambda kind, id_: f"/contacts/{kind}/{id_}/edit")

    @app.before_request
    def _record() -> None:
        served_paths.append(request.full_path)

    @app.route("/contacts/<kind>/<id_>/edit")
    def edit_contact(kind: str, id_: str) -> str:
        return f"<h1>Edit {kind} {id_}</h1>"

    @app.route("/script-ran")
    def script_ran() -> str:
        return "the email's script ran"

    with app.app_context():
        failed = mail_delivery.send(
            subject="Invoice INV-0042",
            to=["ann@customer.test", "bob@customer.test"],
            text="Dear customer,\n\nplease find invoice INV-0042 attached.",
            html=(
                "<h2>Invoice INV-0042</h2><p>Dear customer, please find your invoice attached.</p>"
                # neither may run or load when an administrator looks at the copy
                "<script>new Image().src = '/script-ran'; document.body.dataset.ran = '1';"
                "fetch('/script-ran');</script>"
                f'<img src="{tracker}/pixel.gif" alt="tracking pixel">'
            ),
            attachments=[("INV-0042.pdf", b"%PDF-1.4 invoice", "application/pdf")],
            contacts={"ann@customer.test": ("customer", 7)},
        )
        simulate_event(
            failed,
            "bounced",
            recipient="ann@customer.test",
            reason="550 5.1.1 <ann@customer.test>: mailbox does not exist",
            smtp_code="550",
            bounce_type="hard",
        )
        simulate_event(failed, "delivered", recipient="bob@customer.test")
        delivered = mail_delivery.send(
            subject="Purchase order PO-7", to=["orders@vendor.test"], text="Our order."
        )
        simulate_event(delivered, "delivered")
        return app, failed.id, delivered.id


@pytest.fixture(scope="module")
def live_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveLog]:
    """The app served from a thread on 127.0.0.1 and a free port."""
    paths: list[str] = []
    hits: list[str] = []
    with served(_tracker(hits)) as tracker_url:
        app, failed_id, delivered_id = _build_app(
            tmp_path_factory.mktemp("browser") / "log.db", paths, tracker_url
        )
        with served(app) as base_url:
            yield LiveLog(base_url, failed_id, delivered_id, tracker_url, paths, hits)


@dataclass
class RecordedPage:
    """A page, and every request the browser made for it or for any frame in it."""

    page: Page
    requests: list[str]
    #: URL -> why the browser did not complete it (``"csp"``: blocked before it was sent)
    failures: dict[str, str | None]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Any]:
    """``open_page(locale="en", javascript=True)`` -> a :class:`RecordedPage`."""
    contexts = []

    def open_(locale: str = "en-US", javascript: bool = True) -> RecordedPage:
        context = browser.new_context(
            locale=locale, java_script_enabled=javascript, viewport={"width": 1280, "height": 900}
        )
        contexts.append(context)
        requests: list[str] = []
        # context-wide: requests from the page and from every frame in it
        failures: dict[str, str | None] = {}
        context.on("request", lambda req: requests.append(req.url))
        context.on("requestfailed", lambda req: failures.__setitem__(req.url, req.failure))
        return RecordedPage(context.new_page(), requests, failures)

    yield open_
    for context in contexts:
        context.close()


def test_admin_finds_the_failed_email_and_the_contact_to_fix(
    live_log: LiveLog, open_page: Any, screenshots: Path
) -> None:
    recorded = open_page()
    page = recorded.page
    page.goto(f"{live_log.base_url}/maildelivery/")
    rows = page.locator("#md-log tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-email-id") == str(live_log.failed_id)
    assert "Invoice INV-0042" in rows.first.inner_text()
    assert "Warning" in rows.first.inner_text()
    assert "Purchase order PO-7" not in page.content()
    page.screenshot(path=str(screenshots / "log-list.png"), full_page=True)

    page.get_by_role("link", name="Show all emails").click()
    page.wait_for_url("**/maildelivery/?show=all")
    ids = [row.get_attribute("data-email-id") for row in rows.all()]
    assert ids == [str(live_log.delivered_id), str(live_log.failed_id)]
    assert page.get_by_role("link", name="Show emails needing attention").is_visible()

    page.get_by_role("link", name="Invoice INV-0042").click()
    page.wait_for_url(f"**/maildelivery/{live_log.failed_id}")
    ann = page.locator('article[data-address="ann@customer.test"]')
    assert "550 5.1.1 <ann@customer.test>: mailbox does not exist" in ann.inner_text()
    assert "Bounced" in ann.inner_text()
    contact = ann.get_by_role("link", name="Edit the contact record")
    assert contact.get_attribute("href") == "/contacts/customer/7/edit"

    # the copy of the email: framed, its script did not run, its remote image did not load
    frame = page.frame_locator("#md-html-body")
    assert "please find your invoice attached" in frame.locator("body").inner_text()
    assert frame.locator("body").get_attribute("data-ran") is None
    page.screenshot(path=str(screenshots / "log-detail.png"), full_page=True)

    contact.click()
    page.wait_for_url("**/contacts/customer/7/edit")
    assert page.locator("h1").inner_text() == "Edit customer 7"

    # nothing left the page: every request the browser made (page and frames) went to the app
    assert recorded.requests
    # Chromium reports the remote image to Playwright, then blocks it under the body's CSP
    # before anything is sent: the tracker on the other origin never hears of it
    outside = [url for url in recorded.requests if not url.startswith(f"{live_log.base_url}/")]
    assert outside == [f"{live_log.tracker_url}/pixel.gif"]
    assert {url: recorded.failures.get(url) for url in outside} == {outside[0]: "csp"}
    assert live_log.tracker_hits == []
    assert f"{live_log.base_url}/maildelivery/{live_log.failed_id}/body.html" in recorded.requests
    assert not any("script-ran" in url for url in recorded.requests)
    assert not any("script-ran" in path for path in live_log.served_paths)


def test_french_locale_shows_french_labels(live_log: LiveLog, open_page: Any) -> None:
    page = open_page(locale="fr-FR").page
    page.goto(f"{live_log.base_url}/maildelivery/")
    assert page.locator("h1").inner_text() == "E-mails à traiter"
    assert page.get_by_role("link", name="Afficher tous les e-mails").is_visible()
    table = page.locator("#md-log").inner_text()
    for label in (
        "N° d'enregistrement",
        "Statut",
        "Résultat",
        "Objet",
        "Expéditeur",
        "Rebondi",
        "Alerte",
    ):
        assert label in table, label
    page.get_by_role("link", name="Afficher tous les e-mails").click()
    page.wait_for_url("**/maildelivery/?show=all")
    assert "Livré" in page.locator("#md-log").inner_text()
    page.goto(f"{live_log.base_url}/maildelivery/{live_log.failed_id}")
    assert page.get_by_role("heading", name="Journal des statuts").is_visible()
    assert page.get_by_role("link", name="Modifier la fiche contact").is_visible()


def test_pages_work_without_javascript(live_log: LiveLog, open_page: Any) -> None:
    page = open_page(javascript=False).page
    page.goto(f"{live_log.base_url}/maildelivery/")
    page.get_by_role("link", name="Show all emails").click()
    page.wait_for_url("**/maildelivery/?show=all")
    page.get_by_label("Recipient address").fill("orders@")
    page.get_by_role("button", name="Filter").click()
    # the form's empty fields are left out of the address
    page.wait_for_url("**/maildelivery/?show=all&recipient=orders@")
    rows = page.locator("#md-log tbody tr")
    assert [r.get_attribute("data-email-id") for r in rows.all()] == [str(live_log.delivered_id)]
    assert "show=all" in page.url
    page.goto(f"{live_log.base_url}/maildelivery/{live_log.failed_id}")
    page.get_by_text("Headers", exact=True).click()  # <details> folds without script
    assert page.get_by_text("X-MailDelivery-ID").is_visible()
