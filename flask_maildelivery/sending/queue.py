"""The send queue's rows: the message kept until it is handed over, the claim that makes a
send go out once, and the retry schedule.

A send that does not go to the transport in the request (queued for a Celery worker,
scheduled with ``send_at``, or waiting for a retry after a transient failure) has a row in
``maildelivery_send_queue`` (:class:`~flask_maildelivery.models.QueuedSend`) holding the
message as it goes out: the stored email keeps only the names of its attachments. Whoever
sends it first **claims** it: one conditional ``UPDATE`` moves the row from ``waiting`` to
``sending`` and only the caller whose update changed the row goes on. A task delivered
twice, or two workers racing, thus hand the message over once. A worker killed mid-send
leaves the row ``sending``: it is reported as stuck (:func:`stuck_sends`), never sent
again without an operator's word (:func:`release`).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..models import QueuedSend, utcnow
from ..transports import Address, Attachment, OutgoingMessage
from ..vocabulary import QueueState

queue_t: sa.Table = QueuedSend.__table__  # type: ignore[assignment]

#: The longest wait between two attempts.
MAX_BACKOFF = 6 * 3600.0


def backoff_delay(attempt: int, base: float, jitter: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first): ``base``
    doubled for each attempt before it, up to :data:`MAX_BACKOFF`, plus up to a quarter
    more at random, so that sends that failed together do not all come back together."""
    delay = min(float(base) * 2.0 ** max(attempt - 1, 0), MAX_BACKOFF)
    return min(delay * (1 + jitter() / 4), MAX_BACKOFF)


def _address(address: Address) -> list[str]:
    return [address.name, address.address]


def message_fields(message: OutgoingMessage) -> dict[str, Any]:
    """The structured fields of ``message`` as JSON (attachments base64-encoded): what a
    provider API transport reads besides the MIME message."""
    return {
        "public_id": message.public_id,
        "sender": _address(message.sender),
        "to": [_address(a) for a in message.to],
        "cc": [_address(a) for a in message.cc],
        "bcc": [_address(a) for a in message.bcc],
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "reply_to": message.reply_to,
        "attachments": [
            [a.filename, a.content_type, base64.b64encode(a.content).decode("ascii")]
            for a in message.attachments
        ],
        "headers": dict(message.headers),
        "metadata": dict(message.metadata),
        # the tagged (VERP) envelope sender of the bounce mailbox, if any
        "envelope_sender": message.envelope_sender,
    }


def stored_message(fields: dict[str, Any], mime: bytes) -> OutgoingMessage:
    """The message a queue row keeps, as the transport takes it."""
    message = OutgoingMessage(
        public_id=fields["public_id"],
        sender=Address(*fields["sender"]),
        to=[Address(*a) for a in fields["to"]],
        cc=[Address(*a) for a in fields["cc"]],
        bcc=[Address(*a) for a in fields["bcc"]],
        subject=fields["subject"],
        text=fields["text"],
        html=fields["html"],
        reply_to=fields["reply_to"],
        attachments=[
            Attachment(filename, base64.b64decode(content), content_type)
            for filename, content_type, content in fields["attachments"]
        ],
        headers=dict(fields["headers"]),
        metadata=dict(fields["metadata"]),
        envelope_sender=fields.get("envelope_sender"),
    )
    message.mime = message_from_bytes(bytes(mime))
    return message


def queue_row(
    email_id: int,
    message: OutgoingMessage,
    due_at: datetime,
    *,
    attempts: int = 0,
    last_error: str | None = None,
) -> dict[str, Any]:
    """The values of a new ``waiting`` row for ``message``."""
    return {
        "email_id": email_id,
        "state": QueueState.WAITING,
        "due_at": due_at,
        "attempts": attempts,
        "claimed_at": None,
        "last_error": last_error,
        "message": message_fields(message),
        "mime": message.mime.as_bytes(),
    }


@dataclass(frozen=True)
class Claimed:
    """A send this caller claimed: the attempt it is on and the message to hand over."""

    email_id: int
    attempt: int
    message: OutgoingMessage


