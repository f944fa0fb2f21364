"""Checking a send's arguments and turning them into the :class:`OutgoingMessage` the
transport gets, before anything is recorded.

Every problem is a :class:`~.errors.SendRefused` whose message says how to fix it.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from email_validator import EmailNotValidError, validate_email

from ..context import config_value
from ..mime import HOOK_HEADERS, build_mime
from ..models import new_public_id
from ..transports import Address, Attachment, OutgoingMessage
from ..transports.base import unique_addresses
from .errors import SendRefused

#: ``to``/``cc``/``bcc`` entries: an address, ``"Name <address>"``, or ``(name, address)``.
AddressLike = str | tuple[str, str]


def parse_address(value: AddressLike, *, role: str) -> Address:
    """An :class:`Address` from ``"addr"``, ``"Name <addr>"`` or ``("Name", "addr")``.

    :raises SendRefused: the value is not an email address.
    """
    if isinstance(value, tuple):
        name, addr = value
    elif "<" in value:
        name, addr = parseaddr(value)
        addr = addr or value
    else:
        name, addr = "", value.strip()
    problem = _address_problem(addr)
    if problem is not None:
        raise SendRefused(f"{role} address {addr!r} is not an email address: {problem}")
    return Address(name=name or "", address=addr.strip())


@functools.lru_cache(maxsize=4096)
def _address_problem(addr: str) -> str | None:
    """Why ``addr`` is not an email address, or ``None``. Cached: an ERP sends to the same
    addresses (the accounting copy on every invoice) over and over."""
    try:
        validate_email(
            addr, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _parse_many(values: Sequence[AddressLike] | str, role: str) -> list[Address]:
    if isinstance(values, str):
        values = [values]
    return [parse_address(v, role=role) for v in values]


@dataclass(frozen=True)
class CheckedSend:
    """A send whose arguments passed every check: the message for the transport and its
    recipients as they are recorded (each address once, with its kind)."""

    message: OutgoingMessage
    recipients: list[tuple[str, Address]]


def check_send(
    *,
    subject: str,
    to: Sequence[AddressLike],
    sender: AddressLike | None,
    cc: Sequence[AddressLike],
    bcc: Sequence[AddressLike],
    reply_to: str | None,
    text: str | None,
    html: str | None,
    attachments: Iterable[tuple[str, bytes, str]],
    headers: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
) -> CheckedSend:
    """The message of a send, checked.

    :raises SendRefused: no sender, no recipient, more than ``MAILDELIVERY_MAX_RECIPIENTS``,
        an invalid address, or a header the hook sets itself.
    """
    sender = sender or config_value("DEFAULT_SENDER")
    if not sender:
        raise SendRefused(
            "the email has no sender: pass sender=... to send() or set MAILDELIVERY_DEFAULT_SENDER"
        )
    from_address = parse_address(sender, role="sender")
    to_list, cc_list, bcc_list = (
        _parse_many(to, "to"),
        _parse_many(cc, "cc"),
        _parse_many(bcc, "bcc"),
    )
    recipients = [
        (kind, address)
        for kind, group in zip(
            ("to", "cc", "bcc"), unique_addresses(to_list, cc_list, bcc_list), strict=True
        )
        for address in group
    ]
    if not recipients:
        raise SendRefused("the email has no recipient: pass at least one address in to, cc or bcc")
    limit = config_value("MAX_RECIPIENTS")
    if limit is not None and len(recipients) > limit:
        raise SendRefused(
            f"the email has {len(recipients)} recipients, more than MAILDELIVERY_MAX_RECIPIENTS "
            f"({limit}); split it into several emails or raise the limit"
        )
    if reply_to:
        reply_to = parse_address(reply_to, role="reply-to").formatted()
    for name in headers or {}:
        if name.lower() in HOOK_HEADERS:
            raise SendRefused(
                f"header {name!r} is set by flask-maildelivery; pass it as an argument of send()"
            )
    message = OutgoingMessage(
        public_id=new_public_id(),
        sender=from_address,
        to=to_list,
        cc=cc_list,
        bcc=bcc_list,
        subject=subject,
        text=text,
        html=html,
        reply_to=reply_to,
        attachments=[
            Attachment(
                filename=name,
                content=content,
                content_type=ctype or mimetypes.guess_type(name)[0] or "application/octet-stream",
            )
            for name, content, ctype in attachments
        ],
        headers=dict(headers or {}),
        metadata=dict(metadata or {}),
    )
    message.mime = build_mime(message)
    return CheckedSend(message, recipients)
