"""Checking a send's arguments and turning them into the :class:`OutgoingMessage` the
transport gets, before anything is recorded.

A send that cannot go out is not dropped: :func:`check_send` returns it *refused*, with the
reason (what to fix) and what of it can be recorded, and the hook records it ``failed``
before raising :class:`~.errors.SendRefused`. Nothing that would end a header line (a
header injection) reaches a header: see :func:`text_problem` and :func:`header_problem`.
"""

from __future__ import annotations

import functools
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email import headerregistry
from email.errors import HeaderParseError
from email.message import Message
from email.policy import SMTP
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from ..context import config_value
from ..events import UNSTORABLE, storable_json
from ..mime import HOOK_HEADERS, build_mime, decoded_header
from ..models import Base, Email, Recipient, new_public_id
from ..transports import Address, Attachment, OutgoingMessage
from ..transports.base import unique_addresses
from .errors import SendRefused

#: ``to``/``cc``/``bcc`` entries: an address, ``"Name <address>"``, or ``(name, address)``.
AddressLike = str | tuple[str, str]

#: How much of a value a refusal's message quotes.
SHOWN_CHARACTERS = 60


def shown(value: str) -> str:
    """``value`` quoted for a message: its ``repr`` (control characters visible), cut."""
    if len(value) > SHOWN_CHARACTERS:
        return repr(value[:SHOWN_CHARACTERS]) + "..."
    return repr(value)


#: What the stdlib's header parser raises on input it cannot read (IndexError included: it
#: has crashed with one on odd input).
_PARSER_ERRORS = (ValueError, IndexError, HeaderParseError)


def _unstorable_problem(value: str) -> str | None:
    # what no text column stores (events.UNSTORABLE) is no text a message carries either
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "a NUL character"
    return f"an unpaired surrogate ({found.group()!r}), which is not text (a decoding error?)"


def text_problem(value: str) -> str | None:
    """What in ``value`` cannot go in a header, or ``None``: a character that ends a line
    (CR, LF and the others :meth:`str.splitlines` breaks at, as the stdlib's email parser
    and its ``EmailPolicy.header_store_parse`` do), a NUL or an unpaired surrogate."""
    # header_store_parse refuses len(value.splitlines()) > 1, which lets a trailing line
    # break through: compared with [value], any line break anywhere counts
    if value and value.splitlines() != [value]:
        character = next(c for c in value if c.splitlines() != [c])
        return f"a line break ({character!r}), which would start a new header line"
    return _unstorable_problem(value)


def header_name_problem(name: str) -> str | None:
    """Why ``name`` is not a header field name, or ``None``: RFC 5322 allows printable
    ASCII other than ``:`` (``ftext``), no space."""
    if not name:
        return "an empty name"
    bad = next((c for c in name if not 33 <= ord(c) <= 126 or c == ":"), None)
    if bad is not None:
        return f"the character {bad!r} (a name is printable ASCII without spaces or ':')"
    return None


def _value_problem(name: str, value: str) -> str | None:
    problem = text_problem(value)
    if problem is None:
        return None
    label = "the subject" if name.lower() == "subject" else f"header {name} value"
    return f"{label} {shown(value)} contains {problem}: remove it"


def header_problem(name: str, value: str) -> str | None:
    """Why header ``name: value`` cannot be sent, or ``None``: a bad name, a line break or
    NUL in the value, or a value the stdlib's header registry finds defects in (a
    structured header such as ``Sender`` holding no address)."""
    problem = header_name_problem(name)
    if problem is not None:
        return f"header name {shown(name)} contains {problem}"
    problem = _value_problem(name, value)
    if problem is not None:
        return problem
    # the registry notes what it finds wrong on the header object instead of raising
    # (a policy's raise_on_defect applies to parsing whole messages): read it there
    try:
        defects = SMTP.header_factory(name, value).defects
    except _PARSER_ERRORS as exc:
        return f"header {name} value {shown(value)} cannot be parsed: {exc!r}"
    if defects:
        return f"header {name} value {shown(value)} is not valid: {defects[0]}"
    return None


def message_problem(mime: Message, checked: Mapping[str, str]) -> str | None:
    """The first header of ``mime`` that cannot be sent (see :func:`header_problem`), or
    ``None``: a ``before_send`` receiver may have added or changed any of them.

    :param checked: extra headers already checked, by name: not parsed again.
    """
    for name, raw in mime.items():
        value = decoded_header(raw)
        if name.lower() in HOOK_HEADERS or checked.get(name) == value:
            # built by the hook from checked values, checked already, or a hook header a
            # receiver replaced: no parse by the registry, whose cost every send would pay
            problem = _value_problem(name, value)
        else:
            problem = header_problem(name, value)
        if problem is not None:
            return problem
    return None


