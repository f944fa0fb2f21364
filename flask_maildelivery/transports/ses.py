"""The ``ses`` transport: Amazon SES API v2 ``SendEmail`` (``POST /v2/email/outbound-emails``),
signed with AWS Signature Version 4 by botocore (the optional extra
``flask-maildelivery[ses]``).

Credentials: the access key in ``MAILDELIVERY_SES_ACCESS_KEY_ID`` /
``_SECRET_ACCESS_KEY`` (``_SESSION_TOKEN``) when set; otherwise botocore's standard
credential chain (environment variables, the shared credentials and config files with
``AWS_PROFILE``, SSO, the ECS task role, web identity (IRSA), the EC2 instance profile), whose
temporary credentials botocore refreshes before they expire.

The message goes as ``Content.Raw``: the complete MIME message the hook built (headers,
``X-MailDelivery-ID``, text, HTML, attachments), with every recipient, bcc included, in
``Destination``. The correlation id also goes in the message tag ``maildelivery_id``
(``EmailTags``), which SES event publishing echoes in ``mail.tags``. SES answers
``{"MessageId": "..."}``; its events carry the same id as ``mail.messageId``.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import httpx

from ..context import config_value
from .base import OutgoingMessage, SendResult
from .http import HTTPTransport, clip, json_body, result_from_json, unique_recipients

try:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.session import Session as BotocoreSession
except ImportError:  # pragma: no cover - the error says how to install it
    SigV4Auth = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from flask import Flask

#: SES error types that mean "slow down", whatever their HTTP status.
THROTTLING_ERRORS = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})


def _error_type(response: httpx.Response, body: Any) -> str | None:
    raw = response.headers.get("x-amzn-ErrorType")
    if not raw and isinstance(body, dict):
        raw = body.get("__type") or body.get("code")
    if not raw:
        return None
    # "MessageRejected:http://internal.amazon.com/..." or "com.amazonaws...#MessageRejected"
    return str(raw).split(":", 1)[0].rpartition("#")[2] or None


class SESTransport(HTTPTransport):
    """Sends through Amazon SES API v2.

    Configuration: ``MAILDELIVERY_SES_REGION`` (required, e.g. ``eu-west-1``),
    ``MAILDELIVERY_SES_ACCESS_KEY_ID`` and ``MAILDELIVERY_SES_SECRET_ACCESS_KEY`` (an IAM key
    allowed ``ses:SendEmail``; unset: AWS's standard credential chain),
    ``MAILDELIVERY_SES_SESSION_TOKEN`` (temporary credentials only), ``MAILDELIVERY_SES_CONFIGURATION_SET`` (the
    configuration set whose event destination feeds the webhook),
    ``MAILDELIVERY_SES_API_URL`` (default ``https://email.<region>.amazonaws.com``),
    ``MAILDELIVERY_HTTP_TIMEOUT``.
    """

    name = "ses"
    provider_label = "Amazon SES"
    #: The signing name of the SES API v2.
    service = "ses"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.region = self.required_config(
            app, "SES_REGION", "the AWS region of your SES account, e.g. eu-west-1"
        )
        self.credentials = self.resolve_credentials(app)
        self.configuration_set: str | None = config_value("SES_CONFIGURATION_SET", app) or None
        if config_value("SES_API_URL", app):
            base = self.base_url(app, "SES_API_URL")
        else:
            base = f"https://email.{self.region}.amazonaws.com"
        self.url = base + "/v2/email/outbound-emails"

    @staticmethod
    def resolve_credentials(app: Flask) -> Credentials:
        """Our access key when configured, else the standard credential chain's (its
        refreshable credentials are refreshed by botocore when a request is signed).

        :raises ValueError: botocore is not installed, half an access key is configured, or
            the chain finds no credentials.
        """
        if SigV4Auth is None:
            raise ValueError(
                "MAILDELIVERY_TRANSPORT='ses' needs botocore: pip install 'flask-maildelivery[ses]'"
            )
        key_id = config_value("SES_ACCESS_KEY_ID", app) or None
        secret = config_value("SES_SECRET_ACCESS_KEY", app) or None
        if key_id and secret:
            return Credentials(key_id, secret, config_value("SES_SESSION_TOKEN", app) or None)
        if key_id or secret:
            missing = "SECRET_ACCESS_KEY" if key_id else "ACCESS_KEY_ID"
            raise ValueError(
                f"MAILDELIVERY_TRANSPORT='ses' needs MAILDELIVERY_SES_{missing}: set it to the "
                "other half of the IAM access key (or unset both to use AWS's standard "
                "credential chain)"
            )
        credentials = BotocoreSession().get_credentials()
        if credentials is None:
            raise ValueError(
                "the ses transport found no AWS credentials: set MAILDELIVERY_SES_ACCESS_KEY_ID "
                "and MAILDELIVERY_SES_SECRET_ACCESS_KEY, or give the process credentials the "
                "standard way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in "
                "~/.aws/credentials with AWS_PROFILE, an IAM role of the instance or task)"
            )
        return credentials

    def signed_headers(self, content: bytes) -> dict[str, str]:
        """The headers of a ``SendEmail`` request carrying ``content``, signed (SigV4)."""
        request = AWSRequest(
            method="POST", url=self.url, data=content, headers={"Content-Type": "application/json"}
        )
        # frozen: one consistent key, secret and token, refreshed first when about to expire
        SigV4Auth(self.credentials.get_frozen_credentials(), self.service, self.region).add_auth(
            request
        )
        return {name: str(value) for name, value in request.headers.items()}

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The JSON body of the ``SendEmail`` request for ``message``."""
        mime = message.mime
        raw = mime.as_bytes(policy=mime.policy.clone(linesep="\r\n"))
        to, cc, bcc = unique_recipients(message)
        # bare addresses: the display names (RFC 2047-encoded where needed) are in the MIME
        # headers, and these fields only choose the verified identity and the envelope
        destination: dict[str, list[str]] = {}
        if to:
            destination["ToAddresses"] = [a.address for a in to]
        if cc:
            destination["CcAddresses"] = [a.address for a in cc]
        if bcc:
            destination["BccAddresses"] = [a.address for a in bcc]
        body: dict[str, Any] = {
            "FromEmailAddress": message.sender.address,
            "Destination": destination,
            "Content": {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}},
            "EmailTags": [{"Name": "maildelivery_id", "Value": message.public_id}],
        }
        if self.configuration_set:
            body["ConfigurationSetName"] = self.configuration_set
        return body

    def send(self, message: OutgoingMessage) -> SendResult:
        content = json.dumps(self.payload(message), separators=(",", ":")).encode("utf-8")
        response = self.post(self.url, content=content, headers=self.signed_headers(content))
        return result_from_json(self.provider_label, "MessageId", response)

    def is_retryable(self, response: httpx.Response) -> bool:
        """HTTP 408/429/5xx, and a throttling error whatever its status."""
        if super().is_retryable(response):
            return True
        return _error_type(response, json_body(response)) in THROTTLING_ERRORS

    def error_reason(self, response: httpx.Response) -> str:
        """SES's error type and ``message``, e.g. ``MessageRejected: Email address is not
        verified.``"""
        body = json_body(response)
        text = None
        if isinstance(body, dict):
            text = body.get("message") or body.get("Message")
        error_type = _error_type(response, body)
        reason = str(text) if text else clip(response.text)
        return clip(f"{error_type}: {reason}" if error_type else reason)
