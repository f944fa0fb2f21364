"""Reading a bounce message: RFC 3464 delivery status notifications, RFC 5965 abuse
reports, the common non-standard bounces of mail servers, and what to ignore (RFC 3834
auto-replies, unrelated mail).

Pure: bytes in, a :class:`BounceReport` out; no database, no Flask. Reports are
recognized before auto-replies, since MTAs such as Postfix mark their own DSNs
``Auto-Submitted: auto-replied``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from enum import StrEnum
from typing import Any

from ..events import normalize_message_id
from ..vocabulary import BounceType, EventType

#: Provider id of the events read from bounce messages.
DSN_PROVIDER = "dsn"

#: Bytes of a message that are read: the report parts come before the returned message,
#: so a large returned attachment is never held in memory.
MAX_READ_BYTES = 512 * 1024


class ReportKind(StrEnum):
    """What a message was recognized as."""

    #: An RFC 3464 delivery status notification.
    DSN = "dsn"
    #: An RFC 5965 feedback (abuse) report.
    ARF = "arf"
    #: A mail server's bounce in its own text format.
    NON_STANDARD = "non-standard"
    #: An RFC 3834 auto-reply (out of office, vacation): ignored.
    AUTO_REPLY = "auto-reply"
    #: Anything else: ignored.
    UNRELATED = "unrelated"


@dataclass(frozen=True)
class RecipientReport:
    """What a report says about one recipient.

    :param type: ``bounced``, ``deferred``, ``delivered``, ``complained``, or ``unknown``
        for an action the package does not apply.
    :param action: the report's own word (DSN ``Action``, ARF ``Feedback-Type``, ...).
    """

    address: str
    type: EventType
    action: str
    status: str | None = None
    diagnostic: str | None = None
    smtp_code: str | None = None
    bounce_type: BounceType | None = None
    original_recipient: str | None = None

    @property
    def reason(self) -> str | None:
        """The text shown as the recipient's reason."""
        return self.diagnostic or (f"status {self.status}" if self.status else None)


@dataclass(frozen=True)
class BounceReport:
    """A message as read.

    :param report_id: stable for the message (its Message-ID, else a digest of its bytes),
        so reading it again gives the same event ids.
    :param addressed_to: where the message was delivered (``Delivered-To``,
        ``X-Original-To``, ``Envelope-To``, ``To``), where a VERP token is looked for.
    :param returned_maildelivery_id: ``X-MailDelivery-ID`` of the returned message.
    :param returned_message_id: ``Message-ID`` of the returned message.
    """

    kind: ReportKind
    report_id: str
    subject: str
    sender: str
    occurred_at: datetime | None
    addressed_to: tuple[str, ...]
    recipients: tuple[RecipientReport, ...] = ()
    returned_maildelivery_id: str | None = None
    returned_message_id: str | None = None
    reporting_mta: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_report(self) -> bool:
        """Whether the message reports on delivery (not ignored)."""
        return self.kind in (ReportKind.DSN, ReportKind.ARF, ReportKind.NON_STANDARD)


