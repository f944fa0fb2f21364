"""Transports: one module per way of handing a message over (SMTP, provider APIs, ...)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .base import Address, Attachment, OutgoingMessage, SendResult, Transport, TransportError

if TYPE_CHECKING:
    from flask import Flask

#: Short transport names and the class each one names.
BUILTIN_TRANSPORTS: dict[str, str] = {
    "smtp": "flask_maildelivery.transports.smtp:SMTPTransport",
    "memory": "flask_maildelivery.transports.memory:MemoryTransport",
    "console": "flask_maildelivery.transports.console:ConsoleTransport",
    "sendgrid": "flask_maildelivery.transports.sendgrid:SendGridTransport",
    "mailgun": "flask_maildelivery.transports.mailgun:MailgunTransport",
    "postmark": "flask_maildelivery.transports.postmark:PostmarkTransport",
    "ses": "flask_maildelivery.transports.ses:SESTransport",
}


def load_transport_class(name: str) -> type[Transport]:
    """The transport class for a short name or a dotted path (``pkg.module:Class`` or
    ``pkg.module.Class``)."""
    target = BUILTIN_TRANSPORTS.get(name, name)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    elif "." in target:
        module_name, _, attr = target.rpartition(".")
    else:
        raise ValueError(
            f"MAILDELIVERY_TRANSPORT={name!r} is neither one of "
            f"{', '.join(sorted(BUILTIN_TRANSPORTS))} nor a dotted path to a transport class"
        )
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"MAILDELIVERY_TRANSPORT={name!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise ValueError(
            f"MAILDELIVERY_TRANSPORT={name!r} names {cls!r}, which is not a subclass of "
            "flask_maildelivery.transports.Transport"
        )
    return cls


def create_transport(app: Flask, name: str) -> Transport:
    """Instantiate the transport named ``name`` for ``app``."""
    return load_transport_class(name)(app)


__all__ = [
    "BUILTIN_TRANSPORTS",
    "Address",
    "Attachment",
    "OutgoingMessage",
    "SendResult",
    "Transport",
    "TransportError",
    "create_transport",
    "load_transport_class",
]
