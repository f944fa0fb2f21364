"""The outbound hook: check -> record (commit) -> transport -> record the outcome -> signal.

The email and its recipients are committed, in the package's own session, before the
transport runs, so a crash or a transport failure never loses the record. Every outcome
the transport reports goes through :mod:`flask_maildelivery.ingest` as delivery events
(a refused recipient, a failed send), so the state rules decide every result and the
signals are sent from one place.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from enum import Enum
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, make_transient_to_detached

from .. import rollup, signals, suppression
from ..bounces.settings import envelope_sender
from ..context import AppState, config_value
from ..events import NormalizedEvent, normalize_message_id, storable_id
from ..ingest import (
    apply_unmatched_events,
    ingest_events,
    record_send_attempt,
    record_send_failure,
)
from ..mime import header_text
from ..models import Email, Recipient, utcnow
from ..state import HOOK_PROVIDER, SendAttempt
from ..transports import OutgoingMessage, TransportError
from .errors import RecordingFailed, SendCancelled, SendRefused
from .queue import defer_values, due_time, queue_row, queue_t
from .validate import AddressLike, CheckedSend, check_send, column_problems, message_problem

#: Length of ``Event.provider_event_id``.
EVENT_ID_LENGTH = 255

logger = logging.getLogger("flask_maildelivery")


def send_email(
    state: AppState,
    *,
    subject: str,
    to: Sequence[AddressLike],
    sender: AddressLike | None,
    cc: Sequence[AddressLike],
    bcc: Sequence[AddressLike],
    reply_to: str | None,
    text: str | None,
    html: str | None,
    attachments: Iterable[tuple[str, bytes, str]],
    headers: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
    related: tuple[str, Any] | None,
    contacts: Mapping[str, tuple[str, Any]] | None,
    tenant_id: str | None,
    resent_from_id: int | None = None,
    ignore_suppression: bool = False,
    send_at: datetime | None = None,
) -> Email:
    """Implementation of :meth:`MailDelivery.send`."""
    checked = check_send(
        subject=subject,
        to=to,
        sender=sender,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        text=text,
        html=html,
        attachments=attachments,
        headers=headers,
        metadata=metadata,
    )
    return record_and_send(
        state,
        checked,
        related=related,
        contacts=contacts,
        tenant_id=tenant_id,
        resent_from_id=resent_from_id,
        ignore_suppression=ignore_suppression,
        send_at=send_at,
    )


def record_and_send(
    state: AppState,
    checked: CheckedSend,
    *,
    related: tuple[str, Any] | None,
    contacts: Mapping[str, tuple[str, Any]] | None,
    tenant_id: str | None,
    resent_from_id: int | None,
    ignore_suppression: bool = False,
    send_at: datetime | None = None,
) -> Email:
    """Record the checked send, hand it to the transport, record the outcome; return the
    stored email.

    A suppressed recipient (:mod:`..suppression`) is recorded ``suppressed`` and left out
    of the hand-over (``MAILDELIVERY_SUPPRESSION = "block"``, unless
    ``ignore_suppression``); when every recipient is, the transport is not called.
    With ``MAILDELIVERY_QUEUE = "celery"``, or a ``send_at`` time, the message is kept in
    the send queue with the record (one commit) instead, and, with Celery, handed to a
    worker once that commit is done.

    A refused send (by the checks, by a ``before_send`` receiver's changes, or by a value
    its column cannot hold) is recorded ``failed`` with the reason and never reaches the
    transport.

    :raises SendRefused: the send was refused; ``exc.email`` is the record.
    :raises SendCancelled: a ``before_send`` receiver cancelled it; ``exc.email`` likewise.
    :raises RecordingFailed: the database refused the record of a send that was not
        refused, so nothing was sent.
    :raises ValueError: ``send_at`` is a naive datetime.
    """
    if send_at is not None and send_at.tzinfo is None:
        raise ValueError(
            "send_at must be an aware datetime, e.g. datetime.now(UTC) + timedelta(hours=1)"
        )
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    callbacks = state.callbacks
    session = state.sessions()
    outgoing = checked.message

    problems = [checked.refusal] if checked.refusal is not None else []
    cancelled: SendCancelled | None = None
    # a bounce returned to the tagged envelope sender names this email; one returned to the
    # untagged address may name it by Message-ID, kept as the message id the log matches
    bounce_message_id: str | None = None
    if problems:
        # no message was built: the headers as given
        headers = dict(outgoing.headers)
    else:
        try:
            signals.before_send.send(app, message=outgoing.mime)
        except SendCancelled as exc:
            cancelled = exc
        # a before_send receiver may have changed the subject or added headers
        problem = message_problem(outgoing.mime, outgoing.headers)
        if problem is not None:
            problems.append(problem)
        outgoing.subject = header_text(outgoing.mime, "Subject", outgoing.subject)
        headers = _recorded_headers(outgoing.mime)
        outgoing.envelope_sender = envelope_sender(app, outgoing.public_id)
        if outgoing.envelope_sender is not None:
            bounce_message_id = normalize_message_id(outgoing.mime.get("Message-ID"))

    contact_map = {k.lower(): v for k, v in (contacts or {}).items()}
    store_bodies = config_value("STORE_BODIES")
    now = utcnow()
    values: dict[str, Any] = {
        "public_id": outgoing.public_id,
        "tenant_id": tenant_id if tenant_id is not None else callbacks.current_tenant(),
        "created_at": now,
        # a scheduled send shows its planned time until it goes out
        "sent_at": max(send_at, now) if send_at is not None else now,
        "send_at": send_at,
        "updated_at": now,
        "sent_by": callbacks.sent_by(callbacks.current_user()),
        "sender": checked.sender,
        "reply_to": outgoing.reply_to,
        "subject": outgoing.subject,
        "text_body": outgoing.text if store_bodies else None,
        "html_body": outgoing.html if store_bodies else None,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.content)}
            for a in outgoing.attachments
        ],
        "headers": headers,
        "metadata_": dict(outgoing.metadata),
        "related_type": related[0] if related else None,
        "related_id": str(related[1]) if related else None,
        "transport": state.transport.name,
        "provider_message_id": bounce_message_id,
        "error": None,
        "status": "",
        "result": "queued",
        "resent_from_id": resent_from_id,
    }
    recipient_rows = []
    for kind, address in checked.recipients:
        contact = contact_map.get(address.address.lower())
        recipient_rows.append(
            {
                "address": address.address,
                "address_key": address.address.lower(),
                "name": address.name or None,
                "kind": kind,
                "contact_type": contact[0] if contact else None,
                "contact_id": str(contact[1]) if contact else None,
                "status": "queued",
                "reason": None,
                "smtp_code": None,
                "bounce_type": None,
                "status_at": None,
                "updated_at": now,
            }
        )
    # a value its column cannot hold is refused here, not by the database: a raw
    # DataError (PostgreSQL) would reach the caller and abort the package's transaction
    problems += column_problems(values, recipient_rows)
    refusal = "; ".join(problems) if problems and cancelled is None else None
    suppressed = (
        _suppressed(state, values["tenant_id"], outgoing, ignore_suppression)
        if refusal is None and cancelled is None
        else None
    )
    queued = (
        refusal is None
        and cancelled is None
        and bool(outgoing.envelope_recipients)
        and (send_at is not None or config_value("QUEUE") == "celery")
    )

    try:
        email = _insert_email(session, values, recipient_rows)
        if queued:
            session.execute(sa.insert(queue_t), queue_row(email.id, outgoing, values["sent_at"]))
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        problem = _recording_problem(session, exc)
        if refusal is not None:
            raise SendRefused(f"{refusal} (and {problem})") from exc
        raise RecordingFailed(problem) from exc

    if cancelled is not None:
        _record_failure(app, email, f"cancelled by a before_send receiver: {cancelled}")
        cancelled.email = email
        raise cancelled
    if refusal is not None:
        refused = SendRefused(refusal)
        try:
            _record_failure(app, email, refusal)
        except RecordingFailed as exc:
            # the email is recorded, but not as failed: the message says so
            refused = SendRefused(f"{refusal} (and {exc})")
            refused.__cause__ = exc
        refused.email = email
        raise refused
    if suppressed is not None:
        _record_suppressed(app, email, suppressed)
    if not outgoing.envelope_recipients:
        return email  # every recipient is suppressed: recorded, nothing to hand over
    if queued:
        enqueue(state, email.id, send_at)
        return email
    hand_over(app, state, email, outgoing, attempt=1, queued=False)
    return email


class Outcome(Enum):
    """What one attempt to hand a message over came to."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"


