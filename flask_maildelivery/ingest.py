"""Set-based persistence of normalized delivery events.

A batch of :class:`~flask_maildelivery.events.NormalizedEvent` is applied in one
transaction with a handful of statements, whatever its size:

1. match events to emails by ``maildelivery_id``, then the rest by provider message id:
   a ``SELECT ... IN`` each (on SQLite the batch first takes the database's write lock,
   which stands in for row locks);
2. lock the touched emails (``SELECT ... FOR UPDATE`` in id order, so concurrent batches
   neither deadlock nor lose an update), then read all their recipients and their current
   state once (a locking read: MySQL/MariaDB's plain reads see an older snapshot);
3. insert the events with conflict-skip on (``provider``, ``provider_event_id``), with
   ``RETURNING`` the rows really inserted, so a repeated event changes nothing: one
   SQLAlchemy Core insert (``ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite,
   ``INSERT IGNORE`` on MySQL/MariaDB) sent as multi-row ``VALUES`` by SQLAlchemy's
   "insertmanyvalues"; PostgreSQL gets one ``INSERT ... SELECT`` over array parameters;
4. fold the new events into the touched recipients' state (:mod:`.state`); a recipient
   whose state changed takes it from the event that decides it (``UPDATE ... FROM`` the
   event table, by event ids: the new states are not sent back as parameters), then an
   email whose result or status changed gets it (one ``UPDATE ... WHERE id IN`` per new
   result and status); a recipient that got one of the package's own send-attempt events
   has its state computed from all of its stored events instead (one locking ``SELECT``),
   since an accepted attempt takes the earlier attempts' deferrals out of the count;
5. when a copy (a resend) was delivered to a recipient, see whether its original is now
   resolved (:mod:`.copies`) and store which copy resolved it;
6. fold the bounces, complaints and deliveries into the addresses' health records
   (:mod:`.health`), from what steps 1 and 2 read (the recipients' addresses and state,
   their emails' tenants): insert the records of addresses failing for the first time with
   their state (conflict-skip, like the events), lock the batch's other records that exist
   (one locking ``SELECT`` per tenant, after the emails, so batches lock in one order),
   update what changed. A delivery to an address that never failed (most of a batch) costs
   only its key in that ``SELECT``;
7. commit, then send the signals for what really changed.

A batch that touches a copy also locks the copy's original, in the same id-ordered lock
(step 2), so two batches delivering two copies of one email cannot both miss the other's
delivery.

Events that match no email are stored unmatched and applied by
:func:`apply_unmatched_events` when the email appears (a webhook can beat the send's commit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session

from . import context, rollup, signals
from .batches import chunks
from .copies import RecipientRow, is_delivered, resolving_copy
from .events import NormalizedEvent, storable_id, storable_json, storable_text
from .health import DELIVERY, AddressFacts, AddressState, fold_address, new_kinds
from .models import AddressRecord, Email, Event, Recipient, utcnow
from .state import (
    FAILURE_STATUSES,
    SendAttempt,
    StatusFact,
    email_result,
    email_status,
    folds_incrementally,
    is_status,
    recipient_state,
)

T = TypeVar("T")

email_t: sa.Table = Email.__table__  # type: ignore[assignment]
recipient_t: sa.Table = Recipient.__table__  # type: ignore[assignment]
event_t: sa.Table = Event.__table__  # type: ignore[assignment]
address_t: sa.Table = AddressRecord.__table__  # type: ignore[assignment]


@dataclass
class IngestReport:
    """What one batch did."""

    #: Events stored by this batch (repeats excluded).
    stored: int = 0
    #: Events that were already stored (a provider retry) or repeated within the batch.
    duplicates: int = 0
    #: Stored events that matched no email yet.
    unmatched: int = 0
    #: ``(recipient_id, old, new)`` for every recipient whose status changed.
    recipient_changes: list[tuple[int, str, str]] = field(default_factory=list)
    #: ``(email_id, old, new)`` for every email whose result changed.
    result_changes: list[tuple[int, str, str]] = field(default_factory=list)
    #: Ids of the stored events.
    event_ids: list[int] = field(default_factory=list)
    #: ``(email_id, copy_id)`` for every email this batch resolved.
    resolved: list[tuple[int, int]] = field(default_factory=list)
    #: ``(address record id, email_id)`` for every address this batch suppressed.
    suppressed: list[tuple[int, int]] = field(default_factory=list)
    #: ``(email_id, old result, old status, new result, new status)`` for every change of an
    #: email's result or status, in order: the overview's rollup moves them (:mod:`.rollup`).
    outcome_changes: list[tuple[int, str, str, str, str]] = field(default_factory=list)
    #: ``(email_id, address key, newly failed, at, reason)`` for every recipient that
    #: failed or whose failure changed: the rollup counts them by domain.
    failure_changes: list[rollup.FailureChange] = field(default_factory=list)


def ingest_events(
    events: Sequence[NormalizedEvent],
    app: Flask | None = None,
    *,
    then: Callable[[Session], object] | None = None,
) -> IngestReport:
    """Store and apply a batch of events in one transaction, then send the signals.

    A repeated event (same provider and provider event id) is acknowledged and changes
    nothing. If the database fails, the transaction is rolled back (nothing of the batch is
    stored) and the error propagates.

    :param then: a last write of the caller's, run in the same transaction once the events
        are applied (the webhook inbox marks its row applied): committed with them, or
        rolled back with them.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]

    def work(session: Session, report: IngestReport) -> None:
        _ingest(session, events, report)
        if then is not None:
            then(session)

    return _in_one_transaction(app, work)


def apply_unmatched_events(app: Flask, email_ids: Sequence[int] | None = None) -> IngestReport:
    """Match stored unmatched events to emails that now exist, and apply them.

    :param email_ids: look only for events of these emails (a send that just stored its
        provider message id); ``None``: every unmatched event (``flask maildelivery
        reconcile``).
    """
    return _in_one_transaction(
        app, lambda session, report: _apply_unmatched(session, email_ids, report)
    )


