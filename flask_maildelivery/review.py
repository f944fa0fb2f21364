"""Reviewing an email: someone looked at a failed email and dealt with it, so it leaves the
attention list (it stays in "show all" with a "Reviewed" marker).

Written through the package's own session, never the host's; the ``email_reviewed`` signal
is sent after the commit, once per real change.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app

from . import signals
from .context import AppState
from .models import Email, utcnow

_email: sa.Table = cast(sa.Table, Email.__table__)


def review_email(state: AppState, email_id: int, user: Any, *, undo: bool = False) -> Email:
    """Mark email ``email_id`` reviewed by ``user`` (``reviewed_at`` now, ``reviewed_by``
    the user's ``sent_by`` value), or take the review back with ``undo=True``.

    Reviewing an email reviewed already keeps its first review; undoing a review that does
    not exist changes nothing. Either way no signal is sent.

    :raises LookupError: no such email.
    """
    session = state.sessions()
    email = session.get(Email, email_id)
    if email is None:
        raise LookupError(f"no email {email_id}")
    if undo:
        statement = (
            sa.update(_email)
            .where(_email.c.id == email_id, _email.c.reviewed_at.is_not(None))
            .values(reviewed_at=None, reviewed_by=None)
        )
    else:
        statement = (
            sa.update(_email)
            .where(_email.c.id == email_id, _email.c.reviewed_at.is_(None))
            .values(reviewed_at=utcnow(), reviewed_by=state.callbacks.sent_by(user))
        )
    try:
        # the condition makes the change atomic: of two concurrent reviews, one changes it
        changed = cast(sa.CursorResult[Any], session.execute(statement)).rowcount == 1
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(email)  # as committed, for the receivers and the caller
    if changed:
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.send_safely(signals.email_reviewed, app, email=email, user=user, reviewed=not undo)
    return email
