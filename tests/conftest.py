"""Shared fixtures: one database fixture parametrized over MAILDELIVERY_TEST_DATABASES,
apps built on it, a real SMTP server (aiosmtpd) and a fake provider HTTP API on
loopback."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy.orm import Session, scoped_session

from flask_maildelivery import MailDelivery, migrations
from flask_maildelivery.models import Base
from flask_maildelivery.transports import OutgoingMessage

from .fake_provider import FakeProvider, start_fake_provider


def _database_urls() -> list[str]:
    """SQLite always; plus every URL listed (whitespace-separated) in
    MAILDELIVERY_TEST_DATABASES, as CI sets it for PostgreSQL and MariaDB."""
    urls = ["sqlite"]
    urls += [u for u in os.environ.get("MAILDELIVERY_TEST_DATABASES", "").split() if u != "sqlite"]
    return urls


def _db_id(url: str) -> str:
    if url == "sqlite" or url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    if url.startswith(("mysql", "mariadb")):
        return "mariadb"
    return url.split(":", 1)[0]


DATABASE_URLS = _database_urls()


@pytest.fixture(scope="session", params=DATABASE_URLS, ids=[_db_id(u) for u in DATABASE_URLS])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL; tests using it run once per configured database."""
    url: str = request.param
    if url == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'maildelivery.db'}"
    return url


