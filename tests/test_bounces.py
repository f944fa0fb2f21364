"""The bounce mailbox (SPEC, "Bounce mailbox"): VERP tokens, the corpus of bounce formats
read on every database, correlation and forged bounces, Maildir sources and the commands.
The real Postfix and Dovecot tests are in test_bounce_mailservers.py."""

from __future__ import annotations

import io
import shutil
import threading
import tracemalloc
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery
from flask_maildelivery.bounces import fetch_bounces, read_bounce, watch_bounces
from flask_maildelivery.bounces.mailbox import BounceSourceError, FetchReport
from flask_maildelivery.bounces.reports import MAX_READ_BYTES, read_report
from flask_maildelivery.bounces.verp import (
    MAX_LOCAL_PART,
    check_address,
    make_token,
    tagged_address,
)
from flask_maildelivery.models import Email, Event
from flask_maildelivery.tracking import tracking, tracking_health

from .bounce_helpers import (
    BOUNCE_ADDRESS,
    CORPUS,
    EXPECTED,
    email_for,
    email_result,
    recipient_states,
    sample,
)
from .conftest import AppFactory, SignalLog, SMTPServer, free_port, get_or_fail

PUBLIC_ID = "5f0c1b2a9d8e4f7a8b6c3d2e1f0a9b8c"


@pytest.fixture
def bounce_app(make_app: AppFactory) -> Flask:
    """An app with the corpus's bounce address (memory transport)."""
    return make_app(MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS)


