"""Resending a stored email: a copy, recorded as a new email linked to the original.

Before anything is sent, two checks (:mod:`flask_maildelivery.copies` holds their rules):

* an earlier copy still on its way to one of the recipients refuses the resend
  (:class:`~.errors.CopyStillOnItsWay`), so an impatient second click does not send the
  email twice;
* a failed recipient whose address is unchanged since it failed (the contact record was not
  corrected, or the host has no ``contact_address_loader``) needs a confirmation
  (:class:`~.errors.ResendNeedsConfirmation`): the same address is likely to fail again.

``force=True`` skips both. A refused resend records nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..context import AppState, HostCallbacks
from ..copies import (
    RecipientFacts,
    RecipientRow,
    copy_on_its_way,
    delivered_by_copy,
    is_failure,
    is_unchanged,
)
from ..models import Email, Recipient
from .errors import CopyStillOnItsWay, ResendNeedsConfirmation, ResendRefused
from .hook import send_email


def resend_address(callbacks: HostCallbacks, recipient: RecipientFacts) -> str:
    """Where a resend to ``recipient`` goes: the address its contact record holds now (the
    host's ``contact_address_loader``), else the address it was sent to."""
    return (
        callbacks.contact_address(recipient.contact_type, recipient.contact_id) or recipient.address
    )


def _copy_recipients(session: Any, email_id: int) -> list[RecipientRow]:
    """Every recipient of the copies of email ``email_id``, with the copy's result; a
    locking read, so that it sees a copy another resend just committed."""
    rows = session.execute(
        sa.select(
            Recipient.email_id,
            Email.result,
            Recipient.address,
            Recipient.contact_type,
            Recipient.contact_id,
            Recipient.status,
        )
        .join(Email, Email.id == Recipient.email_id)
        .where(Email.resent_from_id == email_id)
        .order_by(Recipient.id)
        .with_for_update(read=True)
    ).all()
    return [RecipientRow(*row) for row in rows]


def resend_email(
    state: AppState,
    email_id: int,
    *,
    only_failed: bool = True,
    tenant_id: str | None = None,
    force: bool = False,
    confirm: bool = False,
) -> Email:
    """Send a copy of stored email ``email_id``, recorded as a new email linked to it
    (``resent_from_id``).

    Goes to the failed recipients (``bounced``, ``dropped``, ``suppressed``, ``failed``) that
    no earlier copy was delivered to, or to every recipient with ``only_failed=False``, each
    at the address its contact record holds now (the host's ``contact_address_loader``),
    else at the original address. Attachments come from the host's ``attachment_loader``,
    since only their names and sizes are stored.

    :param tenant_id: when given, an email of another tenant is not found.
    :param confirm: resend to addresses that are unchanged since they failed, suppressed
        ones (see :mod:`flask_maildelivery.suppression`) included.
    :param force: skip both checks: an earlier copy on its way, an unchanged address.
    :raises LookupError: no such email (for this tenant).
    :raises ResendRefused: nothing to resend, the bodies were not stored,
        :class:`~.errors.CopyStillOnItsWay` or :class:`~.errors.ResendNeedsConfirmation`;
        nothing was sent or recorded.
    """
    session = state.sessions()
    # the original's row lock: two resends of one email check and record their copies one
    # after the other, so the second sees the first copy on its way
    locked = session.execute(
        sa.select(Email.id).where(Email.id == email_id).with_for_update()
    ).first()
    original = session.get(Email, email_id) if locked is not None else None
    try:
        if original is None or (tenant_id is not None and original.tenant_id != tenant_id):
            raise LookupError(f"no email {email_id}")
        copies = _copy_recipients(session, email_id)
        chosen = [r for r in original.recipients if not only_failed or is_failure(r.status)]
        if not chosen:
            raise ResendRefused(f"email {email_id} has no failed recipient to resend to")
        if only_failed:
            chosen = [r for r in chosen if not delivered_by_copy(r, copies)]
            if not chosen:
                raise ResendRefused(
                    f"email {email_id}: every failed recipient has a delivered copy already"
                )
        if original.text_body is None and original.html_body is None:
            raise ResendRefused(
                f"email {email_id} has no stored body (MAILDELIVERY_STORE_BODIES was off); "
                "send it again from the host application"
            )
        callbacks = state.callbacks
        addresses = {r.id: resend_address(callbacks, r) for r in chosen}
        if not force:
            on_its_way = copy_on_its_way(chosen, copies)
            if on_its_way is not None:
                raise CopyStillOnItsWay(email_id, on_its_way.email_id, on_its_way.address)
            unchanged = [
                (r.address, str(r.status), r.reason)
                for r in chosen
                if is_unchanged(r, addresses[r.id])
            ]
            if unchanged and not confirm:
                raise ResendNeedsConfirmation(email_id, unchanged)
    except (LookupError, ResendRefused):
        session.rollback()  # releases the original's lock; nothing was written
        raise
    assert original is not None
    groups: dict[str, list[tuple[str, str]]] = {"to": [], "cc": [], "bcc": []}
    contacts: dict[str, tuple[str, Any]] = {}
    for recipient in chosen:
        address = addresses[recipient.id]
        groups[recipient.kind].append((recipient.name or "", address))
        if recipient.contact_type and recipient.contact_id is not None:
            contacts[address] = (recipient.contact_type, recipient.contact_id)
    try:
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
            # confirming a resend to an address unchanged since it failed is the decision
            # a suppression waits for: the copy goes to it (its status log says so)
            ignore_suppression=confirm or force,
        )
    except BaseException:
        # a send refused by its checks never reached the commit: release the lock
        session.rollback()
        raise
