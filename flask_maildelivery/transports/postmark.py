"""The ``postmark`` transport: Postmark's Email API (``POST /email``).

The correlation id goes in ``Metadata`` (echoed in every webhook as
``Metadata.maildelivery_id``) and in the ``X-MailDelivery-ID`` header. Postmark answers
``{"MessageID": "...", "ErrorCode": 0, "Message": "OK", ...}``; its webhooks carry the same
``MessageID``. A refusal is HTTP 422 with a non-zero ``ErrorCode`` and a ``Message``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import httpx

from ..context import config_value
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


class PostmarkTransport(HTTPTransport):
    """Sends through Postmark's Email API.

    Configuration: ``MAILDELIVERY_POSTMARK_SERVER_TOKEN`` (required, the Server API token),
    ``MAILDELIVERY_POSTMARK_MESSAGE_STREAM`` (default ``outbound``, the default
    transactional stream), ``MAILDELIVERY_POSTMARK_API_URL`` (default
    ``https://api.postmarkapp.com``), ``MAILDELIVERY_HTTP_TIMEOUT``.
    """

    name = "postmark"
    provider_label = "Postmark"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.server_token = self.required_config(
            app,
            "POSTMARK_SERVER_TOKEN",
            "the Server API token of your Postmark server (API Tokens tab)",
        )
        self.message_stream: str | None = config_value("POSTMARK_MESSAGE_STREAM", app) or None
        self.url = self.base_url(app, "POSTMARK_API_URL") + "/email"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The JSON body of the Email API request for ``message``."""
        to, cc, bcc = unique_recipients(message)
        body: dict[str, Any] = {"From": message.sender.formatted()}
        if to:
            body["To"] = ", ".join(a.formatted() for a in to)
        if cc:
            body["Cc"] = ", ".join(a.formatted() for a in cc)
        if bcc:
            body["Bcc"] = ", ".join(a.formatted() for a in bcc)
        body["Subject"] = message.subject
        text, html = bodies(message)
        if text is not None:
            body["TextBody"] = text
        if html is not None:
            body["HtmlBody"] = html
        if message.reply_to:
            body["ReplyTo"] = message.reply_to
        body["Headers"] = [{"Name": name, "Value": value} for name, value in extra_headers(message)]
        body["Metadata"] = {"maildelivery_id": message.public_id}
        if message.attachments:
            body["Attachments"] = [
                {
                    "Name": a.filename,
                    "Content": base64.b64encode(a.content).decode("ascii"),
                    "ContentType": a.content_type,
                }
                for a in message.attachments
            ]
        if self.message_stream:
            body["MessageStream"] = self.message_stream
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        response = self.post(
            self.url,
            json=self.payload(message),
            headers={
                "Accept": "application/json",
                "X-Postmark-Server-Token": self.server_token,
            },
        )
        return result_from_json(self.provider_label, "MessageID", response)

    def error_reason(self, response: httpx.Response) -> str:
        """Postmark's ``Message``, with its ``ErrorCode``."""
        body = json_body(response)
        if isinstance(body, dict) and body.get("Message"):
            code = body.get("ErrorCode")
            prefix = f"ErrorCode {code}: " if code is not None else ""
            return clip(f"{prefix}{body['Message']}")
        return super().error_reason(response)
