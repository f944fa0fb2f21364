"""SendGrid Event Webhook: a JSON array of events, signed with ECDSA P-256 over the
timestamp header followed by the raw body.

Config: ``MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY`` (the verification key shown under Mail
Settings > Event Webhook > Signed Event Webhook; a list during a key change),
``MAILDELIVERY_SENDGRID_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import Epoch, FlatPayloadSchema
from .base import (
    AuthenticationFailed,
    SigningKeyAdapter,
    WebhookRequest,
    parse_epoch,
    signing_key_keys,
    text_or_none,
    validate,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

#: SendGrid event name -> normalized type (``bounce`` is refined by its ``type``).
EVENT_TYPES: dict[str, str] = {
    "processed": "processed",
    "deferred": "deferred",
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "dropped": "dropped",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}


class SendGridEventSchema(FlatPayloadSchema):
    """One element of SendGrid's event array."""

    event = fields.String(required=True)
    email = fields.String(required=True)
    timestamp = Epoch(required=True)
    sg_event_id = fields.String()
    sg_message_id = fields.String()


_schema = SendGridEventSchema()


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The key as SendGrid shows it (base64 DER), or PEM."""
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(
            "MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA public key; copy the "
            f"verification key from SendGrid's Mail Settings > Event Webhook ({exc})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA key")
    return key


class SendGridAdapter(SigningKeyAdapter[ec.EllipticCurvePublicKey]):
    """SendGrid signed Event Webhook."""

    provider = "sendgrid"
    config_keys = signing_key_keys("sendgrid", "SENDGRID_WEBHOOK_PUBLIC_KEY")
    schema = _schema
    event_types = EVENT_TYPES
    # SendGrid retries for 24 h and does not document whether a retry is re-signed: accept
    # the whole retry window (repeats are deduplicated on sg_event_id)
    retry_horizon = 24 * 3600
    retry_status = 503
    retried_answers = "any answer but 2xx, for up to 24 hours"
    stored_headers = ("content-type", "user-agent", SIGNATURE_HEADER, TIMESTAMP_HEADER)
    setup_hint = (
        "set MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY to the verification key shown in "
        "SendGrid's Mail Settings > Event Webhook (Signed Event Webhook enabled)"
    )

    key_setting = "SENDGRID_WEBHOOK_PUBLIC_KEY"

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        # unique_args of the X-SMTPAPI header come back as fields of every event
        return "X-SMTPAPI", json.dumps({"unique_args": {CORRELATION_KEY: public_id}})

    def load_key(self, value: str) -> ec.EllipticCurvePublicKey:
        return load_public_key(value)

    def verify(self, request: WebhookRequest) -> None:
        signature = request.header(SIGNATURE_HEADER)
        timestamp = request.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise AuthenticationFailed(
                f"the request has no {SIGNATURE_HEADER} / {TIMESTAMP_HEADER} header"
            )
        try:
            der = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise AuthenticationFailed("the signature is not base64") from None
        signed = timestamp.encode() + request.body
        for key in self.keys:
            try:
                key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
                break
            except InvalidSignature:
                continue
        else:
            raise AuthenticationFailed("the signature does not match the body")
        self.timestamps.check(
            parse_epoch(timestamp, "the signature timestamp"), request.received_at
        )

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        validate(_schema, data, "the SendGrid event batch", many=True)
        return [self.normalize(item) for item in data]

    def normalize(self, item: dict[str, Any]) -> NormalizedEvent:
        """One SendGrid event as a normalized event."""
        raw_type = item["event"]
        type_ = EVENT_TYPES.get(raw_type, "unknown")
        bounce_type = None
        if raw_type == "bounce":
            bounce_type = "block" if item.get("type") == "blocked" else "hard"
        elif raw_type == "deferred":
            bounce_type = "soft"
        message_id = text_or_none(item.get("sg_message_id"))
        reason = text_or_none(item.get("reason") or item.get("response"))
        return NormalizedEvent(
            provider=self.provider,
            provider_event_id=text_or_none(item.get("sg_event_id"))
            or content_event_id(self.provider, item),
            type=type_,
            raw_type=raw_type,
            occurred_at=parse_epoch(item["timestamp"], "timestamp"),
            recipient=item["email"],
            maildelivery_id=text_or_none(item.get(CORRELATION_KEY)),
            # sg_message_id is the X-Message-Id of the send plus a ".filter..." suffix
            provider_message_id=message_id.split(".", 1)[0] if message_id else None,
            reason=reason,
            smtp_code=text_or_none(item.get("status")),
            bounce_type=bounce_type,
            payload=item,
        )
