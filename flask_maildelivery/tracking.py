"""Outcome tracking: does anything report what happened to the emails after the mail
server or the provider accepted them, is it still reporting, and which emails are overdue.

An email sent through a transport whose outcomes are reported (a provider API transport
whose webhook credentials are configured, or SMTP with ``MAILDELIVERY_SMTP_PROVIDER``
naming such a provider) that still has no final word ``MAILDELIVERY_OUTCOME_TIMEOUT``
seconds after it was sent is **overdue**. SMTP with a bounce mailbox
(``MAILDELIVERY_BOUNCE_MAILBOX``) is tracked too, but only for failures: nothing becomes
overdue for want of a bounce. Without such a source only the server's
acceptance is known, and the log says so instead of implying delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .bounces.reports import DSN_PROVIDER
from .context import AppState
from .models import Email, Event, utcnow
from .vocabulary import EmailResult

#: Results that are no final word yet.
PENDING_RESULTS = frozenset({EmailResult.QUEUED, EmailResult.PROCESSED})
#: Providers report within minutes; emails younger than this are not expected to have
#: events yet when the log checks that a provider still reports.
REPORTING_GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class OverdueRule:
    """Which emails are overdue now: sent through ``transport`` before ``cutoff`` and still
    without a final word."""

    transport: str
    cutoff: datetime

    def clause(self) -> sa.ColumnElement[bool]:
        """The rule as a ``WHERE`` clause (an index range on result and sent time)."""
        return sa.and_(
            Email.result.in_(sorted(PENDING_RESULTS)),
            Email.sent_at < self.cutoff,
            Email.transport == self.transport,
        )

    def applies(self, result: str, sent_at: datetime | None, transport: str | None) -> bool:
        """Whether an email with these values is overdue."""
        return (
            result in PENDING_RESULTS
            and sent_at is not None
            and sent_at < self.cutoff
            and transport == self.transport
        )


@dataclass(frozen=True)
class Tracking:
    """What reports the outcomes of the emails the app sends now.

    :param transport: the transport's short name (``Email.transport``).
    :param provider: the provider whose events report the outcomes, or ``None`` when
        nothing does (only the server's acceptance is known).
    :param timeout: seconds after which an email with no final word is overdue.
    """

    transport: str
    provider: str | None
    timeout: float

    @property
    def tracked(self) -> bool:
        """Whether outcomes are reported at all."""
        return self.provider is not None

    def overdue_rule(self, now: datetime | None = None) -> OverdueRule | None:
        """The overdue rule at ``now`` (default: the current time); ``None`` when outcomes
        are not tracked, so no email can be overdue, and for a bounce mailbox: a mail server
        reports only failures, so silence is the usual news of a delivery, not a delay."""
        if self.provider is None or self.provider == DSN_PROVIDER:
            return None
        return OverdueRule(self.transport, (now or utcnow()) - timedelta(seconds=self.timeout))


def tracking(state: AppState) -> Tracking:
    """The app's outcome tracking, from its transport and its configured webhooks."""
    transport = state.transport.name
    settings = state.settings
    provider = settings["MAILDELIVERY_SMTP_PROVIDER"] if transport == "smtp" else transport
    if provider not in state.reporting_providers:
        # an SMTP sender whose bounces come back to a read mailbox learns its failures
        bounces = transport == "smtp" and settings["MAILDELIVERY_BOUNCE_MAILBOX"] is not None
        provider = DSN_PROVIDER if bounces else None
    return Tracking(
        transport=transport,
        provider=provider,
        timeout=float(settings["MAILDELIVERY_OUTCOME_TIMEOUT"]),
    )


@dataclass(frozen=True)
class TrackingHealth:
    """What the log says about outcome tracking.

    :param state: ``"untracked"`` (nothing reports outcomes), ``"silent"`` (emails went out
        through the tracked transport, but the provider sent no event within the timeout)
        or ``"ok"``.
    :param last_event_at: when the provider's last event arrived, if ever.
    """

    state: str
    provider: str | None = None
    last_event_at: datetime | None = None


def tracking_health(
    session: Session, track: Tracking, now: datetime | None = None
) -> TrackingHealth:
    """Whether outcomes are tracked, and whether the provider still reports: two indexed
    reads (its last event, and whether emails went out through it since the timeout)."""
    if track.provider is None:
        return TrackingHealth("untracked")
    now = now or utcnow()
    if track.provider == DSN_PROVIDER:
        # a bounce mailbox hears only of failures: its silence is the good news
        return TrackingHealth("ok", track.provider)
    last_event_at = session.scalar(
        sa.select(sa.func.max(Event.received_at)).where(Event.provider == track.provider)
    )
    since = now - timedelta(seconds=track.timeout)
    if last_event_at is not None and last_event_at >= since:
        return TrackingHealth("ok", track.provider, last_event_at)
    expecting = session.scalar(
        sa.select(Email.id)
        .where(
            Email.transport == track.transport,
            Email.sent_at >= since,
            Email.sent_at < now - REPORTING_GRACE,
        )
        .limit(1)
    )
    state = "silent" if expecting is not None else "ok"
    return TrackingHealth(state, track.provider, last_event_at)
