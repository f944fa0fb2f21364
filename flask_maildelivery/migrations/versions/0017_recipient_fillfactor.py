"""room for the recipients' updates (PostgreSQL)

Revision ID: 0017_recipient_fillfactor
Revises: 0016_attention_index
Create Date: 2026-12-01 23:10:00.000000

* PostgreSQL: ``maildelivery_recipient`` gets ``fillfactor = 80``: pages written from now on
  keep a fifth free for the updates each delivery event brings. No index holds a status
  column, so an update that finds room on its page writes no index entry (a "HOT" update):
  the recipients' update of a 10,000-event batch took 140 ms instead of 380 ms
  (``benchmarks/webhook_ingest.py``). Pages written before keep no room until the table is
  rewritten (``VACUUM FULL``, or pg_repack without a long lock); nothing is rewritten here.
* SQLite and MySQL/MariaDB: nothing to do (they update a row in place).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_recipient_fillfactor"
down_revision = "0016_attention_index"
branch_labels = None
depends_on = None

#: As ``models.RECIPIENT_FILLFACTOR``, frozen here.
FILLFACTOR = 80


def upgrade() -> None:
    # no portable form: a table's storage parameters are PostgreSQL's own
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(f"ALTER TABLE maildelivery_recipient SET (fillfactor = {FILLFACTOR})"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text("ALTER TABLE maildelivery_recipient RESET (fillfactor)"))
