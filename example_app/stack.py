"""The whole example running in one process: the local SMTP server, the SendGrid simulator
and the ERP's web server, each on a loopback port."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_maildelivery import MailDelivery
from flask_maildelivery.bounces import watch_bounces
from flask_maildelivery.context import config_value

from . import create_app, demo, resolve_instance_path
from .models import db
from .simulator import (
    ProviderSimulator,
    SimulatorTiming,
    load_or_create_key,
    public_key_b64,
    start_smtp_server,
)

LOOPBACK = "127.0.0.1"
#: The ERP's bounce address: SMTP sends go out from it, tagged (VERP).
BOUNCE_ADDRESS = "bounces@erp.example"
#: Folder (in the instance folder) of the local bounce mailbox.
BOUNCE_MAILDIR = "bounce-mailbox"
#: Seconds between two reads of the local bounce mailbox.
BOUNCE_POLL_INTERVAL = 1.0


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def ensure_free(host: str, port: int) -> None:
    """Raise :class:`OSError` (``EADDRINUSE``) if ``host:port`` cannot be listened on."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def uses_local_delivery(*sources: Mapping[str, Any]) -> bool:
    """Whether mail goes to the local SMTP server and simulator: neither the environment nor
    the given configuration names a transport other than SMTP, or an SMTP server."""
    for source in sources:
        if source.get("MAILDELIVERY_TRANSPORT", "smtp") != "smtp":
            return False
        if source.get("MAILDELIVERY_SMTP_HOST"):
            return False
    return True


@dataclass
class ExampleStack:
    """The running example; :meth:`stop` ends every part."""

    app: Flask
    server: BaseWSGIServer
    simulator: ProviderSimulator | None
    smtp: Controller | None
    seeded: bool
    #: The Celery worker of ``--queue celery`` (``example_app.worker.EmbeddedWorker``).
    worker: Any = None
    #: The local bounce mailbox (a Maildir) and the thread that reads it, with SMTP.
    bounce_maildir: Path | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)
    _bounce_reader: threading.Thread | None = field(default=None, repr=False)
    _stop_bounces: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def url(self) -> str:
        """The ERP's address."""
        return f"http://{self.server.host}:{self.server.server_port}/"

    def serve_in_background(self) -> None:
        """Serve HTTP requests from a background thread (tests)."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="example-erp-http", daemon=True
        )
        self._thread.start()

    def read_bounces_in_background(self) -> None:
        """Read the local bounce mailbox every :data:`BOUNCE_POLL_INTERVAL` seconds, as
        ``flask maildelivery bounces watch`` does."""
        if self.bounce_maildir is None:
            return

        def read() -> None:
            with self.app.app_context():
                watch_bounces(self.app, interval=BOUNCE_POLL_INTERVAL, stop=self._stop_bounces)

        self._bounce_reader = threading.Thread(target=read, name="example-bounces", daemon=True)
        self._bounce_reader.start()

    def stop(self) -> None:
        """Stop the web server, the bounce reader, the simulator and the SMTP server."""
        self._stop_bounces.set()
        if self._bounce_reader is not None:
            self._bounce_reader.join(timeout=10)
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=10)
        self.server.server_close()
        if self.worker is not None:
            self.worker.stop()
        if self.simulator is not None:
            self.simulator.stop()
        if self.smtp is not None:
            self.smtp.stop()
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


def start_stack(
    *,
    host: str = LOOPBACK,
    port: int = 5000,
    smtp_port: int | None = None,
    timing: SimulatorTiming | None = None,
    config: Mapping[str, Any] | None = None,
    instance_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    demo_emails: bool = True,
    queue: str | None = None,
    broker_url: str | None = None,
) -> ExampleStack:
    """Start the example: SMTP server and simulator (unless a real provider is configured),
    the app (tables created, demo data on first start) and its web server (not yet serving:
    call ``server.serve_forever()`` or :meth:`ExampleStack.serve_in_background`).

    :param port: the web server's port; ``0`` picks a free one.
    :param queue: ``"celery"``: sends and webhook requests go through a Celery worker (in a
        thread of this process) on ``broker_url`` (default: Redis on loopback).
    """
    # the app must know the simulator's public key and the SMTP port; the simulator learns
    # the webhook URL once the web server has its port
    environ = os.environ if environ is None else environ
    local = uses_local_delivery(environ, config or {})
    if port:
        # werkzeug exits the process on a taken port; say it before anything is started
        ensure_free(host, port)
    simulator: ProviderSimulator | None = None
    smtp: Controller | None = None
    settings: dict[str, Any] = dict(config or {})
    bounce_maildir: Path | None = None
    if local:
        instance = resolve_instance_path(instance_path, environ)
        key = load_or_create_key(instance)
        # late.example's bounce comes back as a mail server's DSN into this Maildir
        bounce_maildir = instance / BOUNCE_MAILDIR
        for sub in ("new", "cur", "tmp"):
            (bounce_maildir / sub).mkdir(parents=True, exist_ok=True)
        simulator = ProviderSimulator(key, timing=timing, bounce_maildir=bounce_maildir)
        smtp_port = smtp_port or free_port(host)
        smtp = start_smtp_server(simulator, host, smtp_port)
        settings.update(
            MAILDELIVERY_TRANSPORT="smtp",
            MAILDELIVERY_SMTP_HOST=host,
            MAILDELIVERY_SMTP_PORT=smtp_port,
            MAILDELIVERY_SMTP_TIMEOUT=10,
            # the correlation id goes in X-SMTPAPI unique_args, as with SendGrid's SMTP relay
            MAILDELIVERY_SMTP_PROVIDER="sendgrid",
            MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY=public_key_b64(key),
            MAILDELIVERY_BOUNCE_ADDRESS=BOUNCE_ADDRESS,
            MAILDELIVERY_BOUNCE_MAILBOX=f"maildir://{bounce_maildir}",
        )
    if queue == "celery":
        settings["MAILDELIVERY_QUEUE"] = "celery"
    app = create_app(settings, instance_path=instance_path, environ=environ)
    worker = None
    if queue == "celery":
        # Celery is optional: imported only in this mode
        from .worker import DEFAULT_BROKER, EmbeddedWorker, celery_init_app

        try:
            worker = EmbeddedWorker(celery_init_app(app, broker_url or DEFAULT_BROKER)).start()
        except BaseException:
            if smtp is not None:
                smtp.stop()
            raise
    with app.app_context():
        db.create_all()
        MailDelivery.state(app).extension.create_all(app)
    server = make_server(host, port, app, threaded=True)
    if simulator is not None:
        prefix = config_value("URL_PREFIX", app).rstrip("/")
        simulator.webhook_url = f"http://{host}:{server.server_port}{prefix}/webhooks/sendgrid"
        simulator.start()
    stack = ExampleStack(
        app=app,
        server=server,
        simulator=simulator,
        smtp=smtp,
        seeded=False,
        worker=worker,
        bounce_maildir=bounce_maildir,
    )
    stack.read_bounces_in_background()
    try:
        stack.seeded = demo.seed(app, emails=demo_emails and local)
    except BaseException:
        stack.stop()
        raise
    return stack
