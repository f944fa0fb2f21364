"""Provider webhooks: one adapter module per provider, shared logic in :mod:`.base`, the
endpoint in :mod:`.views`."""

from __future__ import annotations

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
}

__all__ = ["ADAPTERS"]