def claim(session: Session, email_id: int, now: datetime | None = None) -> Claimed | None:
    """Claim the queued send of email ``email_id`` (``waiting`` and due -> ``sending``, one
    more attempt) and commit; ``None`` when it is not this caller's to send: sent or being
    sent already, not queued, or not due yet (see :func:`waiting_until`)."""
    now = now or utcnow()
    try:
        changed = session.execute(
            sa.update(queue_t)
            .where(
                queue_t.c.email_id == email_id,
                queue_t.c.state == QueueState.WAITING,
                queue_t.c.due_at <= now,
            )
            .values(state=QueueState.SENDING, claimed_at=now, attempts=queue_t.c.attempts + 1)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        attempt, fields, mime = session.execute(
            sa.select(queue_t.c.attempts, queue_t.c.message, queue_t.c.mime).where(
                queue_t.c.email_id == email_id
            )
        ).one()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return Claimed(email_id, int(attempt), stored_message(fields, mime))


def waiting_until(session: Session, email_id: int) -> datetime | None:
    """When the ``waiting`` send of email ``email_id`` is due; ``None`` when it is not
    waiting (sent, being sent, or not queued)."""
    due = session.scalar(
        sa.select(queue_t.c.due_at).where(
            queue_t.c.email_id == email_id, queue_t.c.state == QueueState.WAITING
        )
    )
    session.rollback()
    return due


def due_sends(session: Session, due_before: datetime, limit: int) -> list[int]:
    """Ids of the emails whose ``waiting`` send was due before ``due_before``, oldest
    first."""
    ids = list(
        session.scalars(
            sa.select(queue_t.c.email_id)
            .where(queue_t.c.state == QueueState.WAITING, queue_t.c.due_at <= due_before)
            .order_by(queue_t.c.due_at, queue_t.c.email_id)
            .limit(limit)
        )
    )
    session.rollback()
    return ids


@dataclass(frozen=True)
class StuckSend:
    """A send claimed long ago and neither handed over nor failed: its worker may have
    stopped mid-send, so the message may or may not have gone out."""

    email_id: int
    claimed_at: datetime
    attempts: int
    last_error: str | None


def stuck_sends(session: Session, claimed_before: datetime) -> list[StuckSend]:
    """The sends ``sending`` since before ``claimed_before``, oldest first."""
    rows = session.execute(
        sa.select(
            queue_t.c.email_id, queue_t.c.claimed_at, queue_t.c.attempts, queue_t.c.last_error
        )
        .where(queue_t.c.state == QueueState.SENDING, queue_t.c.claimed_at <= claimed_before)
        .order_by(queue_t.c.claimed_at, queue_t.c.email_id)
    ).all()
    session.rollback()
    return [StuckSend(*row) for row in rows]


def release(session: Session, email_ids: Sequence[int], now: datetime | None = None) -> list[int]:
    """Put the ``sending`` sends of ``email_ids`` back to ``waiting``, due now (an operator
    checked that they did not go out); return the ids released."""
    now = now or utcnow()
    try:
        released = list(
            session.scalars(
                sa.select(queue_t.c.email_id)
                .where(
                    queue_t.c.email_id.in_(list(email_ids)),
                    queue_t.c.state == QueueState.SENDING,
                )
                .with_for_update()
            )
        )
        if released:
            session.execute(
                sa.update(queue_t)
                .where(queue_t.c.email_id.in_(released), queue_t.c.state == QueueState.SENDING)
                .values(state=QueueState.WAITING, due_at=now, claimed_at=None)
            )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return released


def defer_values(due_at: datetime, error: str) -> dict[str, Any]:
    """The values that put a claimed send back to ``waiting`` until ``due_at``."""
    return {"state": QueueState.WAITING, "due_at": due_at, "claimed_at": None, "last_error": error}


def due_time(attempt: int, base: float, now: datetime | None = None) -> datetime:
    """When the attempt after failed attempt ``attempt`` is due (:func:`backoff_delay`)."""
    return (now or utcnow()) + timedelta(seconds=backoff_delay(attempt, base))
