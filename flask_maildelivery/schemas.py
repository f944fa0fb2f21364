"""marshmallow schemas: the JSON the package speaks.

Sections: the delivery log API's output; webhook payload validation (further below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validates_schema

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
    #: No final word from a tracked provider after ``MAILDELIVERY_OUTCOME_TIMEOUT``.
    overdue = fields.Boolean()
    #: When it was reviewed, or ``null``.
    reviewed_at = fields.AwareDateTime(allow_none=True)
    #: The copy that resolved it, or ``null``.
    resolved_by_id = fields.Integer(allow_none=True)
    #: How many copies were sent of it.
    copy_count = fields.Integer()
    url = fields.String()


class LogEmailPageSchema(Schema):
    """A page of the log list and the cursors of its neighbours (``null`` at either end)."""

    items = fields.List(fields.Nested(LogEmailSummarySchema))
    next_cursor = fields.String(allow_none=True)
    previous_cursor = fields.String(allow_none=True)


class LogCopySchema(Schema):
    """A copy sent of an email (a resend): its id, when it was sent, its result."""

    id = fields.Integer()
    sent_at = fields.AwareDateTime(allow_none=True)
    result = fields.String()
    url = fields.String()


class LogQueueSchema(Schema):
    """Where a send not handed over yet stands: ``waiting`` (queued, scheduled, or waiting
    for a retry, due at ``due_at``) or ``sending``."""

    state = fields.String()
    due_at = fields.AwareDateTime()
    attempts = fields.Integer()
    claimed_at = fields.AwareDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)


class LogEmailSchema(Schema):
    """One email with its facts, its bodies, its recipients and their events, its copies and
    its review."""

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
    #: The copies sent of it, oldest first.
    resent_as = fields.List(fields.Nested(LogCopySchema))
    reviewed_at = fields.AwareDateTime(allow_none=True)
    reviewed_by = fields.String(allow_none=True)
    #: The copy whose delivery resolved it, or ``null``.
    resolved_by_id = fields.Integer(allow_none=True)
    #: When the send is scheduled, or ``null``.
    send_at = fields.AwareDateTime(allow_none=True)
    #: The send not handed over yet (queued, scheduled, waiting for a retry), or ``null``.
    queue = fields.Nested(LogQueueSchema, allow_none=True)
    recipients = fields.List(fields.Nested(LogRecipientSchema))
    #: Events of the email that name none of its recipients.
    other_events = fields.List(fields.Nested(LogEventSchema))


def dump_log_email(email: Any, **extra: Any) -> dict[str, Any]:
    """``email`` through :class:`LogEmailSchema`; ``extra`` supplies the fields that are not
    attributes of the model (``recipients`` with their URLs and events, ``related_url``,
    ``other_events``, ``resent_as``)."""
    data: dict[str, Any] = LogEmailSchema(exclude=tuple(extra)).dump(email)
    schema = LogEmailSchema(only=tuple(extra))
    data.update(schema.dump(extra))
    return data


# ---------------------------------------------------------------------------------------
# Webhook payload validation: one schema per provider payload shape, used by the adapters in
# flask_maildelivery.webhooks to refuse a malformed body with a 400 that names the wrong
# fields. They check only what the adapters rely on and let every other field through:
# providers add fields over time, and the raw event is stored as it came.
# ---------------------------------------------------------------------------------------


class _Epoch(fields.Field[Any]):
    """Epoch seconds (or milliseconds) as a number or a numeric string; left as sent."""

    default_error_messages = {"invalid": "Not an epoch timestamp."}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        try:
            float(value)
        except (TypeError, ValueError, OverflowError):
            # OverflowError: an integer too large for a float is no timestamp either
            raise self.make_error("invalid") from None
        return value


class _PayloadSchema(Schema):
    """Base: unknown fields are allowed (adapters call ``validate()`` and keep the raw
    payload as sent)."""

    class Meta:
        unknown = INCLUDE


class FlatPayloadSchema(_PayloadSchema):
    """A payload schema made of field checks only: no nested schema and no schema-level
    validator. :func:`quick_validator` relies on that (a schema that needs a
    schema-level rule derives from :class:`_PayloadSchema` instead)."""


def _one_of_required(*keys: str) -> Callable[..., None]:
    """A schema-level validator: at least one of ``keys`` has a value; the error is reported
    as a missing ``keys[0]``."""

    @validates_schema
    def check(self: Schema, data: dict[str, Any], **kwargs: Any) -> None:
        if not any(data.get(key) for key in keys):
            raise ValidationError("Missing data for required field.", keys[0])

    return check


class SendGridEventSchema(FlatPayloadSchema):
    """One element of SendGrid's event array."""

    event = fields.String(required=True)
    email = fields.String(required=True)
    timestamp = _Epoch(required=True)
    sg_event_id = fields.String()
    sg_message_id = fields.String()


