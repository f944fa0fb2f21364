"""What every provider API transport promises, checked for each provider against its fake API
on loopback: the provider's message id kept, a refusal recorded with the provider's reason,
wrong credentials refused, transient failures retryable, missing settings refused at
``init_app``. What is particular to one provider is in its ``test_transport_<name>.py``."""

from __future__ import annotations

import pytest

from flask_maildelivery import MailDelivery
from flask_maildelivery.transports import TransportError

from .conftest import AppFactory, free_port, outgoing_message
from .fake_provider import FakeProvider
from .test_transport_mailgun import KIT as MAILGUN
from .test_transport_postmark import KIT as POSTMARK
from .test_transport_sendgrid import KIT as SENDGRID
from .test_transport_ses import KIT as SES
from .transport_contract import (
    QUEUED_RECIPIENTS,
    TransportKit,
    deliver_by_message_id,
    email_count,
    event_email_ids,
    send_invoice,
    stored,
)

KITS = [SENDGRID, MAILGUN, POSTMARK, SES]

each_provider = pytest.mark.parametrize("kit", KITS, ids=[kit.name for kit in KITS])


@each_provider
def test_a_send_stores_the_provider_s_message_id(
    make_app: AppFactory, provider_server: FakeProvider, kit: TransportKit
) -> None:
    app, email, _ = kit.send_invoice(make_app, provider_server, **kit.options)

    record = stored(app, email.id)
    assert record.transport == kit.name
    assert record.result == "queued"
    assert record.error is None
    assert record.provider_message_id == kit.stored_message_id
    assert record.recipients == QUEUED_RECIPIENTS


@each_provider
def test_a_webhook_event_with_only_the_message_id_finds_the_email(
    make_app: AppFactory, provider_server: FakeProvider, kit: TransportKit
) -> None:
    app = kit.start(make_app, provider_server)
    email = send_invoice(app)
    deliver_by_message_id(app, kit.name, kit.webhook_message_id, kit.webhook_recipient)

    assert event_email_ids(app) == [email.id]
    assert stored(app, email.id).recipients[kit.webhook_recipient][1] == "delivered"


@each_provider
def test_a_refusal_is_recorded_failed_with_the_provider_s_reason(
    make_app: AppFactory, provider_server: FakeProvider, kit: TransportKit
) -> None:
    app = kit.start(make_app, provider_server, kit.refusal)
    email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "failed"
    assert record.error == kit.refusal_error
    assert record.provider_message_id is None
    assert {status for _, status, _ in record.recipients.values()} == {"failed"}
    assert email_count(app) == 1


@each_provider
def test_wrong_credentials_are_refused_by_the_fake_and_recorded(
    make_app: AppFactory, provider_server: FakeProvider, kit: TransportKit
) -> None:
    app = kit.start(make_app, provider_server, **kit.wrong_credentials)
    email = send_invoice(app)

    record = stored(app, email.id)
    assert record.result == "failed"
    assert record.error == kit.wrong_credentials_error
    assert record.provider_message_id is None
    assert email_count(app) == 1
    if kit.wrong_credentials_header is not None:
        name, value = kit.wrong_credentials_header
        assert provider_server.requests[0].headers[name] == value


TRANSIENT_CASES = [
    pytest.param(kit, answer, id=f"{kit.name}-{answer}")
    for kit in KITS
    for answer in [*kit.transient, "timeout", "connection refused"]
]


@pytest.mark.parametrize(("kit", "answer"), TRANSIENT_CASES)
def test_transient_failures_are_retryable_and_the_email_is_kept(
    make_app: AppFactory, provider_server: FakeProvider, kit: TransportKit, answer: str
) -> None:
    if answer == "timeout":
        app = kit.start(
            make_app, provider_server, provider_server.hang, MAILDELIVERY_HTTP_TIMEOUT=0.3
        )
    elif answer == "connection refused":
        refused = {kit.api_url_setting: f"http://127.0.0.1:{free_port()}"}
        app = kit.start(make_app, provider_server, None, **refused)
    else:
        app = kit.start(make_app, provider_server, kit.transient[answer])

    with pytest.raises(TransportError) as raised:
        MailDelivery.state(app).transport.send(outgoing_message())
    assert raised.value.retryable is True

    email = send_invoice(app)
    record = stored(app, email.id)
    assert record.result == "failed"
    assert "temporary failure, sending again later may succeed" in (record.error or "")
    assert len(record.recipients) == 4
    assert email_count(app) == 1


MISSING_CASES = [
    pytest.param(kit, missing, message, id=f"{kit.name}-{missing}")
    for kit in KITS
    for missing, message in kit.missing_settings
]


@pytest.mark.parametrize(("kit", "missing", "message"), MISSING_CASES)
def test_a_missing_setting_fails_at_init_app(
    make_app: AppFactory, kit: TransportKit, missing: str, message: str
) -> None:
    settings = {"MAILDELIVERY_TRANSPORT": kit.name, **kit.credentials}
    del settings[missing]
    with pytest.raises(ValueError, match=message) as raised:
        make_app(**settings)
    assert missing in str(raised.value)
