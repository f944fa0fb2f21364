"""The ``mailgun`` transport: Mailgun's Messages API (``POST /v3/<domain>/messages``).

The correlation id goes in the user variable ``v:maildelivery_id`` (echoed in every
webhook event under ``user-variables``) and in the ``X-MailDelivery-ID`` header. Mailgun
answers ``{"id": "<...@domain>", "message": "Queued. Thank you."}``; the id is stored
without its angle brackets, as the webhook events report it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from .base import OutgoingMessage, SendResult
from .http import (
    HTTPTransport,
    bodies,
    clip,
    extra_headers,
    json_body,
    result_from_json,
    unique_recipients,
)

if TYPE_CHECKING:
    from flask import Flask


class MailgunTransport(HTTPTransport):
    """Sends through Mailgun's Messages API.

    Configuration: ``MAILDELIVERY_MAILGUN_API_KEY`` (required, a sending or account API
    key), ``MAILDELIVERY_MAILGUN_DOMAIN`` (required, the sending domain),
    ``MAILDELIVERY_MAILGUN_API_URL`` (``https://api.mailgun.net`` for the US region,
    ``https://api.eu.mailgun.net`` for the EU region), ``MAILDELIVERY_HTTP_TIMEOUT``.
    """

    name = "mailgun"
    provider_label = "Mailgun"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.api_key = self.required_config(
            app, "MAILGUN_API_KEY", "a Mailgun API key (Sending API keys in Mailgun's settings)"
        )
        self.domain = self.required_config(
            app, "MAILGUN_DOMAIN", "the sending domain registered in Mailgun, e.g. mg.example.com"
        )
        self.url = f"{self.base_url(app, 'MAILGUN_API_URL')}/v3/{self.domain}/messages"

    def form(self, message: OutgoingMessage) -> list[tuple[str, str]]:
        """The form fields of the request (``to``/``cc``/``bcc`` repeated per address)."""
        to, cc, bcc = unique_recipients(message)
        fields: list[tuple[str, str]] = [("from", message.sender.formatted())]
        fields += [("to", a.formatted()) for a in to]
        fields += [("cc", a.formatted()) for a in cc]
        fields += [("bcc", a.formatted()) for a in bcc]
        fields.append(("subject", message.subject))
        text, html = bodies(message)
        if text is not None:
            fields.append(("text", text))
        if html is not None:
            fields.append(("html", html))
        if message.reply_to:
            fields.append(("h:Reply-To", message.reply_to))
        fields += [(f"h:{name}", value) for name, value in extra_headers(message)]
        fields.append(("v:maildelivery_id", message.public_id))
        return fields

    def send(self, message: OutgoingMessage) -> SendResult:
        files = [
            ("attachment", (a.filename, a.content, a.content_type)) for a in message.attachments
        ]
        response = self.post(
            self.url,
            data=_multi_dict(self.form(message)),
            # multipart/form-data with attachments, else application/x-www-form-urlencoded:
            # the Messages API takes both
            files=files or None,
            auth=("api", self.api_key),
        )
        return result_from_json(self.provider_label, "id", response)

    def error_reason(self, response: httpx.Response) -> str:
        """Mailgun's ``message`` field (its 401 answer is the bare text ``Forbidden``)."""
        body = json_body(response)
        if isinstance(body, dict) and body.get("message"):
            return clip(str(body["message"]))
        return super().error_reason(response)


def _multi_dict(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx takes repeated form fields as a list value per name."""
    result: dict[str, list[str]] = {}
    for name, value in fields:
        result.setdefault(name, []).append(value)
    return result