def enqueue(state: AppState, email_id: int, eta: datetime | None) -> None:
    """Hand the queued send of ``email_id`` to a worker (due at ``eta``) when the queue is
    Celery; without it, the row waits for ``flask maildelivery retry``. A broker that
    cannot take the task loses nothing: the row waits for the periodic ``retry_due``.

    :raises RuntimeError: ``MAILDELIVERY_QUEUE`` is ``"celery"`` but ``init_celery`` was
        not called (the send stays queued in the database).
    """
    if config_value("QUEUE") != "celery":
        return
    if state.tasks.enqueue_send is None:
        raise RuntimeError(
            f'MAILDELIVERY_QUEUE is "celery" but no Celery app is registered: call '
            f"mail_delivery.init_celery(celery_app) after init_app (email {email_id} is "
            "recorded and queued; flask maildelivery retry sends it)"
        )
    try:
        state.tasks.enqueue_send(email_id, eta)
    except Exception:
        logger.exception(
            "email %s is queued, but its task could not be handed to the broker; the "
            "periodic maildelivery.retry_due task (or flask maildelivery retry) sends it",
            email_id,
        )


def hand_over(
    app: Flask,
    state: AppState,
    email: Email,
    outgoing: OutgoingMessage,
    *,
    attempt: int,
    queued: bool,
) -> Outcome:
    """Hand ``outgoing`` (recorded as ``email``) to the transport and record the outcome:
    sent (the queue row, if any, is deleted), deferred (a transient failure with attempts
    left: a ``deferred`` event per recipient and the row waits for the next attempt), or
    failed.

    :param attempt: the attempt this is (1 for the first).
    :param queued: the send has a queue row (claimed by the caller).
    """
    session = state.sessions()
    try:
        result = state.transport.send(outgoing)
    except TransportError as exc:
        return _record_send_error(
            app, state, email, outgoing, str(exc), exc.retryable, attempt=attempt, queued=queued
        )
    except Exception as exc:  # a host transport may raise anything; the record must survive
        error = f"{type(exc).__name__}: {exc}"
        return _record_send_error(
            app, state, email, outgoing, error, False, attempt=attempt, queued=queued
        )

    try:
        if result.refused_recipients:
            _record_refused_recipients(app, email, result.refused_recipients)
        if queued:
            session.execute(sa.delete(queue_t).where(queue_t.c.email_id == email.id))
            rollup.move_sent_at(session, email, utcnow())
        if result.provider_message_id:
            # stored as webhook events store it, so that they match (a digest when too long)
            email.provider_message_id = storable_id(result.provider_message_id, 255)
        if queued or result.provider_message_id:
            email.updated_at = utcnow()
            session.commit()
        if result.provider_message_id:
            # a webhook may have reported on this message before its id was stored
            apply_unmatched_events(app, [email.id])
        if attempt > 1:
            # an earlier attempt failed: its error goes, the result follows the recipients,
            # each recipient's log says which attempt went through, and the earlier
            # attempts' deferrals stop counting for the recipients it went to (state.py)
            accepted = [
                _attempt_event(
                    email,
                    r.address,
                    SendAttempt(attempt, accepted=True),
                    f"accepted on attempt {attempt}",
                )
                for r in email.recipients
                if r.address not in result.refused_recipients
            ]
            record_send_attempt(app, email.id, None, accepted, send_failed=False)
    except SQLAlchemyError:
        # the message went out: an error here would read as "not sent" (and invite a
        # second send), so the record keeps what it had and the log says what is missing
        session.rollback()
        logger.exception(
            "email %s was sent, but its outcome could not be recorded", outgoing.public_id
        )
    signals.send_safely(signals.email_sent, app, email=email)
    return Outcome.SENT


