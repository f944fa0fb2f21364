"""a finer planner histogram of recipient addresses (PostgreSQL)

Revision ID: 0018_address_statistics_5000
Revises: 0017_recipient_fillfactor
Create Date: 2026-12-02 02:10:00.000000

* PostgreSQL: ``maildelivery_recipient.address_key`` keeps statistics of 5,000 values
  instead of the 1,000 of ``0013_address_statistics``, and the column is analyzed. The
  planner estimates a search by part of an address from the share of the histogram's
  bounds that contain the text. With 1,001 bounds, a rare text that happened to be part of
  one bound was estimated at 1/1,001 of the recipients (3,000 of 3,000,000), past the point
  where reading the newest emails first looks cheaper than the trigram index, and the
  search read every email: 579 to 713 ms instead of about 20 ms (``benchmarks/log_pages.py``,
  "search by a part in the histogram"). With 5,001 bounds one bound is 600 recipients,
  under that point (the plan changed between 1,000 and 3,000 estimated rows), and a
  customer's domain (0.2% of the recipients) still shows in about ten bounds. The cost:
  planning a search takes 1.1 ms instead of 0.5 ms (10,000 values: 2.8 ms), and an
  ``ANALYZE`` of the table samples 1,500,000 rows instead of 300,000 (4 s at 3,000,000
  recipients on the benchmark machine).
* SQLite and MySQL/MariaDB: nothing to do.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_address_statistics_5000"
down_revision = "0017_recipient_fillfactor"
branch_labels = None
depends_on = None

#: As ``models.ADDRESS_STATISTICS``, frozen here.
ADDRESS_STATISTICS = 5000
#: What ``0013_address_statistics`` set.
BEFORE = 1000


def _set(statistics: int) -> None:
    # no portable form: SET STATISTICS is PostgreSQL's own
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(
                "ALTER TABLE maildelivery_recipient ALTER COLUMN address_key"
                f" SET STATISTICS {statistics}"
            )
        )
        op.execute(sa.text("ANALYZE maildelivery_recipient (address_key)"))


def upgrade() -> None:
    _set(ADDRESS_STATISTICS)


def downgrade() -> None:
    _set(BEFORE)
