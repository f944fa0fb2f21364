"""Per-app state and its lookup: what every layer above reaches through
``current_app.extensions["maildelivery"]``.

:class:`AppState` holds, for one app, the configuration read once at ``init_app``, the
host's callbacks, the transport and the package's **own** session on the host's engine.
Every write of the package goes through that session (:func:`session`), never through the
host's ``db.session``: a host that rolls back its own transaction keeps the email records,
and a host whose transaction is aborted can still record an email.

This module imports nothing above it; :mod:`flask_maildelivery.extension` builds the state
and registers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app
from flask.globals import app_ctx
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .config import full_key

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

    from .models import Email
    from .transports import Transport

#: Key of the state in ``app.extensions``.
EXTENSION_KEY = "maildelivery"


def default_permission(user: Any) -> bool:
    """The default ``permission_loader``: ``user.is_admin``."""
    return bool(getattr(user, "is_admin", False))


def default_user() -> Any:
    """The default ``user_loader``: Flask-Login's signed-in ``current_user``, when
    Flask-Login is set up on the app."""
    if "login_manager" not in current_app.extensions and not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user  # optional dependency, imported only when set up

    user = current_user._get_current_object()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def default_sent_by(user: Any) -> str | None:
    """The default ``sent_by_loader``: the user's ``get_id()``."""
    if user is None:
        return None
    get_id = getattr(user, "get_id", None)
    return str(get_id()) if get_id is not None else str(user)


@dataclass
class HostCallbacks:
    """The host's callbacks, registered with the decorators of
    :class:`~flask_maildelivery.MailDelivery`; one set per extension object, shared by the
    apps it serves. The methods are what the package calls."""

    permission: Callable[[Any], bool] = default_permission
    #: ``None``: the same as :attr:`permission`.
    action_permission: Callable[[Any], bool] | None = None
    user: Callable[[], Any] = default_user
    sent_by_user: Callable[[Any], str | None] = default_sent_by
    tenant: Callable[[], Any] = lambda: None
    contact_url_of: Callable[[str, str], str | None] = lambda t, i: None
    related_url_of: Callable[[str, str], str | None] = lambda t, i: None
    contact_address_of: Callable[[str, str], str | None] | None = None
    attachments_of: Callable[[Email], Iterable[tuple[str, bytes, str]]] | None = None

    def current_user(self) -> Any:
        """The acting user, from the host's ``user_loader``."""
        return self.user()

    def may_view_log(self, user: Any) -> bool:
        """Whether ``user`` may see the log pages (the host's ``permission_loader``)."""
        return user is not None and bool(self.permission(user))

    def may_act(self, user: Any) -> bool:
        """Whether ``user`` may act on the log (resend, review): the host's
        ``action_permission_loader``, else the same as :meth:`may_view_log`."""
        if user is None:
            return False
        check = self.action_permission or self.permission
        return bool(check(user))

    def sent_by(self, user: Any) -> str | None:
        """What to store as ``sent_by`` for ``user``."""
        return self.sent_by_user(user) if user is not None else None

    def current_tenant(self) -> str | None:
        """The current tenant id, from the host's ``tenant_loader``."""
        tenant = self.tenant()
        return None if tenant is None else str(tenant)

    def contact_url(self, contact_type: str | None, contact_id: str | None) -> str | None:
        """The host's URL for a contact record, or ``None``."""
        if not contact_type or contact_id is None:
            return None
        return self.contact_url_of(contact_type, contact_id)

    def related_url(self, related_type: str | None, related_id: str | None) -> str | None:
        """The host's URL for the object an email belongs to, or ``None``."""
        if not related_type or related_id is None:
            return None
        return self.related_url_of(related_type, related_id)

    def contact_address(self, contact_type: str | None, contact_id: str | None) -> str | None:
        """The address a contact record holds now, or ``None`` when the host does not say."""
        if self.contact_address_of is None or not contact_type or contact_id is None:
            return None
        return self.contact_address_of(contact_type, contact_id)

    def attachments_for_resend(self, email: Email) -> list[tuple[str, bytes, str]]:
        """The attachments a resend of ``email`` carries (the host's ``attachment_loader``)."""
        if self.attachments_of is None:
            return []
        return list(self.attachments_of(email))


