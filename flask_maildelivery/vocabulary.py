"""The stored vocabularies as types: each value is stored as its lower-case string, so a
typo in code is a type error instead of a silently unknown status."""

from __future__ import annotations

from enum import StrEnum


class RecipientStatus(StrEnum):
    """A recipient's status, in rank order (see :mod:`flask_maildelivery.state`)."""

    QUEUED = "queued"
    PROCESSED = "processed"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    #: Not sent: the address is suppressed (an earlier hard bounce or complaint).
    SUPPRESSED = "suppressed"
    #: Refused at send time.
    FAILED = "failed"


class EventType(StrEnum):
    """A normalized event type: a recipient status, or ``unknown`` for a provider event
    whose name we do not know (kept and shown, never applied)."""

    QUEUED = "queued"
    PROCESSED = "processed"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    SUPPRESSED = "suppressed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class EmailResult(StrEnum):
    """An email's result (the seed's "Résultat")."""

    FAILED = "failed"
    QUEUED = "queued"
    PROCESSED = "processed"
    DELIVERED = "delivered"
    WARNING = "warning"
    ERROR = "error"


class EmailStatus(StrEnum):
    """An email's status: its most notable recipient condition (the seed's "Statut"), in
    the order :func:`~flask_maildelivery.state.email_status` looks for them."""

    BOUNCED = "bounced"
    DROPPED = "dropped"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    COMPLAINED = "complained"
    DEFERRED = "deferred"
    OPENED = "opened"
    NONE = ""


class BounceType(StrEnum):
    """How a bounce is classed."""

    HARD = "hard"
    SOFT = "soft"
    BLOCK = "block"
    UNDETERMINED = "undetermined"


class RecipientKind(StrEnum):
    """Where an address stands on the email."""

    TO = "to"
    CC = "cc"
    BCC = "bcc"


class InboxStatus(StrEnum):
    """Where a stored webhook request stands (:class:`~flask_maildelivery.models.WebhookInbox`)."""

    #: Stored, its events not applied yet (being applied, or the apply could not say).
    PENDING = "pending"
    #: Its events are applied.
    APPLIED = "applied"
    #: Applying its events failed; ``flask maildelivery inbox retry`` applies it again.
    FAILED = "failed"


class QueueState(StrEnum):
    """Where a queued send stands (:class:`~flask_maildelivery.models.QueuedSend`)."""

    #: Waiting for its time: queued, scheduled (``send_at``) or waiting for a retry.
    WAITING = "waiting"
    #: Claimed by a worker (or the retry command) and being handed to the transport.
    SENDING = "sending"
