"""The overview page, its JSON API and ``flask maildelivery stats`` show the same figures, and
those figures equal direct counts over the tables, with days cut at the viewer's midnights."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_babel import Babel

from flask_maildelivery import MailDelivery, SendRefused, rollup
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import AddressRecord, Email, Recipient, utcnow
from flask_maildelivery.state import FAILURE_STATUSES
from flask_maildelivery.testing import simulate_event
from flask_maildelivery.views.overview import SERIES, Thresholds, thresholds

from .conftest import AppFactory, SMTPServer
from .log_helpers import ADMIN, CLERK, LogApp, make_log_app

PARIS = ZoneInfo("Europe/Paris")
SERIES_OF = {result: name for name, results in SERIES.items() for result in results}


def _set_sent_at(app: Flask, email_id: int, moment: datetime) -> None:
    """Move an email to ``moment`` as a queued send's hand-over does (its rollup with it)."""
    session = MailDelivery.state(app).sessions()
    email = session.get(Email, email_id)
    assert email is not None
    rollup.move_sent_at(session, email, moment)
    session.commit()


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=PARIS).astimezone(UTC)


def seed(log: LogApp, tenant: str | None, now: datetime) -> dict[str, int]:
    """Emails of every result, some on both sides of a Paris midnight, some outside the
    windows; returns their ids by name."""
    log.viewer.tenant = tenant
    send = log.extension.send
    today = now.astimezone(PARIS).date()
    midnight = _local_midnight(today - timedelta(days=1))
    ids: dict[str, int] = {}
    with log.app.app_context():
        # the same UTC day, two Paris days
        for name, moment in (
            ("before_midnight", midnight - timedelta(minutes=30)),
            ("after_midnight", midnight + timedelta(minutes=30)),
        ):
            email = send(subject=name, to=["ann@good.test"], text="x")
            simulate_event(email, "delivered")
            _set_sent_at(log.app, email.id, moment)
            ids[name] = email.id
        warning = send(subject="warning", to=["bob@bad.test", "cy@good.test"], text="x")
        simulate_event(warning, "bounced", recipient="bob@bad.test", reason="550 no such user")
        simulate_event(warning, "delivered", recipient="cy@good.test")
        _set_sent_at(log.app, warning.id, now - timedelta(days=3))
        ids["warning"] = warning.id
        error = send(subject="error", to=["dee@bad.test", "eve@worse.test"], text="x")
        simulate_event(error, "bounced", recipient="dee@bad.test", reason="550 gone")
        simulate_event(error, "dropped", recipient="eve@worse.test", reason="spam trap")
        _set_sent_at(log.app, error.id, now - timedelta(days=10))
        ids["error"] = error.id
        complained = send(subject="complaint", to=["fay@good.test"], text="x")
        simulate_event(complained, "delivered")
        simulate_event(complained, "complained")
        _set_sent_at(log.app, complained.id, now - timedelta(days=2))
        ids["complained"] = complained.id
        with pytest.raises(SendRefused):
            send(subject="refused", to=["a@good.test", "b@good.test", "c@good.test"], text="x")
        ids["queued"] = send(subject="queued", to=["gus@good.test"], text="x").id
        old = send(subject="old", to=["hal@bad.test"], text="x")
        simulate_event(old, "bounced")
        _set_sent_at(log.app, old.id, now - timedelta(days=40))
        ids["old"] = old.id
    return ids


def direct_counts(
    log: LogApp, tenant: str | None, now: datetime, zone: ZoneInfo = PARIS
) -> dict[str, Any]:
    """The overview's figures counted straight from the rows, in Python, days in ``zone``."""
    today = now.astimezone(zone).date()
    first = today - timedelta(days=29)
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        tenant_clause = Email.tenant_id.is_(None) if tenant is None else Email.tenant_id == tenant
        emails = session.execute(
            sa.select(Email.id, Email.sent_at, Email.result, Email.status).where(tenant_clause)
        ).all()
        recipients = session.execute(
            sa.select(Recipient.email_id, Recipient.address_key, Recipient.status)
            .join(Email)
            .where(tenant_clause)
        ).all()
    local_day = {id_: at.astimezone(zone).date() for id_, at, _, _ in emails if at is not None}
    result_of = {id_: result for id_, _, result, _ in emails}
    status_of = {id_: status for id_, _, _, status in emails}
    days: dict[date, Counter[str]] = {first + timedelta(days=n): Counter() for n in range(30)}
    for id_, day in local_day.items():
        if day in days:
            days[day][SERIES_OF[result_of[id_]]] += 1
    rates = {}
    for window in (7, 30):
        chosen = {
            id_
            for id_, day in local_day.items()
            if today - timedelta(days=window - 1) <= day <= today and result_of[id_] != "failed"
        }
        bounced = {e for e, _, status in recipients if e in chosen and status == "bounced"}
        # a complaint counts when no recipient failed (a failure outranks it in the status)
        complained = {e for e in chosen if status_of[e] == "complained"}
        rates[window] = (len(chosen), len(bounced), len(complained))
    failures = Counter(
        address.rsplit("@", 1)[1]
        for e, address, status in recipients
        if status in FAILURE_STATUSES and first <= local_day[e] <= today
    )
    in_window = {id_ for id_, day in local_day.items() if first <= day <= today}
    by_domain = Counter(address.rsplit("@", 1)[1] for e, address, _ in recipients if e in in_window)
    return {
        "days": {day.isoformat(): dict(counts) for day, counts in days.items()},
        "rates": rates,
        "domains": dict(failures),
        "recipients": dict(by_domain),
    }


