"""The state rules: property-based (any order, any repetition, same state) and by example."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_maildelivery.state import (
    ATTENTION_RESULTS,
    ATTENTION_STATUSES,
    EMAIL_STATUSES,
    FAILURE_STATUSES,
    HOOK_PROVIDER,
    RANK,
    STATUS_ORDER,
    SendAttempt,
    StatusFact,
    email_result,
    email_status,
    folds_incrementally,
    needs_attention,
    recipient_state,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)

facts = st.builds(
    StatusFact,
    status=st.sampled_from([*STATUS_ORDER, "unknown"]),
    at=st.integers(min_value=0, max_value=10_000).map(lambda s: T0 + timedelta(seconds=s)),
    reason=st.one_of(st.none(), st.text(max_size=5)),
    tiebreak=st.text(max_size=4),
)


def _same_state_in_any_order_and_repetition(events: list[StatusFact], rnd: random.Random) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    repeated = shuffled + [rnd.choice(events) for _ in range(3)] if events else shuffled
    assert recipient_state(events) == recipient_state(shuffled) == recipient_state(repeated)


@given(st.lists(facts, max_size=12), st.randoms())
def test_any_order_and_any_repetition_give_the_same_state(
    events: list[StatusFact], rnd: random.Random
) -> None:
    _same_state_in_any_order_and_repetition(events, rnd)


@given(st.lists(facts, max_size=8), st.lists(facts, max_size=8))
def test_folding_incrementally_equals_folding_everything(
    first: list[StatusFact], then: list[StatusFact]
) -> None:
    # what ingest does: fold new events into the current state
    current = recipient_state(first)
    assert recipient_state([current, *then]).status == recipient_state([*first, *then]).status


@given(st.lists(facts, min_size=1, max_size=10))
def test_state_is_the_highest_ranked_known_status(events: list[StatusFact]) -> None:
    known = [e.status for e in events if e.status != "unknown"]
    expected = max(known, key=RANK.__getitem__) if known else "queued"
    assert recipient_state(events).status == expected


#: The SPEC's order, written out as it reads ("State rules").
SPEC_ORDER = [
    "queued",
    "processed",
    "deferred",
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
    "bounced",
    "dropped",
    "suppressed",
    "failed",
]


def test_the_status_order_is_the_specs() -> None:
    assert list(STATUS_ORDER) == SPEC_ORDER


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        (["processed", "delivered", "opened"], "opened"),
        (["processed", "deferred", "delivered"], "delivered"),
        (["processed", "delivered", "bounced"], "bounced"),
        (["processed", "deferred", "dropped"], "dropped"),
        (["delivered", "opened", "clicked"], "clicked"),
        (["delivered", "unknown"], "delivered"),
    ],
)
def test_sequences(sequence: list[str], final: str) -> None:
    events = [StatusFact(s, T0 + timedelta(minutes=i)) for i, s in enumerate(sequence)]
    assert recipient_state(events).status == final
    assert recipient_state(reversed(events)).status == final


def test_a_bounce_hours_after_delivery_wins_and_keeps_its_reason() -> None:
    delivered = StatusFact("delivered", T0, reason="250 ok")
    bounce = StatusFact(
        "bounced", T0 + timedelta(hours=2), reason="550 no such user", smtp_code="550"
    )
    state = recipient_state([delivered, bounce])
    assert (state.status, state.reason, state.smtp_code) == ("bounced", "550 no such user", "550")


def test_between_equal_statuses_the_later_event_decides_the_reason() -> None:
    early = StatusFact("deferred", T0, reason="421 try later")
    late = StatusFact("deferred", T0 + timedelta(minutes=5), reason="451 greylisted")
    assert recipient_state([late, early]).reason == "451 greylisted"
    assert recipient_state([early, late]).reason == "451 greylisted"


def test_no_events_means_queued() -> None:
    assert recipient_state([]).status == "queued"
    assert recipient_state([StatusFact("unknown", T0)]).status == "queued"


@pytest.mark.parametrize(
    ("statuses", "result"),
    [
        (["queued", "queued"], "queued"),
        (["processed", "queued"], "processed"),
        (["deferred", "delivered"], "processed"),
        (["delivered", "opened", "clicked"], "delivered"),
        (["delivered", "unsubscribed", "complained"], "delivered"),
        (["delivered", "bounced"], "warning"),
        (["queued", "dropped"], "warning"),
        (["bounced"], "error"),
        (["bounced", "dropped", "failed"], "error"),
        (["suppressed", "suppressed"], "error"),
        (["suppressed", "opened"], "warning"),
        (["complained", "complained"], "delivered"),
        ([], "queued"),
    ],
)
def test_email_result(statuses: list[str], result: str) -> None:
    assert email_result(statuses) == result


def test_a_refused_send_is_failed_whatever_the_recipients() -> None:
    assert email_result(["failed", "failed"], send_refused=True) == "failed"


@given(st.lists(st.sampled_from(STATUS_ORDER), min_size=1, max_size=6))
def test_result_counts(statuses: list[str]) -> None:
    failures = sum(s in ("bounced", "dropped", "suppressed", "failed") for s in statuses)
    result = email_result(statuses)
    assert (result == "error") == (failures == len(statuses))
    assert (result == "warning") == (0 < failures < len(statuses))


@pytest.mark.parametrize(
    ("statuses", "status"),
    [
        (["opened", "bounced", "dropped", "deferred"], "bounced"),
        (["opened", "dropped", "deferred"], "dropped"),
        (["opened", "deferred"], "deferred"),
        (["clicked", "delivered"], "opened"),
        (["delivered", "queued"], ""),
        # a To refused at send time, a Cc who opened: the failure shows, not the open
        (["failed", "opened"], "failed"),
        (["opened", "dropped", "failed"], "dropped"),
        (["failed", "suppressed"], "failed"),
        (["clicked", "suppressed"], "suppressed"),
        (["complained", "clicked"], "complained"),
        (["suppressed", "complained"], "suppressed"),
        (["deferred", "complained"], "complained"),
        (["unsubscribed", "delivered"], ""),
        (["unsubscribed", "opened"], "opened"),
    ],
)
def test_email_status(statuses: list[str], status: str) -> None:
    assert email_status(statuses) == status


def spec_email_status(statuses: list[str]) -> str:
    """The email status as the SPEC words it: "the first of bounced, dropped, failed,
    suppressed, complained, deferred that any recipient has, else opened if any opened or
    clicked, else empty"."""
    for name in ("bounced", "dropped", "failed", "suppressed", "complained", "deferred"):
        if any(status == name for status in statuses):
            return name
    if any(status in ("opened", "clicked") for status in statuses):
        return "opened"
    return ""