@pytest.fixture(scope="session")
def schema(database_url: str) -> Iterator[sa.Engine]:
    """The package's tables, created once per database for the session."""
    engine = sa.create_engine(database_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


@contextmanager
def migrating(schema: sa.Engine) -> Iterator[None]:
    """The package's tables dropped, for migrations to build them; afterwards ``schema`` as
    the other tests expect it again (the models' tables, no version table of the package)."""
    Base.metadata.drop_all(schema)
    try:
        yield
    finally:
        with schema.begin() as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {migrations.VERSION_TABLE}"))
        Base.metadata.drop_all(schema)
        Base.metadata.create_all(schema)


def clear_tables(engine: sa.Engine) -> None:
    """Delete every row of the package's tables (children first)."""
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


_Record = TypeVar("_Record")


def get_or_fail(
    session: Session | scoped_session[Any], model: type[_Record], ident: object
) -> _Record:
    """The ``model`` row with primary key ``ident``; fails the test, naming the row, when it is
    missing."""
    record = session.get(model, ident)
    assert record is not None, f"no {model.__name__} with id {ident!r}"
    return record


def first_or_fail(
    session: Session | scoped_session[Any], model: type[_Record], *where: Any
) -> _Record:
    """The first ``model`` row matching ``where`` (any row without it); fails the test, naming
    the model, when none matches."""
    record = session.scalar(sa.select(model).where(*where))
    assert isinstance(record, model), f"no {model.__name__} matches {where!r}"
    return record


@dataclass
class AppFactory:
    """Builds Flask apps on the test database; every app it built is torn down after the test."""

    database_url: str
    built: list[tuple[Flask, SQLAlchemy]] = field(default_factory=list)

    def __call__(
        self,
        extension: MailDelivery | None = None,
        db: SQLAlchemy | None = None,
        **config: Any,
    ) -> Flask:
        app = Flask("maildelivery_test")
        app.config.update(
            TESTING=True,
            SECRET_KEY="test-secret",
            SQLALCHEMY_DATABASE_URI=self.database_url,
            MAILDELIVERY_TRANSPORT="memory",
            MAILDELIVERY_DEFAULT_SENDER="Billing <billing@acme.test>",
        )
        app.config.update(config)
        db = db or SQLAlchemy()
        db.init_app(app)
        (extension or MailDelivery()).init_app(app, db=db)
        self.built.append((app, db))
        return app

    def teardown(self) -> None:
        for app, db in self.built:
            MailDelivery.state(app).transport.close()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def make_app(database_url: str, schema: sa.Engine) -> Iterator[AppFactory]:
    """A factory of apps on the test database: ``make_app(**config)``."""
    factory = AppFactory(database_url)
    yield factory
    factory.teardown()
    clear_tables(schema)


@pytest.fixture
def app(make_app: AppFactory) -> Iterator[Flask]:
    """An app with the memory transport, inside an app context."""
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def mail_delivery(app: Flask) -> MailDelivery:
    """The extension object registered on ``app``."""
    extension: MailDelivery = MailDelivery.state(app).extension
    return extension


@pytest.fixture
def client(app: Flask) -> Any:
    """A test client of ``app``."""
    return app.test_client()


@dataclass
class ReceivedMessage:
    """One message an SMTP server received."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class RecordingHandler:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.lock = threading.Lock()
        #: SMTP connections opened so far.
        self.connections = 0
        #: Addresses answered with ``550`` at RCPT TO.
        self.refuse: set[str] = set()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(
                ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
            )
        return "250 Message accepted for delivery"


@dataclass
class SMTPServer:
    """A running aiosmtpd server on loopback."""

    host: str
    port: int
    handler: RecordingHandler

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.handler.messages

    def config(self) -> dict[str, Any]:
        """App configuration that sends through this server."""
        return {
            "MAILDELIVERY_TRANSPORT": "smtp",
            "MAILDELIVERY_SMTP_HOST": self.host,
            "MAILDELIVERY_SMTP_PORT": self.port,
            "MAILDELIVERY_SMTP_TIMEOUT": 5,
        }


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()


def free_port() -> int:
    """A TCP port nobody listens on (for "server down" tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


#: Chromium flags for this machine: headless as root, and no background connections (the
#: network is closed beyond loopback).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save their screenshots: a temporary folder, so the test
    suite never changes the working tree; ``scripts/screenshots`` points it at
    ``docs/_static`` (``MAILDELIVERY_SCREENSHOTS``) to refresh the documentation's."""
    folder = os.environ.get("MAILDELIVERY_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (``/usr/bin/chromium``), headless, driven by Playwright."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


SignalLog = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def signal_log() -> Iterator[SignalLog]:
    """Records every outcome signal as ``(name, kwargs)``; disconnects afterwards."""
    from flask_maildelivery import signals

    log: SignalLog = []
    receivers: list[tuple[Any, Callable[..., None]]] = []
    for signal in (
        signals.email_sent,
        signals.email_result_changed,
        signals.recipient_status_changed,
        signals.event_received,
    ):

        def receiver(sender: Any, _name: str = signal.name, **kwargs: Any) -> None:
            log.append((_name, kwargs))

        signal.connect(receiver)
        receivers.append((signal, receiver))
    yield log
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@pytest.fixture
def provider_server() -> Iterator[FakeProvider]:
    """A fake provider HTTP API on 127.0.0.1; install its ``responder``."""
    provider = start_fake_provider()
    try:
        yield provider
    finally:
        provider.stop()


def outgoing_message(**overrides: Any) -> OutgoingMessage:
    """An :class:`OutgoingMessage` as the hook builds it, for calling a transport directly."""
    from flask_maildelivery.mime import build_mime
    from flask_maildelivery.models import new_public_id
    from flask_maildelivery.sending import parse_address

    public_id = overrides.pop("public_id", new_public_id())
    sender = parse_address(overrides.pop("sender", "billing@acme.test"), role="sender")
    to = [parse_address(a, role="to") for a in overrides.pop("to", ["ann@customer.test"])]
    fields: dict[str, Any] = {
        "cc": [],
        "bcc": [],
        "subject": "Invoice INV-0042",
        "text": "Please find the invoice attached.",
        "html": None,
        "reply_to": None,
        "attachments": [],
        "headers": {},
        **overrides,
    }
    message = OutgoingMessage(public_id=public_id, sender=sender, to=to, **fields)
    message.mime = build_mime(message)
    return message


_DATABASE_OF_TEST: dict[str, str] = {}
_PASSED_BY_DATABASE: dict[str, int] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        url = callspec.params.get("database_url") if callspec else None
        _DATABASE_OF_TEST[item.nodeid] = _db_id(url) if url else "no database"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        database = _DATABASE_OF_TEST.get(report.nodeid, "no database")
        _PASSED_BY_DATABASE[database] = _PASSED_BY_DATABASE.get(database, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _PASSED_BY_DATABASE:
        counts = ", ".join(f"{db}: {n}" for db, n in sorted(_PASSED_BY_DATABASE.items()))
        terminalreporter.write_line(f"passed per database: {counts}")
