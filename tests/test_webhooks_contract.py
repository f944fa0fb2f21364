"""The contract every provider webhook keeps, run for each provider on each database:
each documented event maps onto the package's vocabulary, found by correlation id or by the
provider's message id; a valid request is stored; forged, unauthenticated, wrongly keyed and stale (signed)
requests are refused with nothing stored; a malformed body is a 400 naming the problem; the same request
twice stores once; an unknown event name is kept as ``unknown``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask

from .kits import (
    ANN,
    EXPECTED_BOUNCE_TYPES,
    KITS,
    MAPPING_KINDS,
    PROVIDERS,
    STALE_AGE,
    Kit,
    post,
    webhook_url,
)
from .webhook_helpers import (
    email_result,
    recipient_states,
    send_email,
    set_message_id,
    stored_events,
)


@pytest.fixture(params=PROVIDERS)
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]()


@pytest.fixture
def hook_app(make_app: Any, kit: Kit) -> Flask:
    app: Flask = kit.start(make_app)
    return app


def one_event(
    kit: Kit, kind: str, public_id: str, at: datetime | None = None, address: str = ANN
) -> dict[str, Any]:
    return kit.one_event(kind, public_id, message_id=kit.new_message_id(), at=at, address=address)


def check_mapping(make_app: Any, kit: Kit, kind: str, *, by_message_id: bool = False) -> Any:
    """Post one ``kind`` event for a fresh email and check the stored event and the
    recipient's status; return the stored event.

    :param by_message_id: the event carries no ``maildelivery_id``: it must find its email
        by the provider's message id.
    """
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    message_id = kit.new_message_id()
    set_message_id(app, email_id, message_id)
    event = kit.one_event(
        kind,
        None if by_message_id else public_id,
        message_id=message_id,
        address="Ann@Customer.test",  # addresses match case-insensitively
    )
    response = kit.post_events(app, [event])
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(app)
    expected = kit.expected_type(kind)
    assert stored.type == expected, (kind, stored.raw_type)
    assert stored.email_id == email_id
    if kind in EXPECTED_BOUNCE_TYPES:
        assert stored.bounce_type == EXPECTED_BOUNCE_TYPES[kind]
    if kind in ("soft_bounce", "hard_bounce"):
        assert stored.reason  # the provider's explanation is kept
    status = recipient_states(app, email_id)[ANN][0]
    if kind in kit.per_message:
        # the provider names no recipient: the event is the email's, no recipient changes
        assert (stored.recipient_id, stored.address) == (None, None)
        assert status == "queued"
        assert email_result(app, email_id) == ("queued", "")
        return stored
    assert stored.recipient_id is not None
    assert status == (expected if expected != "unknown" else "queued")
    return stored


MAPPING_CASES = [
    pytest.param(provider, kind, id=f"{provider}-{kind}")
    for provider in PROVIDERS
    for kind in MAPPING_KINDS
    if kind in KITS[provider].kinds
]


@pytest.mark.parametrize(("provider", "kind"), MAPPING_CASES)
def test_documented_event_maps_onto_the_vocabulary(make_app: Any, provider: str, kind: str) -> None:
    check_mapping(make_app, KITS[provider](), kind)


def test_event_without_correlation_id_matches_by_message_id(make_app: Any, kit: Kit) -> None:
    stored = check_mapping(make_app, kit, "delivered", by_message_id=True)
    assert stored.correlation_id is None


def test_valid_request_is_stored_and_applied(hook_app: Flask, kit: Kit, signal_log: Any) -> None:
    email_id, public_id = send_email(hook_app)
    signal_log.clear()
    response = post(hook_app, kit, kit.request([one_event(kit, "hard_bounce", public_id)]))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 1, "duplicates": 0, "unmatched": 0}
    [event] = stored_events(hook_app)
    assert (event.provider, event.type, event.email_id) == (kit.provider, "bounced", email_id)
    assert event.recipient_id is not None
    assert event.address == ANN
    assert event.payload  # the raw event is kept
    assert recipient_states(hook_app, email_id)[ANN][0] == "bounced"
    assert email_result(hook_app, email_id) == ("error", "bounced")
    names = [name for name, _ in signal_log]
    assert names.count("event-received") == 1
    assert names.count("recipient-status-changed") == 1
    assert names.count("email-result-changed") == 1


@pytest.mark.parametrize("mode", ["forged", "missing"])
def test_forged_or_unauthenticated_request_is_refused(hook_app: Flask, kit: Kit, mode: str) -> None:
    email_id, public_id = send_email(hook_app)
    response = post(hook_app, kit, kit.request([one_event(kit, "delivered", public_id)], mode=mode))
    assert response.status_code == kit.auth_status
    assert "error" in response.get_json()
    assert stored_events(hook_app) == []
    assert recipient_states(hook_app, email_id)[ANN][0] == "queued"


def test_wrong_key_is_refused(make_app: Any, kit: Kit) -> None:
    app = make_app(**kit.wrong_config())
    email_id, public_id = send_email(app)
    response = post(app, kit, kit.request([one_event(kit, "delivered", public_id)]))
    assert response.status_code == kit.auth_status
    assert stored_events(app) == []
    assert recipient_states(app, email_id)[ANN][0] == "queued"


def test_stale_timestamp_is_refused_or_harmless(hook_app: Flask, kit: Kit) -> None:
    email_id, public_id = send_email(hook_app)
    then = datetime.now(UTC) - STALE_AGE
    response = post(
        hook_app,
        kit,
        kit.request([one_event(kit, "delivered", public_id, at=then)], signed_at=then),
    )
    if kit.signs_time:
        # a signature older than the provider's retry horizon
        assert response.status_code == kit.auth_status
        assert "old" in response.get_json()["error"]
        assert stored_events(hook_app) == []
    else:
        # nothing is signed: an old event is stored once like any other
        assert response.status_code == 200, response.get_json()
        assert recipient_states(hook_app, email_id)[ANN][0] == "delivered"


def test_unconfigured_provider_refuses(make_app: Any, kit: Kit) -> None:
    app = make_app()
    _, public_id = send_email(app)
    response = post(app, kit, kit.request([one_event(kit, "delivered", public_id)]))
    assert response.status_code == 403
    assert "MAILDELIVERY_" in response.get_json()["error"]
    assert stored_events(app) == []


def test_malformed_body_is_400_and_stores_nothing(hook_app: Flask, kit: Kit) -> None:
    response = post(hook_app, kit, kit.malformed())
    assert response.status_code == 400
    body = response.get_json()
    assert "malformed" in body["error"] or "no " in body["error"]
    assert stored_events(hook_app) == []


def test_same_request_twice_stores_once(hook_app: Flask, kit: Kit, signal_log: Any) -> None:
    email_id, public_id = send_email(hook_app)
    signal_log.clear()
    request = kit.request([one_event(kit, "delivered", public_id)])
    assert post(hook_app, kit, request).status_code == 200
    second = post(hook_app, kit, request)
    assert second.status_code == kit.repeat_status
    if second.status_code == 200:
        assert second.get_json() == {"stored": 0, "duplicates": 1, "unmatched": 0}
    assert len(stored_events(hook_app)) == 1
    assert [name for name, _ in signal_log].count("event-received") == 1
    assert recipient_states(hook_app, email_id)[ANN][0] == "delivered"


def test_unknown_event_is_kept_as_unknown(hook_app: Flask, kit: Kit) -> None:
    email_id, public_id = send_email(hook_app)
    event = one_event(kit, "unknown", public_id)
    response = post(hook_app, kit, kit.request([event]))
    assert response.status_code == 200, response.get_json()
    [stored] = stored_events(hook_app)
    assert stored.type == "unknown"
    assert stored.raw_type  # the provider's own name, as sent
    assert stored.email_id == email_id
    assert recipient_states(hook_app, email_id)[ANN][0] == "queued"


def test_head_answers_200(hook_app: Flask, kit: Kit) -> None:
    assert hook_app.test_client().head(webhook_url(kit.provider)).status_code == 200


def test_body_above_the_limit_is_413(make_app: Any, kit: Kit) -> None:
    app = make_app(**kit.config(), MAILDELIVERY_WEBHOOK_MAX_BYTES=200)
    _, public_id = send_email(app)
    body, headers = kit.request([one_event(kit, "delivered", public_id)])
    response = app.test_client().post(
        webhook_url(kit.provider), data=body + b" " * 200, headers=headers
    )
    assert response.status_code == 413
    assert stored_events(app) == []


BATCH_PROVIDERS = [p for p in PROVIDERS if KITS[p].batch]


@pytest.mark.parametrize("provider", BATCH_PROVIDERS)
def test_batch_is_stored_in_one_request(make_app: Any, provider: str) -> None:
    kit = KITS[provider]()
    app = make_app(**kit.config())
    email_id, public_id = send_email(app, to=(ANN, "bob@customer.test", "cy@customer.test"))
    events = [
        one_event(kit, "delivered", public_id, address=ANN),
        one_event(kit, "hard_bounce", public_id, address="BOB@customer.test"),
        one_event(kit, "open", public_id, address=ANN),
    ]
    response = post(app, kit, kit.request(events))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stored"] == 3
    states = recipient_states(app, email_id)
    assert states[ANN][0] == "opened"
    assert states["bob@customer.test"][0] == "bounced"
    assert states["cy@customer.test"][0] == "queued"
    assert email_result(app, email_id) == ("warning", "bounced")


def test_unknown_provider_is_404(make_app: Any) -> None:
    app = make_app()
    response = app.test_client().post(webhook_url("nosuchesp"), data=b"[]")
    assert response.status_code == 404
    assert "sendgrid" in response.get_json()["error"]
