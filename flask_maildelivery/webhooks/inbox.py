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

One unusable event never blocks its batch (:func:`parse_usable`): when a batch (a JSON
array, or the provider's own wrapping: :meth:`.WebhookAdapter.batch_items`) does not parse
as a whole, its items are parsed one by one; the usable ones are
applied, and each unusable one is kept as a ``failed`` row of its own, with its error, which
the log page counts and ``inbox retry`` tries again (once the adapter understands it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from .base import MalformedPayload, WebhookAdapter, WebhookRequest

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


@dataclass(frozen=True)
class ParsedRequest:
    """The events of a request that its adapter could parse, and its unusable items."""

    events: list[NormalizedEvent]
    #: ``(body, error)`` of each item of a batch that did not parse: the item alone, as a
    #: one-item batch the adapter parses again on a retry, and why it did not parse.
    unusable: list[tuple[bytes, str]] = field(default_factory=list)


def parse_usable(adapter: WebhookAdapter, request: WebhookRequest) -> ParsedRequest:
    """The events of a verified ``request``; when a batch does not parse as a whole, the
    events of its items that do, the others set aside (:attr:`ParsedRequest.unusable`).

    :raises MalformedPayload: the body is not a batch of several items, or none of its
        items parses: the request as a whole is malformed (a 400; nothing is stored).
    :raises AuthenticationFailed: from the adapter (an event's own time checked).
    """
    try:
        return ParsedRequest(adapter.parse(request))
    except MalformedPayload as whole:
        items = adapter.batch_items(request)
        if len(items) < 2:
            raise
        events: list[NormalizedEvent] = []
        unusable: list[tuple[bytes, str]] = []
        for body in items:
            alone = WebhookRequest(
                body=body, headers=request.headers, received_at=request.received_at
            )
            try:
                events.extend(adapter.parse(alone))
            except MalformedPayload as exc:
                unusable.append((body, _error_text(exc)))
        if len(unusable) == len(items):
            raise whole from None
        return ParsedRequest(events, unusable)


def _error_text(exc: MalformedPayload) -> str:
    """``exc`` with the fields it names, as kept on an inbox row."""
    text = str(exc)
    if exc.details is not None:
        text += ": " + json.dumps(exc.details, default=str, sort_keys=True)
    return text[:MAX_ERROR]


def kept_headers(adapter: WebhookAdapter, request: WebhookRequest) -> dict[str, str]:
    """The headers of ``request`` worth keeping: the adapter's short allowlist (never
    ``Authorization``)."""
    names = {name.lower() for name in adapter.stored_headers} - {"authorization"}
    return {name: value for name in sorted(names) if (value := request.header(name)) is not None}


def store(
    app: Flask,
    adapter: WebhookAdapter,
    request: WebhookRequest,
    unusable: Sequence[tuple[bytes, str]] = (),
) -> int:
    """Commit an authenticated ``request`` to the inbox (``pending``), with its single-use
    token if the provider has one, and its ``unusable`` items (:func:`parse_usable`), each
    a ``failed`` row with its error; return the request's row id.

    :raises TokenReused: the token was stored already; nothing is stored.
    :raises sqlalchemy.exc.SQLAlchemyError: the database failed; nothing is stored.
    """
    session = package_session(app)
    row = {
        "provider": adapter.provider,
        "received_at": request.received_at,
        "headers": kept_headers(adapter, request),
        "attempts": 0,
    }
    try:
        result = session.execute(
            sa.insert(inbox_t).values(**row, body=request.body, status=InboxStatus.PENDING)
        )
        inbox_id = result.inserted_primary_key[0]  # type: ignore[attr-defined]
        if unusable:
            session.execute(
                sa.insert(inbox_t),
                [
                    {**row, "body": body, "status": InboxStatus.FAILED, "error": error}
                    for body, error in unusable
                ],
            )
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
    applied = (
        sa.update(inbox_t)
        .where(inbox_t.c.id == inbox_id)
        .values(
            status=InboxStatus.APPLIED,
            error=None,
            attempts=inbox_t.c.attempts + 1,
            applied_at=utcnow(),
        )
    )
    try:
        if events is None:
            events = _parse_stored(app, inbox_id)
        # the row is marked applied in the transaction that stores its events: both or
        # neither are committed
        report = ingest_events(events, app, then=lambda s: s.execute(applied))
    except LookupError:
        raise
    except Exception as exc:
        # the request is safely stored: keep the error on the row, let a retry apply it
        session.rollback()
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        logger.warning("webhook inbox row %s could not be applied: %s", inbox_id, error)
        _mark_failed(app, inbox_id, error)
        return ApplyOutcome(inbox_id, error=error)
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
    # the request's unusable items were kept aside when it was stored: apply the others
    return parse_usable(adapter, request).events


def _mark_failed(app: Flask, inbox_id: int, error: str) -> None:
    """Record a failed apply on the row (its own transaction). If even that fails, the row
    stays as it was (``pending``), which ``inbox list`` and ``inbox retry`` show too."""
    session = package_session(app)
    try:
        session.execute(
            sa.update(inbox_t)
            .where(inbox_t.c.id == inbox_id)
            .values(status=InboxStatus.FAILED, error=error, attempts=inbox_t.c.attempts + 1)
        )
        session.commit()
    except SQLAlchemyError:
        session.rollback()
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
