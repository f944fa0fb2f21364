"""The figures of the overview page, its JSON API and ``flask maildelivery stats``: emails per
day by result over the last 30 days, bounce and complaint rates against the thresholds
mailbox providers enforce, the recipient domains that fail most, each provider's last event
and lag, and the counts that lead to the attention list.

Everything here only reads, scoped to one tenant like the log. The chart, the rates and the
failing domains add up the hourly rollups (:mod:`flask_maildelivery.rollup`, kept exact by
the writers) instead of counting the month's emails; the days are the viewer's, cut at the
viewer's midnights (converted to UTC in Python, so every database groups them alike, time
zone tables or not), and the hours a midnight cuts in two (a zone whose offset is not whole
hours) are counted from the emails. The other figures are indexed aggregates over the
emails and events, and the counts that may grow without bound (attention, overdue) stop at
:data:`COUNT_CAP`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from ..context import config_value
from ..models import (
    AddressRecord,
    Email,
    Event,
    HourlyDomain,
    HourlyFailure,
    HourlyOutcome,
    Recipient,
    utcnow,
)
from ..rollup import HOUR, domain_of, hour_of
from ..state import FAILURE_STATUSES
from ..suppression import STATE_SUPPRESSED, tenant_key
from ..tracking import Tracking
from ..vocabulary import EmailResult, EmailStatus
from .queries import LogFilter, filter_clauses

#: Days the chart shows (today included).
CHART_DAYS = 30
#: The windows of the rates, in days (today included).
RATE_WINDOWS = (7, 30)
#: How many failing domains the page lists.
TOP_DOMAINS = 10
#: Counts that could grow without bound stop here (the page shows "1000+").
COUNT_CAP = 1000
#: The window of a provider's event lag.
LAG_WINDOW = timedelta(days=1)

#: The chart's series, bottom to top, and the results each one counts.
SERIES: dict[str, tuple[EmailResult, ...]] = {
    "delivered": (EmailResult.DELIVERED,),
    "pending": (EmailResult.PROCESSED, EmailResult.QUEUED),
    "warning": (EmailResult.WARNING,),
    "error": (EmailResult.ERROR,),
    "failed": (EmailResult.FAILED,),
}
_SERIES_OF_RESULT = {result: name for name, results in SERIES.items() for result in results}
_FAILED_RESULTS = sorted({EmailResult.WARNING, EmailResult.ERROR, EmailResult.FAILED})


@dataclass(frozen=True)
class Thresholds:
    """Where a rate turns amber (``warn``) and red (``alarm``), as fractions."""

    warn: float
    alarm: float

    def level(self, rate: float | None) -> str:
        """``"ok"``, ``"warn"`` or ``"alarm"`` for ``rate`` (``"ok"`` when nothing was sent)."""
        if rate is None or rate < self.warn:
            return "ok"
        return "warn" if rate < self.alarm else "alarm"


def thresholds(key: str, value: Any) -> Thresholds:
    """The :class:`Thresholds` of configuration key ``key`` (``(warn, alarm)`` fractions).

    :raises ValueError: ``value`` is not two fractions from 0 to 1, the first not above the
        second; the message says what is expected.
    """
    try:
        warn, alarm = (float(part) for part in value)
    except (TypeError, ValueError):
        warn = alarm = -1.0
    if not 0 <= warn <= alarm <= 1:
        raise ValueError(
            f"{key} must be two fractions (amber from, red from), such as (0.001, 0.003) for "
            f"0.1% and 0.3%, the first not above the second; not {value!r}"
        )
    return Thresholds(warn, alarm)


def rate_thresholds(app: Flask | None = None) -> tuple[Thresholds, Thresholds]:
    """The app's bounce and complaint :class:`Thresholds`.

    :raises ValueError: a key's value is not valid (checked when the pages are registered).
    """
    return (
        thresholds(
            "MAILDELIVERY_BOUNCE_RATE_THRESHOLDS", config_value("BOUNCE_RATE_THRESHOLDS", app)
        ),
        thresholds(
            "MAILDELIVERY_COMPLAINT_RATE_THRESHOLDS",
            config_value("COMPLAINT_RATE_THRESHOLDS", app),
        ),
    )


@dataclass(frozen=True)
class Day:
    """One day of the chart: emails sent that day by series (:data:`SERIES`)."""

    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        """Every email sent that day."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Rates:
    """Bounce and complaint rates over the last ``days`` days.

    ``sent``: emails handed to the transport (every email but those refused at send time);
    ``bounced``: of those, emails whose status is ``bounced`` (a recipient bounced);
    ``complained``: those whose status is ``complained`` (a recipient reported it as spam,
    and none failed: a failure outranks a complaint in the email's status, so an email that
    both bounced and was reported counts as a bounce). A rate is ``None`` when nothing was
    sent.
    """

    days: int
    sent: int
    bounced: int
    complained: int
    bounce_level: str
    complaint_level: str

    @property
    def bounce_rate(self) -> float | None:
        """``bounced / sent``."""
        return self.bounced / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        """``complained / sent``."""
        return self.complained / self.sent if self.sent else None


