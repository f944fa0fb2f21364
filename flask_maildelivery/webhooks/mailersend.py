"""MailerSend activity webhooks: one JSON activity per request, signed with a hex
HMAC-SHA256 of the raw body (keyed with the webhook's signing secret) in the ``Signature``
header. Both payload versions are read: the first (``data.email.recipient.email``,
``data.email.message.id``, details in ``data.morph``) and the current one
(``data.recipient``, ``data.message_id``, details in ``data.meta``).

MailerSend echoes no custom data but tags: the correlation id goes in a tag
``maildelivery_id:<id>`` (``X-MailerSend-Tags`` over SMTP); events also match by message id.

Config: ``MAILDELIVERY_MAILERSEND_WEBHOOK_SECRET`` (the webhook's signing secret; a list
during a change).
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import PayloadSchema
from .base import (
    BodySignatureAdapter,
    WebhookRequest,
    obj,
    parse_iso,
    text_or_none,
    validate,
)

#: MailerSend activity type (``data.type``) -> (normalized type, bounce type).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "sent": ("processed", None),
    "delivered": ("delivered", None),
    "deferred": ("deferred", "soft"),
    # MailerSend reports a soft bounce once it stopped retrying
    "soft_bounced": ("bounced", "soft"),
    "hard_bounced": ("bounced", "hard"),
    "opened": ("opened", None),
    "opened_unique": ("opened", None),
    "clicked": ("clicked", None),
    "clicked_unique": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    "spam_complaint": ("complained", None),
    "spam_complaints": ("complained", None),
    "suppressed": ("dropped", None),
}
#: The tag prefix that carries the correlation id.
TAG_PREFIX = f"{CORRELATION_KEY}:"


class MailerSendEventSchema(PayloadSchema):
    """A MailerSend webhook body."""

    type = fields.String(required=True)
    created_at = fields.String()
    data = fields.Dict(required=True)


_schema = MailerSendEventSchema()


def correlation_tag(tags: Any) -> str | None:
    """The correlation id of a ``maildelivery_id:<id>`` tag."""
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, str) and tag.startswith(TAG_PREFIX):
            return text_or_none(tag.removeprefix(TAG_PREFIX))
    return None


class MailerSendAdapter(BodySignatureAdapter):
    """MailerSend signed activity webhooks."""

    provider = "mailersend"
    config_keys = {"MAILDELIVERY_MAILERSEND_WEBHOOK_SECRET": None}  # noqa: RUF012
    schema = _schema
    event_types = EVENT_TYPES
    # MailerSend retries 3 times, after 10 s, 100 s and 1,000 s
    retry_horizon = 1110
    retry_status = 503
    retried_answers = "any answer but 2xx, 3 times (after 10 s, 100 s and 1,000 s)"
    signature_header = "Signature"
    key_setting = "MAILERSEND_WEBHOOK_SECRET"
    stored_headers = ("content-type", "user-agent", "signature")
    setup_hint = (
        "set MAILDELIVERY_MAILERSEND_WEBHOOK_SECRET to the signing secret shown on the "
        "webhook's page in MailerSend (Domains > Webhooks)"
    )

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        return "X-MailerSend-Tags", TAG_PREFIX + public_id

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        validate(_schema, data, "the MailerSend webhook body")
        if data["type"] == "webhook.test":
            return []  # the ping MailerSend sends when a webhook is saved
        item = data["data"]
        email = obj(item.get("email"))
        if email:
            # the first payload version
            recipient = obj(email.get("recipient")).get("email")
            message_id = obj(email.get("message")).get("id")
            tags = email.get("tags")
            details = obj(item.get("morph"))
            reason = details.get("readable_reason") or details.get("reason")
            smtp_code = None
        else:
            recipient = item.get("recipient")
            message_id = item.get("message_id")
            tags = item.get("tags")
            details = obj(item.get("meta"))
            reason = next(
                (
                    details[key]
                    for key in (
                        "bounce_reason",
                        "reject_reason",
                        "suppression_reason",
                        "unsubscribe_reason",
                    )
                    if details.get(key)
                ),
                None,
            )
            smtp_code = details.get("bounce_code")
        raw_type = str(item.get("type") or data["type"].removeprefix("activity."))
        type_, bounce_type = EVENT_TYPES.get(raw_type, ("unknown", None))
        when = item.get("created_at") or data.get("created_at")
        return [
            NormalizedEvent(
                provider=self.provider,
                provider_event_id=text_or_none(item.get("id"))
                or content_event_id(self.provider, data),
                type=type_,
                raw_type=raw_type,
                occurred_at=parse_iso(when, "created_at") if when else request.received_at,
                recipient=text_or_none(recipient),
                maildelivery_id=correlation_tag(tags),
                provider_message_id=text_or_none(message_id),
                reason=text_or_none(reason),
                smtp_code=text_or_none(smtp_code),
                bounce_type=bounce_type,
                payload=data,
            )
        ]
