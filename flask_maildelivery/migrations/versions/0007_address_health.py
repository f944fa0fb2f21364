"""address health and suppression

Revision ID: 0007_address_health
Revises: 0006_webhook_inbox
Create Date: 2026-12-04 10:00:00.000000

* ``maildelivery_address``: per tenant (``tenant_key``, ``""`` for none) and lower-cased
  address, the hard bounces, soft bounces and complaints, the last failure and delivery,
  and the suppression (since, why, which email) with its last lift.
* Backfilled from the recipients' states (each one the outcome of its events), with a few
  set-based statements: one record per address that failed at least once; each email
  counts once per address. A hard bounce or a complaint that no later delivery followed
  suppresses the address, as do 5 soft bounces (the default
  ``MAILDELIVERY_SOFT_BOUNCE_LIMIT``) with no delivery after the last one.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007_address_health"
down_revision = "0006_webhook_inbox"
branch_labels = None
depends_on = None

# as in 0001: naive UTC with microseconds; big integer keys (INTEGER on SQLite)
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "maildelivery_address"
WORST = "ix_maildelivery_address_tenant_worst"
#: Bounce types counted as soft (as flask_maildelivery.health.SOFT_BOUNCE_TYPES).
SOFT_TYPES = ("soft", "block", "undetermined")
DELIVERED = ("delivered", "opened", "clicked")
SOFT_BOUNCE_LIMIT = 5


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("tenant_key", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("address_key", sa.String(length=320), nullable=False),
        sa.Column("contact_type", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("hard_bounces", sa.Integer(), nullable=False),
        sa.Column("soft_bounces", sa.Integer(), nullable=False),
        sa.Column("complaints", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("soft_bounce_streak", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TIMESTAMP, nullable=True),
        sa.Column("last_failure_reason", sa.Text(), nullable=True),
        sa.Column("last_failure_email_id", BIG_ID, nullable=True),
        sa.Column("last_delivered_at", TIMESTAMP, nullable=True),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("suppressed_at", TIMESTAMP, nullable=True),
        sa.Column("suppressed_reason", sa.Text(), nullable=True),
        sa.Column("suppressed_cause", sa.String(length=16), nullable=True),
        sa.Column("suppressed_email_id", BIG_ID, nullable=True),
        sa.Column("lifted_at", TIMESTAMP, nullable=True),
        sa.Column("lifted_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maildelivery_address")),
        sa.UniqueConstraint(
            "tenant_key", "address_key", name=op.f("uq_maildelivery_address_tenant_key_address_key")
        ),
    )
    op.create_index(WORST, TABLE, ["tenant_key", "suppressed", "failures", "id"], unique=False)
    _backfill()


def _backfill() -> None:
    """Fill the records from the recipients' states: one ``INSERT ... SELECT ... GROUP BY``,
    then the last failure's details and the suppression with ``UPDATE`` statements."""
    email = sa.table("maildelivery_email", sa.column("id"), sa.column("tenant_id"))
    recipient = sa.table(
        "maildelivery_recipient",
        sa.column("email_id"),
        sa.column("address"),
        sa.column("address_key"),
        sa.column("contact_type"),
        sa.column("contact_id"),
        sa.column("status"),
        sa.column("status_at"),
        sa.column("reason"),
        sa.column("bounce_type"),
        sa.column("id"),
    )
    address = sa.table(
        TABLE,
        *(
            sa.column(name)
            for name in (
                "tenant_key",
                "address",
                "address_key",
                "hard_bounces",
                "soft_bounces",
                "complaints",
                "failures",
                "soft_bounce_streak",
                "last_failure_at",
                "last_failure_reason",
                "last_failure_email_id",
                "last_delivered_at",
                "suppressed",
                "suppressed_at",
                "suppressed_reason",
                "suppressed_cause",
                "suppressed_email_id",
                "contact_type",
                "contact_id",
                "updated_at",
            )
        ),
    )
    bounced = recipient.c.status == "bounced"
    soft_bounce = sa.and_(bounced, recipient.c.bounce_type.in_(SOFT_TYPES))
    hard_bounce = sa.and_(
        bounced,
        sa.or_(recipient.c.bounce_type.is_(None), recipient.c.bounce_type.not_in(SOFT_TYPES)),
    )
    complained = recipient.c.status == "complained"
    failed = sa.or_(bounced, complained)

    def count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    tenant = sa.func.coalesce(email.c.tenant_id, "")
    per_address = (
        sa.select(
            tenant.label("tenant_key"),
            sa.func.max(recipient.c.address).label("address"),
            recipient.c.address_key,
            count(hard_bounce).label("hard_bounces"),
            count(soft_bounce).label("soft_bounces"),
            count(complained).label("complaints"),
            count(failed).label("failures"),
            count(soft_bounce).label("soft_bounce_streak"),
            sa.func.max(sa.case((failed, recipient.c.status_at))).label("last_failure_at"),
            sa.func.max(sa.case((recipient.c.status.in_(DELIVERED), recipient.c.status_at))).label(
                "last_delivered_at"
            ),
            sa.false().label("suppressed"),
            sa.literal(datetime.now(UTC).replace(tzinfo=None), sa.DateTime()).label("updated_at"),
        )
        .select_from(recipient.join(email, email.c.id == recipient.c.email_id))
        .group_by(tenant, recipient.c.address_key)
        .having(count(failed) > 0)
    )
    # every selected column is labelled with the address column it fills
    op.execute(address.insert().from_select(list(per_address.selected_columns.keys()), per_address))
    # the details of each address's last failure, from its latest failed recipient
    last = recipient.alias("last")
    last_email = email.alias("last_email")

    def of_last_failure(column: str) -> sa.ScalarSelect[object]:
        return (
            sa.select(last.c[column])
            .select_from(last.join(last_email, last_email.c.id == last.c.email_id))
            .where(
                last.c.address_key == address.c.address_key,
                sa.func.coalesce(last_email.c.tenant_id, "") == address.c.tenant_key,
                last.c.status.in_(("bounced", "complained")),
            )
            .order_by(last.c.status_at.desc(), last.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )

    op.execute(
        address.update().values(
            last_failure_reason=of_last_failure("reason"),
            last_failure_email_id=of_last_failure("email_id"),
            contact_type=of_last_failure("contact_type"),
            contact_id=of_last_failure("contact_id"),
            suppressed_cause=sa.case(
                (of_last_failure("status") == "complained", "complaint"),
                (of_last_failure("bounce_type").in_(SOFT_TYPES), "soft"),
                else_="hard",
            ),
        )
    )
    # no delivery since the last failure: a hard bounce, a complaint or enough soft bounces
    # suppress the address; a delivery since then ends the soft-bounce streak
    not_delivered_since = sa.or_(
        address.c.last_delivered_at.is_(None),
        address.c.last_delivered_at < address.c.last_failure_at,
    )
    op.execute(address.update().where(sa.not_(not_delivered_since)).values(soft_bounce_streak=0))
    op.execute(
        address.update()
        .where(
            not_delivered_since,
            sa.or_(
                address.c.hard_bounces > 0,
                address.c.complaints > 0,
                address.c.soft_bounce_streak >= SOFT_BOUNCE_LIMIT,
            ),
        )
        .values(
            suppressed=True,
            suppressed_at=address.c.last_failure_at,
            suppressed_reason=address.c.last_failure_reason,
            suppressed_email_id=address.c.last_failure_email_id,
        )
    )
    op.execute(
        address.update().where(address.c.suppressed.is_(False)).values(suppressed_cause=None)
    )


def downgrade() -> None:
    op.drop_index(WORST, table_name=TABLE)
    op.drop_table(TABLE)
