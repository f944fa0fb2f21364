"""Building the MIME message that goes out.

The stdlib offers two builders. ``EmailMessage``'s content manager parses every header it
sets into a structured object, which makes it cost about four times as much as the email
itself takes to hand to a local SMTP server; the ``email.mime`` classes (the compat32 API,
as Django's mail also uses) build the same bytes for a fraction of that. The hook builds a
lot of messages, so it uses the latter, encoding non-ASCII headers (RFC 2047), bodies
(quoted-printable UTF-8) and attachment names (RFC 2231) itself.
"""

from __future__ import annotations

from email import encoders
from email.charset import QP, Charset
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid

from .models import utcnow
from .transports.base import STRUCTURAL_HEADERS, Address, Attachment, OutgoingMessage

#: The header that carries the correlation id (``Email.public_id``).
CORRELATION_HEADER = "X-MailDelivery-ID"
#: Headers the hook sets itself from the structured arguments of a send (lower-case): a
#: host passes them as arguments, never in ``headers``.
HOOK_HEADERS = STRUCTURAL_HEADERS | {CORRELATION_HEADER.lower()}

_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


def header_value(value: str) -> str | Header:
    """``value`` as it can go in a header: RFC 2047-encoded when it is not ASCII."""
    return value if value.isascii() else Header(value, "utf-8")


def format_address(address: Address) -> str:
    """``Name <address>`` ready for a header (the name encoded when it is not ASCII)."""
    if not address.name:
        return address.address
    return formataddr((address.name, address.address), charset="utf-8")


def _text_part(content: str, subtype: str) -> MIMEText:
    if content.isascii():
        return MIMEText(content, subtype, "us-ascii")
    # a Charset object (quoted-printable body) is accepted where typeshed says str
    return MIMEText(content, subtype, _UTF8)  # type: ignore[arg-type]


def _attachment_part(attachment: Attachment) -> MIMEBase:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(attachment.content)
    encoders.encode_base64(part)
    filename: str | tuple[str, str, str] = attachment.filename
    if not attachment.filename.isascii():
        filename = ("utf-8", "", attachment.filename)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def build_mime(message: OutgoingMessage) -> Message:
    """``message`` as it goes out, with ``X-MailDelivery-ID``; no ``Bcc`` header (bcc
    addresses are in the envelope only)."""
    text, html, attachments = message.text, message.html, message.attachments
    body: Message
    if text is not None and html is not None:
        body = MIMEMultipart("alternative")
        body.attach(_text_part(text, "plain"))
        body.attach(_text_part(html, "html"))
    elif html is not None:
        body = _text_part(html, "html")
    else:
        body = _text_part(text or "", "plain")
    mime = body
    if attachments:
        mime = MIMEMultipart("mixed")
        mime.attach(body)
        for attachment in attachments:
            mime.attach(_attachment_part(attachment))

    sender = message.sender
    mime["From"] = format_address(sender)
    if message.to:
        mime["To"] = ", ".join(format_address(a) for a in message.to)
    if message.cc:
        mime["Cc"] = ", ".join(format_address(a) for a in message.cc)
    # typeshed types header values as str; Message takes email.header.Header objects as well
    if message.reply_to:
        mime["Reply-To"] = header_value(message.reply_to)  # type: ignore[assignment]
    mime["Subject"] = header_value(message.subject)  # type: ignore[assignment]
    mime["Date"] = format_datetime(utcnow())
    mime["Message-ID"] = make_msgid(domain=sender.address.rpartition("@")[2] or None)
    mime[CORRELATION_HEADER] = message.public_id
    for name, value in message.headers.items():
        mime[name] = header_value(value)  # type: ignore[assignment]
    return mime


def header_text(message: Message, name: str, default: str = "") -> str:
    """A header's value as text (an RFC 2047-encoded one decoded)."""
    value = message.get(name)
    if value is None:
        return default
    if isinstance(value, Header):
        return str(value)
    text = str(value)
    if "=?" not in text:
        return text
    return str(make_header(decode_header(text)))
