"""The addresses with problems, worst first: the reads the addresses page and its JSON API
share (``GET {URL_PREFIX}/addresses``, ``GET {URL_PREFIX}/api/addresses``).

One index range per page (``ix_maildelivery_address_tenant_worst``: tenant, suppressed,
failures, id), read newest-worst first with keyset pagination; no ``COUNT(*)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..context import get_state
from ..models import AddressRecord
from ..suppression import STATE_FAILING, STATE_SUPPRESSED, tenant_key
from .queries import MAX_ID, FilterError, decode_token, encode_token, reading
from .reading import viewer_tenant

#: The ``state`` filter's values (empty: every address with a problem).
STATES = (STATE_SUPPRESSED, STATE_FAILING)
_DIGITS = re.compile(r"[0-9]{1,19}")
#: Longest contact type (``AddressRecord.contact_type``).
CONTACT_TYPE_LENGTH = 64


@dataclass(frozen=True)
class AddressCursor:
    """A position in the list: the ``(suppressed, failures, id)`` of the last row shown."""

    suppressed: bool
    failures: int
    id: int

    def encode(self) -> str:
        """The cursor as an opaque URL-safe token."""
        return encode_token(f"{int(self.suppressed)}|{self.failures}|{self.id}")

    @classmethod
    def decode(cls, token: str) -> AddressCursor:
        """Parse a token made by :meth:`encode`.

        :raises FilterError: the token was not made by :meth:`encode`.
        """
        try:
            suppressed, failures, id_ = decode_token(token).split("|")
            if suppressed not in ("0", "1"):
                raise ValueError("not a flag")
            for number in (failures, id_):
                if not _DIGITS.fullmatch(number) or int(number) > MAX_ID:
                    raise ValueError("not a number")
            return cls(suppressed == "1", int(failures), int(id_))
        except ValueError:
            raise FilterError(
                "the page cursor is not valid; start again from the first page"
            ) from None


@dataclass(frozen=True)
class AddressFilter:
    """What the addresses list shows: a ``state`` (``suppressed``, ``failing`` or every
    problem), a ``contact_type``, from a ``cursor``."""

    state: str | None = None
    contact_type: str | None = None
    cursor: AddressCursor | None = None

    @classmethod
    def from_args(cls, args: Any) -> AddressFilter:
        """The filter from query arguments.

        :raises FilterError: an argument is not valid; the message says what is accepted.
        """
        state = (args.get("state") or "").strip() or None
        if state is not None and state not in STATES:
            raise FilterError(
                f"state must be one of {', '.join(STATES)}, or empty for every problem"
            )
        contact_type = (args.get("contact_type") or "").strip() or None
        if contact_type is not None and len(contact_type) > CONTACT_TYPE_LENGTH:
            raise FilterError(f"contact_type is at most {CONTACT_TYPE_LENGTH} characters")
        token = args.get("cursor") or ""
        return cls(state, contact_type, AddressCursor.decode(token) if token else None)

    def args(self, **changes: Any) -> dict[str, str]:
        """The filter as query arguments (for links), with ``changes``."""
        values: dict[str, Any] = {
            "state": self.state,
            "contact_type": self.contact_type,
            "cursor": self.cursor.encode() if self.cursor else None,
        }
        values.update(changes)
        return {key: str(value) for key, value in values.items() if value}


@dataclass
class AddressRow:
    """One address of the list."""

    id: int
    address: str
    contact_type: str | None
    contact_id: str | None
    hard_bounces: int
    soft_bounces: int
    complaints: int
    failures: int
    last_failure_at: datetime | None
    last_failure_reason: str | None
    last_failure_email_id: int | None
    last_delivered_at: datetime | None
    suppressed: bool
    suppressed_at: datetime | None
    suppressed_reason: str | None
    lifted_at: datetime | None
    lifted_by: str | None
    #: The host's URL of the contact record (``contact_url_loader``), set by the view.
    contact_url: str | None = field(default=None)


@dataclass
class AddressPage:
    """One page of the list and the cursor of the next one."""

    rows: list[AddressRow]
    next_cursor: AddressCursor | None


_COLUMNS = [
    AddressRecord.__table__.c[name]
    for name in AddressRow.__dataclass_fields__
    if name != "contact_url"
]


def address_statement(
    address_filter: AddressFilter, tenant_id: str | None, limit: int
) -> sa.Select[Any]:
    """The ``SELECT`` of one page: worst first (suppressed, then most failures, then the
    newest record), every value a bound parameter."""
    record = AddressRecord
    clauses: list[sa.ColumnElement[bool]] = [record.tenant_key == tenant_key(tenant_id)]
    if address_filter.state == STATE_SUPPRESSED:
        clauses.append(record.suppressed.is_(True))
    elif address_filter.state == STATE_FAILING:
        clauses += [record.suppressed.is_(False), record.failures > 0]
    else:
        clauses.append(sa.or_(record.suppressed.is_(True), record.failures > 0))
    if address_filter.contact_type:
        clauses.append(record.contact_type == address_filter.contact_type)
    cursor = address_filter.cursor
    if cursor is not None:
        # expanded, not a row value: MySQL/MariaDB turn only this form into an index range
        same = record.suppressed.is_(cursor.suppressed)
        # past the suppressed addresses come the others; past the others, nothing
        below = record.suppressed.is_(False) if cursor.suppressed else sa.false()
        clauses.append(
            sa.or_(
                below,
                sa.and_(same, record.failures < cursor.failures),
                sa.and_(same, record.failures == cursor.failures, record.id < cursor.id),
            )
        )
    return (
        sa.select(*_COLUMNS)
        .where(*clauses)
        .order_by(record.suppressed.desc(), record.failures.desc(), record.id.desc())
        .limit(limit)
    )


def address_page(
    connection: sa.Connection, address_filter: AddressFilter, tenant_id: str | None, size: int
) -> AddressPage:
    """One page of the addresses with problems of ``tenant_id``."""
    fetched = connection.execute(address_statement(address_filter, tenant_id, size + 1)).all()
    rows = [AddressRow(**row._mapping) for row in fetched[:size]]
    next_cursor = None
    if len(fetched) > size and rows:
        last = rows[-1]
        next_cursor = AddressCursor(bool(last.suppressed), last.failures, last.id)
    return AddressPage(rows, next_cursor)


def address_rows(address_filter: AddressFilter, limit: int) -> AddressPage:
    """A page of the viewer's addresses with problems, each with its contact link."""
    with reading() as connection:
        page = address_page(connection, address_filter, viewer_tenant(), limit)
    callbacks = get_state().callbacks
    for row in page.rows:
        row.contact_url = callbacks.contact_url(row.contact_type, row.contact_id)
    return page