def record_send_failure(
    app: Flask, email_id: int, error: str, events: Sequence[NormalizedEvent]
) -> IngestReport:
    """The send of email ``email_id`` failed before any recipient got it: in one
    transaction, keep ``error`` on the email, make its result ``failed`` (the send itself
    failed) and apply ``events`` (a ``failed`` event per recipient); then the signals."""
    return record_send_attempt(app, email_id, error, events, send_failed=True)


def record_send_attempt(
    app: Flask,
    email_id: int,
    error: str | None,
    events: Sequence[NormalizedEvent],
    *,
    send_failed: bool,
    also: Callable[[Session], None] | None = None,
) -> IngestReport:
    """Record an attempt to send email ``email_id`` in one transaction, then the signals:
    keep ``error`` on the email (``None`` clears it) and apply ``events``.

    :param send_failed: the send itself failed: the result becomes ``failed``. Else the
        result follows the recipients again (a retry clears an earlier ``failed``).
    :param also: more writes of the same transaction (the send queue's row).
    """

    def work(session: Session, report: IngestReport) -> None:
        _begin_write(session)
        originals = _originals_of(session, [email_id])
        old, old_status, _tenant = _lock_emails(session, [email_id, *originals.values()])[email_id]
        new, status = old, old_status
        if send_failed:
            new = "failed"
        elif old == "failed":
            statuses = list(
                session.scalars(
                    sa.select(recipient_t.c.status).where(recipient_t.c.email_id == email_id)
                )
            )
            new, status = email_result(statuses), email_status(statuses)
        session.execute(
            sa.update(email_t)
            .where(email_t.c.id == email_id)
            .values(result=new, status=status, error=error, updated_at=utcnow())
        )
        if old != new:
            report.result_changes.append((email_id, old, new))
        report.outcome_changes.append((email_id, old, old_status, new, status))
        if also is not None:
            also(session)
        _ingest(session, events, report)

    return _in_one_transaction(app, work)


def _in_one_transaction(app: Flask, work: Callable[[Session, IngestReport], None]) -> IngestReport:
    """Run ``work`` in one transaction of the app's session, committed when it returns and
    rolled back (nothing of it stored) when it raises; then send the change signals."""
    session = _session(app)
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        report = IngestReport()
        try:
            work(session, report)
            # the buckets last: after every row lock of the work, in one order
            rollup.count_changes(session, report.outcome_changes, report.failure_changes)
            session.commit()
            break
        except sa.exc.OperationalError as exc:
            session.rollback()
            if attempt == DEADLOCK_ATTEMPTS or not _is_deadlock(exc):
                raise
        except BaseException:
            session.rollback()
            raise
    send_change_signals(app, report)
    return report


#: Tries of a batch that the database chose as a deadlock's victim (rolled back whole).
DEADLOCK_ATTEMPTS = 3


def _is_deadlock(exc: sa.exc.OperationalError) -> bool:
    """Whether the database rolled the transaction back to break a deadlock (PostgreSQL
    SQLSTATE 40P01, MySQL/MariaDB error 1213). Batches lock emails in one order, but two
    batches that touch the same addresses through different emails can still meet in
    another order: the loser is applied again, from the start."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "40P01":
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] == 1213


def _session(app: Flask) -> Session:
    """The session every read and write of this module goes through: the package's own,
    so the host's transaction is never committed or rolled back."""
    return context.session(app)


def _ingest(session: Session, events: Sequence[NormalizedEvent], report: IngestReport) -> None:
    """The steps of the module docstring, for one batch inside its transaction."""
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        row = _event_row(event)
        # the stored key: two ids that are stored alike are one event
        key = (row["provider"], row["provider_event_id"])
        if key in unique:
            report.duplicates += 1
        else:
            unique[key] = row
    rows = list(unique.values())
    if not rows:
        return
    _begin_write(session)

    email_ids, originals = _match_emails(
        session, [(row["correlation_id"], row["provider_message_id"]) for row in rows]
    )
    matched = {i for i in email_ids if i is not None}
    locked = _lock_emails(session, matched | set(originals.values()))
    recipients = _load_recipients(session, matched)

    now = utcnow()
    for row, email_id in zip(rows, email_ids, strict=True):
        address = row["address"]
        row["email_id"] = email_id
        row["recipient_id"] = (
            recipients.ids.get((email_id, address.strip().lower()))
            if email_id is not None and address
            else None
        )
        row["received_at"] = now
    inserted = _insert_events(session, rows)
    report.duplicates += len(rows) - len(inserted)
    report.stored = len(inserted)

    new_facts: dict[int, list[StatusFact]] = defaultdict(list)
    for row in rows:
        event_id = inserted.get((row["provider"], row["provider_event_id"]))
        if event_id is None:
            continue
        report.event_ids.append(event_id)
        if row["email_id"] is None:
            report.unmatched += 1
        elif row["recipient_id"] is not None and is_status(row["type"]):
            new_facts[row["recipient_id"]].append(_fact(row, event_id))
    _apply(session, new_facts, locked, recipients, originals, report)


#: Width of each event column that a batch writes from an event's text.
_WIDTHS: dict[str, int] = {
    name: cast(sa.String, event_t.c[name].type).length or 0
    for name in (
        "provider",
        "provider_event_id",
        "raw_type",
        "smtp_code",
        "bounce_type",
        "address",
        "correlation_id",
        "provider_message_id",
    )
}
#: Identifiers that matching and repeats depend on: too long, they are stored as a digest
#: (:func:`.events.storable_id`), never cut, so two of them never become one.
_IDENTIFIERS = ("provider_event_id", "correlation_id", "provider_message_id")
#: The payload key that keeps a provider event id stored as a digest.
FULL_EVENT_ID_KEY = "maildelivery_provider_event_id"


