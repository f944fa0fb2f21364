"""The webhook inbox: no authenticated webhook request is lost.

A request goes: the adapter verifies and parses it (:mod:`.views`) -> :func:`store` commits
its raw body (and a few headers) to ``maildelivery_webhook_inbox`` in the package's own
session -> :func:`apply` hands its events to
:func:`~flask_maildelivery.ingest.ingest_events` and marks the row ``applied``, or
``failed`` with the error and the attempt count. The provider has its 2xx as soon as the
row is stored: a failure while applying leaves the row for :func:`retry`
(``flask maildelivery inbox retry``).

Applying twice stores nothing twice: events are unique per (provider, provider event id),
so a retried row (or one applied by two processes at once) changes nothing the second time.

A single-use token (Mailgun) is stored with the row, in the same transaction, under a
unique constraint: its second use, in any process sharing the database, is refused
(:class:`TokenReused`) and nothing of it is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..context import get_state
from ..context import session as package_session
from ..events import NormalizedEvent
from ..ingest import IngestReport, ingest_events
from ..models import WebhookInbox, WebhookToken, utcnow
from ..vocabulary import InboxStatus
from .base import WebhookAdapter, WebhookRequest

logger = logging.getLogger("flask_maildelivery")

inbox_t: sa.Table = WebhookInbox.__table__  # type: ignore[assignment]
token_t: sa.Table = WebhookToken.__table__  # type: ignore[assignment]

#: Longest error kept on a row.
MAX_ERROR = 2000


class TokenReused(Exception):
    """The request's single-use token was stored already: a replay (nothing was stored)."""


@dataclass(frozen=True)
class ApplyOutcome:
    """What applying one inbox row did: the ingest report, or the error."""

    inbox_id: int
    report: IngestReport | None = None
    error: str | None = None

    @property
    def applied(self) -> bool:
        """Whether the row's events are applied."""
        return self.report is not None


def kept_headers(adapter: WebhookAdapter, request: WebhookRequest) -> dict[str, str]:
    """The headers of ``request`` worth keeping: the adapter's short allowlist (never
    ``Authorization``)."""
    names = {name.lower() for name in adapter.stored_headers} - {"authorization"}
    return {name: value for name in sorted(names) if (value := request.header(name)) is not None}


def store(app: Flask, adapter: WebhookAdapter, request: WebhookRequest) -> int:
    """Commit an authenticated ``request`` to the inbox (``pending``), with its single-use
    token if the provider has one; return the row's id.

    :raises TokenReused: the token was stored already; nothing is stored.
    :raises sqlalchemy.exc.SQLAlchemyError: the database failed; nothing is stored.
    """
    session = package_session(app)
    try:
        result = session.execute(
            sa.insert(inbox_t).values(
                provider=adapter.provider,
                received_at=request.received_at,
                headers=kept_headers(adapter, request),
                body=request.body,
                status=InboxStatus.PENDING,
                attempts=0,
            )
        )
        inbox_id = result.inserted_primary_key[0]  # type: ignore[attr-defined]
        single_use = adapter.single_use_token(request)
        if single_use is not None:
            token, expires_at = single_use
            try:
                session.execute(
                    sa.insert(token_t).values(
                        provider=adapter.provider, token=token[:255], expires_at=expires_at
                    )
                )
            except IntegrityError:
                raise TokenReused(
                    f"the {adapter.provider} token was used already (a replay)"
                ) from None
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return int(inbox_id)


def apply(
    app: Flask, inbox_id: int, events: Sequence[NormalizedEvent] | None = None
) -> ApplyOutcome:
    """Apply the events of inbox row ``inbox_id`` and mark it ``applied``; on any failure,
    mark it ``failed`` with the error (never raises for a failed apply).

    :param events: the row's events, already parsed (the request that stored it); ``None``:
        parse the stored body again with the provider's adapter.
    :raises LookupError: there is no such row.
    """
    session = package_session(app)
    try:
        if events is None:
            events = _parse_stored(app, inbox_id)
        report = ingest_events(events, app)
    except LookupError:
        raise
    except Exception as exc:
        # the request is safely stored: keep the error on the row, let a retry apply it
        session.rollback()
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        logger.warning("webhook inbox row %s could not be applied: %s", inbox_id, error)
        _mark(app, inbox_id, status=InboxStatus.FAILED, error=error, applied_at=None)
        return ApplyOutcome(inbox_id, error=error)
    _mark(app, inbox_id, status=InboxStatus.APPLIED, error=None, applied_at=utcnow())
    return ApplyOutcome(inbox_id, report=report)


