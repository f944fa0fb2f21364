"""Housekeeping on the stored records: retention purge and summary figures."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask

from . import rollup
from .context import session as package_session
from .models import Email, Event, QueuedSend, Recipient, utcnow

#: Emails deleted per statement, so a purge never holds a huge lock.
PURGE_BATCH = 1000


def purge(app: Flask, older_than: datetime, *, bodies_only: bool = False) -> int:
    """Delete emails created before ``older_than`` with their recipients and events (or,
    with ``bodies_only``, drop only their text and HTML bodies). Returns the number of emails
    purged. Works in batches of :data:`PURGE_BATCH`, each its own transaction."""
    session = package_session(app)
    total = 0
    if bodies_only:
        result = session.execute(
            sa.update(Email)
            .where(
                Email.created_at < older_than,
                sa.or_(Email.text_body.is_not(None), Email.html_body.is_not(None)),
            )
            .values(text_body=None, html_body=None)
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]
    while True:
        ids = list(
            session.scalars(
                sa.select(Email.id)
                .where(Email.created_at < older_than)
                .order_by(Email.id)
                .limit(PURGE_BATCH)
            )
        )
        if not ids:
            return total
        rollup.count_deleted(session, ids)
        # explicit deletes: SQLite enforces ON DELETE CASCADE only with a pragma
        session.execute(sa.delete(Event).where(Event.email_id.in_(ids)))
        session.execute(sa.delete(QueuedSend).where(QueuedSend.email_id.in_(ids)))
        session.execute(sa.delete(Recipient).where(Recipient.email_id.in_(ids)))
        session.execute(
            sa.update(Email).where(Email.resent_from_id.in_(ids)).values(resent_from_id=None)
        )
        session.execute(sa.delete(Email).where(Email.id.in_(ids)))
        session.commit()
        total += len(ids)


def rebuild_rollups(app: Flask) -> tuple[int, int, int]:
    """Count the overview's hourly rollups again from the emails and recipients, in one
    transaction (:func:`.rollup.rebuild`); returns the rows written (outcomes, domains,
    failures)."""
    session = package_session(app)
    try:
        written = rollup.rebuild(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return written


def retention_cutoff(days: int) -> datetime:
    """The creation time before which records are older than ``days`` days."""
    return utcnow() - timedelta(days=days)