def _event_row(event: NormalizedEvent) -> dict[str, Any]:
    """The storable column values of one event (``email_id``, ``recipient_id`` and
    ``received_at`` are set once the batch is matched).

    Webhook text is whatever the provider (or someone posing as it) sent: every text is
    made storable here (:func:`.events.storable_text`, NUL and lone surrogates replaced),
    identifiers too long for their column become a digest, other text is cut to its column,
    and the payload is made storable as a whole (:func:`.events.storable_json`). One odd
    event thus never fails its batch's insert.
    """
    text = {
        "provider": event.provider,
        "provider_event_id": event.provider_event_id,
        "raw_type": event.raw_type,
        "smtp_code": event.smtp_code,
        "bounce_type": event.bounce_type,
        "address": event.recipient,
        "correlation_id": event.maildelivery_id,
        "provider_message_id": event.provider_message_id,
    }
    row: dict[str, Any] = {}
    for name, value in text.items():
        if value is None:
            row[name] = None
        elif name in _IDENTIFIERS:
            row[name] = storable_id(value, _WIDTHS[name])
        else:
            row[name] = storable_text(value)[: _WIDTHS[name]]
    payload = storable_json(event.payload)
    full_event_id = storable_text(event.provider_event_id)
    if row["provider_event_id"] != full_event_id:
        # stored as a digest: the payload keeps the id the provider sent
        payload = {**payload, FULL_EVENT_ID_KEY: full_event_id}
    row.update(
        type=event.type,
        occurred_at=event.occurred_at,
        reason=None if event.reason is None else storable_text(event.reason),
        payload=payload,
    )
    return row


def _begin_write(session: Session) -> None:
    """On SQLite, take the database's write lock now.

    SQLite has no row locks, and its driver begins a transaction only at the first write:
    a write that changes nothing starts it, so the state a batch reads cannot change
    before its commit (other writers wait for the lock).
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.update(email_t).where(sa.false()).values(id=email_t.c.id))


# prebuilt selects with one expanding parameter: building an IN list of a thousand bound
# values per statement costs more than the query
_IDS: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)
_EMAILS_BY_PUBLIC_ID = sa.select(email_t.c.id, email_t.c.public_id, email_t.c.resent_from_id).where(
    email_t.c.public_id.in_(_IDS)
)
_EMAILS_BY_MESSAGE_ID = sa.select(
    email_t.c.id, email_t.c.provider_message_id, email_t.c.resent_from_id
).where(email_t.c.provider_message_id.in_(_IDS))
_ORIGINALS = sa.select(email_t.c.id, email_t.c.resent_from_id).where(
    email_t.c.id.in_(_IDS), email_t.c.resent_from_id.is_not(None)
)


def _match_emails(
    session: Session, keys: Sequence[tuple[str | None, str | None]]
) -> tuple[list[int | None], dict[int, int]]:
    """The email id for each ``(maildelivery_id, provider_message_id)``: the email whose
    ``public_id`` is the first, else the one whose ``provider_message_id`` is the second,
    else ``None``. Message ids are looked up only where the correlation id matched nothing.

    Also returns, for each matched email that is a copy, the id of its original
    (``resent_from_id``, set once when the copy is recorded), so that both are locked."""
    by_public: dict[str, int] = {}
    originals: dict[int, int] = {}
    for chunk in chunks(sorted({p for p, _ in keys if p})):
        rows = session.execute(_EMAILS_BY_PUBLIC_ID, {"ids": list(chunk)}).all()
        by_public.update({public_id: id_ for id_, public_id, _ in rows})
        originals.update({id_: original for id_, _, original in rows if original is not None})
    by_message: dict[str, int] = {}
    for chunk in chunks(sorted({m for p, m in keys if m and p not in by_public})):
        rows = session.execute(_EMAILS_BY_MESSAGE_ID, {"ids": list(chunk)}).all()
        by_message.update({message_id: id_ for id_, message_id, _ in rows})
        originals.update({id_: original for id_, _, original in rows if original is not None})
    found = [by_public.get(p or "") or by_message.get(m or "") for p, m in keys]
    matched = {i for i in found if i is not None}
    return found, {id_: original for id_, original in originals.items() if id_ in matched}


def _originals_of(session: Session, email_ids: Iterable[int]) -> dict[int, int]:
    """For each of ``email_ids`` that is a copy, the id of its original."""
    originals: dict[int, int] = {}
    for chunk in chunks(sorted(set(email_ids))):
        rows = session.execute(_ORIGINALS, {"ids": list(chunk)}).all()
        originals.update({id_: original for id_, original in rows})
    return originals


# SQLite renders no FOR UPDATE: its writers wait for the lock taken by _begin_write
_EMAIL_STATES = (
    sa.select(email_t.c.id, email_t.c.result, email_t.c.status, email_t.c.tenant_id)
    .where(email_t.c.id.in_(_IDS))
    .order_by(email_t.c.id)
    .with_for_update()
)


class _LockedEmail(NamedTuple):
    """A locked email: its result and status (as the batch changes them), and the key of its
    tenant's address records."""

    result: str
    status: str
    tenant_key: str


def _lock_emails(session: Session, email_ids: Iterable[int]) -> dict[int, _LockedEmail]:
    """Lock the emails (id order) and return their result, status and tenant."""
    found: dict[int, _LockedEmail] = {}
    for chunk in chunks(sorted(set(email_ids))):
        rows = session.execute(_EMAIL_STATES, {"ids": list(chunk)}).all()
        for id_, result, status, tenant_id in rows:
            found[id_] = _LockedEmail(result, status, tenant_id or "")
    return found


# a locking read: MySQL/MariaDB run REPEATABLE READ, where a plain read would return the
# snapshot taken at the transaction's first read, before the email locks were granted, and
# lose the update of the batch that held them. PostgreSQL would read the latest rows anyway
# (the lock costs it 18 ms of a 1.5 s benchmark batch); SQLite renders no FOR UPDATE.
_RECIPIENTS_OF_EMAILS = (
    sa.select(
        recipient_t.c.id,
        recipient_t.c.email_id,
        recipient_t.c.address_key,
        recipient_t.c.status,
        recipient_t.c.status_at,
        recipient_t.c.reason,
        recipient_t.c.smtp_code,
        recipient_t.c.bounce_type,
        recipient_t.c.address,
        recipient_t.c.contact_type,
        recipient_t.c.contact_id,
    )
    .where(recipient_t.c.email_id.in_(_IDS))
    .with_for_update()
)


