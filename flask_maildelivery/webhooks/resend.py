"""Resend webhooks, delivered by Svix: one JSON event per request, signed with HMAC-SHA256
over ``svix-id.svix-timestamp.body`` keyed with the ``whsec_`` signing secret.

Config: ``MAILDELIVERY_RESEND_WEBHOOK_SECRET`` (the webhook's signing secret, ``whsec_...``;
a list during a secret change), ``MAILDELIVERY_RESEND_WEBHOOK_TOLERANCE``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from marshmallow import fields

from ..events import CORRELATION_KEY, NormalizedEvent
from ..schemas import FlatPayloadSchema, PayloadSchema
from .base import (
    AuthenticationFailed,
    SigningKeyAdapter,
    WebhookRequest,
    addresses_of,
    constant_time_equal,
    obj,
    parse_epoch,
    parse_iso,
    signing_key_keys,
    text_or_none,
    validate,
)

#: Resend ``type`` -> normalized type (``email.bounced`` is refined by ``bounce.type``).
EVENT_TYPES: dict[str, str] = {
    "email.sent": "processed",
    "email.scheduled": "processed",
    "email.delivered": "delivered",
    "email.delivery_delayed": "deferred",
    "email.bounced": "bounced",
    "email.failed": "dropped",
    "email.suppressed": "dropped",
    "email.complained": "complained",
    "email.opened": "opened",
    "email.clicked": "clicked",
}

#: Resend types about what one unknown reader of the message did (the tracking pixel and
#: links are the same in every copy): one event with no recipient, stored with the email and
#: shown in its log, applied to no recipient.
PER_MESSAGE_TYPES = frozenset({"email.opened", "email.clicked"})


class ResendDataSchema(FlatPayloadSchema):
    """The ``data`` object of a Resend event."""

    email_id = fields.String()
    to = fields.List(fields.String())
    tags = fields.Raw()


class ResendEventSchema(PayloadSchema):
    """A Resend (Svix) event."""

    type = fields.String(required=True)
    created_at = fields.String(required=True)
    data = fields.Nested(ResendDataSchema, required=True)


_schema = ResendEventSchema()


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    try:
        return base64.b64decode(secret.strip().removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError(
            "MAILDELIVERY_RESEND_WEBHOOK_SECRET is not a Svix signing secret; copy the "
            "whsec_... secret of the webhook from Resend's Webhooks page"
        ) from None


def correlation_tag(tags: Any) -> str | None:
    """The ``maildelivery_id`` tag: tags come as a name -> value map, or as a list of
    ``{"name", "value"}``."""
    if isinstance(tags, Mapping):
        return text_or_none(tags.get(CORRELATION_KEY))
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, Mapping) and tag.get("name") == CORRELATION_KEY:
                return text_or_none(tag.get("value"))
    return None


class ResendAdapter(SigningKeyAdapter[bytes]):
    """Resend (Svix) signed webhooks."""

    provider = "resend"
    # retries over about 28 hours (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); Svix signs
    # each attempt afresh (its libraries allow 5 minutes), but the window follows the retry
    # horizon: a replay inside it changes nothing (svix-id is the event id)
    retry_horizon = 28 * 3600
    config_keys = signing_key_keys("resend", "RESEND_WEBHOOK_SECRET")
    schema = _schema
    event_types = EVENT_TYPES
    # its svix-* headers are kept, since svix-id is the event id
    retry_status = 503
    retried_answers = (
        "any answer but 2xx, over about 28 hours (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)"
    )
    stored_headers = ("content-type", "user-agent", "svix-id", "svix-timestamp", "svix-signature")
    setup_hint = (
        "set MAILDELIVERY_RESEND_WEBHOOK_SECRET to the webhook's signing secret (whsec_...) "
        "shown on Resend's Webhooks page"
    )

    key_setting = "RESEND_WEBHOOK_SECRET"

    def load_key(self, value: str) -> bytes:
        return decode_secret(value)

    def verify(self, request: WebhookRequest) -> None:
        msg_id = request.header("svix-id")
        timestamp = request.header("svix-timestamp")
        signatures = request.header("svix-signature")
        if not msg_id or not timestamp or not signatures:
            raise AuthenticationFailed(
                "the request has no svix-id / svix-timestamp / svix-signature header"
            )
        signed = f"{msg_id}.{timestamp}.".encode() + request.body
        expected = [
            base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            for key in self.keys
        ]
        # several "v1,<sig>" entries (secret rotation on the sender's side): any may match
        given = [
            part.split(",", 1)[1]
            for part in signatures.split()
            if part.startswith("v1,") and "," in part
        ]
        if not any(constant_time_equal(e, g) for e in expected for g in given):
            raise AuthenticationFailed("no v1 signature matches the body")
        self.timestamps.check(parse_epoch(timestamp, "svix-timestamp"), request.received_at)

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        data = request.json()
        validate(_schema, data, "the Resend event")
        raw_type = data["type"]
        type_ = EVENT_TYPES.get(raw_type, "unknown")
        item = data["data"]
        bounce = obj(item.get("bounce"))
        bounce_type = None
        if raw_type == "email.bounced":
            kind = bounce.get("type")
            if kind == "Transient":
                # as SES (which Resend sends through): reported once retries stopped
                bounce_type = "soft"
            elif bounce.get("subType") in ("Suppressed", "OnAccountSuppressionList"):
                type_ = "dropped"
            else:
                bounce_type = "hard" if kind == "Permanent" else "undetermined"
        svix_id = request.header("svix-id") or ""
        recipients: list[str | None] = [None]
        if raw_type not in PER_MESSAGE_TYPES:
            # "to" may hold "Name <addr>" strings
            recipients = [*addresses_of(item.get("to"))] or [None]
        occurred = parse_iso(data["created_at"], "created_at")
        reason = text_or_none(bounce.get("message")) or text_or_none(
            obj(item.get("failed")).get("reason")
        )
        # the other types do not say which address of "to" they concern either: they are
        # applied to each
        return [
            NormalizedEvent(
                provider=self.provider,
                provider_event_id=svix_id if len(recipients) == 1 else f"{svix_id}:{address}",
                type=type_,
                raw_type=raw_type,
                occurred_at=occurred,
                recipient=address,
                maildelivery_id=correlation_tag(item.get("tags")),
                provider_message_id=text_or_none(item.get("email_id")),
                reason=reason,
                bounce_type=bounce_type,
                payload=data,
            )
            for address in recipients
        ]
