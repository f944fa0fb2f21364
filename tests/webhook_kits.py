"""Per-provider test kits: build requests in each provider's documented shape, signed (or
authenticated) the way the provider does it, with keys generated here.

A kit knows one provider: its app configuration, how to build one event of a given kind
(``delivered``, ``hard_bounce``, ...), how to wrap events into a request (valid, forged,
without credentials) and a malformed body. The contract, mapping, order and concurrency
tests all build their requests through these kits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from flask_maildelivery.transports import OutgoingMessage, SendResult, Transport
from flask_maildelivery.webhooks.ses import string_to_sign

#: The normalized type each test kind must map to.
EXPECTED_TYPES: dict[str, str] = {
    "processed": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    "soft_bounce": "deferred",
    "hard_bounce": "bounced",
    "dropped": "dropped",
    "open": "opened",
    "click": "clicked",
    "complaint": "complained",
    "unsubscribe": "unsubscribed",
    "unknown": "unknown",
}
#: Kinds every provider documents (mapping tests).
MAPPING_KINDS = (
    "delivered",
    "soft_bounce",
    "hard_bounce",
    "dropped",
    "open",
    "click",
    "complaint",
    "unsubscribe",
)
#: The recipient most tests write to.
ANN = "ann@customer.test"
#: Old enough to be refused by every provider's tolerance.
STALE_AGE = timedelta(days=3)


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(frozen=True)
class Facts:
    """What one test event says, in every provider's shape alike."""

    address: str
    public_id: str | None
    message_id: str | None
    at: datetime
    event_id: str


