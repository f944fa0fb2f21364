"""Hostile webhook requests: raw JSON text that :func:`json.dumps` cannot write (deep
nesting, ``NaN``, numbers past a float) put into a kit's authentic request, and the field
of a kit's event where extra keys go."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from . import kits
from .kits import base as kit_base
from .kits import mailersend, postal, resend, ses, sparkpost, unisender_go
from .kits.base import Kit

#: A JSON string that :func:`raw_json` replaces, quotes included, with raw JSON text.
PLACEHOLDER = "@@raw-json@@"
_KIT_MODULES = tuple(dict.fromkeys(sys.modules[kit.__module__] for kit in kits.KITS.values()))


@contextmanager
def raw_json(monkeypatch: pytest.MonkeyPatch, text: str) -> Iterator[None]:
    """While active, every JSON the kits write has the string :data:`PLACEHOLDER` replaced
    by ``text``, before the kit signs it (the SES kit's message, nested in its envelope,
    included)."""

    def dumps(value: Any, **kwargs: Any) -> str:
        return json.dumps(value, **kwargs).replace(json.dumps(PLACEHOLDER), text)

    fake = types.SimpleNamespace(dumps=dumps, loads=json.loads)
    with monkeypatch.context() as patch:
        for module in (*_KIT_MODULES, kit_base):
            if hasattr(module, "json"):
                patch.setattr(module, "json", fake)
        yield


def fields_of(kit: Kit, event: dict[str, Any]) -> dict[str, Any]:
    """The object of ``event`` (built by ``kit``) that holds the provider's event fields:
    where an extra key travels as the provider would send it."""
    if isinstance(kit, ses.SESKit):
        inner: dict[str, Any] = event["event"]
        return inner
    if isinstance(kit, sparkpost.SparkPostKit):
        (klass,) = event["msys"].values()
        found: dict[str, Any] = klass
        return found
    if isinstance(kit, resend.ResendKit | mailersend.MailerSendKit):
        data: dict[str, Any] = event["data"]
        return data
    if isinstance(kit, postal.PostalKit):
        payload: dict[str, Any] = event["payload"]
        return payload
    if isinstance(kit, unisender_go.UnisenderGoKit):
        event_data: dict[str, Any] = event["event_data"]
        return event_data
    return event
