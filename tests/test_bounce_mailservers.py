"""The bounce mailbox against real mail servers: Debian's Postfix writes real DSNs, Dovecot
serves them over IMAP (scripts/mailservers sets both up on loopback; scripts/test and
.ci/run export where they listen). Without them these tests fail: they are the proof that
the mailbox path works end to end."""

from __future__ import annotations

import contextlib
import imaplib
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.bounces import fetch_bounces, watch_bounces
from flask_maildelivery.bounces.mailbox import IMAP_KEYWORD, BounceSourceError, FetchReport

from .bounce_helpers import email_for, recipient_states, sample
from .conftest import AppFactory

#: What scripts/mailservers writes to /etc/maildelivery-test/env.
VARIABLES = (
    "MAILDELIVERY_TEST_POSTFIX",
    "MAILDELIVERY_TEST_DOVECOT",
    "MAILDELIVERY_TEST_DOVECOT_STARTTLS",
    "MAILDELIVERY_TEST_DOVECOT_CA",
    "MAILDELIVERY_TEST_DEFER_PORT",
)
#: The password scripts/mailservers gives every bounces.test mailbox.
PASSWORD = "bounces"
#: How long Postfix may take to write a DSN.
DSN_WAIT = 90.0


@dataclass(frozen=True)
class MailServers:
    """Where the loopback Postfix and Dovecot listen, and a mailbox of this test's own."""

    smtp: tuple[str, int]
    imaps: tuple[str, int]
    imap: tuple[str, int]
    cafile: str
    defer_port: int
    user: str

    @property
    def bounce_address(self) -> str:
        return f"{self.user}@bounces.test"

    def mailbox_url(self, folder: str = "INBOX") -> str:
        host, port = self.imaps
        return f"imaps://{self.user}:{PASSWORD}@{host}:{port}/{folder}?cafile={self.cafile}"

    def config(self) -> dict[str, Any]:
        """An app that sends through Postfix with this test's bounce address and reads
        its bounces over IMAP."""
        host, port = self.smtp
        return {
            "MAILDELIVERY_TRANSPORT": "smtp",
            "MAILDELIVERY_SMTP_HOST": host,
            "MAILDELIVERY_SMTP_PORT": port,
            "MAILDELIVERY_SMTP_TIMEOUT": 10,
            "MAILDELIVERY_DEFAULT_SENDER": "Billing <billing@bounces.test>",
            "MAILDELIVERY_BOUNCE_ADDRESS": self.bounce_address,
            "MAILDELIVERY_BOUNCE_MAILBOX": self.mailbox_url(),
            "MAILDELIVERY_BOUNCE_TIMEOUT": 10,
        }

    def reading_config(self, **overrides: Any) -> dict[str, Any]:
        """An app that reads this test's mailbox and makes its emails in the log only
        (memory transport): no DSN of Postfix joins the messages a test puts there."""
        return {**self.config(), "MAILDELIVERY_TRANSPORT": "memory", **overrides}

    def imap_login(self) -> imaplib.IMAP4_SSL:
        """A direct IMAP connection to this test's mailbox, INBOX selected."""
        host, port = self.imaps
        connection = imaplib.IMAP4_SSL(
            host, port, ssl_context=ssl.create_default_context(cafile=self.cafile), timeout=10
        )
        connection.login(self.user, PASSWORD)
        connection.select("INBOX")
        return connection


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


@pytest.fixture
def mailservers() -> MailServers:
    """The loopback Postfix and Dovecot; fails (never skips) when they are not set up."""
    missing = [name for name in VARIABLES if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not set: these tests need the loopback Postfix and Dovecot. "
            "Run scripts/test (it sets them up when run as root), or run scripts/mailservers as "
            "root and export the variables of /etc/maildelivery-test/env"
        )
    env = os.environ
    return MailServers(
        smtp=_address(env["MAILDELIVERY_TEST_POSTFIX"]),
        imaps=_address(env["MAILDELIVERY_TEST_DOVECOT"]),
        imap=_address(env["MAILDELIVERY_TEST_DOVECOT_STARTTLS"]),
        cafile=env["MAILDELIVERY_TEST_DOVECOT_CA"],
        defer_port=int(env["MAILDELIVERY_TEST_DEFER_PORT"]),
        # a mailbox of this test's own: other tests' bounces never land in it
        user="t" + uuid.uuid4().hex[:12],
    )


