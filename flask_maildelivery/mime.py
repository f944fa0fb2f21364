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
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from .models import utcnow
from .transports.base import STRUCTURAL_HEADERS, Address, Attachment, OutgoingMessage

#: The header that carries the correlation id (``Email.public_id``).
CORRELATION_HEADER = "X-MailDelivery-ID"
#: Headers the hook sets itself from the structured arguments of a send (lower-case): a
#: host passes them as arguments, never in ``headers``.
HOOK_HEADERS = STRUCTURAL_HEADERS | {CORRELATION_HEADER.lower()}

_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


#: compat32's folding width: a header line is broken at whitespace to stay within it.
_FOLD_WIDTH = 78


def header_value(value: str, name: str = "") -> str | Header:
    """``value`` as it can go in header ``name``: as is when it is plain ASCII, else
    RFC 2047-encoded, so a reader gets ``value`` back. Besides non-ASCII text, that
    encodes text with ``=?`` (a reader would decode what looks like an encoded word),
    leading whitespace (a reader strips it) and a first word too long for the header's
    first line (compat32 would fold it onto a line of its own: a leading space again)."""
    if value.isascii() and "=?" not in value and value[:1] not in (" ", "\t"):
        first_word = value.split(None, 1)[0] if value.strip() else ""
        if len(name) + 2 + len(first_word) <= _FOLD_WIDTH:
            return value
    return Header(value, "utf-8", header_name=name or None)


def format_address(address: Address) -> str:
    """``Name <address>`` ready for a header (the name RFC 2047-encoded when it is not
    plain ASCII or holds ``=?``, quoted when it holds specials)."""
    if not address.name:
        return address.address
    if address.name.isascii() and "=?" not in address.name:
        return formataddr((address.name, address.address))
    return f"{_UTF8.header_encode(address.name)} <{address.address}>"


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
        name, addr = parseaddr(message.reply_to)
        mime["Reply-To"] = format_address(Address(name, addr or message.reply_to))
    mime["Subject"] = header_value(message.subject, "Subject")  # type: ignore[assignment]
    mime["Date"] = format_datetime(utcnow())
    mime["Message-ID"] = make_msgid(domain=sender.address.rpartition("@")[2] or None)
    mime[CORRELATION_HEADER] = message.public_id
    for name, value in message.headers.items():
        mime[name] = header_value(value, name)  # type: ignore[assignment]
    return mime


def header_text(message: Message, name: str, default: str = "") -> str:
    """A header's value as text (an RFC 2047-encoded one decoded)."""
    value = message.get(name)
    if value is None:
        return default
    return decoded_header(value)


def decoded_header(value: str | Header) -> str:
    """A header value as text: a :class:`Header`'s own, RFC 2047 encoded words decoded."""
    if isinstance(value, Header):
        return str(value)
    text = str(value)
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, HeaderParseError):
        # a malformed encoded word (bad base64, unknown charset): the text as it is
        return text
