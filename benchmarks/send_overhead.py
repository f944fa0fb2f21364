"""What the outbound hook costs on top of plain smtplib.

Sends N emails of 3 recipients through a local aiosmtpd server (in its own process): with
plain smtplib building the same messages on one reused connection (the baseline), and with
``mail_delivery.send()`` (recording each email and its recipients before the transport runs).
Prints the rates and their ratio, per database. Target: at most 1.3x.

Two baselines are printed: the stdlib's recommended ``EmailMessage`` API (what a plain
smtplib app writes; the target's ratio), and the ``email.mime`` classes, which the hook itself
builds with and which cost a quarter as much. Against the second, the ratio is the price of
recording alone. "one commit" is a durable commit of one small row on that database: the
least that recording before the transport can cost.

    .venv/bin/python benchmarks/send_overhead.py                       # SQLite file only
    .venv/bin/python benchmarks/send_overhead.py --postgresql postgresql+psycopg://postgres@127.0.0.1:5432/md_bench

A PostgreSQL or MariaDB database the server does not have yet is created.
"""

from __future__ import annotations

import argparse
import multiprocessing
import smtplib
import socket
import statistics
import sys
import tempfile
import time
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from database_setup import create_database_if_missing
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Base, new_public_id, utcnow

SUBJECT = "Invoice INV-{n:05d}"
TEXT = "Dear customer,\n\nplease find invoice INV-{n:05d} attached.\n\nACME accounting\n"
HTML = "<p>Dear customer,</p><p>please find invoice <b>INV-{n:05d}</b> attached.</p>"
SENDER = "billing@acme.test"


def recipients(n: int) -> tuple[list[str], list[str]]:
    return [f"customer{n}@customer.test", f"buyer{n}@customer.test"], ["accounting@acme.test"]


def set_headers(msg: Message, n: int, to: list[str], cc: list[str]) -> None:
    """The headers of message ``n``; both baselines set the same ones."""
    msg["From"] = SENDER
    msg["To"] = ", ".join(to)
    msg["Cc"] = ", ".join(cc)
    msg["Subject"] = SUBJECT.format(n=n)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain="acme.test")
    msg["X-MailDelivery-ID"] = new_public_id()


def use_wal(engine: sa.Engine) -> None:
    """SQLite in WAL mode with ``synchronous=NORMAL`` (a commit without an fsync) on every
    connection ``engine`` opens."""

    @sa.event.listens_for(engine, "connect")
    def pragmas(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def run_server(port: int, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def plain_smtplib(port: int, count: int) -> float:
    """The baseline: the same messages built with the stdlib, one reused connection."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for n in range(count):
            to, cc = recipients(n)
            msg = EmailMessage()
            set_headers(msg, n, to, cc)
            msg.set_content(TEXT.format(n=n))
            msg.add_alternative(HTML.format(n=n), subtype="html")
            smtp.send_message(msg, from_addr=SENDER, to_addrs=[*to, *cc])
    return time.perf_counter() - start


def plain_smtplib_mime(port: int, count: int) -> float:
    """The second baseline: the same messages built with the ``email.mime`` classes."""
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for n in range(count):
            to, cc = recipients(n)
            msg = MIMEMultipart("alternative")
            msg.attach(MIMEText(TEXT.format(n=n), "plain", "us-ascii"))
            msg.attach(MIMEText(HTML.format(n=n), "html", "us-ascii"))
            set_headers(msg, n, to, cc)
            smtp.send_message(msg, from_addr=SENDER, to_addrs=[*to, *cc])
    return time.perf_counter() - start


def with_send(url: str, port: int, count: int, wal: bool = False) -> float:
    """The same messages through ``mail_delivery.send()``.

    :param wal: SQLite in WAL mode with ``synchronous=NORMAL`` (a commit without an fsync),
        the usual setting of a web app on SQLite; otherwise SQLite's defaults.
    """
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="benchmark",
        SQLALCHEMY_DATABASE_URI=url,
        MAILDELIVERY_TRANSPORT="smtp",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=port,
        MAILDELIVERY_DEFAULT_SENDER=SENDER,
    )
    db = SQLAlchemy()
    db.init_app(app)
    mail_delivery = MailDelivery(app, db=db)
    with app.app_context():
        if wal:
            use_wal(db.engine)
        Base.metadata.drop_all(db.engine)
        Base.metadata.create_all(db.engine)
        start = time.perf_counter()
        for n in range(count):
            to, cc = recipients(n)
            mail_delivery.send(
                subject=SUBJECT.format(n=n),
                to=to,
                cc=cc,
                text=TEXT.format(n=n),
                html=HTML.format(n=n),
            )
        elapsed = time.perf_counter() - start
        stored = db.session.scalar(sa.text("SELECT COUNT(*) FROM maildelivery_recipient"))
        assert stored == 3 * count, stored
        db.session.remove()
        Base.metadata.drop_all(db.engine)
        MailDelivery.state(app).transport.close()
        db.engine.dispose()
    return elapsed


def commit_floor(url: str, count: int, wal: bool) -> float:
    """Seconds per durable commit of one small row: what recording before the transport costs
    at the least on this database and disk, whatever the code does."""
    engine = sa.create_engine(url)
    if wal:
        use_wal(engine)
    table = sa.Table(
        "bench_commit_floor", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)
    )
    table.drop(engine, checkfirst=True)
    table.create(engine)
    start = time.perf_counter()
    for _ in range(count):
        with engine.begin() as connection:
            connection.execute(table.insert())
    elapsed = time.perf_counter() - start
    table.drop(engine)
    engine.dispose()
    return elapsed / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many rounds")
    parser.add_argument("--sqlite", default=None, help="SQLite URL (default: a file in a temp dir)")
    parser.add_argument("--postgresql", default=None, help="PostgreSQL URL")
    parser.add_argument("--mariadb", default=None, help="MySQL/MariaDB URL")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    sqlite_url = args.sqlite or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    databases: dict[str, tuple[str, bool]] = {
        "sqlite (file)": (sqlite_url, False),
        "sqlite (WAL)": (sqlite_url, True),
    }
    if args.postgresql:
        databases["postgresql"] = (args.postgresql, False)
    if args.mariadb:
        databases["mariadb"] = (args.mariadb, False)
    for url, _ in databases.values():
        create_database_if_missing(url)

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=run_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    worst = 0.0
    try:
        plain_smtplib(port, 100)  # warm up
        print(f"{args.count} emails x 3 recipients, median of {args.rounds} rounds")
        print(
            f"{'database':<14} {'EmailMessage':>14} {'email.mime':>14} {'send()':>14} "
            f"{'ratio':>7} {'ratio vs mime':>14} {'one commit':>11}"
        )
        for name, (url, wal) in databases.items():
            base = statistics.median(plain_smtplib(port, args.count) for _ in range(args.rounds))
            mime = statistics.median(
                plain_smtplib_mime(port, args.count) for _ in range(args.rounds)
            )
            hook = statistics.median(
                with_send(url, port, args.count, wal) for _ in range(args.rounds)
            )
            ratio = hook / base
            worst = max(worst, ratio)
            commit = commit_floor(url, 200, wal)
            print(
                f"{name:<14} {args.count / base:>8.0f} msg/s {args.count / mime:>8.0f} msg/s "
                f"{args.count / hook:>8.0f} msg/s {ratio:>6.2f}x {hook / mime:>13.2f}x "
                f"{commit * 1000:>8.2f} ms"
            )
    finally:
        server.terminate()
        tmp.cleanup()
    print(f"target: at most 1.30x; worst: {worst:.2f}x -> {'met' if worst <= 1.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