@dataclass(frozen=True)
class FailingDomain:
    """A recipient domain with failed recipients in the chart's window."""

    domain: str
    #: Recipients of that domain whose status is a failure (bounced, dropped, ...).
    failures: int
    #: Every recipient of that domain in the window.
    recipients: int
    #: The reason of its latest failure and when it happened.
    last_reason: str | None
    last_failure_at: datetime | None

    @property
    def rate(self) -> float | None:
        """The domain's failure rate: ``failures / recipients``."""
        return self.failures / self.recipients if self.recipients else None


@dataclass(frozen=True)
class ProviderHealth:
    """Whether a provider's events still arrive."""

    provider: str
    #: When its last event was received (any tenant: the webhook is the app's).
    last_event_at: datetime | None
    #: Median seconds between an email's send and its first event from this provider, over
    #: the emails sent in the last day that have one; ``None`` when none has.
    median_lag: float | None
    #: Emails of the last day that have an event from it.
    lag_emails: int
    #: Emails still without a final word after the outcome timeout (the tracked provider
    #: only; ``None`` for the others), up to :data:`COUNT_CAP`.
    overdue: int | None


@dataclass(frozen=True)
class Count:
    """One count of the attention section, with the log's query arguments that list it
    (``None``: it links elsewhere or nowhere)."""

    key: str
    value: int
    log_args: dict[str, str] | None = None
    #: The page of the log that lists it: ``"index"`` (the emails) or ``"addresses"``.
    endpoint: str = "index"

    @property
    def capped(self) -> bool:
        """Whether the count stopped at :data:`COUNT_CAP` (there are at least that many)."""
        return self.value >= COUNT_CAP


@dataclass(frozen=True)
class Overview:
    """Every figure of the overview, as the page, the API and the CLI show them."""

    generated_at: datetime
    timezone: str
    days: list[Day]
    rates: list[Rates]
    domains: list[FailingDomain]
    providers: list[ProviderHealth]
    counts: list[Count] = field(default_factory=list)

    @property
    def first_day(self) -> date:
        """The first day of the chart."""
        return self.days[0].day


def as_zoneinfo(zone: tzinfo | None) -> ZoneInfo:
    """``zone`` (a pytz zone from Flask-Babel, a :class:`~zoneinfo.ZoneInfo`, or ``None``
    for UTC) as a :class:`~zoneinfo.ZoneInfo`, whose conversions follow daylight saving."""
    if zone is None:
        return ZoneInfo("UTC")
    if isinstance(zone, ZoneInfo):
        return zone
    return ZoneInfo(getattr(zone, "zone", None) or str(zone))


