"""Flask-Mailman capture: an email backend that records every message and delivers it
through ``MAILDELIVERY_TRANSPORT``.

A host already using Flask-Mailman changes one configuration line::

    MAIL_BACKEND = "flask_maildelivery.contrib.mailman.EmailBackend"

and every ``mail.send_mail(...)``, ``EmailMessage(...).send()``,
``mail.send_mass_mail(...)`` and ``connection.send_messages(...)`` goes through the hook:
recorded before delivery, outcome after. Flask-Mailman's own ``MAIL_SERVER`` settings are no
longer used for delivery; the ``MAILDELIVERY_*`` transport settings are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from email.mime.base import MIMEBase
from typing import TYPE_CHECKING, Any

from flask_mailman.backends.base import BaseEmailBackend

from ..context import get_state
from ..sending import SendRefused, send_email
from . import DeliveryFailed
from .headers import split_headers

if TYPE_CHECKING:
    from ..models import Email


def _attachments(message: Any) -> list[tuple[str, bytes, str]]:
    files: list[tuple[str, bytes, str]] = []
    for attachment in message.attachments:
        if isinstance(attachment, MIMEBase):
            payload = attachment.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else attachment.as_bytes()
            files.append(
                (
                    attachment.get_filename() or "attachment",
                    content,
                    attachment.get_content_type(),
                )
            )
            continue
        filename, content, mimetype = attachment
        if isinstance(content, str):
            content = content.encode("utf-8")
        files.append((filename or "attachment", bytes(content), mimetype))
    return files


def _bodies(message: Any) -> tuple[str | None, str | None]:
    text: str | None = None
    html: str | None = None
    if getattr(message, "content_subtype", "plain") == "html":
        html = message.body
    else:
        text = message.body
    for alternative in getattr(message, "alternatives", None) or []:
        content, mimetype = alternative[0], alternative[1]
        if mimetype == "text/html" and html is None:
            html = content
        elif mimetype == "text/plain" and text is None:
            text = content
    return text, html


def send_mailman_message(message: Any) -> Email:
    """Record and send one Flask-Mailman ``EmailMessage`` through the hook.

    ``to``, ``cc``, ``bcc`` (each kept with its kind), ``reply_to`` (the first address),
    subject, the body and an HTML alternative, attachments and extra headers are recorded.
    """
    headers, overrides = split_headers(message.extra_headers or {})
    reply_to: Sequence[str] = message.reply_to or (
        [overrides["reply-to"]] if "reply-to" in overrides else []
    )
    text, html = _bodies(message)
    return send_email(
        get_state(),
        subject=str(message.subject or ""),
        to=list(message.to),
        sender=overrides.get("from") or message.from_email,
        cc=list(message.cc),
        bcc=list(message.bcc),
        reply_to=reply_to[0] if reply_to else None,
        text=text,
        html=html,
        attachments=_attachments(message),
        headers=headers,
        metadata=None,
        related=None,
        contacts=None,
        tenant_id=None,
    )


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]
    """Flask-Mailman backend that sends through flask-maildelivery's hook.

    Follows Flask-Mailman's backend contract: :meth:`send_messages` returns how many
    messages went out; a message the hook refuses (:class:`~flask_maildelivery.SendRefused`)
    or the transport fails to send (:class:`~flask_maildelivery.contrib.DeliveryFailed`,
    recorded first) raises, unless the backend was made with ``fail_silently=True``.
    """

    def send_messages(self, email_messages: Iterable[Any]) -> int:
        """Record and send each message; return the number sent."""
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                email = send_mailman_message(message)
                if email.result == "failed":
                    raise DeliveryFailed(email)
            except (SendRefused, DeliveryFailed):
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent


__all__ = ["EmailBackend", "send_mailman_message"]