@dataclass
class _Recipients:
    """Every recipient of the locked emails: ids by (email id, lower-cased address), and
    each one's email and current state, and its address (read once, under the emails'
    locks)."""

    ids: dict[tuple[int, str], int] = field(default_factory=dict)
    states: dict[int, tuple[int, StatusFact]] = field(default_factory=dict)
    #: ``(address key, address as sent, contact type, contact id)`` by recipient id: what
    #: an address record keeps of it.
    addresses: dict[int, tuple[str, str, str | None, str | None]] = field(default_factory=dict)


def _load_recipients(session: Session, email_ids: Iterable[int]) -> _Recipients:
    """The recipients of ``email_ids`` (locked by the caller) with their state."""
    found = _Recipients()
    for chunk in chunks(sorted(set(email_ids))):
        rows = session.execute(_RECIPIENTS_OF_EMAILS, {"ids": list(chunk)}).all()
        for row in rows:
            id_, email_id, key, status, status_at, reason, smtp_code, bounce_type = row[:8]
            found.ids[(email_id, key)] = id_
            found.states[id_] = (
                email_id,
                StatusFact(status, status_at, reason, smtp_code, bounce_type, tiebreak=""),
            )
            found.addresses[id_] = (key, row[8], row[9], row[10])
    return found


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert event rows, skipping those already stored; return the ids of the rows really
    inserted by (provider, provider_event_id).

    An executemany, which SQLAlchemy sends as multi-row ``INSERT ... VALUES ... RETURNING``
    statements ("insertmanyvalues"); PostgreSQL binds the batch as arrays instead
    (:func:`_from_arrays`). The returned rows are matched to the batch by their key, not by
    position: a skipped row returns nothing.
    """
    stmt = _insert_skipping_duplicates(session)
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(*_from_arrays(stmt, rows, _EVENT_COLUMNS, json="payload"))
        return {(provider, event_id): id_ for id_, provider, event_id in result}
    inserted = {}
    # in chunks: SQLAlchemy's per-row copies of the parameters then die young instead of
    # piling up for the cyclic garbage collector (about 100 ms less on a 10,000-event batch)
    for chunk in chunks(rows):
        for id_, provider, event_id in session.execute(stmt, chunk):
            inserted[(provider, event_id)] = id_
    return inserted


def _insert_skipping_duplicates(session: Session) -> Any:
    """``INSERT`` into the event table that skips a row already stored under the same
    (``provider``, ``provider_event_id``) and returns the id and key of each row it inserted."""
    stmt = insert_or_skip(session, event_t, ["provider", "provider_event_id"])
    return stmt.returning(event_t.c.id, event_t.c.provider, event_t.c.provider_event_id)


def insert_or_skip(session: Session, table: sa.Table, key: list[str]) -> Any:
    """``INSERT`` into ``table`` that skips a row whose unique ``key`` is stored already.

    SQLAlchemy has no portable "insert or skip"; each database's own insert construct
    says it.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    if dialect in ("mysql", "mariadb"):
        # not ON DUPLICATE KEY UPDATE: MariaDB's RETURNING also returns the duplicate rows
        # it leaves alone, so the batch could not tell them from new ones. Values are
        # clipped to their columns beforehand, so IGNORE only skips duplicates.
        return sa.insert(table).prefix_with("IGNORE")
    raise RuntimeError(f"flask-maildelivery does not support the {dialect} database")


#: The columns a batch writes besides ``payload``.
_EVENT_COLUMNS = (
    "email_id",
    "recipient_id",
    "provider",
    "provider_event_id",
    "type",
    "raw_type",
    "occurred_at",
    "received_at",
    "reason",
    "smtp_code",
    "bounce_type",
    "address",
    "correlation_id",
    "provider_message_id",
)


