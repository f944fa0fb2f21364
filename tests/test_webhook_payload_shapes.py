"""Adapters are pure: any authentic body gives events or a 400-class error naming the
problem, never an unexpected exception (which would be a 500 and a provider retry loop).

Each provider's documented event is mutated field by field (every key up to two levels
deep replaced by a value of another JSON type) and parsed; no database is involved."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery
from flask_maildelivery.webhooks.base import WebhookError, WebhookRequest
from flask_maildelivery.webhooks.views import build_adapters

from .kits import (
    KITS,
    PROVIDERS,
    Kit,
    MandrillKit,
    ResendKit,
    SendGridKit,
    SESKit,
    UnisenderGoKit,
    webhook_url,
)
from .kits.base import SignedBodyKit
from .kits.unisender_go import unisender_body

REPLACEMENTS: list[Any] = [None, 7, True, "text", [], {}, [{}], {"a": {}}]


def paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[Any, ...]]:
    """Every key path of ``value`` up to three levels deep."""
    if depth > 3:
        return
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key), depth + 1)


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    result = copy.deepcopy(value)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return result


def document(kit: Kit, kind: str) -> list[dict[str, Any]]:
    """One event of the kit, as its request body carries it."""
    event = kit.one_event(kind, "0" * 32, message_id=kit.new_message_id(), event_id="ev-shape")
    return [event]


@pytest.mark.parametrize("kind", ["hard_bounce", "delivered", "complaint"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_mutated_bodies_never_raise_unexpectedly(provider: str, kind: str) -> None:
    kit = KITS[provider]()
    app = Flask("shapes")
    app.config.update(kit.config(), SQLALCHEMY_DATABASE_URI="sqlite://")
    MailDelivery(app, db=SQLAlchemy(app))
    adapter = build_adapters(app)[provider]
    body, headers = kit.request(document(kit, kind))
    # Mandrill posts its events as a form field: the JSON mutated is that field's
    base = (
        json.loads(parse_qs(body.decode())["mandrill_events"][0])
        if isinstance(kit, MandrillKit)
        else json.loads(body)
    )
    if provider == "ses":
        # the SNS envelope is checked by its signature; mutate the SES event inside it
        envelope = base
        base = json.loads(envelope["Message"])
    outcomes = {"events": 0, "refused": 0}
    statuses: set[int] = set()
    for path in list(paths(base)):
        for new in REPLACEMENTS:
            mutated = replaced(base, path, new)
            if isinstance(kit, SESKit):
                mutated = kit.sign({**envelope, "Message": json.dumps(mutated)})
            request_body, request_headers = _resign(kit, mutated, headers)
            request = WebhookRequest(
                body=request_body,
                headers={k.lower(): v for k, v in request_headers.items()},
                # the URL the kits post to (Mandrill signs it)
                url="http://localhost" + webhook_url(provider),
            )
            try:
                adapter.verify(request)
                adapter.parse(request)
                outcomes["events"] += 1
            except WebhookError as exc:
                statuses.add(exc.status)
                outcomes["refused"] += 1
    assert outcomes["events"] > 0
    assert outcomes["refused"] > 0
    assert statuses <= {400, 401, 403, 406, 502}


def _resign(kit: Kit, body: Any, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """Re-sign a mutated body where the provider signs the body (so the mutation reaches
    the parser); basic-auth providers keep their headers."""
    raw = json.dumps(body).encode()
    if isinstance(kit, SendGridKit):
        timestamp = headers["X-Twilio-Email-Event-Webhook-Timestamp"]
        signature = kit.sign(kit.key, timestamp, raw)
        return raw, {**headers, "X-Twilio-Email-Event-Webhook-Signature": signature}
    if isinstance(kit, ResendKit):
        signature = kit.signature(kit.secret, headers["svix-id"], headers["svix-timestamp"], raw)
        return raw, {**headers, "svix-signature": signature}
    if isinstance(kit, SignedBodyKit):
        return raw, kit.signed_headers(raw)
    if isinstance(kit, MandrillKit):
        return kit.form_request({"mandrill_events": json.dumps(body)})
    if isinstance(kit, UnisenderGoKit):
        unsigned = {k: v for k, v in body.items() if k != "auth"} if isinstance(body, dict) else {}
        return unisender_body(unsigned, kit.api_key), headers
    return raw, headers
