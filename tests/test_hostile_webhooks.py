"""Hostile webhook input, authenticated or not: odd Unicode, deep nesting, long ids and
out-of-range numbers are repaired or refused with a 4xx, never a 500, and never cost the
genuine events of their batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_maildelivery.events import NormalizedEvent, storable_json
from flask_maildelivery.extension import MailDelivery
from flask_maildelivery.ingest import FULL_EVENT_ID_KEY, ingest_events
from flask_maildelivery.models import Email, Event

from .hostile_helpers import PLACEHOLDER, fields_of, raw_json
from .kits import KITS, PROVIDERS, Kit, SendGridKit, post
from .webhook_helpers import inbox_rows, recipient_states, send_email, stored_events

BOB = "bob@customer.test"
#: NUL and lone surrogates: PostgreSQL refuses the first, no UTF-8 encoder the others.
ODD = "\x00\ud800\udfff"
FFFD = "\ufffd"
BATCHING = [p for p in PROVIDERS if KITS[p].batch]


def _unstorable(text: str) -> bool:
    return any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in text)


def _texts(value: Any) -> list[str]:
    """Every string of a JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (str(k), *_texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _assert_storable(events: list[Event]) -> None:
    for event in events:
        texts = [
            event.provider_event_id,
            event.raw_type,
            *(
                t
                for t in (
                    event.reason,
                    event.address,
                    event.correlation_id,
                    event.provider_message_id,
                    event.smtp_code,
                    event.bounce_type,
                )
                if t is not None
            ),
            *_texts(event.payload),
        ]
        assert not any(_unstorable(t) for t in texts), event


def _with_odd_text(kit: Kit, event: dict[str, Any]) -> dict[str, Any]:
    """``event`` carrying odd Unicode in an extra key, its value and a nested object, as a
    provider (or someone holding its credentials) could send."""
    fields_of(kit, event).update(
        {
            f"note{ODD}": f"a{ODD}b",
            "nested": {f"k{ODD}": [ODD, {"deeper": f"x{ODD}"}]},
        }
    )
    return event


@pytest.mark.parametrize("provider", PROVIDERS)
def test_odd_unicode_in_an_event_is_repaired_and_stored(make_app: Any, provider: str) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=(BOB,))
    event = _with_odd_text(kit, kit.one_event("hard_bounce", public_id, address=BOB))

    response = kit.post_events(app, [event])

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["stored"] == 1
    (stored,) = stored_events(app)
    _assert_storable([stored])
    assert FFFD in json.dumps(stored.payload, ensure_ascii=False)
    assert recipient_states(app, email_id)[BOB][0] == "bounced"


@pytest.mark.parametrize("provider", BATCHING)
def test_odd_unicode_in_one_event_never_costs_its_batch(make_app: Any, provider: str) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("ann@customer.test", BOB))
    genuine = kit.one_event("delivered", public_id)
    odd = _with_odd_text(kit, kit.one_event("hard_bounce", public_id, address=BOB))

    response = kit.post_events(app, [genuine, odd])

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["stored"] == 2
    _assert_storable(stored_events(app))
    states = recipient_states(app, email_id)
    assert states["ann@customer.test"][0] == "delivered"
    assert states[BOB][0] == "bounced"


