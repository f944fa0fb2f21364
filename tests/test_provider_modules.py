"""Adding a provider is one module: every registered provider declares its configuration
keys, payload schema, authentication, event mapping and retry facts in its own module under
``flask_maildelivery/webhooks/``, and has one test kit and one docs page."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from marshmallow import Schema

from flask_maildelivery.config import DEFAULTS
from flask_maildelivery.events import EVENT_TYPES as NORMALIZED_TYPES
from flask_maildelivery.webhooks import ADAPTERS, adapter_classes, provider_config_defaults
from flask_maildelivery.webhooks.base import WebhookAdapter

from .kits import KITS

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = list(ADAPTERS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_provider_is_one_module_declaring_everything(provider: str) -> None:
    cls = adapter_classes()[provider]
    assert issubclass(cls, WebhookAdapter)
    assert cls.provider == provider
    assert cls.__module__ == f"flask_maildelivery.webhooks.{provider}"
    # configuration keys: its own infix, none in the package's general table
    assert cls.config_keys
    for key in cls.config_keys:
        assert key.startswith(f"MAILDELIVERY_{provider.upper()}_"), key
        assert key not in DEFAULTS, key
    # the schema lives in the provider's module
    assert isinstance(cls.schema, Schema)
    assert type(cls.schema).__module__ == cls.__module__
    # authentication and parsing are its own
    assert not inspect.isabstract(cls)
    # every provider event name maps onto the normalized vocabulary
    assert cls.event_types
    for raw, mapped in cls.event_types.items():
        normalized = mapped[0] if isinstance(mapped, tuple) else mapped
        assert normalized in NORMALIZED_TYPES, (raw, mapped)
    # retry facts
    assert cls.retry_horizon > 0
    assert cls.retried_answers
    assert 400 <= cls.retry_status < 600
    assert cls.setup_hint
    assert any(key in cls.setup_hint for key in cls.config_keys)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_provider_has_a_test_kit_and_a_docs_page(provider: str) -> None:
    assert (ROOT / "tests" / "kits" / f"{provider}.py").is_file()
    assert KITS[provider].provider == provider
    assert KITS[provider].__module__ == f"tests.kits.{provider}"
    page = ROOT / "docs" / "providers" / f"{provider}.md"
    assert page.is_file(), f"add docs/providers/{provider}.md"
    text = page.read_text()
    for key in adapter_classes()[provider].config_keys:
        assert key in text, f"docs/providers/{provider}.md does not mention {key}"


def test_every_kit_is_a_registered_provider() -> None:
    assert list(KITS) == PROVIDERS


def test_no_two_providers_declare_the_same_key() -> None:
    declared = [key for cls in adapter_classes().values() for key in cls.config_keys]
    assert len(declared) == len(set(declared)) == len(provider_config_defaults())
