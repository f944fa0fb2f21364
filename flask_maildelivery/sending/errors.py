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


class RecordingFailed(RuntimeError):
    """The database refused to record the email, so nothing was sent; the message says
    why. The package's own transaction is rolled back; the host's session is untouched."""


class SendCancelled(Exception):
    """Raise from a ``before_send`` receiver to stop a send. The email is recorded with result
    ``failed`` and this exception's text as its error, then the exception reaches the caller
    (with the record as ``email``)."""

    email: Email | None = None
