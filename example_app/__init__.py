"""An example ERP built on flask-maildelivery: two companies, their customers, vendors and
employees, invoices emailed with a PDF, and the delivery log inside the ERP's own layout.

Run it with ``python -m example_app``: it starts a local SMTP server and a SendGrid simulator
in the same process, so the whole story (sent, deferred, bounced, fixed, resent) runs on one
machine without any outside service.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from flask_maildelivery import MailDelivery
from flask_maildelivery.webhooks import all_config_defaults

from .language import select_locale
from .models import User, db

#: Where the SQLite database, the secret key and the simulator's signing key live by default.
DEFAULT_INSTANCE_PATH = Path(__file__).resolve().parent / "instance"

login_manager = LoginManager()
login_manager.login_view = "erp.login"
login_manager.login_message = "Please sign in to continue."
csrf = CSRFProtect()
mail_delivery = MailDelivery()


def _secret_key(instance_path: Path) -> str:
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """``MAILDELIVERY_*`` variables, typed like their defaults (``true``, ``587``, ...)."""
    config: dict[str, Any] = {}
    defaults = all_config_defaults()
    for key, raw in environ.items():
        if not key.startswith("MAILDELIVERY_"):
            continue
        default = defaults.get(key)
        value: Any = raw
        if isinstance(default, bool):
            value = raw.strip().lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int) or key.endswith(("_PORT", "_TIMEOUT", "_DAYS")):
            value = int(raw) if raw.strip() else None
        elif key.endswith(("_ARNS", "_KEYS")) and raw.strip().startswith("["):
            value = json.loads(raw)
        config[key] = value
    return config


def resolve_instance_path(
    instance_path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The instance folder: ``instance_path``, else ``$EXAMPLE_INSTANCE_PATH``, else
    ``example_app/instance``."""
    environ = os.environ if environ is None else environ
    return Path(
        instance_path or environ.get("EXAMPLE_INSTANCE_PATH") or DEFAULT_INSTANCE_PATH
    ).resolve()


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    instance_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the ERP app.

    Configuration, lowest to highest precedence: the defaults below (SQLite in the instance
    folder), the environment (``DATABASE_URL``, ``SECRET_KEY``, ``ERP_SENDER`` and any
    ``MAILDELIVERY_*`` variable), then ``config``.
    """
    environ = os.environ if environ is None else environ
    instance = resolve_instance_path(instance_path, environ)
    instance.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, instance_path=str(instance))
    app.config.update(
        SECRET_KEY=environ.get("SECRET_KEY") or _secret_key(instance),
        SQLALCHEMY_DATABASE_URI=environ.get("DATABASE_URL") or f"sqlite:///{instance / 'erp.db'}",
        # the log pages extend the ERP's layout, so they sit in its navigation
        MAILDELIVERY_BASE_TEMPLATE="maildelivery_layout.html",
        MAILDELIVERY_DEFAULT_SENDER="Billing <billing@acme.example>",
        # the From address of every invoice email instead of the company's (real providers)
        ERP_SENDER=environ.get("ERP_SENDER"),
    )
    app.config.update(_from_environment(environ))
    app.config.update(config or {})

    db.init_app(app)
    # English or French, from the switch in the header: the delivery log pages follow
    Babel(app, locale_selector=select_locale)
    login_manager.init_app(app)
    csrf.init_app(app)
    # after CSRFProtect: the package exempts its webhook endpoints (providers sign their
    # requests; they carry no CSRF token)
    mail_delivery.init_app(app, db=db)

    from . import callbacks, receivers, views

    app.register_blueprint(views.bp)
    receivers.connect(app)
    callbacks.register(mail_delivery)
    return app


def _load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


# registered by a call, not as a decorator: Flask-Login ships no type information, and its
# decorator would leave the loader untyped
login_manager.user_loader(_load_user)


__all__ = ["create_app", "csrf", "db", "login_manager", "mail_delivery"]
