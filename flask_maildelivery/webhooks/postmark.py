"""Postmark webhooks: one JSON record per request, routed on ``RecordType``. Postmark signs
nothing: the webhook URL carries basic auth credentials.

Config: ``MAILDELIVERY_POSTMARK_WEBHOOK_USERNAME`` / ``_PASSWORD`` (or the list
``MAILDELIVERY_POSTMARK_WEBHOOK_CREDENTIALS`` during a change),
``MAILDELIVERY_POSTMARK_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import PayloadSchema, one_of_required
from .base import (
    BasicAuthAdapter,
    WebhookRequest,
    basic_auth_keys,
    parse_iso,
    text_or_none,
    validate,
)

#: ``RecordType`` -> normalized type (``Bounce`` is refined by :data:`BOUNCE_TYPES`).
RECORD_TYPES: dict[str, str] = {
    "Delivery": "delivered",
    "Bounce": "bounced",
    "SpamComplaint": "complained",
    "Open": "opened",
    "Click": "clicked",
    "SubscriptionChange": "unsubscribed",
}

#: Bounce ``Type`` -> (normalized type, bounce type). Types not listed (auto-responders,
#: challenge verifications, ...) say nothing about delivery: ``unknown``.
BOUNCE_TYPES: dict[str, tuple[str, str | None]] = {
    "HardBounce": ("bounced", "hard"),
    # "Message delayed": Postmark still tries
    "Transient": ("deferred", "soft"),
    # final: Postmark reports a soft bounce once it stopped trying
    "SoftBounce": ("bounced", "soft"),
    "DnsError": ("deferred", "soft"),
    "VirusNotification": ("bounced", "hard"),
    "SpamNotification": ("complained", None),
    "Unconfirmed": ("dropped", None),
    "Undeliverable": ("bounced", "hard"),
    "BadEmailAddress": ("dropped", None),
    "ManuallyDeactivated": ("dropped", None),
    "Blocked": ("dropped", "block"),
    "SMTPApiError": ("dropped", None),
    "DMARCPolicy": ("dropped", "block"),
    "TemplateRenderingFailed": ("dropped", None),
    "Unsubscribe": ("unsubscribed", None),
    "SpamComplaint": ("complained", None),
}

#: ``SuppressionReason`` of a ``SubscriptionChange`` that stops sending -> (normalized type,
#: bounce type). ``ManualSuppression`` from the recipient (``Origin: Recipient``) is an
#: unsubscribe; from the account (``Customer``, ``Admin``) it is a drop.
SUPPRESSION_REASONS: dict[str, tuple[str, str | None]] = {
    "HardBounce": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
    "ManualSuppression": ("dropped", None),
}

#: Where each record type keeps its time and its recipient.
TIME_FIELDS: dict[str, str] = {
    "Delivery": "DeliveredAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "SubscriptionChange": "ChangedAt",
}
RECIPIENT_FIELDS: dict[str, str] = {"Bounce": "Email", "SpamComplaint": "Email"}


class PostmarkRecordSchema(PayloadSchema):
    """A Postmark webhook record."""

    RecordType = fields.String(required=True)
    MessageID = fields.String()
    Metadata = fields.Dict()

    _has_message_id = one_of_required("MessageID", "MessageId")


_schema = PostmarkRecordSchema()


def subscription_change(record: dict[str, Any]) -> tuple[str, str | None]:
    """The normalized type and bounce type of a ``SubscriptionChange``: by its
    ``SuppressionReason`` (:data:`SUPPRESSION_REASONS`); a reactivation
    (``SuppressSending: false``) changes nothing."""
    if not record.get("SuppressSending"):
        return "unknown", None
    reason = str(record.get("SuppressionReason") or "")
    if reason == "ManualSuppression" and record.get("Origin") == "Recipient":
        return "unsubscribed", None
    return SUPPRESSION_REASONS.get(reason, ("unsubscribed", None))


class PostmarkAdapter(BasicAuthAdapter):
    """Postmark webhooks (basic auth)."""

    provider = "postmark"
    config_keys = basic_auth_keys("postmark")
    schema = _schema
    event_types = RECORD_TYPES
    retry_horizon = 10.5 * 3600
    retried_answers = "5xx, 408, 429 and timeouts (any other 4xx drops the event), 10 times over about 10.5 hours for bounces"
    # Postmark retries for about 70 minutes; events older than that plus a margin are replays
    # Postmark retries only 5xx, 408, 429 and timeouts; any other 4xx drops the event
    retry_status = 503
    stored_headers = (
        "content-type",
        "user-agent",
        "x-pm-webhook-trace-id",
        "x-pm-retries-remaining",
    )

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        return f"X-PM-Metadata-{CORRELATION_KEY}", public_id

    setup_hint = (
        "set MAILDELIVERY_POSTMARK_WEBHOOK_USERNAME and MAILDELIVERY_POSTMARK_WEBHOOK_PASSWORD "
        "and put them in the webhook URL (https://user:password@host/...) in Postmark"
    )

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        validate(_schema, data, "the Postmark record")
        return [self.normalize(data, request.received_at)]

    def normalize(self, record: dict[str, Any], received_at: datetime) -> NormalizedEvent:
        """One Postmark record as a normalized event."""
        record_type = record["RecordType"]
        type_ = RECORD_TYPES.get(record_type, "unknown")
        raw_type = record_type
        bounce_type = None
        if record_type == "Bounce":
            raw_type = f"Bounce:{record.get('Type')}"
            type_, bounce_type = BOUNCE_TYPES.get(str(record.get("Type")), ("unknown", None))
        elif record_type == "SubscriptionChange":
            type_, bounce_type = subscription_change(record)
        time_field = TIME_FIELDS.get(record_type)
        when = record.get(time_field) if time_field else None
        when = when or record.get("ReceivedAt") or record.get("BouncedAt")
        metadata = record.get("Metadata") or {}
        record_id = record.get("ID")
        return NormalizedEvent(
            provider=self.provider,
            provider_event_id=f"{record_type}:{record_id}"
            if record_id is not None and record_type in ("Bounce", "SpamComplaint")
            else content_event_id(self.provider, record),
            type=type_,
            raw_type=raw_type,
            # a record without its time field (a Bounce without BouncedAt): when it arrived
            occurred_at=parse_iso(when, time_field or "the record time")
            if when is not None
            else received_at,
            recipient=text_or_none(record.get(RECIPIENT_FIELDS.get(record_type, "Recipient")))
            or text_or_none(record.get("Email")),
            maildelivery_id=text_or_none(metadata.get(CORRELATION_KEY)),
            provider_message_id=text_or_none(record.get("MessageID") or record.get("MessageId")),
            reason=text_or_none(record.get("Details") or record.get("Description"))
            if record_type != "Open"
            else None,
            bounce_type=bounce_type,
            payload=record,
        )
