"""Address health and suppression: what a send asks before it hands recipients to the
transport, what a host asks about an address, and the lift of a suppression.

The records are written by the ingest (:mod:`.ingest`, rules in :mod:`.health`) in the same
transaction as the events; this module reads them, and lifts a suppression through the
package's own session.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from flask import Flask

from .context import AppState, config_value
from .health import COMPLAINT, SOFT
from .models import AddressRecord, utcnow

#: The values of ``MAILDELIVERY_SUPPRESSION``.
BLOCK, WARN, OFF = "block", "warn", "off"
MODES = (BLOCK, WARN, OFF)
#: ``AddressHealth.state`` values.
STATE_OK, STATE_FAILING, STATE_SUPPRESSED = "ok", "failing", "suppressed"

_address: sa.Table = cast(sa.Table, AddressRecord.__table__)


def check_settings(app: Flask) -> None:
    """Refuse a ``MAILDELIVERY_SUPPRESSION`` or ``MAILDELIVERY_SOFT_BOUNCE_LIMIT`` that
    means nothing, with what to set instead.

    :raises RuntimeError: one of them is not valid.
    """
    mode = config_value("SUPPRESSION", app)
    if mode not in MODES:
        raise RuntimeError(
            f'MAILDELIVERY_SUPPRESSION is {mode!r}; set it to "block" (do not send to a '
            'suppressed address), "warn" (send, and say so in the log) or "off"'
        )
    limit = config_value("SOFT_BOUNCE_LIMIT", app)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RuntimeError(
            f"MAILDELIVERY_SOFT_BOUNCE_LIMIT is {limit!r}; set it to a whole number of soft "
            "bounces in a row (1 or more, default 5) that suppress an address"
        )


def tenant_key(tenant_id: str | None) -> str:
    """How an address record stores ``tenant_id`` (``""`` for none)."""
    return tenant_id or ""


@dataclass(frozen=True)
class AddressHealth:
    """What the log knows about one address of the current tenant
    (:meth:`MailDelivery.address_health`).

    ``state`` is ``"suppressed"`` (a send skips it, with ``MAILDELIVERY_SUPPRESSION =
    "block"``), ``"failing"`` (it bounced or complained, but is not suppressed) or ``"ok"``
    (no failure known; an address never seen has zeros).

    .. versionadded:: 0.2
    """

    address: str
    state: str = STATE_OK
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    last_failure_at: datetime | None = None
    last_failure_reason: str | None = None
    last_failure_email_id: int | None = None
    last_delivered_at: datetime | None = None
    suppressed: bool = False
    suppressed_reason: str | None = None
    suppressed_at: datetime | None = None
    lifted_at: datetime | None = None
    lifted_by: str | None = None

    @classmethod
    def of(cls, address: str, record: Any) -> AddressHealth:
        """The health of ``address`` from its record (an :class:`~.models.AddressRecord` or a
        row of its table; ``None``: never failed)."""
        if record is None:
            return cls(address=address)
        if record.suppressed:
            state = STATE_SUPPRESSED
        elif record.hard_bounces or record.soft_bounces or record.complaints:
            state = STATE_FAILING
        else:
            state = STATE_OK
        return cls(
            address=record.address,
            state=state,
            hard_bounces=record.hard_bounces,
            soft_bounces=record.soft_bounces,
            complaints=record.complaints,
            last_failure_at=record.last_failure_at,
            last_failure_reason=record.last_failure_reason,
            last_failure_email_id=record.last_failure_email_id,
            last_delivered_at=record.last_delivered_at,
            suppressed=record.suppressed,
            suppressed_reason=record.suppressed_reason,
            suppressed_at=record.suppressed_at,
            lifted_at=record.lifted_at,
            lifted_by=record.lifted_by,
        )


def address_records(
    state: AppState, tenant_id: str | None, addresses: Collection[str]
) -> dict[str, Any]:
    """The records of ``addresses`` (any case) for ``tenant_id``, by lower-cased address:
    rows with the columns of :class:`~.models.AddressRecord` as attributes.

    Read on a connection of its own, closed at once: a send or a host's form that asks
    leaves no transaction open in the package's session (whose snapshot would hide later
    changes on MySQL/MariaDB).
    """
    keys = sorted({a.strip().lower() for a in addresses})
    if not keys:
        return {}
    statement = sa.select(_address).where(
        _address.c.tenant_key == tenant_key(tenant_id), _address.c.address_key.in_(keys)
    )
    with state.db.engine.connect() as connection:
        return {row.address_key: row for row in connection.execute(statement)}


def address_health(state: AppState, address: str, tenant_id: str | None) -> AddressHealth:
    """The health of ``address`` for ``tenant_id``."""
    record = address_records(state, tenant_id, [address]).get(address.strip().lower())
    return AddressHealth.of(address, record)


def suppression_note(record: Any) -> str:
    """Why a send skipped (or warned about) the suppressed address of ``record``, naming the
    failure and its record no.: ``address bounced on 2026-12-01 (record no. 42): 550 ...``."""
    verb = {COMPLAINT: "complained", SOFT: "soft-bounced repeatedly"}.get(
        record.suppressed_cause or "", "bounced"
    )
    when = f" on {record.suppressed_at:%Y-%m-%d}" if record.suppressed_at else ""
    number = (
        f" (record no. {record.suppressed_email_id})"
        if record.suppressed_email_id is not None
        else ""
    )
    reason = f": {record.suppressed_reason}" if record.suppressed_reason else ""
    return f"address {verb}{when}{number}{reason}"


def lift_suppression(state: AppState, address: str, tenant_id: str | None, user: Any) -> bool:
    """Lift the suppression of ``address`` for ``tenant_id``, recorded with ``user``'s
    ``sent_by`` value (or ``"host"`` when no user acts) and the time. Returns whether it was
    suppressed (lifting an address that is not suppressed changes nothing)."""
    by = state.callbacks.sent_by(user) or "host"
    statement = (
        sa.update(_address)
        .where(
            _address.c.tenant_key == tenant_key(tenant_id),
            _address.c.address_key == address.strip().lower(),
            _address.c.suppressed.is_(True),
        )
        .values(
            suppressed=False,
            soft_bounce_streak=0,
            lifted_at=utcnow(),
            lifted_by=by[:255],
            updated_at=utcnow(),
        )
    )
    session = state.sessions()
    try:
        # the condition makes it atomic: of two concurrent lifts, one changes the record
        changed = cast(sa.CursorResult[Any], session.execute(statement)).rowcount == 1
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return changed
