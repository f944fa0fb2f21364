"""Sending: the outbound hook and what surrounds it.

* :mod:`.validate`: a send's arguments checked and turned into the outgoing message;
* :mod:`.hook`: record -> transport -> record the outcome -> signal;
* :mod:`.stdlib`: a stdlib ``EmailMessage`` unpacked into a send;
* :mod:`.resend`: a copy of a stored email;
* :mod:`.errors`: :class:`SendRefused`, :class:`SendCancelled`, :class:`ResendRefused`.
"""

from __future__ import annotations

from .errors import (
    CopyStillOnItsWay,
    RecordingFailed,
    ResendNeedsConfirmation,
    ResendRefused,
    SendCancelled,
    SendRefused,
)
from .hook import send_email
from .resend import resend_address, resend_email
from .stdlib import send_email_message
from .validate import AddressLike, parse_address

__all__ = [
    "AddressLike",
    "CopyStillOnItsWay",
    "RecordingFailed",
    "ResendNeedsConfirmation",
    "ResendRefused",
    "SendCancelled",
    "SendRefused",
    "parse_address",
    "resend_address",
    "resend_email",
    "send_email",
    "send_email_message",
]