def _fetch_until_read(app: Flask, timeout: float = DSN_WAIT) -> FetchReport:
    """Fetch until a message was read (Postfix writes its DSN within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        report = fetch_bounces(app)
        if report.outcomes or report.failed:
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"no bounce arrived in the mailbox within {timeout} s")
        time.sleep(0.5)


def test_postfix_returns_a_real_dsn_and_fetch_over_imap_marks_the_recipient_bounced(
    make_app: AppFactory, mailservers: MailServers
) -> None:
    app = make_app(**mailservers.config())
    with app.app_context():
        extension: MailDelivery = MailDelivery.state(app).extension
        email = extension.send(
            subject="Invoice INV-0042", to=["no-such-user@nowhere.test"], text="Invoice."
        )
        email_id = email.id
        assert email.result == "queued"  # Postfix accepted it; its DSN comes later
        report = _fetch_until_read(app)
        assert [o.action for o in report.outcomes] == ["applied"], report
        outcome = report.outcomes[0]
        assert outcome.report.kind == "dsn"
        assert outcome.correlation == f"token of email {email.public_id}"
        state = recipient_states(app, email_id)["no-such-user@nowhere.test"]
        assert state["status"] == "bounced"
        assert state["bounce_type"] == "hard"
        # Postfix's own diagnostic
        assert state["reason"] == 'unknown user: "no-such-user"'
        assert state["smtp_code"] == "5.1.1"
        # kept in the mailbox, marked read by the package; a second fetch reads nothing
        assert fetch_bounces(app).outcomes == []
        again = fetch_bounces(app, reprocess=True)
        assert [o.action for o in again.outcomes] == ["duplicate"]
    connection = mailservers.imap_login()
    try:
        status, found = connection.uid("SEARCH", f"KEYWORD {IMAP_KEYWORD}")
        assert status == "OK"
        assert len(found[0].split()) == 1
    finally:
        connection.logout()


class DeferringHandler:
    """An SMTP server that answers 451 at RCPT TO until told to accept."""

    def __init__(self) -> None:
        self.accept = False
        self.received: list[bytes] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if not self.accept:
            return "451 4.3.2 the mailbox is being moved, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.content)
        return "250 OK"


@pytest.fixture
def deferring_server(mailservers: MailServers) -> Iterator[DeferringHandler]:
    """The destination of late.test (scripts/mailservers relays it to this port)."""
    handler = DeferringHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=mailservers.defer_port)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"cannot listen on 127.0.0.1:{mailservers.defer_port} for late.test: {exc}")
    try:
        yield handler
    finally:
        controller.stop()


def test_postfix_sends_a_delayed_dsn_for_a_4xx_destination_and_fetch_marks_it_deferred(
    make_app: AppFactory, mailservers: MailServers, deferring_server: DeferringHandler
) -> None:
    app = make_app(**mailservers.config())
    with app.app_context():
        extension: MailDelivery = MailDelivery.state(app).extension
        email_id = extension.send(subject="PO-7781", to=["ap@late.test"], text="Order.").id
        report = _fetch_until_read(app)
        assert [o.action for o in report.outcomes] == ["applied"], report
        assert report.outcomes[0].report.recipients[0].action == "delayed"
        state = recipient_states(app, email_id)["ap@late.test"]
        assert state["status"] == "deferred"
        assert "451 4.3.2 the mailbox is being moved" in (state["reason"] or "")
    # let Postfix deliver it, so it leaves nothing in its queue
    deferring_server.accept = True
    deadline = time.monotonic() + DSN_WAIT
    while not deferring_server.received:
        assert time.monotonic() < deadline, "Postfix did not retry the deferred message"
        time.sleep(0.5)


class CuttingProxy:
    """A TCP proxy to the IMAP server that cuts the connection when the client sends its
    ``cut_at``-th FETCH command (a mailbox that disconnects mid-fetch)."""

    def __init__(self, target: tuple[str, int], cut_at: int) -> None:
        self.target = target
        self.cut_at = cut_at
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.fetches = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.target)

        def downstream() -> None:
            try:
                while data := server.recv(65536):
                    client.sendall(data)
            except OSError:
                return

        threading.Thread(target=downstream, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if b" FETCH " in data.upper():
                    self.fetches += 1
                    if self.fetches == self.cut_at:
                        break
                server.sendall(data)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


SAMPLES = {
    "exim_hard.eml": ("j.doe@vendor.example", "0d9c8b7a6f5e4d3c2b1a098f7e6d5c4b"),
    "qmail_hard.eml": ("info@closed-shop.example", "2b3c4d5e6f708192a3b4c5d6e7f80912"),
    "gmail_hard.eml": ("kim.lee@gmail.com", "7c6b5a493827160504f3e2d1c0b9a887"),
}


def test_a_mailbox_that_disconnects_mid_fetch_loses_nothing_and_the_next_fetch_resumes(
    make_app: AppFactory, mailservers: MailServers
) -> None:
    connection = mailservers.imap_login()
    try:
        for name in SAMPLES:
            status, _ = connection.append(
                "INBOX", "", imaplib.Time2Internaldate(time.time()), sample(name)
            )
            assert status == "OK"
    finally:
        connection.logout()
    proxy = CuttingProxy(mailservers.imap, cut_at=2)
    cut_url = f"imap://{mailservers.user}:{PASSWORD}@127.0.0.1:{proxy.port}/INBOX?tls=none"
    cut = make_app(**mailservers.reading_config(MAILDELIVERY_BOUNCE_MAILBOX=cut_url))
    host, port = mailservers.imap
    # the next fetch goes straight to Dovecot, with STARTTLS
    direct_url = (
        f"imap://{mailservers.user}:{PASSWORD}@{host}:{port}/INBOX?cafile={mailservers.cafile}"
    )
    direct = make_app(**mailservers.reading_config(MAILDELIVERY_BOUNCE_MAILBOX=direct_url))
    try:
        with cut.app_context():
            ids = {
                name: email_for(cut, [to], public_id) for name, (to, public_id) in SAMPLES.items()
            }
            with pytest.raises(BounceSourceError, match="was lost"):
                fetch_bounces(cut)
            bounced = [
                name
                for name, (to, _) in SAMPLES.items()
                if recipient_states(cut, ids[name])[to]["status"] == "bounced"
            ]
            # the first message was read and marked before the connection dropped
            assert len(bounced) == 1
        with direct.app_context():
            report = fetch_bounces(direct)
            assert [o.action for o in report.outcomes] == ["applied", "applied"]
            for name, (to, _) in SAMPLES.items():
                assert recipient_states(direct, ids[name])[to]["status"] == "bounced"
            assert fetch_bounces(direct).outcomes == []
    finally:
        proxy.close()


def test_processed_messages_move_to_the_configured_folder(
    make_app: AppFactory, mailservers: MailServers
) -> None:
    connection = mailservers.imap_login()
    try:
        assert connection.create("Processed")[0] == "OK"
        status, _ = connection.append(
            "INBOX", "", imaplib.Time2Internaldate(time.time()), sample("unrelated.eml")
        )
        assert status == "OK"
    finally:
        connection.logout()
    app = make_app(**mailservers.config(), MAILDELIVERY_BOUNCE_PROCESSED_FOLDER="Processed")
    with app.app_context():
        assert fetch_bounces(app).counts() == {"ignored": 1}
    connection = mailservers.imap_login()
    try:
        assert connection.select("INBOX")[1] == [b"0"]
        assert connection.select("Processed")[1] == [b"1"]
    finally:
        connection.logout()


def test_a_refused_login_is_one_clear_error(make_app: AppFactory, mailservers: MailServers) -> None:
    host, port = mailservers.imaps
    url = f"imaps://{mailservers.user}:wrong@{host}:{port}/INBOX?cafile={mailservers.cafile}"
    app = make_app(**{**mailservers.config(), "MAILDELIVERY_BOUNCE_MAILBOX": url})
    result = app.test_cli_runner().invoke(args=["maildelivery", "bounces", "fetch"])
    assert result.exit_code == 1
    assert f"Error: IMAP server {host}:{port} refused" in result.output
    assert "Traceback" not in result.output


def test_a_folder_that_does_not_exist_is_one_clear_error(
    make_app: AppFactory, mailservers: MailServers
) -> None:
    app = make_app(
        **{**mailservers.config(), "MAILDELIVERY_BOUNCE_MAILBOX": mailservers.mailbox_url("Nope")}
    )
    result = app.test_cli_runner().invoke(args=["maildelivery", "bounces", "fetch"])
    assert result.exit_code == 1
    assert "cannot open folder 'Nope'" in result.output


def test_watch_reads_a_new_bounce_as_soon_as_dovecot_announces_it(
    make_app: AppFactory, mailservers: MailServers
) -> None:
    # polling every 10 minutes: only IMAP IDLE can read the message within seconds
    app = make_app(**mailservers.reading_config(MAILDELIVERY_BOUNCE_POLL_INTERVAL=600))
    with app.app_context():
        email_id = email_for(app, ["j.doe@vendor.example"], "0d9c8b7a6f5e4d3c2b1a098f7e6d5c4b")
    stop = threading.Event()
    reports: list[FetchReport] = []

    def run() -> None:
        with app.app_context():
            watch_bounces(app, stop=stop, on_fetch=reports.append)

    watcher = threading.Thread(target=run)
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while not reports:
            assert time.monotonic() < deadline, "watch never read the mailbox"
            time.sleep(0.05)
        time.sleep(0.5)  # the watcher is in IDLE now
        connection = mailservers.imap_login()
        try:
            status, _ = connection.append(
                "INBOX", "", imaplib.Time2Internaldate(time.time()), sample("exim_hard.eml")
            )
            assert status == "OK"
        finally:
            connection.logout()
        deadline = time.monotonic() + 20
        while not any(r.outcomes for r in reports):
            assert time.monotonic() < deadline, "IDLE did not wake the watcher"
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(20)
    assert not watcher.is_alive()
    assert [o.action for r in reports for o in r.outcomes] == ["applied"]
    with app.app_context():
        assert recipient_states(app, email_id)["j.doe@vendor.example"]["status"] == "bounced"
