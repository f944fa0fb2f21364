"""The host app of the load benchmark (``benchmarks/load.py``): one JSON endpoint that sends
an email through flask-maildelivery, the webhook endpoints, and a Celery app set up as
Flask's documentation shows (a ``Task`` class that runs every task in the app context).

gunicorn serves ``load_host:create_app()``; the Celery workers run ``load_worker:celery_app``
(``processes.py`` starts both). Configured from the environment: ``LOAD_DATABASE_URL``,
``LOAD_SMTP_PORT`` (the sink on loopback; unset: the memory transport, for runs that send
nothing, such as ``webhook_inbox.py``), ``LOAD_QUEUE`` (empty: send and apply webhook events
in the request; ``celery``), ``LOAD_BROKER_URL``, ``LOAD_CELERY_QUEUE`` (a queue, and Redis
key prefix, of the run's own) and ``LOAD_SENDGRID_KEY`` (the webhook's verification key).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery

db = SQLAlchemy()
mail_delivery = MailDelivery()


def create_app() -> Flask:
    """The host app, configured from the environment."""
    app = Flask("maildelivery_load_host")
    smtp_port = os.environ.get("LOAD_SMTP_PORT")
    app.config.update(
        SECRET_KEY="load-host",
        SQLALCHEMY_DATABASE_URI=os.environ["LOAD_DATABASE_URL"],
        MAILDELIVERY_TRANSPORT="smtp" if smtp_port else "memory",
        MAILDELIVERY_SMTP_HOST="127.0.0.1",
        MAILDELIVERY_SMTP_PORT=int(smtp_port or 25),
        MAILDELIVERY_DEFAULT_SENDER="Payroll <payroll@acme.test>",
        MAILDELIVERY_QUEUE=os.environ.get("LOAD_QUEUE") or None,
        MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY=os.environ["LOAD_SENDGRID_KEY"],
    )
    db.init_app(app)
    mail_delivery.init_app(app, db=db)
    celery_init_app(app)

    @app.post("/send")
    def send() -> Any:
        data = request.get_json()
        email = mail_delivery.send(subject=data["subject"], to=data["to"], text=data["text"])
        return jsonify(id=email.id, public_id=email.public_id, result=email.result)

    return app


def celery_init_app(app: Flask) -> Celery:
    """Flask's Celery pattern, plus ``mail_delivery.init_celery``."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    queue = os.environ.get("LOAD_CELERY_QUEUE", "maildelivery-load")
    celery_app = Celery(app.name, task_cls=FlaskTask, set_as_current=False)
    celery_app.conf.update(
        broker_url=os.environ.get("LOAD_BROKER_URL", "redis://127.0.0.1:6379/0"),
        broker_transport_options={"global_keyprefix": f"{queue}:"},
        task_default_queue=queue,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=8,
        worker_hijack_root_logger=False,
    )
    app.extensions["celery"] = celery_app
    mail_delivery.init_celery(celery_app)
    return celery_app
