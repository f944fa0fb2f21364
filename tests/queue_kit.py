"""What the queue and retry tests share: a real Celery app on the machine's Redis (or
RabbitMQ) with a queue and key prefix of its own per test, a real worker, an SMTP server
started late on a chosen port, and waiting for the database to say something."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from aiosmtpd.controller import Controller
from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask

from flask_maildelivery import MailDelivery
from flask_maildelivery.models import QueuedSend

from .conftest import RecordingHandler, SMTPServer

#: The brokers on this machine (the CI script starts them when they are stopped).
REDIS_URL = os.environ.get("MAILDELIVERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get(
    "MAILDELIVERY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"
)

T = TypeVar("T")


def celery_app(broker: str = REDIS_URL) -> Celery:
    """A Celery app on ``broker`` whose tasks go to a queue of its own (and, on Redis, keys
    of its own): test runs sharing the broker never take each other's tasks."""
    name = f"maildelivery-test-{uuid.uuid4().hex[:12]}"
    app = Celery(name, broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=name,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=1,
    )
    if broker.startswith("redis"):
        app.conf.broker_transport_options = {"global_keyprefix": f"{name}:"}
    return app


@contextmanager
def running_worker(celery: Celery, *, concurrency: int = 1) -> Iterator[Any]:
    """A real Celery worker (threads pool) consuming the app's queue, in this process, so
    the test sees its signals; the queue is deleted afterwards."""
    pool = "threads" if concurrency > 1 else "solo"
    try:
        with start_worker(
            celery,
            pool=pool,
            concurrency=concurrency,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        with celery.connection_for_write() as connection:
            connection.default_channel.queue_delete(celery.conf.task_default_queue)
        celery.close()


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.05)


def queue_rows(app: Flask) -> int:
    """Rows in the send queue."""
    with app.app_context():
        engine = MailDelivery.state(app).db.engine
    with engine.connect() as connection:
        return int(
            connection.scalar(sa.select(sa.func.count()).select_from(QueuedSend.__table__)) or 0
        )


@contextmanager
def smtp_server_on(port: int, handler: RecordingHandler | None = None) -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1:``port``, for "server down, then up"."""
    handler = handler or RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", port, handler)
    finally:
        controller.stop()
