"""The webhook endpoint: ``POST {URL_PREFIX}/webhooks/<provider>``.

Each request goes: size limit -> the provider's adapter verifies it (over the raw bytes)
and parses it into normalized events (the body is validated before anything is stored) ->
:func:`.inbox.store` commits the raw request to the webhook inbox -> :func:`.inbox.apply`
applies its events (:func:`~flask_maildelivery.ingest.ingest_events`) right away
(``MAILDELIVERY_INBOX_APPLY = "inline"``, the default), or once the answer is sent
(``"after_response"``: the provider waits only for the store). Answers:

* 200 stored, with the counts (a repeated event included; ``unusable``, only when there
  are any: the items of a batch that did not parse, each kept aside as a ``failed`` inbox
  row while the others were applied); also 200 when the request is
  stored but applying its events failed: the inbox row is ``failed`` and
  ``flask maildelivery inbox retry`` applies it; with ``"after_response"``, 200 with the
  inbox row's id and ``"status": "stored"`` (the counts are not known yet);
* 400 malformed body (JSON naming the problem), nothing stored;
* 401/403 authentication failed or provider not configured (Mailgun: 406, which stops its
  retries; also for a reused token), nothing stored;
* 404 unknown provider; 413 body above ``MAILDELIVERY_WEBHOOK_MAX_BYTES``;
* the adapter's ``retry_status`` (503, Brevo 429) when the request could not be stored:
  nothing is stored, the provider retries.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from ..context import config_value, get_state
from ..events import NormalizedEvent
from . import ADAPTERS, adapter_classes, inbox
from .base import (
    AuthenticationFailed,
    NotConfigured,
    WebhookAdapter,
    WebhookError,
    WebhookRequest,
    challenge_headers,
)

logger = logging.getLogger("flask_maildelivery")

#: The blueprint's name (endpoint ``maildelivery_webhooks.receive``).
BLUEPRINT_NAME = "maildelivery_webhooks"
#: The values of ``MAILDELIVERY_INBOX_APPLY``.
APPLY_MODES = ("inline", "after_response")


def build_adapters(app: Flask) -> dict[str, WebhookAdapter]:
    """One adapter per provider for ``app`` (configuration read now, once)."""
    return {provider: cls(app) for provider, cls in adapter_classes().items()}


def _error(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": message}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _read_body(max_bytes: int) -> bytes | None:
    """The raw body, or ``None`` when it is larger than ``max_bytes`` (read no further than
    that, also for a chunked body without a Content-Length)."""
    if request.content_length is not None and request.content_length > max_bytes:
        return None
    stream = request.stream
    chunks: list[bytes] = []
    total = 0
    while True:
        # a read may return less than asked for: loop until the end of the body
        chunk = stream.read(min(64 * 1024, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            return None


def create_webhook_blueprint(app: Flask, adapters: dict[str, WebhookAdapter]) -> Blueprint:
    """The webhook blueprint for ``app``, mounted at ``{MAILDELIVERY_URL_PREFIX}/webhooks``,
    answering with ``adapters`` (:func:`build_adapters`, built from the configuration read
    at ``init_app``)."""
    prefix = str(config_value("URL_PREFIX", app) or "").rstrip("/")
    max_bytes = int(config_value("WEBHOOK_MAX_BYTES", app))
    apply_mode = config_value("INBOX_APPLY", app)
    if apply_mode not in APPLY_MODES:
        raise ValueError(
            f'MAILDELIVERY_INBOX_APPLY is {apply_mode!r}; set it to "inline" (apply a '
            'webhook request before answering) or "after_response" (apply it once the '
            "answer is sent)"
        )
    queued = config_value("QUEUE", app) == "celery"
    blueprint = Blueprint(BLUEPRINT_NAME, __name__, url_prefix=f"{prefix}/webhooks")

    @blueprint.route("/<provider>", methods=["POST", "HEAD"])
    def receive(provider: str) -> Response:
        """Verify, parse and store one provider request."""
        adapter = adapters.get(provider)
        if adapter is None:
            return _error(404, f"unknown provider {provider!r}; known: {', '.join(ADAPTERS)}")
        if request.method == "HEAD":
            # some providers probe the URL before they use it
            return Response(status=200)
        body = _read_body(max_bytes)
        if body is None:
            return _error(
                413, f"the body is larger than MAILDELIVERY_WEBHOOK_MAX_BYTES ({max_bytes} bytes)"
            )
        webhook_request = WebhookRequest(
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            url=request.url,
        )
        try:
            adapter.check_configured()
            adapter.verify(webhook_request)
            parsed = inbox.parse_usable(adapter, webhook_request)
        except NotConfigured as exc:
            logger.warning("refused a %s webhook: %s", provider, exc)
            return _error(exc.status, str(exc))
        except AuthenticationFailed as exc:
            logger.warning("refused a %s webhook: %s", provider, exc)
            status = adapter.auth_failure_status
            return _error(
                status, str(exc), headers=challenge_headers(adapter) if status == 401 else None
            )
        except WebhookError as exc:
            return _error(exc.status, str(exc), exc.details)
        try:
            inbox_id = inbox.store(app, adapter, webhook_request, parsed.unusable)
        except inbox.TokenReused as exc:
            logger.warning("refused a %s webhook: %s", provider, exc)
            return _error(adapter.auth_failure_status, str(exc))
        except SQLAlchemyError:
            # nothing is stored: answer so that the provider retries
            logger.exception("could not store a %s webhook request", provider)
            return _error(adapter.retry_status, "the request could not be stored; retry later")
        if queued and _enqueue_inbox(app, inbox_id):
            # a worker applies it (maildelivery.apply_inbox); the provider waits only for
            # the store
            return jsonify(inbox=inbox_id, status="stored", **_unusable(parsed))
        if apply_mode == "after_response":
            # the row is committed: answer now, apply when the server closes the response
            # (a failure leaves the row failed; a process killed meanwhile, pending: both
            # are what ``inbox retry`` applies)
            response = jsonify(inbox=inbox_id, status="stored", **_unusable(parsed))
            response.call_on_close(lambda: _apply_after_response(app, inbox_id, parsed.events))
            return response
        outcome = inbox.apply(app, inbox_id, parsed.events)
        if outcome.report is None:
            # stored: the provider must not retry; the inbox row keeps the error
            return jsonify(inbox=inbox_id, status="failed")
        report = outcome.report
        return jsonify(
            stored=report.stored,
            duplicates=report.duplicates,
            unmatched=report.unmatched,
            **_unusable(parsed),
        )

    return blueprint


def _unusable(parsed: inbox.ParsedRequest) -> dict[str, int]:
    """``{"unusable": n}`` when items of the batch were set aside, else nothing."""
    return {"unusable": len(parsed.unusable)} if parsed.unusable else {}


def _enqueue_inbox(app: Flask, inbox_id: int) -> bool:
    """Hand stored request ``inbox_id`` to a Celery worker; ``False`` when no Celery app is
    registered (``init_celery``) or the broker refused it (logged): the request is then
    applied here, as without a queue."""
    enqueue = get_state(app).tasks.enqueue_inbox
    if enqueue is None:
        return False
    try:
        enqueue(inbox_id)
    except Exception:
        logger.exception("webhook inbox row %s could not be handed to a worker", inbox_id)
        return False
    return True


def _apply_after_response(app: Flask, inbox_id: int, events: list[NormalizedEvent]) -> None:
    """Apply a stored request once its answer is sent (the request's context is gone)."""
    with app.app_context():
        inbox.apply(app, inbox_id, events)


def exempt_from_csrf(app: Flask, blueprint: Blueprint) -> None:
    """Exempt ``blueprint`` from Flask-WTF's CSRFProtect, whether it is set up before or
    after flask-maildelivery (providers cannot send a CSRF token; they authenticate
    otherwise). Uses ``CSRFProtect.exempt``, its public API, once per app."""
    exempted = False

    def exempt() -> None:
        nonlocal exempted
        csrf = app.extensions.get("csrf")
        if csrf is not None and not exempted:
            csrf.exempt(blueprint)
            exempted = True

    exempt()
    # CSRFProtect set up after us: its check runs after this hook (registration order)
    app.before_request(exempt)
