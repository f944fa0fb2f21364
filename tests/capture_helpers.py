"""Apps and checks shared by the tests of the Flask-Mail and Flask-Mailman capture."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage as StdlibMessage
from typing import Any

import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email

from .conftest import AppFactory, SMTPServer


def smtp_app(make_app: AppFactory, smtp_server: SMTPServer, **config: Any) -> Flask:
    """An app whose transport and whose mail extension (``MAIL_SERVER``, ``MAIL_PORT``) both
    point at ``smtp_server``; ``config`` comes last."""
    return make_app(
        **{
            **smtp_server.config(),
            "MAIL_SERVER": smtp_server.host,
            "MAIL_PORT": smtp_server.port,
            **config,
        }
    )


def recorded(app: Flask) -> list[tuple[str, str, dict[str, str], str]]:
    """``(subject, sender, {address: kind}, result)`` of every stored email, oldest first."""
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        emails = session.scalars(sa.select(Email).order_by(Email.id)).all()
        return [
            (e.subject, e.sender, {r.address: r.kind for r in e.recipients}, e.result)
            for e in emails
        ]


def parse_message(data: bytes) -> StdlibMessage:
    """The message an SMTP server received, parsed with the modern policy."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, StdlibMessage)
    return message
