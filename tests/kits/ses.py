"""Amazon SES kit: an SES event inside an SNS notification, the SNS message signed with RSA
(SignatureVersion 1 or 2) by a self-signed certificate served from a stand-in for SNS's
certificate host."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from flask_maildelivery.webhooks.ses import string_to_sign

from .base import EXPECTED_TYPES, Facts, Kit, iso

CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
)
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def self_signed(key: rsa.RSAPrivateKey) -> bytes:
    """A PEM certificate for ``key``, signed by itself."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


_RSA_KEYS: list[rsa.RSAPrivateKey] = []


def rsa_key(index: int) -> rsa.RSAPrivateKey:
    """RSA keys generated once per test session (key generation is slow)."""
    while len(_RSA_KEYS) <= index:
        _RSA_KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _RSA_KEYS[index]


@dataclass
class CertificateServer:
    """Stands in for SNS's certificate host: the certificate fetcher the app is configured
    with. Records every URL it was asked for."""

    pems: dict[str, bytes]
    fetched: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        try:
            return self.pems[url]
        except KeyError:
            raise OSError(f"404 for {url}") from None


@dataclass
class SubscriptionEndpoint:
    """Stands in for SNS's SubscribeURL: records the confirmations."""

    confirmed: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> bytes:
        self.confirmed.append(url)
        return b"<ConfirmSubscriptionResponse/>"


@dataclass
class SESKit(Kit):
    provider: ClassVar[str] = "ses"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    auth_status: ClassVar[int] = 403
    per_message: ClassVar[frozenset[str]] = frozenset({"open", "click", "unsubscribe"})
    signature_version: str = "2"
    certificates: CertificateServer = field(
        default_factory=lambda: CertificateServer({CERT_URL: self_signed(rsa_key(0))})
    )
    subscriptions: SubscriptionEndpoint = field(default_factory=SubscriptionEndpoint)

    def config(self) -> dict[str, Any]:
        return {
            "MAILDELIVERY_SES_TOPIC_ARNS": [TOPIC_ARN],
            "MAILDELIVERY_SES_CERTIFICATE_FETCHER": self.certificates,
            "MAILDELIVERY_SES_SUBSCRIPTION_CONFIRMER": self.subscriptions,
        }

    def wrong_config(self) -> dict[str, Any]:
        # the certificate at the URL belongs to another key than the one that signed
        return {
            **self.config(),
            "MAILDELIVERY_SES_CERTIFICATE_FETCHER": CertificateServer(
                {CERT_URL: self_signed(rsa_key(1))}
            ),
        }

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        mail = {
            "timestamp": iso(facts.at - timedelta(seconds=5)),
            "messageId": facts.message_id or "0100018c-none",
            "source": "billing@acme.test",
            "destination": [facts.address],
            "tags": {"maildelivery_id": [facts.public_id]}
            if facts.public_id
            else {"ses:configuration-set": ["main"]},
        }
        when = iso(facts.at)
        recipient = {"emailAddress": facts.address}
        events: dict[str, dict[str, Any]] = {
            "processed": {"eventType": "Send", "send": {}},
            "delivered": {
                "eventType": "Delivery",
                "delivery": {
                    "timestamp": when,
                    "recipients": [facts.address],
                    "smtpResponse": "250 ok",
                },
            },
            "deferred": {
                "eventType": "DeliveryDelay",
                "deliveryDelay": {
                    "timestamp": when,
                    "delayType": "TransientCommunicationFailure",
                    "delayedRecipients": [
                        {**recipient, "status": "4.4.1", "diagnosticCode": "smtp; 421 try later"}
                    ],
                },
            },
            "soft_bounce": {
                "eventType": "Bounce",
                "bounce": {
                    "bounceType": "Transient",
                    "bounceSubType": "MailboxFull",
                    "timestamp": when,
                    "feedbackId": facts.event_id,
                    "bouncedRecipients": [
                        {**recipient, "status": "4.2.2", "diagnosticCode": "smtp; 452 mailbox full"}
                    ],
                },
            },
            "hard_bounce": {
                "eventType": "Bounce",
                "bounce": {
                    "bounceType": "Permanent",
                    "bounceSubType": "General",
                    "timestamp": when,
                    "feedbackId": facts.event_id,
                    "bouncedRecipients": [
                        {
                            **recipient,
                            "action": "failed",
                            "status": "5.1.1",
                            "diagnosticCode": "smtp; 550 5.1.1 no such user",
                        }
                    ],
                },
            },
            "dropped": {"eventType": "Reject", "reject": {"reason": "Bad content"}},
            "open": {
                "eventType": "Open",
                "open": {"timestamp": when, "userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.1"},
            },
            "click": {
                "eventType": "Click",
                "click": {
                    "timestamp": when,
                    "link": "https://acme.test/invoice/42",
                    "ipAddress": "192.0.2.1",
                },
            },
            "complaint": {
                "eventType": "Complaint",
                "complaint": {
                    "timestamp": when,
                    "feedbackId": facts.event_id,
                    "complainedRecipients": [recipient],
                    "complaintFeedbackType": "abuse",
                },
            },
            "unsubscribe": {
                "eventType": "Subscription",
                "subscription": {
                    "timestamp": when,
                    "contactList": "invoices",
                    "newTopicPreferences": {"unsubscribeAll": True},
                },
            },
            "unknown": {"eventType": "FutureEvent", "futureEvent": {"timestamp": when}},
        }
        event = {**events[kind], "mail": mail}
        if kind in ("processed", "dropped"):
            event["mail"]["timestamp"] = when
        return {"__id": facts.event_id, "__at": facts.at, "event": event}

    def envelope(
        self,
        message: str,
        message_id: str,
        at: datetime,
        *,
        kind: str = "Notification",
        **extra: Any,
    ) -> dict[str, Any]:
        """An SNS message of type ``kind`` carrying ``message``, unsigned."""
        return {
            "Type": kind,
            "MessageId": message_id,
            "TopicArn": TOPIC_ARN,
            "Message": message,
            "Timestamp": iso(at),
            "SignatureVersion": self.signature_version,
            "SigningCertURL": CERT_URL,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            **extra,
        }

    def sign(
        self, envelope: dict[str, Any], key: rsa.RSAPrivateKey | None = None
    ) -> dict[str, Any]:
        """``envelope`` with the ``Signature`` SNS computes over it (by its
        ``SignatureVersion``), made with ``key`` (default: the key whose certificate the
        kit serves)."""
        algorithm = hashes.SHA1() if envelope["SignatureVersion"] == "1" else hashes.SHA256()
        signature = (key or rsa_key(0)).sign(
            string_to_sign(envelope), padding.PKCS1v15(), algorithm
        )
        return {**envelope, "Signature": base64.b64encode(signature).decode()}

    def post(self, envelope: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The request SNS makes to deliver ``envelope``."""
        return json.dumps(envelope).encode(), {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-topic-arn": envelope["TopicArn"],
        }

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        assert len(events) == 1
        item = events[0]
        envelope = self.envelope(json.dumps(item["event"]), item["__id"], signed_at)
        if mode == "missing":
            return self.post({**envelope, "Signature": ""})
        signed = self.sign(envelope)
        if mode == "forged":
            signed["Message"] = signed["Message"].replace("Delivery", "Bounce")
            signed["Message"] += " "
        return self.post(signed)

    def malformed(self) -> tuple[bytes, dict[str, str]]:
        envelope = self.envelope(
            json.dumps({"eventType": "Delivery"}), "malformed-1", datetime.now(UTC)
        )
        return self.post(self.sign(envelope))
