"""The read queries behind the log pages, the JSON API and the CSV export.

Everything here only reads. Every query is scoped to one tenant (``tenant_id IS NULL`` for
a host with one tenant), so another tenant's email is never found.

The list is ordered newest first by ``(sent_at, id)`` and paginated by keyset: a cursor holds
the ``(sent_at, id)`` of the last row shown, and the next page is the rows strictly after it
in that order. Nothing counts the whole table; a page fetches one row more than it shows to
know whether another page follows.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session, selectinload

from ..context import session as package_session
from ..models import (
    NEEDS_ATTENTION,
    NOT_DEALT_WITH,
    TRIGRAM_INDEX,
    Email,
    Event,
    QueuedSend,
    Recipient,
)
from ..state import EMAIL_STATUSES, RESULTS
from ..tracking import OverdueRule

#: ``show`` values: failed emails only (the default), or every email.
SHOW_FAILED = "failed"
SHOW_ALL = "all"
#: How many recipient addresses a list row shows in its "To" column.
TO_SHOWN = 3
#: Longest search text accepted.
MAX_SEARCH = 320
#: Largest record id: the databases' signed 64-bit integer. A larger id names no email
#: (the id routes answer 404) and no cursor holds one.
MAX_ID = 2**63 - 1
#: The days a date filter accepts: MariaDB's DATETIME starts in year 1000, and the day
#: after the last one must still be a date Python can hold.
FIRST_DAY = date(1000, 1, 1)
LAST_DAY = date(9998, 12, 31)
#: The moments a page cursor may hold (the same range, in UTC).
_FIRST_MOMENT = datetime.combine(FIRST_DAY, time.min, tzinfo=UTC)
_END_MOMENT = datetime.combine(LAST_DAY + timedelta(days=1), time.min, tzinfo=UTC)
#: How a recipient search matches an address: any part of it (``customer.test`` finds
#: ``ann@customer.test``), by a scan of the address index (SQLite, MySQL/MariaDB) or through
#: PostgreSQL's trigram index; or only its start (PostgreSQL without the trigram index).
SEARCH_CONTAINS = "contains"
SEARCH_TRIGRAM = "trigram"
SEARCH_PREFIX = "prefix"
#: Digits as the URLs write them (``str.isdigit`` also accepts other scripts' digits).
_DIGITS = re.compile(r"[0-9]{1,19}")


#: A session, or Flask-SQLAlchemy's scoped session (``db.session``).
AnySession = Session | scoped_session[Any]
#: A ``SELECT`` of any columns.
AnySelect = sa.Select[*tuple[Any, ...]]


class FilterError(ValueError):
    """A filter or cursor value is not valid; the message says which and what is accepted."""


@dataclass(frozen=True)
class Cursor:
    """A position in the list: the ``(sent_at, id)`` of a row, and which way to read."""

    sent_at: datetime
    id: int
    #: ``"after"``: the rows older than this one (next page); ``"before"``: newer (previous).
    direction: str = "after"

    def encode(self) -> str:
        """The cursor as an opaque URL-safe token."""
        return encode_token(
            f"{self.direction[0]}|{self.sent_at.astimezone(UTC).isoformat()}|{self.id}"
        )

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a token made by :meth:`encode`.

        :raises FilterError: the token was not made by :meth:`encode`.
        """
        try:
            direction, sent_at, id_ = decode_token(token).split("|")
            direction = {"a": "after", "b": "before"}[direction]
            moment = datetime.fromisoformat(sent_at)
            if moment.tzinfo is None:
                raise ValueError("naive")
            # OverflowError: a moment at the edge of datetime's range, with an offset
            moment = moment.astimezone(UTC)
            if not _FIRST_MOMENT <= moment < _END_MOMENT:
                raise ValueError("out of range")
            if not _DIGITS.fullmatch(id_) or int(id_) > MAX_ID:
                raise ValueError("not a record id")
            return cls(moment, int(id_), direction)
        except (ValueError, KeyError, OverflowError, UnicodeDecodeError, binascii.Error):
            raise FilterError(
                "the page cursor is not valid; start again from the first page"
            ) from None


def encode_token(raw: str) -> str:
    """``raw`` as an opaque URL-safe cursor token."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The text of a token made by :func:`encode_token`.

    :raises ValueError: it was not made by :func:`encode_token` (``binascii.Error`` and
        ``UnicodeDecodeError`` are value errors).
    """
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def parse_limit(text: str, maximum: int) -> int:
    """A page size written in ASCII digits, from 1 to ``maximum``.

    :raises FilterError: anything else.
    """
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= maximum:
        raise FilterError(f"limit must be a whole number from 1 to {maximum}")
    return int(text)