class MailgunSignatureSchema(FlatPayloadSchema):
    """Mailgun's ``signature`` object."""

    timestamp = _Epoch(required=True)
    token = fields.String(required=True)
    signature = fields.String(required=True)


class MailgunEventDataSchema(FlatPayloadSchema):
    """Mailgun's ``event-data`` object."""

    event = fields.String(required=True)
    timestamp = _Epoch(required=True)
    recipient = fields.String()
    id = fields.String()
    message = fields.Dict()
    user_variables = fields.Dict(data_key="user-variables")
    delivery_status = fields.Dict(data_key="delivery-status")


class MailgunPayloadSchema(_PayloadSchema):
    """A Mailgun webhook body."""

    signature = fields.Nested(MailgunSignatureSchema, required=True)
    event_data = fields.Nested(MailgunEventDataSchema, required=True, data_key="event-data")


class PostmarkRecordSchema(_PayloadSchema):
    """A Postmark webhook record."""

    RecordType = fields.String(required=True)
    MessageID = fields.String()
    Metadata = fields.Dict()

    _has_message_id = _one_of_required("MessageID", "MessageId")


class SNSEnvelopeSchema(_PayloadSchema):
    """An Amazon SNS HTTP message (notification or subscription confirmation)."""

    Type = fields.String(required=True)
    MessageId = fields.String(required=True)
    TopicArn = fields.String(required=True)
    Message = fields.String(required=True)
    Timestamp = fields.String(required=True)
    SignatureVersion = fields.String(required=True)
    Signature = fields.String(required=True)
    SigningCertURL = fields.String(required=True)
    SubscribeURL = fields.String()
    Token = fields.String()
    Subject = fields.String(allow_none=True)


class SESMailSchema(_PayloadSchema):
    """The ``mail`` object of an SES event."""

    messageId = fields.String(required=True)
    destination = fields.List(fields.String())
    tags = fields.Dict()


class SESEventSchema(_PayloadSchema):
    """An SES event (event publishing, ``eventType``) or notification (``notificationType``)."""

    eventType = fields.String()
    notificationType = fields.String()
    mail = fields.Nested(SESMailSchema, required=True)

    _has_type = _one_of_required("eventType", "notificationType")


class SparkPostEventSchema(FlatPayloadSchema):
    """The inner event of a SparkPost ``{"msys": {"<class>_event": {...}}}`` element."""

    type = fields.String(required=True)
    timestamp = _Epoch(required=True)
    event_id = fields.String()
    transmission_id = fields.String()
    rcpt_to = fields.String()
    rcpt_meta = fields.Dict()


class MailjetEventSchema(FlatPayloadSchema):
    """A Mailjet event."""

    event = fields.String(required=True)
    time = _Epoch(required=True)
    email = fields.String(required=True)
    MessageID = fields.Raw()


class BrevoEventSchema(FlatPayloadSchema):
    """A Brevo transactional event."""

    event = fields.String(required=True)
    email = fields.String(required=True)
    ts_epoch = _Epoch(required=True)
    message_id = fields.String(data_key="message-id")


class ResendDataSchema(FlatPayloadSchema):
    """The ``data`` object of a Resend event."""

    email_id = fields.String()
    to = fields.List(fields.String())
    tags = fields.Raw()


class ResendEventSchema(_PayloadSchema):
    """A Resend (Svix) event."""

    type = fields.String(required=True)
    created_at = fields.String(required=True)
    data = fields.Nested(ResendDataSchema, required=True)


def _accepts(field: fields.Field[Any]) -> Callable[[Any], bool] | None:
    """A cheap test that says a value certainly passes ``field`` (``None``: no cheap test
    for this field type)."""
    if isinstance(field, fields.String):
        return lambda v: isinstance(v, str)
    if isinstance(field, _Epoch):
        return lambda v: (
            (isinstance(v, int | float) and not isinstance(v, bool))
            or (isinstance(v, str) and v.isascii() and v.replace(".", "", 1).isdigit())
        )
    if isinstance(field, fields.Dict):
        return lambda v: isinstance(v, dict)
    if isinstance(field, fields.Raw) and type(field) is fields.Raw:
        return lambda v: v is not None
    return None


def quick_validator(schema: Schema) -> Callable[[Any], bool] | None:
    """For a :class:`FlatPayloadSchema`, a fast check of one
    item that returns ``True`` only when ``schema.validate`` would report no error.

    Providers post thousands of events per request; this keeps validation off the hot path
    for well-formed items, while ``schema.validate`` still decides (and words the errors)
    whenever the quick check is not sure. ``None``: the schema is not flat.
    """
    if not isinstance(schema, FlatPayloadSchema):
        return None
    checks: list[tuple[str, bool, Callable[[Any], bool]]] = []
    for name, field in schema.load_fields.items():
        accept = _accepts(field)
        if accept is None or field.validators:
            return None
        checks.append((field.data_key or name, field.required, accept))

    def check(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        for key, required, accept in checks:
            value = item.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    return False
            elif not accept(value):
                return False
        return True

    return check


_MISSING = object()
