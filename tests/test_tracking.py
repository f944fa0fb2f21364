"""Overdue emails and tracking health: the log never implies a delivery it cannot know
(SPEC, "Attention, review and resend")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flask_maildelivery import MailDelivery
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import Email, Event, utcnow
from flask_maildelivery.tracking import tracking

from .conftest import AppFactory, SMTPServer
from .kits.sendgrid import SendGridKit
from .log_helpers import ADMIN, LogApp, listed_ids, make_log_app

TIMEOUT = 3600


@pytest.fixture
def tracked(make_app: AppFactory, smtp_server: SMTPServer) -> LogApp:
    """SMTP through a SendGrid relay whose signed webhook is configured: outcomes are
    reported, so an email without a final word after the timeout is overdue."""
    log = make_log_app(
        make_app,
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST=smtp_server.host,
        MAILDELIVERY_SMTP_PORT=smtp_server.port,
        MAILDELIVERY_SMTP_PROVIDER="sendgrid",
        MAILDELIVERY_OUTCOME_TIMEOUT=TIMEOUT,
        **SendGridKit().config(),
    )
    log.viewer.user = ADMIN
    return log


def _sent_ago(log: LogApp, email_id: int, seconds: float) -> None:
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        session.execute(
            sa.update(Email)
            .where(Email.id == email_id)
            .values(sent_at=utcnow() - timedelta(seconds=seconds))
        )
        session.commit()


def _sendgrid_event(email: Email, type_: str, received_ago: float = 0) -> None:
    ingest_events(
        [
            NormalizedEvent(
                provider="sendgrid",
                provider_event_id=f"{email.public_id}-{type_}",
                type=type_,
                raw_type=type_,
                occurred_at=utcnow(),
                recipient=email.recipients[0].address,
                maildelivery_id=email.public_id,
            )
        ]
    )
    if received_ago:
        session = MailDelivery.state().sessions()
        session.execute(
            sa.update(Event).values(received_at=utcnow() - timedelta(seconds=received_ago))
        )
        session.commit()


def _send(log: LogApp, subject: str) -> Email:
    return log.extension.send(subject=subject, to=["ann@customer.test"], text="x")


def test_the_transport_and_webhook_decide_whether_outcomes_are_tracked(
    tracked: LogApp, make_app: AppFactory
) -> None:
    with tracked.app.app_context():
        track = tracking(MailDelivery.state(tracked.app))
    assert (track.transport, track.provider, track.timeout) == ("smtp", "sendgrid", TIMEOUT)
    # the same relay without its webhook's key: nothing reports outcomes
    unsigned = make_app(MAILDELIVERY_SMTP_PROVIDER="sendgrid", MAILDELIVERY_TRANSPORT="smtp")
    with unsigned.app_context():
        assert tracking(MailDelivery.state(unsigned)).provider is None
    memory = make_app()
    with memory.app_context():
        assert not tracking(MailDelivery.state(memory)).tracked


def test_an_email_without_final_word_after_the_timeout_is_overdue(tracked: LogApp) -> None:
    with tracked.app.app_context():
        late = _send(tracked, "Invoice late").id
        fresh = _send(tracked, "Invoice fresh").id
        answered = _send(tracked, "Invoice delivered")
        _sendgrid_event(answered, "delivered")
        answered_id = answered.id
    for email_id in (late, answered_id):
        _sent_ago(tracked, email_id, TIMEOUT + 60)
    _sent_ago(tracked, fresh, TIMEOUT - 60)
    client = tracked.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    # the attention list: only the overdue one, with its badge
    assert listed_ids(html) == [late]
    assert html.count('data-overdue="1"') == 1
    assert listed_ids(client.get("/maildelivery/?overdue=1&show=all").get_data(as_text=True)) == [
        late
    ]
    all_ids = listed_ids(client.get("/maildelivery/?show=all").get_data(as_text=True))
    assert sorted(all_ids) == sorted([late, fresh, answered_id])
    items = client.get("/maildelivery/api/emails?show=all").get_json()["items"]
    assert {item["id"]: item["overdue"] for item in items} == {
        late: True,
        fresh: False,
        answered_id: False,
    }


def test_without_tracking_nothing_is_overdue_and_the_log_says_so(make_app: AppFactory) -> None:
    log = make_log_app(make_app, MAILDELIVERY_OUTCOME_TIMEOUT=TIMEOUT)
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = _send(log, "Invoice").id
    _sent_ago(log, email_id, TIMEOUT * 10)
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert listed_ids(html) == []
    assert 'data-tracking="untracked"' in html
    assert "Only the mail server&#39;s acceptance is known" in html
    assert "What happened next is not tracked." in html
    assert listed_ids(client.get("/maildelivery/?overdue=1&show=all").get_data(as_text=True)) == []


def test_the_log_warns_when_the_provider_stops_reporting(tracked: LogApp) -> None:
    client = tracked.client()

    def banner() -> str | None:
        html = client.get("/maildelivery/").get_data(as_text=True)
        found = [s for s in ("silent", "untracked") if f'data-tracking="{s}"' in html]
        return found[0] if found else None

    assert banner() is None  # nothing sent yet, nothing expected
    with tracked.app.app_context():
        email = _send(tracked, "Invoice")
        email_id = email.id
    assert banner() is None  # just sent: the provider has not had time to report
    _sent_ago(tracked, email_id, TIMEOUT / 2)
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert 'data-tracking="silent"' in html
    assert "No event has ever come from sendgrid" in html
    with tracked.app.app_context():
        stored = MailDelivery.state(tracked.app).sessions().get(Email, email_id)
        assert stored is not None
        _sendgrid_event(stored, "processed", received_ago=TIMEOUT * 2)
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert "No events from sendgrid since" in html
    with tracked.app.app_context():
        stored = MailDelivery.state(tracked.app).sessions().get(Email, email_id)
        assert stored is not None
        _sendgrid_event(stored, "delivered")
    assert banner() is None


def test_the_overdue_filter_is_refused_with_another_value(tracked: LogApp) -> None:
    response: Any = tracked.client().get("/maildelivery/?overdue=yes")
    assert response.status_code == 400
    assert "overdue must be 1" in response.get_data(as_text=True)
