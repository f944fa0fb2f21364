"""The ``smtp`` transport (stdlib :mod:`smtplib`): STARTTLS or SSL, auth, timeout, and one
connection per thread reused for a burst of sends.

With ``MAILDELIVERY_SMTP_PROVIDER`` set, the correlation id also goes in that provider's
custom-argument header (its webhook module says which), so its webhook events carry
``maildelivery_id`` back.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from typing import TYPE_CHECKING

from ..context import config_value
from ..webhooks import smtp_correlation_header, smtp_providers
from .base import OutgoingMessage, SendResult, Transport, TransportError

if TYPE_CHECKING:
    from flask import Flask


class SMTPTransport(Transport):
    """Sends through an SMTP server; see the ``MAILDELIVERY_SMTP_*`` configuration keys."""

    name = "smtp"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.host: str = config_value("SMTP_HOST", app)
        self.port: int = int(config_value("SMTP_PORT", app))
        self.username: str | None = config_value("SMTP_USERNAME", app)
        self.password: str | None = config_value("SMTP_PASSWORD", app)
        self.use_tls: bool = bool(config_value("SMTP_USE_TLS", app))
        self.use_ssl: bool = bool(config_value("SMTP_USE_SSL", app))
        self.timeout: float = float(config_value("SMTP_TIMEOUT", app))
        self.provider: str | None = config_value("SMTP_PROVIDER", app)
        if self.use_tls and self.use_ssl:
            raise ValueError(
                "MAILDELIVERY_SMTP_USE_TLS (STARTTLS) and MAILDELIVERY_SMTP_USE_SSL (implicit "
                "TLS) exclude each other; set one of them"
            )
        if self.provider is not None and self.provider not in smtp_providers():
            raise ValueError(
                f"MAILDELIVERY_SMTP_PROVIDER={self.provider!r} is not one of "
                f"{', '.join(sorted(smtp_providers()))}"
            )
        #: TLS settings for STARTTLS and SSL; replace for a private CA.
        self.ssl_context = ssl.create_default_context()
        self._local = threading.local()
        #: Connections of the threads that keep theirs (workers), for :meth:`close`.
        self._kept: dict[int, smtplib.SMTP] = {}
        self._kept_lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if self.use_ssl:
            connection = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.use_tls:
                connection.starttls(context=self.ssl_context)
            if self.username:
                connection.login(self.username, self.password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def _connection(self) -> smtplib.SMTP:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            if getattr(self._local, "keep", False):
                with self._kept_lock:
                    self._kept[threading.get_ident()] = connection
        return connection

    def send(self, message: OutgoingMessage) -> SendResult:
        mime = message.mime
        correlation = (
            smtp_correlation_header(self.provider, message.public_id) if self.provider else None
        )
        if correlation is not None:
            header, value = correlation
            del mime[header]
            mime[header] = value
        envelope_to = message.envelope_recipients
        for attempt in (1, 2):
            try:
                refused = self._connection().send_message(
                    mime,
                    from_addr=message.envelope_sender or message.sender.address,
                    to_addrs=envelope_to,
                )
                break
            except smtplib.SMTPServerDisconnected as exc:
                # a reused connection the server closed while idle: reconnect once
                self._drop_connection()
                if attempt == 2:
                    raise TransportError(
                        f"SMTP server disconnected: {exc}", retryable=True
                    ) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                raise TransportError(
                    "SMTP server refused every recipient: " + _describe(exc.recipients)
                ) from exc
            except smtplib.SMTPResponseException as exc:
                self._drop_connection()
                text = (
                    exc.smtp_error.decode(errors="replace")
                    if isinstance(exc.smtp_error, bytes)
                    else str(exc.smtp_error)
                )
                raise TransportError(
                    f"SMTP server answered {exc.smtp_code}: {text}",
                    retryable=400 <= exc.smtp_code < 500,
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop_connection()
                raise TransportError(
                    f"cannot send through SMTP server {self.host}:{self.port}: {exc}",
                    retryable=True,
                ) from exc
        # some recipients refused, others accepted: the message went out to the others
        return SendResult(
            refused_recipients={
                address: (str(code), text.decode(errors="replace"))
                for address, (code, text) in refused.items()
            }
        )

    def _forget_connection(self) -> smtplib.SMTP | None:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        self._local.connection = None
        with self._kept_lock:
            self._kept.pop(threading.get_ident(), None)
        return connection

    def _drop_connection(self) -> None:
        connection = self._forget_connection()
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def end_of_context(self) -> None:
        """A burst of sends reuses one connection within an app context; when the context
        ends, the connection is closed, so a thread that ends (a threaded server's request)
        leaves no socket behind; a thread that keeps its connection
        (:meth:`keep_connections`, a worker) reuses it for its next sends."""
        if not getattr(self._local, "keep", False):
            self._quit(self._forget_connection())

    def keep_connections(self) -> None:
        """One connection for all the sends of this thread (a worker's), not one per app
        context; a connection the server closed is opened again at the next send."""
        self._local.keep = True

    def close(self) -> None:
        """Close this thread's connection (``QUIT``), if one is open, and those that worker
        threads kept (call it once they are done: at the worker's shutdown)."""
        self._quit(self._forget_connection())
        with self._kept_lock:
            kept = list(self._kept.values())
            self._kept.clear()
        for connection in kept:
            self._quit(connection)

    @staticmethod
    def _quit(connection: smtplib.SMTP | None) -> None:
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()


def _describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address}: {code} {message.decode(errors='replace')}"
        for address, (code, message) in refused.items()
    )
