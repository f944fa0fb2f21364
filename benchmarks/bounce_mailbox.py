"""What reading a bounce mailbox costs, against applying the same events directly.

N emails are recorded, then N Postfix DSNs (one per email, each to its tagged VERP address)
are written into a Maildir. Printed per database, in the same run:

* ``ingest_events``: the same N ``bounced`` events applied one message at a time with
  :func:`~flask_maildelivery.ingest.ingest_events`, as a webhook of one event would be (the
  baseline: storing and applying cannot cost less);
* ``read only``: recognizing the N messages (:func:`~flask_maildelivery.bounces.reports.read_report`),
  no database;
* ``bounces fetch``: :func:`~flask_maildelivery.bounces.fetch_bounces` over the Maildir:
  reading, verifying each token, applying, marking each message read;
* the VERP token of one send (an HMAC-SHA256), per call.

    .venv/bin/python benchmarks/bounce_mailbox.py --count 500
    .venv/bin/python benchmarks/bounce_mailbox.py --postgresql postgresql+psycopg://postgres@127.0.0.1:5432/md_bench

A PostgreSQL or MariaDB database the server does not have yet is created.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from database_setup import create_database_if_missing
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery
from flask_maildelivery.bounces import fetch_bounces
from flask_maildelivery.bounces.reports import read_report
from flask_maildelivery.bounces.verp import tagged_address
from flask_maildelivery.events import NormalizedEvent
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import Base, Email, utcnow

BOUNCE_ADDRESS = "bounces@erp.example"
SECRET = "benchmark-secret"
CORPUS = Path(__file__).parent.parent / "tests" / "data" / "bounces" / "postfix_hard.eml"
#: The sample's tagged address, email id and Message-ID, replaced per message.
SAMPLE_TO = "bounces+l4gbwku5rzhxvc3mhuxb6cu3rtv3sz6rec52q3y@erp.example"
SAMPLE_ID = "5f0c1b2a9d8e4f7a8b6c3d2e1f0a9b8c"
SAMPLE_MESSAGE_ID = "20241203081402.4Ywz3L0Q2Cz9sRk@mail.erp.example"


def make_app(url: str, maildir: Path) -> Flask:
    app = Flask("bounce_benchmark")
    app.config.update(
        SECRET_KEY=SECRET,
        SQLALCHEMY_DATABASE_URI=url,
        MAILDELIVERY_TRANSPORT="memory",
        MAILDELIVERY_DEFAULT_SENDER="billing@erp.example",
        MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        MAILDELIVERY_BOUNCE_MAILBOX=f"maildir://{maildir}",
    )
    db = SQLAlchemy()
    db.init_app(app)
    MailDelivery(app, db=db)
    return app


def record_emails(app: Flask, count: int) -> list[str]:
    extension: MailDelivery = MailDelivery.state(app).extension
    return [
        extension.send(subject=f"Invoice {n}", to=["nobody@customer.example"], text="x").public_id
        for n in range(count)
    ]


def dsn_for(template: bytes, public_id: str, n: int) -> bytes:
    return (
        template.replace(
            SAMPLE_TO.encode(), tagged_address(BOUNCE_ADDRESS, public_id, SECRET).encode()
        )
        .replace(SAMPLE_ID.encode(), public_id.encode())
        .replace(SAMPLE_MESSAGE_ID.encode(), f"bench-{n}-{public_id}@mail.erp.example".encode())
    )


def reset(engine: sa.Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


def run(name: str, url: str, count: int) -> None:
    template = CORPUS.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        maildir = Path(tmp) / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True)
        app = make_app(url, maildir)
        with app.app_context():
            engine = MailDelivery.state(app).db.engine
            reset(engine)

            # baseline: the same events, one ingest_events call (one transaction) each
            ids = record_emails(app, count)
            started = time.perf_counter()
            for n, public_id in enumerate(ids):
                ingest_events(
                    [
                        NormalizedEvent(
                            provider="dsn",
                            provider_event_id=f"baseline-{n}",
                            type="bounced",
                            raw_type="dsn:failed",
                            occurred_at=utcnow(),
                            recipient="nobody@customer.example",
                            maildelivery_id=public_id,
                            reason="unknown user",
                            bounce_type="hard",
                        )
                    ],
                    app,
                )
            baseline = time.perf_counter() - started

            reset(engine)
            ids = record_emails(app, count)
            messages = [dsn_for(template, public_id, n) for n, public_id in enumerate(ids)]
            started = time.perf_counter()
            for message in messages:
                read_report(message)
            parsing = time.perf_counter() - started
            for n, message in enumerate(messages):
                (maildir / "new" / f"{n}.bench.host").write_bytes(message)
            started = time.perf_counter()
            report = fetch_bounces(app)
            fetching = time.perf_counter() - started
            assert report.counts() == {"applied": count}, report.counts()
            session = MailDelivery.state(app).sessions()
            bounced = session.scalar(
                sa.select(sa.func.count()).select_from(Email).where(Email.status == "bounced")
            )
            assert bounced == count, bounced
            engine.dispose()
    print(
        f"{name:<14} {count / baseline:>10.0f} ev/s {count / parsing:>10.0f} msg/s "
        f"{count / fetching:>10.0f} msg/s {fetching / baseline:>8.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sqlite", default=None, help="SQLite URL (default: a temp file)")
    parser.add_argument("--postgresql", default=None, help="PostgreSQL URL")
    parser.add_argument("--mariadb", default=None, help="MySQL/MariaDB URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"sqlite (file)": args.sqlite or f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if args.postgresql:
            databases["postgresql"] = args.postgresql
        if args.mariadb:
            databases["mariadb"] = args.mariadb
        for url in databases.values():
            create_database_if_missing(url)
        started = time.perf_counter()
        for _ in range(10000):
            tagged_address(BOUNCE_ADDRESS, SAMPLE_ID, SECRET)
        token = (time.perf_counter() - started) / 10000
        print(f"{args.count} bounces, one Postfix DSN per email; VERP token: {token * 1e6:.1f} µs")
        print(
            f"{'database':<14} {'ingest_events':>15} {'read only':>15} {'bounces fetch':>15} "
            f"{'ratio':>9}"
        )
        for name, url in databases.items():
            run(name, url, args.count)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