def day_bounds(zone: ZoneInfo, now: datetime, days: int = CHART_DAYS) -> list[datetime]:
    """The UTC moments of the viewer's midnights that cut the last ``days`` days (today
    included) in ``zone``: ``days + 1`` moments, the last one tomorrow's midnight."""
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    return [
        datetime.combine(first + timedelta(days=n), time.min, tzinfo=zone).astimezone(UTC)
        for n in range(days + 1)
    ]


def _tenant(tenant_id: str | None) -> sa.ColumnElement[bool]:
    return Email.tenant_id.is_(None) if tenant_id is None else Email.tenant_id == tenant_id


def _day_index(
    bounds: Sequence[datetime], column: Any = Email.sent_at, low: int = 0, high: int | None = None
) -> Any:
    """The chart day (0 = the first) of an email's ``sent_at``, for an email between
    ``bounds[0]`` and ``bounds[-1]``: ``CASE`` expressions nested as a binary search, so
    each row is compared with five bounds, not thirty."""
    high = len(bounds) - 1 if high is None else high
    if high - low == 1:
        return sa.literal(low, sa.Integer)
    middle = (low + high) // 2
    return sa.case(
        (column < bounds[middle], _day_index(bounds, column, low, middle)),
        else_=_day_index(bounds, column, middle, high),
    )


def split_hours(bounds: Sequence[datetime]) -> list[datetime]:
    """The UTC hours that a viewer's midnight of ``bounds`` cuts in two (zones whose offset
    is not whole hours, such as Asia/Kolkata): the hourly rollup cannot tell which day
    each email of such an hour belongs to, so those hours are counted from the emails."""
    return sorted({hour_of(b) for b in bounds if b != hour_of(b)})


def edge_hours(bounds: Sequence[datetime]) -> list[datetime]:
    """Of :func:`split_hours`, those at the ends of the window (its first and last
    midnight): the failing domains count the whole window, so an hour cut inside it counts
    whole from the rollups, and only these are counted from the emails."""
    ends = {hour_of(bounds[0]), hour_of(bounds[-1])}
    return [hour for hour in split_hours(bounds) if hour in ends]