@dataclass(frozen=True)
class _ReadAddress:
    """An address argument read: as it can be recorded, and why it cannot be sent."""

    address: Address
    problem: str | None = None


def _read_address(value: AddressLike, role: str) -> _ReadAddress:
    """``value`` as an :class:`Address` (its display name's whitespace collapsed: a
    header's phrase keeps no runs of spaces), or as typed with the problem."""
    if isinstance(value, tuple):
        name, addr = value
        typed = f"{name} <{addr}>" if name else addr
        parts: tuple[tuple[str, str], ...] = (("display name", name), ("address", addr))
    else:
        typed = value
        name, addr = parseaddr(value) if "<" in value else ("", value)
        addr = addr or value
        # checked whole: parsing may drop what follows a line break
        parts = (("address", value),)
    as_typed = Address(name=name or "", address=addr.strip())
    for what, text in parts:
        problem = text_problem(text)
        if problem is not None:
            return _ReadAddress(
                as_typed, f"{role} {what} {shown(text)} contains {problem}: remove it"
            )
    problem = _address_problem(addr.strip())
    if problem is not None:
        return _ReadAddress(
            as_typed, f"{role} address {shown(addr)} is not an email address: {problem}"
        )
    name = " ".join(name.split())
    problem = _header_address_problem(name, addr.strip())
    if problem is not None:
        return _ReadAddress(as_typed, f"{role} address {shown(typed)} cannot be sent: {problem}")
    return _ReadAddress(Address(name=name, address=addr.strip()))


def parse_address(value: AddressLike, *, role: str) -> Address:
    """An :class:`Address` from ``"addr"``, ``"Name <addr>"`` or ``("Name", "addr")``.

    :raises SendRefused: the value is not an email address, or holds a line break.
    """
    read = _read_address(value, role)
    if read.problem is not None:
        raise SendRefused(read.problem)
    return read.address


@functools.lru_cache(maxsize=4096)
def _address_problem(addr: str) -> str | None:
    """Why ``addr`` is not an email address, or ``None``. Cached: an ERP sends to the same
    addresses (the accounting copy on every invoice) over and over."""
    try:
        validate_email(
            addr, check_deliverability=False, globally_deliverable=False, test_environment=True
        )
    except EmailNotValidError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=4096)
def _header_address_problem(name: str, addr: str) -> str | None:
    """Why ``name <addr>`` cannot be a header's address, or ``None``: the stdlib's own
    check (:class:`email.headerregistry.Address`: no CR or LF, an addr-spec its parser
    reads whole). Cached like :func:`_address_problem`."""
    try:
        headerregistry.Address(display_name=name, addr_spec=addr)
    except _PARSER_ERRORS as exc:
        return str(exc) or type(exc).__name__
    return None


def recorded_address(address: Address) -> str:
    """How an address is recorded: ``Name <address>`` quoted as RFC 5322 needs, or as
    typed when it is not an address that can be sent."""
    try:
        return address.formatted()
    except _PARSER_ERRORS:
        return f"{address.name} <{address.address}>" if address.name else address.address


@dataclass
class CheckedSend:
    """A send's arguments, checked: the message for the transport and its recipients as
    they are recorded (each address once, with its kind).

    A refused send (:attr:`refusal` set) has no MIME message; its fields and recipients
    are what can be recorded of it (addresses as typed, at most
    ``MAILDELIVERY_MAX_RECIPIENTS`` recipients).
    """

    message: OutgoingMessage
    recipients: list[tuple[str, Address]]
    #: What is wrong with the send, or ``None``.
    refusal: str | None = None
    #: The From as recorded.
    sender: str = ""


