"""Arrival order does not matter: every permutation of each sequence, posted one event per
request, ends in the state the state rules give; a bounce hours after delivery wins."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .kits import KITS, PROVIDERS
from .webhook_helpers import email_result, recipient_states, send_email

#: (sequence of kinds, final recipient status, final email result)
SEQUENCES = [
    (("processed", "delivered", "open"), "opened", "delivered"),
    (("processed", "deferred", "delivered"), "delivered", "delivered"),
    (("processed", "delivered", "hard_bounce"), "bounced", "error"),
    (("processed", "deferred", "dropped"), "dropped", "error"),
]
#: Providers that report every kind of the sequences (Postmark and Mailjet send no
#: "processed" event).
ORDER_PROVIDERS = [
    p
    for p in PROVIDERS
    if {"processed", "delivered", "open", "hard_bounce", "dropped"} <= KITS[p].kinds
]
ANN = "ann@customer.test"


def provider_kind(kit: Any, kind: str) -> str:
    # a provider without a separate "deferred" event reports a delay as a soft bounce
    return kind if kind in kit.kinds else "soft_bounce"


@pytest.mark.parametrize("provider", ORDER_PROVIDERS)
@pytest.mark.parametrize(
    ("sequence", "status", "result"),
    SEQUENCES,
    ids=["open", "deferred-delivered", "bounce", "dropped"],
)
def test_every_permutation_gives_the_same_state(
    make_app: Any, provider: str, sequence: tuple[str, ...], status: str, result: str
) -> None:
    kit = KITS[provider]()
    if "open" in sequence and "open" in kit.per_message:
        status = "delivered"  # an open reported per message changes no recipient
    # every permutation emails ann again: one's bounce must not suppress the next send
    app = kit.start(make_app, MAILDELIVERY_SUPPRESSION="off")
    start = datetime.now(UTC) - timedelta(minutes=30)
    # the events happened in the sequence's order; they arrive in every other order too
    events = {
        kind: (start + timedelta(minutes=10 * i), secrets.token_urlsafe(9))
        for i, kind in enumerate(sequence)
    }
    for permutation in itertools.permutations(sequence):
        email_id, public_id = send_email(app)
        message_id = kit.new_message_id()
        for kind in permutation:
            at, event_id = events[kind]
            event = kit.one_event(
                provider_kind(kit, kind),
                public_id,
                message_id=message_id,
                at=at,
                event_id=f"{event_id}-{email_id}",
            )
            response = kit.post_events(app, [event])
            assert response.status_code == 200, response.get_json()
        assert recipient_states(app, email_id)[ANN][0] == status, permutation
        assert email_result(app, email_id)[0] == result, permutation


@pytest.mark.parametrize("provider", PROVIDERS)
def test_delayed_bounce_turns_delivered_into_error(
    make_app: Any, provider: str, signal_log: Any
) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    now = datetime.now(UTC)
    delivered = kit.one_event(
        "delivered", public_id, at=now - timedelta(hours=2), event_id="ev-delivered"
    )
    assert kit.post_events(app, [delivered]).status_code == 200
    assert email_result(app, email_id) == ("delivered", "")
    signal_log.clear()
    bounce = kit.one_event("hard_bounce", public_id, at=now, event_id="ev-bounce")
    assert kit.post_events(app, [bounce]).status_code == 200
    assert recipient_states(app, email_id)[ANN][0] == "bounced"
    assert email_result(app, email_id) == ("error", "bounced")
    changes = [
        (name, kw.get("old"), kw.get("new")) for name, kw in signal_log if name != "event-received"
    ]
    assert changes == [
        ("recipient-status-changed", "delivered", "bounced"),
        ("email-result-changed", "delivered", "error"),
    ]
    [(_, received)] = [(n, kw) for n, kw in signal_log if n == "event-received"]
    assert received["event"].type == "bounced"
