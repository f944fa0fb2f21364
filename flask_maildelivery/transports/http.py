"""Shared base of the provider API transports (SendGrid, Mailgun, Postmark, Amazon SES).

One :class:`httpx.Client` per transport instance (so one per app): its connection pool is
reused across sends and threads, every request has the ``MAILDELIVERY_HTTP_TIMEOUT``
timeout, and :meth:`HTTPTransport.close` releases the pool.

The answers map onto :class:`~flask_maildelivery.transports.base.TransportError` the same way
for every provider:

* a timeout, a connection error, HTTP 408, 429 or 5xx: ``retryable=True`` (the provider or
  the network is briefly unable; the same message may go through later);
* any other non-2xx answer: the provider refused the message, ``retryable=False``, with
  the provider's own reason from its error body.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..context import config_value
from ..events import normalize_message_id
from .base import (
    STRUCTURAL_HEADERS,
    Address,
    OutgoingMessage,
    SendResult,
    Transport,
    TransportError,
    unique_addresses,
)

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger("flask_maildelivery.transports")

#: HTTP statuses that mean "not now" rather than "no".
RETRYABLE_STATUSES = frozenset({408, 429})


#: Longest piece of a provider's error body quoted in an error message.
_MAX_ERROR_TEXT = 500


class HTTPTransport(Transport):
    """Base class of the transports that send through a provider's HTTP API.

    Subclasses set :attr:`provider_label`, build the request in :meth:`send` and send it
    with :meth:`post`, and extract the provider's reason from an error answer in
    :meth:`error_reason`.
    """

    #: The provider's name as shown in error messages.
    provider_label: ClassVar[str] = "the provider"

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        timeout = config_value("HTTP_TIMEOUT", app)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(
                f"MAILDELIVERY_HTTP_TIMEOUT={timeout!r} is not a number of seconds; set it to "
                "a positive number (every provider API request needs a timeout)"
            )
        self.timeout = float(timeout)
        #: The HTTP client; one per transport instance, so its connections are reused.
        self.client = httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            headers={"User-Agent": "flask-maildelivery"},
            follow_redirects=False,
        )

    @staticmethod
    def required_config(app: Flask, key: str, how: str) -> str:
        """The value of ``MAILDELIVERY_<key>``; raise at ``init_app`` when it is not set.

        :param how: where the host finds the value, appended to the error message.
        :raises ValueError: the key is unset or empty.
        """
        value = config_value(key, app)
        if value is None or (isinstance(value, str) and not value.strip()):
            transport = app.config.get("MAILDELIVERY_TRANSPORT")
            raise ValueError(
                f"MAILDELIVERY_TRANSPORT={transport!r} needs MAILDELIVERY_{key}: set it to {how}"
            )
        return str(value).strip()

    @staticmethod
    def base_url(app: Flask, key: str) -> str:
        """The base URL in ``MAILDELIVERY_<key>``, without a trailing slash.

        :raises ValueError: it is not an ``http://`` or ``https://`` URL.
        """
        value = config_value(key, app)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise ValueError(
                f"MAILDELIVERY_{key}={value!r} is not a base URL; set it to an https:// URL "
                "such as the provider's default, or leave it unset"
            )
        return value.rstrip("/")

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST to the provider; return a 2xx response or raise :class:`TransportError`."""
        try:
            response = self.client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"{self.provider_label} did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}); temporary failure, sending again later may succeed",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"cannot reach {self.provider_label} at {url}: {exc or type(exc).__name__}; "
                "temporary failure, sending again later may succeed",
                retryable=True,
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return response
        reason = self.error_reason(response) or response.reason_phrase or "no reason given"
        if self.is_retryable(response):
            raise TransportError(
                f"{self.provider_label} answered HTTP {status}: {reason}; temporary failure, "
                "sending again later may succeed",
                retryable=True,
            )
        hint = ""
        if status in (401, 403):
            hint = f" (check the {self.provider_label} credentials in the MAILDELIVERY_* settings)"
        raise TransportError(
            f"{self.provider_label} refused the message (HTTP {status}): {reason}{hint}",
            retryable=False,
        )

    def is_retryable(self, response: httpx.Response) -> bool:
        """Whether an error answer means "not now" rather than "no": HTTP 408, 429, 5xx."""
        return response.status_code in RETRYABLE_STATUSES or response.status_code >= 500

    def error_reason(self, response: httpx.Response) -> str:
        """The provider's reason in an error answer; default: the body as text."""
        return clip(response.text)

    def close(self) -> None:
        """Close the HTTP client and its pooled connections."""
        self.client.close()


def json_body(response: httpx.Response) -> Any:
    """The response's JSON body, or ``None`` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def result_from_json(provider_label: str, field: str, response: httpx.Response) -> SendResult:
    """The outcome of an accepted message whose id is in field ``field`` of the JSON
    answer (normalized as webhook events report it); logged when the id is missing."""
    body = json_body(response)
    raw_id = body.get(field) if isinstance(body, dict) else None
    return result_from_id(provider_label, raw_id, f'"{field}"', response)


def result_from_id(
    provider_label: str, raw_id: object, where: str, response: httpx.Response
) -> SendResult:
    """The outcome of an accepted message whose answer gave ``raw_id`` (read from ``where``
    in ``response``), normalized as webhook events report it; logged when there is none."""
    message_id = normalize_message_id(raw_id if isinstance(raw_id, str) else None)
    if message_id is None:
        missing_id(provider_label, where, response)
    return SendResult(provider_message_id=message_id)


def missing_id(provider_label: str, field: str, response: httpx.Response) -> None:
    """Log that an accepted message came back without its id (events then match only by
    ``maildelivery_id``); the message went out, so this is not a send failure."""
    logger.warning(
        "%s accepted the message but its answer has no %s (HTTP %s: %s); delivery events "
        "will be matched by maildelivery_id only",
        provider_label,
        field,
        response.status_code,
        clip(response.text),
    )


def extra_headers(message: OutgoingMessage) -> list[tuple[str, str]]:
    """The headers a provider API must carry besides its structured fields: the host's own
    headers, ``X-MailDelivery-ID``, and any header a ``before_send`` receiver added.

    They are read from the MIME message, which is what ``before_send`` receivers change.
    """
    mime = message.mime
    return [
        (name, str(value)) for name, value in mime.items() if name.lower() not in STRUCTURAL_HEADERS
    ]


def unique_recipients(
    message: OutgoingMessage,
) -> tuple[list[Address], list[Address], list[Address]]:
    """``to``, ``cc`` and ``bcc`` of ``message`` with each address once, as the recipients
    are recorded (:func:`~flask_maildelivery.transports.base.unique_addresses`)."""
    return unique_addresses(message.to, message.cc, message.bcc)


def bodies(message: OutgoingMessage) -> tuple[str | None, str | None]:
    """The text and HTML bodies to send.

    Every provider API refuses a message without any body, while an empty email is what
    the host asked for: it goes out as a text body of one space.
    """
    if not message.text and not message.html:
        return " ", None
    return message.text or None, message.html or None


def clip(text: str) -> str:
    """``text`` on one line, cut to a length that fits an error message."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"


__all__ = [
    "RETRYABLE_STATUSES",
    "HTTPTransport",
    "bodies",
    "clip",
    "extra_headers",
    "json_body",
    "missing_id",
    "result_from_id",
    "result_from_json",
    "unique_recipients",
]
