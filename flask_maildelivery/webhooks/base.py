"""What every provider adapter shares: the request it sees, the errors it raises, and the
security checks as small reusable pieces.

An adapter (one module per provider) is a :class:`WebhookAdapter` subclass: it verifies a
:class:`WebhookRequest` and parses its raw body into
:class:`~flask_maildelivery.events.NormalizedEvent` objects. It never touches the database;
:mod:`.views` hands the events to :func:`~flask_maildelivery.ingest.ingest_events`.

Security pieces, combined by each adapter as its provider requires:

* :class:`BasicAuth`: HTTP basic auth against a list of accepted credentials (rotation);
* :func:`constant_time_equal`: every secret comparison goes through :func:`hmac.compare_digest`;
* :class:`TimestampCheck`: refuses a signed timestamp outside the provider's tolerance.

Single-use tokens (Mailgun) are kept in the database with the stored request
(:mod:`.inbox`), so that every process sharing it refuses a second use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any, ClassVar, Generic, TypeVar

from flask import Flask
from marshmallow import Schema

from ..context import config_value
from ..events import NormalizedEvent
from ..schemas import quick_validator

#: How far in the future a timestamp may be (clock skew between the provider and us).
CLOCK_SKEW = 300
#: Deepest nesting of arrays and objects a webhook body may have. Providers nest a few
#: levels; a deeper body is refused before anything reads it (Python's parser and
#: serializer recurse, and stop with an error near 1,000 levels).
MAX_JSON_DEPTH = 64


class WebhookError(Exception):
    """A request the endpoint refuses; ``status`` is the HTTP answer, the message says why."""

    status: int = 400

    def __init__(self, message: str, *, status: int | None = None, details: Any = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        #: Structured details for the JSON answer (e.g. marshmallow's field messages).
        self.details = details


class MalformedPayload(WebhookError):
    """The body is not what the provider documents (400)."""

    status = 400


class AuthenticationFailed(WebhookError):
    """The request is not from the provider, or is a replay (401, or the adapter's own)."""

    status = 401


class NotConfigured(WebhookError):
    """The provider's webhook credentials are not configured: the webhook is refused (403)."""

    status = 403


@dataclass(frozen=True)
class WebhookRequest:
    """What an adapter sees of an HTTP request: the raw body (signatures are computed over
    these bytes), the headers, and the time it arrived.

    :param headers: header names lower-cased.
    """

    body: bytes
    headers: Mapping[str, str]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: The URL the request was posted to (Mandrill signs it); empty when not known.
    url: str = ""

    def header(self, name: str) -> str | None:
        """A header's value, or ``None``; ``name`` in any case."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON (:func:`parse_json`).

        :raises MalformedPayload: the body is not UTF-8 JSON, is nested too deeply, or
            holds a number JSON does not have.
        """
        return parse_json(self.body, "the body")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def parse_json(data: str | bytes, what: str) -> Any:
    """``data`` parsed as JSON, refusing what cannot be stored or read safely: nesting
    deeper than :data:`MAX_JSON_DEPTH`, ``NaN``/``Infinity`` (Python's parser accepts them,
    JSON has no such numbers and PostgreSQL refuses them) and numbers too large for a float.
    Every adapter parses webhook JSON through this, nested JSON strings included.

    :raises MalformedPayload: naming ``what`` and the problem.
    """
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedPayload(
            f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"{what} is not JSON: {exc}") from None
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise MalformedPayload(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return value


#: The JSON containers, built once: ``isinstance(v, dict | list)`` in a loop builds the union
#: again for every value, and the depth check looks at every value of a batch.
_CONTAINERS = (dict, list)


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests arrays and objects more than ``limit`` levels deep
    (level by level, without recursion)."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        # one list comprehension per level (no generator per container): a 1,000-event
        # batch is checked in about half the time json.loads takes to decode it
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, _CONTAINERS)
        ]
    return False


def json_or_none(request: WebhookRequest) -> Any:
    """The JSON of ``request``'s body; ``None`` when it is not JSON."""
    try:
        return request.json()
    except MalformedPayload:
        return None


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in constant time (str values are compared as UTF-8 bytes)."""
    # surrogatepass: a lone surrogate (from a JSON escape) compares unequal, not raises
    a_bytes = a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def as_list(value: Any) -> list[Any]:
    """A configuration value that may be one item or a list of items, as a list."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [v for v in value if v not in (None, "")]
    return [value]


