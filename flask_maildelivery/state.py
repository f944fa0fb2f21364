"""The delivery state rules: pure functions, no I/O.

A recipient's status is the highest-ranked status among its events, in the one total order
:data:`STATUS_ORDER`; an email's ``result`` and ``status`` follow from its recipients. Because
"highest" is a maximum, the same events in any order and any repetition give the same state,
and the state can be updated incrementally: ``fold(current, new_events)`` equals the fold of
all events.

One refinement: the package's own record of a failed send attempt (a ``deferred`` event of
the outbound hook, :class:`SendAttempt`) describes the send, not the delivery. Once a later
attempt of the same email is accepted for the recipient, those earlier deferrals no longer
count (:func:`counted_facts`), so a message that went through on its second attempt is not
``deferred`` for ever. The rule is still a function of the set of events; only the
incremental fold cannot apply it (the current state does not say which event it came from),
so new attempt facts are folded with every stored event of the recipient instead
(:func:`folds_incrementally`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .vocabulary import EmailResult, EmailStatus, RecipientStatus

#: Recipient statuses, lowest first. A failure outranks every success: a bounce that
#: arrives after ``delivered`` wins (a delayed bounce).
STATUS_ORDER: tuple[RecipientStatus, ...] = tuple(RecipientStatus)
RECIPIENT_STATUSES = STATUS_ORDER
RANK: dict[str, int] = {name: rank for rank, name in enumerate(STATUS_ORDER)}

#: Email results.
RESULTS: tuple[EmailResult, ...] = tuple(EmailResult)
#: Email statuses (empty string: nothing notable).
EMAIL_STATUSES: tuple[EmailStatus, ...] = tuple(EmailStatus)

#: Recipient statuses that mean the recipient did not get the email (``failures`` of
#: :func:`email_result`).
FAILURE_STATUSES = frozenset(
    {
        RecipientStatus.BOUNCED,
        RecipientStatus.DROPPED,
        RecipientStatus.SUPPRESSED,
        RecipientStatus.FAILED,
    }
)
#: The recipient conditions an email's status names, most notable first: the first one that
#: any recipient has is the email's status (:func:`email_status`).
NOTABLE_STATUSES: tuple[EmailStatus, ...] = (
    EmailStatus.BOUNCED,
    EmailStatus.DROPPED,
    EmailStatus.FAILED,
    EmailStatus.SUPPRESSED,
    EmailStatus.COMPLAINED,
    EmailStatus.DEFERRED,
)
#: Results and statuses that put an email on the default "failed emails" list: every
#: notable status but ``opened``.
ATTENTION_RESULTS = frozenset({EmailResult.FAILED, EmailResult.WARNING, EmailResult.ERROR})
ATTENTION_STATUSES = frozenset(NOTABLE_STATUSES)


#: Provider id of the events the package records itself (the outbound hook: refused
#: recipients, failed sends, send attempts).
HOOK_PROVIDER = "maildelivery"


@dataclass(frozen=True)
class SendAttempt:
    """The package's own record, for one recipient, of attempt ``number`` to send an email:
    failed with attempts left (a ``deferred`` event, raw type ``attempt-N``) or accepted by
    the transport on a retry (a ``processed`` event, raw type ``accepted-N``)."""

    number: int
    accepted: bool

    @property
    def status(self) -> RecipientStatus:
        """The event type that records it."""
        return RecipientStatus.PROCESSED if self.accepted else RecipientStatus.DEFERRED

    @property
    def raw_type(self) -> str:
        """The raw type that records it."""
        return f"{'accepted' if self.accepted else 'attempt'}-{self.number}"

    @classmethod
    def of_event(cls, provider: str, event_type: str, raw_type: str | None) -> SendAttempt | None:
        """The attempt a stored event records; ``None`` for any other event (a provider's
        own ``deferred`` among them)."""
        if provider != HOOK_PROVIDER or not raw_type:
            return None
        kind, _, number = raw_type.partition("-")
        if kind not in ("accepted", "attempt") or not (number.isascii() and number.isdigit()):
            return None
        attempt = cls(int(number), accepted=kind == "accepted")
        return attempt if event_type == attempt.status else None

    def superseded_by(self, accepted: int) -> bool:
        """Whether this is a failed attempt made before attempt ``accepted`` was accepted."""
        return not self.accepted and self.number < accepted


@dataclass(frozen=True, order=False)
class StatusFact:
    """What one event says about a recipient; also a recipient's current state.

    The winner among facts is the one with the highest status rank; between equal ranks,
    the later ``at``; then the larger ``tiebreak`` (the event id), then the details
    themselves, so the choice never depends on arrival order.
    """

    status: str
    at: datetime | None = None
    reason: str | None = None
    smtp_code: str | None = None
    bounce_type: str | None = None
    tiebreak: str = ""
    #: The send attempt the fact records (the package's own attempt events), else ``None``.
    #: Not part of the state: a recipient's stored state never names it.
    attempt: SendAttempt | None = field(default=None, compare=False)
    #: The id of the stored event the fact comes from, else ``None`` (a recipient's stored
    #: state names no event). Not part of the state either.
    event_id: int | None = field(default=None, compare=False)

    def key(self) -> tuple[int, float, str, tuple[tuple[bool, str], ...]]:
        """The fact's rank: status, then time, then tiebreak; the details last, so two
        facts never tie unless they are equal (the winner never depends on order)."""
        return (*self._primary_key(), self._details_key())

    def _primary_key(self) -> tuple[int, float, str]:
        return (
            RANK[self.status],
            self.at.timestamp() if self.at else float("-inf"),
            self.tiebreak,
        )

    def _details_key(self) -> tuple[tuple[bool, str], ...]:
        return tuple(
            (v is not None, v or "") for v in (self.reason, self.smtp_code, self.bounce_type)
        )


def is_status(name: str) -> bool:
    """Whether ``name`` is a recipient status (``unknown`` events are not)."""
    return name in RANK


def accepted_attempt(facts: Iterable[StatusFact]) -> int:
    """The latest send attempt accepted among ``facts`` (0: none)."""
    return max(
        (f.attempt.number for f in facts if f.attempt is not None and f.attempt.accepted),
        default=0,
    )


def counted_facts(facts: Iterable[StatusFact]) -> list[StatusFact]:
    """The facts that count for a recipient's status: all but the package's own deferrals of
    attempts made before an attempt that was accepted for the recipient. A provider's own
    ``deferred`` (a delivery delay it reports) always counts."""
    facts = list(facts)
    accepted = accepted_attempt(facts)
    if not accepted:
        return facts
    return [f for f in facts if f.attempt is None or not f.attempt.superseded_by(accepted)]


def folds_incrementally(facts: Iterable[StatusFact]) -> bool:
    """Whether new ``facts`` can be folded into a recipient's current state.

    Not when one records a send attempt: an accepted attempt takes earlier deferrals out of
    the count (the current state may be one of them), and a failed attempt may be one an
    accepted attempt already took out. The recipient's state is then computed from all of
    its events (:func:`recipient_state`).
    """
    return all(f.attempt is None for f in facts)


def recipient_state(facts: Iterable[StatusFact]) -> StatusFact:
    """The recipient's state from its facts (its current state and/or its events).

    Facts whose status is not a recipient status (``unknown``) are ignored, and so are the
    package's own deferrals that a later accepted attempt superseded (:func:`counted_facts`);
    with no fact left, the state is ``queued``.
    """
    best: StatusFact | None = None
    best_key: tuple[int, float, str] | None = None
    for fact in counted_facts(facts):
        if not is_status(fact.status):
            continue
        # the same order as key(), with the details compared only on a tie: this runs for
        # every recipient of a large batch
        key = fact._primary_key()
        if (
            best is None
            or best_key is None
            or key > best_key
            or (key == best_key and fact._details_key() > best._details_key())
        ):
            best, best_key = fact, key
    return best or StatusFact(RecipientStatus.QUEUED)


def email_result(statuses: Sequence[str], *, send_refused: bool = False) -> EmailResult:
    """An email's ``result`` from its recipients' statuses.

    :param send_refused: the send call itself was refused (result ``failed``).
    """
    if send_refused:
        return EmailResult.FAILED
    n = len(statuses)
    if n == 0:
        return EmailResult.QUEUED
    failures = sum(1 for s in statuses if s in FAILURE_STATUSES)
    # "delivered or above but below bounced" in STATUS_ORDER: delivered, opened, clicked,
    # unsubscribed and complained. An unsubscribe or a spam complaint comes from a
    # recipient who received the email, so it counts as received here; the complaint shows
    # in the email's status (``complained``), which puts it on the attention list.
    delivered, bounced = RANK[RecipientStatus.DELIVERED], RANK[RecipientStatus.BOUNCED]
    successes = sum(1 for s in statuses if delivered <= RANK[s] < bounced)
    if failures == n:
        return EmailResult.ERROR
    if failures > 0:
        return EmailResult.WARNING
    if successes == n:
        return EmailResult.DELIVERED
    if any(s in (RecipientStatus.PROCESSED, RecipientStatus.DEFERRED) for s in statuses):
        return EmailResult.PROCESSED
    return EmailResult.QUEUED


def email_status(statuses: Sequence[str]) -> EmailStatus:
    """An email's ``status``: its most notable recipient condition, or empty.

    The first of :data:`NOTABLE_STATUSES` that any recipient has; else ``opened`` when a
    recipient opened or clicked; else empty. So one failed or complaining recipient is never
    hidden behind another recipient's open.
    """
    present = set(statuses)
    for status in NOTABLE_STATUSES:
        if status in present:
            return status
    if present & {RecipientStatus.OPENED, RecipientStatus.CLICKED}:
        return EmailStatus.OPENED
    return EmailStatus.NONE


def needs_attention(result: str, status: str) -> bool:
    """Whether an email belongs on the default (failed emails) list of the log."""
    return result in ATTENTION_RESULTS or status in ATTENTION_STATUSES
