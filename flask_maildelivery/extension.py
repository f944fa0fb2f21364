"""The :class:`MailDelivery` extension object: registration, host callbacks, and public
methods that delegate to the modules below it.

Nothing inside the package imports this module (only ``__init__`` re-exports it): the
services, pages and commands reach the per-app state through :mod:`.context`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask
from sqlalchemy.orm import Session

from . import config
from .bounces.settings import bounce_settings_problem
from .cli import maildelivery_cli
from .context import EXTENSION_KEY, AppState, HostCallbacks, TaskQueue, get_state
from .models import Base, Email
from .review import review_email
from .sending import AddressLike, resend_email, send_email, send_email_message
from .suppression import AddressHealth, address_health, check_settings, lift_suppression
from .transports import create_transport
from .views.api import create_api_blueprint
from .views.pages import create_pages_blueprint
from .webhooks import provider_config_defaults
from .webhooks.views import build_adapters, create_webhook_blueprint, exempt_from_csrf

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("flask_maildelivery")


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
    ``app.extensions["maildelivery"]``. Configuration is read once, at :meth:`init_app`:
    changing ``app.config`` afterwards has no effect.

    .. versionadded:: 0.1
    """

    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None) -> None:
        self.db = db
        #: The host's callbacks, shared by every app this object serves.
        self.callbacks = HostCallbacks()
        #: The task queue's entry points (set by :meth:`init_celery`), shared likewise.
        self.tasks = TaskQueue()
        if app is not None:
            self.init_app(app, db=db)

    # -- registration -------------------------------------------------------------------

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        """Register the extension on ``app``.

        Sets every ``MAILDELIVERY_*`` key on ``app.config`` with ``setdefault`` and reads
        them all once, creates the transport and the package's own session on the host's
        engine, and registers the log pages, the webhook endpoints and the
        ``flask maildelivery`` command group. Logs a warning (logger ``flask_maildelivery``)
        when the app has no ``SECRET_KEY``: the pages then open without their resend form.

        :param db: the host's Flask-SQLAlchemy object (its engine is used; its session is
            never committed, flushed or rolled back by the package).
        :raises RuntimeError: the app is registered already, or no ``db`` was given.
        """
        if EXTENSION_KEY in app.extensions:
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
        state = AppState(
            db=db,
            settings=config.read_settings(app, provider_config_defaults()),
            callbacks=self.callbacks,
        )
        bounce_problem = bounce_settings_problem(app, state.settings)
        if bounce_problem is not None:
            raise ValueError(bounce_problem)
        state.extension = self
        state.tasks = self.tasks
        if state.settings["MAILDELIVERY_QUEUE"] not in (None, "celery"):
            raise ValueError(
                f"MAILDELIVERY_QUEUE={state.settings['MAILDELIVERY_QUEUE']!r}: set it to None "
                '(send in the request) or "celery" (and call mail_delivery.init_celery)'
            )
        app.extensions[EXTENSION_KEY] = state
        try:
            check_settings(app)
        except RuntimeError:
            del app.extensions[EXTENSION_KEY]
            raise
        transport = state.transport = create_transport(
            app, state.settings["MAILDELIVERY_TRANSPORT"]
        )

        @app.teardown_appcontext
        def _end_of_context(exc: BaseException | None) -> None:
            state.sessions.remove()
            transport.end_of_context()

        if not app.secret_key:
            # the pages still work; only the resend form, whose CSRF token lives in the
            # session, is left out (and the detail page says why)
            logger.warning(
                "flask-maildelivery: app %r has no SECRET_KEY, so the delivery log cannot offer "
                "its resend form (the form's CSRF token is kept in the session, which Flask "
                "signs with SECRET_KEY). Set SECRET_KEY to a long random value, e.g. the "
                "output of: python -c 'import secrets; print(secrets.token_hex())'",
                app.name,
            )
        app.cli.add_command(maildelivery_cli)
        app.register_blueprint(create_pages_blueprint(app))
        app.register_blueprint(create_api_blueprint(app))
        adapters = build_adapters(app)
        state.webhook_adapters = adapters
        state.reporting_providers = frozenset(
            provider for provider, adapter in adapters.items() if adapter.configured
        )
        webhooks = create_webhook_blueprint(app, adapters)
        app.register_blueprint(webhooks)
        exempt_from_csrf(app, webhooks)

    @staticmethod
    def state(app: Flask | None = None) -> AppState:
        """The extension's state for ``app`` (default: the current app)."""
        return get_state(app)

    @property
    def session(self) -> Session:
        """The package's own session for the current app context: the one its records are
        written and read through (the host's ``db.session`` works for reading them too).

        .. versionadded:: 0.2
        """
        return get_state().sessions()

    def init_celery(self, celery_app: Any, app: Flask | None = None) -> Any:
        """Register the package's Celery tasks (``maildelivery.send_email``,
        ``maildelivery.apply_inbox``, ``maildelivery.retry_due``, ``maildelivery.purge``) on
        the host's own Celery app; with ``MAILDELIVERY_QUEUE = "celery"``, sends and webhook
        requests are then handed to its workers. Returns the registered tasks
        (:class:`~flask_maildelivery.tasks.CeleryTasks`).

        The tasks run in the Flask app context that the host's Celery ``Task`` class
        pushes (Flask's documented pattern); without one, pass ``app`` and they push its
        context. Needs ``pip install flask-maildelivery[celery]``.

        .. versionadded:: 0.2
        """
        # Celery is an optional dependency: imported only by hosts that use it
        from .tasks import register_tasks

        return register_tasks(celery_app, self.tasks, app)

    # -- schema -------------------------------------------------------------------------

    def create_all(self, app: Flask | None = None) -> None:
        """Create the package's tables directly (tests, SQLite quick starts).

        Production databases use ``flask maildelivery db upgrade``, which applies the
        package's own migrations.
        """
        Base.metadata.create_all(get_state(app).db.engine)

    def drop_all(self, app: Flask | None = None) -> None:
        """Drop the package's tables."""
        Base.metadata.drop_all(get_state(app).db.engine)

    # -- host callbacks -----------------------------------------------------------------

    def permission_loader(self, func: F) -> F:
        """Register ``(user) -> bool``: may this user see the log pages.

        Default: ``getattr(user, "is_admin", False)``.
        """
        self.callbacks.permission = func
        return func

    def action_permission_loader(self, func: F) -> F:
        """Register ``(user) -> bool``: may this user act on the log (resend, review).

        Default: the same answer as :meth:`permission_loader`.

        .. versionadded:: 0.2
        """
        self.callbacks.action_permission = func
        return func

    def user_loader(self, func: F) -> F:
        """Register ``() -> user or None``: who is acting now.

        Default: ``flask_login.current_user`` when Flask-Login is set up.
        """
        self.callbacks.user = func
        return func

    def sent_by_loader(self, func: F) -> F:
        """Register ``(user) -> str``: what is stored as ``Email.sent_by``.

        Default: the user's ``get_id()``.
        """
        self.callbacks.sent_by_user = func
        return func

    def tenant_loader(self, func: F) -> F:
        """Register ``() -> str or None``: the current company/tenant. Default: ``None``."""
        self.callbacks.tenant = func
        return func

    def contact_url_loader(self, func: F) -> F:
        """Register ``(contact_type, contact_id) -> str or None``: where that contact record
        is edited. Default: no link."""
        self.callbacks.contact_url_of = func
        return func

    def related_url_loader(self, func: F) -> F:
        """Register ``(related_type, related_id) -> str or None``: where the host object an
        email belongs to (an invoice, ...) is shown. Default: no link."""
        self.callbacks.related_url_of = func
        return func

    def contact_address_loader(self, func: F) -> F:
        """Register ``(contact_type, contact_id) -> str or None``: the address the contact
        record holds now. A resend goes to that address, so a corrected contact receives it.
        Default: the address the email was first sent to."""
        self.callbacks.contact_address_of = func
        return func

    def attachment_loader(self, func: F) -> F:
        """Register ``(email) -> [(filename, content, content_type), ...]``: the attachments
        of a stored email, for a resend (only their names, types and sizes are stored).
        Default: a resend goes without attachments."""
        self.callbacks.attachments_of = func
        return func

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
        ignore_suppression: bool = False,
        send_at: datetime | None = None,
    ) -> Email:
        """Record an email, hand it to the transport, record the outcome; return the
        :class:`~flask_maildelivery.models.Email`.

        A recipient whose address is suppressed (an earlier hard bounce or complaint, see
        :meth:`address_health`) is recorded ``suppressed`` and not sent to, with
        ``MAILDELIVERY_SUPPRESSION = "block"`` (the default); the others are sent normally.
        When every recipient is suppressed, the email is recorded (result ``error``)
        without calling the transport, and returned. ``ignore_suppression=True`` sends to
        them anyway (the log says so).

        The email and its recipients are committed (in the package's own session, never the
        host's) before the transport runs. A transport failure never loses the record: the
        email is kept with result ``failed`` and the error text; a transient one is retried
        (``MAILDELIVERY_MAX_ATTEMPTS``, by a worker or ``flask maildelivery retry``).

        With ``MAILDELIVERY_QUEUE = "celery"`` the email is recorded (result ``queued``) and
        a worker sends it once the record is committed. ``send_at`` (an aware datetime)
        schedules the send: a worker (Celery ``eta``) or ``flask maildelivery retry`` sends
        it when it is due.

        :raises SendRefused: the send was refused before anything was sent (too many
            recipients, no sender or recipient, an invalid address, a line break in a
            header, a value longer than the log stores). It is recorded with result
            ``failed`` and the reason, as ``exc.email``.
        :raises SendCancelled: a ``before_send`` receiver stopped it; recorded likewise.
        :raises RecordingFailed: the database refused the record, so nothing was sent.
        """
        return send_email(
            get_state(),
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
            ignore_suppression=ignore_suppression,
            send_at=send_at,
        )

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
        return send_email_message(
            get_state(),
            message,
            metadata=metadata,
            related=related,
            contacts=contacts,
            tenant_id=tenant_id,
        )

    def resend(
        self,
        email_id: int,
        *,
        only_failed: bool = True,
        force: bool = False,
        confirm: bool = False,
    ) -> Email:
        """Send a copy of stored email ``email_id`` to its failed recipients (or to all
        with ``only_failed=False``), recorded as a new email linked to it.

        Refused while an earlier copy is still on its way to one of those recipients, and,
        unless ``confirm=True``, when a failed recipient's address is unchanged since it
        failed (its contact record was not corrected). ``force=True`` skips both checks.

        :raises LookupError: no such email.
        :raises ResendRefused: nothing to resend, its bodies were not stored, a copy is on
            its way, or an address is unchanged; nothing was sent or recorded.

        .. versionadded:: 0.2
        """
        return resend_email(
            get_state(), email_id, only_failed=only_failed, force=force, confirm=confirm
        )

    def review(self, email_id: int, user: Any, *, undo: bool = False) -> Email:
        """Mark stored email ``email_id`` reviewed by ``user`` (it leaves the attention
        list of the log), or take the review back with ``undo=True``. ``reviewed_by`` is
        what the ``sent_by_loader`` gives for ``user``. Sends ``email_reviewed`` when it
        changed something.

        :raises LookupError: no such email.

        .. versionadded:: 0.2
        """
        return review_email(get_state(), email_id, user, undo=undo)

    # -- address health ---------------------------------------------------------------

    def address_health(self, address: str, *, tenant_id: str | None = None) -> AddressHealth:
        """What the log knows about ``address`` for the current tenant (the
        ``tenant_loader``'s, or ``tenant_id``): its state (``"ok"``, ``"failing"``,
        ``"suppressed"``), bounces, complaints, last failure and delivery. For an address
        never seen: ``state="ok"`` and zeros. E.g. to warn on the host's contact form.

        .. versionadded:: 0.2
        """
        state = get_state()
        tenant = tenant_id if tenant_id is not None else state.callbacks.current_tenant()
        return address_health(state, address, tenant)

    def lift_suppression(
        self, address: str, *, tenant_id: str | None = None, user: Any = None
    ) -> bool:
        """Lift the suppression of ``address`` (the current tenant's, or ``tenant_id``'s),
        so the next send goes to it; recorded with the time and ``user`` (default: the
        acting user of the ``user_loader``). Returns whether it was suppressed.

        .. versionadded:: 0.2
        """
        state = get_state()
        tenant = tenant_id if tenant_id is not None else state.callbacks.current_tenant()
        actor = user if user is not None else state.callbacks.current_user()
        return lift_suppression(state, address, tenant, actor)

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
        # Flask-Mail is an optional dependency: imported only by hosts that capture it
        from .contrib.flask_mail import capture_flask_mail

        return capture_flask_mail(mail)
