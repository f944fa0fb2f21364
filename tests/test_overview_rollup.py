"""The overview's hourly rollups (:mod:`flask_maildelivery.rollup`) stay equal to a count over
the tables: after sends, events, moves of ``sent_at`` and purges, under 8 threads sending and
applying events at once, after migration 0015's backfill, and after ``flask maildelivery
stats --rebuild``; the page's failing domains show each domain's failure rate."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import command
from flask import Flask

from flask_maildelivery import MailDelivery, migrations, rollup
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.maintenance import purge
from flask_maildelivery.models import (
    Base,
    Email,
    HourlyDomain,
    HourlyFailure,
    HourlyOutcome,
    utcnow,
)

from .conftest import AppFactory
from .test_overview import PARIS, direct_counts, overview_app, seed

Snapshot = dict[str, dict[tuple[Any, ...], Any]]


def snapshot(app: Flask, *, latest: bool = True) -> Snapshot:
    """Every bucket of the three rollups that counts something (``latest``: with the latest
    failure of each failure bucket)."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        outcomes = {
            (r.tenant_key, r.hour, r.result, r.status, r.transport): r.emails
            for r in session.scalars(sa.select(HourlyOutcome))
            if r.emails
        }
        domains = {
            (r.tenant_key, r.domain, r.hour): r.recipients
            for r in session.scalars(sa.select(HourlyDomain))
            if r.recipients
        }
        failures = {
            (r.tenant_key, r.hour, r.domain): (
                (r.failures, r.last_failure_at, r.last_reason) if latest else r.failures
            )
            for r in session.scalars(sa.select(HourlyFailure))
            if r.failures
        }
        session.rollback()
    return {"outcomes": outcomes, "domains": domains, "failures": failures}