_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?=[ -]|$)", re.MULTILINE)
_PUBLIC_ID = re.compile(r"^[0-9a-f]{32}$")
_DAEMON = re.compile(
    r"^(mailer-daemon|postmaster|mail-daemon|maildaemon|mdaemon|mail\.delivery\.system|"
    r"microsoftexchange[0-9a-f]*)$",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|failed|has failed|"
    r"problem|incomplete)|returned mail|returned to sender|failure notice|mail delivery "
    r"failed|non[- ]?delivery|could not be delivered|not be delivered|delayed|"
    r"warning: message|mail system error",
    re.IGNORECASE,
)
_DELAY_TEXT = re.compile(
    r"not yet been delivered|delayed|will (continue to |keep )?(re)?try|retrying|"
    r"temporar(y|ily)|still trying",
    re.IGNORECASE,
)
#: Lines after which a non-standard bounce quotes the returned message.
_RETURNED_MARKER = re.compile(
    r"^.*(copy of the (original )?message|below this line is a copy|original message "
    r"(headers )?follow|^-+ ?original message ?-+|message headers follow|undelivered "
    r"message headers|returned message|the headers of the original).*$",
    re.IGNORECASE | re.MULTILINE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"r[ée]ponse automatique|vacation|absence)",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")


def read_report(data: bytes) -> BounceReport:
    """Read ``data`` (a whole message, or its first :data:`MAX_READ_BYTES`) as a bounce."""
    data = data[:MAX_READ_BYTES]
    message = message_from_bytes(data, policy=compat32)
    report_id = normalize_message_id(_header(message, "Message-ID")) or (
        "sha256:" + hashlib.sha256(data).hexdigest()
    )
    base: dict[str, Any] = {
        "report_id": report_id,
        "subject": _header(message, "Subject") or "",
        "sender": parseaddr(_header(message, "From") or "")[1],
        "occurred_at": _date(_header(message, "Date")),
        "addressed_to": _addressed_to(message),
    }
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            return _dsn(message, part, base)
        if content_type == "message/feedback-report":
            return _arf(message, part, base)
    bounce = _non_standard(message, base)
    if bounce is not None:
        return bounce
    if _is_auto_reply(message):
        return BounceReport(kind=ReportKind.AUTO_REPLY, **base)
    return BounceReport(kind=ReportKind.UNRELATED, **base)


def _header(message: Message, name: str) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(str(value)))).strip()
    except (UnicodeError, LookupError, ValueError):
        return str(value).strip()


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _addressed_to(message: Message) -> tuple[str, ...]:
    values = [
        str(v)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
        for v in message.get_all(name, [])
    ]
    return tuple(address for _, address in getaddresses(values) if "@" in address)


def _fields(part: Message) -> list[dict[str, str]]:
    """The header blocks of a ``message/delivery-status`` or ``message/feedback-report``
    part, field names lower-case, continuation lines unfolded."""
    payload = part.get_payload()
    if isinstance(payload, list):
        messages = [m for m in payload if isinstance(m, Message)]
        blocks = [[(str(k), str(v)) for k, v in m.items()] for m in messages]
        # the parser keeps a block that the headers did not end as its body
        text = "".join(str(m.get_payload()) for m in messages if not m.is_multipart())
        if text.strip():
            blocks += _text_blocks(text)
    else:
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
        blocks = _text_blocks(text)
    return [{k.lower(): " ".join(v.split()) for k, v in block} for block in blocks if block]


def _text_blocks(text: str) -> list[list[tuple[str, str]]]:
    parser = HeaderParser(policy=compat32)
    return [
        list(parser.parsestr(chunk.strip("\r\n") + "\n").items())
        for chunk in re.split(r"\r?\n\s*\r?\n", text)
        if chunk.strip()
    ]


def _typed_value(value: str | None) -> str | None:
    """``rfc822; ann@x.test`` -> ``ann@x.test``; ``smtp; 550 ...`` -> ``550 ...``."""
    if not value:
        return None
    kind, semicolon, rest = value.partition(";")
    return (rest if semicolon else kind).strip() or None


def _returned(message: Message) -> tuple[str | None, str | None]:
    """``X-MailDelivery-ID`` and ``Message-ID`` of the returned message (or its headers)."""
    for part in message.walk():
        content_type = part.get_content_type()
        headers: Message | None = None
        if content_type in ("message/rfc822", "message/global") and part is not message:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                headers = payload[0]
        elif content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
            headers = HeaderParser(policy=compat32).parsestr(text.lstrip())
        if headers is not None and (headers.get("Message-ID") or headers.get("X-MailDelivery-ID")):
            return _ids(headers.get("X-MailDelivery-ID"), headers.get("Message-ID"))
    return None, None


def _ids(maildelivery_id: object, message_id: object) -> tuple[str | None, str | None]:
    public_id = str(maildelivery_id).strip().lower() if maildelivery_id else None
    if public_id is not None and not _PUBLIC_ID.match(public_id):
        public_id = None
    return public_id, normalize_message_id(str(message_id)) if message_id else None


