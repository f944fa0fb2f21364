"""marshmallow schemas: the JSON the package speaks.

Sections: the delivery log API's output (below); webhook payload schemas sit in their own
section.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

# ---------------------------------------------------------------------------------------
# Delivery log API (``{URL_PREFIX}/api/``): output schemas
# ---------------------------------------------------------------------------------------


class LogEventSchema(Schema):
    """One delivery event of a recipient, as the log API shows it."""

    id = fields.Integer()
    provider = fields.String()
    type = fields.String()
    raw_type = fields.String()
    occurred_at = fields.AwareDateTime()
    received_at = fields.AwareDateTime()
    reason = fields.String(allow_none=True)
    smtp_code = fields.String(allow_none=True)
    bounce_type = fields.String(allow_none=True)


class LogRecipientSchema(Schema):
    """One recipient of an email with its status and its event timeline."""

    id = fields.Integer()
    address = fields.String()
    name = fields.String(allow_none=True)
    kind = fields.String()
    status = fields.String()
    reason = fields.String(allow_none=True)
    smtp_code = fields.String(allow_none=True)
    bounce_type = fields.String(allow_none=True)
    contact_type = fields.String(allow_none=True)
    contact_id = fields.String(allow_none=True)
    contact_url = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime()
    events = fields.List(fields.Nested(LogEventSchema))


class LogAttachmentSchema(Schema):
    """An attachment's name, type and size (its content is not stored)."""

    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()


class LogEmailSummarySchema(Schema):
    """One row of the log list."""

    id = fields.Integer()
    public_id = fields.String()
    sent_at = fields.AwareDateTime(allow_none=True)
    status = fields.String()
    result = fields.String()
    subject = fields.String()
    sender = fields.String()
    #: The first addresses, in order.
    to = fields.List(fields.String())
    recipient_count = fields.Integer()
    url = fields.String()


class LogEmailPageSchema(Schema):
    """A page of the log list and the cursors of its neighbours (``null`` at either end)."""

    items = fields.List(fields.Nested(LogEmailSummarySchema))
    next_cursor = fields.String(allow_none=True)
    previous_cursor = fields.String(allow_none=True)


class LogEmailSchema(Schema):
    """One email with its facts, its bodies, its recipients and their events."""

    id = fields.Integer()
    public_id = fields.String()
    tenant_id = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    sent_by = fields.String(allow_none=True)
    sender = fields.String()
    reply_to = fields.String(allow_none=True)
    subject = fields.String()
    text_body = fields.String(allow_none=True)
    html_body = fields.String(allow_none=True)
    attachments = fields.List(fields.Nested(LogAttachmentSchema))
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    metadata = fields.Dict(attribute="metadata_")
    related_type = fields.String(allow_none=True)
    related_id = fields.String(allow_none=True)
    related_url = fields.String(allow_none=True)
    transport = fields.String(allow_none=True)
    provider_message_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    status = fields.String()
    result = fields.String()
    resent_from_id = fields.Integer(allow_none=True)
    recipients = fields.List(fields.Nested(LogRecipientSchema))
    #: Events of the email that name none of its recipients.
    other_events = fields.List(fields.Nested(LogEventSchema))


def dump_log_email(email: Any, **extra: Any) -> dict[str, Any]:
    """``email`` through :class:`LogEmailSchema`; ``extra`` supplies the fields that are not
    attributes of the model (``recipients`` with their URLs and events, ``related_url``,
    ``other_events``)."""
    data: dict[str, Any] = LogEmailSchema(exclude=tuple(extra)).dump(email)
    schema = LogEmailSchema(only=tuple(extra))
    data.update(schema.dump(extra))
    return data
