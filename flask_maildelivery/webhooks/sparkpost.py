"""SparkPost webhooks: a JSON array of ``{"msys": {"<class>_event": {...}}}`` elements
(``{"msys": {}}`` is a ping). SparkPost signs nothing: the webhook uses basic auth.

Config: ``MAILDELIVERY_SPARKPOST_WEBHOOK_USERNAME`` / ``_PASSWORD`` (or the list
``MAILDELIVERY_SPARKPOST_WEBHOOK_CREDENTIALS``), ``MAILDELIVERY_SPARKPOST_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import FlatPayloadSchema
from .base import (
    BasicAuthAdapter,
    MalformedPayload,
    WebhookRequest,
    basic_auth_keys,
    parse_time,
    text_or_none,
    validate,
)

#: SparkPost event ``type`` -> normalized type (bounces are refined by ``bounce_class``).
EVENT_TYPES: dict[str, str] = {
    "injection": "processed",
    "delivery": "delivered",
    "delay": "deferred",
    "bounce": "bounced",
    "out_of_band": "bounced",
    "policy_rejection": "dropped",
    "generation_failure": "dropped",
    "generation_rejection": "dropped",
    "spam_complaint": "complained",
    "open": "opened",
    "initial_open": "opened",
    "amp_open": "opened",
    "amp_initial_open": "opened",
    "click": "clicked",
    "amp_click": "clicked",
    "list_unsubscribe": "unsubscribed",
    "link_unsubscribe": "unsubscribed",
}

#: Soft bounce classes (the recipient may still get it) and block classes.
SOFT_BOUNCE_CLASSES = frozenset({"20", "21", "22", "23", "24", "70"})
BLOCK_BOUNCE_CLASSES = frozenset({"50", "51", "52", "53", "54"})
#: Classes that are not delivery failures at all (auto-replies, subscribe, challenge).
NOT_A_BOUNCE_CLASSES = frozenset({"60", "80", "100"})


class SparkPostEventSchema(FlatPayloadSchema):
    """The inner event of a SparkPost ``{"msys": {"<class>_event": {...}}}`` element."""

    type = fields.String(required=True)
    # epoch seconds, or an ISO 8601 string (parse_time reads both)
    timestamp = fields.Raw(required=True)
    event_id = fields.String()
    transmission_id = fields.String()
    rcpt_to = fields.String()
    rcpt_meta = fields.Dict()


_schema = SparkPostEventSchema()


class SparkPostAdapter(BasicAuthAdapter):
    """SparkPost webhooks (basic auth)."""

    provider = "sparkpost"
    config_keys = basic_auth_keys("sparkpost")
    schema = _schema
    event_types = EVENT_TYPES
    retry_horizon = 8 * 3600
    retried_answers = "any answer but 200, for 8 hours"
    # SparkPost retries for 8 hours
    # SparkPost retries any non-200 answer for 8 hours
    retry_status = 503
    stored_headers = ("content-type", "user-agent", "x-messagesystems-batch-id")
    setup_hint = (
        "set MAILDELIVERY_SPARKPOST_WEBHOOK_USERNAME and MAILDELIVERY_SPARKPOST_WEBHOOK_PASSWORD "
        "and choose Basic Authentication with them on the SparkPost webhook"
    )

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        if not isinstance(data, list):
            raise MalformedPayload("the SparkPost batch must be a JSON array")
        inner: list[dict[str, Any]] = []
        for index, element in enumerate(data):
            msys = element.get("msys") if isinstance(element, dict) else None
            if not isinstance(msys, dict):
                raise MalformedPayload(f"element {index} has no msys object")
            for value in msys.values():  # {} is a ping
                if not isinstance(value, dict):
                    raise MalformedPayload(f"element {index}: msys holds no event object")
                inner.append(value)
        validate(_schema, inner, "the SparkPost events", many=True)
        return [self.normalize(item) for item in inner]

    def normalize(self, item: dict[str, Any]) -> NormalizedEvent:
        """One SparkPost event as a normalized event."""
        raw_type = item["type"]
        type_ = EVENT_TYPES.get(raw_type, "unknown")
        bounce_type = None
        if type_ == "bounced":
            bounce_class = str(item.get("bounce_class") or "")
            if bounce_class in SOFT_BOUNCE_CLASSES:
                # SparkPost reports a bounce once it stopped trying: a final soft bounce
                bounce_type = "soft"
            elif bounce_class in BLOCK_BOUNCE_CLASSES:
                bounce_type = "block"
            elif bounce_class in NOT_A_BOUNCE_CLASSES:
                type_ = "unknown"
            else:
                bounce_type = "hard"
        meta = item.get("rcpt_meta") or {}
        return NormalizedEvent(
            provider=self.provider,
            provider_event_id=text_or_none(item.get("event_id"))
            or content_event_id(self.provider, item),
            type=type_,
            raw_type=raw_type,
            # epoch seconds as documented, or ISO 8601 as some events carry it
            occurred_at=parse_time(item["timestamp"], "timestamp"),
            recipient=text_or_none(item.get("rcpt_to") or item.get("raw_rcpt_to")),
            maildelivery_id=text_or_none(meta.get(CORRELATION_KEY)),
            provider_message_id=text_or_none(item.get("transmission_id")),
            reason=text_or_none(item.get("raw_reason") or item.get("reason")),
            smtp_code=text_or_none(item.get("error_code")),
            bounce_type=bounce_type,
            payload=item,
        )