def _babel(log: LogApp, locale: str = "en") -> None:
    Babel(log.app, locale_selector=lambda: locale, timezone_selector=lambda: "Europe/Paris")


def overview_app(make_app: AppFactory, locale: str = "en", **config: Any) -> LogApp:
    """A log app viewed by an administrator in Paris; sends to three recipients are refused
    (the seed's ``failed`` email)."""
    log = make_log_app(make_app, MAILDELIVERY_MAX_RECIPIENTS=2, **config)
    log.viewer.user = ADMIN
    _babel(log, locale)
    return log


@pytest.fixture
def log(make_app: AppFactory) -> LogApp:
    return overview_app(make_app)


def _page_days(html: str) -> dict[str, dict[str, int]]:
    days: dict[str, dict[str, int]] = {}
    for day, row in re.findall(r'<tr data-day="([0-9-]+)">(.*?)</tr>', html, re.S):
        cells = re.findall(r'<td [^>]*data-series="(\w+)" data-count="(\d+)">', row)
        days[day] = {name: int(n) for name, n in cells if int(n)}
    return days


def _chart_days(html: str) -> dict[str, dict[str, int]]:
    days: dict[str, dict[str, int]] = {}
    for day, group in re.findall(
        r'<g class="md-chart-day" data-day="([0-9-]+)"[^>]*>(.*?)</g>', html, re.S
    ):
        bars = re.findall(r'data-series="(\w+)" data-count="(\d+)"', group)
        days[day] = {name: int(n) for name, n in bars}
    return days