def _emails_of_hours(
    bounds: Sequence[datetime],
    tenant_id: str | None,
    hours: Sequence[datetime],
    *columns: Any,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> Any:
    """``columns`` of the tenant's emails of the window sent in ``hours`` (those a viewer's
    midnight cuts), as a subquery: one index range per hour (``UNION ALL``), where an ``OR``
    of the ranges would have the database read the whole window."""
    return sa.union_all(
        *(
            sa.select(*columns).where(
                _tenant(tenant_id),
                Email.sent_at >= max(hour, bounds[0]),
                Email.sent_at < min(hour + HOUR, bounds[-1]),
                *where,
            )
            for hour in hours
        )
    ).subquery()


def _grouped(columns: Sequence[Any], rows: Any = None) -> Any:
    """``columns`` and the count of each group of them: grouped by a subquery's columns,
    since a bound parameter repeated in ``GROUP BY`` is another parameter to PostgreSQL."""
    keys = sa.select(*columns)
    if rows is not None:
        keys = keys.select_from(rows)
    grouped = keys.subquery()
    return sa.select(*grouped.c, sa.func.count()).group_by(*grouped.c)


def outcomes(
    connection: sa.Connection, bounds: Sequence[datetime], tenant_id: str | None
) -> dict[tuple[Any, ...], int]:
    """Emails of the window by ``(day, result, status)``: the hourly rollup's rows of the
    window (:class:`~flask_maildelivery.models.HourlyOutcome`, a primary key range), each
    hour summed into the viewer's day it starts, and, in a zone whose midnights cut hours,
    the emails of those hours counted one by one (an index range each)."""
    split = split_hours(bounds)
    window = [
        HourlyOutcome.tenant_key == tenant_key(tenant_id),
        HourlyOutcome.hour >= hour_of(bounds[0]),
        HourlyOutcome.hour < bounds[-1],
    ]
    if split:
        window.append(HourlyOutcome.hour.not_in(split))
    hours = (
        sa.select(
            # a whole hour lies in one day: the day its start falls in
            _day_index(bounds, HourlyOutcome.hour).label("day"),
            HourlyOutcome.result,
            HourlyOutcome.status,
            HourlyOutcome.emails,
        )
        .where(*window)
        .subquery()
    )
    keys = [hours.c.day, hours.c.result, hours.c.status]
    statement = sa.select(*keys, sa.func.sum(hours.c.emails)).group_by(*keys)
    counts: Counter[tuple[Any, ...]] = Counter()
    for *key, n in connection.execute(statement):
        counts[tuple(key)] += int(n)
    if split:
        rows = _emails_of_hours(bounds, tenant_id, split, Email.sent_at, Email.result, Email.status)
        cut = _grouped(
            [_day_index(bounds, rows.c.sent_at).label("day"), rows.c.result, rows.c.status], rows
        )
        for *key, n in connection.execute(cut):
            counts[tuple(key)] += int(n)
    return {key: n for key, n in counts.items() if n}


def chart_days(bounds: Sequence[datetime], counts: dict[tuple[Any, ...], int]) -> list[Day]:
    """Emails per viewer day by series over the days ``bounds`` cut (moments in the viewer's
    time zone), from :func:`outcomes`."""
    days = [Day(start.date(), dict.fromkeys(SERIES, 0)) for start in bounds[:-1]]
    for (index, result, _), n in counts.items():
        days[index].counts[_SERIES_OF_RESULT[result]] += n
    return days


def rates(
    bounds: Sequence[datetime],
    counts: dict[tuple[Any, ...], int],
    bounce: Thresholds,
    complaint: Thresholds,
) -> list[Rates]:
    """Bounce and complaint rates over each of :data:`RATE_WINDOWS` (the last days of
    ``bounds``), from :func:`outcomes`: no statement of their own."""
    found = []
    last = len(bounds) - 1
    for window in RATE_WINDOWS:
        first = max(0, last - window)
        by_status: Counter[str] = Counter()
        for (index, result, status), n in counts.items():
            if index >= first and result != EmailResult.FAILED:
                by_status[status] += n
        sent = by_status.total()
        bounces = by_status[EmailStatus.BOUNCED]
        complaints = by_status[EmailStatus.COMPLAINED]
        found.append(
            Rates(
                days=window,
                sent=sent,
                bounced=bounces,
                complained=complaints,
                bounce_level=bounce.level(bounces / sent if sent else None),
                complaint_level=complaint.level(complaints / sent if sent else None),
            )
        )
    return found


def _failures_of_hours(
    connection: sa.Connection,
    bounds: Sequence[datetime],
    tenant_id: str | None,
    hours: Sequence[datetime],
) -> dict[str, tuple[int, datetime | None, str | None]]:
    """The failed recipients of the emails of the window sent in ``hours`` (the hours the
    window's ends cut), by domain: how many, and the time and reason of the latest
    (window functions over the failed emails of those hours: an index range each)."""
    domain = domain_of(Recipient.address_key)
    emails = _emails_of_hours(
        bounds, tenant_id, hours, Email.id, where=[Email.result.in_(_FAILED_RESULTS)]
    )
    failed = (
        sa.select(
            domain.label("domain"),
            Recipient.reason,
            Recipient.status_at,
            sa.func.row_number()
            .over(
                partition_by=domain,
                order_by=(Recipient.status_at.desc(), Recipient.id.desc()),
            )
            .label("position"),
            sa.func.count().over(partition_by=domain).label("failures"),
        )
        .join(emails, emails.c.id == Recipient.email_id)
        .where(Recipient.status.in_(sorted(FAILURE_STATUSES)))
        .subquery()
    )
    statement = sa.select(
        failed.c.domain, failed.c.failures, failed.c.status_at, failed.c.reason
    ).where(failed.c.position == 1)
    return {name: (n, at, reason) for name, n, at, reason in connection.execute(statement)}


def failing_domains(
    connection: sa.Connection, bounds: Sequence[datetime], tenant_id: str | None
) -> list[FailingDomain]:
    """The :data:`TOP_DOMAINS` recipient domains with the most failed recipients among the
    emails of the window, with each one's latest failure and its recipients in the window
    (:func:`domain_recipients`): the hourly rollup's rows
    (:class:`~flask_maildelivery.models.HourlyFailure`, a primary key range), and the
    failures of the hours the window's first and last midnights cut (:func:`edge_hours`)
    counted from the recipients."""
    split = edge_hours(bounds)
    window = [
        HourlyFailure.tenant_key == tenant_key(tenant_id),
        HourlyFailure.hour >= hour_of(bounds[0]),
        HourlyFailure.hour < bounds[-1],
        HourlyFailure.failures > 0,
    ]
    if split:
        window.append(HourlyFailure.hour.not_in(split))
    totals: Counter[str] = Counter()
    statement = (
        sa.select(HourlyFailure.domain, sa.func.sum(HourlyFailure.failures))
        .where(*window)
        .group_by(HourlyFailure.domain)
    )
    for name, n in connection.execute(statement):
        totals[name] += int(n)
    cut = _failures_of_hours(connection, bounds, tenant_id, split) if split else {}
    for name, (n, _, _) in cut.items():
        totals[name] += n
    top = sorted((name for name, n in totals.items() if n > 0), key=lambda d: (-totals[d], d))
    top = top[:TOP_DOMAINS]
    if not top:
        return []
    latest: dict[str, tuple[datetime | None, str | None]] = {
        name: (at, reason) for name, (_, at, reason) in cut.items()
    }
    last = sa.select(
        HourlyFailure.domain, HourlyFailure.last_failure_at, HourlyFailure.last_reason
    ).where(*window, HourlyFailure.domain.in_(top))
    for name, at, reason in connection.execute(last):
        known = latest.get(name)
        if known is None or (at is not None and (known[0] is None or at > known[0])):
            latest[name] = (at, reason)
    recipients = domain_recipients(connection, bounds, tenant_id, top)
    return [
        FailingDomain(name, totals[name], recipients.get(name, 0), latest[name][1], latest[name][0])
        for name in top
    ]


def domain_recipients(
    connection: sa.Connection,
    bounds: Sequence[datetime],
    tenant_id: str | None,
    domains: Sequence[str],
) -> dict[str, int]:
    """The recipients at each of ``domains`` among the emails of the window: the hourly
    rollup's rows (:class:`~flask_maildelivery.models.HourlyDomain`, a primary key range
    per domain), and the recipients of the hours the window's ends cut
    (:func:`edge_hours`) counted one by one."""
    if not domains:
        return {}
    split = edge_hours(bounds)
    statement = (
        sa.select(HourlyDomain.domain, sa.func.sum(HourlyDomain.recipients))
        .where(
            HourlyDomain.tenant_key == tenant_key(tenant_id),
            HourlyDomain.domain.in_(sorted(domains)),
            HourlyDomain.hour >= hour_of(bounds[0]),
            HourlyDomain.hour < bounds[-1],
        )
        .group_by(HourlyDomain.domain)
    )
    if split:
        statement = statement.where(HourlyDomain.hour.not_in(split))
    counts: Counter[str] = Counter()
    for name, n in connection.execute(statement):
        counts[name] += int(n)
    if split:
        emails = _emails_of_hours(bounds, tenant_id, split, Email.id)
        rows = (
            sa.select(domain_of(Recipient.address_key).label("domain"))
            .join(emails, emails.c.id == Recipient.email_id)
            .subquery()
        )
        by_domain = (
            sa.select(rows.c.domain, sa.func.count())
            .where(rows.c.domain.in_(sorted(domains)))
            .group_by(rows.c.domain)
        )
        for name, n in connection.execute(by_domain):
            counts[name] += int(n)
    return dict(counts)


def capped_count(
    connection: sa.Connection, *where: sa.ColumnElement[bool], key: Any = Email.id
) -> int:
    """How many rows (emails, or the table of ``key``) match ``where``, counted up to
    :data:`COUNT_CAP`."""
    limited = sa.select(key).where(*where).limit(COUNT_CAP).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(limited)).scalar_one())