def _from_arrays(
    stmt: Any, rows: list[dict[str, Any]], columns: Sequence[str], *, json: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """PostgreSQL: ``stmt``, an insert of ``rows`` into its table, as ``INSERT ... SELECT
    unnest(:email_id), unnest(:provider), ...``, with one array parameter per one of
    ``columns``; the ``json`` column (the events' payload) is bound as one JSON array, spread
    by ``jsonb_array_elements``.

    psycopg reads every placeholder of a statement in Python and caches no statement with
    more than 50 of them, so the multi-row VALUES of insertmanyvalues (15 placeholders a
    row) cost more than the whole floor: the 10,000-event benchmark ran at 5.8x the floor's
    time, 2.7x with the arrays. Set-returning functions in one select list advance in step
    (PostgreSQL 10 and later): the n-th element of every array makes the n-th row.
    """
    table: sa.Table = stmt.table
    names = list(columns)
    values: list[sa.ColumnElement[Any]] = [
        sa.func.unnest(sa.bindparam(name, type_=postgresql.ARRAY(table.c[name].type)))
        for name in names
    ]
    if json is not None:
        names.append(json)
        values.append(sa.func.jsonb_array_elements(sa.bindparam(json, type_=postgresql.JSONB)))
    params = {name: [row[name] for row in rows] for name in names}
    return stmt.from_select(names, sa.select(*values)), params


def _fact(row: Any, event_id: int) -> StatusFact:
    """What stored event ``event_id`` (``row``, a mapping of its columns) says about its
    recipient."""
    return StatusFact(
        status=row["type"],
        at=row["occurred_at"],
        reason=row["reason"],
        smtp_code=row["smtp_code"],
        bounce_type=row["bounce_type"],
        tiebreak=f"{row['provider']}:{row['provider_event_id']}",
        attempt=SendAttempt.of_event(row["provider"], row["type"], row["raw_type"]),
        event_id=event_id,
    )


#: The columns of a stored event that say what it tells of its recipient (:func:`_fact`).
_FACT_COLUMNS = (
    event_t.c.provider,
    event_t.c.provider_event_id,
    event_t.c.type,
    event_t.c.raw_type,
    event_t.c.occurred_at,
    event_t.c.reason,
    event_t.c.smtp_code,
    event_t.c.bounce_type,
)
# a locking read, like _RECIPIENTS_OF_EMAILS: MySQL/MariaDB's plain read would miss the
# events another batch committed while this one waited for the emails' locks
_EVENTS_OF_RECIPIENTS = (
    sa.select(event_t.c.id, event_t.c.recipient_id, *_FACT_COLUMNS)
    .where(event_t.c.recipient_id.in_(_IDS))
    .with_for_update(read=True)
)


def _stored_facts(session: Session, recipient_ids: Sequence[int]) -> dict[int, list[StatusFact]]:
    """Every stored event of each of ``recipient_ids`` (this batch's included), as facts."""
    found: dict[int, list[StatusFact]] = {id_: [] for id_ in recipient_ids}
    for chunk in chunks(recipient_ids):
        for row in session.execute(_EVENTS_OF_RECIPIENTS, {"ids": list(chunk)}).mappings():
            found[row["recipient_id"]].append(_fact(row, row["id"]))
    return found


def _apply(
    session: Session,
    new_facts: dict[int, list[StatusFact]],
    locked: dict[int, _LockedEmail],
    recipients: _Recipients,
    originals: dict[int, int],
    report: IngestReport,
) -> None:
    """Fold new events (their facts by recipient id) into their recipients' state; update
    what changed, then the emails' results, then resolve the originals of the copies that
    were delivered. The emails of those recipients (and their originals) are locked by the
    caller and ``recipients`` holds all their recipients, read under those locks (no other
    writer changes them before the commit, so no second read is needed)."""
    if not new_facts:
        return
    current = recipients.states
    _update_addresses(session, new_facts, recipients, locked, report)
    # a send attempt's facts may change which stored events count: from all of them
    recounted = _stored_facts(
        session, sorted(id_ for id_, facts in new_facts.items() if not folds_incrementally(facts))
    )
    now = utcnow()
    # the events whose state their recipients take
    deciding: list[int] = []
    touched: set[int] = set()
    delivered_copies: set[int] = set()
    for recipient_id, facts in new_facts.items():
        email_id, before = current[recipient_id]
        if recipient_id in recounted:
            after = recipient_state(recounted[recipient_id])
        else:
            after = recipient_state([before, *facts])
        if after == before:
            continue
        # a new state is one of the recipient's events: its current state would compare
        # equal, and a recount always keeps one event (:func:`.state.counted_facts`)
        assert after.event_id is not None
        current[recipient_id] = (email_id, after)
        touched.add(email_id)
        deciding.append(after.event_id)
        if after.status in FAILURE_STATUSES:
            newly = before.status not in FAILURE_STATUSES
            address_key = recipients.addresses[recipient_id][0]
            report.failure_changes.append((email_id, address_key, newly, after.at, after.reason))
        if after.status != before.status:
            report.recipient_changes.append((recipient_id, before.status, after.status))
            if email_id in originals and is_delivered(after.status):
                delivered_copies.add(email_id)
    if not touched:
        return
    _take_event_states(session, deciding, now)
    statuses: dict[int, list[str]] = defaultdict(list)
    for email_id, state in current.values():
        if email_id in touched:
            statuses[email_id].append(state.status)
    _recompute_emails(session, statuses, locked, report, now)
    if delivered_copies:
        _resolve_originals(session, {originals[c] for c in delivered_copies}, report)


# each recipient takes the state of the event that decides it, in the database: the batch's
# new states are not sent back as parameters. (An executemany of one UPDATE per recipient,
# seven parameters each, cost 116 ms of SQLAlchemy's parameter handling on SQLite for the
# benchmark's 10,000 recipients, where the database itself took 20 ms, and 450 ms of
# round trips on PostgreSQL.) UPDATE ... FROM: SQLite 3.33 or newer; MySQL/MariaDB get
# their multi-table UPDATE.
_FROM_DECIDING_EVENTS = (
    sa.update(recipient_t)
    .where(recipient_t.c.id == event_t.c.recipient_id, event_t.c.id.in_(_IDS))
    .values(
        status=event_t.c.type,
        status_at=event_t.c.occurred_at,
        reason=event_t.c.reason,
        smtp_code=event_t.c.smtp_code,
        bounce_type=event_t.c.bounce_type,
        updated_at=sa.bindparam("now"),
    )
)


def _take_event_states(session: Session, event_ids: list[int], now: datetime) -> None:
    """Set each recipient of ``event_ids`` (stored events, one per recipient) to the state
    that its event says (:func:`_fact`)."""
    for chunk in chunks(sorted(event_ids)):
        session.execute(_FROM_DECIDING_EVENTS, {"ids": list(chunk), "now": now})


#: The stored health of an address, as :class:`.health.AddressState` holds it.
_STATE_COLUMNS = [name for name in AddressState.__dataclass_fields__ if name in address_t.c]
_ADDRESSES = (
    sa.select(
        address_t.c.id,
        address_t.c.address_key,
        address_t.c.contact_type,
        address_t.c.contact_id,
        *(address_t.c[n] for n in _STATE_COLUMNS),
    )
    .where(address_t.c.tenant_key == sa.bindparam("tenant"))
    .order_by(address_t.c.address_key)
    .with_for_update()
)
_ADDRESSES_IN_LIST = _ADDRESSES.where(address_t.c.address_key.in_(_IDS))
# PostgreSQL: the keys as one array parameter (``= ANY(:ids)``), as the events are inserted
# (:func:`_from_arrays`): psycopg reads each placeholder of an IN list in Python, and the
# 6,000 keys of the benchmark's batch took 40 ms in six statements, 8 ms in one
_ADDRESSES_IN_ARRAY = _ADDRESSES.where(
    address_t.c.address_key
    == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(address_t.c.address_key.type)))
)


