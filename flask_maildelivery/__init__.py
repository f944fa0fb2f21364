"""flask-maildelivery: an email delivery log for Flask apps."""

from __future__ import annotations

from .extension import MailDelivery
from .sending import RecordingFailed, ResendRefused, SendCancelled, SendRefused
from .suppression import AddressHealth
from .transports import TransportError

__version__ = "0.1.0"

__all__ = [
    "AddressHealth",
    "MailDelivery",
    "RecordingFailed",
    "ResendRefused",
    "SendCancelled",
    "SendRefused",
    "TransportError",
    "__version__",
]
