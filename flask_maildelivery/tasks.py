"""Celery tasks, registered on the host's own Celery app by
:meth:`~flask_maildelivery.MailDelivery.init_celery` (``pip install
flask-maildelivery[celery]``); their names start with ``maildelivery.``.

* ``maildelivery.send_email(email_id)``: claims a queued send and hands it over; a
  transient failure is deferred (a ``deferred`` event) and the task is sent again for the
  next attempt, after the backoff.
* ``maildelivery.apply_inbox(inbox_id)``: applies the events of a stored webhook request.
* ``maildelivery.retry_due()``: periodic: hands lost queued sends to workers again and logs
  sends stuck in ``sending``.
* ``maildelivery.purge()``: periodic: the retention purge (``flask maildelivery purge``).

Tasks run in the Flask app context. Flask's documented Celery pattern (a ``Task`` class
whose ``__call__`` pushes ``app.app_context()``) gives it; otherwise pass ``app`` to
``init_celery`` and the tasks push that app's context themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.signals import worker_shutdown
from flask import Flask, current_app, has_app_context

from .bounces.mailbox import fetch_bounces
from .context import TaskQueue, config_value, get_state
from .maintenance import purge, retention_cutoff
from .sending.retry import send_due, send_queued
from .webhooks import inbox

logger = logging.getLogger("flask_maildelivery")

SEND_EMAIL = "maildelivery.send_email"
APPLY_INBOX = "maildelivery.apply_inbox"
RETRY_DUE = "maildelivery.retry_due"
PURGE = "maildelivery.purge"
FETCH_BOUNCES = "maildelivery.fetch_bounces"


def beat_schedule(
    *,
    retry_every: float = 60.0,
    purge_every: float = 86400.0,
    bounces_every: float | None = None,
) -> dict[str, Any]:
    """A Celery beat schedule for the periodic tasks, to merge into the host's own::

        celery_app.conf.beat_schedule = {**celery_app.conf.beat_schedule, **beat_schedule()}

    ``bounces_every``: also read the bounce mailbox this often (seconds), for an app with
    ``MAILDELIVERY_BOUNCE_MAILBOX``. The package never sets it itself: the host decides what
    runs when.
    """
    schedule = {
        RETRY_DUE: {"task": RETRY_DUE, "schedule": retry_every},
        PURGE: {"task": PURGE, "schedule": purge_every},
    }
    if bounces_every is not None:
        schedule[FETCH_BOUNCES] = {"task": FETCH_BOUNCES, "schedule": bounces_every}
    return schedule


@contextmanager
def _app_context(app: Flask | None) -> Iterator[Flask]:
    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        return
    if app is None:
        raise RuntimeError(
            "a maildelivery task ran outside a Flask app context: give the Celery app a Task "
            "class that pushes app.app_context() (Flask's Celery pattern), or call "
            "mail_delivery.init_celery(celery_app, app=app)"
        )
    with app.app_context():
        yield app


@dataclass(frozen=True)
class CeleryTasks:
    """The tasks registered on a Celery app (Celery ``Task`` objects)."""

    send_email: Any
    apply_inbox: Any
    retry_due: Any
    purge: Any


def register_tasks(celery_app: Any, queue: TaskQueue, app: Flask | None = None) -> CeleryTasks:
    """Register the package's tasks on ``celery_app`` (that app only: not shared with
    Celery apps created later) and point ``queue`` at them."""

    # acks_late: a worker that dies before the end leaves the task to another worker; the
    # claim in the database keeps that from sending twice
    @celery_app.task(name=SEND_EMAIL, shared=False, bind=True, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def send_email(self: Any, email_id: int) -> str:
        with _app_context(app) as flask_app:
            # a worker sends message after message: one SMTP connection for all of them
            get_state(flask_app).transport.keep_connections()
            attempt = send_queued(flask_app, email_id)
        if attempt.outcome is not None:
            return attempt.outcome.value
        if attempt.due_at is not None:
            # delivered before its time (a scheduled send, an eta rounded): come back then
            self.apply_async((email_id,), eta=attempt.due_at)
            return "waiting"
        return "not claimed"

    @celery_app.task(name=APPLY_INBOX, shared=False, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def apply_inbox(inbox_id: int) -> str:
        with _app_context(app) as flask_app:
            outcome = inbox.apply(flask_app, inbox_id)
        return "applied" if outcome.applied else "failed"

    @celery_app.task(name=RETRY_DUE, shared=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def retry_due() -> dict[str, int]:
        with _app_context(app) as flask_app:
            report = send_due(flask_app)
        for stuck in report.stuck:
            logger.warning(
                "email %s has been sending since %s (attempt %s): its worker may have "
                "stopped mid-send, so it may or may not have gone out; check, then "
                "flask maildelivery retry --release %s sends it again",
                stuck.email_id,
                stuck.claimed_at,
                stuck.attempts,
                stuck.email_id,
            )
        return {"enqueued": len(report.enqueued), "stuck": len(report.stuck)}

    @celery_app.task(name=PURGE, shared=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def purge_records() -> dict[str, int]:
        with _app_context(app) as flask_app:
            days = config_value("RETENTION_DAYS", flask_app)
            emails = 0 if days is None else purge(flask_app, retention_cutoff(int(days)))
            inbox_days = int(config_value("INBOX_RETENTION_DAYS", flask_app))
            rows = inbox.purge(flask_app, retention_cutoff(inbox_days))
        return {"emails": emails, "inbox": rows}

    @celery_app.task(name=FETCH_BOUNCES, shared=False, ignore_result=True)  # type: ignore[untyped-decorator]
    def fetch_bounce_mailbox() -> dict[str, int]:
        with _app_context(app) as flask_app:
            if config_value("BOUNCE_MAILBOX", flask_app) is None:
                logger.warning(
                    "maildelivery.fetch_bounces ran, but MAILDELIVERY_BOUNCE_MAILBOX is not set"
                )
                return {}
            report = fetch_bounces(flask_app)
        for message, error in report.failed:
            logger.warning("bounce message %s could not be read: %s", message, error)
        return report.counts()

    def enqueue_send(email_id: int, eta: datetime | None) -> None:
        send_email.apply_async((email_id,), eta=eta)

    def enqueue_inbox(inbox_id: int) -> None:
        apply_inbox.apply_async((inbox_id,))

    if app is not None:
        # the connections the worker's threads kept are closed when the worker stops
        transport = get_state(app).transport
        worker_shutdown.connect(lambda **kwargs: transport.close(), weak=False)

    queue.enqueue_send = enqueue_send
    queue.enqueue_inbox = enqueue_inbox
    return CeleryTasks(send_email, apply_inbox, retry_due, purge_records)
