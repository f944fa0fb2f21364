"""Per-provider test kits (one module per provider, as ``flask_maildelivery.webhooks``
has one adapter per provider), the contract they share (:mod:`.base`), and the registry
the shared tests run over."""

from __future__ import annotations

from .base import (
    ANN,
    EXPECTED_BOUNCE_TYPES,
    EXPECTED_TYPES,
    MAPPING_KINDS,
    STALE_AGE,
    BasicAuthKit,
    Facts,
    Kit,
    basic,
    epoch,
    iso,
    post,
    webhook_url,
)
from .brevo import BrevoKit
from .mailersend import MailerSendKit
from .mailgun import MailgunKit
from .mailjet import MailjetKit
from .mailtrap import MailtrapKit
from .mandrill import MandrillKit
from .postal import PostalKit
from .postmark import PostmarkKit
from .resend import ResendKit
from .sendgrid import SendGridKit
from .ses import SESKit
from .sparkpost import SparkPostKit
from .unisender_go import UnisenderGoKit

#: Provider id -> kit class, in the order the shared tests run them.
KITS: dict[str, type[Kit]] = {
    kit.provider: kit
    for kit in (
        SendGridKit,
        MailgunKit,
        PostmarkKit,
        SESKit,
        SparkPostKit,
        MailjetKit,
        BrevoKit,
        ResendKit,
        MailerSendKit,
        MailtrapKit,
        MandrillKit,
        PostalKit,
        UnisenderGoKit,
    )
}
PROVIDERS = list(KITS)

__all__ = [
    "ANN",
    "EXPECTED_BOUNCE_TYPES",
    "EXPECTED_TYPES",
    "KITS",
    "MAPPING_KINDS",
    "PROVIDERS",
    "STALE_AGE",
    "BasicAuthKit",
    "BrevoKit",
    "Facts",
    "Kit",
    "MailerSendKit",
    "MailgunKit",
    "MailjetKit",
    "MailtrapKit",
    "MandrillKit",
    "PostalKit",
    "PostmarkKit",
    "ResendKit",
    "SESKit",
    "SendGridKit",
    "SparkPostKit",
    "UnisenderGoKit",
    "basic",
    "epoch",
    "iso",
    "post",
    "webhook_url",
]
