"""Brevo (Sendinblue) transactional webhooks: one JSON event per request, or an array when
the webhook is created with ``batched: true``. Brevo signs nothing: the webhook URL carries
basic auth credentials.

Config: ``MAILDELIVERY_BREVO_WEBHOOK_USERNAME`` / ``_PASSWORD`` (or the list
``MAILDELIVERY_BREVO_WEBHOOK_CREDENTIALS``), ``MAILDELIVERY_BREVO_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id, normalize_message_id
from ..schemas import Epoch, FlatPayloadSchema
from .base import (
    BasicAuthAdapter,
    WebhookRequest,
    basic_auth_keys,
    json_object_field,
    parse_epoch,
    text_or_none,
)

#: Brevo ``event`` -> (normalized type, bounce type).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "request": ("processed", None),
    "delivered": ("delivered", None),
    "deferred": ("deferred", "soft"),
    # Brevo retries deferred mail for about 36 hours; soft_bounce comes once it stopped
    "soft_bounce": ("bounced", "soft"),
    "hard_bounce": ("bounced", "hard"),
    "invalid_email": ("bounced", "hard"),
    "blocked": ("dropped", None),
    "error": ("dropped", None),
    "spam": ("complained", None),
    "complaint": ("complained", None),
    "opened": ("opened", None),
    "unique_opened": ("opened", None),
    "proxy_open": ("opened", None),
    "unique_proxy_open": ("opened", None),
    "click": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    "unsubscribe": ("unsubscribed", None),
}


class BrevoEventSchema(FlatPayloadSchema):
    """A Brevo transactional event."""

    event = fields.String(required=True)
    email = fields.String(required=True)
    # ts_epoch (UTC milliseconds) is not in every event: ts_event (UTC seconds) then
    ts_epoch = Epoch()
    ts_event = Epoch()
    message_id = fields.String(data_key="message-id")


_schema = BrevoEventSchema()


class BrevoAdapter(BasicAuthAdapter):
    """Brevo transactional webhooks (basic auth)."""

    provider = "brevo"
    config_keys = basic_auth_keys("brevo")
    schema = _schema
    event_types = EVENT_TYPES
    retry_horizon = 11 * 3600
    retried_answers = (
        "429 only (any other 4xx and every 5xx drop the request), up to about 11 hours"
    )
    # batches wait up to 5 minutes; retries come after 10 min, 1 h, 2 h and 8 h
    # Brevo drops a request answered with any 4xx but 429, or with any 5xx: 429 is the one
    # answer it retries (developers.brevo.com/docs/retry-mechanism)
    retry_status = 429
    setup_hint = (
        "set MAILDELIVERY_BREVO_WEBHOOK_USERNAME and MAILDELIVERY_BREVO_WEBHOOK_PASSWORD and put "
        "them in the webhook URL (https://user:password@host/...) in Brevo"
    )

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        return self.events_of_items(
            request,
            _schema,
            "the Brevo event",
            lambda item: self.normalize(item, request.received_at),
        )

    @staticmethod
    def occurred_at(item: dict[str, Any], received_at: datetime) -> datetime:
        """``ts_epoch`` (UTC milliseconds), else ``ts_event`` (UTC seconds), else when the
        request arrived; ``date`` is in the account's time zone, which the event does not
        say."""
        if item.get("ts_epoch") is not None:
            return parse_epoch(item["ts_epoch"], "ts_epoch", milliseconds=True)
        if item.get("ts_event") is not None:
            return parse_epoch(item["ts_event"], "ts_event")
        return received_at

    def normalize(self, item: dict[str, Any], received_at: datetime) -> NormalizedEvent:
        """One Brevo event as a normalized event."""
        raw_type = item["event"]
        type_, bounce_type = EVENT_TYPES.get(raw_type, ("unknown", None))
        custom = json_object_field(item.get("X-Mailin-custom"))
        return NormalizedEvent(
            provider=self.provider,
            # Brevo sends no event id (``id`` is the webhook's): the content identifies it
            provider_event_id=content_event_id(self.provider, item),
            type=type_,
            raw_type=raw_type,
            occurred_at=self.occurred_at(item, received_at),
            recipient=item["email"],
            maildelivery_id=text_or_none(custom.get(CORRELATION_KEY)),
            provider_message_id=normalize_message_id(text_or_none(item.get("message-id"))),
            reason=text_or_none(item.get("reason")),
            bounce_type=bounce_type,
            payload=item,
        )
