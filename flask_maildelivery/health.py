"""The address health rules: pure functions, no I/O.

What a batch of events says about an address (:class:`AddressFacts`) is folded into the
address's stored record (:class:`AddressState`) by :func:`fold_address`:

* a hard bounce or a spam complaint suppresses the address; so do
  ``soft_limit`` soft bounces in a row (no delivery in between);
* a delivery that happened after the failure that suppressed the address lifts the
  suppression; a failure older than the address's last delivery suppresses nothing (the
  address has worked since);
* each email counts once per address and kind: a bounce reported by two sources (a
  webhook and a bounce message) is one bounce.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from .state import StatusFact
from .vocabulary import BounceType, RecipientStatus

#: Kinds of health facts.
HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
DELIVERY = "delivery"
#: ``lifted_by`` of a suppression lifted by a delivery.
LIFTED_BY_DELIVERY = "delivery"

#: Bounce types that say the address may work later (a full mailbox, a block of the
#: sender's IP): counted as soft bounces. Every other bounce is hard.
SOFT_BOUNCE_TYPES = frozenset({BounceType.SOFT, BounceType.BLOCK, BounceType.UNDETERMINED})
#: Statuses that prove a delivery.
DELIVERED_STATUSES = frozenset(
    {RecipientStatus.DELIVERED, RecipientStatus.OPENED, RecipientStatus.CLICKED}
)


def fact_kind(status: str, bounce_type: str | None) -> str | None:
    """The health kind of a recipient status (``None``: says nothing about the address)."""
    if status == RecipientStatus.BOUNCED:
        return SOFT if bounce_type in SOFT_BOUNCE_TYPES else HARD
    if status == RecipientStatus.COMPLAINED:
        return COMPLAINT
    if status in DELIVERED_STATUSES:
        return DELIVERY
    return None


def new_kinds(before: StatusFact, facts: Iterable[StatusFact]) -> dict[str, StatusFact]:
    """The health kinds that new ``facts`` bring to one recipient whose state was
    ``before``, each with its latest fact; a kind its state already had is not new (the
    email was counted for it)."""
    known = fact_kind(before.status, before.bounce_type)
    found: dict[str, StatusFact] = {}
    for fact in facts:
        kind = fact_kind(fact.status, fact.bounce_type)
        if kind is None or kind == known:
            continue
        current = found.get(kind)
        if current is None or fact.key() > current.key():
            found[kind] = fact
    return found


@dataclass
class Failure:
    """One failure of an address: when, why, on which email."""

    at: datetime | None
    reason: str | None
    email_id: int
    kind: str


@dataclass
class AddressFacts:
    """What one batch says about one address of one tenant."""

    address: str
    contact_type: str | None = None
    contact_id: str | None = None
    hard: int = 0
    complaints: int = 0
    #: The time of each soft bounce (one per email).
    soft_times: list[datetime | None] = field(default_factory=list)
    #: The latest failure of any kind, and the latest that suppresses on its own.
    failure: Failure | None = None
    suppressing: Failure | None = None
    delivered_at: datetime | None = None

    def add(self, kind: str, fact: StatusFact, email_id: int) -> None:
        """Count one recipient's new ``kind`` (its latest ``fact``) of email ``email_id``."""
        if kind == DELIVERY:
            self.delivered_at = _later(self.delivered_at, fact.at)
            return
        failure = Failure(fact.at, fact.reason, email_id, kind)
        if kind == SOFT:
            self.soft_times.append(fact.at)
        else:
            if kind == HARD:
                self.hard += 1
            else:
                self.complaints += 1
            if self.suppressing is None or _before(self.suppressing.at, fact.at):
                self.suppressing = failure
        if self.failure is None or _before(self.failure.at, fact.at):
            self.failure = failure

    @property
    def failures(self) -> bool:
        """Whether the batch brings a failure (the record must exist)."""
        return self.failure is not None


@dataclass(frozen=True)
class AddressState:
    """The stored, changing part of an address's record."""

    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    soft_bounce_streak: int = 0
    last_failure_at: datetime | None = None
    last_failure_reason: str | None = None
    last_failure_email_id: int | None = None
    last_delivered_at: datetime | None = None
    suppressed: bool = False
    suppressed_at: datetime | None = None
    suppressed_reason: str | None = None
    suppressed_cause: str | None = None
    suppressed_email_id: int | None = None
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    @property
    def failures(self) -> int:
        """Every counted failure."""
        return self.hard_bounces + self.soft_bounces + self.complaints


def fold_address(
    state: AddressState, facts: AddressFacts, *, soft_limit: int, now: datetime
) -> tuple[AddressState, bool]:
    """The address's state after ``facts``, and whether this suppressed it."""
    delivered = facts.delivered_at
    soft = len(facts.soft_times)
    if delivered is not None:
        streak = sum(1 for at in facts.soft_times if _before(delivered, at))
    else:
        streak = state.soft_bounce_streak + soft
    changes: dict[str, object] = {
        "hard_bounces": state.hard_bounces + facts.hard,
        "soft_bounces": state.soft_bounces + soft,
        "complaints": state.complaints + facts.complaints,
        "soft_bounce_streak": streak,
        "last_delivered_at": _later(state.last_delivered_at, delivered),
    }
    failure = facts.failure
    if failure is not None and (
        state.last_failure_at is None or not _before(failure.at, state.last_failure_at)
    ):
        changes.update(
            last_failure_at=failure.at,
            last_failure_reason=failure.reason,
            last_failure_email_id=failure.email_id,
        )
    suppressing = facts.suppressing
    if suppressing is None and soft and streak >= soft_limit and facts.failure is not None:
        suppressing = facts.failure if facts.failure.kind == SOFT else None
    worked_since = _later(state.last_delivered_at, delivered)
    newly = False
    if suppressing is not None and (worked_since is None or _before(worked_since, suppressing.at)):
        if not state.suppressed:
            newly = True
            changes.update(
                suppressed=True,
                suppressed_at=suppressing.at,
                suppressed_reason=suppressing.reason,
                suppressed_cause=suppressing.kind,
                suppressed_email_id=suppressing.email_id,
            )
    elif (
        delivered is not None
        and state.suppressed
        and (state.suppressed_at is None or _before(state.suppressed_at, delivered))
    ):
        changes.update(suppressed=False, lifted_at=now, lifted_by=LIFTED_BY_DELIVERY)
    return replace(state, **changes), newly  # type: ignore[arg-type]


def _before(first: datetime | None, second: datetime | None) -> bool:
    """Whether ``first`` is earlier than ``second`` (an unknown time is the earliest)."""
    if second is None:
        return False
    return first is None or first < second


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    return second if _before(first, second) else first
