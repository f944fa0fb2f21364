"""Flask-Mail capture: every message a Flask-Mail ``Mail`` object sends goes through the
hook (recorded before delivery, outcome after) and is delivered by
``MAILDELIVERY_TRANSPORT``.

A host already using Flask-Mail adds one line after creating its objects::

    mail = Mail(app)
    mail_delivery.capture(mail)

``mail.send(msg)``, ``mail.send_message(...)``, ``msg.send(connection)`` and
``with mail.connect() as connection: connection.send(msg)`` are all captured, because
:func:`capture_flask_mail` replaces the object's ``connect()``: the connection it returns
sends through the hook instead of opening an SMTP session. A message with a newline in a
header still raises Flask-Mail's ``BadHeaderError`` (after the hook recorded it as refused),
and its ``email_dispatched`` signal still fires after a successful send, so
``mail.record_messages()`` in the host's tests keeps working.
"""

from __future__ import annotations

import re
from email.utils import formataddr
from types import TracebackType
from typing import TYPE_CHECKING

import flask_mail
from flask import current_app

from ..context import get_state
from ..sending import SendRefused, send_email
from . import DeliveryFailed
from .headers import split_headers

if TYPE_CHECKING:
    from ..models import Email

#: A fold in a header value (RFC 5322 3.2.2: unfolding removes the CRLF before whitespace).
_FOLD = re.compile(r"\r\n(?=[ \t])")

#: Attribute set on a captured ``Mail`` object (capture is idempotent).
_CAPTURED = "_maildelivery_original_connect"


def _address(value: str | tuple[str, str]) -> str | tuple[str, str]:
    return (value[0], value[1]) if isinstance(value, tuple) else value


def send_flask_mail_message(message: flask_mail.Message) -> Email:
    """Record and send one Flask-Mail ``Message`` through the hook.

    Recipients (``recipients`` as ``to``, ``cc``, ``bcc``, each with its kind), sender,
    reply-to, subject, text and HTML bodies, attachments and extra headers are recorded.
    """
    headers, overrides = split_headers(message.extra_headers or {})
    reply_to = message.reply_to or overrides.get("reply-to")
    if isinstance(reply_to, tuple):
        reply_to = formataddr(reply_to)
    charset = message.charset or "utf-8"
    attachments = [
        (
            attachment.filename or "attachment",
            attachment.data.encode(charset)
            if isinstance(attachment.data, str)
            else attachment.data,
            attachment.content_type,
        )
        for attachment in message.attachments
    ]
    return send_email(
        get_state(),
        # Flask-Mail accepts a subject folded as RFC 5322 allows (a line break followed by
        # whitespace); unfolded, it is the one line the hook sends
        subject=_FOLD.sub("", str(message.subject or "")),
        to=[_address(a) for a in message.recipients],
        sender=_address(message.sender) if message.sender else None,
        cc=[_address(a) for a in message.cc],
        bcc=[_address(a) for a in message.bcc],
        reply_to=reply_to,
        text=message.body,
        html=message.html,
        attachments=attachments,
        headers=headers,
        metadata=None,
        related=None,
        contacts=None,
        tenant_id=None,
    )


class CapturedConnection(flask_mail.Connection):
    """A Flask-Mail connection that sends through the hook (no SMTP session of its own)."""

    def __enter__(self) -> CapturedConnection:
        self.host = None
        self.num_emails = 0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def send(
        self, message: flask_mail.Message, envelope_from: str | tuple[str, str] | None = None
    ) -> None:
        """Record and send the message through the hook; a newline in a header still
        raises Flask-Mail's own error.

        :raises flask_mail.BadHeaderError: a header holds a newline; recorded as refused,
            like every refusal (its ``__cause__`` is the :class:`SendRefused`).
        :raises flask_maildelivery.SendRefused: the hook refused the message (no recipient,
            no sender, an invalid address, ...); recorded.
        :raises flask_maildelivery.contrib.DeliveryFailed: recorded, but the transport
            failed.
        """
        try:
            email = send_flask_mail_message(message)
        except SendRefused as exc:
            if message.has_bad_headers():
                # the error Flask-Mail's callers expect for it
                raise flask_mail.BadHeaderError(str(exc)) from exc
            raise
        if email.result == "failed":
            raise DeliveryFailed(email)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        flask_mail.email_dispatched.send(app, message=message)
        self.num_emails += 1


def capture_flask_mail(mail: flask_mail.Mail) -> flask_mail.Mail:
    """Make every send of ``mail`` go through the hook of the current app's
    flask-maildelivery (an app without flask-maildelivery keeps Flask-Mail's own sending).

    Calling it twice changes nothing. Returns ``mail``.
    """
    if getattr(mail, _CAPTURED, None) is not None:
        return mail
    original_connect = mail.connect

    def connect() -> flask_mail.Connection:
        if "maildelivery" not in current_app.extensions:
            return original_connect()
        app = getattr(mail, "app", None) or current_app
        try:
            state = app.extensions["mail"]
        except KeyError as err:
            raise RuntimeError(
                "The current application was not configured with Flask-Mail"
            ) from err
        return CapturedConnection(state)

    # instance attributes: Flask-Mail's ``Mail.__getattr__`` only sees missing names
    setattr(mail, _CAPTURED, original_connect)
    mail.connect = connect  # type: ignore[method-assign]
    return mail


__all__ = ["CapturedConnection", "capture_flask_mail", "send_flask_mail_message"]
