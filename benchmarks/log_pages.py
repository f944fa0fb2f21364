"""Speed of the delivery log pages on a large PostgreSQL database.

Fills PostgreSQL with 1,000,000 emails and 3,000,000 recipients (``COPY``; about 3% of the
emails failed), then measures the server time (median of 20 requests through the app) of:

* the default first page (failed emails only),
* the first page of all emails ("Show all emails"),
* the 1,000th page of all emails, reached by cursor,
* a search by recipient address,
* a search by part of an address: a domain (``LIKE '%customer123.test%'``, 0.2% of the
  recipients: the newest emails read first, as the planner's histogram of addresses of
  migration ``0013_address_statistics`` shows it common), and part of a name (``c12345``, a
  few hundred recipients: the trigram index of migration ``0011_address_trigram``), and a
  part as rare taken from a bound of the planner's histogram of addresses (estimated at
  one bound's share of the recipients: with 1,001 bounds the newest emails were read first,
  0.6-0.7 s; with the 5,001 of migration ``0018_address_statistics_5000``, the trigram
  index),
* a detail page,
* the addresses with problems (``/addresses``): first page, a page by cursor, the
  suppressed ones, one contact type; over 200,000 address records (one per customer: the
  failing ones as the migration's backfill makes them from the recipients, the others as
  their deliveries left them),

and the overview page (``--only overview`` measures it alone): its 30 days of figures from the
hourly rollups (``maildelivery_hourly*``, counted from the copied rows after the fill), each
group of its statements on its own, and its statements with the days cut in a zone whose
midnights fall at half past a UTC hour (Asia/Kolkata).

Target: each page at most 15 ms median, the search by part of an address at most 50 ms, the
overview at most 50 ms. For information it also prints each page's floor (the bare SQL the
page runs, through a raw psycopg connection) and the page's own statements through
SQLAlchemy without rendering.

::

    python benchmarks/log_pages.py                      # fill (when empty) and measure
    python benchmarks/log_pages.py --refill             # drop, fill again, measure
    python benchmarks/log_pages.py --url postgresql+psycopg://postgres@127.0.0.1:5432/bench

The URL also comes from ``MAILDELIVERY_BENCH_DATABASE_URL``; its database is created when
the server does not have it.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy as sa
from database_setup import create_database_if_missing

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/md_pages"
EMAILS = 1_000_000
RECIPIENTS_PER_EMAIL = 3
CUSTOMERS = 200_000
REPEAT = 20
TARGET_MS = 15.0
# the year of emails ends when the database is filled, so the overview's last 30 days hold
# a month of them
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365, minutes=5)
#: The search by part of an address reads a trigram index, not a b-tree range.
CONTAINS_TARGET_MS = 50.0
SPAN = timedelta(days=365)

REASON = "550 5.1.1 The email account that you tried to reach does not exist"
HTML = "<p>Dear customer,</p><p>please find invoice {n} attached.</p><p>Acme billing</p>"
TEXT = "Dear customer,\\n\\nplease find invoice {n} attached.\\n\\nAcme billing"


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def failed_kind(i: int) -> str | None:
    """About 3% of the emails failed: ``error`` (every recipient) or ``warning`` (one)."""
    bucket = (i * 2654435761) % 1000
    if bucket < 15:
        return "error"
    if bucket < 30:
        return "warning"
    return None


def customer_address(i: int, k: int) -> str:
    n = (i * 7 + k * 104729) % CUSTOMERS
    return f"c{n}@customer{n % 500}.test"


def _copy(cursor: psycopg.Cursor[Any], statement: str, lines: Iterator[str]) -> None:
    with cursor.copy(statement) as copy:
        buffer = io.StringIO()
        for count, line in enumerate(lines, 1):
            buffer.write(line)
            if count % 20_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def email_lines() -> Iterator[str]:
    step = SPAN / EMAILS
    for i in range(1, EMAILS + 1):
        kind = failed_kind(i)
        if kind is None:
            result, status = "delivered", ("opened" if i % 3 == 0 else "")
        else:
            result, status = kind, ("dropped" if i % 3 == 0 else "bounced")
        at = _ts(START + step * i)
        yield (
            f"{i}\t{i:032x}\t\\N\t{at}\t{at}\t{at}\t7\tBilling <billing@acme.test>\t\\N\t"
            f"Invoice INV-{i:07d}\t{TEXT.format(n=i)}\t{HTML.format(n=i)}\t[]\t{{}}\t{{}}\t"
            f"invoice\t{i}\tsmtp\t<{i}@acme.test>\t\\N\t{status}\t{result}\t\\N\n"
        )


def recipient_lines() -> Iterator[str]:
    step = SPAN / EMAILS
    rid = 0
    for i in range(1, EMAILS + 1):
        kind = failed_kind(i)
        at = _ts(START + step * i)
        for k in range(RECIPIENTS_PER_EMAIL):
            rid += 1
            address = customer_address(i, k)
            failed = kind == "error" or (kind == "warning" and k == 0)
            if failed:
                status = "dropped" if i % 3 == 0 else "bounced"
                extra = f"{REASON}\t550\thard"
            else:
                status = "opened" if (i % 3 == 0 and k == 1) else "delivered"
                extra = "\\N\t\\N\t\\N"
            yield (
                f"{rid}\t{i}\t{address}\t{address}\t\\N\t{'to' if k < 2 else 'cc'}\tcustomer\t"
                f"{(i * 7 + k * 104729) % CUSTOMERS}\t{status}\t{extra}\t{at}\t{at}\n"
            )


def event_lines() -> Iterator[str]:
    """``processed`` then the final event of every recipient of the failed emails."""
    step = SPAN / EMAILS
    eid = 0
    for i in range(1, EMAILS + 1):
        kind = failed_kind(i)
        if kind is None:
            continue
        at = START + step * i
        for k in range(RECIPIENTS_PER_EMAIL):
            rid = (i - 1) * RECIPIENTS_PER_EMAIL + k + 1
            failed = kind == "error" or k == 0
            final = ("dropped" if i % 3 == 0 else "bounced") if failed else "delivered"
            address = customer_address(i, k)
            for n, (etype, delay) in enumerate((("processed", 1), (final, 30))):
                eid += 1
                reason = REASON if etype in ("bounced", "dropped") else "\\N"
                yield (
                    f"{eid}\t{i}\t{rid}\tsendgrid\tev-{rid}-{n}\t{etype}\t{etype}\t"
                    f"{_ts(at + timedelta(seconds=delay))}\t{_ts(at + timedelta(seconds=delay + 2))}\t"
                    f"{reason}\t\\N\t\\N\t{address}\t{i:032x}\t<{i}@acme.test>\t{{}}\n"
                )


def upgrade_schema(url: str) -> None:
    """Apply the package's migrations the database does not have yet."""
    from flask_maildelivery import migrations

    engine = sa.create_engine(url)
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()


