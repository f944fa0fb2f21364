"""The overview's hourly counts (:class:`.models.HourlyOutcome`, :class:`.models.HourlyDomain`,
:class:`.models.HourlyFailure`), kept exact by every write that changes what they count, in
that write's own transaction.

An email counts once, in the UTC hour of its ``sent_at``, under its current result, status
and transport; each of its recipients counts once in that hour under its address's domain,
and once more among the failures of that domain when it failed. So:

* the send path adds a new email and its recipients (:func:`count_new_email`);
* the ingest moves each email whose result or status it changed from its old bucket to its
  new one, and counts the recipients that failed (:func:`count_changes`), once the batch is
  applied, just before its commit;
* a queued send handed over later moves the email to the hour it really went out
  (:func:`move_sent_at`);
* the purge takes the deleted emails away (:func:`count_deleted`);
* :func:`rebuild` counts everything again from the tables (``flask maildelivery stats
  --rebuild``).

Every change is an ``UPDATE ... SET n = n + :delta`` upsert of the buckets it touches, the
deltas of a transaction summed first (:class:`Deltas`) and written in key order after the
transaction's row locks on the emails: two writers touching the same buckets lock them in
one order, and each reads an email's bucket under that email's lock, so concurrent writers
neither deadlock on the buckets nor lose a change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from .batches import chunks
from .models import Email, HourlyDomain, HourlyFailure, HourlyOutcome, Recipient
from .state import FAILURE_STATUSES
from .suppression import tenant_key

email_t: sa.Table = Email.__table__  # type: ignore[assignment]
recipient_t: sa.Table = Recipient.__table__  # type: ignore[assignment]
hourly_t: sa.Table = HourlyOutcome.__table__  # type: ignore[assignment]
domain_t: sa.Table = HourlyDomain.__table__  # type: ignore[assignment]
failure_t: sa.Table = HourlyFailure.__table__  # type: ignore[assignment]

#: ``(tenant_key, hour, result, status, transport)``
OutcomeKey = tuple[str, datetime, str, str, str]
#: ``(tenant_key, domain, hour)``
DomainKey = tuple[str, str, datetime]
#: ``(tenant_key, hour, domain)``
FailureKey = tuple[str, datetime, str]
#: ``(email_id, old result, old status, new result, new status)``
OutcomeChange = tuple[int, str, str, str, str]
#: ``(email_id, the recipient's address key, newly failed, the failure's time, its
#: reason)``: a recipient that failed, or whose failure changed (a later bounce)
FailureChange = tuple[int, str, bool, datetime | None, str | None]

HOUR = timedelta(hours=1)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour of ``moment`` (an aware datetime), in UTC."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def domain_of_address(address_key: str) -> str:
    """The part of an address after its last ``@``, as :class:`domain_of` cuts it."""
    return address_key.rpartition("@")[2]


class domain_of(FunctionElement[str]):
    """The part of an address after its last ``@`` (lower-cased addresses: ``address_key``).

    Each database spells it its own way; SQLAlchemy has no portable function for it.
    """

    type = sa.String()
    inherit_cache = True


@compiles(domain_of)
def _domain_of_default(element: domain_of, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite: substr after instr finds the first '@'; an address_key holds one
    column = compiler.process(element.clauses, **kw)
    return f"substr({column}, instr({column}, '@') + 1)"


@compiles(domain_of, "postgresql")
def _domain_of_postgresql(element: domain_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"split_part({compiler.process(element.clauses, **kw)}, '@', -1)"


@compiles(domain_of, "mysql")
@compiles(domain_of, "mariadb")
def _domain_of_mysql(element: domain_of, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substring_index({compiler.process(element.clauses, **kw)}, '@', -1)"


def _hour_expression(dialect: str, column: Any) -> Any:
    """``column`` (a stored UTC timestamp) cut to its hour, stored as the database stores a
    bound hour (SQLite keeps text: the same text as SQLAlchemy writes). SQLAlchemy has no
    portable truncation of a timestamp."""
    if dialect == "postgresql":
        return sa.func.date_trunc("hour", column)
    if dialect in ("mysql", "mariadb"):
        return sa.cast(sa.func.date_format(column, "%Y-%m-%d %H:00:00"), mysql.DATETIME(fsp=6))
    return sa.func.strftime("%Y-%m-%d %H:00:00.000000", column)


def _upsert(
    session: Session,
    table: sa.Table,
    rows: list[dict[str, Any]],
    changes: Callable[[Any], list[tuple[str, Any]]],
) -> None:
    """Insert ``rows``; where a row of the same key exists, set its columns as
    ``changes(new)`` says (``new``: the values of the row not inserted), in that order. One
    statement: SQLAlchemy has no portable upsert, each database's insert construct says it.
    MySQL/MariaDB assign left to right, a later assignment reading an earlier one's result:
    ``changes`` assigns a column only after the assignments that read it."""
    dialect = session.get_bind().dialect.name
    key = [c.name for c in table.primary_key.columns]
    statement: Any
    if dialect == "postgresql":
        pg = postgresql.insert(table).values(rows)
        statement = pg.on_conflict_do_update(index_elements=key, set_=dict(changes(pg.excluded)))
    elif dialect == "sqlite":
        lite = sqlite.insert(table).values(rows)
        statement = lite.on_conflict_do_update(
            index_elements=key, set_=dict(changes(lite.excluded))
        )
    elif dialect in ("mysql", "mariadb"):
        my = mysql.insert(table).values(rows)
        statement = my.on_duplicate_key_update(changes(my.inserted))
    else:
        raise RuntimeError(f"flask-maildelivery does not support the {dialect} database")
    session.execute(statement)


def _adding(table: sa.Table, column: str) -> Callable[[Any], list[tuple[str, Any]]]:
    def changes(new: Any) -> list[tuple[str, Any]]:
        return [(column, table.c[column] + new[column])]

    return changes


def _failure_changes(new: Any) -> list[tuple[str, Any]]:
    # the later failure wins; a row that brings none (failures taken away) keeps the one there
    later = sa.and_(
        new.last_failure_at.is_not(None),
        sa.or_(
            failure_t.c.last_failure_at.is_(None),
            new.last_failure_at > failure_t.c.last_failure_at,
        ),
    )
    return [
        ("failures", failure_t.c.failures + new.failures),
        ("last_reason", sa.case((later, new.last_reason), else_=failure_t.c.last_reason)),
        (
            "last_failure_at",
            sa.case((later, new.last_failure_at), else_=failure_t.c.last_failure_at),
        ),
    ]


def _write(
    session: Session,
    table: sa.Table,
    rows: list[dict[str, Any]],
    changes: Callable[[Any], list[tuple[str, Any]]],
) -> None:
    for chunk in chunks(rows):
        _upsert(session, table, list(chunk), changes)


@dataclass
class Deltas:
    """What one transaction changes in the rollups, summed by bucket (negative: taken away),
    written by :meth:`write` at its end."""

    outcomes: Counter[OutcomeKey] = field(default_factory=Counter)
    domains: Counter[DomainKey] = field(default_factory=Counter)
    #: failures added by bucket, with the latest failure brought (``None``: none)
    failures: dict[FailureKey, tuple[int, datetime | None, str | None]] = field(
        default_factory=dict
    )

    def fail(self, key: FailureKey, added: int, at: datetime | None, reason: str | None) -> None:
        """Add ``added`` failures to bucket ``key`` and a failure at ``at`` for ``reason``."""
        count, last_at, last_reason = self.failures.get(key, (0, None, None))
        if at is not None and (last_at is None or at > last_at):
            last_at, last_reason = at, reason
        self.failures[key] = (count + added, last_at, last_reason)

    def write(self, session: Session) -> None:
        """Apply the deltas in the caller's transaction: each table in key order."""
        outcome_rows = [
            dict(zip(("tenant_key", "hour", "result", "status", "transport"), key, strict=True))
            | {"emails": n}
            for key, n in sorted(self.outcomes.items())
            if n
        ]
        _write(session, hourly_t, outcome_rows, _adding(hourly_t, "emails"))
        domain_rows = [
            {"tenant_key": key[0], "domain": key[1], "hour": key[2], "recipients": n}
            for key, n in sorted(self.domains.items())
            if n
        ]
        _write(session, domain_t, domain_rows, _adding(domain_t, "recipients"))
        failure_rows = [
            {
                "tenant_key": key[0],
                "hour": key[1],
                "domain": key[2],
                "failures": n,
                "last_failure_at": at,
                "last_reason": reason,
            }
            for key, (n, at, reason) in sorted(self.failures.items())
            if n or at is not None
        ]
        _write(session, failure_t, failure_rows, _failure_changes)


