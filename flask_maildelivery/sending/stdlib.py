"""Sending a stdlib :class:`email.message.EmailMessage` through the hook: its headers,
parts and attachments unpacked into the arguments of a send."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from ..context import AppState
from ..mime import HOOK_HEADERS
from ..models import Email
from .hook import send_email


def send_email_message(
    state: AppState,
    message: EmailMessage,
    *,
    metadata: Mapping[str, Any] | None,
    related: tuple[str, Any] | None,
    contacts: Mapping[str, tuple[str, Any]] | None,
    tenant_id: str | None,
) -> Email:
    """Implementation of :meth:`MailDelivery.send_message`."""

    def addresses(header: str) -> list[tuple[str, str]]:
        return [(n, a) for n, a in getaddresses(message.get_all(header, [])) if a]

    text = html = None
    attachments: list[tuple[str, bytes, str]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, EmailMessage)
        if part.is_attachment():
            payload = part.get_payload(decode=True)
            attachments.append(
                (
                    part.get_filename() or "attachment",
                    bytes(payload or b""),
                    part.get_content_type(),
                )
            )
        elif part.get_content_type() == "text/plain" and text is None:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and html is None:
            html = part.get_content()
    extra = {
        name: str(value) for name, value in message.items() if name.lower() not in HOOK_HEADERS
    }
    senders = addresses("From")
    return send_email(
        state,
        subject=str(message.get("Subject", "")),
        to=addresses("To"),
        sender=senders[0] if senders else None,
        cc=addresses("Cc"),
        bcc=addresses("Bcc"),
        reply_to=str(message["Reply-To"]) if message["Reply-To"] else None,
        text=text,
        html=html,
        attachments=attachments,
        headers=extra,
        metadata=metadata,
        related=related,
        contacts=contacts,
        tenant_id=tenant_id,
    )
