"""The stored records: :class:`Email`, its :class:`Recipient` rows and their :class:`Event` rows;
the webhook requests kept before their events are applied (:class:`WebhookInbox`) and the
single-use webhook tokens seen (:class:`WebhookToken`).

The models are declared on the package's own :class:`~sqlalchemy.MetaData` (so importing this
module needs no app), and are used through the host's Flask-SQLAlchemy session and engine.
Every table name starts with ``maildelivery_``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .state import ATTENTION_RESULTS, ATTENTION_STATUSES
from .vocabulary import (
    EmailResult,
    EmailStatus,
    EventType,
    InboxStatus,
    QueueState,
    RecipientKind,
    RecipientStatus,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC (microseconds kept on every database), read as aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("flask-maildelivery stores aware datetimes only")
        # a batch of events binds tens of thousands of UTC times: convert only the others
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


E = TypeVar("E", bound=StrEnum)


class StrEnumType(sa.types.TypeDecorator[E]):
    """A vocabulary value (a :class:`~enum.StrEnum`) stored as its string: the column is a
    plain ``VARCHAR``, a write of a value outside the vocabulary fails, reads give members."""

    impl = sa.String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum
        # a plain dict lookup per value: a batch binds and reads tens of thousands of them,
        # and calling the enum class costs several times as much
        self._members: dict[str, E] = {member.value: member for member in enum}

    def _member(self, value: Any) -> E:
        try:
            return self._members[value]
        except KeyError:
            raise ValueError(f"{value!r} is not a {self.enum.__name__}") from None

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        # the drivers get the plain string, never a str subclass
        return None if value is None else str.__str__(self._member(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self._member(value)


#: JSON on every database: JSONB on PostgreSQL, JSON elsewhere.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: Long text: LONGTEXT on MySQL/MariaDB, whose TEXT stops at 64 KiB.
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
#: Raw bytes: LONGBLOB on MySQL/MariaDB, whose BLOB stops at 64 KiB.
LongBinary = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
#: Auto-increment big integer keys (SQLite only auto-increments INTEGER).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


def new_public_id() -> str:
    """A new correlation id (``Email.public_id``): 32 hex characters."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of the package's models, with its own metadata."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Email(Base):
    """One email as sent: one record, many recipients.

    ``id`` is the record number shown to users; ``public_id`` is the correlation id carried in
    the ``X-MailDelivery-ID`` header and in the provider's custom arguments.
    """

    __tablename__ = "maildelivery_email"
    __table_args__ = (
        sa.Index("ix_maildelivery_email_tenant_sent", "tenant_id", "sent_at", "id"),
        # PostgreSQL orders by a trailing index column only after an equality on the leading
        # ones, and ``tenant_id IS NULL`` (a host with one tenant) is not one: the log's
        # newest-first order needs (sent_at, id) on its own
        sa.Index("ix_maildelivery_email_sent", "sent_at", "id"),
        sa.Index("ix_maildelivery_email_tenant_result_sent", "tenant_id", "result", "sent_at"),
        sa.Index("ix_maildelivery_email_tenant_status_sent", "tenant_id", "status", "sent_at"),
        sa.Index("ix_maildelivery_email_related", "related_type", "related_id"),
        # the overview: a tenant's emails of a period by result and status, index-only
        sa.Index(
            "ix_maildelivery_email_tenant_sent_outcome",
            "tenant_id",
            "sent_at",
            "result",
            "status",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(
        sa.String(32), unique=True, nullable=False, default=new_public_id
    )
    tenant_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    sent_by: Mapped[str | None] = mapped_column(sa.String(255))
    sender: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    reply_to: Mapped[str | None] = mapped_column(sa.String(320))
    subject: Mapped[str] = mapped_column(sa.String(998), nullable=False, default="")
    text_body: Mapped[str | None] = mapped_column(LongText)
    html_body: Mapped[str | None] = mapped_column(LongText)
    #: ``[{"filename": ..., "content_type": ..., "size": ...}]``; the content is not kept.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, nullable=False, default=list
    )
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    #: The host's own data about the email (``metadata`` is reserved by SQLAlchemy, hence ``_``).
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )
    related_type: Mapped[str | None] = mapped_column(sa.String(64))
    related_id: Mapped[str | None] = mapped_column(sa.String(64))
    transport: Mapped[str | None] = mapped_column(sa.String(64))
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: The most notable recipient condition (:class:`~.vocabulary.EmailStatus`).
    status: Mapped[EmailStatus] = mapped_column(
        StrEnumType(EmailStatus, 16), nullable=False, default=EmailStatus.NONE
    )
    #: The outcome (:class:`~.vocabulary.EmailResult`).
    result: Mapped[EmailResult] = mapped_column(
        StrEnumType(EmailResult, 16), nullable=False, default=EmailResult.QUEUED
    )
    #: The email this one is a resend of.
    resent_from_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("maildelivery_email.id", ondelete="SET NULL"), index=True
    )
    #: When someone marked the email reviewed (it then leaves the attention list).
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Who reviewed it: the ``sent_by`` value of the acting user.
    reviewed_by: Mapped[str | None] = mapped_column(sa.String(255))
    #: The copy (a resend) whose delivery resolved this email: every recipient that failed
    #: on it has a delivered copy. A resolved email leaves the attention list.
    resolved_by_id: Mapped[int | None] = mapped_column(
        BigId,
        sa.ForeignKey("maildelivery_email.id", ondelete="SET NULL"),
        index=True,
    )

    #: When the send is scheduled (``send(..., send_at=...)``); ``None``: at once.
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="email",
        order_by="Recipient.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="email", order_by="Event.occurred_at", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Email {self.id} {self.result} {self.subject!r}>"


