"""The load test: queued sends through Celery workers against the same sends done in the
request, in one run.

A minimal host (``load_host.py``) runs under gunicorn (4 sync worker processes) on
PostgreSQL; an aiosmtpd sink on loopback receives the mail. Two phases:

1. **baseline** (``MAILDELIVERY_QUEUE = None``): 8 concurrent clients call the host's send
   endpoint (3 recipients per email); each answer comes once the SMTP server accepted the
   message. Printed: answer p50/p99 and emails per second.
2. **queue** (``MAILDELIVERY_QUEUE = "celery"``): Celery workers (2 processes, prefork) on
   Redis send; the 8 clients queue the emails while a simulator posts signed SendGrid events
   for them (delivered for the first recipient, a hard bounce for the second, delivered then
   open for the third, in batches of 500 events). Printed: answer p50/p99, emails per second
   through the workers (from the first send to the last message at the sink) and events
   applied per second (from the first post to the last inbox row applied).

Then it checks that every queued email reached the sink exactly once (by its
``X-MailDelivery-ID``) and that every recipient has the state its events imply, and prints
the counts of lost, duplicated and wrong ones. Targets: queued answer p99 at most 20 ms;
worker throughput at least 3 times the baseline's emails per second; 0 lost, 0 duplicated.

    .venv/bin/python benchmarks/load.py --emails 20000 --baseline-emails 2000
    .venv/bin/python benchmarks/load.py --emails 2000 --baseline-emails 500   # a quick run

Its PostgreSQL database is created when missing; its tables are dropped and created again.
Redis (127.0.0.1:6379) must be running; the run uses a queue and key prefix of its own, whose
keys are deleted at the end (``processes.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric import ec
from database_setup import create_database_if_missing
from processes import (
    celery_workers,
    drop_broker_keys,
    host_environment,
    load_host,
    run_queue,
    wait_until,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_maildelivery.models import Base, Email, Recipient, WebhookInbox
from tests.gunicorn_app import free_port
from tests.kits import SendGridKit

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/md_load_bench"
CLIENTS = 8
WORKERS = 4
EVENT_BATCH = 500
#: What each recipient's events say, and the status they imply.
RECIPIENTS = (
    ("pay", ("delivered",), "delivered"),
    ("old", ("hard_bounce",), "bounced"),
    ("hr", ("delivered", "open"), "opened"),
)
_CORRELATION = re.compile(rb"X-MailDelivery-ID: ([0-9a-f]{32})")


class Sink:
    """aiosmtpd handler counting the messages it accepts by correlation id."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.last_at = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = _CORRELATION.search(envelope.content)
        with self.lock:
            self.received[found.group(1).decode() if found else "?"] += 1
            self.last_at = time.perf_counter()
        return "250 OK"

    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())