def _dsn(message: Message, part: Message, base: dict[str, Any]) -> BounceReport:
    blocks = _fields(part)
    per_message = blocks[0] if blocks else {}
    recipients: list[RecipientReport] = []
    seen: set[str] = set()
    for block in blocks[1:]:
        final = _typed_value(block.get("final-recipient"))
        original = _typed_value(block.get("original-recipient"))
        address = parseaddr(final or original or "")[1]
        if not address or address.lower() in seen:
            continue
        seen.add(address.lower())
        recipients.append(
            _dsn_recipient(
                address,
                (block.get("action") or "").strip().lower(),
                block.get("status"),
                _typed_value(block.get("diagnostic-code")),
                parseaddr(original or "")[1] or None,
            )
        )
    maildelivery_id, message_id = _returned(message)
    arrival = _date(per_message.get("arrival-date"))
    base = {**base, "occurred_at": base["occurred_at"] or arrival}
    return BounceReport(
        kind=ReportKind.DSN,
        recipients=tuple(recipients),
        returned_maildelivery_id=maildelivery_id,
        returned_message_id=message_id,
        reporting_mta=_typed_value(per_message.get("reporting-mta")),
        **base,
    )


def _dsn_recipient(
    address: str, action: str, status: str | None, diagnostic: str | None, original: str | None
) -> RecipientReport:
    found = _STATUS.search(status or "") or _STATUS.search(diagnostic or "")
    status_text = found.group(0) if found else None
    code = _SMTP_CODE.search(diagnostic or "")
    smtp_code = code.group(1) if code else status_text
    klass = found.group(1) if found else ""
    if action == "failed":
        # a 4.x.x failure is final too: the server stopped retrying (a soft bounce)
        kind, bounce = EventType.BOUNCED, BounceType.SOFT if klass == "4" else BounceType.HARD
    elif action == "delayed":
        kind, bounce = EventType.DEFERRED, None
    elif action in ("delivered", "relayed", "expanded"):
        kind, bounce = EventType.DELIVERED, None
    else:
        kind, bounce = EventType.UNKNOWN, None
    return RecipientReport(
        address=address,
        type=kind,
        action=action or "unknown",
        status=status_text,
        diagnostic=diagnostic,
        smtp_code=smtp_code,
        bounce_type=bounce,
        original_recipient=original,
    )


def _arf(message: Message, part: Message, base: dict[str, Any]) -> BounceReport:
    blocks = _fields(part)
    fields = {k: v for block in blocks for k, v in block.items()}
    feedback_type = (fields.get("feedback-type") or "abuse").strip().lower()
    maildelivery_id, message_id = _returned(message)
    addresses = [parseaddr(fields.get("original-rcpt-to") or "")[1]]
    if not addresses[0]:
        addresses = [a for _, a in getaddresses([_returned_to(message) or ""]) if a]
    kind = EventType.UNKNOWN if feedback_type == "not-spam" else EventType.COMPLAINED
    recipients = tuple(
        RecipientReport(
            address=a, type=kind, action=feedback_type, diagnostic=f"complaint: {feedback_type}"
        )
        for a in addresses
        if a
    )
    arrival = _date(fields.get("arrival-date") or fields.get("received-date"))
    return BounceReport(
        kind=ReportKind.ARF,
        recipients=recipients,
        returned_maildelivery_id=maildelivery_id,
        returned_message_id=message_id,
        reporting_mta=_typed_value(fields.get("reporting-mta")) or fields.get("user-agent"),
        **{**base, "occurred_at": arrival or base["occurred_at"]},
    )


def _returned_to(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "message/global") and part is not message:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return str(payload[0].get("To") or "") or None
        if part.get_content_type() in ("text/rfc822-headers", "message/rfc822-headers"):
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
            return HeaderParser(policy=compat32).parsestr(text.lstrip()).get("To")
    return None


def _text(message: Message) -> str:
    """The message's text: its text/plain parts (text/html when it has none), decoded."""
    plain: list[str] = []
    html: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() == "message":
            break
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        text = raw.decode(part.get_content_charset() or "utf-8", "replace")
        (plain if part.get_content_subtype() == "plain" else html).append(text)
    if plain:
        return "\n".join(plain)
    return re.sub(r"<[^>]+>", " ", "\n".join(html))