#: The emails that need attention: a failed result or a notable status (the log's default
#: list, with the overdue ones when outcomes are tracked) ...
NEEDS_ATTENTION = sa.or_(
    Email.result.in_(sorted(ATTENTION_RESULTS)),
    Email.status.in_(sorted(ATTENTION_STATUSES)),
)
#: ... and that nobody dealt with yet: not reviewed, not resolved by a delivered copy.
NOT_DEALT_WITH = sa.and_(Email.reviewed_at.is_(None), Email.resolved_by_id.is_(None))

# Those emails alone, newest first, on PostgreSQL (migration 0016_attention_index): the
# overview counts them up to a cap, which read the table until 1,000 were found (18 ms at
# 1,000,000 emails of which 3% failed) and reads 1,000 index entries with this (0.3 ms).
# MySQL/MariaDB have no partial index; SQLite's tables stay small enough without one.
sa.Index(
    "ix_maildelivery_email_attention",
    Email.tenant_id,
    Email.sent_at,
    Email.id,
    postgresql_where=sa.and_(NEEDS_ATTENTION, NOT_DEALT_WITH),
).ddl_if(dialect="postgresql")


#: How full PostgreSQL fills the recipients' pages when rows are inserted (percent).
RECIPIENT_FILLFACTOR = 80

#: The trigram index of recipient addresses (PostgreSQL with pg_trgm).
TRIGRAM_INDEX = "ix_maildelivery_recipient_address_key_trigram"


def create_trigram_extension(connection: sa.Connection) -> bool:
    """Create PostgreSQL's ``pg_trgm`` extension when it is missing, in a savepoint: a
    database user not allowed to create it leaves the transaction usable. Whether the
    extension is there now, with its operator class on the search path."""
    try:
        with connection.begin_nested():
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return False
    # installed in a schema outside the search path, its operator class is not usable
    visible = connection.execute(
        sa.text(
            "SELECT 1 FROM pg_opclass WHERE opcname = 'gin_trgm_ops' AND pg_opclass_is_visible(oid)"
        )
    ).first()
    return visible is not None


def _trigram_extension_installed(
    ddl: sa.schema.BaseDDLElement,
    target: sa.schema.SchemaItem | str,
    bind: sa.Connection | None,
    tables: list[sa.Table] | None = None,
    state: Any | None = None,
    *,
    dialect: Dialect,
    compiler: sa.sql.compiler.DDLCompiler | None = None,
    checkfirst: bool = False,
    **kw: Any,
) -> bool:
    # create_all builds the trigram index only where pg_trgm is (or can be) installed; the
    # log searches by the start of an address elsewhere
    return bind is not None and create_trigram_extension(bind)


