"""The ``sendgrid`` transport: SendGrid's v3 Mail Send API (``POST /v3/mail/send``).

The correlation id goes in ``custom_args`` (echoed in every event webhook as
``maildelivery_id``) and in the ``X-MailDelivery-ID`` header. SendGrid answers
``202 Accepted`` with the message id in the ``X-Message-Id`` header; its webhook events
carry it as ``sg_message_id`` (that id plus a suffix, which the webhook adapter cuts).
"""

from __future__ import annotations

import base64
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import httpx

from .base import Address, OutgoingMessage, SendResult
from .http import (
    HTTPTransport,
    bodies,
    clip,
    extra_headers,
    json_body,
    result_from_id,
    unique_recipients,
)

if TYPE_CHECKING:
    from flask import Flask


def _address(address: Address) -> dict[str, str]:
    entry = {"email": address.address}
    if address.name:
        entry["name"] = address.name
    return entry


class SendGridTransport(HTTPTransport):
    """Sends through SendGrid's v3 Mail Send API.

    Configuration: ``MAILDELIVERY_SENDGRID_API_KEY`` (required, an API key with the
    "Mail Send" permission), ``MAILDELIVERY_SENDGRID_API_URL`` (default
    ``https://api.sendgrid.com``; ``https://api.eu.sendgrid.com`` for EU-pinned
    subusers), ``MAILDELIVERY_HTTP_TIMEOUT``.
    """

    name = "sendgrid"
    provider_label = "SendGrid"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.api_key = self.required_config(
            app, "SENDGRID_API_KEY", "a SendGrid API key with the Mail Send permission"
        )
        self.url = self.base_url(app, "SENDGRID_API_URL") + "/v3/mail/send"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The JSON body of the Mail Send request for ``message``."""
        to, cc, bcc = unique_recipients(message)
        personalization: dict[str, Any] = {}
        if to:
            personalization["to"] = [_address(a) for a in to]
        if cc:
            personalization["cc"] = [_address(a) for a in cc]
        if bcc:
            personalization["bcc"] = [_address(a) for a in bcc]
        text, html = bodies(message)
        content = []
        # SendGrid requires text/plain first when both are present
        if text is not None:
            content.append({"type": "text/plain", "value": text})
        if html is not None:
            content.append({"type": "text/html", "value": html})
        body: dict[str, Any] = {
            "personalizations": [personalization],
            "from": _address(message.sender),
            "subject": message.subject,
            "content": content,
            "headers": dict(extra_headers(message)),
            "custom_args": {"maildelivery_id": message.public_id},
        }
        if message.reply_to:
            name, address = parseaddr(message.reply_to)
            body["reply_to"] = _address(Address(name=name, address=address))
        if message.attachments:
            body["attachments"] = [
                {
                    "content": base64.b64encode(a.content).decode("ascii"),
                    "filename": a.filename,
                    "type": a.content_type,
                    "disposition": "attachment",
                }
                for a in message.attachments
            ]
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        response = self.post(
            self.url,
            json=self.payload(message),
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        return result_from_id(
            self.provider_label,
            response.headers.get("X-Message-Id"),
            "X-Message-Id header",
            response,
        )

    def error_reason(self, response: httpx.Response) -> str:
        """SendGrid's ``errors`` list: each message, with the field it is about."""
        body = json_body(response)
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            reasons = []
            for error in body["errors"]:
                if not isinstance(error, dict):
                    continue
                text = str(error.get("message") or "").strip()
                if error.get("field"):
                    text += f" (field {error['field']})"
                if text:
                    reasons.append(text)
            if reasons:
                return clip("; ".join(reasons))
        return super().error_reason(response)
