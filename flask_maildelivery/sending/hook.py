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
from collections.abc import Iterable, Mapping, Sequence
from email.message import Message
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, make_transient_to_detached

from .. import signals
from ..bounces.settings import envelope_sender
from ..context import AppState, config_value
from ..events import NormalizedEvent, normalize_message_id, storable_id
from ..ingest import apply_unmatched_events, ingest_events, record_send_failure
from ..mime import header_text
from ..models import Email, Recipient, utcnow
from ..transports import TransportError
from .errors import RecordingFailed, SendCancelled, SendRefused
from .validate import AddressLike, CheckedSend, check_send, column_problems, message_problem

#: Provider id of the events the hook records itself (refused recipients, failed sends).
HOOK_PROVIDER = "maildelivery"
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
    )


def record_and_send(
    state: AppState,
    checked: CheckedSend,
    *,
    related: tuple[str, Any] | None,
    contacts: Mapping[str, tuple[str, Any]] | None,
    tenant_id: str | None,
    resent_from_id: int | None,
) -> Email:
    """Record the checked send, hand it to the transport, record the outcome; return the
    stored email.

    A refused send (by the checks, by a ``before_send`` receiver's changes, or by a value
    its column cannot hold) is recorded ``failed`` with the reason and never reaches the
    transport.

    :raises SendRefused: the send was refused; ``exc.email`` is the record.
    :raises SendCancelled: a ``before_send`` receiver cancelled it; ``exc.email`` likewise.
    :raises RecordingFailed: the database refused the record of a send that was not
        refused, so nothing was sent.
    """
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
        "sent_at": now,
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

    try:
        email = _insert_email(session, values, recipient_rows)
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
    try:
        result = state.transport.send(outgoing)
    except TransportError as exc:
        return _record_failure(app, email, str(exc))
    except Exception as exc:  # a host transport may raise anything; the record must survive
        return _record_failure(app, email, f"{type(exc).__name__}: {exc}")

    try:
        if result.refused_recipients:
            _record_refused_recipients(app, email, result.refused_recipients)
        if result.provider_message_id:
            # stored as webhook events store it, so that they match (a digest when too long)
            email.provider_message_id = storable_id(result.provider_message_id, 255)
            email.updated_at = utcnow()
            session.commit()
            # a webhook may have reported on this message before its id was stored
            apply_unmatched_events(app, [email.id])
    except SQLAlchemyError:
        # the message went out: an error here would read as "not sent" (and invite a
        # second send), so the record keeps what it had and the log says what is missing
        session.rollback()
        logger.exception(
            "email %s was sent, but its outcome could not be recorded", outgoing.public_id
        )
    signals.send_safely(signals.email_sent, app, email=email)
    return email


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
    email: Email, address: str, kind: str, reason: str, **extra: Any
) -> NormalizedEvent:
    event_id = f"{email.public_id}:{kind}:{address.lower()}"
    if len(event_id) > EVENT_ID_LENGTH:
        # a long (invalid, refused) address: its digest keeps the id unique in the column
        digest = hashlib.sha256(address.lower().encode("utf-8", "surrogatepass")).hexdigest()
        event_id = f"{email.public_id}:{kind}:sha256:{digest}"
    return NormalizedEvent(
        provider=HOOK_PROVIDER,
        provider_event_id=event_id,
        type="failed",
        raw_type=kind,
        occurred_at=utcnow(),
        recipient=address,
        maildelivery_id=email.public_id,
        reason=reason,
        payload={"address": address, "reason": reason, **extra},
        smtp_code=extra.get("code"),
    )


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


def _record_failure(app: Flask, email: Email, error: str) -> Email:
    """The send failed before any recipient got it: the email keeps ``error`` and result
    ``failed``, and each recipient becomes ``failed`` with that reason.

    :raises RecordingFailed: the database refused that (the email stays recorded as it
        was inserted).
    """
    # read before the transaction: its rollback would expire them
    email_id = email.id
    try:
        events = [_hook_event(email, r.address, "send-failed", error) for r in email.recipients]
        record_send_failure(app, email_id, error, events)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc)
        raise RecordingFailed(
            f"email {email_id} was not sent, and that could not be recorded: {cause}"
        ) from exc
    return email


def _recorded_headers(mime: Message) -> dict[str, str]:
    """The message's headers as text, encoded words decoded, for the detail page."""
    return {name: header_text(mime, name) for name in mime}