def _nonzero(days: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {day: {k: v for k, v in counts.items() if v} for day, counts in days.items()}


def test_page_api_and_cli_equal_direct_counts_with_paris_days(log: LogApp) -> None:
    now = utcnow()
    ids = seed(log, None, now)
    expected = direct_counts(log, None, now)
    # the two emails around the Paris midnight fall on two days in Paris, one day in UTC
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        before, after = (session.get(Email, ids[n]) for n in ("before_midnight", "after_midnight"))
        assert before is not None
        assert after is not None
        assert before.sent_at is not None
        assert after.sent_at is not None
        assert before.sent_at.astimezone(PARIS).date() != after.sent_at.astimezone(PARIS).date()
    assert sum(sum(c.values()) for c in expected["days"].values()) == 7  # not the old one

    client = log.client()
    html = client.get("/maildelivery/overview").get_data(as_text=True)
    assert _page_days(html) == _nonzero(expected["days"])
    assert _nonzero(_chart_days(html)) == _nonzero(expected["days"])

    api = client.get("/maildelivery/api/overview").get_json()
    assert api["timezone"] == "Europe/Paris"
    assert {d["day"]: d["counts"] for d in api["days"]} == {
        day: {name: counts.get(name, 0) for name in SERIES}
        for day, counts in expected["days"].items()
    }
    for rate in api["rates"]:
        sent, bounced, complained = expected["rates"][rate["days"]]
        assert (rate["sent"], rate["bounced"], rate["complained"]) == (sent, bounced, complained)
        assert rate["bounce_rate"] == pytest.approx(bounced / sent)
    assert expected["rates"][7] == (5, 1, 1)  # the error email is 10 days old
    assert {d["domain"]: d["failures"] for d in api["domains"]} == expected["domains"]
    # the failure rate: failed recipients over the domain's recipients in the window
    assert {d["domain"]: (d["recipients"], d["rate"]) for d in api["domains"]} == {
        name: (expected["recipients"][name], n / expected["recipients"][name])
        for name, n in expected["domains"].items()
    }
    assert api["domains"][0]["domain"] == "bad.test"
    assert (api["domains"][0]["failures"], api["domains"][0]["recipients"]) == (2, 2)
    assert 'data-domain="worse.test" data-failures="1" data-recipients="1"' in html
    # the latest failure by the time of its event: the error's bounce was applied last
    assert api["domains"][0]["last_reason"] == "550 gone"
    counts = {c["key"]: c["value"] for c in api["counts"]}
    attention = client.get("/maildelivery/api/emails?limit=500").get_json()["items"]
    assert len(attention) == 5  # warning, error, complaint, refused, old
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        suppressed = session.scalar(
            sa.select(sa.func.count())
            .select_from(AddressRecord)
            .where(AddressRecord.suppressed.is_(True))
        )
    assert suppressed  # the hard bounces suppressed their addresses
    assert counts == {"attention": len(attention), "failed_inbox": 0, "suppressed": suppressed}
    [link] = [c["url"] for c in api["counts"] if c["key"] == "suppressed"]
    assert link == "/maildelivery/api/addresses?state=suppressed"
    assert 'href="/maildelivery/addresses?state=suppressed"' in html

    with log.app.app_context():
        output = (
            log.app.test_cli_runner()
            .invoke(args=["maildelivery", "stats", "--tz", "Europe/Paris"])
            .output
        )
    for day, day_counts in expected["days"].items():
        line = next(line for line in output.splitlines() if line.strip().startswith(day))
        numbers = [int(n) for n in line.split()[1:]]
        assert numbers == [*(day_counts.get(name, 0) for name in SERIES), sum(day_counts.values())]
    assert "last  7 days  sent 5  bounced 1 (20.00%, alarm)  complained 1 (20.00%, alarm)" in output
    assert re.search(r"bad\.test\s+2 of 2\s+100\.00%", output)
    assert "attention      5" in output


def test_days_follow_the_time_zone_asked(log: LogApp) -> None:
    now = utcnow()
    seed(log, None, now)
    client = log.client()
    for zone in ("UTC", "Asia/Kolkata", "America/New_York"):
        expected = direct_counts(log, None, now, ZoneInfo(zone))["days"]
        api = client.get(f"/maildelivery/api/overview?tz={zone}").get_json()
        assert api["timezone"] == zone
        assert {d["day"]: d["counts"] for d in api["days"]} == {
            day: {name: counts.get(name, 0) for name in SERIES} for day, counts in expected.items()
        }, zone


def test_tenants_see_only_their_own_figures(log: LogApp) -> None:
    now = utcnow()
    seed(log, "acme", now)
    log.viewer.tenant = "globex"
    with log.app.app_context():
        email = log.extension.send(subject="globex", to=["ivy@globex.test"], text="x")
        simulate_event(email, "bounced", reason="550 unknown")
    client = log.client()
    globex = client.get("/maildelivery/api/overview").get_json()
    assert sum(d["total"] for d in globex["days"]) == 1
    assert [d["domain"] for d in globex["domains"]] == ["globex.test"]
    log.viewer.tenant = "acme"
    acme = client.get("/maildelivery/api/overview").get_json()
    assert sum(d["total"] for d in acme["days"]) == 7
    assert "globex.test" not in {d["domain"] for d in acme["domains"]}
    expected = direct_counts(log, "acme", now)
    assert {d["domain"]: d["failures"] for d in acme["domains"]} == expected["domains"]
    log.viewer.tenant = None
    nobody = client.get("/maildelivery/api/overview").get_json()
    assert sum(d["total"] for d in nobody["days"]) == 0
    assert nobody["domains"] == []


def test_the_page_is_french_for_a_french_viewer(make_app: AppFactory) -> None:
    log = overview_app(make_app, "fr")
    seed(log, None, utcnow())
    html = log.client().get("/maildelivery/overview").get_data(as_text=True)
    assert "Vue d\N{RIGHT SINGLE QUOTATION MARK}ensemble des envois" in html
    assert "E-mails par jour, par résultat" in html
    assert "Taux de rebond" in html
    assert "Taux d\N{RIGHT SINGLE QUOTATION MARK}échec" in html
    assert "Sources :" in html
    assert "https://support.google.com/a/answer/81126" in html
    assert "Email delivery log" not in html


def test_the_page_has_the_logs_permissions(log: LogApp) -> None:
    client = log.client()
    log.viewer.user = CLERK
    assert client.get("/maildelivery/overview").status_code == 403
    assert client.get("/maildelivery/api/overview").status_code == 403
    log.viewer.user = None
    assert client.get("/maildelivery/overview").status_code == 401
    log.viewer.user = ADMIN
    page = client.get("/maildelivery/")
    assert b'href="/maildelivery/overview"' in page.data


def test_an_unknown_time_zone_is_a_clear_error(log: LogApp) -> None:
    answer = log.client().get("/maildelivery/api/overview?tz=Mars/Olympus")
    assert answer.status_code == 400
    assert "IANA time zone" in answer.get_json()["error"]
    with log.app.app_context():
        result = log.app.test_cli_runner().invoke(
            args=["maildelivery", "stats", "--tz", "Mars/Olympus"]
        )
    assert result.exit_code != 0
    assert "is not an IANA time zone name" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", [(0.5,), (0.3, 0.1), ("a", "b"), None, (-0.1, 0.2), (0.1, 1.5)])
def test_a_wrong_threshold_is_refused_at_registration(make_app: AppFactory, value: Any) -> None:
    with pytest.raises(ValueError, match="MAILDELIVERY_COMPLAINT_RATE_THRESHOLDS must be two"):
        make_app(MAILDELIVERY_COMPLAINT_RATE_THRESHOLDS=value)


def test_thresholds_colour_the_rates() -> None:
    limits = thresholds("KEY", [0.001, "0.003"])
    assert limits == Thresholds(0.001, 0.003)
    assert [limits.level(r) for r in (None, 0.0, 0.00099, 0.001, 0.0029, 0.003, 1)] == [
        "ok",
        "ok",
        "ok",
        "warn",
        "warn",
        "alarm",
        "alarm",
    ]


def test_thresholds_are_configurable(make_app: AppFactory) -> None:
    log = overview_app(make_app, MAILDELIVERY_BOUNCE_RATE_THRESHOLDS=(0.5, 0.9))
    seed(log, None, utcnow())
    api = log.client().get("/maildelivery/api/overview").get_json()
    assert api["bounce_thresholds"] == {"warn": 0.5, "alarm": 0.9}
    assert {r["bounce_level"] for r in api["rates"]} == {"ok"}


def test_providers_last_event_lag_and_overdue(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    log = overview_app(
        make_app,
        **smtp_server.config(),
        MAILDELIVERY_SMTP_PROVIDER="postmark",
        MAILDELIVERY_POSTMARK_WEBHOOK_USERNAME="hook",
        MAILDELIVERY_POSTMARK_WEBHOOK_PASSWORD="secret",
    )
    now = utcnow()
    with log.app.app_context():
        fast = log.extension.send(subject="fast", to=["a@good.test"], text="x")
        slow = log.extension.send(subject="slow", to=["b@good.test"], text="x")
        late = log.extension.send(subject="late", to=["c@good.test"], text="x")
        for email, minutes in ((fast, 60), (slow, 180), (late, 60 * 30)):
            _set_sent_at(log.app, email.id, now - timedelta(minutes=minutes))
        # received now: lags of 60 and 180 minutes; the third email (30 hours) is overdue
        ingest_events(
            [
                NormalizedEvent(
                    provider="postmark",
                    provider_event_id=f"ev-{email.id}",
                    type="delivered",
                    raw_type="Delivery",
                    occurred_at=now,
                    recipient=email.recipients[0].address,
                    maildelivery_id=email.public_id,
                )
                for email in (fast, slow)
            ]
        )
    api = log.client().get("/maildelivery/api/overview").get_json()
    health = {p["provider"]: p for p in api["providers"]}
    postmark = health["postmark"]
    assert postmark["lag_emails"] == 2
    assert postmark["median_lag"] == pytest.approx(120 * 60, abs=60)
    assert postmark["last_event_at"] is not None
    assert postmark["overdue"] == 1
    counts = {c["key"]: c["value"] for c in api["counts"]}
    assert counts["overdue"] == 1
    html = log.client().get("/maildelivery/overview").get_data(as_text=True)
    assert 'data-count-key="overdue" data-count="1"' in html
    assert 'href="/maildelivery/?overdue=1"' in html


def test_the_log_filters_by_recipient_domain(log: LogApp) -> None:
    now = utcnow()
    ids = seed(log, None, now)
    client = log.client()
    bad = {ids["warning"], ids["error"], ids["old"]}
    for domain in ("bad.test", "@BAD.test", " bad.test "):
        listed = client.get(f"/maildelivery/api/emails?show=all&domain={domain}").get_json()
        assert {item["id"] for item in listed["items"]} == bad, domain
    # a LIKE wildcard in the domain is a character, not a pattern
    assert client.get("/maildelivery/api/emails?show=all&domain=b_d.test").get_json()["items"] == []
    assert client.get("/maildelivery/api/emails?show=all&domain=%25.test").get_json()["items"] == []
    # the overview's link: from the chart's first day, so the old email is left out
    html = client.get("/maildelivery/overview").get_data(as_text=True)
    link = re.search(r'<a href="(/maildelivery/\?[^"]*domain=bad\.test[^"]*)"', html)
    assert link is not None
    page = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert set(map(int, re.findall(r'data-email-id="(\d+)"', page))) == bad - {ids["old"]}
    assert 'name="domain" value="bad.test"' in page
