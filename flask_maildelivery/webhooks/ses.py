"""Amazon SES event publishing (or identity notifications) through an Amazon SNS HTTPS
subscription. Each SNS message is signed with RSA (SignatureVersion 1: SHA1, 2: SHA256) by
a certificate whose URL must be an ``https://sns.<region>.amazonaws.com/....pem``; only
the configured topics are accepted. A ``SubscriptionConfirmation`` is confirmed by fetching
its ``SubscribeURL``.

Config: ``MAILDELIVERY_SES_TOPIC_ARNS`` (the allow-list), ``MAILDELIVERY_SES_WEBHOOK_TOLERANCE``,
``MAILDELIVERY_SES_CONFIRM_SUBSCRIPTIONS``, and the replaceable fetchers
``MAILDELIVERY_SES_CERTIFICATE_FETCHER`` / ``MAILDELIVERY_SES_SUBSCRIPTION_CONFIRMER``
(callables ``(url) -> bytes`` or dotted paths to one; default: an HTTPS GET).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
import re
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask
from marshmallow import fields

from ..context import config_value
from ..events import CORRELATION_KEY, NormalizedEvent
from ..mime import CORRELATION_HEADER
from ..schemas import PayloadSchema, one_of_required
from .base import (
    AuthenticationFailed,
    MalformedPayload,
    SignedTimestampAdapter,
    WebhookError,
    WebhookRequest,
    as_list,
    obj,
    parse_iso,
    parse_json,
    text_or_none,
    validate,
)

logger = logging.getLogger("flask_maildelivery")

Fetcher = Callable[[str], bytes]

#: SES ``eventType``/``notificationType`` -> normalized type (bounces refined by type).
EVENT_TYPES: dict[str, str] = {
    "Send": "processed",
    "Delivery": "delivered",
    "DeliveryDelay": "deferred",
    "Bounce": "bounced",
    "Complaint": "complained",
    "Reject": "dropped",
    "Rendering Failure": "dropped",
    "Open": "opened",
    "Click": "clicked",
    "Subscription": "unsubscribed",
}
#: Where each SES type keeps its details (the object's key).
DETAIL_KEYS: dict[str, str] = {
    "Send": "send",
    "Delivery": "delivery",
    "DeliveryDelay": "deliveryDelay",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Rendering Failure": "failure",
    "Open": "open",
    "Click": "click",
    "Subscription": "subscription",
}
#: SES types reported per message, naming no recipient, about what one unknown reader did:
#: an open or a click (the tracking pixel and links are the same in every copy), a
#: subscription change (it names a contact list, not an address). Each becomes one event
#: with no recipient: stored with the email and shown in its log, applied to no recipient.
#: (``Send``, ``Reject`` and ``Rendering Failure`` name no recipient either, but what they
#: say is true of every recipient, so each recipient gets it.)
PER_MESSAGE_TYPES = frozenset({"Open", "Click", "Subscription"})
#: Permanent bounce sub-types that mean SES did not even try (a suppression list).
SUPPRESSED_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList"})

#: The certificate URL host SNS signs with (aws-php-sns-message-validator's rule).
CERT_HOST = re.compile(r"^sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?$")

NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


class SNSEnvelopeSchema(PayloadSchema):
    """An Amazon SNS HTTP message (notification or subscription confirmation)."""

    Type = fields.String(required=True)
    MessageId = fields.String(required=True)
    TopicArn = fields.String(required=True)
    Message = fields.String(required=True)
    Timestamp = fields.String(required=True)
    SignatureVersion = fields.String(required=True)
    Signature = fields.String(required=True)
    SigningCertURL = fields.String(required=True)
    SubscribeURL = fields.String()
    Token = fields.String()
    Subject = fields.String(allow_none=True)


class SESMailSchema(PayloadSchema):
    """The ``mail`` object of an SES event."""

    messageId = fields.String(required=True)
    destination = fields.List(fields.String())
    tags = fields.Dict()


class SESEventSchema(PayloadSchema):
    """An SES event (event publishing, ``eventType``) or notification (``notificationType``)."""

    eventType = fields.String()
    notificationType = fields.String()
    mail = fields.Nested(SESMailSchema, required=True)

    _has_type = one_of_required("eventType", "notificationType")


_envelope_schema = SNSEnvelopeSchema()
_event_schema = SESEventSchema()


def https_get(url: str) -> bytes:
    """The default fetcher: GET ``url`` (already checked to be an AWS https URL)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
    return body


