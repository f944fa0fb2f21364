"""What the browser tests share: a log app as they serve it, and a server thread for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask_babel import Babel
from flask_sqlalchemy import SQLAlchemy
from werkzeug.serving import BaseWSGIServer, make_server

from flask_maildelivery import MailDelivery

from .conftest import free_port
from .log_helpers import ADMIN


def browser_log_app(name: str, database: Path, **config: Any) -> tuple[Flask, MailDelivery]:
    """An app on a SQLite file with the memory transport, English and French by the
    browser's Accept-Language, the administrator as the acting user, and its tables;
    ``config``: more configuration keys."""
    app = Flask(name)
    app.config.update(
        SECRET_KEY="browser-test",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}",
        MAILDELIVERY_TRANSPORT="memory",
        MAILDELIVERY_DEFAULT_SENDER="Acme Billing <billing@acme.test>",
        **config,
    )
    db = SQLAlchemy()
    db.init_app(app)
    Babel(app, locale_selector=lambda: request.accept_languages.best_match(["en", "fr"]))
    mail_delivery = MailDelivery(app, db=db)
    mail_delivery.user_loader(lambda: ADMIN)
    with app.app_context():
        mail_delivery.create_all()
    return app, mail_delivery


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """``app`` served from a thread on 127.0.0.1 and a free port; yields its base URL and
    stops the server on exit."""
    server: BaseWSGIServer = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
