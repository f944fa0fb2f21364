"""Mandrill (Mailchimp Transactional) webhooks: a form post whose field ``mandrill_events``
holds a JSON array of events, signed in ``X-Mandrill-Signature``: base64 of an HMAC-SHA1,
keyed with the webhook's key, over the webhook URL as registered at Mandrill followed by
each POST field's name and value, sorted by name.

Config: ``MAILDELIVERY_MANDRILL_WEBHOOK_KEY`` (the webhook's key, shown on Mandrill's
Webhooks page; a list during a change) and ``MAILDELIVERY_MANDRILL_WEBHOOK_URL`` (the URL
exactly as registered at Mandrill; default: the URL the request arrived at, which differs
behind a proxy that rewrites it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from marshmallow import fields

from ..context import config_value
from ..events import CORRELATION_KEY, NormalizedEvent, content_event_id
from ..schemas import Epoch, FlatPayloadSchema
from .base import (
    AuthenticationFailed,
    MalformedPayload,
    SecretKeysAdapter,
    WebhookRequest,
    constant_time_equal,
    obj,
    parse_epoch,
    parse_json,
    text_or_none,
    validate,
)

#: Mandrill ``event`` -> (normalized type, bounce type). Sync events (``whitelist``,
#: ``blacklist``) carry ``type`` instead and say nothing about a message: ``unknown``.
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    # "sent": the recipient's server accepted it (Mandrill's final success state)
    "send": ("delivered", None),
    "deferral": ("deferred", "soft"),
    # Mandrill reports a soft bounce once it stopped retrying
    "soft_bounce": ("bounced", "soft"),
    "hard_bounce": ("bounced", "hard"),
    "reject": ("dropped", None),
    "spam": ("complained", None),
    "unsub": ("unsubscribed", None),
    "open": ("opened", None),
    "click": ("clicked", None),
}
#: The form field that holds the events.
EVENTS_FIELD = "mandrill_events"


class MandrillEventSchema(FlatPayloadSchema):
    """One Mandrill message event (``msg`` holds the message and its recipient)."""

    event = fields.String(required=True)
    ts = Epoch(required=True)
    msg = fields.Dict(required=True)
    message_id = fields.String(data_key="_id")


_schema = MandrillEventSchema()


def form_fields(body: bytes) -> dict[str, str]:
    """The POST fields of a form-encoded body.

    :raises MalformedPayload: the body is not form-encoded UTF-8.
    """
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"the body is not a form post: {exc}") from None


def signed_text(url: str, fields: dict[str, str]) -> bytes:
    """What Mandrill signs: the URL, then each field's name and value sorted by name."""
    return (url + "".join(key + fields[key] for key in sorted(fields))).encode(
        "utf-8", "surrogatepass"
    )


class MandrillAdapter(SecretKeysAdapter):
    """Mandrill signed webhooks."""

    provider = "mandrill"
    config_keys = {  # noqa: RUF012
        "MAILDELIVERY_MANDRILL_WEBHOOK_KEY": None,
        "MAILDELIVERY_MANDRILL_WEBHOOK_URL": None,
    }
    schema = _schema
    key_setting = "MANDRILL_WEBHOOK_KEY"
    event_types = EVENT_TYPES
    # a failed batch is retried with growing delays; Mandrill gives up after about an hour
    retry_horizon = 3600
    retry_status = 503
    retried_answers = "any answer but 2xx, with growing delays for about an hour"
    stored_headers = ("content-type", "user-agent", "x-mandrill-signature")
    setup_hint = (
        "set MAILDELIVERY_MANDRILL_WEBHOOK_KEY to the webhook's key shown on Mandrill's "
        "Settings > Webhooks page (and MAILDELIVERY_MANDRILL_WEBHOOK_URL to the URL registered "
        "there when a proxy changes it)"
    )

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.url: str | None = config_value("MANDRILL_WEBHOOK_URL", app)

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        # Mandrill's SMTP relay turns X-MC-Metadata into the message's metadata
        return "X-MC-Metadata", json.dumps({CORRELATION_KEY: public_id})

    def verify(self, request: WebhookRequest) -> None:
        given = request.header("X-Mandrill-Signature")
        if not given:
            raise AuthenticationFailed("the request has no X-Mandrill-Signature header")
        try:
            fields = form_fields(request.body)
        except MalformedPayload:
            raise AuthenticationFailed(
                "the signature does not match: the body is no form"
            ) from None
        signed = signed_text(self.url or request.url, fields)
        expected = [
            base64.b64encode(hmac.new(key, signed, hashlib.sha1).digest()).decode()
            for key in self.keys
        ]
        if not any(constant_time_equal(e, given.strip()) for e in expected):
            raise AuthenticationFailed(
                f"the X-Mandrill-Signature does not match (signed for {self.url or request.url}; "
                "set MAILDELIVERY_MANDRILL_WEBHOOK_URL to the URL registered at Mandrill)"
            )

    def batch_items(self, request: WebhookRequest) -> list[bytes]:
        try:
            events = parse_json(form_fields(request.body).get(EVENTS_FIELD, ""), EVENTS_FIELD)
        except MalformedPayload:
            return []
        if not isinstance(events, list):
            return []
        return [urlencode({EVENTS_FIELD: json.dumps([item])}).encode() for item in events]

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        fields = form_fields(request.body)
        if EVENTS_FIELD not in fields:
            raise MalformedPayload(f"the form has no {EVENTS_FIELD} field")
        events = parse_json(fields[EVENTS_FIELD], EVENTS_FIELD)
        if not isinstance(events, list):
            raise MalformedPayload(f"{EVENTS_FIELD} must be a JSON array")
        # sync events (whitelist/blacklist changes) name no message: kept as unknown
        messages = [e for e in events if not (isinstance(e, dict) and "type" in e)]
        validate(_schema, messages, "the Mandrill events", many=True)
        return [self.normalize(item, request.received_at) for item in events]

    def normalize(self, item: dict[str, Any], received_at: datetime) -> NormalizedEvent:
        """One Mandrill event as a normalized event."""
        raw_type = str(item.get("event") or item.get("type"))
        type_, bounce_type = EVENT_TYPES.get(raw_type, ("unknown", None))
        msg = obj(item.get("msg"))
        sync = obj(item.get("reject") or item.get("entry"))
        when = item.get("ts")
        return NormalizedEvent(
            provider=self.provider,
            # Mandrill sends no event id: the content identifies a retried event
            provider_event_id=content_event_id(self.provider, item),
            type=type_,
            raw_type=raw_type,
            occurred_at=parse_epoch(when, "ts") if when is not None else received_at,
            recipient=text_or_none(msg.get("email") or sync.get("email")),
            maildelivery_id=text_or_none(obj(msg.get("metadata")).get(CORRELATION_KEY)),
            provider_message_id=text_or_none(item.get("_id") or msg.get("_id")),
            reason=text_or_none(
                msg.get("diag") or msg.get("bounce_description") or sync.get("reason")
            ),
            smtp_code=None,
            bounce_type=bounce_type,
            payload=item,
        )
