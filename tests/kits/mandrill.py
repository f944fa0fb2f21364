"""Mandrill kit: a form post whose ``mandrill_events`` field holds a JSON array, signed in
``X-Mandrill-Signature`` (base64 HMAC-SHA1 over the webhook URL and the sorted fields) with
a key generated here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from .base import EXPECTED_TYPES, Facts, Kit, epoch, webhook_url

#: The URL the test client posts to, as Mandrill would have it registered.
URL = "http://localhost" + webhook_url("mandrill")


def mandrill_signature(key: str, url: str, fields: dict[str, str]) -> str:
    """``X-Mandrill-Signature`` of a post of ``fields`` to ``url``."""
    signed = url + "".join(name + fields[name] for name in sorted(fields))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()


@dataclass
class MandrillKit(Kit):
    provider: ClassVar[str] = "mandrill"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"processed"}
    malformed_event: ClassVar[dict[str, Any]] = {"event": "send"}
    batch: ClassVar[bool] = True
    signs_time: ClassVar[bool] = False
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MANDRILL_WEBHOOK_KEY": self.key}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MANDRILL_WEBHOOK_KEY": "another-key"}

    def new_message_id(self) -> str:
        return secrets.token_hex(16)

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        event, extra = {
            "deferred": ("deferral", {"diag": "421 4.7.0 try again later"}),
            "delivered": ("send", {}),
            "soft_bounce": (
                "soft_bounce",
                {"diag": "smtp;452 4.2.2 mailbox full", "bounce_description": "mailbox_full"},
            ),
            "hard_bounce": (
                "hard_bounce",
                {"diag": "smtp;550 5.1.1 no such user", "bounce_description": "bad_mailbox"},
            ),
            "dropped": ("reject", {}),
            "open": ("open", {}),
            "click": ("click", {}),
            "complaint": ("spam", {}),
            "unsubscribe": ("unsub", {}),
            "unknown": ("future_event", {}),
        }[kind]
        return {
            "event": event,
            "_id": facts.message_id or "0" * 32,
            "ts": epoch(facts.at),
            "url": "https://acme.test/invoice/42" if kind == "click" else None,
            "msg": {
                "ts": epoch(facts.at) - 5,
                "subject": "Invoice INV-0042",
                "email": facts.address,
                "sender": "billing@acme.test",
                "tags": ["invoice"],
                "state": "sent",
                "metadata": {"maildelivery_id": facts.public_id} if facts.public_id else {},
                "_id": facts.message_id or "0" * 32,
                "_version": facts.event_id,
                **extra,
            },
        }

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        return self.form_request({"mandrill_events": json.dumps(events)}, mode)

    def form_request(
        self, fields: dict[str, str], mode: str = "valid"
    ) -> tuple[bytes, dict[str, str]]:
        """A signed form post of ``fields`` to the webhook URL."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if mode == "valid":
            headers["X-Mandrill-Signature"] = mandrill_signature(self.key, URL, fields)
        elif mode == "forged":
            headers["X-Mandrill-Signature"] = mandrill_signature("guessed", URL, fields)
        return urlencode(fields).encode(), headers