def provider_health(
    connection: sa.Connection,
    providers: Sequence[str],
    tenant_id: str | None,
    track: Tracking,
    now: datetime,
) -> list[ProviderHealth]:
    """Each of ``providers``: its last event, its median lag over the last day, and (the
    tracked one) its overdue emails."""
    rule = track.overdue_rule(now)
    found = []
    for provider in providers:
        last_event_at = connection.execute(
            sa.select(sa.func.max(Event.received_at)).where(Event.provider == provider)
        ).scalar_one()
        firsts = (
            sa.select(Email.sent_at, sa.func.min(Event.received_at).label("first"))
            .join(Event, Event.email_id == Email.id)
            .where(
                _tenant(tenant_id),
                Email.sent_at >= now - LAG_WINDOW,
                Email.sent_at < now,
                Event.provider == provider,
                # an event is received after its email was sent: an index range on
                # (provider, received_at) instead of every event of the provider
                Event.received_at >= now - LAG_WINDOW,
            )
            .group_by(Email.id, Email.sent_at)
        )
        lags = [
            max(0.0, (first - sent_at).total_seconds())
            for sent_at, first in connection.execute(firsts)
            if sent_at is not None and first is not None
        ]
        overdue = (
            capped_count(connection, _tenant(tenant_id), rule.clause())
            if rule is not None and provider == track.provider
            else None
        )
        found.append(
            ProviderHealth(
                provider,
                last_event_at,
                statistics.median(lags) if lags else None,
                len(lags),
                overdue,
            )
        )
    return found