def send_all(url: str, count: int, sent: list[dict[str, Any]]) -> list[float]:
    """``count`` sends from :data:`CLIENTS` threads; the answers' latencies (ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    numbers = iter(range(count))
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                body = {
                    "subject": f"Payslip {n}",
                    "to": [f"{prefix}{n}@staff.test" for prefix, _, _ in RECIPIENTS],
                    "text": f"Payslip number {n} is attached.",
                }
                start = time.perf_counter()
                response = http.post("/send", json=body)
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                        continue
                    latencies.append(elapsed)
                    sent.append({"n": n, **response.json()})

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} send(s) failed, first: {errors[0]}")
    return latencies


def simulate_events(
    url: str, kit: SendGridKit, sent: list[dict[str, Any]], done: threading.Event
) -> tuple[int, float]:
    """Post SendGrid events for the emails sent so far, in batches, until ``done`` and all
    are covered; return (events posted, time of the first post)."""
    posted = 0
    covered = 0
    first = 0.0
    pending: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            finished = done.is_set()
            emails = sent[covered:]
            covered += len(emails)
            for email in emails:
                for prefix, kinds, _ in RECIPIENTS:
                    for kind in kinds:
                        pending.append(
                            kit.one_event(
                                kind, email["public_id"], address=f"{prefix}{email['n']}@staff.test"
                            )
                        )
            while len(pending) >= EVENT_BATCH or (finished and pending):
                batch, pending = pending[:EVENT_BATCH], pending[EVENT_BATCH:]
                body, headers = kit.request(batch)
                first = first or time.perf_counter()
                response = http.post(
                    "/maildelivery/webhooks/sendgrid", content=body, headers=headers
                )
                if response.status_code != 200:
                    raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")
                posted += len(batch)
            if finished and covered == len(sent):
                return posted, first
            time.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def reset(engine: sa.Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL URL of the run's database")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--emails", type=int, default=20_000, help="queued emails")
    parser.add_argument(
        "--baseline-emails", type=int, default=2_000, help="emails sent in the request"
    )
    parser.add_argument("--celery-workers", type=int, default=2, help="Celery worker processes")
    args = parser.parse_args()

    create_database_if_missing(args.url)
    engine = sa.create_engine(args.url)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    key = ec.generate_private_key(ec.SECP256R1())
    kit = SendGridKit(key=key)
    queue = run_queue("load")
    env = host_environment(
        args.url,
        sendgrid_key=SendGridKit.public_b64(key),
        broker=args.broker,
        queue=queue,
        smtp_port=controller.port,
    )
    figures: dict[str, Any] = {}
    try:
        # 1. baseline: sent in the request
        reset(engine)
        with load_host({**env, "LOAD_QUEUE": ""}, WORKERS) as url:
            sent: list[dict[str, Any]] = []
            start = time.perf_counter()
            latencies = send_all(url, args.baseline_emails, sent)
            elapsed = time.perf_counter() - start
        assert sink.total() == args.baseline_emails, "the baseline lost messages"
        figures["baseline"] = {
            "emails": args.baseline_emails,
            "answer_p50_ms": round(statistics.median(latencies), 1),
            "answer_p99_ms": round(percentile(latencies, 0.99), 1),
            "emails_per_s": round(args.baseline_emails / elapsed, 1),
        }
        print("baseline (queue off):", json.dumps(figures["baseline"]), flush=True)

        # 2. queued: Celery workers send, the simulator posts events meanwhile
        reset(engine)
        sink.received.clear()
        with (
            celery_workers({**env, "LOAD_QUEUE": "celery"}, queue, args.celery_workers),
            load_host({**env, "LOAD_QUEUE": "celery"}, WORKERS) as url,
        ):
            sent = []
            done = threading.Event()
            simulated: dict[str, Any] = {}

            def simulator() -> None:
                try:
                    simulated["posted"], simulated["first"] = simulate_events(url, kit, sent, done)
                except BaseException as exc:
                    simulated["error"] = exc

            events_thread = threading.Thread(target=simulator)
            start = time.perf_counter()
            events_thread.start()
            latencies = send_all(url, args.emails, sent)
            answered = time.perf_counter() - start
            done.set()
            events_thread.join()
            if "error" in simulated:
                raise simulated["error"]
            wait_until(lambda: sink.total() >= args.emails, 1800, "the workers to send")
            through = sink.last_at - start

            def unapplied() -> int:
                with engine.connect() as connection:
                    return int(
                        connection.scalar(
                            sa.select(sa.func.count())
                            .select_from(WebhookInbox)
                            .where(WebhookInbox.status != "applied")
                        )
                        or 0
                    )

            wait_until(lambda: unapplied() == 0, 1800, "the events to be applied")
            with engine.connect() as connection:
                last_applied = connection.scalar(sa.select(sa.func.max(WebhookInbox.applied_at)))
                first_received = connection.scalar(sa.select(sa.func.min(WebhookInbox.received_at)))
            time.sleep(2)  # a duplicate send would arrive about now
        events_span = (last_applied - first_received).total_seconds()

        public_ids = {email["public_id"] for email in sent}
        lost = sum(1 for p in public_ids if sink.received[p] == 0)
        duplicated = sum(1 for p in public_ids if sink.received[p] > 1)
        stray = sum(n for p, n in sink.received.items() if p not in public_ids)
        wrong = 0
        with engine.connect() as connection:
            for prefix, _, expected in RECIPIENTS:
                wrong += int(
                    connection.scalar(
                        sa.select(sa.func.count())
                        .select_from(Recipient)
                        .where(Recipient.address.like(f"{prefix}%"), Recipient.status != expected)
                    )
                    or 0
                )
            wrong_emails = int(
                connection.scalar(
                    sa.select(sa.func.count()).select_from(Email).where(Email.result != "warning")
                )
                or 0
            )
        figures["queue"] = {
            "emails": args.emails,
            "celery_workers": args.celery_workers,
            "answer_p50_ms": round(statistics.median(latencies), 1),
            "answer_p99_ms": round(percentile(latencies, 0.99), 1),
            "sends_answered_per_s": round(args.emails / answered, 1),
            "emails_per_s_through_workers": round(args.emails / through, 1),
            "events_posted": simulated["posted"],
            "events_applied_per_s": round(simulated["posted"] / events_span, 1),
            "lost": lost,
            "duplicated": duplicated,
            "stray": stray,
            "recipients_in_wrong_state": wrong,
            "emails_with_wrong_result": wrong_emails,
        }
        print("queue (celery):", json.dumps(figures["queue"]), flush=True)
        ratio = (
            figures["queue"]["emails_per_s_through_workers"] / figures["baseline"]["emails_per_s"]
        )
        print(
            f"worker throughput / baseline: {ratio:.2f}x (target >= 3); "
            f"queued answer p99 {figures['queue']['answer_p99_ms']} ms (target <= 20); "
            f"lost {lost}, duplicated {duplicated} (target 0, 0)"
        )
        if lost or duplicated or stray or wrong or wrong_emails:
            sys.exit(1)
    finally:
        controller.stop()
        engine.dispose()
        drop_broker_keys(args.broker, queue)


if __name__ == "__main__":
    main()
