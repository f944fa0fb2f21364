"""A local stand-in for SendGrid: an SMTP server that accepts the mail, and a simulator that
posts signed SendGrid event webhooks back to the app, the way SendGrid would.

What happens to a recipient depends on its domain (see :data:`OUTCOMES`). Events are
signed with a real ECDSA P-256 key (SendGrid's Signed Event Webhook): the key is generated at
first start and kept in the instance folder, and the app is configured with its public key,
so the webhook endpoint verifies every request exactly as it would in production.

With a bounce Maildir (:attr:`ProviderSimulator.bounce_maildir`), the late bounce of
``late.example`` comes back the way a mail server sends it to an SMTP sender: a real RFC 3464
delivery status notification, addressed to the message's envelope sender (the app's tagged
bounce address) and delivered into that Maildir, where ``flask maildelivery bounces`` reads it.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import mailbox
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

logger = logging.getLogger("example_app.simulator")

#: SendGrid's signed event webhook headers.
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: File (in the instance folder) holding the simulator's private signing key.
KEY_FILE = "sendgrid-simulator-key.pem"

#: Recipient domain -> what the simulated provider does with the message.
OUTCOMES: dict[str, str] = {
    "bounce.example": "bounce",  # hard bounce: the mailbox does not exist
    "drop.example": "drop",  # the provider refuses to send (suppressed address)
    "slow.example": "slow",  # deferred, then delivered
    "full.example": "full",  # deferred again and again (mailbox full)
    "late.example": "late",  # delivered, then a bounce report arrives later
    "quiet.example": "quiet",  # delivered, never opened
    "stuck.example": "stuck",  # accepted, then no word (the log shows it overdue a day later)
}
#: What each outcome looks like, for the console.
DESCRIPTIONS = {
    "bounce": "bounced",
    "drop": "dropped",
    "slow": "deferred, then delivered",
    "full": "deferred again and again",
    "late": "delivered, then bounced later",
    "quiet": "delivered",
    "stuck": "accepted, then never reported on",
    "open": "delivered, then opened",
}
#: Recipient domains the SMTP server itself refuses at RCPT time (the send records them
#: ``failed`` right away).
REFUSED_DOMAINS = frozenset({"refused.example"})


def outcome_for(address: str) -> str:
    """What happens to ``address``: a value of :data:`OUTCOMES`, or ``"open"`` (delivered,
    then opened) for every other domain."""
    domain = address.rpartition("@")[2].lower()
    return OUTCOMES.get(domain, "open")


@dataclass(frozen=True)
class SimulatorTiming:
    """Delays, in seconds, between a message's arrival and each simulated event."""

    #: processed -> delivered
    delivery: float = 1.0
    #: delivered -> opened
    open: float = 4.0
    #: first deferral -> delivered (``slow``) or next deferral (``full``)
    deferral: float = 45.0
    #: delivered -> the late bounce (``late``): in real life hours, here tens of seconds
    late_bounce: float = 30.0
    #: a webhook POST that failed is retried after this long
    retry: float = 2.0
    #: attempts per webhook POST before it is given up
    attempts: int = 15


def load_or_create_key(instance_path: str | os.PathLike[str]) -> ec.EllipticCurvePrivateKey:
    """The simulator's P-256 signing key, generated and stored on first use."""
    path = Path(instance_path) / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key; delete it to make a new one")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's dashboard shows it: base64 DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """SendGrid's signature: base64 DER ECDSA-SHA256 over ``timestamp + body``."""
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