def test_odd_unicode_in_every_column_is_replaced(make_app: Any) -> None:
    app = make_app()
    email_id, public_id = send_email(app, to=(BOB,))
    at = datetime.now(UTC)
    odd = NormalizedEvent(
        provider=f"test{ODD}",
        provider_event_id=f"evt{ODD}",
        type="bounced",
        raw_type=f"bounce{ODD}",
        occurred_at=at,
        recipient=f"bob{ODD}@customer.test",
        maildelivery_id=f"{public_id}{ODD}",
        provider_message_id=f"<msg{ODD}>",
        reason=f"550 no such{ODD} user",
        smtp_code=f"5{ODD}",
        bounce_type=f"hard{ODD}",
        payload={f"key{ODD}": [f"value{ODD}", {ODD: ODD}]},
    )
    genuine = NormalizedEvent(
        provider="test",
        provider_event_id="evt-genuine",
        type="bounced",
        raw_type="bounce",
        occurred_at=at,
        recipient=BOB,
        maildelivery_id=public_id,
        reason="550 5.1.1 no such user",
        payload={"event": "bounce"},
    )
    with app.app_context():
        report = ingest_events([odd, genuine])
    assert report.stored == 2
    events = stored_events(app)
    _assert_storable(events)
    repaired = next(e for e in events if e.provider_event_id != "evt-genuine")
    assert repaired.provider_event_id == "evt" + FFFD * 3
    assert repaired.reason == f"550 no such{FFFD * 3} user"
    assert repaired.payload == {f"key{FFFD * 3}": [f"value{FFFD * 3}", {FFFD * 3: FFFD * 3}]}
    assert recipient_states(app, email_id)[BOB][0] == "bounced"


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("levels", [65, 100_000], ids=["65-levels", "100000-levels"])
def test_deeply_nested_json_is_refused(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, provider: str, levels: int
) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    fields_of(kit, event)["deep"] = PLACEHOLDER
    with raw_json(monkeypatch, _deep(levels)):
        request = kit.request([event])

    response = post(app, kit, request)

    assert response.status_code == 400, response.get_data(as_text=True)
    assert "nested too deeply" in response.get_json()["error"]
    assert stored_events(app) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_deeply_nested_json_without_credentials_is_refused(make_app: Any, provider: str) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    body = _deep(100_000).encode()
    response = app.test_client().post(
        f"/maildelivery/webhooks/{provider}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert response.is_json


@pytest.mark.parametrize("provider", PROVIDERS)
def test_nesting_within_the_limit_is_stored(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    # deeper than MariaDB's JSON columns hold (32 levels): the depths past 30 are kept as text
    kit = KITS[provider]()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    fields_of(kit, event)["deep"] = PLACEHOLDER
    with raw_json(monkeypatch, _deep(50)):
        request = kit.request([event])

    response = post(app, kit, request)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(stored_events(app)) == 1
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_stored_json_depth_is_bounded() -> None:
    value: Any = "leaf"
    for _ in range(40):
        value = [value]
    stored = storable_json({"deep": value})
    depth, node = 0, stored
    while isinstance(node, dict | list):
        node = next(iter(node.values())) if isinstance(node, dict) else node[0]
        depth += 1
    assert depth <= 31
    assert isinstance(node, str)
    assert json.loads(node)  # the part too deep to store is kept as its JSON text


def test_long_event_ids_never_collide(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app, to=("ann@customer.test", BOB))
    shared = "x" * 255
    first = kit.one_event("delivered", public_id, event_id=shared + "-first")
    second = kit.one_event("hard_bounce", public_id, address=BOB, event_id=shared + "-second")

    response = kit.post_events(app, [first, second])

    assert response.get_json() == {"stored": 2, "duplicates": 0, "unmatched": 0}
    events = stored_events(app)
    assert {e.payload[FULL_EVENT_ID_KEY] for e in events} == {
        shared + "-first",
        shared + "-second",
    }
    assert all(e.provider_event_id.startswith("sha256:") for e in events)
    assert all(len(e.provider_event_id) <= 255 for e in events)
    assert recipient_states(app, email_id) == {
        "ann@customer.test": ("delivered", None),
        BOB: ("bounced", "hard"),
    }
    # the same long id again is a repeat, not a new event
    again = kit.post_events(app, [second])
    assert again.get_json() == {"stored": 0, "duplicates": 1, "unmatched": 0}


def test_long_provider_message_ids_match_their_email(make_app: Any) -> None:
    app = make_app(MAILDELIVERY_TRANSPORT="tests.webhook_helpers:KnownIdTransport")
    shared = "m" * 255
    with app.app_context():
        send = MailDelivery.state(app).extension.send
        emails = [
            send(
                subject="Invoice",
                to=[BOB],
                text="Hello",
                metadata={"provider_message_id": shared + suffix},
            ).id
            for suffix in ("-first", "-second")
        ]
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        stored_ids = list(session.scalars(sa.select(Email.provider_message_id).order_by(Email.id)))
    assert len(set(stored_ids)) == 2
    assert all(i is not None and len(i) <= 255 for i in stored_ids)
    event = NormalizedEvent(
        provider="test",
        provider_event_id="evt-second",
        type="bounced",
        raw_type="bounce",
        occurred_at=datetime.now(UTC),
        recipient=BOB,
        provider_message_id=shared + "-second",
        reason="550 no such user",
    )
    with app.app_context():
        report = ingest_events([event])
    assert report.unmatched == 0
    assert recipient_states(app, emails[0])[BOB][0] != "bounced"
    assert recipient_states(app, emails[1])[BOB][0] == "bounced"


def test_a_long_correlation_id_matches_nothing_and_is_stored(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    send_email(app)
    event = kit.one_event("delivered", "c" * 300)
    response = kit.post_events(app, [event])
    assert response.get_json() == {"stored": 1, "duplicates": 0, "unmatched": 1}
    (stored,) = stored_events(app)
    assert stored.correlation_id is not None
    assert len(stored.correlation_id) <= 64


@pytest.mark.parametrize(
    "timestamp",
    ["1" + "0" * 30, "1e308", "-1e308", "1" + "0" * 400, '"1e999"', '"nan"', "-62135596801"],
)
def test_epoch_timestamps_out_of_range_are_refused(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, timestamp: str
) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    event["timestamp"] = PLACEHOLDER
    with raw_json(monkeypatch, timestamp):
        request = kit.request([event])
    response = post(app, kit, request)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert stored_events(app) == []


def test_an_integer_too_large_for_a_timestamp_is_set_aside_in_a_batch(make_app: Any) -> None:
    # the batch takes the schema's full check, which once met the integer unguarded; the
    # event is kept aside as a failed inbox row, the rest of its batch is applied
    kit = KITS["mailjet"]()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    odd = kit.one_event("hard_bounce", public_id)
    odd["time"] = 10**300
    odd["email"] = 10**300
    response = kit.post_events(app, [kit.one_event("delivered", public_id), odd])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["unusable"] == 1
    assert [e.type for e in stored_events(app)] == ["delivered"]
    assert [row.status for row in inbox_rows(app)] == ["applied", "failed"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_numbers_json_does_not_have_are_refused(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, provider: str, number: str
) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    fields_of(kit, event)["score"] = PLACEHOLDER
    with raw_json(monkeypatch, number):
        request = kit.request([event])
    response = post(app, kit, request)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert stored_events(app) == []


def test_a_huge_integer_is_stored(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    event["score"] = PLACEHOLDER
    with raw_json(monkeypatch, "9" * 400):
        request = kit.request([event])
    response = post(app, kit, request)
    assert response.status_code == 200, response.get_data(as_text=True)
    (stored,) = stored_events(app)
    assert stored.payload["score"] == int("9" * 400)


def test_an_iso_date_past_the_last_utc_date_is_refused(make_app: Any) -> None:
    kit = KITS["postmark"]()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    event["DeliveredAt"] = "9999-12-31T23:59:59-05:00"
    response = kit.post_events(app, [event])
    assert response.status_code == 400, response.get_data(as_text=True)
    assert stored_events(app) == []


# property tests: anything a provider's credentials could carry is a 2xx or a 4xx, and the
# genuine events of a batch are stored whatever comes with them

#: Text with what databases refuse mixed in: NUL and lone surrogates.
odd_text = st.lists(
    st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d"])),
    max_size=12,
).map("".join)


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Arrays and objects of ``children`` (a named function: Hypothesis reads its source to
    check that it recurses, which it cannot do for a lambda spread over several lines)."""
    return st.one_of(
        st.lists(children, max_size=4), st.dictionaries(odd_text, children, max_size=4)
    )


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(allow_nan=False, allow_infinity=False),
        odd_text,
    ),
    _json_containers,
    max_leaves=16,
)
#: JSON text :func:`json.dumps` does not write: deep nesting, numbers JSON lacks.
raw_fragments = st.one_of(
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=200).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(["NaN", "-Infinity", "1e999", "-1e-999", "1" * 5000, "0." + "1" * 400]),
)
FUZZ = settings(
    max_examples=12,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def fuzzed(make_app: Any, provider: str) -> tuple[Kit, Any]:
    """The provider's kit and an app with its credentials, shared by the examples of one
    property test; a 500 is answered as a 500 (not raised into the test), so it is seen
    as a status."""
    kit = KITS[provider]()
    return kit, kit.start(make_app, PROPAGATE_EXCEPTIONS=False)


def _genuine_applied(app: Any, email_id: int) -> bool:
    return recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(extra=st.dictionaries(odd_text.map("x-".__add__), json_values, max_size=4))
def test_any_extra_fields_never_cost_the_event_or_its_batch(
    fuzzed: tuple[Kit, Any], extra: dict[str, Any]
) -> None:
    kit, app = fuzzed
    email_id, public_id = send_email(app, to=("ann@customer.test", BOB))
    genuine = kit.one_event("delivered", public_id)
    hostile = kit.one_event("hard_bounce", public_id, address=BOB)
    fields_of(kit, hostile).update(extra)
    if kit.batch:
        response = kit.post_events(app, [genuine, hostile])
    else:
        fields_of(kit, genuine).update(extra)
        response = kit.post_events(app, [genuine])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _genuine_applied(app, email_id)


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(value=json_values, field=st.sampled_from(["replace", "add"]))
def test_any_value_in_any_field_is_a_2xx_or_a_4xx(
    fuzzed: tuple[Kit, Any], value: Any, field: str
) -> None:
    kit, app = fuzzed
    email_id, public_id = send_email(app, to=("ann@customer.test", BOB))
    genuine = kit.one_event("delivered", public_id)
    hostile = kit.one_event("hard_bounce", public_id, address=BOB)
    fields = fields_of(kit, hostile)
    for key in list(fields) if field == "replace" else ["added"]:
        fields[key] = value
    events = [genuine, hostile] if kit.batch else [hostile]
    response = kit.post_events(app, events)
    assert response.status_code < 500, response.get_data(as_text=True)
    if kit.batch and response.status_code == 200:
        assert _genuine_applied(app, email_id)


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(fragment=raw_fragments)
def test_any_raw_json_is_a_2xx_or_a_4xx(
    fuzzed: tuple[Kit, Any], monkeypatch: pytest.MonkeyPatch, fragment: str
) -> None:
    kit, app = fuzzed
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    fields_of(kit, event)["raw"] = PLACEHOLDER
    with raw_json(monkeypatch, fragment):
        request = kit.request([event])
    response = post(app, kit, request)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert (response.status_code == 200) == _genuine_applied(app, email_id)


@pytest.mark.parametrize("provider", PROVIDERS)
@FUZZ
@given(body=st.one_of(st.binary(max_size=200), json_values.map(json.dumps).map(str.encode)))
def test_any_body_without_credentials_is_a_4xx(
    fuzzed: tuple[Kit, Any], provider: str, body: bytes
) -> None:
    _, app = fuzzed
    response = app.test_client().post(
        f"/maildelivery/webhooks/{provider}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
