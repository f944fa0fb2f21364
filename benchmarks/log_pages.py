"""Speed of the delivery log pages on a large PostgreSQL database.

Fills PostgreSQL with 1,000,000 emails and 3,000,000 recipients (``COPY``; about 3% of the
emails failed), then measures the server time (median of 20 requests through the app) of:

* the default first page (failed emails only),
* the first page of all emails ("Show all emails"),
* the 1,000th page of all emails, reached by cursor,
* a search by recipient address,
* a search by part of an address (a domain, ``LIKE '%customer0.test%'``, through the
  trigram index of migration ``0011_address_trigram``),
* a detail page,

Target: each page at most 15 ms median, the search by part of an address at most 50 ms. For
information it also prints each page's floor (the bare SQL the page runs, through a raw
psycopg connection) and the page's own statements through SQLAlchemy without rendering.

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
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from database_setup import create_database_if_missing

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/md_pages"
EMAILS = 1_000_000
RECIPIENTS_PER_EMAIL = 3
CUSTOMERS = 200_000
REPEAT = 20
TARGET_MS = 15.0
#: The search by part of an address reads a trigram index, not a b-tree range.
CONTAINS_TARGET_MS = 50.0
START = datetime(2025, 11, 1, tzinfo=UTC)
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
    with psycopg.connect(_libpq_url(url), autocommit=True) as maintenance:
        maintenance.execute("VACUUM ANALYZE")
    print(f"  filled in {time.perf_counter() - started:.0f} s", flush=True)


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
    for its own pattern each time, as the page has it (``plan_for_each_search``)."""
    sql = LIST_SQL.format(where=where)

    def run() -> object:
        rows = connection.execute(sql, params, prepare=None if prepare else False).fetchall()
        ids = [r[0] for r in rows[:50]]
        return connection.execute(TO_SQL, (ids,)).fetchall()

    return run


def _bare_search(connection: psycopg.Connection[Any], text: str) -> Callable[[], object]:
    """The list's bare SQL searching recipient addresses that contain ``text``."""
    return _bare_list(
        connection,
        "AND id IN (SELECT email_id FROM maildelivery_recipient WHERE address_key LIKE %s)",
        (f"%{text}%",),
        prepare=False,
    )


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

    from flask_maildelivery.views import queries

    parts = urlsplit(path)
    args = {k: v[0] for k, v in parse_qs(parts.query).items()}
    detail_id = parts.path.rstrip("/").rsplit("/", 1)[-1]

    def run() -> object:
        with app.app_context(), queries.reading() as connection:
            if detail_id.isdigit():
                return queries.email_detail(connection, int(detail_id), None)
            log_filter = replace(
                queries.LogFilter.from_args(args),
                recipient_search=queries.address_search(connection),
            )
            return queries.log_page(connection, log_filter, None, 50)

    return run


def measure(url: str) -> int:
    """Measure every page; print the figures; 0 when every page is within the target."""
    from flask_maildelivery.views.queries import Cursor

    app = _make_app(url)
    timer = ServerTimer(app.wsgi_app)
    app.wsgi_app = timer
    client = app.test_client()
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
        failed_id = next(i for i in range(EMAILS // 2, EMAILS) if failed_kind(i))
        domain = f"customer{(EMAILS // 2) % 500}.test"
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
            ("detail page", f"/maildelivery/{failed_id}", lambda c: _bare_detail(c, failed_id)),
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
            rows = html.count(b"data-email-id=") if "?" in path or path.endswith("/") else 1
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("MAILDELIVERY_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--refill", action="store_true", help="drop and fill the tables again")
    parser.add_argument("--fill-only", action="store_true", help="fill, do not measure")
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
    if args.fill_only:
        return 0
    return measure(args.url)


if __name__ == "__main__":
    sys.exit(main())