def _maildir(root: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


# --- VERP tokens ----------------------------------------------------------------------------


def test_a_token_names_the_email_and_fits_the_local_part_limit() -> None:
    address = tagged_address("bounces@erp.example", PUBLIC_ID, "k1")
    local, _, domain = address.rpartition("@")
    assert domain == "erp.example"
    assert local.startswith("bounces+")
    assert len(local) <= MAX_LOCAL_PART
    assert check_address(address, "bounces@erp.example", ["k1"]).public_id == PUBLIC_ID
    # mail servers may fold the local part's case; the token survives it
    assert check_address(address.upper(), "bounces@erp.example", ["k1"]).public_id == PUBLIC_ID
    assert check_address(f"<{address}>", "Bounces@ERP.example", ["k1"]).public_id == PUBLIC_ID


def test_rotating_secrets_the_old_one_still_verifies_until_removed() -> None:
    old = tagged_address("bounces@erp.example", PUBLIC_ID, "old")
    assert check_address(old, "bounces@erp.example", ["new", "old"]).public_id == PUBLIC_ID
    dropped = check_address(old, "bounces@erp.example", ["new"])
    assert dropped.tagged
    assert dropped.public_id is None


@pytest.mark.parametrize(
    "address",
    [
        # one character of the token changed
        "bounces+"
        + ("a" if (t := make_token(PUBLIC_ID, "k1") or "")[0] != "a" else "b")
        + t[1:]
        + "@erp.example",
        "bounces+short@erp.example",
        "bounces+!!!!@erp.example",
    ],
)
def test_a_forged_or_damaged_token_does_not_verify(address: str) -> None:
    check = check_address(address, "bounces@erp.example", ["k1"])
    assert check.tagged
    assert check.public_id is None


def test_an_address_that_is_not_the_bounce_address_is_not_tagged() -> None:
    assert not check_address("ann@erp.example", "bounces@erp.example", ["k1"]).tagged
    assert not check_address("bounces+x@other.example", "bounces@erp.example", ["k1"]).tagged


def test_an_id_that_is_not_a_public_id_keeps_the_untagged_address() -> None:
    assert tagged_address("bounces@erp.example", "not-hex", "k1") == "bounces@erp.example"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"MAILDELIVERY_BOUNCE_ADDRESS": "bounces"}, "is not an address"),
        ({"MAILDELIVERY_BOUNCE_ADDRESS": "bounces+x@erp.example"}, "already has a '\\+'"),
        ({"MAILDELIVERY_BOUNCE_ADDRESS": "b" * 30 + "@erp.example"}, "too long to carry a token"),
        (
            {"MAILDELIVERY_BOUNCE_ADDRESS": "bounces@erp.example", "SECRET_KEY": None},
            "set MAILDELIVERY_BOUNCE_SECRET",
        ),
        ({"MAILDELIVERY_BOUNCE_MAILBOX": "pop3://x@mail.example"}, "the scheme must be imaps://"),
        ({"MAILDELIVERY_BOUNCE_MAILBOX": "imaps://mail.example/INBOX"}, "must name a user"),
        (
            {"MAILDELIVERY_BOUNCE_MAILBOX": "imap://u:p@mail.example/INBOX?tls=none"},
            "only accepted for a server on loopback",
        ),
        ({"MAILDELIVERY_BOUNCE_MAILBOX": "maildir://"}, "names no folder"),
    ],
)
def test_init_app_refuses_bounce_settings_that_cannot_work(
    config: dict[str, object], message: str, tmp_path: Path
) -> None:
    app = Flask("bounce_settings")
    app.config.update(
        {"SECRET_KEY": "s", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.db'}", **config}
    )
    db = SQLAlchemy()
    db.init_app(app)
    with pytest.raises(ValueError, match=message):
        MailDelivery().init_app(app, db=db)


def test_an_smtp_send_goes_out_from_the_tagged_address_with_the_from_header_unchanged(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = make_app(
        MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        MAILDELIVERY_BOUNCE_SECRET=["current", "previous"],
        **smtp_server.config(),
    )
    with app.app_context():
        extension: MailDelivery = MailDelivery.state(app).extension
        email = extension.send(subject="Invoice", to=["ann@customer.test"], text="x")
        received = smtp_server.messages[-1]
        check = check_address(received.mail_from, BOUNCE_ADDRESS, ["current"])
        assert check.public_id == email.public_id
        assert b"From: Billing <billing@acme.test>" in received.data
        # the Message-ID is kept, so a bounce to the untagged address finds the email too
        session = MailDelivery.state(app).sessions()
        stored = get_or_fail(session, Email, email.id)
        assert stored.provider_message_id is not None
        assert f"<{stored.provider_message_id}>".encode() in received.data


def test_a_queued_send_keeps_its_tagged_envelope_sender(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    # a scheduled send waits in the send queue; the retry command hands it over later, from
    # the message the queue kept
    app = make_app(
        MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        MAILDELIVERY_BOUNCE_SECRET="current",
        **smtp_server.config(),
    )
    with app.app_context():
        extension: MailDelivery = MailDelivery.state(app).extension
        email = extension.send(
            subject="Invoice", to=["ann@customer.test"], text="x", send_at=datetime.now(UTC)
        )
    assert smtp_server.messages == []
    result = app.test_cli_runner().invoke(args=["maildelivery", "retry"])
    assert f"email {email.id}: sent" in result.output, result.output
    check = check_address(smtp_server.messages[-1].mail_from, BOUNCE_ADDRESS, ["current"])
    assert check.public_id == email.public_id


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(
    make_app: AppFactory, smtp_server: SMTPServer
) -> None:
    app = make_app(**smtp_server.config())
    with app.app_context():
        MailDelivery.state(app).extension.send(subject="x", to=["ann@customer.test"], text="x")
    assert smtp_server.messages[-1].mail_from == "billing@acme.test"


# --- the corpus, on every database ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_corpus_sample_is_read_with_its_expected_outcome(
    bounce_app: Flask, name: str
) -> None:
    expected = EXPECTED[name]
    with bounce_app.app_context():
        recipients = list(expected.get("recipients", {})) or [
            expected.get("untouched", "someone@customer.example")
        ]
        email_id = email_for(
            bounce_app, recipients, expected.get("public_id"), expected.get("message_id")
        )
        outcome = read_bounce(bounce_app, sample(name))
        assert outcome.report.kind == expected["kind"]
        assert outcome.action == expected["action"], outcome.steps
        states = recipient_states(bounce_app, email_id)
        if "recipients" not in expected:
            assert all(s["status"] == "queued" for s in states.values())
            return
        assert expected["correlation"] in (outcome.correlation or "")
        for address, facts in expected["recipients"].items():
            state = states[address]
            assert state["status"] == facts["status"]
            assert state["bounce_type"] == facts["bounce_type"]
            assert state["smtp_code"] == facts["smtp_code"]
            assert facts["reason"] in (state["reason"] or "")
        assert email_result(bounce_app, email_id) == expected["result"]
        events = (
            MailDelivery.state(bounce_app)
            .sessions()
            .scalars(sa.select(Event).where(Event.email_id == email_id, Event.provider == "dsn"))
        )
        assert [e.payload["report"] for e in events] == [expected["kind"]]
        # read again (a refetch): a duplicate, nothing new
        again = read_bounce(bounce_app, sample(name))
        assert again.action == "duplicate"


def test_a_report_to_a_tagged_address_whose_token_fails_changes_nothing(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # the corpus's tagged samples were signed with "test-secret"; this app signs with another
    app = make_app(MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS, MAILDELIVERY_BOUNCE_SECRET="other")
    with app.app_context():
        email_id = email_for(app, ["nobody@customer.example"], PUBLIC_ID)
        outcome = read_bounce(app, sample("postfix_hard.eml"))
        assert outcome.action == "forged"
        assert recipient_states(app, email_id)["nobody@customer.example"]["status"] == "queued"
        session = MailDelivery.state(app).sessions()
        assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0
    assert "token does not verify" in caplog.text


def test_the_previous_secret_still_verifies_while_it_rotates_out(make_app: AppFactory) -> None:
    app = make_app(
        MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        MAILDELIVERY_BOUNCE_SECRET=["new-secret", "test-secret"],
    )
    with app.app_context():
        email_id = email_for(app, ["nobody@customer.example"], PUBLIC_ID)
        assert read_bounce(app, sample("postfix_hard.eml")).action == "applied"
        assert recipient_states(app, email_id)["nobody@customer.example"]["status"] == "bounced"


def test_a_bounce_for_an_email_the_log_does_not_hold_is_stored_unmatched(
    bounce_app: Flask,
) -> None:
    with bounce_app.app_context():
        other_id = email_for(bounce_app, ["nobody@customer.example"])
        outcome = read_bounce(bounce_app, sample("postfix_hard.eml"))
        assert outcome.action == "unmatched"
        assert recipient_states(bounce_app, other_id)["nobody@customer.example"]["status"] == (
            "queued"
        )
        # the email appears later (a bounce can beat a slow commit): it is applied then
        session = MailDelivery.state(bounce_app).sessions()
        session.execute(sa.update(Email).where(Email.id == other_id).values(public_id=PUBLIC_ID))
        session.commit()
        from flask_maildelivery.ingest import apply_unmatched_events

        apply_unmatched_events(bounce_app)
        assert recipient_states(bounce_app, other_id)["nobody@customer.example"]["status"] == (
            "bounced"
        )


def test_a_report_that_names_no_email_is_not_stored(bounce_app: Flask) -> None:
    message = EmailMessage()
    message["From"] = "MAILER-DAEMON@mx.example"
    message["To"] = BOUNCE_ADDRESS
    message["Subject"] = "Undelivered Mail Returned to Sender"
    message["X-Failed-Recipients"] = "ann@customer.example"
    message.set_content("550 5.1.1 user unknown; no copy of the message follows")
    with bounce_app.app_context():
        outcome = read_bounce(bounce_app, message.as_bytes())
        assert outcome.action == "uncorrelated"
        session = MailDelivery.state(bounce_app).sessions()
        assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0


def test_a_bounce_sends_the_status_signals_once(bounce_app: Flask, signal_log: SignalLog) -> None:
    with bounce_app.app_context():
        email_for(bounce_app, ["nobody@customer.example"], PUBLIC_ID)
        signal_log.clear()
        read_bounce(bounce_app, sample("postfix_hard.eml"))
        read_bounce(bounce_app, sample("postfix_hard.eml"))
    changes = [kwargs for name, kwargs in signal_log if name == "recipient-status-changed"]
    assert [(c["old"], c["new"]) for c in changes] == [("queued", "bounced")]


def test_a_bounce_mailbox_counts_as_outcome_tracking_for_smtp(
    make_app: AppFactory, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    app = make_app(MAILDELIVERY_BOUNCE_MAILBOX=f"maildir://{tmp_path}", **smtp_server.config())
    with app.app_context():
        track = tracking(MailDelivery.state(app))
        assert track.provider == "dsn"
        # a mail server reports failures only: no bounce is the usual news of a delivery,
        # so no email becomes overdue for want of one
        assert track.overdue_rule() is None
        # no bounce for a day is the good news: never "silent"
        health = tracking_health(MailDelivery.state(app).sessions(), track)
        assert health.state == "ok"
    untracked = make_app(**smtp_server.config())
    with untracked.app_context():
        assert tracking(MailDelivery.state(untracked)).provider is None


# --- Maildir, fetch, watch, read ------------------------------------------------------------


def _maildir_app(make_app: AppFactory, root: Path, **config: Any) -> Flask:
    return make_app(
        MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
        MAILDELIVERY_BOUNCE_MAILBOX=f"maildir://{root}",
        **config,
    )


def test_fetch_reads_new_messages_once_and_keeps_them(make_app: AppFactory, tmp_path: Path) -> None:
    root = _maildir(tmp_path / "Maildir")
    for name in ("postfix_hard.eml", "autoreply_vacation.eml", "unrelated.eml"):
        shutil.copy(sample_path(name), root / "new" / f"1733213642.{name}.host")
    app = _maildir_app(make_app, root)
    with app.app_context():
        email_id = email_for(app, ["nobody@customer.example"], PUBLIC_ID)
        report = fetch_bounces(app)
        assert report.counts() == {"applied": 1, "ignored": 2}
        assert recipient_states(app, email_id)["nobody@customer.example"]["status"] == "bounced"
        # kept, marked read (cur/ with the S flag), never deleted
        assert list((root / "new").iterdir()) == []
        kept = sorted(p.name for p in (root / "cur").iterdir())
        assert len(kept) == 3
        assert all(name.endswith(":2,S") for name in kept)
        assert fetch_bounces(app).outcomes == []
        again = fetch_bounces(app, reprocess=True)
        assert again.counts() == {"duplicate": 1, "ignored": 2}


def test_fetch_deletes_processed_messages_only_when_configured(
    make_app: AppFactory, tmp_path: Path
) -> None:
    root = _maildir(tmp_path / "Maildir")
    shutil.copy(sample_path("unrelated.eml"), root / "new" / "1.unrelated.host")
    app = _maildir_app(make_app, root, MAILDELIVERY_BOUNCE_DELETE_PROCESSED=True)
    with app.app_context():
        assert fetch_bounces(app).counts() == {"ignored": 1}
    assert list((root / "new").iterdir()) == list((root / "cur").iterdir()) == []


def test_a_message_that_fails_to_apply_stays_unread_and_is_read_at_the_next_fetch(
    tmp_path: Path,
) -> None:
    # a database without the package's tables: applying fails, the message must survive it
    root = _maildir(tmp_path / "Maildir")
    shutil.copy(sample_path("exim_hard.eml"), root / "new" / "1.exim.host")
    app = Flask("bounce_failure")
    app.config.update(
        SECRET_KEY="test-secret",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}",
        MAILDELIVERY_TRANSPORT="memory",
        MAILDELIVERY_DEFAULT_SENDER="billing@acme.test",
        MAILDELIVERY_BOUNCE_MAILBOX=f"maildir://{root}",
    )
    db = SQLAlchemy()
    db.init_app(app)
    extension = MailDelivery(app, db=db)
    try:
        with app.app_context():
            report = fetch_bounces(app)
            assert report.outcomes == []
            assert report.failed[0][0] == "new/1.exim.host"
            assert "OperationalError" in report.failed[0][1]
            assert [p.name for p in (root / "new").iterdir()] == ["1.exim.host"]
            extension.create_all()
            email_id = email_for(app, ["j.doe@vendor.example"], "0d9c8b7a6f5e4d3c2b1a098f7e6d5c4b")
            assert fetch_bounces(app).counts() == {"applied": 1}
            assert recipient_states(app, email_id)["j.doe@vendor.example"]["status"] == "bounced"
    finally:
        with app.app_context():
            db.engine.dispose()


def test_bounces_read_asks_the_mta_to_retry_when_the_database_fails(tmp_path: Path) -> None:
    app = Flask("bounce_read_failure")
    app.config.update(
        SECRET_KEY="test-secret",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}",
        MAILDELIVERY_TRANSPORT="memory",
    )
    db = SQLAlchemy()
    db.init_app(app)
    MailDelivery(app, db=db)
    try:
        result = app.test_cli_runner().invoke(
            args=["maildelivery", "bounces", "read", str(sample_path("exim_hard.eml"))]
        )
    finally:
        with app.app_context():
            db.engine.dispose()
    # 75 (EX_TEMPFAIL): Postfix's pipe(8) and Exim keep the message and deliver it again
    assert result.exit_code == 75
    assert "Error: the bounce could not be stored, try again later" in result.output
    assert "Traceback" not in result.output


def test_a_folder_that_is_not_a_maildir_is_a_clear_error(
    make_app: AppFactory, tmp_path: Path
) -> None:
    app = _maildir_app(make_app, tmp_path / "missing")
    with app.app_context(), pytest.raises(BounceSourceError, match="is not a Maildir"):
        fetch_bounces(app)


def test_a_10_mb_bounce_is_read_in_bounded_memory(make_app: AppFactory, tmp_path: Path) -> None:
    root = _maildir(tmp_path / "Maildir")
    big = _big_bounce(10 * 1024 * 1024)
    assert len(big) > 10 * 1024 * 1024
    (root / "new" / "1.big.host").write_bytes(big)
    app = _maildir_app(make_app, root)
    with app.app_context():
        email_id = email_for(app, ["nobody@customer.example"], PUBLIC_ID)
        tracemalloc.start()
        try:
            report = fetch_bounces(app)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert report.counts() == {"applied": 1}
        assert recipient_states(app, email_id)["nobody@customer.example"]["status"] == "bounced"
    # only the first MAX_READ_BYTES are ever held (a few working copies of them), never the
    # whole message: parsing all of it would take several times its 10 MB
    assert peak < 10 * MAX_READ_BYTES < len(big) / 2, peak


def test_bounces_read_takes_a_message_on_standard_input_and_explains_it(
    bounce_app: Flask,
) -> None:
    with bounce_app.app_context():
        email_id = email_for(bounce_app, ["nobody@customer.example"], PUBLIC_ID)
    runner = bounce_app.test_cli_runner()
    result = runner.invoke(
        args=["maildelivery", "bounces", "read", "--explain", "-"],
        input=io.BytesIO(_big_bounce(10 * 1024 * 1024)),
    )
    assert result.exit_code == 0, result.output
    assert "recognized as: dsn" in result.output
    assert "token verified" in result.output
    assert "dsn: applied" in result.output
    with bounce_app.app_context():
        assert recipient_states(bounce_app, email_id)["nobody@customer.example"]["status"] == (
            "bounced"
        )


def test_bounces_read_explains_why_a_message_was_ignored(bounce_app: Flask) -> None:
    runner = bounce_app.test_cli_runner()
    result = runner.invoke(
        args=["maildelivery", "bounces", "read", "--explain", str(sample_path("unrelated.eml"))]
    )
    assert result.exit_code == 0, result.output
    assert "recognized as: unrelated" in result.output
    assert "not a delivery report: nothing applied" in result.output
    empty = runner.invoke(args=["maildelivery", "bounces", "read", "-"], input=b"")
    assert empty.exit_code == 1
    assert "Error: the message is empty" in empty.output


def test_bounces_fetch_without_a_mailbox_says_what_to_set(bounce_app: Flask) -> None:
    result = bounce_app.test_cli_runner().invoke(args=["maildelivery", "bounces", "fetch"])
    assert result.exit_code == 1
    assert "set MAILDELIVERY_BOUNCE_MAILBOX" in result.output
    assert "Traceback" not in result.output


def test_bounces_fetch_prints_what_each_message_did(make_app: AppFactory, tmp_path: Path) -> None:
    root = _maildir(tmp_path / "Maildir")
    shutil.copy(sample_path("arf_complaint.eml"), root / "new" / "1.arf.host")
    app = _maildir_app(make_app, root)
    with app.app_context():
        email_for(app, ["paul.martin@yahoo.example"], "9a8b7c6d5e4f30211203f4e5d6c7b8a9")
    result = app.test_cli_runner().invoke(args=["maildelivery", "bounces", "fetch"])
    assert result.exit_code == 0, result.output
    assert "arf: applied" in result.output
    assert "paul.martin@yahoo.example complained" in result.output
    assert "1 message(s) read: 1 applied" in result.output


def test_watch_reads_messages_as_they_arrive(make_app: AppFactory, tmp_path: Path) -> None:
    root = _maildir(tmp_path / "Maildir")
    app = _maildir_app(make_app, root)
    stop = threading.Event()
    reports: list[FetchReport] = []
    arrived = threading.Event()

    def on_fetch(report: FetchReport) -> None:
        reports.append(report)
        if report.outcomes:
            arrived.set()

    def run() -> None:
        with app.app_context():
            watch_bounces(app, interval=0.05, stop=stop, on_fetch=on_fetch)

    with app.app_context():
        email_id = email_for(app, ["j.doe@vendor.example"], "0d9c8b7a6f5e4d3c2b1a098f7e6d5c4b")
    watcher = threading.Thread(target=run)
    watcher.start()
    try:
        # delivered as an MTA delivers into a Maildir: written in tmp/, then renamed into new/
        (root / "tmp" / "1.exim.host").write_bytes(sample("exim_hard.eml"))
        (root / "tmp" / "1.exim.host").rename(root / "new" / "1.exim.host")
        assert arrived.wait(20), "watch did not read the message"
    finally:
        stop.set()
        watcher.join(20)
    assert not watcher.is_alive()
    with app.app_context():
        assert recipient_states(app, email_id)["j.doe@vendor.example"]["status"] == "bounced"


def test_a_report_is_recognized_before_its_auto_submitted_header() -> None:
    # Postfix marks its own DSNs "Auto-Submitted: auto-replied"
    report = read_report(sample("postfix_hard.eml"))
    assert report.kind == "dsn"
    assert read_report(sample("autoreply_outlook_ooo.eml")).kind == "auto-reply"


def sample_path(name: str) -> Path:
    return CORPUS / name


def _big_bounce(size: int) -> bytes:
    """The Postfix DSN of the corpus, its returned message carrying an attachment of
    ``size`` bytes."""
    text = sample("postfix_hard.eml")
    head, _, tail = text.rpartition(b"\n\nPlease find attached invoice INV-0042.\n")
    boundary = b"returned-attachment"
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\n"
    attachment = line * (size // len(line) + 1)
    return (
        head.replace(
            b'Content-Type: text/plain; charset="utf-8"\nMIME-Version: 1.0\nSubject: Invoice',
            b'Content-Type: multipart/mixed; boundary="returned-attachment"\nMIME-Version: 1.0'
            b"\nSubject: Invoice",
        )
        + b"\n\n--"
        + boundary
        + b"\nContent-Type: text/plain\n\nPlease find attached invoice.\n"
        + b"--"
        + boundary
        + b"\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
        + b'Content-Disposition: attachment; filename="INV-0042.pdf"\n\n'
        + attachment
        + b"--"
        + boundary
        + b"--\n"
        + tail
    )


def test_an_imap_server_that_does_not_answer_is_one_clear_error(make_app: AppFactory) -> None:
    port = free_port()
    app = make_app(MAILDELIVERY_BOUNCE_MAILBOX=f"imaps://u:p@127.0.0.1:{port}/INBOX")
    result = app.test_cli_runner().invoke(args=["maildelivery", "bounces", "fetch"])
    assert result.exit_code == 1
    assert f"Error: cannot connect to IMAP server 127.0.0.1:{port}" in result.output
