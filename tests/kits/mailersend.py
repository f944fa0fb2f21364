"""MailerSend kit: one JSON activity per request (the current payload version), signed with
a hex HMAC-SHA256 of the body in ``Signature``, keyed with a secret generated here."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, Facts, SignedBodyKit, iso


def hex_signature(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` keyed with ``secret`` (MailerSend, Mailtrap)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class MailerSendKit(SignedBodyKit):
    provider: ClassVar[str] = "mailersend"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    malformed_event: ClassVar[dict[str, Any]] = {"type": "activity.delivered"}
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILERSEND_WEBHOOK_SECRET": self.secret}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILERSEND_WEBHOOK_SECRET": "another-secret"}

    def new_message_id(self) -> str:
        return secrets.token_hex(12)

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        type_, meta = {
            "processed": ("sent", {}),
            "delivered": ("delivered", {}),
            "deferred": ("deferred", {"bounce_reason": "421 try again later"}),
            "soft_bounce": (
                "soft_bounced",
                {"bounce_reason": "452 4.2.2 mailbox full", "bounce_code": 452},
            ),
            "hard_bounce": (
                "hard_bounced",
                {"bounce_reason": "550 5.1.1 no such user", "bounce_code": 550},
            ),
            "dropped": ("suppressed", {"suppression_reason": "hard_bounced"}),
            "open": ("opened", {"user_agent": "Mozilla/5.0"}),
            "click": ("clicked", {"url": "https://acme.test/invoice/42"}),
            "complaint": ("spam_complaint", {}),
            "unsubscribe": ("unsubscribed", {"unsubscribe_reason": "NO_LONGER_WANT"}),
            "unknown": ("survey_opened", {}),
        }[kind]
        tags = ["invoice"] + ([f"maildelivery_id:{facts.public_id}"] if facts.public_id else [])
        return {
            "type": f"activity.{type_}",
            "domain_id": "7z3m5jgrogdpyo6n",
            "created_at": iso(facts.at),
            "webhook_id": "pq3enl6xv2m4yz7w",
            "url": "https://erp.example/maildelivery/webhooks/mailersend",
            "data": {
                "id": facts.event_id,
                "type": type_,
                "recipient": facts.address,
                "message_id": facts.message_id or "000000000000000000000000",
                "tags": tags,
                "meta": meta,
            },
        }

    def signature_headers(self, body: bytes, *, forged: bool) -> dict[str, str]:
        return {"Signature": hex_signature("guessed" if forged else self.secret, body)}