def _load_callable(value: Any, key: str) -> Fetcher:
    if value is None:
        return https_get
    if callable(value):
        return value  # type: ignore[no-any-return]
    module_name, sep, attr = str(value).replace(":", ".").rpartition(".")
    if not sep:
        raise ValueError(f"MAILDELIVERY_{key} must be a callable or a dotted path to one")
    func = getattr(importlib.import_module(module_name), attr)
    if not callable(func):
        raise ValueError(f"MAILDELIVERY_{key}={value!r} is not callable")
    return func  # type: ignore[no-any-return]


def check_certificate_url(url: str) -> None:
    """:raises AuthenticationFailed: ``url`` is not an SNS signing certificate URL."""
    parts = urlsplit(url)
    if (
        parts.scheme != "https"
        or not parts.hostname
        or not CERT_HOST.match(parts.hostname)
        or parts.port not in (None, 443)
        or parts.username
        or not parts.path.endswith(".pem")
    ):
        raise AuthenticationFailed(
            f"SigningCertURL {url!r} is not an https://sns.<region>.amazonaws.com/....pem URL"
        )


def check_subscribe_url(url: str) -> None:
    """:raises AuthenticationFailed: ``url`` is not an https SNS URL."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or not CERT_HOST.match(parts.hostname):
        raise AuthenticationFailed(f"SubscribeURL {url!r} is not an https SNS URL")


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The bytes SNS signs: ``key\\nvalue\\n`` for each present key, in the documented order."""
    keys = NOTIFICATION_KEYS if message["Type"] == "Notification" else CONFIRMATION_KEYS
    return "".join(
        f"{k}\n{message[k]}\n" for k in keys if k in message and message[k] is not None
    ).encode("utf-8", "surrogatepass")  # a lone surrogate gives bytes no signature matches


