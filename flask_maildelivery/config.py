"""The configuration keys the extension reads and their defaults.

Every key is set on ``app.config`` with ``setdefault`` at :meth:`MailDelivery.init_app`,
so the defaults are visible to the host (each webhook provider declares its own keys in its
module, and ``init_app`` adds them), and read once then (:func:`read_settings`) into
the app's state. Runtime code reads configuration only through
:func:`flask_maildelivery.context.config_value`, which refuses a key that is not in
:data:`DEFAULTS` (a typo fails loudly instead of silently reading ``None``). Changing
``app.config`` after ``init_app`` has no effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from flask import Flask

#: Every configuration key the package reads, with its default.
DEFAULTS: dict[str, Any] = {
    # sending
    "MAILDELIVERY_TRANSPORT": "smtp",
    "MAILDELIVERY_DEFAULT_SENDER": None,
    "MAILDELIVERY_MAX_RECIPIENTS": 1000,
    "MAILDELIVERY_STORE_BODIES": True,
    "MAILDELIVERY_RETENTION_DAYS": None,
    # applied webhook inbox rows are purged after this many days (failed ones are kept)
    "MAILDELIVERY_INBOX_RETENTION_DAYS": 7,
    # when a stored webhook request is applied: "inline" (before the answer) or
    # "after_response" (once the answer is sent: the provider waits only for the store)
    "MAILDELIVERY_INBOX_APPLY": "inline",
    # address health: "block" (a send skips a suppressed address), "warn" (sends, and the
    # record says so) or "off" (records kept, nothing suppressed at send time)
    "MAILDELIVERY_SUPPRESSION": "block",
    # soft bounces in a row (no delivery in between) that suppress an address
    "MAILDELIVERY_SOFT_BOUNCE_LIMIT": 5,
    # None: send in the request; "celery": record, then a Celery task sends (init_celery)
    "MAILDELIVERY_QUEUE": None,
    # send attempts before a transient failure becomes "failed"
    "MAILDELIVERY_MAX_ATTEMPTS": 5,
    # seconds before the first retry; doubles each attempt (with jitter), up to 6 hours
    "MAILDELIVERY_RETRY_BACKOFF": 60,
    # seconds after which a send still "sending" is reported as stuck, and a queued send
    # still waiting past its time is handed to a worker again
    "MAILDELIVERY_QUEUE_TIMEOUT": 900,
    "MAILDELIVERY_SMTP_HOST": "localhost",
    "MAILDELIVERY_SMTP_PORT": 25,
    "MAILDELIVERY_SMTP_USERNAME": None,
    "MAILDELIVERY_SMTP_PASSWORD": None,
    "MAILDELIVERY_SMTP_USE_TLS": False,
    "MAILDELIVERY_SMTP_USE_SSL": False,
    "MAILDELIVERY_SMTP_TIMEOUT": 30,
    "MAILDELIVERY_SMTP_PROVIDER": None,
    # seconds after which an email with no final word from its provider is overdue
    "MAILDELIVERY_OUTCOME_TIMEOUT": 86400,
    # provider API transports (sendgrid, mailgun, postmark, ses)
    "MAILDELIVERY_HTTP_TIMEOUT": 30,
    "MAILDELIVERY_SENDGRID_API_KEY": None,
    "MAILDELIVERY_SENDGRID_API_URL": "https://api.sendgrid.com",
    "MAILDELIVERY_MAILGUN_API_KEY": None,
    "MAILDELIVERY_MAILGUN_DOMAIN": None,
    "MAILDELIVERY_MAILGUN_API_URL": "https://api.mailgun.net",
    "MAILDELIVERY_POSTMARK_SERVER_TOKEN": None,
    "MAILDELIVERY_POSTMARK_MESSAGE_STREAM": "outbound",
    "MAILDELIVERY_POSTMARK_API_URL": "https://api.postmarkapp.com",
    "MAILDELIVERY_SES_REGION": None,
    "MAILDELIVERY_SES_ACCESS_KEY_ID": None,
    "MAILDELIVERY_SES_SECRET_ACCESS_KEY": None,
    "MAILDELIVERY_SES_SESSION_TOKEN": None,
    "MAILDELIVERY_SES_CONFIGURATION_SET": None,
    "MAILDELIVERY_SES_API_URL": None,
    # pages and webhooks
    "MAILDELIVERY_URL_PREFIX": "/maildelivery",
    "MAILDELIVERY_BASE_TEMPLATE": "maildelivery/base.html",
    "MAILDELIVERY_PAGE_SIZE": 50,
    # the detail page of an email still on its way asks the API this often (0: never)
    "MAILDELIVERY_DETAIL_REFRESH_SECONDS": 5,
    "MAILDELIVERY_WEBHOOK_MAX_BYTES": 25 * 1024 * 1024,
    # the overview's rate colours: (amber from, red from), as fractions. Complaints: Gmail's
    # sender guidelines (below 0.10%, never 0.30%); bounces: the package's own defaults
    "MAILDELIVERY_BOUNCE_RATE_THRESHOLDS": (0.02, 0.05),
    "MAILDELIVERY_COMPLAINT_RATE_THRESHOLDS": (0.001, 0.003),
    # provider webhooks: each provider declares its own keys in its module
    # (flask_maildelivery.webhooks.<provider>, ``config_keys``); init_app adds them here
    # the bounce mailbox (see docs/bounces.md): the VERP envelope sender of SMTP sends, the
    # key that signs its tokens (a list rotates: the first signs, all verify; default
    # SECRET_KEY), and where bounces arrive (imaps://, imap:// or maildir:// URL)
    "MAILDELIVERY_BOUNCE_ADDRESS": None,
    "MAILDELIVERY_BOUNCE_SECRET": None,
    "MAILDELIVERY_BOUNCE_MAILBOX": None,
    # IMAP: move processed messages to this folder (default: keep them, marked read)
    "MAILDELIVERY_BOUNCE_PROCESSED_FOLDER": None,
    "MAILDELIVERY_BOUNCE_DELETE_PROCESSED": False,
    "MAILDELIVERY_BOUNCE_POLL_INTERVAL": 60,
    "MAILDELIVERY_BOUNCE_TIMEOUT": 30,
}


def apply_defaults(app: Flask, defaults: Mapping[str, Any]) -> None:
    """Set every key of ``defaults`` on ``app.config`` unless the host set it already."""
    for key, value in defaults.items():
        app.config.setdefault(key, value)


def full_key(key: str, known: Mapping[str, Any] = DEFAULTS) -> str:
    """``key`` with the ``MAILDELIVERY_`` prefix (given with or without it).

    :param known: the keys that exist (default: the package's own, without its providers').
    :raises KeyError: ``key`` is not among them.
    """
    full = key if key.startswith("MAILDELIVERY_") else f"MAILDELIVERY_{key}"
    if full not in known:
        raise KeyError(
            f"{full} is not a flask-maildelivery configuration key; "
            "see the configuration reference for the keys that exist"
        )
    return full


def read_settings(
    app: Flask, provider_keys: Mapping[str, Any] = MappingProxyType({})
) -> MappingProxyType[str, Any]:
    """Every key of :data:`DEFAULTS` and of ``provider_keys`` (the keys the webhook
    providers declare, with their defaults) as ``app.config`` holds it now (defaults
    applied), as a read-only mapping: what the package uses for the app's lifetime."""
    defaults = {**DEFAULTS, **provider_keys}
    apply_defaults(app, defaults)
    return MappingProxyType({key: app.config[key] for key in defaults})
