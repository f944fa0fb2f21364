"""What every provider kit shares: the test vocabulary, the kit contract, basic auth, and
posting a request to a provider's endpoint.

A kit knows one provider (one module per provider next to this one): its app
configuration, how to build one event of a given kind (``delivered``, ``hard_bounce``, ...)
in the provider's documented shape, and how to sign or authenticate a request the way the
provider does, with keys generated here. The contract, mapping, order and concurrency
tests build their requests through the kits; each provider's own tests also post literal
payloads from the provider's documentation, signed by its kit.
"""

from __future__ import annotations

import base64
import json
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

#: The normalized type each test kind must map to.
EXPECTED_TYPES: dict[str, str] = {
    "processed": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    # a soft bounce the provider reports once it stopped retrying is final
    "soft_bounce": "bounced",
    "hard_bounce": "bounced",
    "dropped": "dropped",
    "open": "opened",
    "click": "clicked",
    "complaint": "complained",
    "unsubscribe": "unsubscribed",
    "unknown": "unknown",
}
#: Bounce type each test kind stores, when the provider says it.
EXPECTED_BOUNCE_TYPES: dict[str, str] = {"soft_bounce": "soft", "hard_bounce": "hard"}
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
#: Older than every signed provider's retry horizon.
STALE_AGE = timedelta(days=3)


def epoch(at: datetime) -> int:
    """``at`` in whole epoch seconds."""
    return int(at.timestamp())


def iso(at: datetime) -> str:
    """``at`` as ISO-8601 UTC with milliseconds and a ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def webhook_url(provider: str) -> str:
    """The path of ``provider``'s webhook endpoint."""
    return f"/maildelivery/webhooks/{provider}"


def post(app: Any, kit: Kit, request: tuple[bytes, dict[str, str]]) -> Any:
    """POST a (body, headers) request to the kit's endpoint; the response."""
    body, headers = request
    return app.test_client().post(webhook_url(kit.provider), data=body, headers=headers)


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
    #: Kinds the provider reports per message, naming no recipient (an SES open): stored
    #: with the email, applied to no recipient.
    per_message: ClassVar[frozenset[str]] = frozenset()
    #: The provider signs a timestamp, checked against its retry horizon (basic-auth
    #: providers sign nothing: their late events are accepted).
    signs_time: ClassVar[bool] = True
    #: An event missing what the documented shape requires.
    malformed_event: ClassVar[dict[str, Any]]
    #: Test kinds this provider maps otherwise than :data:`EXPECTED_TYPES` (a provider whose
    #: only soft-bounce event is a delay notice it will retry: ``deferred``).
    expected_overrides: ClassVar[dict[str, str]] = {}

    def expected_type(self, kind: str) -> str:
        """The normalized type the test kind ``kind`` maps to for this provider."""
        return self.expected_overrides.get(kind, EXPECTED_TYPES[kind])

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

    signs_time: ClassVar[bool] = False
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
        """The request body carrying ``events``: one object, or an array of several."""
        return events[0] if len(events) == 1 else events

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(self.wrap(events)).encode()
        return body, self.auth_headers(mode)

    def auth_headers(self, mode: str = "valid") -> dict[str, str]:
        """The headers of a request: the kit's credentials (``valid``), a guessed password
        (``forged``) or none (``missing``)."""
        headers = {"Content-Type": "application/json"}
        if mode == "valid":
            headers["Authorization"] = basic(self.user, self.password)
        elif mode == "forged":
            headers["Authorization"] = basic(self.user, "guessed")
        return headers


class SignedBodyKit(Kit):
    """Providers that sign the raw body (MailerSend, Mailtrap, Postal): the body is the JSON
    of :meth:`wrap`, its signature in the headers :meth:`signature_headers` gives."""

    signs_time: ClassVar[bool] = False

    def wrap(self, events: list[dict[str, Any]]) -> Any:
        """The request body carrying ``events`` (default: the one event)."""
        assert len(events) == 1
        return events[0]

    @abstractmethod
    def signature_headers(self, body: bytes, *, forged: bool) -> dict[str, str]:
        """The signature headers of ``body``: signed with the kit's key, or with another
        (``forged``)."""

    def build_request(
        self, events: list[dict[str, Any]], mode: str, signed_at: datetime
    ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(self.wrap(events)).encode()
        return body, self.signed_headers(body, mode)

    def signed_headers(self, body: bytes, mode: str = "valid") -> dict[str, str]:
        """The headers of a request carrying ``body``: signed (``valid``), signed with another
        key (``forged``) or unsigned (``missing``)."""
        headers = {"Content-Type": "application/json"}
        if mode != "missing":
            headers.update(self.signature_headers(body, forged=mode == "forged"))
        return headers
