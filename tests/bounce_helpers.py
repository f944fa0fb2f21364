"""Shared by the bounce mailbox tests: the corpus, an email made to match a sample, and
reading an email's recipients back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email, Recipient

#: The corpus of bounce messages and what each must do (tests/data/bounces/README.md).
CORPUS = Path(__file__).parent / "data" / "bounces"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())
#: The bounce address the corpus's tagged samples were sent to (signed with the test apps'
#: SECRET_KEY, "test-secret").
BOUNCE_ADDRESS = "bounces@erp.example"


def sample(name: str) -> bytes:
    """The bytes of corpus sample ``name``."""
    return (CORPUS / name).read_bytes()


def email_for(
    app: Flask, to: list[str], public_id: str | None = None, message_id: str | None = None
) -> int:
    """The id of an email sent (memory transport) to ``to``, then given the ``public_id``
    and the message id a corpus sample names, as if it had been the one returned."""
    extension: MailDelivery = MailDelivery.state(app).extension
    email_id = extension.send(subject="Invoice", to=to, text="Please find the invoice.").id
    session = MailDelivery.state(app).sessions()
    values: dict[str, Any] = {}
    if public_id is not None:
        values["public_id"] = public_id
    if message_id is not None:
        values["provider_message_id"] = message_id
    if values:
        session.execute(sa.update(Email).where(Email.id == email_id).values(**values))
        session.commit()
    return email_id


def recipient_states(app: Flask, email_id: int) -> dict[str, dict[str, Any]]:
    """Each recipient's address -> its status, bounce type, SMTP code and reason, read
    fresh from the database."""
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    rows = session.scalars(sa.select(Recipient).where(Recipient.email_id == email_id))
    return {
        r.address: {
            "status": r.status,
            "bounce_type": r.bounce_type,
            "smtp_code": r.smtp_code,
            "reason": r.reason,
        }
        for r in rows
    }


def email_result(app: Flask, email_id: int) -> str:
    """The email's result, read fresh."""
    session = MailDelivery.state(app).sessions()
    session.expire_all()
    result = session.scalar(sa.select(Email.result).where(Email.id == email_id))
    assert result is not None, f"no email {email_id}"
    return result
