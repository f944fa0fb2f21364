"""The webhook inbox under gunicorn: answer latency and applied throughput.

gunicorn serves the webhook endpoint (``tests/gunicorn_app.py``) with 4 sync worker
processes on PostgreSQL; 8 threads post signed SendGrid batches of 1,000 events each at
once (every event new, one per recipient of 2,000 emails of 5 recipients, and again). For
each ``MAILDELIVERY_INBOX_APPLY`` mode (``inline``: applied before the answer;
``after_response``: applied once the answer is sent) it prints the answer latency (p50 and
p99, as the posters see it, waiting for a free worker included) and the applied throughput
(events per second from the first request to the last event applied, read from the inbox
rows' ``applied_at``).

The direct path, for comparison, has no switch in the endpoint: it is measured in this
process by calling ``ingest_events`` on the same batches, parsed beforehand (no HTTP, no
signature check, no inbox), from 8 threads at once.

Targets: p99 answer latency at most 50 ms per 1,000-event batch; applied throughput not
below the direct path's.

    .venv/bin/python benchmarks/webhook_inbox.py
    .venv/bin/python benchmarks/webhook_inbox.py --url postgresql+psycopg://postgres@127.0.0.1:5432/md_inbox_bench

Its database is created when the server does not have it (its tables are dropped and
created again).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from database_setup import create_database_if_missing
from webhook_ingest import reset, seed, sendgrid_events

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_maildelivery.context import get_state
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import Event, WebhookInbox, WebhookToken
from flask_maildelivery.webhooks.base import WebhookRequest
from tests.gunicorn_app import create_app, serve
from tests.kits import SendGridKit

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/md_inbox_bench"
POSTERS = 8
WORKERS = 4
BATCH = 1_000
ENDPOINT = "/maildelivery/webhooks/sendgrid"


def batches_of(events: list[dict[str, Any]], count: int) -> list[list[dict[str, Any]]]:
    """``count`` batches of :data:`BATCH` events, cycling over the recipients; every event
    has an id of its own."""
    batches = []
    for n in range(count):
        batch = []
        for i in range(BATCH):
            event = dict(events[(n * BATCH + i) % len(events)])
            event["sg_event_id"] = f"bench-{n}-{i}"
            batch.append(event)
        batches.append(batch)
    return batches


def clear(engine: sa.Engine) -> None:
    """Back to the seeded state: no events, statuses reset, an empty inbox."""
    reset(engine)
    with engine.begin() as connection:
        connection.execute(sa.delete(WebhookInbox))
        connection.execute(sa.delete(WebhookToken))


def post_batches(
    base_url: str, requests: list[tuple[bytes, dict[str, str]]]
) -> tuple[list[float], float]:
    """Post ``requests`` from :data:`POSTERS` threads at once; the answer latencies (s) and
    the wall-clock time of the first request."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(POSTERS + 1)
    lock = threading.Lock()

    def poster(mine: list[tuple[bytes, dict[str, str]]]) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=120) as client:
                barrier.wait(timeout=60)
                for body, headers in mine:
                    start = time.perf_counter()
                    response = client.post(ENDPOINT, content=body, headers=headers)
                    elapsed = time.perf_counter() - start
                    assert response.status_code == 200, response.text
                    with lock:
                        latencies.append(elapsed)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=poster, args=(requests[n::POSTERS],)) for n in range(POSTERS)
    ]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    started = datetime.now(UTC)
    for thread in threads:
        thread.join(timeout=600)
    if errors:
        raise errors[0]
    return latencies, started.timestamp()


def last_applied(engine: sa.Engine, count: int, timeout: float = 600) -> float:
    """Wait until ``count`` inbox rows are applied; the time of the last apply (epoch s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            applied, last = connection.execute(
                sa.select(sa.func.count(), sa.func.max(WebhookInbox.applied_at)).where(
                    WebhookInbox.status == "applied"
                )
            ).one()
            failed = connection.scalar(
                sa.select(sa.func.count()).where(WebhookInbox.status == "failed")
            )
        if failed:
            raise RuntimeError(f"{failed} inbox rows failed")
        if applied == count:
            return float(last.replace(tzinfo=last.tzinfo or UTC).timestamp())
        time.sleep(0.05)
    raise RuntimeError(f"fewer than {count} inbox rows applied within {timeout} s")


def event_count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(Event)) or 0)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"PostgreSQL URL ({DEFAULT_URL})")
    parser.add_argument(
        "--batches", type=int, default=48, help="1,000-event batches per run (default 48)"
    )
    args = parser.parse_args()
    create_database_if_missing(args.url)
    kit = SendGridKit(key=ec.generate_private_key(ec.SECP256R1()))
    keys = {"MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": SendGridKit.public_b64(kit.key)}
    app = create_app(args.url, **keys)
    with app.app_context():
        engine = get_state(app).db.engine
    events = sendgrid_events(seed(engine))
    batches = batches_of(events, args.batches)
    total = BATCH * len(batches)
    print(
        f"{len(batches)} signed SendGrid batches of {BATCH:,} events, {POSTERS} posters, "
        f"gunicorn {WORKERS} sync workers, PostgreSQL"
    )
    results: dict[str, dict[str, float]] = {}
    for mode in ("inline", "after_response"):
        clear(engine)
        requests = [kit.request(batch) for batch in batches]  # signing is the sender's cost
        environment = {**keys, "MAILDELIVERY_HOST_DATABASE_URL": args.url}
        environment["MAILDELIVERY_INBOX_APPLY"] = mode
        with serve(environment, workers=WORKERS) as base_url:
            latencies, started = post_batches(base_url, requests)
            finished = last_applied(engine, len(batches))
        assert event_count(engine) == total, (event_count(engine), total)
        rate = total / (finished - started)
        results[mode] = {
            "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "rate": rate,
        }
        print(
            f"  inbox, {mode:<15} answer p50 {results[mode]['p50']:7.0f} ms   "
            f"p99 {results[mode]['p99']:7.0f} ms   applied {rate:8,.0f} events/s"
        )

    # the direct path: ingest_events on the parsed batches, 8 threads in this process
    clear(engine)
    adapter = get_state(app).webhook_adapters["sendgrid"]
    parsed = [
        adapter.parse(WebhookRequest(body=json.dumps(b).encode(), headers={})) for b in batches
    ]
    barrier = threading.Barrier(POSTERS + 1)
    errors: list[BaseException] = []

    def applier(mine: list[Any]) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=60)
                for batch_events in mine:
                    ingest_events(batch_events, app)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=applier, args=(parsed[n::POSTERS],)) for n in range(POSTERS)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    start = time.perf_counter()
    for thread in threads:
        thread.join(timeout=600)
    direct_s = time.perf_counter() - start
    if errors:
        raise errors[0]
    assert event_count(engine) == total
    direct = total / direct_s
    print(
        f"  direct ingest_events (in-process, 8 threads, parsed beforehand; the endpoint has "
        f"no switch to bypass the inbox): {direct:8,.0f} events/s"
    )
    ok = True
    for mode, figures in results.items():
        latency_ok = figures["p99"] <= 50
        rate_ok = figures["rate"] >= direct
        ok = ok and latency_ok and rate_ok
        print(
            f"  {mode}: p99 <= 50 ms {'ok' if latency_ok else 'MISSED'}; "
            f"applied >= direct {'ok' if rate_ok else 'MISSED'} "
            f"({figures['rate'] / direct:.2f}x)"
        )
    with app.app_context():
        get_state(app).db.session.remove()
        get_state(app).sessions.remove()
    engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
