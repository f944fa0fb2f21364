"""``flask maildelivery`` housekeeping commands."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email, Event, Recipient, utcnow
from flask_maildelivery.testing import outbox, simulate_event

from .conftest import AppFactory


def _age(app: Flask, email: Email, days: int) -> None:
    session = MailDelivery.state(app).sessions()
    session.execute(
        sa.update(Email)
        .where(Email.id == email.id)
        .values(created_at=utcnow() - timedelta(days=days))
    )
    session.commit()


def test_purge_deletes_old_records_with_their_recipients_and_events(
    app: Flask, mail_delivery: MailDelivery, make_app: AppFactory
) -> None:
    old = mail_delivery.send(subject="old", to=["a@b.test"], text="x")
    new = mail_delivery.send(subject="new", to=["a@b.test"], text="x")
    simulate_event(old, "delivered")
    simulate_event(new, "delivered")
    _age(app, old, 400)
    runner = app.test_cli_runner()
    assert (
        "set MAILDELIVERY_RETENTION_DAYS or pass --days"
        in runner.invoke(args=["maildelivery", "purge"]).output
    )
    # the retention period is read at init_app, like every setting
    configured = make_app(MAILDELIVERY_RETENTION_DAYS=365)
    with configured.app_context():
        result = configured.test_cli_runner().invoke(args=["maildelivery", "purge"])
    assert "purged 1 email(s) older than 365 day(s)" in result.output
    session = MailDelivery.state(app).sessions()
    assert session.scalars(sa.select(Email.subject)).all() == ["new"]
    assert session.scalar(sa.select(sa.func.count()).select_from(Recipient)) == 1
    assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1


def test_purge_bodies_only_keeps_the_record(app: Flask, mail_delivery: MailDelivery) -> None:
    old = mail_delivery.send(subject="old", to=["a@b.test"], text="secret", html="<p>secret</p>")
    _age(app, old, 40)
    result = app.test_cli_runner().invoke(
        args=["maildelivery", "purge", "--days", "30", "--bodies-only"]
    )
    assert "purged 1 email(s)" in result.output
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    kept = session.get(Email, old.id)
    assert kept is not None
    assert (kept.subject, kept.text_body, kept.html_body) == ("old", None, None)


def test_stats(app: Flask, mail_delivery: MailDelivery) -> None:
    a = mail_delivery.send(subject="a", to=["a@b.test"], text="x")
    mail_delivery.send(subject="b", to=["a@b.test"], text="x")
    simulate_event(a, "bounced")
    output = app.test_cli_runner().invoke(args=["maildelivery", "stats"]).output
    today = next(line for line in output.splitlines() if line.strip().startswith("20"))
    # delivered, pending, warning, error, failed, total
    assert today.split()[1:] == ["0", "1", "0", "1", "0", "2"]
    assert "last  7 days  sent 2  bounced 1 (50.00%, alarm)" in output
    assert "attention      1" in output


def test_resend_sends_a_copy_to_the_failed_recipients_at_their_current_address(
    app: Flask, mail_delivery: MailDelivery
) -> None:
    @mail_delivery.contact_address_loader
    def current_address(contact_type: str, contact_id: str) -> str | None:
        return {"7": "ann.fixed@customer.test"}.get(contact_id)

    @mail_delivery.attachment_loader
    def regenerate(email: Email) -> list[tuple[str, bytes, str]]:
        return [("INV-1.pdf", b"%PDF again", "application/pdf")]

    sent = mail_delivery.send(
        subject="Invoice INV-1",
        to=["ann@custmer.test", "bob@customer.test"],
        text="Invoice",
        attachments=[("INV-1.pdf", b"%PDF", "application/pdf")],
        contacts={"ann@custmer.test": ("customer", 7)},
        related=("invoice", 1),
    )
    simulate_event(sent, "bounced", recipient="ann@custmer.test")
    simulate_event(sent, "delivered", recipient="bob@customer.test")
    result = app.test_cli_runner().invoke(args=["maildelivery", "resend", str(sent.id)])
    assert result.exit_code == 0, result.output
    assert "resent as email" in result.output
    copy = outbox()[-1]
    assert copy.envelope_recipients == ["ann.fixed@customer.test"]
    assert copy.subject == "Invoice INV-1"
    assert [a.content for a in copy.attachments] == [b"%PDF again"]
    session = MailDelivery.state(app).sessions()
    resent = session.scalars(sa.select(Email).where(Email.resent_from_id == sent.id)).one()
    assert (resent.related_type, resent.related_id) == ("invoice", "1")
    assert resent.recipients[0].contact_id == "7"
    assert resent.metadata_["resent_from"] == sent.public_id


def test_resend_without_failed_recipients_says_so(app: Flask, mail_delivery: MailDelivery) -> None:
    sent = mail_delivery.send(subject="x", to=["a@b.test"], text="x")
    result = app.test_cli_runner().invoke(args=["maildelivery", "resend", str(sent.id)])
    assert result.exit_code == 1
    assert result.output == f"Error: email {sent.id} has no failed recipient to resend to\n"
