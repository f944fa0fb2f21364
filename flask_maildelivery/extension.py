"""The :class:`MailDelivery` extension object: registration, host callbacks, state lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from . import config
from .models import Base

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

    from .models import Email
    from .transports import Transport

F = TypeVar("F", bound=Callable[..., Any])

#: ``to``/``cc``/``bcc`` entries: an address, or ``(name, address)``.
AddressLike = str | tuple[str, str]


@dataclass
class _AppState:
    """What the extension keeps per app, in ``app.extensions["maildelivery"]``."""

    extension: MailDelivery
    db: SQLAlchemy
    transport: Transport


def _default_permission(user: Any) -> bool:
    return bool(getattr(user, "is_admin", False))


def _default_user() -> Any:
    if "login_manager" not in current_app.extensions and not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user

    user = current_user._get_current_object()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _default_sent_by(user: Any) -> str | None:
    if user is None:
        return None
    get_id = getattr(user, "get_id", None)
    return str(get_id()) if get_id is not None else str(user)


class MailDelivery:
    """The flask-maildelivery extension.

    ::

        db = SQLAlchemy()
        mail_delivery = MailDelivery()

        def create_app():
            app = Flask(__name__)
            db.init_app(app)
            mail_delivery.init_app(app, db=db)
            return app

    One object may serve several apps; per-app state lives in
    ``app.extensions["maildelivery"]``. Configuration is read once, at :meth:`init_app`.

    .. versionadded:: 0.1
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        self.db = db
        self._permission_loader: Callable[[Any], bool] = _default_permission
        self._user_loader: Callable[[], Any] = _default_user
        self._sent_by_loader: Callable[[Any], str | None] = _default_sent_by
        self._tenant_loader: Callable[[], str | None] = lambda: None
        self._contact_url_loader: Callable[[str, str], str | None] = lambda t, i: None
        self._related_url_loader: Callable[[str, str], str | None] = lambda t, i: None
        self._contact_address_loader: Callable[[str, str], str | None] | None = None
        self._attachment_loader: Callable[[Email], Iterable[tuple[str, bytes, str]]] | None = None
        if app is not None:
            self.init_app(app, db=db)

    # -- registration -------------------------------------------------------------------

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        """Register the extension on ``app``.

        Sets every ``MAILDELIVERY_*`` key on ``app.config`` with ``setdefault``, creates the
        transport, and registers the log pages, the webhook endpoints and the
        ``flask maildelivery`` command group.

        :param db: the host's Flask-SQLAlchemy object (its engine and session are used).
        :raises RuntimeError: the app is registered already, or no ``db`` was given.
        """
        if "maildelivery" in app.extensions:
            raise RuntimeError(
                "flask-maildelivery is already registered on this app; call init_app once "
                "per app (one MailDelivery object can serve several apps)"
            )
        db = db or self.db
        if db is None:
            raise RuntimeError(
                "MailDelivery needs the host's Flask-SQLAlchemy object: "
                "MailDelivery(app, db=db) or mail_delivery.init_app(app, db=db)"
            )
        if "sqlalchemy" not in app.extensions:
            raise RuntimeError(
                "Flask-SQLAlchemy is not registered on this app; call db.init_app(app) "
                "before mail_delivery.init_app(app, db=db)"
            )
        self.db = self.db or db
        config.apply_defaults(app)

        from .transports import create_transport

        transport = create_transport(app, app.config["MAILDELIVERY_TRANSPORT"])
        app.extensions["maildelivery"] = _AppState(extension=self, db=db, transport=transport)
        app.teardown_appcontext(lambda exc: transport.end_of_context())

        from .cli import maildelivery_cli

        app.cli.add_command(maildelivery_cli)
        self._register_blueprints(app)

    def _register_blueprints(self, app: Flask) -> None:
        """Register the package's blueprints (log pages, webhooks) on ``app``."""
        # log pages and their JSON API
        from .views.api import create_api_blueprint
        from .views.pages import create_pages_blueprint

        app.register_blueprint(create_pages_blueprint(app))
        app.register_blueprint(create_api_blueprint(app))

        # provider webhooks
        from .webhooks.views import create_webhook_blueprint, exempt_from_csrf

        webhooks = create_webhook_blueprint(app)
        app.register_blueprint(webhooks)
        exempt_from_csrf(app, webhooks)

    @staticmethod
    def state(app: Flask | None = None) -> _AppState:
        """The extension's state for ``app`` (default: the current app)."""
        app = app or current_app
        try:
            state = app.extensions["maildelivery"]
        except KeyError:
            raise RuntimeError(
                "flask-maildelivery is not registered on this app; call "
                "mail_delivery.init_app(app, db=db)"
            ) from None
        assert isinstance(state, _AppState)
        return state

    # -- schema -------------------------------------------------------------------------

    def create_all(self, app: Flask | None = None) -> None:
        """Create the package's tables directly (tests, SQLite quick starts).

        Production databases use ``flask maildelivery db upgrade``, which applies the
        package's own migrations.
        """
        state = self.state(app)
        Base.metadata.create_all(state.db.engine)

    def drop_all(self, app: Flask | None = None) -> None:
        """Drop the package's tables."""
        state = self.state(app)
        Base.metadata.drop_all(state.db.engine)

    # -- host callbacks -----------------------------------------------------------------

    def permission_loader(self, func: F) -> F:
        """Register ``(user) -> bool``: may this user see the log pages.

        Default: ``getattr(user, "is_admin", False)``.
        """
        self._permission_loader = func
        return func

    def user_loader(self, func: F) -> F:
        """Register ``() -> user or None``: who is acting now.

        Default: ``flask_login.current_user`` when Flask-Login is set up.
        """
        self._user_loader = func
        return func

    def sent_by_loader(self, func: F) -> F:
        """Register ``(user) -> str``: what is stored as ``Email.sent_by``.

        Default: the user's ``get_id()``.
        """
        self._sent_by_loader = func
        return func

    def tenant_loader(self, func: F) -> F:
        """Register ``() -> str or None``: the current company/tenant. Default: ``None``."""
        self._tenant_loader = func
        return func

    def contact_url_loader(self, func: F) -> F:
        """Register ``(contact_type, contact_id) -> str or None``: where that contact record
        is edited. Default: no link."""
        self._contact_url_loader = func
        return func

    def related_url_loader(self, func: F) -> F:
        """Register ``(related_type, related_id) -> str or None``: where the host object an
        email belongs to (an invoice, ...) is shown. Default: no link."""
        self._related_url_loader = func
        return func

    def contact_address_loader(self, func: F) -> F:
        """Register ``(contact_type, contact_id) -> str or None``: the address the contact
        record holds now. A resend goes to that address, so a corrected contact receives it.
        Default: the address the email was first sent to."""
        self._contact_address_loader = func
        return func

    def attachment_loader(self, func: F) -> F:
        """Register ``(email) -> [(filename, content, content_type), ...]``: the attachments
        of a stored email, for a resend (only their names, types and sizes are stored).
        Default: a resend goes without attachments."""
        self._attachment_loader = func
        return func

    # callback accessors used by the package
    def attachments_for_resend(self, email: Email) -> list[tuple[str, bytes, str]]:
        """The attachments a resend of ``email`` carries (the host's ``attachment_loader``)."""
        if self._attachment_loader is None:
            return []
        return list(self._attachment_loader(email))

    def current_user(self) -> Any:
        """The acting user, from the host's ``user_loader``."""
        return self._user_loader()

    def may_view_log(self, user: Any) -> bool:
        """Whether ``user`` may see the log pages (the host's ``permission_loader``)."""
        return user is not None and bool(self._permission_loader(user))

    def sent_by(self, user: Any) -> str | None:
        """What to store as ``sent_by`` for ``user``."""
        return self._sent_by_loader(user) if user is not None else None

    def current_tenant(self) -> str | None:
        """The current tenant id, from the host's ``tenant_loader``."""
        tenant = self._tenant_loader()
        return None if tenant is None else str(tenant)

    def contact_url(self, contact_type: str | None, contact_id: str | None) -> str | None:
        """The host's URL for a contact record, or ``None``."""
        if not contact_type or contact_id is None:
            return None
        return self._contact_url_loader(contact_type, contact_id)

    def related_url(self, related_type: str | None, related_id: str | None) -> str | None:
        """The host's URL for the object an email belongs to, or ``None``."""
        if not related_type or related_id is None:
            return None
        return self._related_url_loader(related_type, related_id)

    def contact_address(self, contact_type: str | None, contact_id: str | None) -> str | None:
        """The address a contact record holds now, or ``None`` when the host does not say."""
        if self._contact_address_loader is None or not contact_type or contact_id is None:
            return None
        return self._contact_address_loader(contact_type, contact_id)

    # -- sending ------------------------------------------------------------------------

    def send(
        self,
        *,
        subject: str,
        to: Sequence[AddressLike] = (),
        sender: AddressLike | None = None,
        cc: Sequence[AddressLike] = (),
        bcc: Sequence[AddressLike] = (),
        reply_to: str | None = None,
        text: str | None = None,
        html: str | None = None,
        attachments: Iterable[tuple[str, bytes, str]] = (),
        headers: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        related: tuple[str, Any] | None = None,
        contacts: Mapping[str, tuple[str, Any]] | None = None,
        tenant_id: str | None = None,
    ) -> Email:
        """Record an email, hand it to the transport, record the outcome; return the
        :class:`~flask_maildelivery.models.Email`.

        The email and its recipients are committed before the transport runs. A transport
        failure never loses the record: the email is kept with result ``failed`` and the
        error text.

        :raises SendRefused: the send was refused before anything was sent (too many
            recipients, no sender, an invalid address, ``SendCancelled`` from a
            ``before_send`` receiver). A refusal is recorded too when it has a sender and
            a recipient to show.
        """
        from .sending import send_email

        return send_email(
            self.state(),
            subject=subject,
            to=to,
            sender=sender,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            text=text,
            html=html,
            attachments=attachments,
            headers=headers,
            metadata=metadata,
            related=related,
            contacts=contacts,
            tenant_id=tenant_id,
        )

    def capture(self, mail: Any) -> Any:
        """Make every send of the Flask-Mail ``Mail`` object ``mail`` go through the hook:
        ``mail.send(msg)`` and friends are recorded before delivery, their outcome after,
        and delivered by ``MAILDELIVERY_TRANSPORT``. Returns ``mail``.

        ::

            mail = Mail(app)
            mail_delivery.capture(mail)

        (Flask-Mailman needs no call: set ``MAIL_BACKEND =
        "flask_maildelivery.contrib.mailman.EmailBackend"``.)

        .. versionadded:: 0.1
        """
        from .contrib.flask_mail import capture_flask_mail

        return capture_flask_mail(mail)

    def send_message(
        self,
        message: EmailMessage,
        *,
        metadata: Mapping[str, Any] | None = None,
        related: tuple[str, Any] | None = None,
        contacts: Mapping[str, tuple[str, Any]] | None = None,
        tenant_id: str | None = None,
    ) -> Email:
        """Send a stdlib :class:`email.message.EmailMessage` through the hook.

        Its ``From``, ``To``, ``Cc``, ``Bcc``, ``Reply-To`` and ``Subject`` headers, its text
        and HTML parts and its attachments are recorded; other headers are kept.
        """
        from .sending import send_email_message

        return send_email_message(
            self.state(),
            message,
            metadata=metadata,
            related=related,
            contacts=contacts,
            tenant_id=tenant_id,
        )
