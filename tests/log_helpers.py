"""Apps, users and emails shared by the log page, API and browser tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import Email
from flask_maildelivery.testing import simulate_event

from .conftest import AppFactory


@dataclass
class User:
    """A host user: ``is_admin`` is what the default permission check reads."""

    id: str
    is_admin: bool = False
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return self.id


ADMIN = User("admin", is_admin=True)
CLERK = User("clerk")


@dataclass
class Viewer:
    """Who is acting (``user``) and in which tenant, as the host's callbacks report."""

    user: User | None = None
    tenant: str | None = None
    #: contact (type, id) -> the address the contact record holds now
    contact_addresses: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class LogApp:
    """An app with the log pages, the extension object and the acting viewer."""

    app: Flask
    extension: MailDelivery
    viewer: Viewer

    def client(self) -> Any:
        return self.app.test_client()


def make_log_app(
    make_app: AppFactory, *, flask_login: bool = False, login_view: bool = True, **config: Any
) -> LogApp:
    """An app whose acting user and tenant come from a :class:`Viewer` (through the host
    callbacks), or from Flask-Login with ``flask_login=True`` (log in at ``/login/<id>``;
    anonymous users are sent to ``/login`` unless ``login_view=False``)."""
    extension = MailDelivery()
    viewer = Viewer()
    if not flask_login:
        extension.user_loader(lambda: viewer.user)
    extension.tenant_loader(lambda: viewer.tenant)
    extension.contact_url_loader(lambda kind, id_: f"/contacts/{kind}/{id_}/edit")
    extension.related_url_loader(lambda kind, id_: f"/{kind}s/{id_}")
    extension.contact_address_loader(lambda kind, id_: viewer.contact_addresses.get((kind, id_)))
    app = make_app(extension=extension, **config)
    if flask_login:
        from flask_login import LoginManager, login_user

        users = {u.id: u for u in (ADMIN, CLERK)}
        manager = LoginManager(app)
        manager.user_loader(users.get)
        if login_view:
            manager.login_view = "login_page"

        @app.route("/login")
        def login_page() -> str:
            return "host login page"

        @app.route("/login/<user_id>")
        def login(user_id: str) -> str:
            login_user(users[user_id])
            return "ok"

    return LogApp(app, extension, viewer)


def csrf_client(log: LogApp, token: str = "token") -> Any:
    """A test client whose session holds the CSRF token ``token`` (post it as
    ``csrf_token``)."""
    from flask_maildelivery.views.csrf import CSRF_SESSION_KEY

    client = log.client()
    with client.session_transaction() as session:
        session[CSRF_SESSION_KEY] = token
    return client


def send_failed(log: LogApp, subject: str = "Invoice INV-1", **kwargs: Any) -> Email:
    """An email whose first recipient bounced (result ``warning``)."""
    kwargs.setdefault("to", ["ann@customer.test", "bob@customer.test"])
    kwargs.setdefault("text", "Please find the invoice attached.")
    kwargs.setdefault("html", "<p>Please find the invoice attached.</p>")
    kwargs.setdefault("contacts", {"ann@customer.test": ("customer", 7)})
    email = log.extension.send(subject=subject, **kwargs)
    simulate_event(
        email,
        "bounced",
        recipient=kwargs["to"][0],
        reason="550 5.1.1 mailbox does not exist",
        smtp_code="550",
        bounce_type="hard",
    )
    simulate_event(email, "delivered", recipient=kwargs["to"][1])
    return email


def send_delivered(log: LogApp, subject: str = "Invoice INV-2", **kwargs: Any) -> Email:
    """An email every recipient received (result ``delivered``)."""
    kwargs.setdefault("to", ["carl@customer.test"])
    kwargs.setdefault("text", "Thank you.")
    email = log.extension.send(subject=subject, **kwargs)
    for address in kwargs["to"]:
        simulate_event(email, "delivered", recipient=address)
    return email


def listed_ids(html: str) -> list[int]:
    """The record numbers of the list page's rows, in order."""
    return [int(i) for i in re.findall(r'data-email-id="(\d+)"', html)]


def cursor_link(html: str, rel: str) -> str | None:
    """The URL of the list page's ``rel="next"``/``rel="prev"`` link."""
    match = re.search(rf'<a rel="{rel}"[^>]*href="([^"]+)"', html)
    return match.group(1).replace("&amp;", "&") if match else None
