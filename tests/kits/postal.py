"""Postal kit: one JSON event per request, signed with RSA (PKCS#1 v1.5, SHA-1 in
``X-Postal-Signature``) by a key pair generated here; the body's ``timestamp`` is signed with
it."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import Facts, SignedBodyKit


def new_key() -> rsa.RSAPrivateKey:
    """An RSA key pair as a Postal server has."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def postal_public_key(key: rsa.RSAPrivateKey) -> str:
    """The public key as Postal prints it: base64 DER, no PEM lines."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def postal_signature(key: rsa.RSAPrivateKey, body: bytes, algorithm: str = "sha1") -> str:
    """Base64 of the RSA signature of ``body``."""
    digest = hashes.SHA1() if algorithm == "sha1" else hashes.SHA256()
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), digest)).decode()


@dataclass
class PostalKit(SignedBodyKit):
    signs_time: ClassVar[bool] = True
    provider: ClassVar[str] = "postal"
    kinds: ClassVar[frozenset[str]] = frozenset(
        {"processed", "delivered", "deferred", "hard_bounce", "open", "click", "unknown"}
    )
    malformed_event: ClassVar[dict[str, Any]] = {"event": "MessageSent", "uuid": "x"}
    key: rsa.RSAPrivateKey = field(default_factory=new_key)

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_POSTAL_WEBHOOK_PUBLIC_KEY": postal_public_key(self.key)}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_POSTAL_WEBHOOK_PUBLIC_KEY": postal_public_key(new_key())}

    def new_message_id(self) -> str:
        return f"{uuid.uuid4()}@rp.postal.example.com"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        at = facts.at.timestamp()
        message = {
            "id": secrets.randbelow(10**6),
            "token": secrets.token_urlsafe(9),
            "direction": "outgoing",
            "message_id": facts.message_id or "none@rp.postal.example.com",
            "to": facts.address,
            "from": "billing@acme.test",
            "subject": "Invoice INV-0042",
            "timestamp": at - 5,
            "spam_status": "NotSpam",
            "tag": f"maildelivery_id:{facts.public_id}" if facts.public_id else None,
        }
        status = {
            "processed": ("MessageHeld", "Held", "Held for review", ""),
            "delivered": ("MessageSent", "Sent", "Message sent by SMTP", "250 2.0.0 OK"),
            "deferred": ("MessageDelayed", "SoftFail", "Will retry", "421 4.7.0 try later"),
            "hard_bounce": (
                "MessageDeliveryFailed",
                "HardFail",
                "Permanent SMTP delivery error",
                "550 5.1.1 no such user",
            ),
        }
        if kind in status:
            event, state, details, output = status[kind]
            payload: dict[str, Any] = {
                "message": message,
                "status": state,
                "details": details,
                "output": output,
                "sent_with_ssl": True,
                "timestamp": at,
                "time": 0.15,
            }
        elif kind == "open":
            event = "MessageLoaded"
            payload = {"ip_address": "192.0.2.7", "user_agent": "Mozilla/5.0", "message": message}
        elif kind == "click":
            event = "MessageLinkClicked"
            payload = {
                "url": "https://acme.test/invoice/42",
                "token": "VJzsFA0S",
                "ip_address": "192.0.2.7",
                "user_agent": "Mozilla/5.0",
                "message": message,
            }
        else:
            event, payload = "FutureEvent", {"message": message}
        return {"event": event, "timestamp": at, "payload": payload, "uuid": facts.event_id}

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        # the body's timestamp is when Postal made the webhook (kept by its retries); the
        # delivery attempt's own time is the payload's
        return super().build_request(
            [{**event, "timestamp": signed_at.timestamp()} for event in events], mode, signed_at
        )

    def signature_headers(self, body: bytes, *, forged: bool) -> dict[str, str]:
        return {"X-Postal-Signature": postal_signature(new_key() if forged else self.key, body)}
