"""Provider webhooks: one module per provider, shared logic in :mod:`.base`, the endpoint
in :mod:`.views`.

A provider is its module: its adapter class declares the provider's configuration keys,
payload schema, authentication, event mapping and retry facts (see
:class:`.base.WebhookAdapter`). Adding a provider is that module, one line in
:data:`ADAPTERS`, a test kit (``tests/kits/<provider>.py``) and a docs page
(``docs/providers/<provider>.md``); a test checks that every provider has all three.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Any

from ..config import DEFAULTS

if TYPE_CHECKING:
    from .base import WebhookAdapter

#: Provider id -> ``module:class`` of its adapter.
ADAPTERS: dict[str, str] = {
    "sendgrid": "flask_maildelivery.webhooks.sendgrid:SendGridAdapter",
    "mailgun": "flask_maildelivery.webhooks.mailgun:MailgunAdapter",
    "postmark": "flask_maildelivery.webhooks.postmark:PostmarkAdapter",
    "ses": "flask_maildelivery.webhooks.ses:SESAdapter",
    "sparkpost": "flask_maildelivery.webhooks.sparkpost:SparkPostAdapter",
    "mailjet": "flask_maildelivery.webhooks.mailjet:MailjetAdapter",
    "brevo": "flask_maildelivery.webhooks.brevo:BrevoAdapter",
    "resend": "flask_maildelivery.webhooks.resend:ResendAdapter",
    "mailersend": "flask_maildelivery.webhooks.mailersend:MailerSendAdapter",
    "mailtrap": "flask_maildelivery.webhooks.mailtrap:MailtrapAdapter",
    "mandrill": "flask_maildelivery.webhooks.mandrill:MandrillAdapter",
    "postal": "flask_maildelivery.webhooks.postal:PostalAdapter",
    "unisender_go": "flask_maildelivery.webhooks.unisender_go:UnisenderGoAdapter",
}


@cache
def adapter_classes() -> dict[str, type[WebhookAdapter]]:
    """Provider id -> its adapter class (the modules are imported on first use)."""
    classes: dict[str, type[WebhookAdapter]] = {}
    for provider, target in ADAPTERS.items():
        module_name, _, attr = target.partition(":")
        classes[provider] = getattr(importlib.import_module(module_name), attr)
    return classes


def provider_config_defaults() -> dict[str, Any]:
    """The configuration keys every provider declares, with their defaults."""
    return {
        key: value for cls in adapter_classes().values() for key, value in cls.config_keys.items()
    }


def all_config_defaults() -> dict[str, Any]:
    """Every configuration key of the package: its own and its providers', with defaults."""
    return {**DEFAULTS, **provider_config_defaults()}


def smtp_correlation_header(provider: str, public_id: str) -> tuple[str, str] | None:
    """The correlation header of ``provider``'s SMTP relay for an email, or ``None``.

    :raises KeyError: ``provider`` is not a known provider.
    """
    return adapter_classes()[provider].smtp_correlation_header(public_id)


def smtp_providers() -> list[str]:
    """The providers whose SMTP relay has a correlation header."""
    return [
        provider
        for provider, cls in adapter_classes().items()
        if cls.smtp_correlation_header("x") is not None
    ]


__all__ = [
    "ADAPTERS",
    "adapter_classes",
    "all_config_defaults",
    "provider_config_defaults",
    "smtp_correlation_header",
    "smtp_providers",
]
