"""Mailgun kit: one ``{"signature": {...}, "event-data": {...}}`` object per request, the
signature an HMAC-SHA256 of timestamp + token keyed with a signing key generated here."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from .base import EXPECTED_TYPES, Facts, Kit, epoch


@dataclass
class MailgunKit(Kit):
    provider: ClassVar[str] = "mailgun"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"deferred"}
    # its soft bounce is a delay notice: it retries
    expected_overrides: ClassVar[dict[str, str]] = {"soft_bounce": "deferred"}
    auth_status: ClassVar[int] = 406
    # the second post reuses the signature token: refused as a replay (stored once)
    repeat_status: ClassVar[int] = 406
    signing_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY": ["key-retired", self.signing_key]}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY": "key-of-another-account"}

    def new_message_id(self) -> str:
        # the send API answers with angle brackets; events carry the id without them
        return f"<20240101000000.{secrets.token_hex(6)}@mg.acme.test>"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": facts.event_id,
            "timestamp": facts.at.timestamp(),
            "recipient": facts.address,
            "log-level": "info",
            "tags": ["invoice"],
            "message": {"headers": {"message-id": (facts.message_id or "x@mg").strip("<>")}},
            "user-variables": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        failure = {
            "code": 550,
            "enhanced-code": "5.1.1",
            "message": "5.1.1 no such user",
            "attempt-no": 1,
        }
        extra: dict[str, dict[str, Any]] = {
            "processed": {"event": "accepted"},
            "delivered": {"event": "delivered", "delivery-status": {"code": 250, "message": "OK"}},
            "soft_bounce": {
                "event": "failed",
                "severity": "temporary",
                "reason": "generic",
                "delivery-status": {
                    "code": 452,
                    "message": "4.2.2 mailbox full",
                    "retry-seconds": 600,
                },
            },
            "hard_bounce": {
                "event": "failed",
                "severity": "permanent",
                "reason": "bounce",
                "delivery-status": failure,
            },
            "dropped": {
                "event": "rejected",
                "reject": {"reason": "Sandbox subdomains are for test purposes only"},
            },
            "open": {"event": "opened"},
            "click": {"event": "clicked", "url": "https://acme.test/invoice/42"},
            "complaint": {"event": "complained"},
            "unsubscribe": {"event": "unsubscribed"},
            "unknown": {"event": "future-event"},
        }
        return {**data, **extra[kind]}

    def signature(
        self, signed_at: datetime | None = None, *, key: str | None = None
    ) -> dict[str, str]:
        """A fresh ``signature`` object (timestamp, single-use token, HMAC) signed with
        ``key`` (default: the kit's signing key) at ``signed_at`` (default: now)."""
        timestamp = str(epoch(signed_at or datetime.now(UTC)))
        token = secrets.token_hex(25)
        digest = hmac.new(
            (key or self.signing_key).encode(), (timestamp + token).encode(), hashlib.sha256
        ).hexdigest()
        return {"timestamp": timestamp, "token": token, "signature": digest}

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        assert len(events) == 1
        body: dict[str, Any] = {"event-data": events[0]}
        if mode != "missing":
            body["signature"] = self.signature(
                signed_at, key="guessed" if mode == "forged" else None
            )
        return json.dumps(body).encode(), {"Content-Type": "application/json"}

    def malformed(self) -> tuple[bytes, dict[str, str]]:
        body, headers = self.request([{}])
        data = json.loads(body)
        data["event-data"] = {"event": "delivered"}  # no timestamp
        return json.dumps(data).encode(), headers
