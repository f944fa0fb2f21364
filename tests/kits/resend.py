"""Resend kit: one JSON event per request, delivered by Svix: HMAC-SHA256 over
``svix-id.svix-timestamp.body`` keyed with a ``whsec_`` secret generated here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, Facts, Kit, epoch, iso

#: A secret of a previous rotation: its signature rides along with the current one.
RETIRED_SECRET = "whsec_" + base64.b64encode(b"retired-secret").decode()


@dataclass
class ResendKit(Kit):
    provider: ClassVar[str] = "resend"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"unsubscribe"}
    per_message: ClassVar[frozenset[str]] = frozenset({"open", "click"})
    malformed_event: ClassVar[dict[str, Any]] = {"__id": "msg_malformed", "type": "email.delivered"}
    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_RESEND_WEBHOOK_SECRET": self.secret}

    def wrong_config(self) -> dict[str, Any]:
        return {
            "MAILDELIVERY_RESEND_WEBHOOK_SECRET": "whsec_"
            + base64.b64encode(b"another-secret-key").decode()
        }

    def new_message_id(self) -> str:
        return str(uuid.uuid4())

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        data: dict[str, Any] = {
            "email_id": facts.message_id or "00000000-0000-4000-8000-000000000000",
            "from": "Billing <billing@acme.test>",
            "to": [facts.address],
            "subject": "Invoice INV-0042",
            "created_at": iso(facts.at - timedelta(seconds=5)),
            "tags": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        type_, extra = {
            "processed": ("email.sent", {}),
            "delivered": ("email.delivered", {}),
            "deferred": ("email.delivery_delayed", {}),
            "soft_bounce": (
                "email.bounced",
                {
                    "bounce": {
                        "type": "Transient",
                        "subType": "MailboxFull",
                        "message": "mailbox full",
                    }
                },
            ),
            "hard_bounce": (
                "email.bounced",
                {
                    "bounce": {
                        "type": "Permanent",
                        "subType": "General",
                        "message": "The recipient's mail server permanently rejected the email.",
                    }
                },
            ),
            "dropped": ("email.suppressed", {}),
            "open": ("email.opened", {}),
            "click": (
                "email.clicked",
                {"click": {"link": "https://acme.test/invoice/42", "userAgent": "Mozilla/5.0"}},
            ),
            "complaint": ("email.complained", {}),
            "unknown": ("email.future", {}),
        }[kind]
        return {
            "__id": facts.event_id,
            "type": type_,
            "created_at": iso(facts.at),
            "data": {**data, **extra},
        }

    def signature(self, secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
        """One ``v1,<base64>`` entry of ``svix-signature`` for ``body``."""
        key = base64.b64decode(secret.removeprefix("whsec_"))
        return (
            "v1,"
            + base64.b64encode(
                hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
            ).decode()
        )

    def signed_headers(
        self, body: bytes, msg_id: str, signed_at: datetime | None = None
    ) -> dict[str, str]:
        """The headers Svix sends with ``body`` as message ``msg_id`` at ``signed_at``
        (default: now): a retired secret's signature next to the kit's, as during a
        rotation."""
        timestamp = str(epoch(signed_at or datetime.now(UTC)))
        return {
            "Content-Type": "application/json",
            "svix-id": msg_id,
            "svix-timestamp": timestamp,
            "svix-signature": " ".join(
                [
                    self.signature(RETIRED_SECRET, msg_id, timestamp, body),
                    self.signature(self.secret, msg_id, timestamp, body),
                ]
            ),
        }

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        assert len(events) == 1
        item = dict(events[0])
        msg_id = item.pop("__id", None) or f"msg_{secrets.token_hex(8)}"
        body = json.dumps(item).encode()
        if mode == "missing":
            return body, {"Content-Type": "application/json"}
        headers = self.signed_headers(body, msg_id, signed_at)
        if mode == "forged":
            headers["svix-signature"] = self.signature(
                self.secret, msg_id, headers["svix-timestamp"], body + b"x"
            )
        return body, headers