def _update_addresses(
    session: Session,
    new_facts: dict[int, list[StatusFact]],
    recipients: _Recipients,
    locked: dict[int, _LockedEmail],
    report: IngestReport,
) -> None:
    """Fold the batch's bounces, complaints and deliveries (``new_facts`` by recipient id)
    into the addresses' records, from what the batch read already: the recipients' state
    before the batch and their addresses (``recipients``), their emails' tenants
    (``locked``).

    Most of a batch is deliveries to addresses that never failed: they have no record and
    get none. So the addresses are sorted first (:func:`_health_addresses`), and the facts
    of an address (:class:`.health.AddressFacts`) are gathered only for those that get or
    have a record: the failing ones, inserted as new records, and then those of the locked
    records that exist.
    """
    kinds_of, failing, delivered = _health_addresses(new_facts, recipients, locked)
    if not failing and not delivered:
        return
    now = utcnow()
    limit = int(context.config_value("SOFT_BOUNCE_LIMIT"))
    pending: dict[tuple[str, str], AddressFacts] = {}
    if failing:
        by_address = _address_facts(kinds_of, recipients, locked, failing)
        pending = _insert_new_addresses(session, by_address, limit, now, report)
    # lock the records that exist among the rest: those of the delivered addresses, and
    # those of the failing ones that another batch recorded first (every one on MariaDB)
    to_lock = delivered
    for tenant, key in pending:
        to_lock[tenant].add(key)
    records = _lock_addresses(session, to_lock)
    found = {(t, r.address_key) for t, r in records if (t, r.address_key) not in pending}
    if found:
        pending.update(_address_facts(kinds_of, recipients, locked, found))
    updates = []
    for tenant, (record_id, record_key, contact_type, contact_id, *values) in records:
        address_facts = pending[(tenant, record_key)]
        before = AddressState(**dict(zip(_STATE_COLUMNS, values, strict=True)))
        after, newly = fold_address(before, address_facts, soft_limit=limit, now=now)
        if after == before:
            continue
        row = {name: getattr(after, name) for name in _STATE_COLUMNS}
        row.update(
            b_id=record_id,
            failures=after.failures,
            address=address_facts.address,
            updated_at=now,
        )
        if address_facts.contact_type:
            contact_type = address_facts.contact_type
            contact_id = address_facts.contact_id
        row.update(contact_type=contact_type, contact_id=contact_id)
        updates.append(row)
        if newly and after.suppressed_email_id is not None:
            report.suppressed.append((record_id, after.suppressed_email_id))
    if updates:
        columns = [*_STATE_COLUMNS, "failures", "address", "contact_type", "contact_id"]
        _update_by_id(session, address_t, updates, [*columns, "updated_at"])


def _health_addresses(
    new_facts: dict[int, list[StatusFact]],
    recipients: _Recipients,
    locked: dict[int, _LockedEmail],
) -> tuple[dict[int, dict[str, StatusFact]], set[tuple[str, str]], dict[str, set[str]]]:
    """What the batch says about addresses: the health kinds it brings each recipient that
    gets any (:func:`.health.new_kinds`, by recipient id), then the addresses: the failing
    ones (a bounce or a complaint), by (tenant key, address key), and those only delivered
    to, address keys by tenant key."""
    kinds_of: dict[int, dict[str, StatusFact]] = {}
    failing: set[tuple[str, str]] = set()
    delivered: dict[str, set[str]] = defaultdict(set)
    for recipient_id, facts in new_facts.items():
        email_id, before = recipients.states[recipient_id]
        kinds = new_kinds(before, facts)
        if not kinds:
            continue
        kinds_of[recipient_id] = kinds
        tenant = locked[email_id].tenant_key
        key = recipients.addresses[recipient_id][0]
        if len(kinds) == 1 and DELIVERY in kinds:
            delivered[tenant].add(key)
        else:
            failing.add((tenant, key))
    for tenant, key in failing:
        delivered[tenant].discard(key)
    return kinds_of, failing, delivered


def _address_facts(
    kinds_of: dict[int, dict[str, StatusFact]],
    recipients: _Recipients,
    locked: dict[int, _LockedEmail],
    wanted: Container[tuple[str, str]],
) -> dict[tuple[str, str], AddressFacts]:
    """What the batch says about each of the ``wanted`` addresses, by (tenant key, address
    key), from the new kinds of its recipients (``kinds_of``), taken in id order."""
    by_address: dict[tuple[str, str], AddressFacts] = {}
    for recipient_id in sorted(kinds_of):
        email_id = recipients.states[recipient_id][0]
        key, address, contact_type, contact_id = recipients.addresses[recipient_id]
        address_key = (locked[email_id].tenant_key, key)
        if address_key not in wanted:
            continue
        facts_of = by_address.get(address_key)
        if facts_of is None:
            facts_of = by_address[address_key] = AddressFacts(address, contact_type, contact_id)
        elif contact_type:
            facts_of.contact_type, facts_of.contact_id = contact_type, contact_id
        for kind, fact in kinds_of[recipient_id].items():
            facts_of.add(kind, fact, email_id)
    return by_address


def _insert_new_addresses(
    session: Session,
    by_address: dict[tuple[str, str], AddressFacts],
    limit: int,
    now: datetime,
    report: IngestReport,
) -> dict[tuple[str, str], AddressFacts]:
    """Insert the records of the addresses failing for the first time; return the facts
    still to fold into records that exist (under their row locks).

    PostgreSQL and SQLite: each record is inserted with its state folded from nothing
    (conflict-skip, ``RETURNING`` the rows really inserted), so a new record costs one
    write; a record another batch created first is left to the locked update. MySQL/MariaDB
    (whose ``RETURNING`` also names the rows it skips): empty records with ``ON DUPLICATE KEY
    UPDATE id = id``, which takes the existing row's exclusive lock (the shared lock of
    ``INSERT IGNORE`` would deadlock two batches that both lock the row for update next),
    and every record is then updated.
    """
    pending = dict(by_address)
    failing = sorted(key for key, facts in by_address.items() if facts.failures)
    if not failing:
        return pending
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        stmt = mysql.insert(address_t).on_duplicate_key_update(id=address_t.c.id)
        empty = [_new_address(key, by_address[key], AddressState(), now) for key in failing]
        for row_chunk in chunks(empty):
            session.execute(stmt, row_chunk)
        return pending
    rows = []
    # the email that suppressed each address the batch suppresses, for the signal
    suppressed_by: dict[tuple[str, str], int] = {}
    for key in failing:
        state, newly = fold_address(AddressState(), by_address[key], soft_limit=limit, now=now)
        rows.append(_new_address(key, by_address[key], state, now))
        if newly and state.suppressed_email_id is not None:
            suppressed_by[key] = state.suppressed_email_id
    stmt = insert_or_skip(session, address_t, ["tenant_key", "address_key"]).returning(
        address_t.c.id, address_t.c.tenant_key, address_t.c.address_key
    )
    if session.get_bind().dialect.name == "postgresql":
        # bound as arrays, as the events are (22 placeholders a row otherwise)
        results = [session.execute(*_from_arrays(stmt, rows, list(rows[0])))]
    else:
        results = [session.execute(stmt, row_chunk) for row_chunk in chunks(rows)]
    for result in results:
        for id_, tenant, key in result:
            del pending[(tenant, key)]
            if (tenant, key) in suppressed_by:
                report.suppressed.append((id_, suppressed_by[(tenant, key)]))
    return pending


