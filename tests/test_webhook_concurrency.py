"""Concurrent webhook requests: 8 threads post overlapping batches for the same recipients;
the final state is exactly what the state rules give for the union of the events, each
stored once. Runs on every database: row locks on PostgreSQL (CI always lists a PostgreSQL
URL) and MariaDB (with locking reads under REPEATABLE READ), the database's write lock on
SQLite."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_maildelivery.state import StatusFact, email_result, email_status, recipient_state

from .kits import EXPECTED_TYPES, SendGridKit, webhook_url
from .webhook_helpers import email_result as stored_result
from .webhook_helpers import recipient_states, send_email, stored_events

THREADS = 8
BATCHES_PER_THREAD = 4
KINDS = [
    "processed",
    "deferred",
    "delivered",
    "open",
    "click",
    "hard_bounce",
    "dropped",
    "complaint",
]


def test_concurrent_overlapping_batches(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    rng = random.Random(20261127)
    addresses = tuple(f"r{i}@customer.test" for i in range(4))
    emails = [send_email(app, to=addresses) for _ in range(3)]
    start = datetime.now(UTC) - timedelta(hours=1)
    pool: list[dict[str, Any]] = []
    for email_index, (_, public_id) in enumerate(emails):
        for address in addresses:
            for kind in rng.sample(KINDS, 4):
                pool.append(
                    kit.one_event(
                        kind,
                        public_id,
                        at=start + timedelta(seconds=rng.randrange(3600)),
                        address=address,
                        event_id=f"ev-{email_index}-{address}-{kind}",
                    )
                )
    plans = [[rng.sample(pool, 20) for _ in range(BATCHES_PER_THREAD)] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def worker(batches: list[list[dict[str, Any]]]) -> None:
        try:
            client = app.test_client()
            barrier.wait()
            for batch in batches:
                body, headers = kit.request(batch)
                statuses.append(
                    client.post(webhook_url("sendgrid"), data=body, headers=headers).status_code
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert statuses == [200] * THREADS * BATCHES_PER_THREAD

    posted = {e["sg_event_id"]: e for plan in plans for batch in plan for e in batch}
    assert sorted(e.provider_event_id for e in stored_events(app)) == sorted(posted)
    for email_id, public_id in emails:
        expected_statuses = []
        actual = recipient_states(app, email_id)
        for address in addresses:
            facts = [
                StatusFact(
                    EXPECTED_TYPES[kind_of(e)],
                    datetime.fromtimestamp(e["timestamp"], UTC),
                    tiebreak=f"sendgrid:{e['sg_event_id']}",
                )
                for e in posted.values()
                if e["maildelivery_id"] == public_id and e["email"] == address
            ]
            expected = recipient_state(facts).status
            expected_statuses.append(expected)
            assert actual[address][0] == expected, (address, facts)
        assert stored_result(app, email_id) == (
            email_result(expected_statuses),
            email_status(expected_statuses),
        )


def kind_of(event: dict[str, Any]) -> str:
    """The test kind of a SendGrid event built by the kit."""
    return {
        "processed": "processed",
        "deferred": "deferred",
        "delivered": "delivered",
        "open": "open",
        "click": "click",
        "bounce": "hard_bounce",
        "dropped": "dropped",
        "spamreport": "complaint",
    }[event["event"]]