def spec_email_result(statuses: list[str]) -> str:
    """The email result as the SPEC words it, for a send that was not refused and at least
    one recipient: failures are bounced, dropped, suppressed or failed recipients, successes
    those delivered or above but below bounced in the status order."""
    n = len(statuses)
    position = SPEC_ORDER.index
    failures = sum(status in ("bounced", "dropped", "suppressed", "failed") for status in statuses)
    successes = sum(
        position("delivered") <= position(status) < position("bounced") for status in statuses
    )
    if failures == n:
        return "error"
    if failures > 0:
        return "warning"
    if successes == n:
        return "delivered"
    if any(status in ("processed", "deferred") for status in statuses):
        return "processed"
    return "queued"


def test_every_combination_of_recipient_statuses() -> None:
    # both rules depend only on which statuses are present: the 4096 sets cover every email
    for size in range(len(SPEC_ORDER) + 1):
        for present in itertools.combinations(SPEC_ORDER, size):
            statuses = list(present)
            assert email_status(statuses) == spec_email_status(statuses), present
            if statuses:
                assert email_result(statuses) == spec_email_result(statuses), present


recipient_statuses = st.lists(st.sampled_from(SPEC_ORDER), min_size=1, max_size=10)


@given(recipient_statuses)
def test_email_status_and_result_follow_the_spec_text(statuses: list[str]) -> None:
    assert email_status(statuses) == spec_email_status(statuses)
    assert email_result(statuses) == spec_email_result(statuses)


@given(recipient_statuses, st.randoms())
def test_email_status_and_result_ignore_order_and_repetition(
    statuses: list[str], rnd: random.Random
) -> None:
    shuffled = list(statuses)
    rnd.shuffle(shuffled)
    repeated = shuffled + [rnd.choice(statuses) for _ in range(3)]
    assert email_status(statuses) == email_status(shuffled) == email_status(repeated)
    assert email_result(statuses) == email_result(shuffled) == email_result(repeated)


@given(recipient_statuses)
def test_a_failed_or_complaining_recipient_never_shows_a_success(statuses: list[str]) -> None:
    if any(s in ("failed", "complained") for s in statuses):
        assert email_status(statuses) not in ("opened", "")


def test_the_vocabularies_hold_every_value_the_rules_give() -> None:
    assert set(EMAIL_STATUSES) == {spec_email_status([s]) for s in SPEC_ORDER}
    assert {"bounced", "dropped", "suppressed", "failed"} == FAILURE_STATUSES