def recount(app: Flask, *, latest: bool = True) -> Snapshot:
    """The rollups counted again from the tables (:func:`rollup.rebuild`)."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        rollup.rebuild(session)
        session.commit()
    return snapshot(app, latest=latest)


def test_the_rollups_equal_a_recount_after_sends_events_moves_and_purge(
    make_app: AppFactory,
) -> None:
    log = overview_app(make_app)
    now = utcnow()
    ids = seed(log, "acme", now)
    seed(log, None, now)
    kept = snapshot(log.app)
    assert sum(kept["outcomes"].values()) == 16  # 8 emails for each of two tenants
    assert kept["failures"]  # the bounces and drops are counted by domain
    assert recount(log.app) == kept

    # the purge takes two of acme's emails away with their recipients and failures
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        session.execute(
            sa.update(Email)
            .where(Email.id.in_([ids["warning"], ids["old"]]))
            .values(created_at=now - timedelta(days=100))
        )
        session.commit()
        assert purge(log.app, now - timedelta(days=50)) == 2
    purged = snapshot(log.app)
    assert sum(purged["outcomes"].values()) == 14
    assert recount(log.app) == purged


def test_page_numbers_equal_direct_counts_in_a_half_hour_zone(make_app: AppFactory) -> None:
    log = overview_app(make_app)
    now = utcnow()
    seed(log, None, now)
    kolkata = ZoneInfo("Asia/Kolkata")
    # emails on both sides of a Kolkata midnight (18:30 UTC), in the hour it cuts
    midnight = datetime.combine(
        now.astimezone(kolkata).date() - timedelta(days=2), datetime.min.time(), tzinfo=kolkata
    )
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        # and on both sides of the window's first midnight, 29 days earlier
        first = midnight - timedelta(days=27)
        cases = [
            (midnight, -10, "bounced", "cut"),
            (midnight, 10, "bounced", "cut"),
            (midnight, 20, "delivered", "cut"),
            (first, -10, "bounced", "edge"),
            (first, 10, "bounced", "edge"),
            (first, 20, "delivered", "edge"),
        ]
        for moment, minutes, outcome, domain in cases:
            to = [f"kim{minutes}@{domain}.test", f"lou{minutes}@{domain}.test"]
            email = log.extension.send(subject="cut", to=to, text="x")
            ingest_events(
                [
                    NormalizedEvent(
                        provider="simulated",
                        provider_event_id=f"cut-{email.id}",
                        type=outcome,
                        raw_type=outcome,
                        occurred_at=now,
                        recipient=to[0],
                        maildelivery_id=email.public_id,
                        reason=f"550 cut {minutes}",
                    )
                ]
            )
            rollup.move_sent_at(session, email, moment + timedelta(minutes=minutes))
            session.commit()
    for zone in (kolkata, PARIS):
        expected = direct_counts(log, None, now, zone)
        api = log.client().get(f"/maildelivery/api/overview?tz={zone.key}").get_json()
        assert {d["day"]: {k: v for k, v in d["counts"].items() if v} for d in api["days"]} == {
            day: counts for day, counts in expected["days"].items()
        }, zone
        assert {d["domain"]: d["failures"] for d in api["domains"]} == expected["domains"]
        assert {d["domain"]: d["recipients"] for d in api["domains"]} == {
            d: expected["recipients"][d] for d in expected["domains"]
        }
        for domain in api["domains"]:
            assert domain["rate"] == domain["failures"] / domain["recipients"]
        for rate in api["rates"]:
            assert (rate["sent"], rate["bounced"], rate["complained"]) == expected["rates"][
                rate["days"]
            ]
    cut = next(d for d in api["domains"] if d["domain"] == "cut.test")
    assert (cut["failures"], cut["recipients"]) == (2, 6)
    kolkata_api = log.client().get("/maildelivery/api/overview?tz=Asia/Kolkata").get_json()
    edge = next(d for d in kolkata_api["domains"] if d["domain"] == "edge.test")
    assert (edge["failures"], edge["recipients"]) == (1, 4)  # one email before the window


def test_stats_rebuild_counts_the_rollups_again(make_app: AppFactory) -> None:
    log = overview_app(make_app)
    now = utcnow()
    seed(log, None, now)
    kept = snapshot(log.app)
    expected = direct_counts(log, None, now)
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        for table in (HourlyOutcome, HourlyDomain, HourlyFailure):
            session.execute(sa.delete(table))
        session.commit()
    emptied = log.client().get("/maildelivery/api/overview").get_json()
    assert sum(d["total"] for d in emptied["days"]) == 0

    with log.app.app_context():
        result = log.app.test_cli_runner().invoke(
            args=["maildelivery", "stats", "--rebuild", "--tz", "Europe/Paris"]
        )
    assert result.exit_code == 0, result.output
    outcome_rows, domain_rows, failure_rows = (len(kept[k]) for k in kept)
    assert (
        f"rollups rebuilt: {outcome_rows} hourly outcome row(s), {domain_rows} domain row(s),"
        f" {failure_rows} failure row(s)" in result.output
    )
    assert snapshot(log.app) == kept
    api = log.client().get("/maildelivery/api/overview").get_json()
    assert {d["day"]: {k: v for k, v in d["counts"].items() if v} for d in api["days"]} == {
        day: counts for day, counts in expected["days"].items()
    }


def test_migration_0015_backfills_what_the_package_keeps(
    make_app: AppFactory, schema: sa.Engine
) -> None:
    log = overview_app(make_app)
    now = utcnow()
    seed(log, "acme", now)
    seed(log, None, now)
    kept = snapshot(log.app)
    try:
        with schema.begin() as connection:
            for table in ("maildelivery_hourly_failure", "maildelivery_hourly_domain"):
                connection.execute(sa.text(f"DROP TABLE {table}"))
            connection.execute(sa.text("DROP TABLE maildelivery_hourly"))
        command.stamp(migrations.alembic_config(schema), "0014_superseded_attempts")
        migrations.upgrade(schema, "0015_hourly")
        assert migrations.current(schema) == "0015_hourly"
        assert snapshot(log.app) == kept
    finally:
        with schema.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        # whatever happened above, the other tests find every table
        Base.metadata.create_all(schema)


THREADS = 8
ROUNDS = 4
OUTCOMES = ("delivered", "bounced", "dropped", "deferred", "opened", "complained")


def test_the_rollups_stay_exact_under_concurrent_sends_and_events(make_app: AppFactory) -> None:
    log = overview_app(make_app)
    app = log.app
    extension = log.extension
    rng = random.Random(20261201)
    domains = [f"d{n}.test" for n in range(5)]
    with app.app_context():
        first = [
            extension.send(
                subject=f"first {n}",
                to=[f"a{n}@{domains[n % 5]}", f"b{n}@{domains[(n + 1) % 5]}"],
                text="x",
            )
            for n in range(12)
        ]
        targets = [(e.public_id, [r.address for r in e.recipients]) for e in first]
    now = utcnow()
    plans = [
        [
            [
                (public_id, rng.choice(addresses), rng.choice(OUTCOMES), f"ev-{t}-{r}-{k}")
                for k, (public_id, addresses) in enumerate(rng.sample(targets, 5))
            ]
            for r in range(ROUNDS)
        ]
        for t in range(THREADS)
    ]
    own_domains = [[rng.sample(domains, 2) for _ in range(ROUNDS)] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    sent: list[tuple[str, list[str]]] = []

    def worker(number: int, rounds: list[list[tuple[str, str, str, str]]]) -> None:
        try:
            with app.app_context():
                barrier.wait()
                for round_number, batch in enumerate(rounds):
                    to = [
                        f"t{number}.{round_number}@{d}" for d in own_domains[number][round_number]
                    ]
                    email = extension.send(subject=f"thread {number}", to=to, text="x")
                    sent.append((email.public_id, to))
                    ingest_events(
                        [
                            NormalizedEvent(
                                provider="simulated",
                                provider_event_id=event_id,
                                type=outcome,
                                raw_type=outcome,
                                occurred_at=now + timedelta(seconds=len(event_id)),
                                recipient=address,
                                maildelivery_id=public_id,
                                reason=f"{outcome} {event_id}",
                            )
                            for public_id, address, outcome, event_id in batch
                        ]
                        # and the thread's own new email, in the same batch
                        + [
                            NormalizedEvent(
                                provider="simulated",
                                provider_event_id=f"own-{number}-{round_number}",
                                type="bounced",
                                raw_type="bounced",
                                occurred_at=now,
                                recipient=to[0],
                                maildelivery_id=email.public_id,
                                reason="550 gone",
                            )
                        ]
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n, plan)) for n, plan in enumerate(plans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sent) == THREADS * ROUNDS
    kept = snapshot(app, latest=False)
    assert sum(kept["outcomes"].values()) == 12 + THREADS * ROUNDS
    assert sum(kept["domains"].values()) == 2 * (12 + THREADS * ROUNDS)
    assert sum(kept["failures"].values()) >= THREADS * ROUNDS
    # a failure that a later one of a higher rank but an earlier time replaces leaves the
    # latest it saw: the counts are compared here, the latest in the other tests
    assert recount(app, latest=False) == kept
