"""A minimal host app for serving the webhook endpoint with gunicorn in the tests and the
inbox benchmark: ``gunicorn 'tests.gunicorn_app:create_app()'`` (:func:`serve`).

Configured from the environment: ``MAILDELIVERY_HOST_DATABASE_URL`` (the SQLAlchemy URL),
``MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY``, ``MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY``
and ``MAILDELIVERY_INBOX_APPLY``, each when set. The test process builds the same app with
:func:`create_app`'s arguments to send emails and read the state back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery

#: The environment variables the app reads its settings from (besides the database URL).
FROM_ENVIRONMENT = (
    "MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY",
    "MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY",
    "MAILDELIVERY_INBOX_APPLY",
)


def create_app(database_url: str | None = None, **config: object) -> Flask:
    """The host app on ``database_url`` (default: ``MAILDELIVERY_HOST_DATABASE_URL``), with the
    memory transport and the webhook keys found in the environment; ``config`` on top."""
    url = database_url or os.environ.get("MAILDELIVERY_HOST_DATABASE_URL")
    if not url:
        raise RuntimeError(
            "set MAILDELIVERY_HOST_DATABASE_URL to the SQLAlchemy URL of the host's database"
        )
    app = Flask("maildelivery_gunicorn_host")
    app.config.update(
        SECRET_KEY="gunicorn-host",
        SQLALCHEMY_DATABASE_URI=url,
        MAILDELIVERY_TRANSPORT="memory",
        MAILDELIVERY_DEFAULT_SENDER="Billing <billing@acme.test>",
    )
    app.config.update({key: os.environ[key] for key in FROM_ENVIRONMENT if key in os.environ})
    app.config.update(config)
    db = SQLAlchemy()
    db.init_app(app)
    MailDelivery().init_app(app, db=db)
    return app


#: The repository root: gunicorn imports ``tests.gunicorn_app`` from there.
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def serve(
    environment: Mapping[str, str],
    *,
    workers: int = 4,
    ready_timeout: float = 90.0,
    app: str = "tests.gunicorn_app:create_app()",
    path: Sequence[Path] = (),
) -> Iterator[str]:
    """Run gunicorn (``workers`` sync worker processes) serving ``app`` (default:
    :func:`create_app`) on a free loopback port, with ``environment`` added to this
    process's and ``path`` before the repository root on ``PYTHONPATH``; yield its base URL
    (``http://127.0.0.1:<port>``) once its SendGrid webhook answers. Stopped on exit:
    SIGTERM, then SIGKILL if it has not ended within 10 seconds."""
    port = free_port()
    python_path = os.pathsep.join(str(p) for p in (*path, ROOT))
    env = {**os.environ, **environment, "PYTHONPATH": python_path}
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_ready(process, f"{base_url}/maildelivery/webhooks/sendgrid", ready_timeout)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    """Wait until ``url`` answers a HEAD request (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn ended with status {process.returncode} while starting")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout} seconds")