def _outcome_key(
    tenant_id: str | None, sent_at: datetime, result: str, status: str, transport: str | None
) -> OutcomeKey:
    return (tenant_key(tenant_id), hour_of(sent_at), str(result), str(status), transport or "")


def count_new_email(
    session: Session, values: Mapping[str, Any], address_keys: Sequence[str]
) -> None:
    """Count a new email (its column ``values``, as inserted) and its recipients
    (``address_keys``, none failed yet), in the transaction that inserts them."""
    sent_at = values["sent_at"]
    if sent_at is None:
        return
    deltas = Deltas()
    outcome = _outcome_key(
        values["tenant_id"], sent_at, values["result"], values["status"], values["transport"]
    )
    deltas.outcomes[outcome] += 1
    for key in address_keys:
        deltas.domains[(outcome[0], domain_of_address(key), outcome[1])] += 1
    deltas.write(session)


# locking reads: the emails are locked by the caller already (or are locked here, in id
# order); MySQL/MariaDB's plain reads would see the snapshot of the transaction's first read
_EMAIL_BUCKETS = (
    sa.select(
        email_t.c.id,
        email_t.c.tenant_id,
        email_t.c.sent_at,
        email_t.c.result,
        email_t.c.status,
        email_t.c.transport,
    )
    .where(email_t.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(email_t.c.id)
    .with_for_update()
)
_RECIPIENTS = (
    sa.select(
        recipient_t.c.email_id,
        recipient_t.c.address_key,
        recipient_t.c.status,
        recipient_t.c.status_at,
        recipient_t.c.reason,
    )
    .where(recipient_t.c.email_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(recipient_t.c.id)
    .with_for_update()
)


class _Counted(NamedTuple):
    """What places an email in the rollups."""

    tenant_id: str | None
    sent_at: datetime | None
    result: str
    status: str
    transport: str | None


def _email_buckets(session: Session, email_ids: Iterable[int]) -> dict[int, _Counted]:
    """The emails ``email_ids`` as the rollups count them, locked (id order)."""
    ids = sorted(set(email_ids))
    found = {}
    for chunk in chunks(ids):
        for id_, *values in session.execute(_EMAIL_BUCKETS, {"ids": list(chunk)}):
            found[id_] = _Counted(*values)
    return found


def count_changes(
    session: Session,
    changes: Sequence[OutcomeChange],
    failures: Sequence[FailureChange] = (),
) -> None:
    """Move each email of ``changes`` (changes of its result or status, in the order they
    were made) from its old bucket to its new one, and count the recipients of
    ``failures``. The emails are locked by the caller's transaction (the ingest's
    id-ordered lock)."""
    if not changes and not failures:
        return
    emails = _email_buckets(session, [c[0] for c in changes] + [f[0] for f in failures])
    deltas = Deltas()
    for email_id, old_result, old_status, new_result, new_status in changes:
        row = emails.get(email_id)
        if row is None or row.sent_at is None:
            continue
        deltas.outcomes[
            _outcome_key(row.tenant_id, row.sent_at, old_result, old_status, row.transport)
        ] -= 1
        deltas.outcomes[
            _outcome_key(row.tenant_id, row.sent_at, new_result, new_status, row.transport)
        ] += 1
    for email_id, address_key, newly, at, reason in failures:
        row = emails.get(email_id)
        if row is None or row.sent_at is None:
            continue
        domain = domain_of_address(address_key)
        key = (tenant_key(row.tenant_id), hour_of(row.sent_at), domain)
        deltas.fail(key, 1 if newly else 0, at, reason)
    deltas.write(session)


def _count_recipients(
    session: Session, emails: Mapping[int, _Counted], deltas: Deltas, sign: int
) -> None:
    """Add (``sign`` 1) or take away (-1) the recipients of ``emails`` to ``deltas``."""
    ids = sorted(emails)
    for chunk in chunks(ids):
        rows = session.execute(_RECIPIENTS, {"ids": list(chunk)})
        for email_id, address_key, status, status_at, reason in rows:
            email = emails[email_id]
            if email.sent_at is None:
                continue
            tenant, hour = tenant_key(email.tenant_id), hour_of(email.sent_at)
            domain = domain_of_address(address_key)
            deltas.domains[(tenant, domain, hour)] += sign
            if status in FAILURE_STATUSES:
                # taken away, a failure leaves the latest one of its bucket as it was
                deltas.fail((tenant, hour, domain), sign, status_at if sign > 0 else None, reason)


def move_sent_at(session: Session, email: Email, sent_at: datetime) -> None:
    """Set ``email``'s ``sent_at`` (a queued send went out) and move it and its recipients
    to that hour, in the session's transaction (the caller commits)."""
    row = _email_buckets(session, [email.id]).get(email.id)
    session.execute(sa.update(email_t).where(email_t.c.id == email.id).values(sent_at=sent_at))
    set_committed_value(email, "sent_at", sent_at)
    if row is None:
        return
    deltas = Deltas()
    if row.sent_at is not None:
        deltas.outcomes[
            _outcome_key(row.tenant_id, row.sent_at, row.result, row.status, row.transport)
        ] -= 1
    deltas.outcomes[
        _outcome_key(row.tenant_id, sent_at, row.result, row.status, row.transport)
    ] += 1
    _count_recipients(session, {email.id: row}, deltas, -1)
    _count_recipients(session, {email.id: row._replace(sent_at=sent_at)}, deltas, 1)
    deltas.write(session)


def count_deleted(session: Session, email_ids: Sequence[int]) -> None:
    """Take the emails ``email_ids`` (about to be deleted in the session's transaction) and
    their recipients away from the rollups; locks the emails in id order."""
    emails = _email_buckets(session, email_ids)
    deltas = Deltas()
    for row in emails.values():
        if row.sent_at is not None:
            deltas.outcomes[
                _outcome_key(row.tenant_id, row.sent_at, row.result, row.status, row.transport)
            ] -= 1
    _count_recipients(session, emails, deltas, -1)
    deltas.write(session)


def _grouped_insert(session: Session, table: sa.Table, rows: Any, counted: dict[str, Any]) -> int:
    """``INSERT INTO table SELECT`` the columns of ``rows`` (a subquery) and the aggregates
    ``counted``, grouped by those columns (a subquery's columns: a bound parameter repeated
    in ``GROUP BY`` would be another parameter to PostgreSQL)."""
    keys = list(rows.c)
    statement = sa.insert(table).from_select(
        [*(c.name for c in keys), *counted],
        # in key order: a range of hours lies together in PostgreSQL's heap, as it does when
        # the rows are added hour after hour
        sa.select(*keys, *counted.values()).group_by(*keys).order_by(*keys),
    )
    session.execute(statement)
    return _rows(session, table)


def _rows(session: Session, table: sa.Table) -> int:
    # counted: a driver may not report the rows of an INSERT ... SELECT (psycopg gives -1)
    return int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def rebuild(session: Session) -> tuple[int, int, int]:
    """Count the rollups again from the emails and recipients, in the session's transaction
    (the caller commits): every bucket is deleted and inserted again, one grouped
    ``INSERT ... SELECT`` per table. Returns the numbers of rows written (outcomes,
    domains, failures).

    A change of an email committed meanwhile is neither lost nor counted twice: its writer
    moves the buckets after the rebuild's commit, from what the rebuild counted. PostgreSQL
    locks the tables against writes first (its ``DELETE`` would not wait for a bucket a
    writer is inserting), MySQL/MariaDB's ``DELETE`` locks their whole range, and SQLite
    has one writer.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # take the database's write lock before reading, as the ingest does
        session.execute(sa.update(email_t).where(sa.false()).values(id=email_t.c.id))
    elif dialect == "postgresql":
        # no portable table lock: EXCLUSIVE lets the pages read and makes writers wait
        names = ", ".join(t.name for t in (hourly_t, domain_t, failure_t))
        session.execute(sa.text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
    for table in (hourly_t, domain_t, failure_t):
        session.execute(sa.delete(table))
    tenant = sa.func.coalesce(email_t.c.tenant_id, "").label("tenant_key")
    hour_expression = _hour_expression(dialect, email_t.c.sent_at)
    domain_expression = domain_of(recipient_t.c.address_key)
    hour = hour_expression.label("hour")
    domain = domain_expression.label("domain")
    bucket = (email_t.c.tenant_id, hour_expression, domain_expression)
    emails = (
        sa.select(
            tenant,
            hour,
            email_t.c.result,
            email_t.c.status,
            sa.func.coalesce(email_t.c.transport, "").label("transport"),
        )
        .where(email_t.c.sent_at.is_not(None))
        .subquery()
    )
    outcomes = _grouped_insert(session, hourly_t, emails, {"emails": sa.func.count()})
    recipients = (
        sa.select(tenant, domain, hour)
        .join(email_t, email_t.c.id == recipient_t.c.email_id)
        .where(email_t.c.sent_at.is_not(None))
        .subquery()
    )
    domains = _grouped_insert(session, domain_t, recipients, {"recipients": sa.func.count()})
    failed = (
        sa.select(
            tenant,
            hour,
            domain,
            recipient_t.c.status_at,
            recipient_t.c.reason,
            sa.func.row_number()
            .over(
                partition_by=bucket,
                order_by=(recipient_t.c.status_at.desc(), recipient_t.c.id.desc()),
            )
            .label("position"),
            sa.func.count().over(partition_by=bucket).label("n"),
        )
        .join(email_t, email_t.c.id == recipient_t.c.email_id)
        .where(
            email_t.c.sent_at.is_not(None),
            recipient_t.c.status.in_(sorted(FAILURE_STATUSES)),
        )
        .subquery()
    )
    latest = (
        sa.select(
            failed.c.tenant_key,
            failed.c.hour,
            failed.c.domain,
            failed.c.n,
            failed.c.status_at,
            failed.c.reason,
        )
        .where(failed.c.position == 1)
        .order_by(failed.c.tenant_key, failed.c.hour, failed.c.domain)
    )
    session.execute(
        sa.insert(failure_t).from_select(
            ["tenant_key", "hour", "domain", "failures", "last_failure_at", "last_reason"], latest
        )
    )
    return outcomes, domains, _rows(session, failure_t)
