"""Unisender Go webhooks: ``{"auth", "events_by_user": [{"events": [...]}]}``. Unisender Go
authenticates a request by its ``auth`` field: the MD5 (hex) of the body as sent, in which
the value of ``auth`` is the account's (or project's) API key. The check follows that
literally, over the raw bytes, so it does not depend on how the JSON is spaced or escaped.

Config: ``MAILDELIVERY_UNISENDER_GO_API_KEY`` (the API key of the account or project the
webhook belongs to; a list during a change).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import FlatPayloadSchema
from .base import (
    AuthenticationFailed,
    MalformedPayload,
    SecretKeysAdapter,
    WebhookRequest,
    constant_time_equal,
    json_or_none,
    obj,
    parse_iso,
    text_or_none,
    validate,
)

#: ``event_data.status`` of a ``transactional_email_status`` event -> (normalized type,
#: bounce type). A ``soft_bounced`` with ``delivery_status: err_will_retry`` is a delay.
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "sent": ("processed", None),
    "delivered": ("delivered", None),
    "opened": ("opened", None),
    "clicked": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    "soft_bounced": ("bounced", "soft"),
    "hard_bounced": ("bounced", "hard"),
    "spam": ("complained", None),
}
#: The ``auth`` field in the raw body (its value is replaced by the key to check it).
AUTH_FIELD = re.compile(rb'"auth"\s*:\s*"([^"\\]*)"')


class UnisenderGoEventSchema(FlatPayloadSchema):
    """One element of ``events``."""

    event_name = fields.String(required=True)
    event_data = fields.Dict(required=True)


_schema = UnisenderGoEventSchema()


class UnisenderGoAdapter(SecretKeysAdapter):
    """Unisender Go webhooks (MD5 ``auth`` over the body with the API key)."""

    provider = "unisender_go"
    config_keys = {"MAILDELIVERY_UNISENDER_GO_API_KEY": None}  # noqa: RUF012
    schema = _schema
    key_setting = "UNISENDER_GO_API_KEY"
    event_types = EVENT_TYPES
    # Unisender Go's documentation gives no retry horizon; nothing is time-signed, so it
    # bounds no check: a day is what the docs pages assume
    retry_horizon = 24 * 3600
    retry_status = 503
    retried_answers = "any answer but 200 (its documentation gives no schedule)"
    setup_hint = (
        "set MAILDELIVERY_UNISENDER_GO_API_KEY to the API key of the Unisender Go account or "
        "project whose webhook posts here"
    )

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        # the SMTP relay reads the web API's message options from this header
        return "X-UNISENDER-GO", json.dumps({"global_metadata": {CORRELATION_KEY: public_id}})

    def verify(self, request: WebhookRequest) -> None:
        found = AUTH_FIELD.search(request.body)
        if found is None or not found.group(1):
            raise AuthenticationFailed('the body has no "auth" field')
        given = found.group(1).decode("ascii", "replace").lower()
        start, end = found.span(1)
        if not any(
            constant_time_equal(
                hashlib.md5(
                    request.body[:start] + key + request.body[end:], usedforsecurity=False
                ).hexdigest(),
                given,
            )
            for key in self.keys
        ):
            raise AuthenticationFailed('the "auth" field does not match the body and API key')

    def batch_items(self, request: WebhookRequest) -> list[bytes]:
        data = json_or_none(request)
        groups = data.get("events_by_user") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            return []
        return [
            json.dumps({"events_by_user": [{**group, "events": [event]}]}).encode()
            for group in groups
            if isinstance(group, dict) and isinstance(group.get("events"), list)
            for event in group["events"]
        ]

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        groups = data.get("events_by_user") if isinstance(data, dict) else None
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("events"), list) for g in groups
        ):
            raise MalformedPayload(
                'the Unisender Go body must hold "events_by_user", a list of {"events": [...]}'
            )
        events = [event for group in groups for event in group["events"]]
        validate(_schema, events, "the Unisender Go events", many=True)
        return [self.normalize(event, request.received_at) for event in events]

    def normalize(self, event: dict[str, Any], received_at: datetime) -> NormalizedEvent:
        """One Unisender Go event as a normalized event."""
        data = event["event_data"]
        info = obj(data.get("delivery_info"))
        if event["event_name"] == "transactional_email_status":
            raw_type = str(data.get("status"))
            type_, bounce_type = EVENT_TYPES.get(raw_type, ("unknown", None))
            if raw_type == "soft_bounced" and info.get("delivery_status") == "err_will_retry":
                type_ = "deferred"
            when = data.get("event_time")
        else:
            # e.g. transactional_spam_block: about a sending domain, no message
            raw_type, type_, bounce_type = event["event_name"], "unknown", None
            when = data.get("block_time")
        metadata = obj(data.get("metadata"))
        return NormalizedEvent(
            provider=self.provider,
            # Unisender Go sends no event id: the content identifies a retried event
            provider_event_id=content_event_id(self.provider, event),
            type=type_,
            raw_type=raw_type,
            # event_time is UTC, "YYYY-MM-DD HH:MM:SS"
            occurred_at=parse_iso(when, "event_time") if when else received_at,
            recipient=text_or_none(data.get("email")),
            maildelivery_id=text_or_none(metadata.get(CORRELATION_KEY)),
            provider_message_id=text_or_none(data.get("job_id")),
            reason=text_or_none(info.get("destination_response") or info.get("delivery_status")),
            bounce_type=bounce_type,
            payload=event,
        )
