"""Mailgun webhooks: one JSON object per request, ``signature`` holding an HMAC-SHA256 of
timestamp + token keyed with the Webhook Signing Key; tokens are single-use.

Config: ``MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY`` (Sending > Webhooks > HTTP webhook
signing key; a list during a key change), ``MAILDELIVERY_MAILGUN_WEBHOOK_TOLERANCE``. A
token is accepted once in every process sharing the database (see :mod:`.inbox`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, normalize_message_id
from ..schemas import Epoch, FlatPayloadSchema, PayloadSchema
from .base import (
    CLOCK_SKEW,
    AuthenticationFailed,
    SigningKeyAdapter,
    WebhookRequest,
    addresses_of,
    constant_time_equal,
    obj,
    parse_epoch,
    signing_key_keys,
    text_or_none,
    validate,
)

#: Mailgun event name -> normalized type (``failed`` is refined by ``severity``/``reason``).
EVENT_TYPES: dict[str, str] = {
    "accepted": "processed",
    "delivered": "delivered",
    "failed": "bounced",
    "rejected": "dropped",
    "complained": "complained",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
}


class MailgunSignatureSchema(FlatPayloadSchema):
    """Mailgun's ``signature`` object."""

    timestamp = Epoch(required=True)
    token = fields.String(required=True)
    signature = fields.String(required=True)


class MailgunEventDataSchema(FlatPayloadSchema):
    """Mailgun's ``event-data`` object."""

    event = fields.String(required=True)
    timestamp = Epoch(required=True)
    recipient = fields.String()
    id = fields.String()
    message = fields.Dict()
    user_variables = fields.Dict(data_key="user-variables")
    delivery_status = fields.Dict(data_key="delivery-status")


class MailgunPayloadSchema(PayloadSchema):
    """A Mailgun webhook body."""

    signature = fields.Nested(MailgunSignatureSchema, required=True)
    event_data = fields.Nested(MailgunEventDataSchema, required=True, data_key="event-data")


_schema = MailgunPayloadSchema()


def header_recipient(headers: dict[str, Any]) -> str | None:
    """The recipient of an event without ``recipient``: the message's To header when it
    names one address; with several, the event says nothing about which (``None``: stored
    with the email, applied to no recipient)."""
    addresses = addresses_of(headers.get("to"))
    return addresses[0] if len(addresses) == 1 else None


class MailgunAdapter(SigningKeyAdapter[bytes]):
    """Mailgun signed webhooks."""

    provider = "mailgun"
    # Mailgun retries for about 8 h; re-signing of retries is undocumented, so accept the
    # window; a token is single-use, kept in the database with the stored request
    retry_horizon = 8 * 3600
    config_keys = signing_key_keys("mailgun", "MAILGUN_WEBHOOK_SIGNING_KEY")
    schema = _schema
    event_types = EVENT_TYPES
    # 406 tells Mailgun not to retry
    auth_failure_status = 406
    retry_status = 503
    retried_answers = "any answer but 200 and 406, for about 8 hours"
    setup_hint = (
        "set MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY to the HTTP webhook signing key shown in "
        "Mailgun's Sending > Webhooks (not the API key)"
    )

    key_setting = "MAILGUN_WEBHOOK_SIGNING_KEY"

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        return "X-Mailgun-Variables", json.dumps({CORRELATION_KEY: public_id})

    def load_key(self, value: str) -> bytes:
        return value.encode()

    def _signature(self, request: WebhookRequest) -> dict[str, Any]:
        data = request.json()
        signature = data.get("signature") if isinstance(data, dict) else None
        if not isinstance(signature, dict) or not all(
            isinstance(signature.get(k), str | int | float) and str(signature.get(k))
            for k in ("timestamp", "token", "signature")
        ):
            raise AuthenticationFailed("the request has no signature {timestamp, token, signature}")
        return signature

    def verify(self, request: WebhookRequest) -> None:
        signature = self._signature(request)
        timestamp, token = str(signature["timestamp"]), str(signature["token"])
        # surrogatepass: a lone surrogate from a JSON escape makes a signature that fails
        signed = (timestamp + token).encode("utf-8", "surrogatepass")
        given = str(signature["signature"])
        if not any(
            constant_time_equal(hmac.new(key, signed, hashlib.sha256).hexdigest(), given)
            for key in self.keys
        ):
            raise AuthenticationFailed("the signature does not match")
        self.timestamps.check(
            parse_epoch(timestamp, "the signature timestamp"), request.received_at
        )

    def single_use_token(self, request: WebhookRequest) -> tuple[str, datetime] | None:
        signature = self._signature(request)
        signed_at = parse_epoch(signature["timestamp"], "the signature timestamp")
        return str(signature["token"]), signed_at + timedelta(
            seconds=self.timestamps.tolerance + CLOCK_SKEW
        )

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        validate(_schema, data, "the Mailgun webhook body")
        item: dict[str, Any] = data["event-data"]
        raw_type = item["event"]
        type_ = EVENT_TYPES.get(raw_type, "unknown")
        bounce_type = None
        status = obj(item.get("delivery-status"))
        if raw_type == "failed":
            reason_code = str(item.get("reason") or "")
            if item.get("severity") == "temporary":
                type_, bounce_type = "deferred", "soft"
            elif reason_code.startswith("suppress-"):
                # Mailgun did not even try: the address is on a suppression list
                type_ = "dropped"
            else:
                bounce_type = "hard"
        headers = obj(obj(item.get("message")).get("headers"))
        variables = obj(item.get("user-variables"))
        event_id = text_or_none(item.get("id"))
        timestamp = item["timestamp"]
        return [
            NormalizedEvent(
                provider=self.provider,
                # Mailgun event ids are unique only within a day
                provider_event_id=f"{event_id}:{timestamp}"
                if event_id
                else f"token:{data['signature']['token']}",
                type=type_,
                raw_type=raw_type,
                occurred_at=parse_epoch(timestamp, "event-data.timestamp"),
                recipient=text_or_none(item.get("recipient")) or header_recipient(headers),
                maildelivery_id=text_or_none(variables.get(CORRELATION_KEY)),
                provider_message_id=normalize_message_id(text_or_none(headers.get("message-id"))),
                reason=text_or_none(status.get("description") or status.get("message"))
                or text_or_none(item.get("reason") if raw_type in ("failed", "rejected") else None),
                smtp_code=text_or_none(status.get("code")),
                bounce_type=bounce_type,
                payload=data["event-data"],
            )
        ]