@dataclass
class TaskQueue:
    """How the package hands work to a task queue: set by
    :meth:`~flask_maildelivery.MailDelivery.init_celery`, one per extension object (like
    :class:`HostCallbacks`); ``None`` entries: no task queue registered."""

    #: ``(email_id, eta)``: hand a queued send to a worker, due at ``eta`` (``None``: now).
    enqueue_send: Callable[[int, datetime | None], None] | None = None
    #: ``(inbox_id)``: hand a stored webhook request to a worker.
    enqueue_inbox: Callable[[int], None] | None = None


def _app_context_id() -> int:
    # one session per app context, as Flask-SQLAlchemy scopes ``db.session``
    return id(app_ctx._get_current_object())  # type: ignore[attr-defined]


@dataclass
class AppState:
    """What the extension keeps per app, in ``app.extensions["maildelivery"]``.

    :param settings: every ``MAILDELIVERY_*`` key, read once at ``init_app``.
    """

    db: SQLAlchemy
    settings: Mapping[str, Any]
    callbacks: HostCallbacks
    #: The app's transport, created at ``init_app`` once the settings are registered.
    transport: Transport = field(init=False)
    #: The providers whose webhook credentials are configured: their events report
    #: outcomes (see :mod:`flask_maildelivery.tracking`).
    reporting_providers: frozenset[str] = frozenset()
    #: The :class:`~flask_maildelivery.MailDelivery` object that registered the app, for
    #: host code (``current_app.extensions["maildelivery"].extension``); the package itself
    #: never reaches up to it.
    extension: Any = None
    #: The webhook adapters by provider id (``WebhookAdapter`` objects, built at
    #: ``init_app``): the inbox re-parses a stored request with its provider's adapter.
    webhook_adapters: Mapping[str, Any] = field(default_factory=dict)
    #: The package's own sessions, one per app context, on the host's engine.
    sessions: scoped_session[Session] = field(init=False)
    #: How the log finds a recipient address (``"contains"`` or ``"prefix"``), looked up
    #: in the database on the first search (see :mod:`flask_maildelivery.views.queries`).
    address_search: str | None = None
    #: The task queue's entry points (``init_celery``), shared by the apps of one extension.
    tasks: TaskQueue = field(default_factory=lambda: TaskQueue())

    def __post_init__(self) -> None:
        # scoped_session takes any callable that makes a session; typeshed wants a
        # sessionmaker, which cannot bind to the engine of whichever app is current
        factory = cast("sessionmaker[Session]", self._new_session)
        self.sessions = scoped_session(factory, scopefunc=_app_context_id)

    def _new_session(self) -> Session:
        # the engine of the current app (Flask-SQLAlchemy keeps one per app)
        return Session(bind=self.db.engine)


def get_state(app: Flask | None = None) -> AppState:
    """The package's state for ``app`` (default: the current app).

    :raises RuntimeError: the extension is not registered on the app.
    """
    app = app or current_app
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, AppState):
        raise RuntimeError(
            "flask-maildelivery is not registered on this app; call "
            "mail_delivery.init_app(app, db=db)"
        )
    return state


def session(app: Flask | None = None) -> Session:
    """The package's own session for the current app context (never the host's
    ``db.session``): every write of the package goes through it and its commits."""
    return get_state(app).sessions()


def config_value(key: str, app: Flask | None = None) -> Any:
    """The value of configuration key ``key`` for ``app`` (default: the current app), as
    read at ``init_app``.

    ``key`` may be given with or without the ``MAILDELIVERY_`` prefix.

    :raises KeyError: ``key`` is not a key of this package.
    """
    settings = get_state(app).settings
    return settings[full_key(key, settings)]
