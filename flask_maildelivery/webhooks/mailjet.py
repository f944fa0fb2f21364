"""Mailjet Event API: one JSON event per request, or an array of them (``Version 2``
grouping). Mailjet signs nothing: the callback URL carries basic auth credentials.

Config: ``MAILDELIVERY_MAILJET_WEBHOOK_USERNAME`` / ``_PASSWORD`` (or the list
``MAILDELIVERY_MAILJET_WEBHOOK_CREDENTIALS``), ``MAILDELIVERY_MAILJET_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import Epoch, FlatPayloadSchema
from .base import (
    BasicAuthAdapter,
    WebhookRequest,
    basic_auth_keys,
    json_object_field,
    parse_epoch,
    text_or_none,
)

#: Mailjet ``event`` -> normalized type (``bounce`` is refined by ``hard_bounce``).
EVENT_TYPES: dict[str, str] = {
    "sent": "delivered",
    "bounce": "bounced",
    "blocked": "dropped",
    "spam": "complained",
    "open": "opened",
    "click": "clicked",
    "unsub": "unsubscribed",
}


class MailjetEventSchema(FlatPayloadSchema):
    """A Mailjet event."""

    event = fields.String(required=True)
    time = Epoch(required=True)
    email = fields.String(required=True)
    MessageID = fields.Raw()


_schema = MailjetEventSchema()


class MailjetAdapter(BasicAuthAdapter):
    """Mailjet Event API (basic auth)."""

    provider = "mailjet"
    config_keys = basic_auth_keys("mailjet")
    schema = _schema
    event_types = EVENT_TYPES
    retry_horizon = 24 * 3600
    retried_answers = "any answer but 200, for up to 24 hours"
    # Mailjet's documented retry schedules disagree (10 x 10 min, or every 30 s for 24 h):
    # take the longer one
    # Mailjet retries any non-200 answer (its schedules disagree: up to 24 hours)
    retry_status = 503
    setup_hint = (
        "set MAILDELIVERY_MAILJET_WEBHOOK_USERNAME and MAILDELIVERY_MAILJET_WEBHOOK_PASSWORD "
        "and put them in the event callback URL (https://user:password@host/...) in Mailjet"
    )

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        return self.events_of_items(request, _schema, "the Mailjet event", self.normalize)

    def normalize(self, item: dict[str, Any]) -> NormalizedEvent:
        """One Mailjet event as a normalized event."""
        raw_type = item["event"]
        type_ = EVENT_TYPES.get(raw_type, "unknown")
        bounce_type = None
        if raw_type == "bounce":
            # Mailjet sends bounce once it stopped retrying: a soft one is final too
            bounce_type = "hard" if item.get("hard_bounce") else "soft"
        payload = json_object_field(item.get("Payload"))
        message_id = item.get("MessageID")
        reason = " / ".join(
            str(item[k]) for k in ("error_related_to", "error") if item.get(k)
        ) or text_or_none(item.get("smtp_reply"))
        return NormalizedEvent(
            provider=self.provider,
            # Mailjet sends no event id: the content identifies a retried event
            provider_event_id=content_event_id(self.provider, item),
            type=type_,
            raw_type=raw_type,
            occurred_at=parse_epoch(item["time"], "time"),
            recipient=item["email"],
            maildelivery_id=text_or_none(payload.get(CORRELATION_KEY))
            or text_or_none(item.get("CustomID")),
            # a 19-digit integer: compare as text
            provider_message_id=None if message_id in (None, "", 0) else str(message_id),
            reason=reason or None,
            bounce_type=bounce_type,
            payload=item,
        )
