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


class AddressHealthSchema(Schema):
    """The health of one address (``GET /api/addresses/<address>``, and each row of
    ``GET /api/addresses``).

    .. versionadded:: 0.2
    """

    address = fields.String()
    state = fields.String()
    hard_bounces = fields.Integer()
    soft_bounces = fields.Integer()
    complaints = fields.Integer()
    last_failure_at = fields.AwareDateTime(allow_none=True)
    last_failure_reason = fields.String(allow_none=True)
    last_failure_email_id = fields.Integer(allow_none=True)
    last_failure_url = fields.String(allow_none=True)
    last_delivered_at = fields.AwareDateTime(allow_none=True)
    suppressed = fields.Boolean()
    suppressed_at = fields.AwareDateTime(allow_none=True)
    suppressed_reason = fields.String(allow_none=True)
    lifted_at = fields.AwareDateTime(allow_none=True)
    lifted_by = fields.String(allow_none=True)
    contact_type = fields.String(allow_none=True)
    contact_id = fields.String(allow_none=True)
    contact_url = fields.String(allow_none=True)


class AddressPageSchema(Schema):
    """A page of ``GET /api/addresses``: worst first, and the cursor of the next page."""

    items = fields.List(fields.Nested(AddressHealthSchema))
    next_cursor = fields.String(allow_none=True)


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


class OverviewDaySchema(Schema):
    """One day of the overview's chart: emails sent that day by series, and their total."""

    day = fields.Date()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    total = fields.Integer()


class OverviewRatesSchema(Schema):
    """Bounce and complaint rates over the last ``days`` days, and their levels."""

    days = fields.Integer()
    sent = fields.Integer()
    bounced = fields.Integer()
    complained = fields.Integer()
    bounce_rate = fields.Float(allow_none=True)
    complaint_rate = fields.Float(allow_none=True)
    bounce_level = fields.String()
    complaint_level = fields.String()


class OverviewDomainSchema(Schema):
    """A recipient domain with failed recipients."""

    domain = fields.String()
    failures = fields.Integer()
    recipients = fields.Integer()
    #: ``failures / recipients``: the domain's failure rate in the window.
    rate = fields.Float(allow_none=True)
    last_reason = fields.String(allow_none=True)
    last_failure_at = fields.AwareDateTime(allow_none=True)
    url = fields.String()


class OverviewProviderSchema(Schema):
    """A provider's last event, median lag over the last day (seconds) and overdue emails."""

    provider = fields.String()
    last_event_at = fields.AwareDateTime(allow_none=True)
    median_lag = fields.Float(allow_none=True)
    lag_emails = fields.Integer()
    overdue = fields.Integer(allow_none=True)


class OverviewCountSchema(Schema):
    """A count of the attention section; ``capped``: there are at least that many."""

    key = fields.String()
    value = fields.Integer()
    capped = fields.Boolean()
    url = fields.String(allow_none=True)


class OverviewThresholdsSchema(Schema):
    """Where a rate turns amber (``warn``) and red (``alarm``), as fractions."""

    warn = fields.Float()
    alarm = fields.Float()


class OverviewSchema(Schema):
    """The overview: the figures of ``{URL_PREFIX}/overview``."""

    generated_at = fields.AwareDateTime()
    timezone = fields.String()
    days = fields.List(fields.Nested(OverviewDaySchema))
    rates = fields.List(fields.Nested(OverviewRatesSchema))
    domains = fields.List(fields.Nested(OverviewDomainSchema))
    providers = fields.List(fields.Nested(OverviewProviderSchema))
    counts = fields.List(fields.Nested(OverviewCountSchema))
    bounce_thresholds = fields.Nested(OverviewThresholdsSchema)
    complaint_thresholds = fields.Nested(OverviewThresholdsSchema)


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
# Webhook payload validation: the field types and base classes of the providers' payload
# schemas. Each provider's schema lives in its module (flask_maildelivery.webhooks.<provider>)
# and refuses a malformed body with a 400 that names the wrong fields. They check only what
# the adapters rely on and let every other field through: providers add fields over time,
# and the raw event is stored as it came.
# ---------------------------------------------------------------------------------------


class Epoch(fields.Field[Any]):
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


class PayloadSchema(Schema):
    """Base: unknown fields are allowed (adapters call ``validate()`` and keep the raw
    payload as sent)."""

    class Meta:
        unknown = INCLUDE


class FlatPayloadSchema(PayloadSchema):
    """A payload schema made of field checks only: no nested schema and no schema-level
    validator. :func:`quick_validator` relies on that (a schema that needs a
    schema-level rule derives from :class:`PayloadSchema` instead)."""


def one_of_required(*keys: str) -> Callable[..., None]:
    """A schema-level validator: at least one of ``keys`` has a value; the error is reported
    as a missing ``keys[0]``."""

    @validates_schema
    def check(self: Schema, data: dict[str, Any], **kwargs: Any) -> None:
        if not any(data.get(key) for key in keys):
            raise ValidationError("Missing data for required field.", keys[0])

    return check


def _accepts(field: fields.Field[Any]) -> Callable[[Any], bool] | None:
    """A cheap test that says a value certainly passes ``field`` (``None``: no cheap test
    for this field type)."""
    if isinstance(field, fields.String):
        return lambda v: isinstance(v, str)
    if isinstance(field, Epoch):
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
