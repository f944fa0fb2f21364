"""Mailtrap kit: ``{"events": [...]}`` batches, signed with a hex HMAC-SHA256 of the body in
``Mailtrap-Signature``, keyed with a secret generated here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, Facts, SignedBodyKit, epoch
from .mailersend import hex_signature


@dataclass
class MailtrapKit(SignedBodyKit):
    provider: ClassVar[str] = "mailtrap"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"processed"}
    # its soft bounce is a temporary failure it will retry
    expected_overrides: ClassVar[dict[str, str]] = {"soft_bounce": "deferred"}
    malformed_event: ClassVar[dict[str, Any]] = {"event": "delivery", "email": "ann@customer.test"}
    batch: ClassVar[bool] = True
    secret: str = field(default_factory=lambda: secrets.token_hex(16))

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILTRAP_WEBHOOK_SECRET": self.secret}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILTRAP_WEBHOOK_SECRET": "another-secret"}

    def new_message_id(self) -> str:
        return f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-11ef-{secrets.token_hex(6)}"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        extras: dict[str, tuple[str, dict[str, Any]]] = {
            "delivered": ("delivery", {}),
            "deferred": ("suspension", {"reason": "sending suspended for the domain"}),
            "soft_bounce": (
                "soft bounce",
                {"response": "452 4.2.2 mailbox full", "response_code": 452},
            ),
            "hard_bounce": (
                "bounce",
                {
                    "response": "550 5.1.1 no such user",
                    "response_code": 550,
                    "bounce_category": "invalid_recipient",
                },
            ),
            "dropped": ("reject", {"reason": "suppressed recipient"}),
            "open": ("open", {"ip": "192.0.2.7", "user_agent": "Mozilla/5.0"}),
            "click": ("click", {"url": "https://acme.test/invoice/42"}),
            "complaint": ("spam", {}),
            "unsubscribe": ("unsubscribe", {}),
            "unknown": ("future event", {}),
        }
        event, extra = extras[kind]
        return {
            "event": event,
            "message_id": facts.message_id or "00000000-0000-0000-0000-000000000000",
            "sending_stream": "transactional",
            "email": facts.address,
            "timestamp": epoch(facts.at),
            "event_id": facts.event_id,
            "category": "invoice",
            "custom_variables": {"maildelivery_id": facts.public_id} if facts.public_id else {},
            **extra,
        }

    def wrap(self, events: list[dict[str, Any]]) -> Any:
        return {"events": events}

    def signature_headers(self, body: bytes, *, forged: bool) -> dict[str, str]:
        return {"Mailtrap-Signature": hex_signature("guessed" if forged else self.secret, body)}