def _record_send_error(
    app: Flask,
    state: AppState,
    email: Email,
    outgoing: OutgoingMessage,
    error: str,
    retryable: bool,
    *,
    attempt: int,
    queued: bool,
) -> Outcome:
    """Attempt ``attempt`` failed with ``error``: a transient failure with attempts left is
    deferred (retried after the backoff), anything else fails the send for good.

    In the request (no queue row yet) the email's result becomes ``failed`` either way, as
    without a queue; its recipients are ``deferred`` while a retry is planned.

    :raises RecordingFailed: the database refused the record.
    """
    email_id = email.id
    max_attempts = int(config_value("MAX_ATTEMPTS"))
    if not (retryable and attempt < max_attempts):
        if attempt > 1:
            error = f"{error} (attempt {attempt} of {max_attempts}; no more attempts)"

        def forget(session: Session) -> None:
            session.execute(sa.delete(queue_t).where(queue_t.c.email_id == email_id))

        _record_failure(app, email, error, also=forget if queued else None)
        return Outcome.FAILED

    due_at = due_time(attempt, float(config_value("RETRY_BACKOFF")))
    reason = f"attempt {attempt} of {max_attempts} failed: {error}"

    def keep(session: Session) -> None:
        if queued:
            session.execute(
                sa.update(queue_t)
                .where(queue_t.c.email_id == email_id)
                .values(defer_values(due_at, error))
            )
        else:
            session.execute(
                sa.insert(queue_t),
                queue_row(email_id, outgoing, due_at, attempts=attempt, last_error=error),
            )

    failed = SendAttempt(attempt, accepted=False)
    events = [_attempt_event(email, r.address, failed, reason) for r in email.recipients]
    try:
        record_send_attempt(app, email_id, error, events, send_failed=not queued, also=keep)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc)
        raise RecordingFailed(
            f"email {email_id} was not sent, and that could not be recorded: {cause}"
        ) from exc
    enqueue(state, email_id, due_at)
    return Outcome.DEFERRED


