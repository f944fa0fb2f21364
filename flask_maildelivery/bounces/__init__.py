"""The bounce mailbox: delayed errors for SMTP senders.

With ``MAILDELIVERY_BOUNCE_ADDRESS`` set, each SMTP send's envelope sender is a tagged
address (VERP, :mod:`.verp`); the bounces that come back to it are read from
``MAILDELIVERY_BOUNCE_MAILBOX`` (IMAP or Maildir, :mod:`.mailbox`) or from an MTA pipe,
recognized (:mod:`.reports`) and applied as events of provider ``dsn`` through
:mod:`flask_maildelivery.ingest` (:mod:`.processing`).
"""

from __future__ import annotations

from .mailbox import FetchReport, fetch_bounces, watch_bounces
from .processing import BounceOutcome, read_bounce
from .reports import DSN_PROVIDER
from .settings import bounce_secrets, bounce_settings_problem, envelope_sender

__all__ = [
    "DSN_PROVIDER",
    "BounceOutcome",
    "FetchReport",
    "bounce_secrets",
    "bounce_settings_problem",
    "envelope_sender",
    "fetch_bounces",
    "read_bounce",
    "watch_bounces",
]