def _new_address(
    key: tuple[str, str], facts: AddressFacts, state: AddressState, now: datetime
) -> dict[str, Any]:
    """The row of a new address record with ``state``."""
    row = {name: getattr(state, name) for name in _STATE_COLUMNS}
    row.update(
        tenant_key=key[0],
        address_key=key[1],
        address=facts.address,
        contact_type=facts.contact_type,
        contact_id=facts.contact_id,
        failures=state.failures,
        updated_at=now,
    )
    return row


def _lock_addresses(session: Session, keys: dict[str, set[str]]) -> list[tuple[str, Any]]:
    """Lock and read the records that exist of the addresses ``keys`` (address keys by
    tenant key), as ``(tenant key, row)`` in tenant and address order (so that batches lock
    in one order)."""
    array = session.get_bind().dialect.name == "postgresql"
    records: list[tuple[str, Any]] = []
    for tenant in sorted(t for t, tenant_keys in keys.items() if tenant_keys):
        address_keys = sorted(keys[tenant])
        pieces = [address_keys] if array else chunks(address_keys)
        for key_chunk in pieces:
            rows = session.execute(
                _ADDRESSES_IN_ARRAY if array else _ADDRESSES_IN_LIST,
                {"tenant": tenant, "ids": list(key_chunk)},
            )
            records.extend((tenant, record) for record in rows.all())
    return records


# locking reads, for what other batches committed while this one waited for the originals'
# locks (MySQL/MariaDB's plain reads would see the snapshot taken before)
_UNRESOLVED = (
    sa.select(email_t.c.id)
    .where(email_t.c.id.in_(_IDS), email_t.c.resolved_by_id.is_(None))
    .with_for_update()
)
_FAILED_RECIPIENTS = (
    sa.select(
        recipient_t.c.email_id,
        sa.literal("").label("email_result"),
        recipient_t.c.address,
        recipient_t.c.contact_type,
        recipient_t.c.contact_id,
        recipient_t.c.status,
    )
    .where(
        recipient_t.c.email_id.in_(_IDS),
        recipient_t.c.status.in_(sorted(FAILURE_STATUSES)),
    )
    .order_by(recipient_t.c.id)
    .with_for_update()
)
_COPY_RECIPIENTS = (
    sa.select(
        email_t.c.resent_from_id,
        recipient_t.c.email_id,
        email_t.c.result,
        recipient_t.c.address,
        recipient_t.c.contact_type,
        recipient_t.c.contact_id,
        recipient_t.c.status,
    )
    .join(email_t, email_t.c.id == recipient_t.c.email_id)
    .where(email_t.c.resent_from_id.in_(_IDS))
    .order_by(recipient_t.c.id)
    .with_for_update(read=True)
)


def _resolve_originals(session: Session, original_ids: set[int], report: IngestReport) -> None:
    """Store ``resolved_by_id`` on each of ``original_ids`` (locked by the caller) that the
    delivered copies now resolve (:func:`.copies.resolving_copy`)."""
    unresolved = sorted(
        id_ for (id_,) in session.execute(_UNRESOLVED, {"ids": sorted(original_ids)}).all()
    )
    if not unresolved:
        return
    failed: dict[int, list[RecipientRow]] = defaultdict(list)
    for row in session.execute(_FAILED_RECIPIENTS, {"ids": unresolved}).all():
        failed[row[0]].append(RecipientRow(*row))
    copies: dict[int, list[RecipientRow]] = defaultdict(list)
    for original_id, *rest in session.execute(_COPY_RECIPIENTS, {"ids": unresolved}).all():
        copies[original_id].append(RecipientRow(*rest))
    updates = []
    for original_id in unresolved:
        copy_id = resolving_copy(failed[original_id], copies[original_id])
        if copy_id is not None:
            updates.append({"b_id": original_id, "resolved_by_id": copy_id})
            report.resolved.append((original_id, copy_id))
    if updates:
        _update_by_id(session, email_t, updates, ["resolved_by_id"])


def _update_by_id(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], columns: list[str]
) -> None:
    """``UPDATE table SET columns WHERE id = :b_id`` for every row, an executemany per
    chunk (as in :func:`_insert_events`)."""
    stmt = (
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in columns})
    )
    for chunk in chunks(rows):
        session.execute(stmt, chunk)


# the emails that get one new result and status
_NEW_OUTCOME = (
    sa.update(email_t)
    .where(email_t.c.id.in_(_IDS))
    .values(
        result=sa.bindparam("result"), status=sa.bindparam("status"), updated_at=sa.bindparam("now")
    )
)


def _recompute_emails(
    session: Session,
    statuses: dict[int, list[str]],
    locked: dict[int, _LockedEmail],
    report: IngestReport,
    now: datetime,
) -> None:
    """Update the result and status of the emails in ``statuses`` (email id -> its
    recipients' statuses) where they changed: one ``UPDATE ... WHERE id IN`` per new
    (result, status), of which a batch has a handful."""
    by_outcome: dict[tuple[str, str], list[int]] = defaultdict(list)
    for email_id in sorted(statuses):
        old_result, old_status, tenant = locked[email_id]
        refused = old_result == "failed"
        new_result = email_result(statuses[email_id], send_refused=refused)
        new_status = email_status(statuses[email_id])
        if (new_result, new_status) == (old_result, old_status):
            continue
        by_outcome[(new_result, new_status)].append(email_id)
        locked[email_id] = _LockedEmail(new_result, new_status, tenant)
        report.outcome_changes.append((email_id, old_result, old_status, new_result, new_status))
        if new_result != old_result:
            report.result_changes.append((email_id, old_result, new_result))
    for (result, status), email_ids in sorted(by_outcome.items()):
        for chunk in chunks(email_ids):
            session.execute(
                _NEW_OUTCOME,
                {"ids": list(chunk), "result": result, "status": status, "now": now},
            )


