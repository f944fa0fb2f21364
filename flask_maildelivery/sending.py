"""The outbound hook: validate -> record (commit) -> transport -> record the outcome -> signal.

The email and its recipients are committed before the transport runs, so a crash or a
transport failure never loses the record.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.orm import make_transient_to_detached

from . import signals
from .config import config_value
from .mime import CORRELATION_HEADER, build_mime, header_text
from .models import Email, Recipient, utcnow
from .transports import Address, Attachment, OutgoingMessage, TransportError
from .transports.base import STRUCTURAL_HEADERS, unique_addresses

if TYPE_CHECKING:
    from .extension import AddressLike, _AppState

#: Headers that the hook sets itself from the structured arguments.
HOOK_HEADERS = STRUCTURAL_HEADERS | {CORRELATION_HEADER.lower()}


class SendRefused(ValueError):
    """A send was refused before anything went out; the message says why and how to fix it."""


class SendCancelled(Exception):
    """Raise from a ``before_send`` receiver to stop a send. The email is recorded with result
    ``failed`` and this exception's text as its error, then the exception reaches the caller
    (with the record as ``email``)."""

    email: Email | None = None


def parse_address(value: AddressLike, *, role: str) -> Address:
    """An :class:`Address` from ``"addr"``, ``"Name <addr>"`` or ``("Name", "addr")``.

    :raises SendRefused: the value is not an email address.
    """
    if isinstance(value, tuple):
        name, addr = value
    elif "<" in value:
        name, addr = parseaddr(value)
        addr = addr or value
    else:
        name, addr = "", value.strip()
    problem = _address_problem(addr)
    if problem is not None:
        raise SendRefused(f"{role} address {addr!r} is not an email address: {problem}")
    return Address(name=name or "", address=addr.strip())


@functools.lru_cache(maxsize=4096)
def _address_problem(addr: str) -> str | None:
    """Why ``addr`` is not an email address, or ``None``. Cached: an ERP sends to the same
    addresses (the accounting copy on every invoice) over and over."""
    try:
        validate_email(
            addr, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _parse_many(values: Sequence[AddressLike] | str, role: str) -> list[Address]:
    if isinstance(values, str):
        values = [values]
    return [parse_address(v, role=role) for v in values]


def send_email(
    state: _AppState,
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
    sender = sender or config_value("DEFAULT_SENDER")
    if not sender:
        raise SendRefused(
            "the email has no sender: pass sender=... to send() or set MAILDELIVERY_DEFAULT_SENDER"
        )
    from_address = parse_address(sender, role="sender")
    to_list, cc_list, bcc_list = (
        _parse_many(to, "to"),
        _parse_many(cc, "cc"),
        _parse_many(bcc, "bcc"),
    )
    recipients = [
        (kind, address)
        for kind, group in zip(
            ("to", "cc", "bcc"), unique_addresses(to_list, cc_list, bcc_list), strict=True
        )
        for address in group
    ]
    if not recipients:
        raise SendRefused("the email has no recipient: pass at least one address in to, cc or bcc")
    limit = config_value("MAX_RECIPIENTS")
    if limit is not None and len(recipients) > limit:
        raise SendRefused(
            f"the email has {len(recipients)} recipients, more than MAILDELIVERY_MAX_RECIPIENTS "
            f"({limit}); split it into several emails or raise the limit"
        )
    if reply_to:
        reply_to = parse_address(reply_to, role="reply-to").formatted()
    files = [
        Attachment(
            filename=name,
            content=content,
            content_type=ctype or mimetypes.guess_type(name)[0] or "application/octet-stream",
        )
        for name, content, ctype in attachments
    ]
    from .models import new_public_id

    for name in headers or {}:
        if name.lower() in HOOK_HEADERS:
            raise SendRefused(
                f"header {name!r} is set by flask-maildelivery; pass it as an argument of send()"
            )
    public_id = new_public_id()
    mime = build_mime(
        public_id=public_id,
        sender=from_address,
        to=to_list,
        cc=cc_list,
        subject=subject,
        text=text,
        html=html,
        reply_to=reply_to,
        attachments=files,
        headers=headers or {},
    )
    outgoing = OutgoingMessage(
        public_id=public_id,
        sender=from_address,
        to=to_list,
        cc=cc_list,
        bcc=bcc_list,
        subject=subject,
        text=text,
        html=html,
        reply_to=reply_to,
        attachments=files,
        headers=dict(headers or {}),
        mime=mime,
        metadata=dict(metadata or {}),
    )
    return _record_and_send(
        state,
        outgoing,
        recipients=recipients,
        related=related,
        contacts=contacts,
        tenant_id=tenant_id,
        resent_from_id=resent_from_id,
    )


def _record_and_send(
    state: _AppState,
    outgoing: OutgoingMessage,
    *,
    recipients: list[tuple[str, Address]],
    related: tuple[str, Any] | None,
    contacts: Mapping[str, tuple[str, Any]] | None,
    tenant_id: str | None,
    resent_from_id: int | None,
) -> Email:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    extension = state.extension
    session = state.db.session

    cancelled: SendCancelled | None = None
    try:
        signals.before_send.send(app, message=outgoing.mime)
    except SendCancelled as exc:
        cancelled = exc
    # a before_send receiver may have changed the subject or added headers
    outgoing.subject = header_text(outgoing.mime, "Subject", outgoing.subject)

    user = extension.current_user()
    contact_map = {k.lower(): v for k, v in (contacts or {}).items()}
    store_bodies = config_value("STORE_BODIES")
    now = utcnow()
    values: dict[str, Any] = {
        "public_id": outgoing.public_id,
        "tenant_id": tenant_id if tenant_id is not None else extension.current_tenant(),
        "created_at": now,
        "sent_at": now,
        "updated_at": now,
        "sent_by": extension.sent_by(user),
        "sender": outgoing.sender.formatted(),
        "reply_to": outgoing.reply_to,
        "subject": outgoing.subject,
        "text_body": outgoing.text if store_bodies else None,
        "html_body": outgoing.html if store_bodies else None,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.content)}
            for a in outgoing.attachments
        ],
        "headers": _recorded_headers(outgoing.mime),
        "metadata_": dict(outgoing.metadata),
        "related_type": related[0] if related else None,
        "related_id": str(related[1]) if related else None,
        "transport": state.transport.name,
        "provider_message_id": None,
        "error": None,
        "status": "",
        "result": "queued",
        "resent_from_id": resent_from_id,
    }
    recipient_rows = []
    for kind, address in recipients:
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
    if cancelled is not None:
        email = Email(**values)
        email.recipients = [Recipient(**row) for row in recipient_rows]
        _mark_failed(email, f"cancelled by a before_send receiver: {cancelled}")
        session.add(email)
        session.commit()
        cancelled.email = email
        raise cancelled

    email = _insert_email(session, values, recipient_rows)
    session.commit()

    try:
        result = state.transport.send(outgoing)
    except TransportError as exc:
        return _record_failure(app, session, email, str(exc))
    except Exception as exc:  # a host transport may raise anything; the record must survive
        return _record_failure(app, session, email, f"{type(exc).__name__}: {exc}")

    if result.refused_recipients:
        _record_refused_recipients(app, email, result.refused_recipients)
    if result.provider_message_id:
        from .ingest import apply_unmatched_events

        email.provider_message_id = result.provider_message_id
        email.updated_at = utcnow()
        session.commit()
        # a webhook may have reported on this message before its id was stored
        apply_unmatched_events(app, [email.id])
    signals.send_safely(signals.email_sent, app, email=email)
    return email


_INSERT_EMAIL = sa.insert(cast(sa.Table, Email.__table__))
_INSERT_RECIPIENTS = sa.insert(cast(sa.Table, Recipient.__table__))
#: Email attribute names -> column keys (``metadata_`` is stored in column ``metadata``).
_EMAIL_COLUMN_KEYS = {attr.key: attr.columns[0].key for attr in Email.__mapper__.column_attrs}


def _insert_email(
    session: Any, values: dict[str, Any], recipient_rows: list[dict[str, Any]]
) -> Email:
    """Insert an email and its recipients with two Core statements (the ORM's unit of work
    costs more than the send itself), and return the Email as a persistent ORM object."""
    row = {_EMAIL_COLUMN_KEYS[k]: v for k, v in values.items()}
    connection = session.connection()
    email_id = connection.execute(_INSERT_EMAIL, row).inserted_primary_key[0]
    for recipient in recipient_rows:
        recipient["email_id"] = email_id
    connection.execute(_INSERT_RECIPIENTS, recipient_rows)
    email = Email(id=email_id, **values)
    # known to be in the database: attach it without a round trip
    make_transient_to_detached(email)
    session.add(email)
    return email


def _record_refused_recipients(
    app: Any, email: Email, refused: Mapping[str, tuple[str, str]]
) -> None:
    """Recipients the server refused while it accepted the others become ``failed``, through
    the same event path as provider events (so the email's result becomes ``warning``)."""
    from .events import NormalizedEvent
    from .ingest import ingest_events

    now = utcnow()
    ingest_events(
        [
            NormalizedEvent(
                provider="maildelivery",
                provider_event_id=f"{email.public_id}:refused:{address.lower()}",
                type="failed",
                raw_type="smtp-refused",
                occurred_at=now,
                recipient=address,
                maildelivery_id=email.public_id,
                reason=f"{code} {text}",
                smtp_code=code,
                payload={"address": address, "code": code, "text": text},
            )
            for address, (code, text) in refused.items()
        ],
        app,
    )


def _recorded_headers(mime: Message) -> dict[str, str]:
    """The message's headers as text, encoded words decoded, for the detail page."""
    return {name: header_text(mime, name) for name in mime}


def _mark_failed(email: Email, error: str) -> list[tuple[Recipient, str]]:
    email.result = "failed"
    email.error = error
    email.updated_at = utcnow()
    changed = []
    for recipient in email.recipients:
        if recipient.status != "failed":
            changed.append((recipient, recipient.status))
            recipient.status = "failed"
            recipient.reason = error
            recipient.updated_at = email.updated_at
            recipient.status_at = email.updated_at
    return changed


def _record_failure(app: Any, session: Any, email: Email, error: str) -> Email:
    old_result = email.result
    changed = _mark_failed(email, error)
    session.commit()
    for recipient, old in changed:
        signals.send_safely(
            signals.recipient_status_changed,
            app,
            recipient=recipient,
            email=email,
            old=old,
            new="failed",
            event=None,
        )
    signals.send_safely(
        signals.email_result_changed, app, email=email, old=old_result, new="failed"
    )
    return email


def send_email_message(
    state: _AppState,
    message: EmailMessage,
    *,
    metadata: Mapping[str, Any] | None,
    related: tuple[str, Any] | None,
    contacts: Mapping[str, tuple[str, Any]] | None,
    tenant_id: str | None,
) -> Email:
    """Implementation of :meth:`MailDelivery.send_message`: unpack a stdlib message."""

    def addresses(header: str) -> list[tuple[str, str]]:
        return [(n, a) for n, a in getaddresses(message.get_all(header, [])) if a]

    text = html = None
    attachments: list[tuple[str, bytes, str]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, EmailMessage)
        if part.is_attachment():
            payload = part.get_payload(decode=True)
            attachments.append(
                (
                    part.get_filename() or "attachment",
                    bytes(payload or b""),
                    part.get_content_type(),
                )
            )
        elif part.get_content_type() == "text/plain" and text is None:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and html is None:
            html = part.get_content()
    extra = {
        name: str(value) for name, value in message.items() if name.lower() not in HOOK_HEADERS
    }
    senders = addresses("From")
    return send_email(
        state,
        subject=str(message.get("Subject", "")),
        to=addresses("To"),
        sender=senders[0] if senders else None,
        cc=addresses("Cc"),
        bcc=addresses("Bcc"),
        reply_to=str(message["Reply-To"]) if message["Reply-To"] else None,
        text=text,
        html=html,
        attachments=attachments,
        headers=extra,
        metadata=metadata,
        related=related,
        contacts=contacts,
        tenant_id=tenant_id,
    )


def resend_email(
    app: Any, email_id: int, *, only_failed: bool = True, tenant_id: str | None = None
) -> Email:
    """Send a copy of stored email ``email_id``, recorded as a new email linked to it
    (``resent_from_id``).

    Goes to the failed recipients (``bounced``, ``dropped``, ``failed``), or to every
    recipient with ``only_failed=False``, each at the address its contact record holds now
    (the host's ``contact_address_loader``), else at the original address. Attachments come
    from the host's ``attachment_loader``, since only their names and sizes are stored.

    :param tenant_id: when given, an email of another tenant is not found.
    :raises LookupError: no such email (for this tenant).
    :raises SendRefused: nothing to resend, or the bodies were not stored.
    """
    from .extension import MailDelivery
    from .state import FAILURE_STATUSES

    state = MailDelivery.state(app)
    original = state.db.session.get(Email, email_id)
    if original is None or (tenant_id is not None and original.tenant_id != tenant_id):
        raise LookupError(f"no email {email_id}")
    chosen = [r for r in original.recipients if not only_failed or r.status in FAILURE_STATUSES]
    if not chosen:
        raise SendRefused(f"email {email_id} has no failed recipient to resend to")
    if original.text_body is None and original.html_body is None:
        raise SendRefused(
            f"email {email_id} has no stored body (MAILDELIVERY_STORE_BODIES was off); "
            "send it again from the host application"
        )
    extension = state.extension
    groups: dict[str, list[tuple[str, str]]] = {"to": [], "cc": [], "bcc": []}
    contacts: dict[str, tuple[str, Any]] = {}
    for recipient in chosen:
        address = (
            extension.contact_address(recipient.contact_type, recipient.contact_id)
            or recipient.address
        )
        groups[recipient.kind].append((recipient.name or "", address))
        if recipient.contact_type and recipient.contact_id is not None:
            contacts[address] = (recipient.contact_type, recipient.contact_id)
    return send_email(
        state,
        subject=original.subject,
        to=groups["to"],
        sender=original.sender,
        cc=groups["cc"],
        bcc=groups["bcc"],
        reply_to=original.reply_to,
        text=original.text_body,
        html=original.html_body,
        attachments=extension.attachments_for_resend(original),
        headers={},
        metadata={**(original.metadata_ or {}), "resent_from": original.public_id},
        related=(original.related_type, original.related_id) if original.related_type else None,
        contacts=contacts,
        tenant_id=original.tenant_id,
        resent_from_id=original.id,
    )
