"""The normalized delivery event: what every webhook adapter produces and ingest consumes.

An adapter turns a provider's raw payload into :class:`NormalizedEvent` objects, using the
vocabulary of :data:`EVENT_TYPES`. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .vocabulary import BounceType, EventType

#: The key under which the correlation id (``Email.public_id``) goes in a provider's custom
#: arguments (SendGrid ``custom_args``, Mailgun variables, Postmark metadata, SES tags, ...),
#: and comes back in its webhook events.
CORRELATION_KEY = "maildelivery_id"

#: Normalized event types: the recipient statuses, plus ``unknown`` for provider events
#: whose name we do not know (kept and shown, never applied).
EVENT_TYPES: tuple[EventType, ...] = tuple(EventType)

#: Bounce types stored on events and recipients.
BOUNCE_TYPES: tuple[BounceType, ...] = tuple(BounceType)


@dataclass(frozen=True)
class NormalizedEvent:
    """One delivery event for one recipient, in the package's own vocabulary.

    :param provider: lower-case provider id (``sendgrid``, ``mailgun``, ...).
    :param provider_event_id: the provider's id for this event; use :func:`content_event_id`
        when the provider sends none, so a retried delivery of the same event dedupes.
    :param type: one of :data:`EVENT_TYPES`.
    :param raw_type: the provider's own event name.
    :param occurred_at: when the provider says it happened (aware, UTC).
    :param recipient: the recipient address the event is about.
    :param maildelivery_id: the correlation id (``Email.public_id``) when the provider echoed it.
    :param provider_message_id: the provider's message id, normalized with
        :func:`normalize_message_id`.
    """

    provider: str
    provider_event_id: str
    type: EventType | str
    raw_type: str
    occurred_at: datetime
    recipient: str | None = None
    maildelivery_id: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    smtp_code: str | None = None
    bounce_type: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"event type {self.type!r} is not one of {', '.join(EVENT_TYPES)}")
        # adapters may write the plain string: keep the typed value
        object.__setattr__(self, "type", EventType(self.type))
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


def normalize_message_id(value: str | None) -> str | None:
    """Strip whitespace and the angle brackets some providers keep around a Message-ID."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value or None


def content_event_id(provider: str, payload: Any) -> str:
    """A deterministic event id for providers that send none: a hash of the event's content.

    The same event delivered twice (a provider retry) yields the same id, so it is stored
    once.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(f"{provider}\n{canonical}".encode()).hexdigest()


#: What PostgreSQL refuses in text and JSONB (NUL) and no UTF-8 encoder accepts (a
#: surrogate code point outside a pair, e.g. from a ``\\ud800`` escape).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: What replaces an unstorable character: U+FFFD REPLACEMENT CHARACTER.
REPLACEMENT = "\ufffd"
#: Deepest nesting of a stored JSON payload: MariaDB's JSON functions (and its ``JSON``
#: column check) stop at 32 levels; a container deeper than this is stored as its JSON text.
MAX_STORED_JSON_DEPTH = 30


def storable_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD, so that every database
    can store it (PostgreSQL refuses NUL in text and JSONB; a lone surrogate cannot be
    encoded as UTF-8). The rest of the text is kept as it was."""
    if value.isascii() and "\x00" not in value:
        return value
    return UNSTORABLE.sub(REPLACEMENT, value)


def storable_json(value: Any) -> Any:
    """A JSON value that every database stores: strings (keys and values) made
    :func:`storable_text`, NaN and infinities (which JSONB refuses) as their names, and a
    container nested deeper than :data:`MAX_STORED_JSON_DEPTH` as its JSON text. A value
    that needs none of it is returned as it is (the common case, checked without copying)."""
    return _repaired(value, 0) if _needs_repair(value, 0) else value


def _needs_repair(value: Any, depth: int) -> bool:
    if isinstance(value, str):
        return _unstorable(value)
    if isinstance(value, dict):
        if depth >= MAX_STORED_JSON_DEPTH:
            return True
        for key, item in value.items():
            if isinstance(key, str) and _unstorable(key):
                return True
            if isinstance(item, str):
                if _unstorable(item):
                    return True
            elif item is None or isinstance(item, int):
                continue
            elif _needs_repair(item, depth + 1):
                return True
        return False
    if isinstance(value, list | tuple):
        if depth >= MAX_STORED_JSON_DEPTH:
            return True
        return any(_needs_repair(item, depth + 1) for item in value)
    return isinstance(value, float) and not math.isfinite(value)


def _unstorable(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and UNSTORABLE.search(text) is not None)


def _repaired(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        if depth >= MAX_STORED_JSON_DEPTH:
            return _json_text(value)
        return {
            storable_text(k) if isinstance(k, str) else k: _repaired(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if depth >= MAX_STORED_JSON_DEPTH:
            return _json_text(value)
        return [_repaired(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _json_text(value: Any) -> str:
    """A container too deep to store as JSON, as storable text."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        text = "(nested too deeply to store)"
    return storable_text(text)


def storable_id(value: str, width: int) -> str:
    """An identifier that fits a column of ``width`` characters without losing what tells
    it apart: :func:`storable_text`, and when still longer than ``width``, ``sha256:``
    followed by the hex digest of the whole identifier (cut to ``width``), so two long ids
    that share their first ``width`` characters stay distinct. The same id always gives the
    same stored value, so repeats and matches still find each other."""
    value = storable_text(value)
    if len(value) <= width:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()
    return ("sha256:" + digest)[:width]