@dataclass
class Kit(ABC):
    """Base kit. ``kinds``: the test kinds the provider documents."""

    provider: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    #: Several events per request.
    batch: ClassVar[bool] = False
    #: Answer to a failed authentication.
    auth_status: ClassVar[int] = 401
    #: Answer to the very same request posted twice.
    repeat_status: ClassVar[int] = 200
    #: An event missing what the documented shape requires.
    malformed_event: ClassVar[dict[str, Any]]

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """App configuration with the provider's credentials."""

    @abstractmethod
    def wrong_config(self) -> dict[str, Any]:
        """App configuration with credentials other than those the kit signs with."""

    def event(
        self,
        kind: str,
        *,
        address: str,
        public_id: str | None,
        message_id: str | None,
        at: datetime,
        event_id: str,
    ) -> dict[str, Any]:
        """One event of test kind ``kind`` in the provider's documented shape."""
        return self.shape(kind, Facts(address, public_id, message_id, at, event_id))

    @abstractmethod
    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        """The provider's event of test kind ``kind`` saying ``facts``."""

    def request(
        self,
        events: list[dict[str, Any]],
        *,
        mode: str = "valid",
        signed_at: datetime | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """Body and headers of a request carrying ``events``; ``mode``: ``valid``,
        ``forged`` (wrong signature/credentials) or ``missing`` (none); signed at
        ``signed_at`` (default: now) where the provider signs a time."""
        return self.build_request(events, mode, signed_at or datetime.now(UTC))

    @abstractmethod
    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        """:meth:`request`'s work, every argument given."""

    def malformed(self) -> tuple[bytes, dict[str, str]]:
        """An authentic request whose body is not in the documented shape: by default one
        carrying :attr:`malformed_event`."""
        return self.request([self.malformed_event])

    def new_message_id(self) -> str:
        """A provider message id as the send API returns it."""
        return secrets.token_hex(8)

    def start(self, make_app: Any, **extra: Any) -> Any:
        """An app with the kit's credentials, ``extra`` settings on top."""
        return make_app(**{**self.config(), **extra})

    def one_event(
        self,
        kind: str,
        public_id: str | None,
        *,
        message_id: str | None = None,
        at: datetime | None = None,
        address: str = ANN,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`event` for ``address`` (default Ann), now and with a fresh event id unless
        told otherwise."""
        return self.event(
            kind,
            address=address,
            public_id=public_id,
            message_id=message_id,
            at=at or datetime.now(UTC),
            event_id=event_id or secrets.token_urlsafe(12),
        )

    def post_events(self, app: Any, events: list[dict[str, Any]], **options: Any) -> Any:
        """POST one authentic request carrying ``events`` (``options``: those of
        :meth:`request`); the response."""
        return post(app, self, self.request(events, **options))


class BasicAuthKit(Kit):
    """Providers authenticated by basic auth credentials in the webhook URL."""

    user: ClassVar[str] = "hook"
    password: ClassVar[str] = "s3cret-pass"

    def config(self) -> dict[str, Any]:
        prefix = f"MAILDELIVERY_{self.provider.upper()}_WEBHOOK_"
        # the list form holds the old pair during a rotation: both are accepted
        return {
            prefix + "USERNAME": self.user,
            prefix + "PASSWORD": self.password,
            prefix + "CREDENTIALS": [("old-hook", "old-pass")],
        }

    def wrong_config(self) -> dict[str, Any]:
        prefix = f"MAILDELIVERY_{self.provider.upper()}_WEBHOOK_"
        return {prefix + "USERNAME": self.user, prefix + "PASSWORD": "another-password"}

    def wrap(self, events: list[dict[str, Any]]) -> Any:
        return events[0] if len(events) == 1 else events

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(self.wrap(events)).encode()
        return body, self.auth_headers(mode)

    def auth_headers(self, mode: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if mode == "valid":
            headers["Authorization"] = basic(self.user, self.password)
        elif mode == "forged":
            headers["Authorization"] = basic(self.user, "guessed")
        return headers


# -- SendGrid --------------------------------------------------------------------------------


@dataclass
class SendGridKit(Kit):
    provider: ClassVar[str] = "sendgrid"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    malformed_event: ClassVar[dict[str, Any]] = {"event": "delivered", "timestamp": "yesterday"}
    batch: ClassVar[bool] = True
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    @staticmethod
    def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": self.public_b64(self.key)}

    def wrong_config(self) -> dict[str, Any]:
        other = ec.generate_private_key(ec.SECP256R1())
        return {"MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": self.public_b64(other)}

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        base: dict[str, Any] = {
            "email": facts.address,
            "timestamp": epoch(facts.at),
            "sg_event_id": facts.event_id,
            "smtp-id": f"<{facts.message_id}@ismtpd.sendgrid.net>",
            "category": ["invoice"],
        }
        if facts.message_id:
            base["sg_message_id"] = f"{facts.message_id}.filterdrecv-5645d9c87f-abcde-1-0"
        if facts.public_id:
            base["maildelivery_id"] = facts.public_id
        extra: dict[str, dict[str, Any]] = {
            "processed": {"event": "processed"},
            "delivered": {"event": "delivered", "response": "250 OK"},
            "deferred": {"event": "deferred", "response": "421 try again later", "attempt": "1"},
            "soft_bounce": {
                "event": "deferred",
                "response": "452 4.2.2 mailbox full",
                "attempt": "2",
            },
            "hard_bounce": {
                "event": "bounce",
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 no such user",
                "bounce_classification": "Invalid Address",
            },
            "dropped": {"event": "dropped", "reason": "Bounced Address"},
            "open": {"event": "open", "useragent": "Mozilla/5.0", "ip": "192.0.2.1"},
            "click": {"event": "click", "url": "https://acme.test/invoice/42"},
            "complaint": {"event": "spamreport"},
            "unsubscribe": {"event": "unsubscribe"},
            "unknown": {"event": "future_event_name"},
        }
        return {**base, **extra[kind]}

    def sign(self, key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
        return base64.b64encode(
            key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        ).decode()

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(events).encode()
        timestamp = str(epoch(signed_at))
        headers = {"Content-Type": "application/json"}
        if mode == "missing":
            return body, headers
        signature = self.sign(self.key, timestamp, body)
        if mode == "forged":
            # a valid signature of other bytes
            signature = self.sign(self.key, timestamp, body + b" ")
        headers["X-Twilio-Email-Event-Webhook-Signature"] = signature
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp
        return body, headers


# -- Mailgun ---------------------------------------------------------------------------------


@dataclass
class MailgunKit(Kit):
    provider: ClassVar[str] = "mailgun"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"deferred"}
    auth_status: ClassVar[int] = 406
    # the second post reuses the signature token: refused as a replay (stored once)
    repeat_status: ClassVar[int] = 406
    signing_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY": ["key-retired", self.signing_key]}

    def wrong_config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY": "key-of-another-account"}

    def new_message_id(self) -> str:
        # the send API answers with angle brackets; events carry the id without them
        return f"<20240101000000.{secrets.token_hex(6)}@mg.acme.test>"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": facts.event_id,
            "timestamp": facts.at.timestamp(),
            "recipient": facts.address,
            "log-level": "info",
            "tags": ["invoice"],
            "message": {"headers": {"message-id": (facts.message_id or "x@mg").strip("<>")}},
            "user-variables": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        failure = {
            "code": 550,
            "enhanced-code": "5.1.1",
            "message": "5.1.1 no such user",
            "attempt-no": 1,
        }
        extra: dict[str, dict[str, Any]] = {
            "processed": {"event": "accepted"},
            "delivered": {"event": "delivered", "delivery-status": {"code": 250, "message": "OK"}},
            "soft_bounce": {
                "event": "failed",
                "severity": "temporary",
                "reason": "generic",
                "delivery-status": {
                    "code": 452,
                    "message": "4.2.2 mailbox full",
                    "retry-seconds": 600,
                },
            },
            "hard_bounce": {
                "event": "failed",
                "severity": "permanent",
                "reason": "bounce",
                "delivery-status": failure,
            },
            "dropped": {
                "event": "rejected",
                "reject": {"reason": "Sandbox subdomains are for test purposes only"},
            },
            "open": {"event": "opened"},
            "click": {"event": "clicked", "url": "https://acme.test/invoice/42"},
            "complaint": {"event": "complained"},
            "unsubscribe": {"event": "unsubscribed"},
            "unknown": {"event": "future-event"},
        }
        return {**data, **extra[kind]}

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        assert len(events) == 1
        timestamp = str(epoch(signed_at))
        token = secrets.token_hex(25)
        signature = hmac.new(
            self.signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
        ).hexdigest()
        if mode == "forged":
            signature = hmac.new(
                b"guessed", (timestamp + token).encode(), hashlib.sha256
            ).hexdigest()
        body: dict[str, Any] = {"event-data": events[0]}
        if mode != "missing":
            body["signature"] = {"timestamp": timestamp, "token": token, "signature": signature}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}

    def malformed(self) -> tuple[bytes, dict[str, str]]:
        body, headers = self.request([{}])
        data = json.loads(body)
        data["event-data"] = {"event": "delivered"}  # no timestamp
        return json.dumps(data).encode(), headers


# -- Postmark --------------------------------------------------------------------------------

_POSTMARK_BOUNCES = {
    "soft_bounce": ("SoftBounce", 4096),
    "hard_bounce": ("HardBounce", 1),
    "dropped": ("ManuallyDeactivated", 100002),
    "unsubscribe": ("Unsubscribe", 16),
}


class PostmarkKit(BasicAuthKit):
    provider: ClassVar[str] = "postmark"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"processed", "deferred"}
    malformed_event: ClassVar[dict[str, Any]] = {
        "RecordType": "Delivery",
        "Recipient": "ann@customer.test",
    }

    def new_message_id(self) -> str:
        import uuid

        return str(uuid.uuid4())

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        common = {
            "MessageID": facts.message_id or "00000000-0000-4000-8000-000000000000",
            "MessageStream": "outbound",
            "ServerID": 23,
            "Tag": "invoice",
            "Metadata": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        when = facts.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        if kind in _POSTMARK_BOUNCES or kind == "complaint":
            name, code = _POSTMARK_BOUNCES.get(kind, ("SpamComplaint", 100001))
            return {
                **common,
                "RecordType": "SpamComplaint" if kind == "complaint" else "Bounce",
                "ID": abs(hash(facts.event_id)) % 10**12,
                "Type": name,
                "TypeCode": code,
                "Email": facts.address,
                "BouncedAt": when,
                "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
                "Description": "The server was unable to deliver your message",
                "Inactive": kind != "soft_bounce",
                "CanActivate": True,
            }
        records: dict[str, dict[str, Any]] = {
            "delivered": {
                "RecordType": "Delivery",
                "Recipient": facts.address,
                "DeliveredAt": when,
                "Details": "Test delivery webhook details",
            },
            "open": {
                "RecordType": "Open",
                "Recipient": facts.address,
                "ReceivedAt": when,
                "FirstOpen": True,
            },
            "click": {
                "RecordType": "Click",
                "Recipient": facts.address,
                "ReceivedAt": when,
                "OriginalLink": "https://acme.test/invoice/42",
            },
            "unknown": {
                "RecordType": "FutureRecord",
                "Recipient": facts.address,
                "ReceivedAt": when,
            },
        }
        return {**common, **records[kind]}


# -- Amazon SES through SNS ----------------------------------------------------------------

CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
)
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def self_signed(key: rsa.RSAPrivateKey) -> bytes:
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
        env: dict[str, Any] = {
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
        return env

    def sign(
        self, envelope: dict[str, Any], key: rsa.RSAPrivateKey | None = None
    ) -> dict[str, Any]:
        algorithm = hashes.SHA1() if envelope["SignatureVersion"] == "1" else hashes.SHA256()
        signature = (key or rsa_key(0)).sign(
            string_to_sign(envelope), padding.PKCS1v15(), algorithm
        )
        return {**envelope, "Signature": base64.b64encode(signature).decode()}

    def post(self, envelope: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
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


# -- SparkPost -------------------------------------------------------------------------------


class SparkPostKit(BasicAuthKit):
    provider: ClassVar[str] = "sparkpost"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    malformed_event: ClassVar[dict[str, Any]] = {"msys": {"message_event": {"type": "delivery"}}}
    batch: ClassVar[bool] = True

    def new_message_id(self) -> str:
        return str(secrets.randbelow(10**17) + 10**17)

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": facts.event_id,
            "transmission_id": facts.message_id or "0",
            "message_id": "0000aaaa0000bbbb",
            "rcpt_to": facts.address,
            "raw_rcpt_to": facts.address,
            "timestamp": str(epoch(facts.at)),
            "campaign_id": "invoice",
            "rcpt_meta": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        klass, extra = {
            "processed": ("message_event", {"type": "injection"}),
            "delivered": ("message_event", {"type": "delivery"}),
            "deferred": (
                "message_event",
                {"type": "delay", "raw_reason": "421 try again", "error_code": "421"},
            ),
            "soft_bounce": (
                "message_event",
                {
                    "type": "bounce",
                    "bounce_class": "22",
                    "raw_reason": "452 mailbox full",
                    "error_code": "452",
                },
            ),
            "hard_bounce": (
                "message_event",
                {
                    "type": "bounce",
                    "bounce_class": "10",
                    "raw_reason": "550 5.1.1 no such user",
                    "error_code": "550",
                },
            ),
            "dropped": (
                "message_event",
                {"type": "policy_rejection", "raw_reason": "550 5.7.1 Recipient is suppressed"},
            ),
            "open": ("track_event", {"type": "open"}),
            "click": (
                "track_event",
                {"type": "click", "target_link_url": "https://acme.test/invoice/42"},
            ),
            "complaint": ("message_event", {"type": "spam_complaint", "fbtype": "abuse"}),
            "unsubscribe": ("unsubscribe_event", {"type": "list_unsubscribe"}),
            "unknown": ("relay_event", {"type": "future_event"}),
        }[kind]
        return {"msys": {klass: {**body, **extra}}}

    def wrap(self, events: list[dict[str, Any]]) -> Any:
        return events


# -- Mailjet ---------------------------------------------------------------------------------


class MailjetKit(BasicAuthKit):
    provider: ClassVar[str] = "mailjet"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"processed", "deferred"}
    malformed_event: ClassVar[dict[str, Any]] = {"event": "sent", "MessageID": 1}
    batch: ClassVar[bool] = True

    def new_message_id(self) -> str:
        return str(1152921500000000000 + secrets.randbelow(10**15))

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        common: dict[str, Any] = {
            "time": epoch(facts.at),
            "MessageID": int(facts.message_id) if facts.message_id else 0,
            "Message_GUID": facts.event_id,
            "email": facts.address,
            "mj_campaign_id": 0,
            "mj_contact_id": 0,
            "customcampaign": "invoice",
            "CustomID": "",
            "Payload": json.dumps({"maildelivery_id": facts.public_id}) if facts.public_id else "",
        }
        extras: dict[str, dict[str, Any]] = {
            "delivered": {"event": "sent", "smtp_reply": "250 OK queued"},
            "soft_bounce": {
                "event": "bounce",
                "blocked": False,
                "hard_bounce": False,
                "error_related_to": "recipient",
                "error": "quota exceeded",
            },
            "hard_bounce": {
                "event": "bounce",
                "blocked": False,
                "hard_bounce": True,
                "error_related_to": "recipient",
                "error": "user unknown",
            },
            "dropped": {"event": "blocked", "error_related_to": "recipient", "error": "preblocked"},
            "open": {"event": "open", "ip": "192.0.2.1", "agent": "Mozilla/5.0"},
            "click": {"event": "click", "url": "https://acme.test/invoice/42"},
            "complaint": {"event": "spam", "source": "JMRPP"},
            "unsubscribe": {"event": "unsub", "mj_list_id": 1},
            "unknown": {"event": "future"},
        }
        return {**common, **extras[kind]}


# -- Brevo -----------------------------------------------------------------------------------


class BrevoKit(BasicAuthKit):
    provider: ClassVar[str] = "brevo"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES)
    malformed_event: ClassVar[dict[str, Any]] = {"event": "delivered", "email": "ann@customer.test"}
    batch: ClassVar[bool] = True

    def new_message_id(self) -> str:
        return f"<{secrets.token_hex(6)}.{secrets.randbelow(10**10)}@smtp-relay.mailin.fr>"

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        common: dict[str, Any] = {
            "id": 123456,
            "email": facts.address,
            "message-id": facts.message_id or "<none@smtp-relay.mailin.fr>",
            "date": facts.at.strftime("%Y-%m-%d %H:%M:%S"),
            "ts_epoch": int(facts.at.timestamp() * 1000),
            "subject": "Invoice INV-0042",
            "tags": ["invoice"],
            "X-Mailin-custom": json.dumps({"maildelivery_id": facts.public_id})
            if facts.public_id
            else "",
            "sending_ip": "192.0.2.10",
        }
        extras: dict[str, dict[str, Any]] = {
            "processed": {"event": "request"},
            "delivered": {"event": "delivered"},
            "deferred": {"event": "deferred", "reason": "421 try later"},
            "soft_bounce": {"event": "soft_bounce", "reason": " 452 mailbox full"},
            "hard_bounce": {"event": "hard_bounce", "reason": "550 5.1.1 no such user"},
            "dropped": {"event": "blocked", "reason": "blocked : due to blacklist user"},
            "open": {"event": "opened"},
            "click": {"event": "click", "link": "https://acme.test/invoice/42"},
            "complaint": {"event": "spam"},
            "unsubscribe": {"event": "unsubscribed"},
            "unknown": {"event": "future_event"},
        }
        return {**common, **extras[kind]}


# -- Resend ----------------------------------------------------------------------------------


@dataclass
class ResendKit(Kit):
    provider: ClassVar[str] = "resend"
    kinds: ClassVar[frozenset[str]] = frozenset(EXPECTED_TYPES) - {"unsubscribe"}
    malformed_event: ClassVar[dict[str, Any]] = {"__id": "msg_malformed", "type": "email.delivered"}
    secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )

    def config(self) -> dict[str, Any]:
        return {"MAILDELIVERY_RESEND_WEBHOOK_SECRET": self.secret}

    def wrong_config(self) -> dict[str, Any]:
        return {
            "MAILDELIVERY_RESEND_WEBHOOK_SECRET": "whsec_"
            + base64.b64encode(b"another-secret-key").decode()
        }

    def new_message_id(self) -> str:
        import uuid

        return str(uuid.uuid4())

    def shape(self, kind: str, facts: Facts) -> dict[str, Any]:
        data: dict[str, Any] = {
            "email_id": facts.message_id or "00000000-0000-4000-8000-000000000000",
            "from": "Billing <billing@acme.test>",
            "to": [facts.address],
            "subject": "Invoice INV-0042",
            "created_at": iso(facts.at - timedelta(seconds=5)),
            "tags": {"maildelivery_id": facts.public_id} if facts.public_id else {},
        }
        type_, extra = {
            "processed": ("email.sent", {}),
            "delivered": ("email.delivered", {}),
            "deferred": ("email.delivery_delayed", {}),
            "soft_bounce": (
                "email.bounced",
                {
                    "bounce": {
                        "type": "Transient",
                        "subType": "MailboxFull",
                        "message": "mailbox full",
                    }
                },
            ),
            "hard_bounce": (
                "email.bounced",
                {
                    "bounce": {
                        "type": "Permanent",
                        "subType": "General",
                        "message": "The recipient's mail server permanently rejected the email.",
                    }
                },
            ),
            "dropped": ("email.suppressed", {}),
            "open": ("email.opened", {}),
            "click": (
                "email.clicked",
                {"click": {"link": "https://acme.test/invoice/42", "userAgent": "Mozilla/5.0"}},
            ),
            "complaint": ("email.complained", {}),
            "unknown": ("email.future", {}),
        }[kind]
        return {
            "__id": facts.event_id,
            "type": type_,
            "created_at": iso(facts.at),
            "data": {**data, **extra},
        }

    def signature(self, secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        return (
            "v1,"
            + base64.b64encode(
                hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
            ).decode()
        )

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        assert len(events) == 1
        item = dict(events[0])
        msg_id = item.pop("__id", None) or f"msg_{secrets.token_hex(8)}"
        body = json.dumps(item).encode()
        timestamp = str(epoch(signed_at))
        headers = {
            "Content-Type": "application/json",
            "svix-id": msg_id,
            "svix-timestamp": timestamp,
        }
        if mode == "missing":
            return body, {"Content-Type": "application/json"}
        if mode == "forged":
            headers["svix-signature"] = self.signature(self.secret, msg_id, timestamp, body + b"x")
        else:
            # an old secret's signature next to the current one, as during a rotation
            other = "whsec_" + base64.b64encode(b"retired-secret").decode()
            headers["svix-signature"] = " ".join(
                [
                    self.signature(other, msg_id, timestamp, body),
                    self.signature(self.secret, msg_id, timestamp, body),
                ]
            )
        return body, headers


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
    )
}
PROVIDERS = list(KITS)


# -- helpers shared by the webhook tests -----------------------------------------------------


def send_email(app: Any, to: tuple[str, ...] = ("ann@customer.test",), **kwargs: Any) -> Any:
    """Send (memory transport) and return the stored email."""
    from flask_maildelivery import MailDelivery

    with app.app_context():
        email = MailDelivery.state(app).extension.send(
            subject="Invoice INV-0042", to=list(to), text="Please find your invoice.", **kwargs
        )
        return email.id, email.public_id


def set_message_id(app: Any, email_id: int, message_id: str) -> None:
    """Store the provider message id the send API would have returned."""
    import sqlalchemy as sa

    from flask_maildelivery.events import normalize_message_id
    from flask_maildelivery.extension import MailDelivery
    from flask_maildelivery.models import Email

    with app.app_context():
        session = MailDelivery.state(app).db.session
        session.execute(
            sa.update(Email)
            .where(Email.id == email_id)
            .values(provider_message_id=normalize_message_id(message_id))
        )
        session.commit()


def stored_events(app: Any) -> list[Any]:
    """Every stored event, oldest first (detached from the session)."""
    import sqlalchemy as sa

    from flask_maildelivery.extension import MailDelivery
    from flask_maildelivery.models import Event

    with app.app_context():
        session = MailDelivery.state(app).db.session
        events = list(session.scalars(sa.select(Event).order_by(Event.id)))
        session.expunge_all()
        return events


def recipient_states(app: Any, email_id: int) -> dict[str, tuple[str, str | None]]:
    """``address -> (status, bounce_type)`` of an email's recipients."""
    import sqlalchemy as sa

    from flask_maildelivery.extension import MailDelivery
    from flask_maildelivery.models import Recipient

    with app.app_context():
        session = MailDelivery.state(app).db.session
        rows = session.execute(
            sa.select(Recipient.address, Recipient.status, Recipient.bounce_type).where(
                Recipient.email_id == email_id
            )
        )
        return {a: (s, b) for a, s, b in rows}


def email_result(app: Any, email_id: int) -> tuple[str, str]:
    """``(result, status)`` of an email."""
    from flask_maildelivery.extension import MailDelivery
    from flask_maildelivery.models import Email

    with app.app_context():
        session = MailDelivery.state(app).db.session
        session.expire_all()
        email = session.get(Email, email_id)
        assert email is not None
        return email.result, email.status


def webhook_url(provider: str) -> str:
    return f"/maildelivery/webhooks/{provider}"


def post(app: Any, kit: Kit, request: tuple[bytes, dict[str, str]]) -> Any:
    """POST a (body, headers) request to the kit's endpoint."""
    body, headers = request
    return app.test_client().post(webhook_url(kit.provider), data=body, headers=headers)


def post_events(
    app: Any,
    kit: Kit,
    kinds: list[str],
    *,
    address: str,
    public_id: str | None,
    message_id: str | None = None,
    at: datetime | None = None,
) -> list[Any]:
    """Post one request per kind (one event each, all at the same time); return the
    responses."""
    at = at or datetime.now(UTC)
    return [
        kit.post_events(
            app, [kit.one_event(kind, public_id, message_id=message_id, at=at, address=address)]
        )
        for kind in kinds
    ]


#: Bounce type each test kind stores, when the provider says it.
EXPECTED_BOUNCE_TYPES: dict[str, str] = {"soft_bounce": "soft", "hard_bounce": "hard"}


def check_mapping(make_app: Any, kit: Kit, kind: str, *, by_message_id: bool = False) -> Any:
    """Post one ``kind`` event for a fresh email and check the stored event and the
    recipient's status; return the stored event.

    :param by_message_id: the event carries no ``maildelivery_id``: it must find its email
        by the provider's message id.
    """
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    message_id = kit.new_message_id()
    set_message_id(app, email_id, message_id)
    event = kit.one_event(
        kind,
        None if by_message_id else public_id,
        message_id=message_id,
        address="Ann@Customer.test",  # addresses match case-insensitively
    )
    response = kit.post_events(app, [event])
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    expected = EXPECTED_TYPES[kind]
    assert stored.type == expected, (kind, stored.raw_type)
    assert stored.email_id == email_id
    assert stored.recipient_id is not None
    if kind in EXPECTED_BOUNCE_TYPES:
        assert stored.bounce_type == EXPECTED_BOUNCE_TYPES[kind]
    if kind in ("soft_bounce", "hard_bounce"):
        assert stored.reason  # the provider's explanation is kept
    status = recipient_states(app, email_id)["ann@customer.test"][0]
    assert status == (expected if expected != "unknown" else "queued")
    return stored


class KnownIdTransport(Transport):
    """Accepts every message and answers with the provider message id given in the send's
    metadata (``provider_message_id``): a provider API whose webhook beat the send."""

    name = "known-id"

    def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(provider_message_id=str(message.metadata["provider_message_id"]))
