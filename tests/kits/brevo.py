"""Brevo kit: one transactional event per request, or an array of them (batched webhooks);
basic auth."""

from __future__ import annotations

import json
import secrets
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, BasicAuthKit, Facts


class BrevoKit(BasicAuthKit):
    provider: ClassVar[str] = "brevo"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    malformed_event: ClassVar[dict[str, Any]] = {"event": "delivered", "ts_epoch": 1700000000000}
    batch: ClassVar[bool] = True

    def new_message_id(self) -> str:
        return f"<{secrets.token_hex(6)}.{secrets.randbelow(10**10)}@smtp-relay.mailin.fr>"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        common: dict[str, Any] = {
            "id": 123456,
            "email": facts.address,
            "message-id": facts.message_id or "<none@smtp-relay.mailin.fr>",
            "date": facts.at.strftime("%Y-%m-%d %H:%M:%S"),
            "ts_epoch": int(facts.at.timestamp() * 1000),
            "subject": "Invoice INV-0042",
            "tags": ["invoice"],
            "X-Mailin-custom": json.dumps({"maildelivery_id": facts.public_id})
            if facts.public_id
            else "",
            "sending_ip": "192.0.2.10",
        }
        extras: dict[str, dict[str, Any]] = {
            "processed": {"event": "request"},
            "delivered": {"event": "delivered"},
            "deferred": {"event": "deferred", "reason": "421 try later"},
            "soft_bounce": {"event": "soft_bounce", "reason": " 452 mailbox full"},
            "hard_bounce": {"event": "hard_bounce", "reason": "550 5.1.1 no such user"},
            "dropped": {"event": "blocked", "reason": "blocked : due to blacklist user"},
            "open": {"event": "opened"},
            "click": {"event": "click", "link": "https://acme.test/invoice/42"},
            "complaint": {"event": "spam"},
            "unsubscribe": {"event": "unsubscribed"},
            "unknown": {"event": "future_event"},
        }
        return {**common, **extras[kind]}
