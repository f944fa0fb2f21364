"""The ``smtp`` transport (stdlib :mod:`smtplib`): STARTTLS or SSL, auth, timeout, and one
connection per thread reused for a burst of sends.

With ``MAILDELIVERY_SMTP_PROVIDER`` set, the correlation id also goes in that provider's
custom-argument header, so its webhook events carry ``maildelivery_id`` back.
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..context import config_value
from .base import OutgoingMessage, SendResult, Transport, TransportError

if TYPE_CHECKING:
    from flask import Flask

#: The custom-argument header each provider's SMTP relay turns into webhook data.
PROVIDER_HEADERS: dict[str, Callable[[str], tuple[str, str]]] = {
    "sendgrid": lambda pid: ("X-SMTPAPI", json.dumps({"unique_args": {"maildelivery_id": pid}})),
    "mailgun": lambda pid: ("X-Mailgun-Variables", json.dumps({"maildelivery_id": pid})),
    "postmark": lambda pid: ("X-PM-Metadata-maildelivery_id", pid),
    "ses": lambda pid: ("X-SES-MESSAGE-TAGS", f"maildelivery_id={pid}"),
}


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
        if self.provider is not None and self.provider not in PROVIDER_HEADERS:
            raise ValueError(
                f"MAILDELIVERY_SMTP_PROVIDER={self.provider!r} is not one of "
                f"{', '.join(sorted(PROVIDER_HEADERS))}"
            )
        #: TLS settings for STARTTLS and SSL; replace for a private CA.
        self.ssl_context = ssl.create_default_context()
        self._local = threading.local()

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
        return connection

    def send(self, message: OutgoingMessage) -> SendResult:
        mime = message.mime
        if self.provider is not None:
            header, value = PROVIDER_HEADERS[self.provider](message.public_id)
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

    def _drop_connection(self) -> None:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def end_of_context(self) -> None:
        """A burst of sends reuses one connection within an app context; when the context
        ends, the connection is closed, so a thread that ends (a threaded server's request)
        leaves no socket behind."""
        self.close()

    def close(self) -> None:
        """Close this thread's connection (``QUIT``), if one is open."""
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        self._local.connection = None
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
