"""The configuration keys the extension reads and their defaults.

Every key is set on ``app.config`` with ``setdefault`` at :meth:`MailDelivery.init_app`,
so the defaults are visible to the host, and read once then (:func:`read_settings`) into
the app's state. Runtime code reads configuration only through
:func:`flask_maildelivery.context.config_value`, which refuses a key that is not in
:data:`DEFAULTS` (a typo fails loudly instead of silently reading ``None``). Changing
``app.config`` after ``init_app`` has no effect.
"""

from __future__ import annotations

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
    "MAILDELIVERY_WEBHOOK_MAX_BYTES": 25 * 1024 * 1024,
    # provider webhooks: credentials (a provider left unconfigured refuses its webhook).
    # Secrets and credentials also accept a list, so a new one can be added before the old
    # one is removed (rotation). ``*_WEBHOOK_TOLERANCE`` (signed providers) is in seconds;
    # ``None`` means the provider's retry horizon (see docs/webhook-security.md).
    "MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": None,
    "MAILDELIVERY_SENDGRID_WEBHOOK_TOLERANCE": None,
    "MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY": None,
    "MAILDELIVERY_MAILGUN_WEBHOOK_TOLERANCE": None,
    "MAILDELIVERY_POSTMARK_WEBHOOK_USERNAME": None,
    "MAILDELIVERY_POSTMARK_WEBHOOK_PASSWORD": None,
    "MAILDELIVERY_POSTMARK_WEBHOOK_CREDENTIALS": (),
    "MAILDELIVERY_SES_TOPIC_ARNS": (),
    "MAILDELIVERY_SES_WEBHOOK_TOLERANCE": None,
    "MAILDELIVERY_SES_CONFIRM_SUBSCRIPTIONS": True,
    # callables ``(url) -> bytes`` (or dotted paths to one); None: an HTTPS GET
    "MAILDELIVERY_SES_CERTIFICATE_FETCHER": None,
    "MAILDELIVERY_SES_SUBSCRIPTION_CONFIRMER": None,
    "MAILDELIVERY_SPARKPOST_WEBHOOK_USERNAME": None,
    "MAILDELIVERY_SPARKPOST_WEBHOOK_PASSWORD": None,
    "MAILDELIVERY_SPARKPOST_WEBHOOK_CREDENTIALS": (),
    "MAILDELIVERY_MAILJET_WEBHOOK_USERNAME": None,
    "MAILDELIVERY_MAILJET_WEBHOOK_PASSWORD": None,
    "MAILDELIVERY_MAILJET_WEBHOOK_CREDENTIALS": (),
    "MAILDELIVERY_BREVO_WEBHOOK_USERNAME": None,
    "MAILDELIVERY_BREVO_WEBHOOK_PASSWORD": None,
    "MAILDELIVERY_BREVO_WEBHOOK_CREDENTIALS": (),
    "MAILDELIVERY_RESEND_WEBHOOK_SECRET": None,
    "MAILDELIVERY_RESEND_WEBHOOK_TOLERANCE": None,
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


def apply_defaults(app: Flask) -> None:
    """Set every known key on ``app.config`` unless the host set it already."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)


def full_key(key: str) -> str:
    """``key`` with the ``MAILDELIVERY_`` prefix (given with or without it).

    :raises KeyError: ``key`` is not a key of this package.
    """
    full = key if key.startswith("MAILDELIVERY_") else f"MAILDELIVERY_{key}"
    if full not in DEFAULTS:
        raise KeyError(
            f"{full} is not a flask-maildelivery configuration key; "
            "see the configuration reference for the keys that exist"
        )
    return full


def read_settings(app: Flask) -> MappingProxyType[str, Any]:
    """Every key of :data:`DEFAULTS` as ``app.config`` holds it now (defaults applied), as a
    read-only mapping: what the package uses for the app's lifetime."""
    apply_defaults(app)
    return MappingProxyType({key: app.config[key] for key in DEFAULTS})
