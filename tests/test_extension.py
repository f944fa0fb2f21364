"""Registration: application-factory safe, config defaults visible, clear refusals."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery
from flask_maildelivery.context import config_value
from flask_maildelivery.testing import outbox
from flask_maildelivery.webhooks import all_config_defaults

from .conftest import AppFactory


def test_every_config_key_is_visible_in_app_config(app: Flask) -> None:
    for key, default in all_config_defaults().items():
        assert key in app.config
        if key not in ("MAILDELIVERY_TRANSPORT", "MAILDELIVERY_DEFAULT_SENDER"):
            assert app.config[key] == default
    assert app.config["MAILDELIVERY_MAX_RECIPIENTS"] == 1000
    assert app.config["MAILDELIVERY_URL_PREFIX"] == "/maildelivery"


def test_config_value_refuses_unknown_keys(app: Flask) -> None:
    assert config_value("MAX_RECIPIENTS") == 1000
    assert config_value("MAILDELIVERY_MAX_RECIPIENTS") == 1000
    with pytest.raises(KeyError, match="MAILDELIVERY_MAX_RECIPIENT is not a flask-maildelivery"):
        config_value("MAX_RECIPIENT")


def test_state_lives_in_app_extensions(app: Flask) -> None:
    state = app.extensions["maildelivery"]
    assert state is MailDelivery.state(app)
    assert state.transport.name == "memory"


def test_a_second_registration_is_refused(make_app: AppFactory) -> None:
    extension = MailDelivery()
    app = make_app(extension)
    with pytest.raises(RuntimeError, match="already registered on this app"):
        extension.init_app(app, db=MailDelivery.state(app).db)


def test_one_object_serves_several_apps(make_app: AppFactory) -> None:
    extension = MailDelivery()
    first = make_app(extension, MAILDELIVERY_DEFAULT_SENDER="a@first.test")
    second = make_app(extension, MAILDELIVERY_DEFAULT_SENDER="b@second.test")
    with first.app_context():
        extension.send(subject="one", to=["x@y.test"], text="x")
    with second.app_context():
        extension.send(subject="two", to=["x@y.test"], text="x")
        assert [m.sender.address for m in outbox()] == ["b@second.test"]
    with first.app_context():
        assert [m.subject for m in outbox()] == ["one"]


def test_the_constructor_form_registers_too(database_url: str, schema: object) -> None:
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, MAILDELIVERY_TRANSPORT="memory")
    db = SQLAlchemy(app)
    extension = MailDelivery(app, db=db)
    assert MailDelivery.state(app).extension is extension
    with app.app_context():
        db.engine.dispose()


def test_init_app_without_db_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"init_app\(app, db=db\)"):
        MailDelivery().init_app(Flask(__name__))


def test_init_app_before_flask_sqlalchemy_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"call db.init_app\(app\) before"):
        MailDelivery().init_app(Flask(__name__), db=SQLAlchemy())


def test_state_of_an_unregistered_app_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="not registered on this app"):
        MailDelivery.state(Flask(__name__))


def test_callbacks_are_decorators_returning_the_function(mail_delivery: MailDelivery) -> None:
    def contact_url(kind: str, id_: str) -> str:
        return f"/{kind}/{id_}/edit"

    assert mail_delivery.contact_url_loader(contact_url) is contact_url
    assert mail_delivery.callbacks.contact_url("customer", "7") == "/customer/7/edit"
    assert mail_delivery.callbacks.contact_url(None, None) is None

    class Admin:
        is_admin = True

    class Clerk:
        is_admin = False

    assert mail_delivery.callbacks.may_view_log(Admin())
    assert not mail_delivery.callbacks.may_view_log(Clerk())
    assert not mail_delivery.callbacks.may_view_log(None)

    @mail_delivery.permission_loader
    def auditors_too(user: object) -> bool:
        return True

    assert mail_delivery.callbacks.may_view_log(Clerk())
    mail_delivery.tenant_loader(lambda: 42)
    assert mail_delivery.callbacks.current_tenant() == "42"


def test_flask_login_current_user_is_the_default_user(make_app: AppFactory) -> None:
    from flask_login import LoginManager, UserMixin, login_user

    # Flask-Login ships no type information: its UserMixin is Any to mypy
    class User(UserMixin):  # type: ignore[misc]
        def __init__(self, id_: str) -> None:
            self.id = id_

    login = LoginManager()
    extension = MailDelivery()
    app = make_app(extension)
    login.init_app(app)
    login.user_loader(User)
    with app.test_request_context():
        assert extension.callbacks.current_user() is None
        login_user(User("clerk-3"))
        sent = extension.send(subject="x", to=["x@y.test"], text="x")
        assert sent.sent_by == "clerk-3"