class BasicAuth:
    """HTTP basic auth against a list of accepted ``(username, password)`` pairs.

    Every pair is compared (constant time, no early exit), so the answer's timing does not
    tell which part was wrong.
    """

    def __init__(self, credentials: Sequence[tuple[str, str]]) -> None:
        self.credentials = [(str(u), str(p)) for u, p in credentials]

    @classmethod
    def from_config(cls, app: Flask, provider: str) -> BasicAuth:
        """Read ``MAILDELIVERY_<PROVIDER>_WEBHOOK_USERNAME``/``_PASSWORD`` and the list form
        ``MAILDELIVERY_<PROVIDER>_WEBHOOK_CREDENTIALS`` (``[(user, password), ...]``)."""
        prefix = f"{provider.upper()}_WEBHOOK_"
        pairs: list[tuple[str, str]] = []
        username = config_value(prefix + "USERNAME", app)
        password = config_value(prefix + "PASSWORD", app)
        if username and password:
            pairs.append((username, password))
        for item in as_list(config_value(prefix + "CREDENTIALS", app)):
            if isinstance(item, str):
                user, sep, pw = item.partition(":")
                if not sep:
                    raise ValueError(
                        f"MAILDELIVERY_{prefix}CREDENTIALS entries are (username, password) "
                        "pairs or 'username:password' strings"
                    )
                pairs.append((user, pw))
            else:
                user, pw = item
                pairs.append((user, pw))
        return cls(pairs)

    @property
    def configured(self) -> bool:
        """Whether at least one pair is accepted."""
        return bool(self.credentials)

    def check(self, request: WebhookRequest) -> None:
        """:raises AuthenticationFailed: no credentials, or none of the accepted pairs."""
        header = request.header("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise AuthenticationFailed("the request carries no basic auth credentials")
        try:
            username, sep, password = (
                base64.b64decode(encoded, validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationFailed("the basic auth header is not valid base64") from None
        if not sep:
            raise AuthenticationFailed("the basic auth header has no password")
        matched = False
        for user, pw in self.credentials:
            # both comparisons always run: no early exit on the username
            ok_user = constant_time_equal(username, user)
            ok_pw = constant_time_equal(password, pw)
            matched |= ok_user and ok_pw
        if not matched:
            raise AuthenticationFailed("the basic auth credentials are not accepted")


@dataclass(frozen=True)
class TimestampCheck:
    """Refuses a timestamp older than ``tolerance`` seconds, or more than
    :data:`CLOCK_SKEW` seconds in the future.

    :param tolerance: the configured tolerance (:func:`tolerance_for`).
    """

    tolerance: float

    def check(self, when: datetime, now: datetime, *, what: str = "the signature") -> None:
        """:raises AuthenticationFailed: ``when`` is too old or too far in the future."""
        age = (now - when).total_seconds()
        if age > self.tolerance:
            raise AuthenticationFailed(
                f"{what} is {int(age)} s old, older than the {int(self.tolerance)} s tolerance "
                "(a replay, or a clock far off)"
            )
        if age < -CLOCK_SKEW:
            raise AuthenticationFailed(f"{what} is {int(-age)} s in the future")


def tolerance_for(app: Flask, provider: str, default: float) -> TimestampCheck:
    """The signature timestamp check of ``provider``:
    ``MAILDELIVERY_<PROVIDER>_WEBHOOK_TOLERANCE`` or ``default`` (the provider's retry
    horizon). A wider window is the host's choice: a replay inside it changes nothing,
    since events are stored once."""
    configured = config_value(f"{provider.upper()}_WEBHOOK_TOLERANCE", app)
    value = default if configured is None else float(configured)
    if value <= 0:
        raise ValueError(f"MAILDELIVERY_{provider.upper()}_WEBHOOK_TOLERANCE must be positive")
    return TimestampCheck(value)


_UNSET: Any = object()
#: Quick validators by schema object id (schemas are module-level singletons).
_quick_validators: dict[int, Any] = {}


def validate(schema: Schema, data: Any, what: str, *, many: bool = False) -> None:
    """Validate ``data`` against a marshmallow ``schema`` (the raw data is what adapters
    then read and store).

    :raises MalformedPayload: naming every field that is wrong.
    """
    if many and not isinstance(data, list):
        raise MalformedPayload(f"{what} must be a JSON array")
    if not many and not isinstance(data, dict):
        raise MalformedPayload(f"{what} must be a JSON object")
    quick = _quick_validators.get(id(schema), _UNSET)
    if quick is _UNSET:
        quick = _quick_validators[id(schema)] = quick_validator(schema)
    if quick is not None and all(map(quick, data if many else [data])):
        return
    errors = schema.validate(data, many=many)
    if errors:
        raise MalformedPayload(f"{what} is malformed", details=errors)


def parse_iso(value: Any, what: str) -> datetime:
    """An aware UTC datetime from an ISO-8601 string (7 fractional digits and ``Z`` accepted).

    :raises MalformedPayload: not an ISO-8601 date-time.
    """
    if not isinstance(value, str):
        raise MalformedPayload(f"{what} is not a date-time string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python parses at most 6 fractional digits; Postmark sends 7
    head, dot, rest = text.partition(".")
    if dot:
        digits = ""
        while rest and rest[0] in "0123456789":
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedPayload(f"{what} {value!r} is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # e.g. 9999-12-31T23:00:00-05:00: past the last date Python can hold, in UTC
        raise MalformedPayload(f"{what} {value!r} is out of range") from None


def parse_epoch(value: Any, what: str, *, milliseconds: bool = False) -> datetime:
    """An aware UTC datetime from epoch seconds (or milliseconds): int, float or numeric
    string.

    :raises MalformedPayload: not a number.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        # OverflowError: an integer too large for a float
        raise MalformedPayload(f"{what} {_shown(value)} is not an epoch timestamp") from None
    if milliseconds:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload(f"{what} {_shown(value)} is out of range") from None


def _shown(value: Any) -> str:
    """``value`` for an error message, cut short (a huge number or string is not echoed)."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**40 else "(a huge number)"
    return text if len(text) <= 80 else text[:77] + "..."


def addresses_of(value: Any) -> list[str]:
    """The addresses in ``value``: one header-style string (``"Ann <ann@x>, bob@x"``) or a
    list of them, parsed with :func:`email.utils.getaddresses`; odd items are skipped."""
    items = value if isinstance(value, list) else [value]
    texts = [item for item in items if isinstance(item, str) and item.strip()]
    return [address for _, address in getaddresses(texts) if "@" in address]


def parse_time(value: Any, what: str) -> datetime:
    """An aware UTC datetime from epoch seconds (number or numeric string) or an ISO-8601
    string: providers that document one sometimes send the other (SparkPost).

    :raises MalformedPayload: neither.
    """
    if isinstance(value, str) and not value.strip().replace(".", "", 1).isdigit():
        return parse_iso(value, what)
    return parse_epoch(value, what)


def text_or_none(value: Any) -> str | None:
    """``value`` as a stripped string, or ``None`` when empty or missing."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: optional nested fields are
    read through this, so an odd shape gives no data instead of an exception."""
    return value if isinstance(value, dict) else {}


def json_object_field(value: Any) -> Mapping[str, Any]:
    """A field that holds a JSON object, possibly as a JSON string (Mailjet ``Payload``,
    Brevo ``X-Mailin-custom``); anything else gives an empty mapping."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = parse_json(value, "the field")
        except MalformedPayload:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


class WebhookAdapter(ABC):
    """Base class of provider adapters. One instance per app, built when the webhook
    blueprint is created (configuration is read then, once).

    A provider is its module: the subclass declares what the rest of the package needs to
    know of it (:attr:`config_keys`, :attr:`schema`, :attr:`event_types`, the retry facts
    :attr:`retry_horizon`, :attr:`retry_status` and :attr:`retried_answers`, and
    :meth:`smtp_correlation_header`) and implements :meth:`verify` and :meth:`parse`; it is
    registered by one line in :data:`flask_maildelivery.webhooks.ADAPTERS`.
    """

    #: Lower-case provider id: module name, URL segment and config infix.
    provider: ClassVar[str]
    #: The provider's configuration keys (full ``MAILDELIVERY_`` names) and their defaults;
    #: ``init_app`` sets them on ``app.config`` with the package's other keys.
    config_keys: ClassVar[Mapping[str, Any]]
    #: The marshmallow schema an event (or the body) is validated against.
    schema: ClassVar[Schema]
    #: The provider's event names -> normalized type (or ``(type, bounce type)``); what
    #: :meth:`parse` refines (bounce classes, suppression reasons) is said there.
    event_types: ClassVar[Mapping[str, Any]]
    #: How long, in seconds, the provider keeps retrying a request it could not deliver.
    retry_horizon: ClassVar[float]
    #: Which answers make the provider retry, in words.
    retried_answers: ClassVar[str]
    #: HTTP status for a failed authentication (Mailgun: 406, which stops its retries).
    auth_failure_status: ClassVar[int] = 401
    #: HTTP status when the request cannot even be stored (the database is down): one
    #: that makes this provider retry it later.
    retry_status: ClassVar[int] = 503
    #: Lower-case names of the headers kept with a stored request (to explain it or verify
    #: it again); never ``authorization``.
    stored_headers: ClassVar[tuple[str, ...]] = ("content-type", "user-agent")
    #: What to set when the provider is not configured (for the error message).
    setup_hint: ClassVar[str] = ""

    def __init__(self, app: Flask) -> None:
        self.app = app

    @classmethod
    def smtp_correlation_header(cls, public_id: str) -> tuple[str, str] | None:
        """The header an SMTP relay of this provider turns into data its webhook events carry
        back (``MAILDELIVERY_SMTP_PROVIDER``), as ``(name, value)``; ``None``: it has none."""
        return None

    @property
    @abstractmethod
    def configured(self) -> bool:
        """Whether the provider's credentials are configured."""

    def check_configured(self) -> None:
        """:raises NotConfigured: the provider's credentials are missing."""
        if not self.configured:
            raise NotConfigured(f"the {self.provider} webhook is not configured: {self.setup_hint}")

    @abstractmethod
    def verify(self, request: WebhookRequest) -> None:
        """Check that the request comes from the provider (over the raw body).

        :raises AuthenticationFailed: it does not, or it is a replay.
        """

    @abstractmethod
    def parse(self, request: WebhookRequest) -> list[NormalizedEvent]:
        """The normalized events of a verified request.

        :raises MalformedPayload: the body is not in the provider's documented shape.
        :raises AuthenticationFailed: an event's own time is older than the tolerance
            (providers that sign no timestamp).
        """

    def single_use_token(self, request: WebhookRequest) -> tuple[str, datetime] | None:
        """The request's single-use token (Mailgun) and when it may be forgotten (its
        signature is too old to be accepted by then); stored with the request, so that a
        second use is refused in every process. Default: none."""
        return None

    def batch_items(self, request: WebhookRequest) -> list[bytes]:
        """Each item of a batch request as a body of its own, in this provider's shape (a
        one-item batch that :meth:`parse` reads alone), so that an item that does not parse
        can be set aside while the rest of its batch is applied; ``[]``: the body is not a
        batch. Default: a JSON array, one ``[item]`` per element."""
        data = json_or_none(request)
        if not isinstance(data, list):
            return []
        return [json.dumps([item]).encode() for item in data]

    def events_of_items(
        self,
        request: WebhookRequest,
        schema: Schema,
        what: str,
        normalize: Callable[[dict[str, Any]], NormalizedEvent],
    ) -> list[NormalizedEvent]:
        """The events of a body that is one event object or an array of them (Mailjet's
        grouping, Brevo's batches), validated against ``schema`` and normalized."""
        data = request.json()
        items = data if isinstance(data, list) else [data]
        validate(schema, items, what, many=True)
        return [normalize(item) for item in items]


class SignedTimestampAdapter(WebhookAdapter):
    """An adapter whose provider signs a timestamp (SendGrid, Mailgun, SES, Resend, ...): it
    is checked against a window no shorter than the provider's documented retry horizon
    (:attr:`retry_horizon`, the default tolerance), so a genuine retry that keeps its first
    signature is never refused."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.timestamps = tolerance_for(app, self.provider, self.retry_horizon + CLOCK_SKEW)


def basic_auth_keys(provider: str) -> dict[str, Any]:
    """The configuration keys of a basic-auth provider: ``_USERNAME``/``_PASSWORD`` and the
    list form ``_CREDENTIALS`` (see :meth:`BasicAuth.from_config`)."""
    prefix = f"MAILDELIVERY_{provider.upper()}_WEBHOOK_"
    return {prefix + "USERNAME": None, prefix + "PASSWORD": None, prefix + "CREDENTIALS": ()}


def signing_key_keys(provider: str, key: str) -> dict[str, Any]:
    """The configuration keys of a signing provider: its key (one, or a list during a
    change) and ``_WEBHOOK_TOLERANCE`` (``None``: the provider's retry horizon)."""
    return {f"MAILDELIVERY_{key}": None, f"MAILDELIVERY_{provider.upper()}_WEBHOOK_TOLERANCE": None}


class BasicAuthAdapter(WebhookAdapter):
    """An adapter whose provider authenticates with basic auth in the webhook URL
    (Postmark, SparkPost, Mailjet, Brevo): any of the configured credentials is accepted
    (rotation). Nothing in the request is signed, so the events' own times are not checked:
    a replay is harmless (events are stored once), and refusing a late retry would lose it."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.basic_auth = BasicAuth.from_config(app, self.provider)

    @property
    def configured(self) -> bool:
        return self.basic_auth.configured

    def verify(self, request: WebhookRequest) -> None:
        self.basic_auth.check(request)


KeyT = TypeVar("KeyT")


class SigningKeyAdapter(SignedTimestampAdapter, Generic[KeyT]):
    """An adapter whose provider signs each request with a key configured in
    ``MAILDELIVERY_<key_setting>`` (SendGrid, Mailgun, Resend): one key, or a list during a
    key change, any of which is accepted (rotation).

    Subclasses set :attr:`key_setting` and implement :meth:`load_key`.
    """

    #: The setting (without ``MAILDELIVERY_``) holding the key or the list of keys.
    key_setting: ClassVar[str]

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.keys: list[KeyT] = [
            self.load_key(str(value)) for value in as_list(config_value(self.key_setting, app))
        ]

    @abstractmethod
    def load_key(self, value: str) -> KeyT:
        """The usable key of one configured value.

        :raises ValueError: the value is not such a key (the message says where to find it).
        """

    @property
    def configured(self) -> bool:
        return bool(self.keys)


class SecretKeysAdapter(WebhookAdapter):
    """An adapter whose provider authenticates with a shared secret configured in
    ``MAILDELIVERY_<key_setting>``: one, or a list during a change, any of which is accepted
    (rotation). Subclasses set :attr:`key_setting`."""

    #: The setting (without ``MAILDELIVERY_``) holding the secret or the list of secrets.
    key_setting: ClassVar[str]

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        #: The accepted secrets, as bytes.
        self.keys = [str(value).encode() for value in as_list(config_value(self.key_setting, app))]

    @property
    def configured(self) -> bool:
        return bool(self.keys)


class BodySignatureAdapter(SecretKeysAdapter):
    """An adapter whose provider puts a hex HMAC-SHA256 of the raw body, keyed with the
    webhook's secret, in a header (MailerSend ``Signature``, Mailtrap
    ``Mailtrap-Signature``). Nothing signed says when, so the events' own times are not
    checked (a replay is harmless: events are stored once).

    Subclasses set :attr:`signature_header` and :attr:`key_setting`.
    """

    #: The header holding the signature.
    signature_header: ClassVar[str]

    def verify(self, request: WebhookRequest) -> None:
        given = (request.header(self.signature_header) or "").strip().lower()
        if not given:
            raise AuthenticationFailed(f"the request has no {self.signature_header} header")
        if not any(
            constant_time_equal(hmac.new(key, request.body, hashlib.sha256).hexdigest(), given)
            for key in self.keys
        ):
            raise AuthenticationFailed(f"the {self.signature_header} does not match the body")


def challenge_headers(adapter: WebhookAdapter) -> dict[str, str]:
    """``WWW-Authenticate`` for a 401 of a basic-auth provider (some clients send the
    credentials of a URL only once challenged)."""
    if isinstance(adapter, BasicAuthAdapter):
        return {"WWW-Authenticate": f'Basic realm="{adapter.provider} webhook"'}
    return {}
