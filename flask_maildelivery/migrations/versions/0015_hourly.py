"""the overview's hourly counts

Revision ID: 0015_hourly
Revises: 0014_superseded_attempts
Create Date: 2026-12-01 20:00:00.000000

* ``maildelivery_hourly``: emails by tenant (``""`` for none), UTC hour of ``sent_at``,
  result, status and transport (``""`` for none); the overview sums these rows instead of
  counting a month of emails.
* ``maildelivery_hourly_domain``: recipients by tenant, domain of their address and UTC hour
  of their email's ``sent_at``: the denominator of the failure rate by domain.
* ``maildelivery_hourly_failure``: the failed recipients (bounced, dropped, suppressed,
  failed) by tenant, UTC hour and domain, with the time and reason of the latest one: the
  failing domains.

All three are filled from the stored emails and recipients (one grouped ``INSERT ... SELECT``
each); from then on the package keeps them (``flask_maildelivery.rollup``). The hour is cut
by each database's own function (no portable one), and SQLite keeps it as the text
SQLAlchemy writes for a timestamp. ``tenant_id`` and ``transport`` are written out here,
not read from the package: a migration keeps doing what it did when it was written.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0015_hourly"
down_revision = "0014_superseded_attempts"
branch_labels = None
depends_on = None

# as in 0001: naive UTC with microseconds
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

email = sa.table(
    "maildelivery_email",
    sa.column("id"),
    sa.column("tenant_id"),
    sa.column("sent_at"),
    sa.column("result"),
    sa.column("status"),
    sa.column("transport"),
)
recipient = sa.table(
    "maildelivery_recipient",
    *(
        sa.column(name)
        for name in ("id", "email_id", "address_key", "status", "status_at", "reason")
    ),
)
failures = sa.table(
    "maildelivery_hourly_failure",
    *(
        sa.column(name)
        for name in ("tenant_key", "hour", "domain", "failures", "last_failure_at", "last_reason")
    ),
)
#: Recipients that did not get the email.
FAILURES = ("bounced", "dropped", "suppressed", "failed")
hourly = sa.table(
    "maildelivery_hourly",
    *(
        sa.column(name)
        for name in ("tenant_key", "hour", "result", "status", "transport", "emails")
    ),
)
domains = sa.table(
    "maildelivery_hourly_domain",
    *(sa.column(name) for name in ("tenant_key", "domain", "hour", "recipients")),
)


def _hour(dialect: str, column: Any) -> Any:
    if dialect == "postgresql":
        return sa.func.date_trunc("hour", column)
    if dialect in ("mysql", "mariadb"):
        return sa.cast(sa.func.date_format(column, "%Y-%m-%d %H:00:00"), mysql.DATETIME(fsp=6))
    return sa.func.strftime("%Y-%m-%d %H:00:00.000000", column)


def _domain(dialect: str, column: Any) -> Any:
    if dialect == "postgresql":
        return sa.func.split_part(column, "@", -1)
    if dialect in ("mysql", "mariadb"):
        return sa.func.substring_index(column, "@", -1)
    return sa.func.substr(column, sa.func.instr(column, "@") + 1)


def upgrade() -> None:
    op.create_table(
        "maildelivery_hourly",
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transport", sa.String(length=64), nullable=False),
        sa.Column("emails", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_key",
            "hour",
            "result",
            "status",
            "transport",
            name=op.f("pk_maildelivery_hourly"),
        ),
    )
    op.create_table(
        "maildelivery_hourly_domain",
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("domain", sa.String(length=320), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("recipients", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_key", "domain", "hour", name=op.f("pk_maildelivery_hourly_domain")
        ),
    )
    op.create_table(
        "maildelivery_hourly_failure",
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("domain", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("last_failure_at", TIMESTAMP, nullable=True),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "tenant_key", "hour", "domain", name=op.f("pk_maildelivery_hourly_failure")
        ),
    )
    dialect = op.get_bind().dialect.name
    # the keys are computed in a subquery and grouped by its columns: a bound parameter
    # repeated in GROUP BY is another parameter to PostgreSQL
    emails = (
        sa.select(
            sa.func.coalesce(email.c.tenant_id, "").label("tenant_key"),
            _hour(dialect, email.c.sent_at).label("hour"),
            email.c.result,
            email.c.status,
            sa.func.coalesce(email.c.transport, "").label("transport"),
        )
        .where(email.c.sent_at.is_not(None))
        .subquery()
    )
    keys = list(emails.c)
    op.execute(
        hourly.insert().from_select(
            [*(c.name for c in keys), "emails"],
            # in key order: a range of hours lies together in PostgreSQL's heap
            sa.select(*keys, sa.func.count()).group_by(*keys).order_by(*keys),
        )
    )
    addresses = (
        sa.select(
            sa.func.coalesce(email.c.tenant_id, "").label("tenant_key"),
            _domain(dialect, recipient.c.address_key).label("domain"),
            _hour(dialect, email.c.sent_at).label("hour"),
        )
        .select_from(recipient.join(email, email.c.id == recipient.c.email_id))
        .where(email.c.sent_at.is_not(None))
        .subquery()
    )
    domain_keys = list(addresses.c)
    op.execute(
        domains.insert().from_select(
            [*(c.name for c in domain_keys), "recipients"],
            sa.select(*domain_keys, sa.func.count()).group_by(*domain_keys).order_by(*domain_keys),
        )
    )

    # the failed recipients by bucket, with the latest of each (a window function each)
    bucket = (
        email.c.tenant_id,
        _hour(dialect, email.c.sent_at),
        _domain(dialect, recipient.c.address_key),
    )
    failed = (
        sa.select(
            sa.func.coalesce(email.c.tenant_id, "").label("tenant_key"),
            _hour(dialect, email.c.sent_at).label("hour"),
            _domain(dialect, recipient.c.address_key).label("domain"),
            recipient.c.status_at,
            recipient.c.reason,
            sa.func.row_number()
            .over(
                partition_by=bucket,
                order_by=(recipient.c.status_at.desc(), recipient.c.id.desc()),
            )
            .label("position"),
            sa.func.count().over(partition_by=bucket).label("n"),
        )
        .select_from(recipient.join(email, email.c.id == recipient.c.email_id))
        .where(email.c.sent_at.is_not(None), recipient.c.status.in_(FAILURES))
        .subquery()
    )
    op.execute(
        failures.insert().from_select(
            ["tenant_key", "hour", "domain", "failures", "last_failure_at", "last_reason"],
            sa.select(
                failed.c.tenant_key,
                failed.c.hour,
                failed.c.domain,
                failed.c.n,
                failed.c.status_at,
                failed.c.reason,
            )
            .where(failed.c.position == 1)
            .order_by(failed.c.tenant_key, failed.c.hour, failed.c.domain),
        )
    )


def downgrade() -> None:
    op.drop_table("maildelivery_hourly_failure")
    op.drop_table("maildelivery_hourly_domain")
    op.drop_table("maildelivery_hourly")