def _non_standard(message: Message, base: dict[str, Any]) -> BounceReport | None:
    failed_header = ", ".join(str(v) for v in message.get_all("X-Failed-Recipients", []))
    sender = str(base["sender"])
    subject = str(base["subject"])
    from_daemon = bool(_DAEMON.match(sender.partition("@")[0])) or not sender
    if not failed_header and not (from_daemon and _BOUNCE_SUBJECT.search(subject)):
        return None
    text = _text(message)
    marker = _RETURNED_MARKER.search(text)
    explanation, returned_text = (
        (text[: marker.start()], text[marker.end() :]) if marker else (text, "")
    )
    addresses = [a for _, a in getaddresses([failed_header]) if "@" in a]
    if not addresses:
        skip = {sender.lower(), *(a.lower() for a in base["addressed_to"])}
        for found in _ADDRESS.finditer(explanation):
            address = found.group(1)
            if address.lower() not in skip and address not in addresses:
                addresses.append(address)
    if not addresses:
        return None
    delayed = bool(_DELAY_TEXT.search(subject)) or (
        bool(_DELAY_TEXT.search(explanation)) and not _permanent(explanation)
    )
    recipients = tuple(
        _text_recipient(address, explanation, delayed) for address in dict.fromkeys(addresses)
    )
    maildelivery_id, message_id = _returned(message)
    if maildelivery_id is None and message_id is None:
        quoted = returned_text or text
        found_id = re.search(r"^X-MailDelivery-ID:\s*(\S+)", quoted, re.IGNORECASE | re.MULTILINE)
        found_mid = re.search(r"^Message-ID:\s*(<[^>\s]+>)", quoted, re.IGNORECASE | re.MULTILINE)
        maildelivery_id, message_id = _ids(
            found_id.group(1) if found_id else None, found_mid.group(1) if found_mid else None
        )
    return BounceReport(
        kind=ReportKind.NON_STANDARD,
        recipients=recipients,
        returned_maildelivery_id=maildelivery_id,
        returned_message_id=message_id,
        reporting_mta=sender or None,
        **base,
    )


def _permanent(text: str) -> bool:
    return bool(re.search(r"permanent|\b5\d\d\b|\b5\.\d{1,3}\.\d{1,3}\b", text, re.IGNORECASE))


def _text_recipient(address: str, explanation: str, delayed: bool) -> RecipientReport:
    """One recipient of a text bounce: the diagnostic is the text after the address up to
    a blank line (or the whole explanation's first SMTP answer)."""
    at = explanation.lower().find(address.lower())
    block = explanation[at:] if at >= 0 else explanation
    block = re.split(r"\n\s*\n", block, maxsplit=1)[0] if at >= 0 else block
    answer = re.search(r"(?<![\d.])[245]\d\d[ -].*", block) or re.search(
        r"(?<![\d.])[245]\d\d[ -].*", explanation
    )
    diagnostic = " ".join(answer.group(0).split()) if answer else None
    if diagnostic is None:
        lines = [line.strip() for line in block.splitlines()[1:] if line.strip()]
        diagnostic = " ".join(lines)[:500] or None
    status = _STATUS.search(diagnostic or "")
    code = _SMTP_CODE.search(diagnostic or "")
    if delayed or (code and code.group(1).startswith("4")):
        kind, bounce = EventType.DEFERRED, None
    else:
        kind, bounce = EventType.BOUNCED, BounceType.HARD
    return RecipientReport(
        address=address,
        type=kind,
        action="delayed" if kind == EventType.DEFERRED else "failed",
        status=status.group(0) if status else None,
        diagnostic=diagnostic,
        smtp_code=code.group(1) if code else None,
        bounce_type=bounce,
    )


def _is_auto_reply(message: Message) -> bool:
    """RFC 3834 ``Auto-Submitted``, the common auto-reply headers, or an auto-reply
    subject."""
    auto_submitted = str(message.get("Auto-Submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if any(message.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response")):
        return True
    precedence = str(message.get("Precedence") or message.get("X-Precedence") or "").lower()
    if precedence.strip() in ("auto_reply", "auto-reply", "bulk", "junk", "list"):
        return True
    return bool(_AUTO_SUBJECT.search(str(_header(message, "Subject") or "")))