def check_send(
    *,
    subject: str,
    to: Sequence[AddressLike],
    sender: AddressLike | None,
    cc: Sequence[AddressLike],
    bcc: Sequence[AddressLike],
    reply_to: str | None,
    text: str | None,
    html: str | None,
    attachments: Iterable[tuple[str, bytes, str]],
    headers: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
) -> CheckedSend:
    """The message of a send, checked.

    Refused (:attr:`CheckedSend.refusal`): no sender, no recipient, more than
    ``MAILDELIVERY_MAX_RECIPIENTS``, an invalid address, a line break or NUL in a header
    (subject, display name, address, reply-to, header name or value, attachment name or
    type), a NUL in a body, a header the hook sets itself. The refusal names every kind of
    problem found, joined by ``"; "``: of the invalid addresses the first (with how many
    more), of the extra headers the first.
    """
    problems: list[str] = []
    sender = sender or config_value("DEFAULT_SENDER")
    if not sender:
        problems.append(
            "the email has no sender: pass sender=... to send() or set MAILDELIVERY_DEFAULT_SENDER"
        )
        from_address = Address("", "")
    else:
        read = _read_address(sender, "sender")
        from_address = read.address
        if read.problem is not None:
            problems.append(read.problem)

    groups: list[list[Address]] = []
    invalid: list[str] = []
    for role, values in (("to", to), ("cc", cc), ("bcc", bcc)):
        group = []
        for value in [values] if isinstance(values, str) else values:
            read = _read_address(value, role)
            group.append(read.address)
            if read.problem is not None:
                invalid.append(read.problem)
        groups.append(group)
    if invalid:
        more = f" (and {len(invalid) - 1} more invalid addresses)" if len(invalid) > 1 else ""
        problems.append(invalid[0] + more)
    to_list, cc_list, bcc_list = unique_addresses(*groups)
    recipients = [
        (kind, address)
        for kind, group in zip(("to", "cc", "bcc"), (to_list, cc_list, bcc_list), strict=True)
        for address in group
    ]
    if not recipients:
        problems.append("the email has no recipient: pass at least one address in to, cc or bcc")
    limit = config_value("MAX_RECIPIENTS")
    if limit is not None and len(recipients) > limit:
        problems.append(
            f"the email has {len(recipients)} recipients, more than MAILDELIVERY_MAX_RECIPIENTS "
            f"({limit}); split it into several emails or raise the limit"
        )
        # the record keeps the first ones
        recipients = recipients[:limit]

    if reply_to:
        read = _read_address(reply_to, "reply-to")
        if read.problem is not None:
            problems.append(read.problem)
        else:
            reply_to = read.address.formatted()

    problem = _value_problem("Subject", subject)
    if problem is not None:
        problems.append(problem)

    for what, body in (("text", text), ("HTML", html)):
        problem = _unstorable_problem(body or "")
        if problem is not None:
            problems.append(f"the {what} body contains {problem}: remove it")

    extra = dict(headers or {})
    for name, value in extra.items():
        if name.lower() in HOOK_HEADERS:
            problems.append(
                f"header {name!r} is set by flask-maildelivery; pass it as an argument of send()"
            )
            break
        problem = header_problem(name, value)
        if problem is not None:
            problems.append(problem)
            break

    files = [
        Attachment(
            filename=name,
            content=content,
            content_type=ctype or mimetypes.guess_type(name)[0] or "application/octet-stream",
        )
        for name, content, ctype in attachments
    ]
    for attachment in files:
        for what, value in (
            ("name", attachment.filename),
            ("content type", attachment.content_type),
        ):
            problem = text_problem(value)
            if problem is not None:
                problems.append(f"attachment {what} {shown(value)} contains {problem}: remove it")

    message = OutgoingMessage(
        public_id=new_public_id(),
        sender=from_address,
        to=[a for kind, a in recipients if kind == "to"],
        cc=[a for kind, a in recipients if kind == "cc"],
        bcc=[a for kind, a in recipients if kind == "bcc"],
        subject=subject,
        text=text,
        html=html,
        reply_to=reply_to,
        attachments=files,
        headers=extra,
        metadata=dict(metadata or {}),
    )
    if problems:
        return CheckedSend(message, recipients, "; ".join(problems), recorded_address(from_address))
    message.mime = build_mime(message)
    return CheckedSend(message, recipients, None, from_address.formatted())


# -- what the record can hold --------------------------------------------------------------


def _string_lengths(model: type[Base]) -> dict[str, int | None]:
    """Attribute key -> length of each string column of ``model`` (``None``: unlimited)."""
    return {
        attr.key: attr.columns[0].type.length
        for attr in model.__mapper__.column_attrs
        if isinstance(attr.columns[0].type, sa.String)
    }


_EMAIL_LENGTHS = _string_lengths(Email)
_RECIPIENT_LENGTHS = _string_lengths(Recipient)
#: JSON columns, whose strings cannot hold a NUL on PostgreSQL either.
_JSON_KEYS = ("headers", "metadata_", "attachments")

