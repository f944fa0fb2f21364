"""The rules about copies of an email (its resends): pure functions, no I/O.

* A copy's recipient **stands in** for a recipient of the original when it has the same
  address (any case) or the same contact record (``contact_type`` and ``contact_id``): a
  resend goes to the address the contact holds now, which may be a corrected one.
* A copy is **on its way** to a recipient while the copy's result is ``queued`` or
  ``processed``, or that recipient is ``queued``, ``processed`` or ``deferred``: a second
  resend then would send the same email twice.
* The original is **resolved** when every recipient that failed on it (bounced, dropped,
  failed) has a copy that was delivered (``delivered`` or better, but not a failure); a
  later resend of it leaves out the recipients that have one already.

The ingest applies :func:`resolving_copy` when a copy's recipient is delivered; the resend
applies :func:`copy_on_its_way` and :func:`is_unchanged` before it sends anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .state import FAILURE_STATUSES, RANK
from .vocabulary import EmailResult, RecipientStatus

#: Recipient statuses of a copy that is still on its way.
ON_ITS_WAY_STATUSES = frozenset(
    {RecipientStatus.QUEUED, RecipientStatus.PROCESSED, RecipientStatus.DEFERRED}
)
#: Results of a copy that is still on its way.
ON_ITS_WAY_RESULTS = frozenset({EmailResult.QUEUED, EmailResult.PROCESSED})


class RecipientFacts(Protocol):
    """What the rules read of a recipient (a model row, a detail row or a plain tuple)."""

    @property
    def address(self) -> str: ...

    @property
    def contact_type(self) -> str | None: ...

    @property
    def contact_id(self) -> str | None: ...

    @property
    def status(self) -> str: ...


class CopyRecipient(RecipientFacts, Protocol):
    """A recipient of a copy, with the copy's id and result."""

    @property
    def email_id(self) -> int: ...

    @property
    def email_result(self) -> str: ...


@dataclass(frozen=True)
class RecipientRow:
    """A recipient as these rules read it, with its email's id and result: what the ingest
    and the resend read from the database."""

    email_id: int
    email_result: str
    address: str
    contact_type: str | None
    contact_id: str | None
    status: str


def is_failure(status: str) -> bool:
    """Whether a recipient with ``status`` did not receive the email (what a resend is for)."""
    return status in FAILURE_STATUSES


def is_delivered(status: str) -> bool:
    """Whether a recipient with ``status`` received the email: ``delivered`` or better, and
    not a failure."""
    return (
        status in RANK
        and RANK[status] >= RANK[RecipientStatus.DELIVERED]
        and not is_failure(status)
    )


def stands_in_for(copy: RecipientFacts, original: RecipientFacts) -> bool:
    """Whether ``copy`` (a recipient of a resend) is ``original`` (a recipient of the email
    it resends): the same address, or the same contact record."""
    if copy.address.lower() == original.address.lower():
        return True
    return (
        original.contact_type is not None
        and original.contact_id is not None
        and (copy.contact_type, copy.contact_id) == (original.contact_type, original.contact_id)
    )


def copy_on_its_way(
    recipients: Iterable[RecipientFacts], copies: Iterable[CopyRecipient]
) -> CopyRecipient | None:
    """The first recipient of an earlier copy that is still on its way to one of
    ``recipients`` (those a resend would go to), or ``None``."""
    wanted = list(recipients)
    for copy in copies:
        on_its_way = copy.email_result in ON_ITS_WAY_RESULTS or copy.status in ON_ITS_WAY_STATUSES
        if on_its_way and any(stands_in_for(copy, r) for r in wanted):
            return copy
    return None


def delivered_by_copy(recipient: RecipientFacts, copies: Iterable[CopyRecipient]) -> bool:
    """Whether a copy was delivered to ``recipient`` already (a resend need not go there)."""
    return any(is_delivered(c.status) and stands_in_for(c, recipient) for c in copies)


def resolving_copy(
    recipients: Iterable[RecipientFacts], copies: Iterable[CopyRecipient]
) -> int | None:
    """The id of the copy that resolved the email whose recipients are ``recipients``, given
    the recipients of all its copies; ``None`` while it is not resolved (or when no recipient
    failed on it: there is nothing to resolve).

    Each failed recipient is covered by the first copy delivered to it; the copy that
    resolved the email is the last of those, the one that covered the last failure.
    """
    delivered = [c for c in copies if is_delivered(c.status)]
    resolved_by: int | None = None
    for recipient in recipients:
        if not is_failure(recipient.status):
            continue
        covering = [c.email_id for c in delivered if stands_in_for(c, recipient)]
        if not covering:
            return None
        first = min(covering)
        resolved_by = first if resolved_by is None else max(resolved_by, first)
    return resolved_by


def is_unchanged(recipient: RecipientFacts, address: str) -> bool:
    """Whether a resend to ``address`` goes to the very address that failed on
    ``recipient`` (its contact record was not corrected, or says nothing)."""
    return is_failure(recipient.status) and address.lower() == recipient.address.lower()
