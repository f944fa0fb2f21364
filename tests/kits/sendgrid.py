"""SendGrid kit: a JSON array of events, signed with ECDSA P-256 over the timestamp header
followed by the raw body (a key pair generated here)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .base import EXPECTED_TYPES, Facts, Kit, epoch


@dataclass
class SendGridKit(Kit):
    provider: ClassVar[str] = "sendgrid"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    # its soft bounce is a delay notice: it retries
    expected_overrides: ClassVar[dict[str, str]] = {"soft_bounce": "deferred"}
    malformed_event: ClassVar[dict[str, Any]] = {"event": "delivered", "timestamp": "yesterday"}
    batch: ClassVar[bool] = True
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @staticmethod
    def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
        """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": self.public_b64(self.key)}

    def wrong_config(self) -> dict[str, Any]:
        other = ec.generate_private_key(ec.SECP256R1())
        return {"MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": self.public_b64(other)}

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        base: dict[str, Any] = {
            "email": facts.address,
            "timestamp": epoch(facts.at),
            "sg_event_id": facts.event_id,
            "smtp-id": f"<{facts.message_id}@ismtpd.sendgrid.net>",
            "category": ["invoice"],
        }
        if facts.message_id:
            base["sg_message_id"] = f"{facts.message_id}.filterdrecv-5645d9c87f-abcde-1-0"
        if facts.public_id:
            base["maildelivery_id"] = facts.public_id
        extra: dict[str, dict[str, Any]] = {
            "processed": {"event": "processed"},
            "delivered": {"event": "delivered", "response": "250 OK"},
            "deferred": {"event": "deferred", "response": "421 try again later", "attempt": "1"},
            "soft_bounce": {
                "event": "deferred",
                "response": "452 4.2.2 mailbox full",
                "attempt": "2",
            },
            "hard_bounce": {
                "event": "bounce",
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 no such user",
                "bounce_classification": "Invalid Address",
            },
            "dropped": {"event": "dropped", "reason": "Bounced Address"},
            "open": {"event": "open", "useragent": "Mozilla/5.0", "ip": "192.0.2.1"},
            "click": {"event": "click", "url": "https://acme.test/invoice/42"},
            "complaint": {"event": "spamreport"},
            "unsubscribe": {"event": "unsubscribe"},
            "unknown": {"event": "future_event_name"},
        }
        return {**base, **extra[kind]}

    def sign(self, key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
        """The base64 DER signature of ``timestamp`` followed by ``body``."""
        return base64.b64encode(
            key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        ).decode()

    def signed_headers(self, body: bytes, signed_at: datetime | None = None) -> dict[str, str]:
        """The headers SendGrid sends with ``body``, signed with the kit's key at
        ``signed_at`` (default: now)."""
        timestamp = str(epoch(signed_at or datetime.now(UTC)))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": self.sign(self.key, timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(events).encode()
        if mode == "missing":
            return body, {"Content-Type": "application/json"}
        if mode == "forged":
            # a valid signature of other bytes
            return body, self.signed_headers(body + b" ", signed_at)
        return body, self.signed_headers(body, signed_at)