def _parse_stored(app: Flask, inbox_id: int) -> list[NormalizedEvent]:
    """The events of a stored row, parsed again by its provider's adapter."""
    session = package_session(app)
    row = session.execute(
        sa.select(
            inbox_t.c.provider, inbox_t.c.received_at, inbox_t.c.headers, inbox_t.c.body
        ).where(inbox_t.c.id == inbox_id)
    ).one_or_none()
    session.rollback()  # end the read: ingest begins its own transaction
    if row is None:
        raise LookupError(f"no webhook inbox row {inbox_id}")
    provider, received_at, headers, body = row
    adapter: WebhookAdapter | None = get_state(app).webhook_adapters.get(provider)
    if adapter is None:
        raise ValueError(f"provider {provider!r} has no webhook adapter")
    request = WebhookRequest(body=bytes(body), headers=dict(headers), received_at=received_at)
    return adapter.parse(request)


def _mark(
    app: Flask,
    inbox_id: int,
    *,
    status: InboxStatus,
    error: str | None,
    applied_at: datetime | None,
) -> None:
    """Record the outcome of one apply on the row (its own transaction). If even that
    fails, the row stays ``pending``, which ``inbox list`` and ``inbox retry`` show too."""
    values: dict[str, object] = {
        "status": status,
        "error": error,
        "attempts": inbox_t.c.attempts + 1,
    }
    if applied_at is not None:
        values["applied_at"] = applied_at
    try:
        # a connection of its own: a commit of the package's session would expire the
        # objects that the signals just handed to their receivers
        with get_state(app).db.engine.begin() as connection:
            connection.execute(sa.update(inbox_t).where(inbox_t.c.id == inbox_id).values(**values))
    except SQLAlchemyError:
        logger.exception("could not record the outcome of webhook inbox row %s", inbox_id)


@dataclass(frozen=True)
class InboxEntry:
    """One stored request as ``inbox list`` shows it (the body left out)."""

    id: int
    provider: str
    status: InboxStatus
    received_at: datetime
    attempts: int
    error: str | None


def unsettled(app: Flask) -> list[InboxEntry]:
    """The ``failed`` and ``pending`` rows, oldest first."""
    session = package_session(app)
    rows = session.execute(
        sa.select(
            inbox_t.c.id,
            inbox_t.c.provider,
            inbox_t.c.status,
            inbox_t.c.received_at,
            inbox_t.c.attempts,
            inbox_t.c.error,
        )
        .where(inbox_t.c.status.in_([InboxStatus.FAILED, InboxStatus.PENDING]))
        .order_by(inbox_t.c.id)
    ).all()
    session.rollback()
    return [InboxEntry(*row) for row in rows]


def failed_count(app: Flask | None = None) -> int:
    """How many rows are ``failed`` (the log page's warning); ``app``: the current one by
    default."""
    session = package_session(app)
    count = session.scalar(
        sa.select(sa.func.count())
        .select_from(inbox_t)
        .where(inbox_t.c.status == InboxStatus.FAILED)
    )
    session.rollback()
    return int(count or 0)


def retry(app: Flask, inbox_id: int | None = None) -> list[ApplyOutcome]:
    """Apply again row ``inbox_id`` (``None``: every ``failed`` and ``pending`` row).

    :raises LookupError: there is no such row, or it is applied already.
    """
    if inbox_id is None:
        return [apply(app, entry.id) for entry in unsettled(app)]
    session = package_session(app)
    status = session.scalar(sa.select(inbox_t.c.status).where(inbox_t.c.id == inbox_id))
    session.rollback()
    if status is None:
        raise LookupError(f"no webhook inbox row {inbox_id}")
    if status == InboxStatus.APPLIED:
        raise LookupError(f"webhook inbox row {inbox_id} is applied already")
    return [apply(app, inbox_id)]


def purge(app: Flask, older_than: datetime, *, include_failed: bool = False) -> int:
    """Delete ``applied`` rows received before ``older_than`` (with ``include_failed``, the
    ``failed`` ones too: they are otherwise kept until retried), and every single-use token
    whose window has passed. Returns the number of rows deleted."""
    statuses = [InboxStatus.APPLIED, *([InboxStatus.FAILED] if include_failed else [])]
    session = package_session(app)
    try:
        result = session.execute(
            sa.delete(inbox_t).where(
                inbox_t.c.status.in_(statuses), inbox_t.c.received_at < older_than
            )
        )
        session.execute(sa.delete(token_t).where(token_t.c.expires_at < utcnow()))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return int(result.rowcount)  # type: ignore[attr-defined]