def fill(url: str) -> None:
    """Drop the package's tables, build them with the package's migrations, fill them."""
    from flask_maildelivery import migrations
    from flask_maildelivery.models import Base

    engine = sa.create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as dropping:
        dropping.execute(sa.text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
    migrations.upgrade(engine)
    engine.dispose()

    started = time.perf_counter()
    with psycopg.connect(_libpq_url(url)) as connection, connection.cursor() as cursor:
        _copy(
            cursor,
            "COPY maildelivery_email (id, public_id, tenant_id, created_at, sent_at, updated_at,"
            " sent_by, sender, reply_to, subject, text_body, html_body, attachments, headers,"
            " metadata, related_type, related_id, transport, provider_message_id, error,"
            " status, result, resent_from_id) FROM STDIN",
            email_lines(),
        )
        print(f"  emails copied ({time.perf_counter() - started:.0f} s)", flush=True)
        _copy(
            cursor,
            "COPY maildelivery_recipient (id, email_id, address, address_key, name, kind,"
            " contact_type, contact_id, status, reason, smtp_code, bounce_type, status_at,"
            " updated_at) FROM STDIN",
            recipient_lines(),
        )
        print(f"  recipients copied ({time.perf_counter() - started:.0f} s)", flush=True)
        _copy(
            cursor,
            "COPY maildelivery_event (id, email_id, recipient_id, provider, provider_event_id,"
            " type, raw_type, occurred_at, received_at, reason, smtp_code, bounce_type, address,"
            " correlation_id, provider_message_id, payload) FROM STDIN",
            event_lines(),
        )
        for table in ("maildelivery_email", "maildelivery_recipient", "maildelivery_event"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        connection.commit()
    fill_addresses(url)
    rebuild_rollups(url)
    with psycopg.connect(_libpq_url(url), autocommit=True) as maintenance:
        maintenance.execute("VACUUM ANALYZE")
    print(f"  filled in {time.perf_counter() - started:.0f} s", flush=True)


def rebuild_rollups(url: str) -> None:
    """Count the overview's hourly rollups from the copied rows, as ``flask maildelivery
    stats --rebuild`` does (``COPY`` bypasses the send path that keeps them)."""
    from sqlalchemy.orm import Session

    from flask_maildelivery import rollup

    started = time.perf_counter()
    engine = sa.create_engine(url)
    try:
        with Session(engine) as session:
            rollup.rebuild(session)
            session.commit()
    finally:
        engine.dispose()
    print(f"  hourly rollups counted ({time.perf_counter() - started:.0f} s)", flush=True)


#: The failing addresses, as the backfill of migration 0007 makes them (hard bounces,
#: suppressed when no delivery followed the last one).
BACKFILL_SQL = """
INSERT INTO maildelivery_address (tenant_key, address, address_key, contact_type, contact_id,
    hard_bounces, soft_bounces, complaints, failures, soft_bounce_streak, last_failure_at,
    last_failure_reason, last_failure_email_id, last_delivered_at, suppressed, suppressed_at,
    suppressed_reason, suppressed_cause, suppressed_email_id, updated_at)
SELECT '', max(r.address), r.address_key, 'customer', max(r.contact_id),
    count(*) FILTER (WHERE r.status = 'bounced'), 0, 0,
    count(*) FILTER (WHERE r.status = 'bounced'), 0,
    max(r.status_at) FILTER (WHERE r.status = 'bounced'), max(r.reason), max(r.email_id),
    max(r.status_at) FILTER (WHERE r.status IN ('delivered', 'opened', 'clicked')),
    false, NULL, NULL, NULL, NULL, now()
FROM maildelivery_recipient r
GROUP BY r.address_key
HAVING count(*) FILTER (WHERE r.status = 'bounced') > 0
ON CONFLICT (tenant_key, address_key) DO NOTHING
"""
SUPPRESS_SQL = """
UPDATE maildelivery_address SET suppressed = true, suppressed_at = last_failure_at,
    suppressed_reason = last_failure_reason, suppressed_cause = 'hard',
    suppressed_email_id = last_failure_email_id
WHERE hard_bounces > 0 AND (last_delivered_at IS NULL OR last_delivered_at < last_failure_at)
"""
#: Every other customer address: delivered, no failure.
TOP_UP_SQL = """
INSERT INTO maildelivery_address (tenant_key, address, address_key, contact_type, contact_id,
    hard_bounces, soft_bounces, complaints, failures, soft_bounce_streak, last_delivered_at,
    suppressed, updated_at)
SELECT '', a, a, 'customer', n::text, 0, 0, 0, 0, 0, now(), false, now()
FROM (SELECT n, 'c' || n || '@customer' || (n %% 500) || '.test' AS a
      FROM generate_series(0, %s - 1) AS n) AS customers
ON CONFLICT (tenant_key, address_key) DO NOTHING
"""


def fill_addresses(url: str) -> None:
    """One address record per customer (:data:`CUSTOMERS`): the failing ones from the
    recipients (as the backfill of migration 0007 makes them), the others delivered."""
    with psycopg.connect(_libpq_url(url)) as connection:
        count = connection.execute("SELECT count(*) FROM maildelivery_address").fetchone()
        if count is not None and count[0] >= CUSTOMERS:
            return
        started = time.perf_counter()
        connection.execute(BACKFILL_SQL)
        connection.execute(SUPPRESS_SQL)
        connection.execute(TOP_UP_SQL, (CUSTOMERS,))
        connection.commit()
    with psycopg.connect(_libpq_url(url), autocommit=True) as maintenance:
        maintenance.execute("VACUUM ANALYZE maildelivery_address")
    print(f"  address records filled ({time.perf_counter() - started:.0f} s)", flush=True)


def filled(url: str) -> bool:
    """Whether the database holds the benchmark's data already."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            count = connection.execute(
                sa.text("SELECT count(*) FROM (SELECT 1 FROM maildelivery_email LIMIT :n) t"),
                {"n": EMAILS},
            ).scalar_one()
            return bool(count == EMAILS)
    except sa.exc.ProgrammingError:
        return False
    finally:
        engine.dispose()


# -- measuring ---------------------------------------------------------------------------

LIST_SQL = """
SELECT id, public_id, sent_at, status, result, subject, sender, transport, reviewed_at,
       resolved_by_id,
       (SELECT count(c.id) FROM maildelivery_email c WHERE c.resent_from_id = e.id) AS copy_count
FROM maildelivery_email e WHERE tenant_id IS NULL {where}
ORDER BY sent_at DESC, id DESC LIMIT 51
"""
FAILED_ONLY = (
    "AND (result IN ('error', 'failed', 'warning')"
    " OR status IN ('bounced', 'complained', 'deferred', 'dropped', 'failed', 'suppressed'))"
    " AND reviewed_at IS NULL AND resolved_by_id IS NULL"
)
TO_SQL = """
SELECT email_id, address, total FROM (
  SELECT email_id, address,
         row_number() OVER (PARTITION BY email_id ORDER BY id) AS position,
         count(*) OVER (PARTITION BY email_id) AS total
  FROM maildelivery_recipient WHERE email_id = ANY(%s)
) numbered WHERE position <= 3 ORDER BY email_id, position
"""
DETAIL_SQL = (
    "SELECT * FROM maildelivery_email WHERE id = %s AND tenant_id IS NULL",
    "SELECT * FROM maildelivery_recipient WHERE email_id = %s ORDER BY id",
    "SELECT * FROM maildelivery_event WHERE email_id = %s",
    "SELECT id, sent_at, result FROM maildelivery_email WHERE resent_from_id = %s"
    " AND tenant_id IS NULL"
    " ORDER BY id",
)


def _interleaved_medians(*runs: Callable[[], float | None]) -> list[float]:
    """The median time (ms) of each of ``runs`` over :data:`REPEAT` rounds, the runs taking
    turns in every round so that a slower moment of the machine weighs on all of them.
    A run returns the time it measured itself (ms), or ``None`` to be timed from outside."""
    for run in runs:
        for _ in range(3):  # warm caches and prepared statements
            run()
    timings: list[list[float]] = [[] for _ in runs]
    for _ in range(REPEAT):
        for run, times in zip(runs, timings, strict=True):
            started = time.perf_counter()
            measured = run()
            times.append(
                measured if measured is not None else (time.perf_counter() - started) * 1000
            )
    return [statistics.median(times) for times in timings]


def _untimed(run: Callable[[], object]) -> Callable[[], None]:
    """``run``, to be timed from outside by :func:`_interleaved_medians`."""

    def untimed() -> None:
        run()

    return untimed


class ServerTimer:
    """WSGI middleware that keeps the server time of the last request (ms): from the call
    of the app until its response body was read and closed, the test client's own work
    (building the request, parsing the response) left out."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        started = time.perf_counter()
        iterable = self.app(environ, start_response)
        try:
            body = list(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        self.last_ms = (time.perf_counter() - started) * 1000
        return body


def _bare_list(
    connection: psycopg.Connection[Any], where: str, params: tuple[Any, ...], prepare: bool = True
) -> Callable[[], object]:
    """The list's bare SQL; ``prepare=False`` for a search by part of an address: planned
    for its own pattern each time and without parallel workers, as the page has it
    (``plan_for_each_search``)."""
    sql = LIST_SQL.format(where=where)

    def run() -> object:
        if not prepare:
            connection.execute("SET max_parallel_workers_per_gather = 0")
        rows = connection.execute(sql, params, prepare=None if prepare else False).fetchall()
        if not prepare:
            connection.execute("RESET max_parallel_workers_per_gather")
        ids = [r[0] for r in rows[:50]]
        return connection.execute(TO_SQL, (ids,)).fetchall()

    return run


ADDRESSES_SQL = """
SELECT id, address, contact_type, contact_id, hard_bounces, soft_bounces, complaints, failures,
       last_failure_at, last_failure_reason, last_failure_email_id, last_delivered_at,
       suppressed, suppressed_at, suppressed_reason, lifted_at, lifted_by
FROM maildelivery_address WHERE tenant_key = '' AND (suppressed OR failures > 0) {where}
ORDER BY suppressed DESC, failures DESC, id DESC LIMIT 51
"""


def _bare_addresses(
    connection: psycopg.Connection[Any], where: str, params: tuple[Any, ...] = ()
) -> Callable[[], object]:
    sql = ADDRESSES_SQL.format(where=where)

    def run() -> object:
        return connection.execute(sql, params).fetchall()

    return run


def _bare_search(connection: psycopg.Connection[Any], text: str) -> Callable[[], object]:
    """The list's bare SQL searching recipient addresses that contain ``text``: a text with
    an "@" looked up in the trigram index by its part up to the "@", as the page does."""
    local, at, _ = text.partition("@")
    if at and len(local) >= 3:
        return _bare_list(
            connection,
            "AND id IN (SELECT email_id FROM maildelivery_recipient"
            " WHERE address_key LIKE %s AND strpos(address_key, %s) > 0)",
            (f"%{local}@%", text),
            prepare=False,
        )
    return _bare_list(
        connection,
        "AND id IN (SELECT email_id FROM maildelivery_recipient WHERE address_key LIKE %s)",
        (f"%{text}%",),
        prepare=False,
    )


def _name_in_histogram(connection: psycopg.Connection[Any]) -> str:
    """The customer number part (``c12345``) of an address among the bounds of PostgreSQL's
    histogram of ``maildelivery_recipient.address_key``, from the middle of the histogram."""
    bounds = connection.execute(
        "SELECT histogram_bounds::text::text[] FROM pg_stats"
        " WHERE tablename = 'maildelivery_recipient' AND attname = 'address_key'"
        " AND schemaname = current_schema()"
    ).fetchone()
    if bounds is None or not bounds[0]:
        raise RuntimeError("the recipients' addresses have no histogram: run ANALYZE")
    middle = bounds[0][len(bounds[0]) // 2 :]
    for bound in middle:
        part = re.match(r"c\d{5}", bound)
        if part:
            return part.group(0)
    raise RuntimeError("no bound of the histogram holds a customer number of five digits")


def _bare_detail(connection: psycopg.Connection[Any], email_id: int) -> Callable[[], object]:
    def run() -> object:
        return [connection.execute(sql, (email_id,)).fetchall() for sql in DETAIL_SQL]

    return run


def _make_app(url: str) -> Any:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_maildelivery import MailDelivery

    class Admin:
        is_admin = True
        is_authenticated = True

        def get_id(self) -> str:
            return "admin"

    app = Flask("maildelivery_benchmark")
    app.config.update(
        SECRET_KEY="benchmark",
        SQLALCHEMY_DATABASE_URI=url,
        MAILDELIVERY_TRANSPORT="memory",
        MAILDELIVERY_PAGE_SIZE=50,
    )
    db = SQLAlchemy()
    db.init_app(app)
    mail_delivery = MailDelivery(app, db=db)
    mail_delivery.user_loader(Admin)
    return app


def _page_queries(app: Any, path: str) -> Callable[[], object]:
    """The statements the page at ``path`` runs, on the connection the pages read on, unrendered."""
    from urllib.parse import parse_qs, urlsplit

    from flask_maildelivery.views import addresses, queries

    parts = urlsplit(path)
    args = {k: v[0] for k, v in parse_qs(parts.query).items()}
    detail_id = parts.path.rstrip("/").rsplit("/", 1)[-1]

    def run() -> object:
        with app.app_context(), queries.reading() as connection:
            if detail_id == "addresses":
                address_filter = addresses.AddressFilter.from_args(args)
                return addresses.address_page(connection, address_filter, None, 50)
            if detail_id.isdigit():
                return queries.email_detail(connection, int(detail_id), None)
            log_filter = replace(
                queries.LogFilter.from_args(args),
                recipient_search=queries.address_search(connection),
            )
            return queries.log_page(connection, log_filter, None, 50)

    return run


def _timed_app(url: str) -> tuple[Any, ServerTimer, Any]:
    """The benchmark's app on ``url``, the timer of its requests, and its test client."""
    app = _make_app(url)
    timer = ServerTimer(app.wsgi_app)
    app.wsgi_app = timer
    return app, timer, app.test_client()


def measure(url: str) -> int:
    """Measure every page; print the figures; 0 when every page is within the target."""
    from flask_maildelivery.views.addresses import AddressCursor
    from flask_maildelivery.views.queries import Cursor

    app, timer, client = _timed_app(url)
    with psycopg.connect(_libpq_url(url), autocommit=True) as connection:
        # the row that ends page 999 of "all emails": its cursor opens page 1,000
        page_end = connection.execute(
            "SELECT sent_at, id FROM maildelivery_email WHERE tenant_id IS NULL"
            " ORDER BY sent_at DESC, id DESC OFFSET %s LIMIT 1",
            (999 * 50 - 1,),
        ).fetchone()
        if page_end is None:
            raise RuntimeError("the database holds fewer than 1,000 pages of emails")
        sent_at, last_id = page_end
        cursor = Cursor(sent_at.replace(tzinfo=UTC), last_id, "after")
        address = customer_address(EMAILS // 2, 0)
        worst = connection.execute(
            "SELECT suppressed, failures, id FROM maildelivery_address WHERE tenant_key = ''"
            " AND (suppressed OR failures > 0) ORDER BY suppressed DESC, failures DESC, id DESC"
            " OFFSET %s LIMIT 1",
            (19 * 50 - 1,),
        ).fetchone()
        if worst is None:
            raise RuntimeError("the database holds fewer than 20 pages of failing addresses")
        address_cursor = AddressCursor(*worst)
        failed_id = next(i for i in range(EMAILS // 2, EMAILS) if failed_kind(i))
        # each of the 500 domains holds 0.2% of the recipients; customer0.test would be the
        # exception, its "er0" trigram being in no other domain
        domain = "customer123.test"
        # the part of a name few addresses contain (about 165 recipients)
        name_part = "c12345"
        # as rare, but taken from a bound of the planner's histogram of addresses (each
        # ANALYZE draws other bounds): estimated at one bound's share of the recipients,
        # which must stay under the share that makes reading the newest emails first look
        # cheaper than the trigram index
        bound_part = _name_in_histogram(connection)
        Bare = Callable[[psycopg.Connection[Any]], Callable[[], object]]
        cases: list[tuple[str, str, Bare] | tuple[str, str, Bare, float]] = [
            (
                "failed emails, first page",
                "/maildelivery/",
                lambda c: _bare_list(c, FAILED_ONLY, ()),
            ),
            ("all emails, first page", "/maildelivery/?show=all", lambda c: _bare_list(c, "", ())),
            (
                "all emails, page 1,000 by cursor",
                f"/maildelivery/?show=all&cursor={cursor.encode()}",
                lambda c: _bare_list(c, "AND (sent_at, id) < (%s, %s)", (sent_at, last_id)),
            ),
            (
                "search by recipient address",
                f"/maildelivery/?show=all&recipient={address}",
                lambda c: _bare_search(c, address),
            ),
            (
                "search by part of an address",
                f"/maildelivery/?show=all&recipient={domain}",
                lambda c: _bare_search(c, domain),
                CONTAINS_TARGET_MS,
            ),
            (
                "search by part of a name",
                f"/maildelivery/?show=all&recipient={name_part}",
                lambda c: _bare_search(c, name_part),
                CONTAINS_TARGET_MS,
            ),
            (
                "search by a part in the histogram",
                f"/maildelivery/?show=all&recipient={bound_part}",
                lambda c: _bare_search(c, bound_part),
                CONTAINS_TARGET_MS,
            ),
            ("detail page", f"/maildelivery/{failed_id}", lambda c: _bare_detail(c, failed_id)),
            ("addresses, first page", "/maildelivery/addresses", lambda c: _bare_addresses(c, "")),
            (
                "addresses, page 20 by cursor",
                f"/maildelivery/addresses?cursor={address_cursor.encode()}",
                lambda c: _bare_addresses(
                    c,
                    "AND (NOT suppressed AND %s OR suppressed = %s AND failures < %s"
                    " OR suppressed = %s AND failures = %s AND id < %s)",
                    (
                        address_cursor.suppressed,
                        address_cursor.suppressed,
                        address_cursor.failures,
                        address_cursor.suppressed,
                        address_cursor.failures,
                        address_cursor.id,
                    ),
                ),
            ),
            (
                "addresses, suppressed only",
                "/maildelivery/addresses?state=suppressed",
                lambda c: _bare_addresses(c, "AND suppressed"),
            ),
            (
                "addresses, one contact type",
                "/maildelivery/addresses?contact_type=customer",
                lambda c: _bare_addresses(c, "AND contact_type = 'customer'"),
            ),
        ]
        print(
            f"\n{'page':<34}{'page ms':>9}{'target':>8}  {'':<6}{'floor ms':>9}{'queries ms':>12}"
            f"{'rows':>6}"
        )
        ok = True
        for name, path, bare, *limit in cases:
            target = limit[0] if limit else TARGET_MS

            def page(path: str = path) -> float:
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}")
                return timer.last_ms

            html = client.get(path).data
            if "/addresses" in path:
                rows = html.count(b"<tr data-address=")
            elif "?" in path or path.endswith("/"):
                rows = html.count(b"data-email-id=")
            else:
                rows = 1
            page_ms, floor_ms, queries_ms = _interleaved_medians(
                page, _untimed(bare(connection)), _untimed(_page_queries(app, path))
            )
            holds = page_ms <= target
            ok = ok and holds
            print(
                f"{name:<34}{page_ms:>9.2f}{target:>8.0f}  {'ok' if holds else 'MISS':<6}"
                f"{floor_ms:>9.2f}{queries_ms:>12.2f}{rows:>6}"
            )
    print(
        f"\nmedian of {REPEAT} rounds (ms), the three taking turns in each round; page: the"
        f" server time of the\nwhole request (WSGI call to the last byte of the body), against"
        f" its target;\nfor information, floor: the page's bare SQL on a"
        f" raw psycopg connection in autocommit mode;\nqueries: the page's own statements"
        f" through SQLAlchemy, without rendering."
    )
    return 0 if ok else 1


OVERVIEW_TARGET_MS = 50.0
#: A zone whose midnights cut UTC hours in two, timed for information.
HALF_HOUR_ZONE = "Asia/Kolkata"


#: The overview's statements, timed one by one for information.
OVERVIEW_PARTS = ("days by result and status", "failing domains", "providers", "attention counts")


def _overview_part(app: Any, part: str) -> Callable[[], None]:
    """One group of the overview's statements (see :data:`OVERVIEW_PARTS`), untimed."""
    from flask_maildelivery.context import get_state
    from flask_maildelivery.models import utcnow
    from flask_maildelivery.tracking import tracking
    from flask_maildelivery.views import overview, queries

    def run() -> None:
        with app.test_request_context(), queries.reading() as connection:
            now = utcnow()
            zone = overview.as_zoneinfo(None)
            bounds = overview.day_bounds(zone, now)
            track = tracking(get_state())
            if part == OVERVIEW_PARTS[0]:
                overview.outcomes(connection, bounds, None)
            elif part == OVERVIEW_PARTS[1]:
                overview.failing_domains(connection, bounds, None)
            elif part == OVERVIEW_PARTS[2]:
                overview.provider_health(connection, ["sendgrid"], None, track, now)
            else:
                overview.attention_counts(connection, None, track, now)

    return run


def measure_overview(url: str) -> int:
    """Measure the overview page and its statements; print the figures; 0 within target."""
    from flask_maildelivery.views import i18n
    from flask_maildelivery.views.reading import read_overview

    app, timer, client = _timed_app(url)
    with psycopg.connect(_libpq_url(url), autocommit=True) as connection:
        newest = connection.execute("SELECT max(sent_at) FROM maildelivery_email").fetchone()
    if (
        newest is None
        or newest[0] is None
        or newest[0] < datetime.now(UTC).replace(tzinfo=None) - timedelta(days=2)
    ):
        print(
            "\nthe emails end more than two days ago: the overview's last 30 days would be"
            " nearly empty; fill again with --refill to measure it"
        )
        return 1

    def page() -> float:
        response = client.get("/maildelivery/overview")
        if response.status_code != 200:
            raise RuntimeError(f"/maildelivery/overview answered {response.status_code}")
        return timer.last_ms

    def statements() -> object:
        with app.test_request_context():
            return read_overview(None, i18n.viewer_timezone())

    def half_hour_zone() -> object:
        # midnights at hh:30 UTC: the hours they cut are counted from the emails
        with app.test_request_context():
            return read_overview(None, ZoneInfo(HALF_HOUR_ZONE))

    with app.test_request_context():
        figures = read_overview(None, i18n.viewer_timezone())
    emails = sum(day.total for day in figures.days)
    page_ms, queries_ms, half_hour_ms, *parts_ms = _interleaved_medians(
        page,
        _untimed(statements),
        _untimed(half_hour_zone),
        *(_overview_part(app, part) for part in OVERVIEW_PARTS),
    )
    holds = page_ms <= OVERVIEW_TARGET_MS
    print(
        f"\n{'page':<34}{'page ms':>9}{'target':>8}  {'':<6}{'queries ms':>12}{'emails':>9}\n"
        f"{'overview (30 days)':<34}{page_ms:>9.2f}{OVERVIEW_TARGET_MS:>8.0f}"
        f"  {'ok' if holds else 'MISS':<6}{queries_ms:>12.2f}{emails:>9,}"
    )
    print("\nthe overview's statements, each on its own (ms):")
    for part, ms in zip(OVERVIEW_PARTS, parts_ms, strict=True):
        print(f"  {part:<34}{ms:>9.2f}")
    print(f"  {'all of them, days in ' + HALF_HOUR_ZONE:<34}{half_hour_ms:>9.2f}")
    print(
        f"\nmedian of {REPEAT} rounds (ms); emails: those of the chart's 30 days; queries:"
        f" the overview's statements through SQLAlchemy, without rendering."
    )
    return 0 if holds else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("MAILDELIVERY_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--refill", action="store_true", help="drop and fill the tables again")
    parser.add_argument("--fill-only", action="store_true", help="fill, do not measure")
    parser.add_argument(
        "--only",
        choices=("pages", "overview"),
        default=None,
        help="measure only the log pages, or only the overview",
    )
    args = parser.parse_args(argv)
    create_database_if_missing(args.url)
    if args.refill or not filled(args.url):
        print(
            f"filling {EMAILS:,} emails, {EMAILS * RECIPIENTS_PER_EMAIL:,} recipients", flush=True
        )
        fill(args.url)
    else:
        # data filled by an earlier version: bring its schema to the package's migrations
        upgrade_schema(args.url)
        fill_addresses(args.url)
    if args.fill_only:
        return 0
    pages = 0 if args.only == "overview" else measure(args.url)
    overview = 0 if args.only == "pages" else measure_overview(args.url)
    return pages or overview


if __name__ == "__main__":
    sys.exit(main())
