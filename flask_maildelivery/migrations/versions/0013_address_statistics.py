"""planner statistics of recipient addresses (PostgreSQL)

Revision ID: 0013_address_statistics
Revises: 0012_queue
Create Date: 2026-12-01 19:50:00.000000

* PostgreSQL: ``maildelivery_recipient.address_key`` keeps a histogram of 1,000 values
  instead of the default 100 (``SET STATISTICS 1000``), and the column is analyzed. With 100
  values the planner cannot tell a search matching thousands of recipients (a customer's
  domain: best read newest emails first and stopped at one page) from a rare one (best
  looked up in the trigram index), and guessed "rare" for both: a domain search took 0.2 to
  0.5 s at 3,000,000 recipients instead of about 30 ms (``benchmarks/log_pages.py``).
* SQLite and MySQL/MariaDB: nothing to do.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_address_statistics"
down_revision = "0012_queue"
branch_labels = None
depends_on = None

#: As ``models.ADDRESS_STATISTICS``, frozen here.
ADDRESS_STATISTICS = 1000


def upgrade() -> None:
    # no portable form: SET STATISTICS is PostgreSQL's own
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(
                "ALTER TABLE maildelivery_recipient ALTER COLUMN address_key"
                f" SET STATISTICS {ADDRESS_STATISTICS}"
            )
        )
        op.execute(sa.text("ANALYZE maildelivery_recipient (address_key)"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text("ALTER TABLE maildelivery_recipient ALTER COLUMN address_key SET STATISTICS -1")
        )
