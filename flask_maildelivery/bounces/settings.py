"""The bounce settings: VERP signing keys, the envelope sender, checks at ``init_app``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask

from ..context import config_value
from .verp import bounce_address_problem, tagged_address

#: Hosts where an IMAP server may be reached without TLS (``?tls=none``).
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def bounce_secrets(app: Flask) -> list[str | bytes]:
    """The keys that sign and verify VERP tokens: ``MAILDELIVERY_BOUNCE_SECRET`` (one, or a
    list whose first signs and all verify, for rotation), else the app's ``SECRET_KEY``."""
    secret = config_value("BOUNCE_SECRET", app)
    if secret is None:
        secret = app.config.get("SECRET_KEY")
    secrets = list(secret) if isinstance(secret, list | tuple) else [secret]
    return [s for s in secrets if isinstance(s, str | bytes) and s]


def bounce_settings_problem(app: Flask, settings: Mapping[str, Any]) -> str | None:
    """Why the bounce settings cannot work (checked at ``init_app``), or ``None``."""
    address = settings["MAILDELIVERY_BOUNCE_ADDRESS"]
    if address is not None:
        problem = bounce_address_problem(str(address))
        if problem is not None:
            return problem
        secret = settings["MAILDELIVERY_BOUNCE_SECRET"] or app.config.get("SECRET_KEY")
        if not secret:
            return (
                "MAILDELIVERY_BOUNCE_ADDRESS needs a key to sign its tokens: set "
                "MAILDELIVERY_BOUNCE_SECRET (or the app's SECRET_KEY) to a long random value"
            )
    mailbox = settings["MAILDELIVERY_BOUNCE_MAILBOX"]
    if mailbox is not None:
        return mailbox_problem(str(mailbox))
    return None


def envelope_sender(app: Flask, public_id: str) -> str | None:
    """The envelope sender (Return-Path) of the email ``public_id``: the bounce address
    tagged with its signed token, or ``None`` when no bounce address is set."""
    address = config_value("BOUNCE_ADDRESS", app)
    if address is None:
        return None
    return tagged_address(str(address), public_id, bounce_secrets(app)[0])


def mailbox_problem(url: str) -> str | None:
    """Why ``url`` is not a bounce mailbox URL, or ``None``."""
    parts = urlsplit(url)
    if parts.scheme == "maildir":
        return None if parts.path else f"MAILDELIVERY_BOUNCE_MAILBOX={url!r} names no folder"
    if parts.scheme in ("imap", "imaps"):
        if not parts.hostname or not parts.username:
            return (
                "MAILDELIVERY_BOUNCE_MAILBOX must name a user and host, like "
                "imaps://user:password@mail.example/INBOX"
            )
        options = parse_qs(parts.query)
        if options.get("tls") == ["none"] and parts.hostname not in _LOOPBACK:
            return (
                "MAILDELIVERY_BOUNCE_MAILBOX: tls=none is only accepted for a server on "
                "loopback; use imaps:// or imap:// (STARTTLS)"
            )
        return None
    return (
        f"MAILDELIVERY_BOUNCE_MAILBOX={url!r}: the scheme must be imaps://, imap:// "
        "(STARTTLS) or maildir://"
    )