def attention_counts(
    connection: sa.Connection, tenant_id: str | None, track: Tracking, now: datetime
) -> list[Count]:
    """The counts that lead to the attention list: needing attention (the log's default
    list), overdue, and the suppressed addresses (the addresses page), each up to
    :data:`COUNT_CAP`. The caller adds its own (failed inbox
    requests, ...): one :class:`Count` each."""
    rule = track.overdue_rule(now)
    attention = LogFilter(overdue_rule=rule)
    counts = [
        Count("attention", capped_count(connection, *filter_clauses(attention, tenant_id)), {})
    ]
    if rule is not None:
        overdue = LogFilter(overdue_only=True, overdue_rule=rule)
        counts.append(
            Count(
                "overdue",
                capped_count(connection, *filter_clauses(overdue, tenant_id)),
                {"overdue": "1"},
            )
        )
    suppressed = capped_count(
        connection,
        AddressRecord.tenant_key == tenant_key(tenant_id),
        AddressRecord.suppressed.is_(True),
        key=AddressRecord.id,
    )
    counts.append(
        Count("suppressed", suppressed, {"state": STATE_SUPPRESSED}, endpoint="addresses")
    )
    return counts


def read_overview(
    connection: sa.Connection,
    tenant_id: str | None,
    *,
    zone: tzinfo | None,
    track: Tracking,
    providers: Sequence[str],
    bounce: Thresholds,
    complaint: Thresholds,
    now: datetime | None = None,
) -> Overview:
    """Every figure of the overview for ``tenant_id``, its days cut in ``zone``."""
    now = now or utcnow()
    zone_info = as_zoneinfo(zone)
    bounds = [moment.astimezone(zone_info) for moment in day_bounds(zone_info, now)]
    counts = outcomes(connection, bounds, tenant_id)
    return Overview(
        generated_at=now,
        timezone=zone_info.key,
        days=chart_days(bounds, counts),
        rates=rates(bounds, counts, bounce, complaint),
        domains=failing_domains(connection, bounds, tenant_id),
        providers=provider_health(connection, providers, tenant_id, track, now),
        counts=attention_counts(connection, tenant_id, track, now),
    )