def test_needs_attention() -> None:
    assert needs_attention("warning", "")
    assert needs_attention("processed", "deferred")
    assert needs_attention("delivered", "complained")
    assert needs_attention("warning", "failed")
    assert needs_attention("error", "suppressed")
    assert not needs_attention("delivered", "opened")
    assert not needs_attention("delivered", "")
    assert {"failed", "warning", "error"} == ATTENTION_RESULTS
    assert {"bounced", "dropped", "failed", "suppressed", "complained", "deferred"} == (
        ATTENTION_STATUSES
    )


@given(st.lists(facts, max_size=12))
def test_the_state_is_the_fact_with_the_highest_key(events: list[StatusFact]) -> None:
    known = [e for e in events if e.status in STATUS_ORDER]
    expected = max(known, key=StatusFact.key) if known else StatusFact("queued")
    assert recipient_state(events) == expected


# -- the package's own send attempts ------------------------------------------------------


def _attempt(number: int, accepted: bool, minutes: int = 0) -> StatusFact:
    attempt = SendAttempt(number, accepted)
    return StatusFact(
        attempt.status,
        T0 + timedelta(minutes=minutes),
        reason=attempt.raw_type,
        tiebreak=f"{HOOK_PROVIDER}:{attempt.raw_type}",
        attempt=attempt,
    )


def test_an_accepted_attempt_supersedes_the_earlier_failed_attempts() -> None:
    failed_1, failed_2 = _attempt(1, False, 0), _attempt(2, False, 1)
    accepted = _attempt(3, True, 5)
    assert recipient_state([failed_1, failed_2]).status == "deferred"
    state = recipient_state([failed_2, accepted, failed_1])
    assert (state.status, state.reason) == ("processed", "accepted-3")


def test_a_providers_delay_still_counts_after_an_accepted_attempt() -> None:
    provider_delay = StatusFact("deferred", T0 + timedelta(minutes=9), reason="421 later")
    facts = [_attempt(1, False, 0), _attempt(2, True, 5), provider_delay]
    assert recipient_state(facts) == provider_delay
    delivered = StatusFact("delivered", T0 + timedelta(minutes=20), reason="250 ok")
    assert recipient_state([*facts, delivered]) == delivered
    # a failure the accepting attempt itself brought (a refused recipient) counts too
    refused = StatusFact("failed", T0 + timedelta(minutes=5), reason="550 unknown user")
    assert recipient_state([_attempt(1, False), refused]) == refused


def test_a_later_failed_attempt_is_not_superseded() -> None:
    # only attempts made before the accepted one stop counting
    state = recipient_state([_attempt(2, True, 0), _attempt(3, False, 5)])
    assert state.status == "deferred"


@pytest.mark.parametrize(
    ("provider", "event_type", "raw_type", "expected"),
    [
        (HOOK_PROVIDER, "deferred", "attempt-1", SendAttempt(1, False)),
        (HOOK_PROVIDER, "processed", "accepted-12", SendAttempt(12, True)),
        ("sendgrid", "deferred", "attempt-1", None),
        ("dsn", "deferred", "delayed", None),
        (HOOK_PROVIDER, "failed", "send-failed", None),
        (HOOK_PROVIDER, "failed", "smtp-refused", None),
        (HOOK_PROVIDER, "processed", "attempt-2", None),
        (HOOK_PROVIDER, "deferred", "attempt-x", None),
        (HOOK_PROVIDER, "deferred", "attempt-\u0663", None),
        (HOOK_PROVIDER, "deferred", None, None),
    ],
)
def test_which_events_record_a_send_attempt(
    provider: str, event_type: str, raw_type: str | None, expected: SendAttempt | None
) -> None:
    assert SendAttempt.of_event(provider, event_type, raw_type) == expected
    if expected is not None:
        assert (expected.status, expected.raw_type) == (event_type, raw_type)


attempt_facts = st.builds(
    _attempt,
    number=st.integers(min_value=1, max_value=5),
    accepted=st.booleans(),
    minutes=st.integers(min_value=0, max_value=100),
)
any_facts = st.one_of(facts, attempt_facts)


@given(st.lists(any_facts, max_size=12), st.randoms())
def test_with_send_attempts_any_order_and_repetition_give_the_same_state(
    events: list[StatusFact], rnd: random.Random
) -> None:
    _same_state_in_any_order_and_repetition(events, rnd)


@given(st.lists(st.lists(any_facts, max_size=4), max_size=5))
def test_folding_batches_as_ingest_does_equals_the_state_of_all_events(
    batches: list[list[StatusFact]],
) -> None:
    # ingest folds a batch into the current state, or, when the batch records a send
    # attempt, computes the state from every stored event
    stored: list[StatusFact] = []
    current = recipient_state([])
    for batch in batches:
        stored += batch
        if folds_incrementally(batch):
            current = recipient_state([current, *batch])
        else:
            current = recipient_state(stored)
    assert current.status == recipient_state(stored).status