@dataclass
class ReceivedMail:
    """A message the local SMTP server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    maildelivery_id: str | None
    message_id: str


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    events: list[dict[str, Any]] = field(compare=False)
    attempt: int = field(default=1, compare=False)
    #: a bounce message to deliver into the bounce Maildir instead of a webhook POST
    bounce: bytes | None = field(default=None, compare=False)


def delivery_status_notification(
    mail: ReceivedMail, address: str, status: str, diagnostic: str, reporting_mta: str
) -> bytes:
    """The DSN (RFC 3464) a mail server returns to ``mail``'s envelope sender when
    ``address`` failed: Postfix's format, the returned message's headers included."""
    boundary = f"{secrets.token_hex(8)}/{reporting_mta}"
    returned_headers = mail.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    now = format_datetime(datetime.now(UTC))
    return (
        "\r\n".join(
            [
                f"Delivered-To: {mail.mail_from}",
                f"Date: {now}",
                f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)",
                "Subject: Undelivered Mail Returned to Sender",
                f"To: {mail.mail_from}",
                "Auto-Submitted: auto-replied",
                "MIME-Version: 1.0",
                "Content-Type: multipart/report; report-type=delivery-status;",
                f'\tboundary="{boundary}"',
                f"Message-Id: {make_msgid(domain=reporting_mta)}",
                "",
                "This is a MIME-encapsulated message.",
                "",
                f"--{boundary}",
                "Content-Description: Notification",
                "Content-Type: text/plain; charset=us-ascii",
                "",
                f"This is the mail system at host {reporting_mta}.",
                "",
                "I'm sorry to have to inform you that your message could not",
                "be delivered to one or more recipients.",
                "",
                f"<{address}>: {diagnostic}",
                "",
                f"--{boundary}",
                "Content-Description: Delivery report",
                "Content-Type: message/delivery-status",
                "",
                f"Reporting-MTA: dns; {reporting_mta}",
                f"Arrival-Date: {now}",
                "",
                f"Final-Recipient: rfc822; {address}",
                "Action: failed",
                f"Status: {status}",
                f"Diagnostic-Code: smtp; {diagnostic}",
                "",
                f"--{boundary}",
                "Content-Description: Undelivered Message Headers",
                "Content-Type: text/rfc822-headers",
                "",
                returned_headers.decode("utf-8", "replace")
                .replace("\r\n", "\n")
                .replace("\n", "\r\n"),
                "",
                f"--{boundary}--",
                "",
            ]
        )
    ).encode()


class ProviderSimulator:
    """Plays SendGrid for the mail the local SMTP server accepts: for each recipient it posts
    signed event webhooks to ``webhook_url`` on a schedule (:class:`SimulatorTiming`).

    One background thread posts the events when they are due; a POST that fails is retried,
    like SendGrid does.
    """

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        webhook_url: str | None = None,
        timing: SimulatorTiming | None = None,
        clock: Callable[[], float] = time.time,
        bounce_maildir: Path | None = None,
    ) -> None:
        self.key = key
        self.webhook_url = webhook_url
        #: Where the late bounce of ``late.example`` is delivered as a DSN (``None``: it is a
        #: SendGrid bounce event, as for the other domains).
        self.bounce_maildir = bounce_maildir
        self.timing = timing or SimulatorTiming()
        self.clock = clock
        #: Every message received, oldest first.
        self.received: list[ReceivedMail] = []
        #: ``(http status or error text, events)`` of every POST made, oldest first.
        self.posts: list[tuple[int | str, list[dict[str, Any]]]] = []
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the posting thread."""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sendgrid-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the posting thread; events not yet posted are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def pending(self) -> int:
        """How many POSTs are scheduled and not yet made."""
        with self._cond:
            return len(self._queue)

    # -- what the provider does ---------------------------------------------------------

    def message_received(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> ReceivedMail:
        """Schedule the events of a message the SMTP server accepted."""
        parsed = message_from_bytes(data)
        maildelivery_id = _unique_arg(parsed.get("X-SMTPAPI"), "maildelivery_id")
        message_id = str(parsed.get("Message-ID", "")).strip() or f"<{secrets.token_hex(8)}@sim>"
        mail = ReceivedMail(mail_from, list(rcpt_tos), data, maildelivery_id, message_id)
        with self._cond:
            self.received.append(mail)
        base_id = secrets.token_urlsafe(16)
        named = {
            a.lower(): a
            for _, a in getaddresses(parsed.get_all("To", []) + parsed.get_all("Cc", []))
        }
        for index, rcpt in enumerate(rcpt_tos):
            address = named.get(rcpt.lower(), rcpt)
            self._schedule_recipient(mail, address, f"{base_id}.filterdrecv-sim-{index}")
            logger.info(
                "accepted mail for %s: it will be %s", address, DESCRIPTIONS[outcome_for(address)]
            )
        return mail

    def _schedule_recipient(self, mail: ReceivedMail, address: str, sg_message_id: str) -> None:
        t = self.timing
        outcome = outcome_for(address)

        def event(name: str, **extra: Any) -> dict[str, Any]:
            fields: dict[str, Any] = {
                "email": address,
                "event": name,
                "sg_event_id": secrets.token_urlsafe(16),
                "sg_message_id": sg_message_id,
                "smtp-id": mail.message_id,
            }
            if mail.maildelivery_id:
                # SendGrid puts unique_args/custom_args at the top level of each event
                fields["maildelivery_id"] = mail.maildelivery_id
            fields.update(extra)
            return fields

        delivered = event("delivered", response="250 2.0.0 OK accepted for delivery", tls=1)
        self._later(0, [event("processed")])
        if outcome == "stuck":
            return
        if outcome == "bounce":
            self._later(
                t.delivery,
                [
                    event(
                        "bounce",
                        type="bounce",
                        status="5.1.1",
                        reason="550 5.1.1 The email account that you tried to reach does not exist.",
                        bounce_classification="Invalid Address",
                    )
                ],
            )
        elif outcome == "drop":
            self._later(t.delivery, [event("dropped", reason="Bounced Address", status="5.0.0")])
        elif outcome == "slow":
            self._later(
                t.delivery,
                [
                    event(
                        "deferred",
                        response="421 4.7.0 Try again later, closing connection.",
                        attempt="1",
                    )
                ],
            )
            self._later(t.delivery + t.deferral, [delivered])
        elif outcome == "full":
            for attempt in range(1, 4):
                self._later(
                    t.delivery + (attempt - 1) * t.deferral,
                    [
                        event(
                            "deferred",
                            response="452 4.2.2 The email account that you tried to reach is over quota.",
                            attempt=str(attempt),
                        )
                    ],
                )
        else:
            self._later(t.delivery, [delivered])
            if outcome == "open":
                self._later(
                    t.delivery + t.open,
                    [
                        event(
                            "open", useragent="Mozilla/5.0 (simulated mail client)", ip="127.0.0.1"
                        )
                    ],
                )
            elif outcome == "late" and self.bounce_maildir is not None:
                dsn = delivery_status_notification(
                    mail,
                    address,
                    "5.2.1",
                    "550 5.2.1 The email account that you tried to reach is disabled.",
                    "mx.late.example",
                )
                self._later(t.delivery + t.late_bounce, [], bounce=dsn)
            elif outcome == "late":
                self._later(
                    t.delivery + t.late_bounce,
                    [
                        event(
                            "bounce",
                            type="bounce",
                            status="5.2.1",
                            reason="550 5.2.1 The email account that you tried to reach is disabled.",
                            bounce_classification="Invalid Address",
                        )
                    ],
                )

    def _later(
        self,
        delay: float,
        events: list[dict[str, Any]],
        attempt: int = 1,
        bounce: bytes | None = None,
    ) -> None:
        with self._cond:
            heapq.heappush(
                self._queue, _Job(self.clock() + delay, next(self._seq), events, attempt, bounce)
            )
            self._cond.notify_all()

    # -- posting ------------------------------------------------------------------------

    def signed_request(self, events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a signed webhook POST carrying ``events``."""
        now = int(self.clock())
        for item in events:
            item.setdefault("timestamp", now)
        body = json.dumps(events).encode()
        timestamp = str(now)
        return body, {
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API (simulated)",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.key, timestamp, body),
        }

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0].due > self.clock()):
                    timeout = self._queue[0].due - self.clock() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                job = heapq.heappop(self._queue)
            if job.bounce is not None:
                self._deliver_bounce(job.bounce)
            else:
                self._post(job)

    def _deliver_bounce(self, message: bytes) -> None:
        """Deliver a bounce into the Maildir as a mail server does (tmp/, then new/)."""
        assert self.bounce_maildir is not None
        mailbox.Maildir(self.bounce_maildir, create=True).add(message)
        logger.info("delivered a bounce report into %s", self.bounce_maildir)

    def _post(self, job: _Job) -> None:
        if self.webhook_url is None:
            outcome: int | str = "no webhook URL"
        else:
            body, headers = self.signed_request(job.events)
            request = urllib.request.Request(self.webhook_url, body, headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    outcome = response.status
            except urllib.error.HTTPError as exc:
                outcome = exc.code
                detail = " ".join(exc.read(300).decode(errors="replace").split())
                logger.warning("webhook answered %s: %.160s", exc.code, detail)
            except OSError as exc:
                outcome = str(exc)
        with self._cond:
            self.posts.append((outcome, job.events))
        if isinstance(outcome, int) and 200 <= outcome < 300:
            for item in job.events:
                logger.info("posted %s event for %s", item["event"], item["email"])
            return
        # like SendGrid: retry on anything but 2xx, then give up
        if job.attempt < self.timing.attempts:
            self._later(self.timing.retry, job.events, attempt=job.attempt + 1)
        else:
            logger.error(
                "gave up posting %d event(s) after %d attempts", len(job.events), job.attempt
            )


def _unique_arg(header: str | None, key: str) -> str | None:
    if not header:
        return None
    try:
        data = json.loads(str(header))
    except ValueError:
        return None
    args = data.get("unique_args") if isinstance(data, dict) else None
    value = args.get(key) if isinstance(args, dict) else None
    return str(value) if value is not None else None


class SimulatorSMTPHandler:
    """aiosmtpd handler: refuses :data:`REFUSED_DOMAINS` at RCPT time, accepts the rest and
    hands each message to the simulator."""

    def __init__(self, simulator: ProviderSimulator) -> None:
        self.simulator = simulator

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower() in REFUSED_DOMAINS:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        self.simulator.message_received(envelope.mail_from, list(envelope.rcpt_tos), content)
        return "250 2.0.0 Ok: queued"


def start_smtp_server(simulator: ProviderSimulator, host: str, port: int) -> Controller:
    """Start the local SMTP server on ``host:port``; stop it with ``.stop()``."""
    controller = Controller(SimulatorSMTPHandler(simulator), hostname=host, port=port)
    controller.start()
    return controller
