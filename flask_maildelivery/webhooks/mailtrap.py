"""Mailtrap sending webhooks: ``{"events": [...]}``, up to 500 events per request, signed
with a hex HMAC-SHA256 of the raw body (keyed with the webhook's signing secret) in the
``Mailtrap-Signature`` header. The correlation id comes back in ``custom_variables``
(``X-MT-Custom-Variables`` over SMTP).

Config: ``MAILDELIVERY_MAILTRAP_WEBHOOK_SECRET`` (the webhook's signing secret; a list
during a change).
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id, normalize_message_id
from ..schemas import Epoch, FlatPayloadSchema
from .base import (
    BodySignatureAdapter,
    MalformedPayload,
    WebhookRequest,
    json_or_none,
    obj,
    parse_epoch,
    text_or_none,
    validate,
)

#: Mailtrap ``event`` -> (normalized type, bounce type).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "delivery": ("delivered", None),
    # "temporary failure (will retry)"
    "soft bounce": ("deferred", "soft"),
    "bounce": ("bounced", "hard"),
    # the message is held back for now (the account or domain is suspended): Mailtrap may
    # still send it
    "suspension": ("deferred", None),
    "reject": ("dropped", None),
    "spam": ("complained", None),
    "unsubscribe": ("unsubscribed", None),
    "open": ("opened", None),
    "click": ("clicked", None),
}


class MailtrapEventSchema(FlatPayloadSchema):
    """One Mailtrap sending event."""

    event = fields.String(required=True)
    email = fields.String(required=True)
    timestamp = Epoch(required=True)
    message_id = fields.String()
    event_id = fields.String()
    custom_variables = fields.Dict()


_schema = MailtrapEventSchema()


class MailtrapAdapter(BodySignatureAdapter):
    """Mailtrap signed sending webhooks."""

    provider = "mailtrap"
    config_keys = {"MAILDELIVERY_MAILTRAP_WEBHOOK_SECRET": None}  # noqa: RUF012
    schema = _schema
    event_types = EVENT_TYPES
    # 40 retries, every 5 minutes; then Mailtrap pauses the webhook and emails the account
    retry_horizon = 40 * 5 * 60
    retry_status = 503
    retried_answers = "any answer but 200 (or none within 30 s), 40 times every 5 minutes"
    signature_header = "Mailtrap-Signature"
    key_setting = "MAILTRAP_WEBHOOK_SECRET"
    stored_headers = ("content-type", "user-agent", "mailtrap-signature")
    setup_hint = (
        "set MAILDELIVERY_MAILTRAP_WEBHOOK_SECRET to the signing secret shown on the "
        "webhook's page in Mailtrap (Settings > Webhooks)"
    )

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        return "X-MT-Custom-Variables", json.dumps({CORRELATION_KEY: public_id})

    def batch_items(self, request: WebhookRequest) -> list[bytes]:
        data = json_or_none(request)
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            return []
        return [json.dumps({"events": [item]}).encode() for item in events]

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise MalformedPayload('the Mailtrap body must be an object with an "events" array')
        validate(_schema, data["events"], "the Mailtrap events", many=True)
        return [self.normalize(item) for item in data["events"]]

    def normalize(self, item: dict[str, Any]) -> NormalizedEvent:
        """One Mailtrap event as a normalized event."""
        raw_type = item["event"]
        type_, bounce_type = EVENT_TYPES.get(raw_type, ("unknown", None))
        code = item.get("response_code")
        return NormalizedEvent(
            provider=self.provider,
            provider_event_id=text_or_none(item.get("event_id"))
            or content_event_id(self.provider, item),
            type=type_,
            raw_type=raw_type,
            occurred_at=parse_epoch(item["timestamp"], "timestamp"),
            recipient=item["email"],
            maildelivery_id=text_or_none(obj(item.get("custom_variables")).get(CORRELATION_KEY)),
            provider_message_id=normalize_message_id(text_or_none(item.get("message_id"))),
            reason=text_or_none(item.get("response") or item.get("reason")),
            smtp_code=None if code is None else text_or_none(code),
            bounce_type=bounce_type,
            payload=item,
        )