class SESAdapter(SignedTimestampAdapter):
    """Amazon SES through SNS."""

    provider = "ses"
    # SNS reuses the original Timestamp when it retries, and an HTTP/S delivery policy
    # lasts at most 3,600 s (a hard limit, docs.aws.amazon.com/sns sns-message-delivery-retries)
    retry_horizon = 3600
    config_keys: ClassVar[Mapping[str, Any]] = {
        "MAILDELIVERY_SES_TOPIC_ARNS": (),
        "MAILDELIVERY_SES_WEBHOOK_TOLERANCE": None,
        "MAILDELIVERY_SES_CONFIRM_SUBSCRIPTIONS": True,
        # callables ``(url) -> bytes`` (or dotted paths to one); None: an HTTPS GET
        "MAILDELIVERY_SES_CERTIFICATE_FETCHER": None,
        "MAILDELIVERY_SES_SUBSCRIPTION_CONFIRMER": None,
    }
    schema = _event_schema
    event_types = EVENT_TYPES
    auth_failure_status = 403
    retry_status = 503
    retried_answers = (
        "server-side errors (5xx) and timeouts, under the HTTP delivery policy (an hour at most)"
    )
    stored_headers = (
        "content-type",
        "user-agent",
        "x-amz-sns-message-type",
        "x-amz-sns-message-id",
        "x-amz-sns-topic-arn",
    )
    setup_hint = (
        "set MAILDELIVERY_SES_TOPIC_ARNS to the ARN(s) of the SNS topic(s) your SES "
        "configuration set publishes to"
    )

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        return "X-SES-MESSAGE-TAGS", f"{CORRELATION_KEY}={public_id}"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.topic_arns = frozenset(str(a) for a in as_list(config_value("SES_TOPIC_ARNS", app)))
        self.confirm = bool(config_value("SES_CONFIRM_SUBSCRIPTIONS", app))
        self.fetch_certificate = _load_callable(
            config_value("SES_CERTIFICATE_FETCHER", app), "SES_CERTIFICATE_FETCHER"
        )
        self.fetch_subscribe_url = _load_callable(
            config_value("SES_SUBSCRIPTION_CONFIRMER", app), "SES_SUBSCRIPTION_CONFIRMER"
        )
        self._certificates: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.topic_arns)

    def _envelope(self, request: WebhookRequest) -> dict[str, Any]:
        data = request.json()
        validate(_envelope_schema, data, "the SNS message")
        return data  # type: ignore[no-any-return]

    def certificate_key(self, url: str) -> rsa.RSAPublicKey:
        """The public key of the certificate at ``url``, fetched once and cached."""
        check_certificate_url(url)
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            pem = self.fetch_certificate(url)
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError as exc:
            raise AuthenticationFailed(f"the signing certificate is unusable: {exc}") from None
        except OSError as exc:
            # a network failure: let SNS retry later
            raise WebhookError(
                f"the signing certificate could not be fetched: {exc}", status=502
            ) from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise AuthenticationFailed("the signing certificate has no RSA key")
        with self._lock:
            self._certificates[url] = key
        return key

    def verify(self, request: WebhookRequest) -> None:
        try:
            message = self._envelope(request)
        except MalformedPayload as exc:
            # without Signature the request is unauthenticated, not merely malformed
            data = request.json()
            if not isinstance(data, dict) or not data.get("Signature"):
                raise AuthenticationFailed("the SNS message carries no Signature") from None
            raise exc
        header_type = request.header("x-amz-sns-message-type")
        if header_type and header_type != message["Type"]:
            raise AuthenticationFailed("x-amz-sns-message-type does not match the message Type")
        version = message["SignatureVersion"]
        if version not in ("1", "2"):
            raise AuthenticationFailed(f"SignatureVersion {version!r} is not supported")
        if message["TopicArn"] not in self.topic_arns:
            raise AuthenticationFailed(
                f"topic {message['TopicArn']} is not in MAILDELIVERY_SES_TOPIC_ARNS"
            )
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except binascii.Error:
            raise AuthenticationFailed("the Signature is not base64") from None
        key = self.certificate_key(message["SigningCertURL"])
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise AuthenticationFailed("the SNS signature does not match the message") from None
        self.timestamps.check(parse_iso(message["Timestamp"], "Timestamp"), request.received_at)

    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        message = self._envelope(request)
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            self._confirm_subscription(message)
            return []
        if kind == "UnsubscribeConfirmation":
            logger.warning("SNS unsubscribed this endpoint from %s", message["TopicArn"])
            return []
        if kind != "Notification":
            raise MalformedPayload(f"SNS message Type {kind!r} is not known")
        text = message["Message"]
        if not text.lstrip().startswith("{"):
            # e.g. "Successfully validated SNS topic for Amazon SES event publishing."
            logger.info("SNS notification without an SES event: %s", text[:200])
            return []
        event = parse_json(text, "the SNS Message")
        validate(_event_schema, event, "the SES event")
        return self.normalize(message["MessageId"], event)

    def _confirm_subscription(self, message: dict[str, Any]) -> None:
        url = message.get("SubscribeURL")
        if not url:
            raise MalformedPayload("the SubscriptionConfirmation has no SubscribeURL")
        check_subscribe_url(url)
        if not self.confirm:
            logger.warning(
                "SNS subscription to %s not confirmed (MAILDELIVERY_SES_CONFIRM_SUBSCRIPTIONS "
                "is off); confirm it with %s",
                message["TopicArn"],
                url,
            )
            return
        try:
            self.fetch_subscribe_url(url)
        except OSError as exc:
            raise WebhookError(
                f"the subscription could not be confirmed: {exc}", status=502
            ) from None
        logger.info("confirmed the SNS subscription to %s", message["TopicArn"])

    def normalize(self, sns_message_id: str, event: dict[str, Any]) -> list[NormalizedEvent]:
        """The normalized events (one per recipient concerned) of an SES event; one event
        with no recipient for a type in :data:`PER_MESSAGE_TYPES`."""
        raw_type = event.get("eventType") or event.get("notificationType") or ""
        type_ = EVENT_TYPES.get(raw_type, "unknown")
        mail = event["mail"]
        detail = obj(event.get(DETAIL_KEYS.get(raw_type, "")))
        bounce_type = None
        reasons: dict[str, tuple[str | None, str | None]] = {}
        recipients: list[str]
        if raw_type == "Bounce":
            kind, sub = (
                text_or_none(detail.get("bounceType")),
                text_or_none(detail.get("bounceSubType")),
            )
            if kind == "Transient":
                # SES reports a transient bounce only once it stopped retrying: final
                bounce_type = "soft"
            elif kind == "Permanent" and sub in SUPPRESSED_SUBTYPES:
                type_ = "dropped"
            else:
                bounce_type = "hard" if kind == "Permanent" else "undetermined"
            entries = _addressed(detail.get("bouncedRecipients"))
            recipients = list(entries)
            reasons = {
                address: (
                    text_or_none(r.get("diagnosticCode")) or f"{kind}/{sub}",
                    text_or_none(r.get("status")),
                )
                for address, r in entries.items()
            }
        elif raw_type == "Complaint":
            recipients = list(_addressed(detail.get("complainedRecipients")))
        elif raw_type == "DeliveryDelay":
            bounce_type = "soft"
            entries = _addressed(detail.get("delayedRecipients"))
            recipients = list(entries)
            reasons = {
                address: (
                    text_or_none(r.get("diagnosticCode")) or text_or_none(detail.get("delayType")),
                    text_or_none(r.get("status")),
                )
                for address, r in entries.items()
            }
        elif raw_type in PER_MESSAGE_TYPES:
            recipients = [""]
        elif raw_type == "Delivery":
            recipients = [r for r in _items(detail.get("recipients")) if isinstance(r, str)]
            reason = text_or_none(detail.get("smtpResponse"))
            reasons = {r: (reason, None) for r in recipients}
        else:
            recipients = [r for r in _items(mail.get("destination")) if isinstance(r, str)]
            if raw_type in ("Reject", "Rendering Failure"):
                reason = text_or_none(detail.get("reason") or detail.get("errorMessage"))
                reasons = {r: (reason, None) for r in recipients}
        if not recipients:
            recipients = [r for r in _items(mail.get("destination")) if isinstance(r, str)] or [""]
        when = detail.get("timestamp") or mail.get("timestamp")
        occurred = parse_iso(when, f"{raw_type} timestamp")
        correlation = _correlation_id(mail)
        return [
            NormalizedEvent(
                provider=self.provider,
                # one SNS message can name several recipients
                provider_event_id=f"{sns_message_id}:{address.lower()}",
                type=type_,
                raw_type=raw_type,
                occurred_at=occurred,
                recipient=address or None,
                maildelivery_id=correlation,
                provider_message_id=text_or_none(mail.get("messageId")),
                reason=reasons.get(address, (None, None))[0],
                smtp_code=reasons.get(address, (None, None))[1],
                bounce_type=bounce_type,
                payload=event,
            )
            for address in dict.fromkeys(recipients)
        ]


def _items(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def _addressed(entries: Any) -> dict[str, dict[str, Any]]:
    """``{emailAddress: entry}`` of a list of SES recipient objects (bad entries skipped)."""
    if not isinstance(entries, list):
        return {}
    return {
        e["emailAddress"]: e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("emailAddress"), str)
    }


def _correlation_id(mail: dict[str, Any]) -> str | None:
    """``maildelivery_id`` from the message tags, else from the X-MailDelivery-ID header."""
    tags = mail.get("tags")
    if isinstance(tags, dict):
        values = tags.get(CORRELATION_KEY)
        if isinstance(values, list) and values:
            return text_or_none(values[0])
        if isinstance(values, str):
            return text_or_none(values)
    for header in _items(mail.get("headers")):
        if (
            isinstance(header, dict)
            and str(header.get("name", "")).lower() == CORRELATION_HEADER.lower()
        ):
            return text_or_none(header.get("value"))
    return None