_INSERT_EMAIL = sa.insert(cast(sa.Table, Email.__table__))
_INSERT_RECIPIENTS = sa.insert(cast(sa.Table, Recipient.__table__))
#: Email attribute names -> column keys (``metadata_`` is stored in column ``metadata``).
_EMAIL_COLUMN_KEYS = {attr.key: attr.columns[0].key for attr in Email.__mapper__.column_attrs}


def _insert_email(
    session: Session, values: dict[str, Any], recipient_rows: list[dict[str, Any]]
) -> Email:
    """Insert an email and its recipients with two Core statements (the ORM's unit of work
    costs more than the send itself: see benchmarks/send_overhead.py), and return the Email
    as a persistent ORM object."""
    row = {_EMAIL_COLUMN_KEYS[k]: v for k, v in values.items()}
    connection = session.connection()
    inserted = connection.execute(_INSERT_EMAIL, row).inserted_primary_key
    assert inserted is not None
    email_id = inserted[0]
    for recipient in recipient_rows:
        recipient["email_id"] = email_id
    if recipient_rows:  # a refused send may have none
        connection.execute(_INSERT_RECIPIENTS, recipient_rows)
    rollup.count_new_email(session, values, [r["address_key"] for r in recipient_rows])
    email = Email(id=email_id, **values)
    # known to be in the database: attach it without a round trip
    make_transient_to_detached(email)
    session.add(email)
    return email


def _recording_problem(session: Session, exc: SQLAlchemyError) -> str:
    cause = str(getattr(exc, "orig", None) or exc)
    problem = f"the email could not be recorded, so it was not sent: {cause}"
    if session.get_bind().dialect.name == "sqlite" and "locked" in cause:
        # SQLite has one writer at a time: a transaction with uncommitted writes, the
        # host's own included, holds the lock the package's own session needs
        problem += (
            " (on SQLite, another transaction holds the database's write lock, perhaps the "
            "host's own uncommitted writes: commit them before sending)"
        )
    return problem


def _hook_event(
    email: Email, address: str, kind: str, reason: str, *, type: str = "failed", **extra: Any
) -> NormalizedEvent:
    event_id = f"{email.public_id}:{kind}:{address.lower()}"
    if len(event_id) > EVENT_ID_LENGTH:
        # a long (invalid, refused) address: its digest keeps the id unique in the column
        digest = hashlib.sha256(address.lower().encode("utf-8", "surrogatepass")).hexdigest()
        event_id = f"{email.public_id}:{kind}:sha256:{digest}"
    return NormalizedEvent(
        provider=HOOK_PROVIDER,
        provider_event_id=event_id,
        type=type,
        raw_type=kind,
        occurred_at=utcnow(),
        recipient=address,
        maildelivery_id=email.public_id,
        reason=reason,
        payload={"address": address, "reason": reason, **extra},
        smtp_code=extra.get("code"),
    )


