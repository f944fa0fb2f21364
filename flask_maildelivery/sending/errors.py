"""What a send raises when it does not go out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import Email


class SendRefused(ValueError):
    """A send was refused before anything went out; the message says why and how to fix it.

    The refused email is recorded with result ``failed`` and the message as its error, and
    is :attr:`email`; ``None`` when nothing was recorded (a resend with nothing to resend,
    or a database that refused the record too: the message then says so).
    """

    email: Email | None = None


class ResendRefused(SendRefused):
    """A resend was refused before anything was sent, and no new email was recorded; the
    message says why.

    .. versionadded:: 0.2
    """

    #: Whether ``force=True`` (the command line's ``--force``) would send it anyway.
    can_force: bool = False


class CopyStillOnItsWay(ResendRefused):
    """An earlier copy of the email is still on its way to a recipient the resend would go
    to: wait for its outcome (or force the resend).

    .. versionadded:: 0.2
    """

    can_force = True

    def __init__(self, email_id: int, copy_id: int, address: str) -> None:
        super().__init__(
            f"email {email_id}: its copy {copy_id} is still on its way to {address}; wait for "
            "its outcome before resending"
        )
        #: The copy on its way.
        self.copy_id = copy_id
        #: The address it is on its way to.
        self.address = address


class ResendNeedsConfirmation(ResendRefused):
    """The resend would go to an address that is unchanged since it failed (its contact
    record was not corrected): confirm it (``confirm=True``) or force it.

    .. versionadded:: 0.2
    """

    can_force = True

    def __init__(self, email_id: int, unchanged: list[tuple[str, str, str | None]]) -> None:
        listed = "; ".join(
            f"{address} ({status}: {reason})" if reason else f"{address} ({status})"
            for address, status, reason in unchanged
        )
        super().__init__(
            f"email {email_id}: unchanged since it failed: {listed}; correct the contact "
            "record first, or confirm the resend to the same address"
        )
        #: ``(address, status, reason)`` of each failed recipient whose address is unchanged.
        self.unchanged = unchanged


class RecordingFailed(RuntimeError):
    """The database refused to record the email, so nothing was sent; the message says
    why. The package's own transaction is rolled back; the host's session is untouched."""


class SendCancelled(Exception):
    """Raise from a ``before_send`` receiver to stop a send. The email is recorded with result
    ``failed`` and this exception's text as its error, then the exception reaches the caller
    (with the record as ``email``)."""

    email: Email | None = None
