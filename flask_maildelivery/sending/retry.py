"""Sending what the send queue holds: one queued send (a Celery task's work), and the due
ones (``flask maildelivery retry``, the periodic ``maildelivery.retry_due`` task).

Each send is claimed first (:func:`.queue.claim`), so a task delivered twice, two workers,
or a worker and the retry command never hand one message over twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask

from ..context import config_value, get_state
from ..models import Email, utcnow
from .hook import Outcome, enqueue, hand_over
from .queue import StuckSend, claim, due_sends, release, stuck_sends, waiting_until

#: Sends handled by one run of :func:`send_due`, at most.
RETRY_BATCH = 1000


@dataclass(frozen=True)
class QueuedAttempt:
    """What :func:`send_queued` did with one send: its :class:`~.hook.Outcome`, or
    ``None`` when it was not this caller's to send (``due_at`` says when it is due, if it
    is waiting)."""

    email_id: int
    outcome: Outcome | None
    due_at: datetime | None = None


def send_queued(app: Flask, email_id: int) -> QueuedAttempt:
    """Claim the queued send of email ``email_id`` and hand it to the transport.

    Nothing is sent when the send is not waiting (sent, being sent, or gone) or not due
    yet; the answer then says so.
    """
    state = get_state(app)
    session = state.sessions()
    claimed = claim(session, email_id)
    if claimed is None:
        return QueuedAttempt(email_id, None, waiting_until(session, email_id))
    email = session.get(Email, email_id)
    if email is None:  # deleted since (the queue row goes with it)
        return QueuedAttempt(email_id, None)
    outcome = hand_over(app, state, email, claimed.message, attempt=claimed.attempt, queued=True)
    return QueuedAttempt(email_id, outcome)


@dataclass
class RetryReport:
    """What one run of :func:`send_due` did."""

    #: The sends attempted here (no task queue), with their outcome.
    attempts: list[QueuedAttempt] = field(default_factory=list)
    #: The sends handed to workers (Celery).
    enqueued: list[int] = field(default_factory=list)
    #: Sends claimed long ago and neither sent nor failed.
    stuck: list[StuckSend] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        """How many attempts came to ``outcome``."""
        return sum(1 for a in self.attempts if a.outcome is outcome)


def send_due(app: Flask, *, limit: int = RETRY_BATCH) -> RetryReport:
    """Send the queued sends that are due: retries and scheduled sends, and queued sends
    whose task was lost (still waiting ``MAILDELIVERY_QUEUE_TIMEOUT`` seconds past their
    time). With Celery they are handed to workers, else sent here, one by one. Sends stuck
    in ``sending`` that long are reported, never sent again (see :func:`release_stuck`)."""
    state = get_state(app)
    session = state.sessions()
    now = utcnow()
    timeout = timedelta(seconds=float(config_value("QUEUE_TIMEOUT", app)))
    report = RetryReport(stuck=stuck_sends(session, now - timeout))
    if config_value("QUEUE", app) == "celery":
        # a waiting send has its task (with its eta) in the broker: only one whose time
        # passed long ago lost it
        for email_id in due_sends(session, now - timeout, limit):
            enqueue(state, email_id, None)
            report.enqueued.append(email_id)
        return report
    for email_id in due_sends(session, now, limit):
        report.attempts.append(send_queued(app, email_id))
    return report


def release_stuck(app: Flask, email_ids: Sequence[int]) -> list[int]:
    """Put sends stuck in ``sending`` back in the queue, due now, once an operator checked
    that they did not go out; return the ids released (with Celery, handed to workers)."""
    state = get_state(app)
    released = release(state.sessions(), email_ids)
    for email_id in released:
        enqueue(state, email_id, None)
    return released
