"""Adapters that record mail sent through other Flask mail extensions without changing the
host's call sites: :mod:`.mailman` (Flask-Mailman backend) and :mod:`.flask_mail`
(Flask-Mail capture)."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import Email


class DeliveryFailed(smtplib.SMTPException):
    """A captured message was recorded, but the transport could not send it.

    A subclass of :class:`smtplib.SMTPException` (so of :class:`OSError`), so a host's
    existing ``except smtplib.SMTPException`` around its mail calls still catches it.

    :param email: the stored email (result ``failed``, the reason in ``error``).
    """

    def __init__(self, email: Email) -> None:
        super().__init__(f"email {email.id} was not sent: {email.error}")
        self.email = email


__all__ = ["DeliveryFailed"]