@dataclass(frozen=True)
class LogFilter:
    """What the list shows: the "failed only" toggle, filters, searches, the page cursor."""

    show: str = SHOW_FAILED
    status: str | None = None
    result: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    #: Recipient address search, any case: text the address contains (a domain, a name),
    #: or its start only, as :attr:`recipient_search` says.
    recipient: str | None = None
    #: Subject search: text the subject contains, any case.
    subject: str | None = None
    #: Recipient domain: emails with a recipient at this domain (``customer.test``), any case.
    domain: str | None = None
    #: Only the overdue emails (``overdue=1``).
    overdue_only: bool = False
    cursor: Cursor | None = None
    #: Which emails are overdue now: part of the attention list (not a query argument;
    #: ``None`` when outcomes are not tracked).
    overdue_rule: OverdueRule | None = None
    #: How :attr:`recipient` matches: :data:`SEARCH_CONTAINS`, :data:`SEARCH_TRIGRAM` or
    #: :data:`SEARCH_PREFIX` (not a query argument: what the database can do fast, see
    #: :func:`address_search`).
    recipient_search: str = SEARCH_PREFIX

    @classmethod
    def from_args(cls, args: Any) -> LogFilter:
        """Read a filter from query arguments (``request.args``).

        :raises FilterError: a value is not valid; the message says what is accepted.
        """

        def text(name: str) -> str | None:
            value = (args.get(name) or "").strip()
            if len(value) > MAX_SEARCH:
                raise FilterError(f"{name} is longer than {MAX_SEARCH} characters")
            if "\x00" in value:
                # PostgreSQL refuses NUL in text; no address or subject holds one
                raise FilterError(f"{name} contains a NUL character")
            return value or None

        show = text("show") or SHOW_FAILED
        if show not in (SHOW_FAILED, SHOW_ALL):
            raise FilterError(f"show must be {SHOW_FAILED!r} or {SHOW_ALL!r}, not {show!r}")
        status = text("status")
        if status is not None and status not in EMAIL_STATUSES:
            raise FilterError(
                f"status must be one of {', '.join(s for s in EMAIL_STATUSES if s)}, not {status!r}"
            )
        result = text("result")
        if result is not None and result not in RESULTS:
            raise FilterError(f"result must be one of {', '.join(RESULTS)}, not {result!r}")
        dates = []
        for name in ("from", "to"):
            value = text(name)
            try:
                day = date.fromisoformat(value) if value else None
            except ValueError:
                raise FilterError(
                    f"{name} must be a date written YYYY-MM-DD, not {value!r}"
                ) from None
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                raise FilterError(
                    f"{name} must be a date from {FIRST_DAY.isoformat()} "
                    f"to {LAST_DAY.isoformat()}, not {value!r}"
                )
            dates.append(day)
        date_from, date_to = dates
        if date_from and date_to and date_from > date_to:
            raise FilterError("the date range ends before it starts")
        token = text("cursor")
        overdue = text("overdue")
        if overdue not in (None, "1"):
            raise FilterError(f"overdue must be 1 or left out, not {overdue!r}")
        return cls(
            show=show,
            status=status,
            result=result,
            date_from=date_from,
            date_to=date_to,
            recipient=(text("recipient") or "").lower() or None,
            subject=text("subject"),
            domain=(text("domain") or "").lstrip("@").lower() or None,
            overdue_only=overdue == "1",
            cursor=Cursor.decode(token) if token else None,
        )

    def args(self, **changes: Any) -> dict[str, str]:
        """This filter as query arguments (defaults left out), with ``changes`` applied;
        for links to other pages and to the other ``show`` mode."""
        values: dict[str, Any] = {
            "show": self.show if self.show != SHOW_FAILED else None,
            "status": self.status,
            "result": self.result,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "recipient": self.recipient,
            "subject": self.subject,
            "domain": self.domain,
            "overdue": "1" if self.overdue_only else None,
            "cursor": self.cursor.encode() if self.cursor else None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    @property
    def narrowed(self) -> bool:
        """Whether a filter or search beyond the ``show`` toggle applies."""
        return any(
            (
                self.status,
                self.result,
                self.date_from,
                self.date_to,
                self.recipient,
                self.subject,
                self.domain,
                self.overdue_only,
            )
        )


@dataclass
class EmailRow:
    """One row of the list."""

    id: int
    public_id: str
    sent_at: datetime | None
    status: str
    result: str
    subject: str
    sender: str
    transport: str | None = None
    #: When it was reviewed (``None``: not reviewed).
    reviewed_at: datetime | None = None
    #: The copy that resolved it (``None``: not resolved).
    resolved_by_id: int | None = None
    #: The first :data:`TO_SHOWN` recipient addresses.
    to: list[str] = field(default_factory=list)
    #: How many recipients the email has.
    recipient_count: int = 0
    #: Sent through a tracked transport and still without a final word after the timeout.
    overdue: bool = False
    #: How many copies were sent of it (resends).
    copy_count: int = 0


@dataclass
class LogPage:
    """One page of the list, with the cursors of its neighbours."""

    rows: list[EmailRow]
    next_cursor: Cursor | None
    previous_cursor: Cursor | None


def _tenant_clause(tenant_id: str | None) -> sa.ColumnElement[bool]:
    return Email.tenant_id.is_(None) if tenant_id is None else Email.tenant_id == tenant_id


def address_search(connection: sa.Connection) -> str:
    """How the log can search recipient addresses on ``connection``'s database.

    PostgreSQL finds a part of an address through the trigram index (``pg_trgm``, built by
    migration ``0011_address_trigram``); without it, a search by the start of an address
    (the ``varchar_pattern_ops`` index) is what stays fast. SQLite and MySQL/MariaDB read
    the address index for any part of an address.
    """
    if connection.dialect.name != "postgresql":
        return SEARCH_CONTAINS
    # to_regclass follows the search path, as the queries do
    found = connection.execute(sa.select(sa.func.to_regclass(TRIGRAM_INDEX))).scalar()
    return SEARCH_TRIGRAM if found is not None else SEARCH_PREFIX


def plan_for_each_search(connection: sa.Connection, log_filter: LogFilter) -> None:
    """On PostgreSQL, before a search by part of an address: plan each statement of this
    transaction for its own values, and without parallel workers.

    psycopg prepares a statement run five times on a connection, and PostgreSQL may then
    keep one generic plan for any value; for ``address_key LIKE $1`` that plan cannot read
    the trigram index and scans every recipient (seconds at millions). A search matching
    many addresses (a domain) reads the newest emails until one page is full; a parallel
    plan has each worker walk the newest emails and merges them, which took 55 ms where one
    process takes 31 (1,000,000 emails, ``benchmarks/log_pages.py``). ``SET LOCAL`` ends
    with the transaction, which is the package's own.
    """
    if (
        log_filter.recipient
        and log_filter.recipient_search == SEARCH_TRIGRAM
        and (connection.dialect.server_version_info or (0,)) >= (12,)
    ):
        connection.execute(
            sa.select(
                sa.func.set_config("plan_cache_mode", "force_custom_plan", True),
                sa.func.set_config("max_parallel_workers_per_gather", "0", True),
            )
        )


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filter_clauses(log_filter: LogFilter, tenant_id: str | None) -> list[sa.ColumnElement[bool]]:
    """The ``WHERE`` clauses of ``log_filter`` (its cursor aside) for ``tenant_id``, every
    value a bound parameter."""
    clauses = [_tenant_clause(tenant_id)]
    rule = log_filter.overdue_rule
    if log_filter.show == SHOW_FAILED:
        clauses.append(sa.or_(NEEDS_ATTENTION, rule.clause()) if rule else NEEDS_ATTENTION)
        clauses.append(NOT_DEALT_WITH)
    if log_filter.overdue_only:
        # nothing is overdue when outcomes are not tracked
        clauses.append(rule.clause() if rule else sa.false())
    if log_filter.status is not None:
        clauses.append(Email.status == log_filter.status)
    if log_filter.result is not None:
        clauses.append(Email.result == log_filter.result)
    if log_filter.date_from is not None:
        clauses.append(Email.sent_at >= _day_start(log_filter.date_from))
    if log_filter.date_to is not None:
        clauses.append(Email.sent_at < _day_start(log_filter.date_to + timedelta(days=1)))
    if log_filter.recipient:
        clauses.append(
            Email.id.in_(
                sa.select(Recipient.email_id).where(
                    *_address_matches(log_filter.recipient, log_filter.recipient_search)
                )
            )
        )
    if log_filter.domain:
        # a suffix: no index serves it; the overview links here with a date range
        clauses.append(
            Email.id.in_(
                sa.select(Recipient.email_id).where(
                    Recipient.address_key.like(
                        "%@" + _like_prefix(log_filter.domain)[:-1], escape="\\"
                    )
                )
            )
        )
    if log_filter.subject:
        clauses.append(
            sa.func.lower(Email.subject).like(
                f"%{_like_prefix(log_filter.subject.lower())}", escape="\\"
            )
        )
    return clauses


def _address_matches(text: str, search: str) -> list[sa.ColumnElement[bool]]:
    """Where a recipient's address matches the (lower-cased) search ``text`` as ``search``
    says: its start, an index range scan on every database; any part of it, a scan of the
    address index on SQLite and MySQL/MariaDB, a trigram index scan on PostgreSQL."""
    if search == SEARCH_PREFIX:
        return [Recipient.address_key.like(_like_prefix(text), escape="\\")]
    contains = Recipient.address_key.like(f"%{_like_prefix(text)}", escape="\\")
    local, at, _ = text.partition("@")
    if search != SEARCH_TRIGRAM or not at or len(local) < 3:
        return [contains]
    # The trigram index reads the whole row list of every trigram of the text, and a
    # domain's trigrams are in most addresses (every ".com"): 100+ ms for a whole address
    # at 3,000,000 recipients. So a text with an "@" is looked up by its part up to the "@"
    # (a few rows), and those rows are checked against the whole text with strpos, which
    # the index does not serve (a second LIKE would be looked up in the index as well).
    return [
        Recipient.address_key.like(f"%{_like_prefix(local + '@')}", escape="\\"),
        sa.func.strpos(Recipient.address_key, text) > 0,
    ]


def _keyset(cursor: Cursor, row_values: bool) -> sa.ColumnElement[bool]:
    """The rows after ``cursor`` in its direction (``after``: older, ``before``: newer)."""
    older = cursor.direction == "after"
    if not row_values:
        # MySQL/MariaDB do not turn a row-value comparison into an index range
        if older:
            return sa.or_(
                Email.sent_at < cursor.sent_at,
                sa.and_(Email.sent_at == cursor.sent_at, Email.id < cursor.id),
            )
        return sa.or_(
            Email.sent_at > cursor.sent_at,
            sa.and_(Email.sent_at == cursor.sent_at, Email.id > cursor.id),
        )
    pair = sa.tuple_(Email.sent_at, Email.id)
    position = (cursor.sent_at, cursor.id)
    return pair < position if older else pair > position


_ROW_COLUMNS = (
    Email.id,
    Email.public_id,
    Email.sent_at,
    Email.status,
    Email.result,
    Email.subject,
    Email.sender,
    Email.transport,
    Email.reviewed_at,
    Email.resolved_by_id,
)
_COPY = sa.orm.aliased(Email)
#: How many copies were sent of the row's email: an index lookup on ``resent_from_id`` per
#: row of the page, in the list's own statement.
_COPY_COUNT = (
    sa.select(sa.func.count(_COPY.id))
    .where(_COPY.resent_from_id == Email.id)
    .scalar_subquery()
    .label("copy_count")
)


def list_statement(
    dialect_name: str, log_filter: LogFilter, tenant_id: str | None, limit: int
) -> AnySelect:
    """The ``SELECT`` of one list page (``limit`` rows in reading order) on the database
    ``dialect_name``."""
    cursor = log_filter.cursor
    statement = sa.select(*_ROW_COLUMNS, _COPY_COUNT).where(*filter_clauses(log_filter, tenant_id))
    if cursor is not None:
        statement = statement.where(
            _keyset(cursor, row_values=dialect_name not in ("mysql", "mariadb"))
        )
    if cursor is not None and cursor.direction == "before":
        statement = statement.order_by(Email.sent_at.asc(), Email.id.asc())
    else:
        statement = statement.order_by(Email.sent_at.desc(), Email.id.desc())
    return statement.limit(limit)


def first_recipients_statement(email_ids: Sequence[int]) -> AnySelect:
    """The first :data:`TO_SHOWN` addresses of each of ``email_ids``, and its recipient
    count: ``(email_id, address, total)`` rows."""
    numbered = (
        sa.select(
            Recipient.email_id,
            Recipient.address,
            sa.func.row_number()
            .over(partition_by=Recipient.email_id, order_by=Recipient.id)
            .label("position"),
            sa.func.count().over(partition_by=Recipient.email_id).label("total"),
        )
        .where(Recipient.email_id.in_(email_ids))
        .subquery()
    )
    return (
        sa.select(numbered.c.email_id, numbered.c.address, numbered.c.total)
        .where(numbered.c.position <= TO_SHOWN)
        .order_by(numbered.c.email_id, numbered.c.position)
    )


@contextmanager
def reading() -> Iterator[sa.Connection]:
    """The connection the pages' reads run on: the package's own session's, never the
    host's. The statements run on it return plain rows: they load no entities."""
    yield package_session().connection()


def _rows_with_recipients(connection: sa.Connection, rows: Sequence[Any]) -> list[EmailRow]:
    result = [EmailRow(**row._mapping) for row in rows]
    if not result:
        return result
    by_id = {row.id: row for row in result}
    for email_id, address, total in connection.execute(first_recipients_statement(list(by_id))):
        row = by_id[email_id]
        row.to.append(address)
        row.recipient_count = total
    return result


def log_page(
    connection: sa.Connection, log_filter: LogFilter, tenant_id: str | None, page_size: int
) -> LogPage:
    """One page of the list for ``tenant_id``, read on ``connection`` (see
    :func:`reading`)."""
    statement = list_statement(connection.dialect.name, log_filter, tenant_id, page_size + 1)
    plan_for_each_search(connection, log_filter)
    fetched = list(connection.execute(statement).all())
    more = len(fetched) > page_size
    fetched = fetched[:page_size]
    cursor = log_filter.cursor
    backwards = cursor is not None and cursor.direction == "before"
    if backwards:
        fetched.reverse()
    rows = _rows_with_recipients(connection, fetched)
    rule = log_filter.overdue_rule
    if rule is not None:
        for row in rows:
            row.overdue = rule.applies(row.result, row.sent_at, row.transport)
    next_cursor = previous_cursor = None
    if rows:
        first, last = rows[0], rows[-1]
        # a page reached going back has a next page (the one we came from), and a previous
        # page when more rows were found; going forward it is the other way round
        has_next = True if backwards else more
        has_previous = more if backwards else cursor is not None
        if has_next and last.sent_at is not None:
            next_cursor = Cursor(last.sent_at, last.id, "after")
        if has_previous and first.sent_at is not None:
            previous_cursor = Cursor(first.sent_at, first.id, "before")
    return LogPage(rows=rows, next_cursor=next_cursor, previous_cursor=previous_cursor)


def iter_emails(
    session: AnySession, log_filter: LogFilter, tenant_id: str | None, batch_size: int = 1000
) -> Iterator[tuple[Email, list[Recipient]]]:
    """Every email ``log_filter`` selects (its cursor ignored), newest first, with its
    recipients; read in keyset batches, so memory stays flat whatever the number."""
    cursor: Cursor | None = None
    dialect_name = session.get_bind(mapper=Email).dialect.name
    plan_for_each_search(session.connection(), log_filter)
    while True:
        batch_filter = replace(log_filter, cursor=cursor)
        statement = list_statement(dialect_name, batch_filter, tenant_id, batch_size)
        ids = [row.id for row in session.execute(statement).all()]
        if not ids:
            return
        emails = session.scalars(
            sa.select(Email)
            .where(Email.id.in_(ids))
            .options(selectinload(Email.recipients))
            .order_by(Email.sent_at.desc(), Email.id.desc())
        ).all()
        for email in emails:
            yield email, list(email.recipients)
        last = emails[-1]
        session.expunge_all()  # keep the identity map from growing with the export
        if len(ids) < batch_size or last.sent_at is None:
            return
        cursor = Cursor(last.sent_at, last.id, "after")


def get_email(session: AnySession, email_id: int, tenant_id: str | None) -> Email | None:
    """Email ``email_id`` of ``tenant_id`` with its recipients loaded (two statements; what
    a resend reads), or ``None`` (also when it belongs to another tenant)."""
    return session.scalars(
        sa.select(Email)
        .where(Email.id == email_id, _tenant_clause(tenant_id))
        .options(selectinload(Email.recipients))
    ).first()


@dataclass(frozen=True)
class RecipientDetail:
    """One recipient of an email as the detail page and the API show it: every column of
    :class:`~flask_maildelivery.models.Recipient`."""

    id: int
    email_id: int
    address: str
    address_key: str
    name: str | None
    kind: str
    contact_type: str | None
    contact_id: str | None
    status: str
    reason: str | None
    smtp_code: str | None
    bounce_type: str | None
    status_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class EventDetail:
    """One event of an email as the detail page and the API show it: every column of
    :class:`~flask_maildelivery.models.Event`."""

    id: int
    email_id: int | None
    recipient_id: int | None
    provider: str
    provider_event_id: str
    type: str
    raw_type: str
    occurred_at: datetime
    received_at: datetime
    reason: str | None
    smtp_code: str | None
    bounce_type: str | None
    address: str | None
    correlation_id: str | None
    provider_message_id: str | None
    payload: dict[str, Any]


class QueueDetail(NamedTuple):
    """Where the email's send stands in the send queue (not handed over yet)."""

    state: str
    due_at: datetime
    attempts: int
    claimed_at: datetime | None
    last_error: str | None


class Resend(NamedTuple):
    """A copy sent of an email: its record no., when it was sent and its result."""

    id: int
    sent_at: datetime | None
    result: str


@dataclass(frozen=True)
class EmailDetail:
    """One email as the detail page and the API show it: every column of
    :class:`~flask_maildelivery.models.Email` under its attribute name (``metadata_``), its
    ``recipients`` (by id), its ``events`` (oldest first) and its ``resends`` (the copies
    sent of it, by id)."""

    id: int
    public_id: str
    tenant_id: str | None
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime
    sent_by: str | None
    sender: str
    reply_to: str | None
    subject: str
    text_body: str | None
    html_body: str | None
    attachments: list[dict[str, Any]]
    headers: dict[str, str]
    metadata_: dict[str, Any]
    related_type: str | None
    related_id: str | None
    transport: str | None
    provider_message_id: str | None
    error: str | None
    status: str
    result: str
    resent_from_id: int | None
    reviewed_at: datetime | None
    reviewed_by: str | None
    resolved_by_id: int | None
    send_at: datetime | None
    recipients: tuple[RecipientDetail, ...]
    events: tuple[EventDetail, ...]
    resends: tuple[Resend, ...]
    #: The send's queue row: queued, scheduled, waiting for a retry, or being sent.
    queue: QueueDetail | None = None


def _attribute_columns(model: Any) -> list[sa.ColumnElement[Any]]:
    # every column of ``model`` under its attribute name (``metadata_``, not ``metadata``)
    return [prop.columns[0].label(prop.key) for prop in sa.inspect(model).column_attrs]


def email_detail(
    connection: sa.Connection, email_id: int, tenant_id: str | None
) -> EmailDetail | None:
    """Email ``email_id`` of ``tenant_id`` as the detail page shows it, or ``None`` (also
    when it belongs to another tenant). Read as plain rows, not entities (the page only
    reads): five statements."""
    tenant_clause = _tenant_clause(tenant_id)
    row = connection.execute(
        sa.select(*_attribute_columns(Email)).where(Email.id == email_id, tenant_clause)
    ).first()
    if row is None:
        return None
    recipients = connection.execute(
        sa.select(*_attribute_columns(Recipient))
        .where(Recipient.email_id == email_id)
        .order_by(Recipient.id)
    )
    events = connection.execute(
        sa.select(*_attribute_columns(Event))
        .where(Event.email_id == email_id)
        .order_by(Event.occurred_at, Event.id)
    )
    resends = connection.execute(
        sa.select(Email.id, Email.sent_at, Email.result)
        .where(Email.resent_from_id == email_id, tenant_clause)
        .order_by(Email.id)
    )
    queued = connection.execute(
        sa.select(
            QueuedSend.state,
            QueuedSend.due_at,
            QueuedSend.attempts,
            QueuedSend.claimed_at,
            QueuedSend.last_error,
        ).where(QueuedSend.email_id == email_id)
    ).first()
    return EmailDetail(
        **row._mapping,
        recipients=tuple(RecipientDetail(**r._mapping) for r in recipients),
        events=tuple(EventDetail(**e._mapping) for e in events),
        resends=tuple(Resend(*r) for r in resends),
        queue=None if queued is None else QueueDetail(*queued),
    )


def get_html_body(
    connection: sa.Connection, email_id: int, tenant_id: str | None
) -> tuple[bool, str | None]:
    """``(found, html_body)`` of email ``email_id`` of ``tenant_id``."""
    row = connection.execute(
        sa.select(Email.html_body).where(Email.id == email_id, _tenant_clause(tenant_id))
    ).first()
    return (False, None) if row is None else (True, row[0])