#: How a refusal names the values of an email row.
_EMAIL_LABELS = {
    "subject": "the subject",
    "sender": "the sender",
    "reply_to": "the reply-to address",
    "sent_by": "sent_by (your sent_by_loader's value)",
    "tenant_id": "the tenant id",
    "related_type": "the related type (related=(type, id))",
    "related_id": "the related id (related=(type, id))",
    "metadata_": "the metadata",
}
#: Values the checks above already refuse a NUL or an unpaired surrogate in.
_CHECKED_KEYS = frozenset(
    {
        "subject",
        "sender",
        "reply_to",
        "headers",
        "attachments",
        "text_body",
        "html_body",
        "address",
        "address_key",
        "name",
    }
)
#: Too long only when the address is invalid, which is refused already.
_SILENT_LENGTHS = frozenset({"address", "address_key"})


def _storable(value: Any) -> tuple[Any, str | None]:
    """``value`` (a string, or JSON data) made storable as the ingest makes webhook data
    (:func:`~flask_maildelivery.events.storable_json`: each NUL and unpaired surrogate
    replaced by U+FFFD), and the first such character found, to report."""
    return storable_json(value), _first_unstorable(value)


def _first_unstorable(value: Any) -> str | None:
    if isinstance(value, str):
        return _unstorable_problem(value)
    if isinstance(value, dict):
        pairs: Any = value.items()
    elif isinstance(value, list):
        pairs = enumerate(value)
    else:
        return None
    for key, item in pairs:
        problem = (isinstance(key, str) and _unstorable_problem(key)) or _first_unstorable(item)
        if problem:
            return problem
    return None


def _fit(row: dict[str, Any], key: str, length: int | None) -> list[str]:
    """Make ``row[key]`` storable (see :func:`_storable`, and at most ``length``
    characters); return why it had to change, each reason to follow the value's name."""
    value = row.get(key)
    if not isinstance(value, str) or (
        (length is None or len(value) <= length) and UNSTORABLE.search(value) is None
    ):
        return []
    reasons = []
    value, problem = _storable(value)
    if problem is not None and key not in _CHECKED_KEYS:
        reasons.append(f"contains {problem}: remove it")
    if length is not None and len(value) > length:
        if key not in _SILENT_LENGTHS:
            reasons.append(
                f"is {len(value)} characters long, more than the {length} the log stores: "
                f"shorten it (the record keeps the first {length})"
            )
        value = value[:length]
    row[key] = value
    return reasons


def column_problems(values: dict[str, Any], recipient_rows: list[dict[str, Any]]) -> list[str]:
    """What in an email row (``values``, by attribute key) and its recipient rows does not
    fit its column: a value too long, a NUL or an unpaired surrogate. Every value is made
    to fit, in place (cut, the character replaced), so a refused email can be recorded;
    recipient rows whose cut addresses became the same are kept once."""
    problems: list[str] = []
    for key, length in _EMAIL_LENGTHS.items():
        for reason in _fit(values, key, length):
            problems.append(f"{_EMAIL_LABELS.get(key, key)} {reason}")
    for key in _JSON_KEYS:
        values[key], problem = _storable(values.get(key))
        if problem is not None and key not in _CHECKED_KEYS:
            problems.append(f"{_EMAIL_LABELS.get(key, key)} contains {problem}: remove it")
    reported: set[str] = set()
    seen: set[str] = set()
    kept = []
    for row in recipient_rows:
        for key, length in _RECIPIENT_LENGTHS.items():
            reasons = _fit(row, key, length)
            if reasons and key not in reported:
                # one problem per column, not one per recipient
                reported.add(key)
                label = _recipient_label(row, key)
                problems.extend(f"{label} {reason}" for reason in reasons)
        if row["address_key"] not in seen:
            seen.add(row["address_key"])
            kept.append(row)
    recipient_rows[:] = kept
    return problems


def _recipient_label(row: dict[str, Any], key: str) -> str:
    """How a refusal names value ``key`` of a recipient row."""
    address = shown(str(row["address"]))
    if key == "name":
        return f"{row['kind']} name {shown(str(row['name']))}"
    if key in ("contact_type", "contact_id"):
        return f"the {key.replace('_', ' ')} of {address}"
    return f"{row['kind']} {key.replace('_', ' ')} {address}"
