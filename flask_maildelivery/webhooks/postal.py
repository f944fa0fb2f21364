"""Postal webhooks: one JSON event per request (``{"event", "timestamp", "uuid",
"payload"}``), signed with the mail server's RSA key: ``X-Postal-Signature`` is base64 of an
RSA PKCS#1 v1.5 signature over the raw body with SHA-1 (``X-Postal-Signature-256``, sent by
newer Postal versions, the same with SHA-256, preferred when present). The body's own
``timestamp`` is signed with it and checked against the retry horizon.

Postal keeps one message per recipient; it echoes no custom data but the message's tag: the
correlation id goes in the tag ``maildelivery_id:<id>`` (``X-Postal-Tag`` over SMTP), and
events also match by the message's Message-ID.

Config: ``MAILDELIVERY_POSTAL_WEBHOOK_PUBLIC_KEY`` (the server's public key as Postal prints
it, base64 DER, or PEM; a list during a change), ``MAILDELIVERY_POSTAL_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id, normalize_message_id
from ..schemas import Epoch, FlatPayloadSchema
from .base import (
    AuthenticationFailed,
    SigningKeyAdapter,
    WebhookRequest,
    addresses_of,
    obj,
    parse_epoch,
    signing_key_keys,
    text_or_none,
    validate,
)

#: Postal ``event`` -> (normalized type, bounce type).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "MessageSent": ("delivered", None),
    "MessageDelayed": ("deferred", "soft"),
    "MessageDeliveryFailed": ("bounced", "hard"),
    # held for review on the server: not sent yet
    "MessageHeld": ("processed", None),
    "MessageBounced": ("bounced", "hard"),
    "MessageLinkClicked": ("clicked", None),
    "MessageLoaded": ("opened", None),
}
#: The tag prefix that carries the correlation id.
TAG_PREFIX = f"{CORRELATION_KEY}:"


class PostalEventSchema(FlatPayloadSchema):
    """A Postal webhook body."""

    event = fields.String(required=True)
    timestamp = Epoch(required=True)
    payload = fields.Dict(required=True)
    uuid = fields.String()


_schema = PostalEventSchema()


def load_public_key(value: str) -> rsa.RSAPublicKey:
    """The key as Postal prints it (base64 DER, the PEM body without its lines), or PEM."""
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(
            "MAILDELIVERY_POSTAL_WEBHOOK_PUBLIC_KEY is not an RSA public key; copy the key "
            f"from the mail server's Webhooks page in Postal ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("MAILDELIVERY_POSTAL_WEBHOOK_PUBLIC_KEY is not an RSA key")
    return key


def smtp_code(output: Any) -> str | None:
    """The reply code at the start of the remote server's answer (``"250 2.0.0 OK"``)."""
    code = str(output or "")[:3]
    return code if code.isdigit() else None


class PostalAdapter(SigningKeyAdapter[rsa.RSAPublicKey]):
    """Postal signed webhooks."""

    provider = "postal"
    config_keys = signing_key_keys("postal", "POSTAL_WEBHOOK_PUBLIC_KEY")
    schema = _schema
    event_types = EVENT_TYPES
    # Postal retries a failed webhook request a few times within the hour (growing delays);
    # the signed body keeps its timestamp
    retry_horizon = 3600
    retry_status = 503
    retried_answers = "any answer but 2xx, a few times with growing delays within the hour"
    stored_headers = (
        "content-type",
        "user-agent",
        "x-postal-signature",
        "x-postal-signature-256",
    )
    setup_hint = (
        "set MAILDELIVERY_POSTAL_WEBHOOK_PUBLIC_KEY to the public key shown on the mail "
        "server's Webhooks page in Postal"
    )
    key_setting = "POSTAL_WEBHOOK_PUBLIC_KEY"

    def load_key(self, value: str) -> rsa.RSAPublicKey:
        return load_public_key(value)

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        return "X-Postal-Tag", TAG_PREFIX + public_id

    def verify(self, request: WebhookRequest) -> None:
        sha256 = request.header("X-Postal-Signature-256")
        given = sha256 or request.header("X-Postal-Signature")
        if not given:
            raise AuthenticationFailed("the request has no X-Postal-Signature header")
        try:
            signature = base64.b64decode(given, validate=True)
        except binascii.Error:
            raise AuthenticationFailed("the signature is not base64") from None
        algorithm = hashes.SHA256() if sha256 else hashes.SHA1()
        for key in self.keys:
            try:
                key.verify(signature, request.body, padding.PKCS1v15(), algorithm)
                break
            except InvalidSignature:
                continue
        else:
            raise AuthenticationFailed("the signature does not match the body")
        data = request.json()
        when = data.get("timestamp") if isinstance(data, dict) else None
        if when is not None:
            self.timestamps.check(parse_epoch(when, "timestamp"), request.received_at)

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        validate(_schema, data, "the Postal webhook body")
        return [self.normalize(data)]

    def normalize(self, data: dict[str, Any]) -> NormalizedEvent:
        """One Postal event as a normalized event."""
        raw_type = data["event"]
        type_, bounce_type = EVENT_TYPES.get(raw_type, ("unknown", None))
        payload = data["payload"]
        message = obj(payload.get("message") or payload.get("original_message"))
        bounce = obj(payload.get("bounce"))
        tag = str(message.get("tag") or "")
        recipients = addresses_of(message.get("to"))
        return NormalizedEvent(
            provider=self.provider,
            provider_event_id=text_or_none(data.get("uuid"))
            or content_event_id(self.provider, data),
            type=type_,
            raw_type=raw_type,
            # a delivery attempt carries its own time; the body's is when the webhook was made
            occurred_at=parse_epoch(payload.get("timestamp") or data["timestamp"], "timestamp"),
            recipient=recipients[0] if len(recipients) == 1 else None,
            maildelivery_id=text_or_none(tag.removeprefix(TAG_PREFIX))
            if tag.startswith(TAG_PREFIX)
            else None,
            provider_message_id=normalize_message_id(text_or_none(message.get("message_id"))),
            reason=text_or_none(payload.get("details") or bounce.get("subject")),
            smtp_code=smtp_code(payload.get("output")),
            bounce_type=bounce_type,
            payload=data,
        )
