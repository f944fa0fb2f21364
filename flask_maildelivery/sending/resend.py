"""Resending a stored email: a copy, recorded as a new email linked to the original."""

from __future__ import annotations

from typing import Any

from ..context import AppState
from ..models import Email
from ..state import FAILURE_STATUSES
from .errors import SendRefused
from .hook import send_email


def resend_email(
    state: AppState, email_id: int, *, only_failed: bool = True, tenant_id: str | None = None
) -> Email:
    """Send a copy of stored email ``email_id``, recorded as a new email linked to it
    (``resent_from_id``).

    Goes to the failed recipients (``bounced``, ``dropped``, ``suppressed``, ``failed``), or
    to every recipient with ``only_failed=False``, each at the address its contact record
    holds now (the host's ``contact_address_loader``), else at the original address.
    Attachments come from the host's ``attachment_loader``, since only their names and sizes
    are stored.

    :param tenant_id: when given, an email of another tenant is not found.
    :raises LookupError: no such email (for this tenant).
    :raises SendRefused: nothing to resend, or the bodies were not stored.
    """
    original = state.sessions().get(Email, email_id)
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
    callbacks = state.callbacks
    groups: dict[str, list[tuple[str, str]]] = {"to": [], "cc": [], "bcc": []}
    contacts: dict[str, tuple[str, Any]] = {}
    for recipient in chosen:
        address = (
            callbacks.contact_address(recipient.contact_type, recipient.contact_id)
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
        attachments=callbacks.attachments_for_resend(original),
        headers={},
        metadata={**(original.metadata_ or {}), "resent_from": original.public_id},
        related=(original.related_type, original.related_id) if original.related_type else None,
        contacts=contacts,
        tenant_id=original.tenant_id,
        resent_from_id=original.id,
    )
