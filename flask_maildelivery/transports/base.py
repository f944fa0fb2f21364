"""The transport contract: every transport module provides one :class:`Transport` subclass.

A transport receives an :class:`OutgoingMessage` (the stored email, already recorded) and
either returns a :class:`SendResult` or raises :class:`TransportError`. It never touches the
database: :mod:`flask_maildelivery.sending` records the outcome.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from flask import Flask


#: Headers built from an email's structured fields (lower-case); a value passed in ``headers``
#: for one of them is not used as such.
STRUCTURAL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)


@dataclass(frozen=True)
class Address:
    """A display name (may be empty) and an address."""

    name: str
    address: str

    def formatted(self) -> str:
        """``Name <address>`` (quoted as RFC 5322 needs), or the bare address."""
        if not self.name:
            return self.address
        from email.headerregistry import Address as HeaderAddress

        return str(HeaderAddress(display_name=self.name, addr_spec=self.address))


def unique_addresses(
    to: Sequence[Address], cc: Sequence[Address], bcc: Sequence[Address]
) -> tuple[list[Address], list[Address], list[Address]]:
    """``to``, ``cc`` and ``bcc`` with each address once, any case: an address listed
    under two kinds stays under the first (``to``, then ``cc``, then ``bcc``). This is how
    the recipients of an email are recorded, and what the API transports send (some
    providers refuse an address listed twice)."""
    seen: set[str] = set()
    groups: list[list[Address]] = []
    for group in (to, cc, bcc):
        kept = []
        for address in group:
            key = address.address.lower()
            if key not in seen:
                seen.add(key)
                kept.append(address)
        groups.append(kept)
    return groups[0], groups[1], groups[2]


@dataclass(frozen=True)
class Attachment:
    """A file sent with the email. Only its name, type and size are stored."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass
class OutgoingMessage:
    """An email on its way to a transport, in structured form and as MIME.

    :param public_id: the correlation id; transports that talk to a provider put it in the
        provider's own custom-argument field under the key ``maildelivery_id``.
    The complete message (:attr:`mime`) is built from these fields by
    :func:`flask_maildelivery.mime.build_mime` and set before the message reaches a
    transport.
    """

    public_id: str
    sender: Address
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    subject: str
    text: str | None
    html: str | None
    reply_to: str | None
    attachments: list[Attachment]
    headers: dict[str, str]
    metadata: dict[str, object] = field(default_factory=dict)
    #: The envelope sender (Return-Path) when it is not the From address: the tagged
    #: bounce address (``MAILDELIVERY_BOUNCE_ADDRESS``); transports that speak SMTP use it.
    envelope_sender: str | None = None
    #: The message as it goes out, with ``X-MailDelivery-ID`` and no ``Bcc`` header (an
    #: :class:`email.message.Message` built with the ``email.mime`` classes).
    mime: Message = field(init=False, repr=False)

    @property
    def envelope_recipients(self) -> list[str]:
        """Every address the message goes to (bcc included: they are in the envelope only)."""
        return [a.address for a in (*self.to, *self.cc, *self.bcc)]


@dataclass(frozen=True)
class SendResult:
    """What a transport learned from a successful hand-over.

    :param provider_message_id: the provider's id for the message, stored so webhook events
        that carry only that id find the email.
    :param refused_recipients: addresses the server refused while accepting the others,
        each with its SMTP code and the server's text; those recipients are marked ``failed``.
    """

    provider_message_id: str | None = None
    refused_recipients: dict[str, tuple[str, str]] = field(default_factory=dict)


class TransportError(Exception):
    """The transport could not hand the message over.

    :param retryable: the failure is transient (timeout, connection refused, HTTP 429/5xx);
        sending the same message later may succeed.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Transport(ABC):
    """Base class of transports. One instance per app, created at ``init_app``.

    Subclasses read their configuration in ``__init__`` through
    :func:`flask_maildelivery.config.config_value` and may hold a connection between sends.
    """

    #: The short name stored in ``Email.transport``.
    name: ClassVar[str] = "custom"

    def __init__(self, app: Flask) -> None:
        self.app = app

    @abstractmethod
    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand ``message`` over; raise :class:`TransportError` on failure."""

    def close(self) -> None:
        """Release any connection held between sends."""
        return None

    def keep_connections(self) -> None:
        """This thread sends message after message over its life (a task queue's worker):
        keep what it holds for sends across app contexts, until :meth:`close` (reconnecting
        when the server closed it meanwhile).

        .. versionadded:: 0.2
        """
        return None

    def end_of_context(self) -> None:
        """Called when an app context ends (the end of a request, a CLI command, a job):
        release what this thread holds for a burst of sends. Resources shared by all threads
        (an HTTP client's pool) stay open."""
        return None
