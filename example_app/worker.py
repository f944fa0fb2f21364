"""The example's Celery mode (``python -m example_app --queue celery``): sends and webhook
requests handled by a Celery worker on Redis (or RabbitMQ) instead of in the request.

The Celery app is set up as Flask's documentation shows (a ``Task`` class that runs every
task in the app context), then ``mail_delivery.init_celery`` registers the package's tasks
on it. The worker runs in the example's own process, in a thread, so one command still
starts everything; a real deployment runs ``celery worker`` processes instead (see
docs/deployment.md).
"""

from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task
from celery.worker import WorkController
from celery.worker import state as worker_state
from flask import Flask

from . import mail_delivery

#: The broker the example uses unless told otherwise.
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def celery_init_app(app: Flask, broker_url: str, queue: str | None = None) -> Celery:
    """A Celery app whose tasks run in ``app``'s context, with the package's tasks
    registered; ``queue``: its task queue (default: one of its own)."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    queue = queue or f"example-erp-{uuid.uuid4().hex[:8]}"
    celery_app = Celery(app.name, task_cls=FlaskTask, set_as_current=False)
    celery_app.conf.update(
        broker_url=broker_url,
        task_default_queue=queue,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.extensions["celery"] = celery_app
    mail_delivery.init_celery(celery_app)
    return celery_app


@dataclass
class EmbeddedWorker:
    """A Celery worker consuming the example's queue from a thread of this process."""

    celery_app: Celery
    controller: Any = None
    thread: threading.Thread | None = None

    def start(self) -> EmbeddedWorker:
        """Start consuming; returns once the worker is ready."""
        # the worker's thread looks its tasks up in Celery's current app, which is
        # thread-local: the process's default is what that thread sees
        self.celery_app.set_default()
        self.controller = WorkController(
            app=self.celery_app,
            hostname=f"example-erp-{uuid.uuid4().hex[:6]}@{socket.gethostname()}",
            pool="solo",
            concurrency=1,
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=lambda consumer: self._ready.set(),
        )
        self.thread = threading.Thread(
            target=self.controller.start, name="example-erp-celery", daemon=True
        )
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(
                f"the Celery worker did not start: is the broker at "
                f"{self.celery_app.conf.broker_url} running?"
            )
        return self

    def __post_init__(self) -> None:
        self._ready = threading.Event()

    def stop(self) -> None:
        """Stop consuming (tasks under way finish) and delete the example's queue."""
        if self.thread is None:
            return
        worker_state.should_terminate = 0
        self.thread.join(30)
        worker_state.should_terminate = None
        self.thread = None
        with self.celery_app.connection_for_write() as connection:
            connection.default_channel.queue_delete(self.celery_app.conf.task_default_queue)
        self.celery_app.close()