def _apply_unmatched(
    session: Session, email_ids: Sequence[int] | None, report: IngestReport
) -> None:
    """Claim the unmatched events whose email now exists (of ``email_ids``, or all), then
    apply them like a new batch's events."""
    _begin_write(session)
    cond: list[sa.ColumnElement[bool]] = [event_t.c.email_id.is_(None)]
    if email_ids is not None:
        emails = session.execute(
            sa.select(email_t.c.public_id, email_t.c.provider_message_id).where(
                email_t.c.id.in_(list(email_ids))
            )
        ).all()
        public_ids = [p for p, _ in emails]
        message_ids = [m for _, m in emails if m]
        keys = [event_t.c.correlation_id.in_(public_ids)]
        if message_ids:
            keys.append(event_t.c.provider_message_id.in_(message_ids))
        cond.append(sa.or_(*keys))
    pending = (
        session.execute(
            sa.select(
                event_t.c.id,
                event_t.c.correlation_id,
                event_t.c.provider_message_id,
                event_t.c.address,
                *_FACT_COLUMNS,
            ).where(*cond)
        )
        .mappings()
        .all()
    )
    if not pending:
        return
    found, originals = _match_emails(
        session, [(p["correlation_id"], p["provider_message_id"]) for p in pending]
    )
    matches: list[tuple[dict[str, Any], int]] = [
        (dict(p), email_id)
        for p, email_id in zip(pending, found, strict=True)
        if email_id is not None
    ]
    if not matches:
        return
    matched = {email_id for _, email_id in matches}
    locked = _lock_emails(session, matched | {originals[i] for i in matched if i in originals})
    recipients = _load_recipients(session, matched)
    updates = []
    new_facts: dict[int, list[StatusFact]] = defaultdict(list)
    for row, email_id in matches:
        recipient_id = recipients.ids.get((email_id, (row["address"] or "").strip().lower()))
        updates.append({"b_id": row["id"], "email_id": email_id, "recipient_id": recipient_id})
        row.update(email_id=email_id, recipient_id=recipient_id)
        if recipient_id is not None and is_status(row["type"]):
            new_facts[recipient_id].append(_fact(row, row["id"]))
    # only events still unmatched are claimed: a concurrent reconcile cannot apply one twice
    stmt = (
        event_t.update()
        .where(event_t.c.id == sa.bindparam("b_id"), event_t.c.email_id.is_(None))
        .values(email_id=sa.bindparam("email_id"), recipient_id=sa.bindparam("recipient_id"))
    )
    session.execute(stmt, updates)
    _apply(session, new_facts, locked, recipients, originals, report)


def send_change_signals(app: Flask, report: IngestReport) -> None:
    """Send ``event_received``, ``recipient_status_changed`` and ``email_result_changed`` for
    what ``report`` says changed; load the records only for signals that have receivers."""
    session = _session(app)
    want_events = bool(signals.event_received.receivers)
    want_recipients = bool(signals.recipient_status_changed.receivers)
    want_results = bool(signals.email_result_changed.receivers)
    want_resolved = bool(signals.email_resolved.receivers)
    want_suppressed = bool(signals.address_suppressed.receivers)
    if want_events:
        for event in _load(session, Event, report.event_ids):
            signals.send_safely(signals.event_received, app, event=event)
    if want_recipients and report.recipient_changes:
        recipients = {
            r.id: r for r in _load(session, Recipient, [c[0] for c in report.recipient_changes])
        }
        latest = _latest_events(session, list(recipients))
        for recipient_id, old, new in report.recipient_changes:
            recipient = recipients[recipient_id]
            signals.send_safely(
                signals.recipient_status_changed,
                app,
                recipient=recipient,
                email=recipient.email,
                old=old,
                new=new,
                event=latest.get(recipient_id),
            )
    if want_results and report.result_changes:
        emails = {e.id: e for e in _load(session, Email, [c[0] for c in report.result_changes])}
        for email_id, old, new in report.result_changes:
            signals.send_safely(
                signals.email_result_changed, app, email=emails[email_id], old=old, new=new
            )
    if want_resolved and report.resolved:
        ids = [id_ for pair in report.resolved for id_ in pair]
        emails = {e.id: e for e in _load(session, Email, ids)}
        for email_id, copy_id in report.resolved:
            signals.send_safely(
                signals.email_resolved, app, email=emails[email_id], copy=emails[copy_id]
            )

    if want_suppressed and report.suppressed:
        records = {
            r.id: r for r in _load(session, AddressRecord, [a for a, _ in report.suppressed])
        }
        emails = {e.id: e for e in _load(session, Email, [e for _, e in report.suppressed])}
        for address_id, email_id in report.suppressed:
            record = records[address_id]
            signals.send_safely(
                signals.address_suppressed,
                app,
                address=record.address,
                reason=record.suppressed_reason,
                email=emails.get(email_id),
                tenant_id=record.tenant_key or None,
            )


def _load(session: Session, model: type[T], ids: Sequence[int]) -> list[T]:
    found: list[T] = []
    for chunk in chunks(list(ids)):
        found.extend(session.scalars(sa.select(model).where(model.id.in_(chunk))))  # type: ignore[attr-defined]
    return found


def _latest_events(session: Session, recipient_ids: list[int]) -> dict[int, Event]:
    """For each recipient, the stored event that decided its current status."""
    result: dict[int, Event] = {}
    for chunk in chunks(recipient_ids):
        rows = session.execute(
            sa.select(Event, Recipient.status)
            .join(Recipient, Recipient.id == Event.recipient_id)
            .where(Event.recipient_id.in_(chunk), Event.type == Recipient.status)
            .order_by(Event.occurred_at, Event.id)
        )
        for event, _status in rows:
            assert event.recipient_id is not None
            result[event.recipient_id] = event
    return result