class Recipient(Base):
    """One address of an email (``kind`` ``to``, ``cc`` or ``bcc``) with its own status."""

    __tablename__ = "maildelivery_recipient"
    __table_args__ = (
        sa.Index("ix_maildelivery_recipient_contact", "contact_type", "contact_id"),
        # PostgreSQL uses a plain b-tree for ``LIKE 'prefix%'`` only under the C collation;
        # the pattern-ops index makes the log's search by address prefix fast under any
        # collation. MySQL/MariaDB and SQLite use ix_maildelivery_recipient_address_key.
        sa.Index(
            "ix_maildelivery_recipient_address_key_pattern",
            "address_key",
            postgresql_ops={"address_key": "varchar_pattern_ops"},
        ).ddl_if(dialect="postgresql"),
        # the log's search by part of an address (``address_key LIKE '%customer.test%'``):
        # a trigram index, on PostgreSQL with the pg_trgm extension only (see
        # _trigram_extension_installed)
        sa.Index(
            TRIGRAM_INDEX,
            "address_key",
            postgresql_using="gin",
            postgresql_ops={"address_key": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql", callable_=_trigram_extension_installed),
        # PostgreSQL: room on each page for the updates every event brings (migration
        # 0017_recipient_fillfactor). No index holds a status column, so an update that
        # finds room on its page writes no index entry (a "HOT" update): the recipients'
        # update of the benchmark's 10,000-event batch took 140 ms instead of 380 ms
        # (benchmarks/webhook_ingest.py)
        {"postgresql_with": {"fillfactor": RECIPIENT_FILLFACTOR}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email_id: Mapped[int] = mapped_column(
        BigId,
        sa.ForeignKey("maildelivery_email.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    address: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    #: ``address`` lower-cased: what events and searches match on.
    address_key: Mapped[str] = mapped_column(sa.String(320), nullable=False, index=True)
    name: Mapped[str | None] = mapped_column(sa.String(255))
    kind: Mapped[RecipientKind] = mapped_column(
        StrEnumType(RecipientKind, 3), nullable=False, default=RecipientKind.TO
    )
    contact_type: Mapped[str | None] = mapped_column(sa.String(64))
    contact_id: Mapped[str | None] = mapped_column(sa.String(64))
    status: Mapped[RecipientStatus] = mapped_column(
        StrEnumType(RecipientStatus, 16), nullable=False, default=RecipientStatus.QUEUED
    )
    reason: Mapped[str | None] = mapped_column(sa.Text)
    smtp_code: Mapped[str | None] = mapped_column(sa.String(16))
    bounce_type: Mapped[str | None] = mapped_column(sa.String(16))
    #: When the event that set ``status`` happened (ties between equal statuses go to the
    #: later one, so the outcome does not depend on arrival order).
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    email: Mapped[Email] = relationship(back_populates="recipients")
    events: Mapped[list[Event]] = relationship(
        back_populates="recipient", order_by="Event.occurred_at", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Recipient {self.kind}:{self.address} {self.status}>"


#: The size of the planner's histogram of recipient addresses on PostgreSQL (default 100):
#: enough to tell a search matching a customer's domain from a rare one, even a rare one
#: that is part of a histogram bound (migrations ``0013_address_statistics`` and
#: ``0018_address_statistics_5000``).
ADDRESS_STATISTICS = 5000


@sa.event.listens_for(Recipient.__table__, "after_create")
def _set_address_statistics(table: sa.Table, connection: sa.Connection, **kw: Any) -> None:
    """create_all does what migrations ``0013_address_statistics`` and
    ``0018_address_statistics_5000`` do (PostgreSQL's own ``SET STATISTICS``: no portable
    form)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text(
                f"ALTER TABLE {table.name} ALTER COLUMN address_key"
                f" SET STATISTICS {ADDRESS_STATISTICS}"
            )
        )


class Event(Base):
    """One delivery event from a provider (or from the send itself), stored once.

    ``email_id`` and ``recipient_id`` stay empty until the event is matched: a webhook can
    arrive before the send's commit, and is applied as soon as the email appears.
    """

    __tablename__ = "maildelivery_event"
    __table_args__ = (
        sa.UniqueConstraint("provider", "provider_event_id"),
        # each provider's last event (is it still reporting?) without a scan
        sa.Index("ix_maildelivery_event_provider_received", "provider", "received_at"),
        sa.Index("ix_maildelivery_event_unmatched", "email_id", "correlation_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("maildelivery_email.id", ondelete="CASCADE")
    )
    recipient_id: Mapped[int | None] = mapped_column(
        BigId, sa.ForeignKey("maildelivery_recipient.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    provider_event_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    type: Mapped[EventType] = mapped_column(StrEnumType(EventType, 16), nullable=False)
    raw_type: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    smtp_code: Mapped[str | None] = mapped_column(sa.String(16))
    bounce_type: Mapped[str | None] = mapped_column(sa.String(16))
    #: The recipient address the provider named, as sent.
    address: Mapped[str | None] = mapped_column(sa.String(320))
    #: The ``maildelivery_id`` the provider echoed, if any.
    correlation_id: Mapped[str | None] = mapped_column(sa.String(64))
    #: The provider's message id, if any.
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)

    email: Mapped[Email | None] = relationship(back_populates="events")
    recipient: Mapped[Recipient | None] = relationship(back_populates="events")

    def __repr__(self) -> str:
        return f"<Event {self.provider}:{self.type} {self.address}>"


class WebhookInbox(Base):
    """One authenticated webhook request, kept as received before its events are applied,
    so that a failure while applying them never loses it (see :mod:`.webhooks.inbox`).

    Only a few headers are kept (those that explain or re-verify the request), never
    ``Authorization``.
    """

    __tablename__ = "maildelivery_webhook_inbox"
    __table_args__ = (
        # the failed and pending rows (CLI, log page) and the purge, without a scan
        sa.Index("ix_maildelivery_webhook_inbox_status_received", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    body: Mapped[bytes] = mapped_column(LongBinary, nullable=False)
    status: Mapped[InboxStatus] = mapped_column(
        StrEnumType(InboxStatus, 16), nullable=False, default=InboxStatus.PENDING
    )
    #: Why the last apply failed.
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: How many times its events were applied (or tried).
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<WebhookInbox {self.id} {self.provider} {self.status}>"


class WebhookToken(Base):
    """A single-use token of a webhook request (Mailgun's ``signature.token``), stored with
    the request's inbox row: the unique constraint refuses its second use in any process
    sharing the database. Kept until the token's signature leaves the replay window."""

    __tablename__ = "maildelivery_webhook_token"
    __table_args__ = (sa.UniqueConstraint("provider", "token"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    token: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    #: When the signature it came with is too old to be accepted anyway (purge after).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)


class AddressRecord(Base):
    """The health of one address for one tenant (``maildelivery_address``): its bounces and
    complaints, its last failure and delivery, and whether it is suppressed.

    Kept by the ingest in the same transaction as the events (:mod:`.health` has the rules).
    A record is created at the address's first failure; deliveries update an existing record.
    Each email counts once per address and kind (a bounce reported twice is one bounce).
    """

    __tablename__ = "maildelivery_address"
    __table_args__ = (
        sa.UniqueConstraint("tenant_key", "address_key"),
        # the addresses page, worst first, without a scan
        sa.Index(
            "ix_maildelivery_address_tenant_worst", "tenant_key", "suppressed", "failures", "id"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The tenant id, or ``""`` for none (a unique key holds no ``NULL``).
    tenant_key: Mapped[str] = mapped_column(sa.String(64), nullable=False, default="")
    #: The address as last sent to.
    address: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    #: ``address`` lower-cased: what the record is found by.
    address_key: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    #: The host's contact record that last held the address (for its link).
    contact_type: Mapped[str | None] = mapped_column(sa.String(64))
    contact_id: Mapped[str | None] = mapped_column(sa.String(64))
    hard_bounces: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    soft_bounces: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    complaints: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: ``hard_bounces + soft_bounces + complaints``: the page's order.
    failures: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: Soft bounces since the last delivery.
    soft_bounce_streak: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    last_failure_email_id: Mapped[int | None] = mapped_column(BigId)
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    suppressed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    #: When the failure that suppressed the address happened.
    suppressed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    suppressed_reason: Mapped[str | None] = mapped_column(sa.Text)
    #: What suppressed it: ``"hard"`` (a hard bounce), ``"soft"`` (soft bounces in a row) or
    #: ``"complaint"``.
    suppressed_cause: Mapped[str | None] = mapped_column(sa.String(16))
    suppressed_email_id: Mapped[int | None] = mapped_column(BigId)
    #: The last lift of a suppression: when, and by whom (a user's ``sent_by`` value, or
    #: ``"delivery"`` when a delivery lifted it).
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lifted_by: Mapped[str | None] = mapped_column(sa.String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    def __repr__(self) -> str:
        return f"<AddressRecord {self.tenant_key!r}:{self.address} {self.failures}>"


class QueuedSend(Base):
    """A send not handed to the transport yet: queued for a worker, scheduled, or waiting
    for a retry after a transient failure (see :mod:`.sending.queue`).

    It keeps the message as it goes out (the stored email keeps only the names of its
    attachments) until the transport accepts it or it fails for good; the row is then
    deleted. A worker claims it by moving it from ``waiting`` to ``sending`` in one
    conditional ``UPDATE``, so a send is handed over once.
    """

    __tablename__ = "maildelivery_send_queue"
    __table_args__ = (
        # due sends and sends stuck in ``sending`` (retry command, periodic task) without a scan
        sa.Index("ix_maildelivery_send_queue_state_due", "state", "due_at"),
    )

    email_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("maildelivery_email.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[QueueState] = mapped_column(
        StrEnumType(QueueState, 16), nullable=False, default=QueueState.WAITING
    )
    #: When the next attempt is due.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    #: Attempts made (or started) so far.
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    #: When the attempt under way was claimed (state ``sending``).
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Why the last attempt failed.
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    #: The message's fields (:func:`.sending.queue.message_fields`), attachments included.
    message: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    #: The MIME message as built (and as ``before_send`` receivers left it).
    mime: Mapped[bytes] = mapped_column(LongBinary, nullable=False)

    def __repr__(self) -> str:
        return f"<QueuedSend {self.email_id} {self.state} attempt {self.attempts}>"


class HourlyOutcome(Base):
    """How many emails a tenant sent in one UTC hour, by result, status and transport
    (``maildelivery_hourly``): the overview's chart and rates sum these rows instead of
    counting the emails.

    Each email counts once, in the hour of its ``sent_at``, under its current result and
    status: the send path adds it, every change of its result, status or ``sent_at`` moves
    it, the purge takes it away, each in the transaction of that change (:mod:`.rollup`).
    ``flask maildelivery stats --rebuild`` counts it again from the emails.
    """

    __tablename__ = "maildelivery_hourly"

    #: The tenant id, or ``""`` for none (a primary key holds no ``NULL``).
    tenant_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    #: The start of the UTC hour.
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    result: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    #: The transport's name, or ``""`` for none.
    transport: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    emails: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)

    def __repr__(self) -> str:
        return f"<HourlyOutcome {self.tenant_key!r} {self.hour} {self.result} {self.emails}>"


class HourlyDomain(Base):
    """How many recipients of a tenant's emails sent in one UTC hour have an address at one
    domain (``maildelivery_hourly_domain``): the denominator of the overview's failure rate
    by domain. Kept like :class:`HourlyOutcome` (a recipient's domain never changes: the
    send adds it, a move of ``sent_at`` moves it, the purge takes it away)."""

    __tablename__ = "maildelivery_hourly_domain"

    tenant_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    #: The part of ``Recipient.address_key`` after its last ``@``.
    domain: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    recipients: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)

    def __repr__(self) -> str:
        return f"<HourlyDomain {self.tenant_key!r} {self.domain} {self.hour} {self.recipients}>"


class HourlyFailure(Base):
    """How many recipients of a tenant's emails sent in one UTC hour failed (bounced,
    dropped, suppressed, refused), by the domain of their address
    (``maildelivery_hourly_failure``), with the latest of those failures: the overview's
    failing domains. A row exists only where a recipient failed.

    A recipient's status never leaves the failures once it is one, so the ingest adds a
    recipient when it first fails and keeps the latest failure (by the time of its event)
    as later ones arrive; the purge takes the failed recipients of the deleted emails away.
    """

    __tablename__ = "maildelivery_hourly_failure"

    tenant_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    domain: Mapped[str] = mapped_column(sa.String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    #: When the latest failure counted here happened, and its reason.
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_reason: Mapped[str | None] = mapped_column(sa.Text)

    def __repr__(self) -> str:
        return f"<HourlyFailure {self.tenant_key!r} {self.hour} {self.domain} {self.failures}>"