def _attempt_event(
    email: Email, address: str, attempt: SendAttempt, reason: str
) -> NormalizedEvent:
    """The event that records ``attempt`` in ``address``'s log (:class:`..state.SendAttempt`:
    the state rules recognize it by its provider, type and raw type)."""
    return _hook_event(email, address, attempt.raw_type, reason, type=attempt.status)


def _record_refused_recipients(
    app: Flask, email: Email, refused: Mapping[str, tuple[str, str]]
) -> None:
    """Recipients the server refused while it accepted the others become ``failed`` (so the
    email's result becomes ``warning``)."""
    ingest_events(
        [
            _hook_event(email, address, "smtp-refused", f"{code} {text}", code=code, text=text)
            for address, (code, text) in refused.items()
        ],
        app,
    )


def _record_failure(
    app: Flask, email: Email, error: str, also: Callable[[Session], None] | None = None
) -> Email:
    """The send failed before any recipient got it: the email keeps ``error`` and result
    ``failed``, and each recipient becomes ``failed`` with that reason.

    :raises RecordingFailed: the database refused that (the email stays recorded as it
        was inserted).
    """
    # read before the transaction: its rollback would expire them
    email_id = email.id
    try:
        events = [_hook_event(email, r.address, "send-failed", error) for r in email.recipients]
        if also is None:
            record_send_failure(app, email_id, error, events)
        else:
            record_send_attempt(app, email_id, error, events, send_failed=True, also=also)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc)
        raise RecordingFailed(
            f"email {email_id} was not sent, and that could not be recorded: {cause}"
        ) from exc
    return email


@dataclass(frozen=True)
class _Suppressed:
    """The recipients of a send whose address is suppressed, and what the send does."""

    #: address -> the note that says why (:func:`..suppression.suppression_note`)
    notes: dict[str, str]
    #: left out of the hand-over (``block``), else sent with a warning in their logs
    blocked: bool
    #: why they are sent to anyway (``warn`` mode or ``ignore_suppression``)
    why: str


def _suppressed(
    state: AppState, tenant_id: str | None, outgoing: OutgoingMessage, ignore_suppression: bool
) -> _Suppressed | None:
    """The recipients of ``outgoing`` whose address is suppressed (:mod:`..suppression`);
    with ``MAILDELIVERY_SUPPRESSION = "block"`` (unless ``ignore_suppression``) they are
    taken out of ``outgoing``'s envelope here, before the send is recorded or queued.
    ``None``: none is."""
    mode = config_value("SUPPRESSION")
    if mode == suppression.OFF:
        return None
    records = {
        key: record
        for key, record in suppression.address_records(
            state, tenant_id, outgoing.envelope_recipients
        ).items()
        if record.suppressed
    }
    if not records:
        return None
    notes = {
        address: suppression.suppression_note(record)
        for address in outgoing.envelope_recipients
        if (record := records.get(address.lower())) is not None
    }
    block = mode == suppression.BLOCK and not ignore_suppression
    if block:
        for kind in ("to", "cc", "bcc"):
            kept = [a for a in getattr(outgoing, kind) if a.address.lower() not in records]
            setattr(outgoing, kind, kept)
    why = "ignore_suppression" if mode == suppression.BLOCK else "MAILDELIVERY_SUPPRESSION"
    return _Suppressed(notes, block, why)


def _record_suppressed(app: Flask, email: Email, found: _Suppressed) -> None:
    """Record each suppressed recipient of ``email``: ``suppressed`` (left out), or a
    warning event in its log (sent anyway)."""
    events = [
        _hook_event(email, address, "suppressed", note, type="suppressed")
        if found.blocked
        else _hook_event(
            email,
            address,
            "suppression-warning",
            f"sent although suppressed ({found.why}): {note}",
            type="unknown",
        )
        for address, note in found.notes.items()
    ]
    ingest_events(events, app)


def _recorded_headers(mime: Message) -> dict[str, str]:
    """The message's headers as text, encoded words decoded, for the detail page."""
    return {name: header_text(mime, name) for name in mime}
