"""The webhook inbox under gunicorn: answer latency and applied throughput.

gunicorn serves the webhook endpoint with 4 sync worker processes on PostgreSQL; 8 threads
post signed SendGrid batches of 1,000 events each at once (every event new, one per
recipient of 2,000 emails of 5 recipients, and again). For each way of applying the stored
requests it prints the answer latency (p50 and p99, as the posters see it, waiting for a
free worker included) and the applied throughput (events per second from the first request
to the last event applied, read from the inbox rows' ``applied_at``):

* ``inline`` (``MAILDELIVERY_INBOX_APPLY``): applied before the answer;
* ``after_response``: applied by the same worker once the answer is sent;
* ``celery`` (``MAILDELIVERY_QUEUE = "celery"``): the request only verifies, checks and
  stores; ``maildelivery.apply_inbox`` applies the row in a Celery worker (2 prefork
  processes) on Redis, with a queue and key prefix of the run's own, deleted afterwards.
  gunicorn serves ``benchmarks/load_host.py`` here (the host with a Celery app), the two
  other modes ``tests/gunicorn_app.py``; both answer the webhook the same way.

Before each mode is measured, 8 one-event requests warm the workers up (connections,
imports); they are then cleared. With each mode it prints the CPU time the processes used
(read from ``/proc``): gunicorn's workers per request until the last answer, Celery's
and PostgreSQL's backends' per request until the last row is applied, and how busy the
machine's cores were meanwhile (other people's processes included).

The direct path, for comparison, has no switch in the endpoint: it is measured in this
process by calling ``ingest_events`` on the same batches, parsed beforehand (no HTTP, no
signature check, no inbox), from 8 threads at once.

Targets: p99 answer latency at most 50 ms per 1,000-event batch; applied throughput not
below the direct path's.

``--profile`` measures instead what one request does before its answer in the ``celery``
mode, in this process (Flask's test client on the load host, tasks sent to the run's own
Redis queue, which no worker reads): each step's time on 21 batches, then a cProfile of
one request; then the CPU a request costs one gunicorn worker and PostgreSQL when the
requests are posted one at a time.

    .venv/bin/python benchmarks/webhook_inbox.py
    .venv/bin/python benchmarks/webhook_inbox.py --modes celery --batches 24
    .venv/bin/python benchmarks/webhook_inbox.py --profile
    .venv/bin/python benchmarks/webhook_inbox.py --url postgresql+psycopg://postgres@127.0.0.1:5432/md_inbox_bench

Its database is created when the server does not have it (its tables are dropped and
created again). Redis (127.0.0.1:6379) must be running for the ``celery`` mode and
``--profile``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from database_setup import create_database_if_missing
from flask import Flask
from processes import celery_workers, drop_broker_keys, host_environment, load_host, run_queue
from webhook_ingest import reset, seed, sendgrid_events

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_maildelivery.context import get_state
from flask_maildelivery.ingest import ingest_events
from flask_maildelivery.models import Event, WebhookInbox, WebhookToken
from flask_maildelivery.webhooks import inbox
from flask_maildelivery.webhooks.base import WebhookRequest, json_depth_exceeds, validate
from flask_maildelivery.webhooks.sendgrid import SendGridAdapter, SendGridEventSchema
from tests.gunicorn_app import create_app, serve
from tests.kits import SendGridKit

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/md_inbox_bench"
POSTERS = 8
WORKERS = 4
BATCH = 1_000
ENDPOINT = "/maildelivery/webhooks/sendgrid"
MODES = ("inline", "after_response", "celery")
CELERY_WORKERS = 2
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


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


def cpu_seconds(match: Callable[[str], bool]) -> dict[int, float]:
    """The CPU time (user + system, seconds) each process whose command line ``match``
    accepts has used so far, by pid (from ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not match(command):
                continue
            # the fields after the command name (which may hold spaces), from state on
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_seconds` readings (a process that started
    in between counts from its start)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def machine_busy() -> tuple[float, float]:
    """Busy and total CPU time of the whole machine so far (``/proc/stat``), in ticks."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    total = sum(values[:8])  # guest time is counted in user time already
    return float(total - idle), float(total)


class CpuMeter:
    """CPU time of the run's processes: gunicorn's workers (by the port they serve),
    Celery's (by the run's queue) and the PostgreSQL backends on the run's database."""

    def __init__(self, base_url: str, database: str, queue: str | None) -> None:
        bind = base_url.removeprefix("http://")
        self.groups: dict[str, Callable[[str], bool]] = {
            "gunicorn": lambda command: "gunicorn" in command and f"--bind {bind} " in command,
            "postgresql": lambda command: (
                command.startswith("postgres:") and f" {database} " in command
            ),
        }
        if queue is not None:
            self.groups["celery"] = lambda command: "celery" in command and queue in command

    def read(self) -> dict[str, Any]:
        return {
            "machine": machine_busy(),
            **{name: cpu_seconds(match) for name, match in self.groups.items()},
        }

    @staticmethod
    def used(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """CPU seconds per group, and ``busy``: the share of the machine's CPU time that was
        busy (all processes, other people's included)."""
        used = {name: cpu_used(before[name], after[name]) for name in before if name != "machine"}
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        used["busy"] = busy / total if total else 0.0
        return used


@contextmanager
def served(mode: str, keys: dict[str, str], args: argparse.Namespace) -> Iterator[str]:
    """The webhook endpoint under gunicorn for ``mode``, with Celery workers for
    ``celery``; its base URL."""
    if mode != "celery":
        environment = {**keys, "MAILDELIVERY_HOST_DATABASE_URL": args.url}
        environment["MAILDELIVERY_INBOX_APPLY"] = mode
        with serve(environment, workers=WORKERS) as base_url:
            yield base_url
        return
    env = host_environment(
        args.url,
        sendgrid_key=keys["MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY"],
        broker=args.broker,
        queue=args.queue,
    )
    env["LOAD_QUEUE"] = "celery"
    with (
        celery_workers(env, args.queue, args.celery_workers),
        load_host(env, WORKERS) as base_url,
    ):
        yield base_url


def warm_up(base_url: str, kit: SendGridKit, engine: sa.Engine, events: list[Any]) -> None:
    """Post :data:`POSTERS` one-event requests at once and wait until they are applied, so
    that every worker has its connections and imports; then clear them."""
    requests = []
    for n in range(POSTERS):
        event = dict(events[n])
        event["sg_event_id"] = f"warm-up-{n}"
        requests.append(kit.request([event]))
    post_batches(base_url, requests)
    last_applied(engine, len(requests), timeout=180)
    clear(engine)


def measure(
    mode: str,
    args: argparse.Namespace,
    kit: SendGridKit,
    keys: dict[str, str],
    engine: sa.Engine,
    batches: list[list[dict[str, Any]]],
) -> dict[str, float]:
    """One mode's figures: answer latencies (ms), applied throughput, CPU per request."""
    clear(engine)
    requests = [kit.request(batch) for batch in batches]  # signing is the sender's cost
    database = engine.url.database or ""
    with served(mode, keys, args) as base_url:
        warm_up(base_url, kit, engine, batches[0])
        meter = CpuMeter(base_url, database, args.queue if mode == "celery" else None)
        before = meter.read()
        latencies, started = post_batches(base_url, requests)
        answered = meter.read()
        finished = last_applied(engine, len(batches))
        applied = meter.read()
    total = BATCH * len(batches)
    assert event_count(engine) == total, (event_count(engine), total)
    answering = CpuMeter.used(before, answered)
    whole = CpuMeter.used(before, applied)
    return {
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "rate": total / (finished - started),
        "gunicorn_ms": answering["gunicorn"] / len(batches) * 1000,
        "celery_ms": whole.get("celery", 0.0) / len(batches) * 1000,
        "postgresql_ms": whole["postgresql"] / len(batches) * 1000,
        "busy_answering": answering["busy"],
        "busy": whole["busy"],
    }


def direct_rate(app: Flask, engine: sa.Engine, batches: list[list[dict[str, Any]]]) -> float:
    """Events per second of ``ingest_events`` on the parsed batches, 8 threads in this
    process."""
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
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    assert event_count(engine) == BATCH * len(batches)
    return BATCH * len(batches) / elapsed


def load_average() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"PostgreSQL URL ({DEFAULT_URL})")
    parser.add_argument(
        "--batches", type=int, default=48, help="1,000-event batches per run (default 48)"
    )
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="modes measured (all)"
    )
    parser.add_argument("--broker", default=DEFAULT_BROKER, help=f"Redis URL ({DEFAULT_BROKER})")
    parser.add_argument(
        "--celery-workers",
        type=int,
        default=CELERY_WORKERS,
        help=f"Celery worker processes (default {CELERY_WORKERS})",
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the celery mode's answer path instead"
    )
    args = parser.parse_args()
    args.queue = run_queue("inbox")
    create_database_if_missing(args.url)
    kit = SendGridKit(key=ec.generate_private_key(ec.SECP256R1()))
    keys = {"MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": SendGridKit.public_b64(kit.key)}
    app = create_app(args.url, **keys)
    with app.app_context():
        engine = get_state(app).db.engine
    events = sendgrid_events(seed(engine))
    try:
        if args.profile:
            profile(args, kit, keys, engine, batches_of(events, 24))
            return 0
        return benchmark(args, app, kit, keys, engine, batches_of(events, args.batches))
    finally:
        drop_broker_keys(args.broker, args.queue)
        with app.app_context():
            get_state(app).db.session.remove()
            get_state(app).sessions.remove()
        engine.dispose()


def benchmark(
    args: argparse.Namespace,
    app: Flask,
    kit: SendGridKit,
    keys: dict[str, str],
    engine: sa.Engine,
    batches: list[list[dict[str, Any]]],
) -> int:
    """Every mode of ``args.modes``, then the direct path; 0 when every target is met."""
    print(
        f"{len(batches)} signed SendGrid batches of {BATCH:,} events, {POSTERS} posters, "
        f"gunicorn {WORKERS} sync workers, PostgreSQL; {os.cpu_count()} cores, "
        f"{load_average()}",
        flush=True,
    )
    results: dict[str, dict[str, float]] = {}
    for mode in args.modes:
        figures = results[mode] = measure(mode, args, kit, keys, engine, batches)
        print(
            f"  inbox, {mode:<15} answer p50 {figures['p50']:7.0f} ms   "
            f"p99 {figures['p99']:7.0f} ms   applied {figures['rate']:8,.0f} events/s",
            flush=True,
        )
        celery = f", Celery {figures['celery_ms']:.0f} ms" if mode == "celery" else ""
        print(
            f"    CPU per 1,000-event request: gunicorn {figures['gunicorn_ms']:.0f} ms"
            f"{celery}, PostgreSQL {figures['postgresql_ms']:.0f} ms; cores busy "
            f"{figures['busy_answering']:.0%} while answering, {figures['busy']:.0%} until "
            f"applied; {load_average()}",
            flush=True,
        )
    direct = direct_rate(app, engine, batches)
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
    print(f"  {load_average()}")
    return 0 if ok else 1


#: What the answer path's steps are, as the profile names them: (label, file, function).
STEPS = (
    ("read the body", "webhooks/views.py", "_read_body"),
    ("verify the signature", "webhooks/sendgrid.py", "verify"),
    ("parse and check (all of it)", "webhooks/inbox.py", "parse_usable"),
    ("  JSON decode and depth check", "webhooks/base.py", "parse_json"),
    ("    of which the depth check", "webhooks/base.py", "json_depth_exceeds"),
    ("  schema check", "webhooks/base.py", "validate"),
    ("  normalize 1,000 events", "webhooks/sendgrid.py", "normalize"),
    ("store: INSERT and COMMIT", "webhooks/inbox.py", "store"),
    ("  of which COMMIT", "sqlalchemy/orm/session.py", "commit"),
    ("enqueue (Redis)", "webhooks/views.py", "_enqueue_inbox"),
    ("the view in all", "webhooks/views.py", "receive"),
    ("the WSGI request in all", "flask/app.py", "wsgi_app"),
)


def profile(
    args: argparse.Namespace,
    kit: SendGridKit,
    keys: dict[str, str],
    engine: sa.Engine,
    batches: list[list[dict[str, Any]]],
) -> None:
    """Where a 1,000-event request's time goes before its answer in the ``celery`` mode."""
    # the load host in this process, as gunicorn's workers build it
    os.environ.update(
        host_environment(
            args.url,
            sendgrid_key=keys["MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY"],
            broker=args.broker,
            queue=args.queue,
        )
    )
    os.environ["LOAD_QUEUE"] = "celery"
    import load_host

    app = load_host.create_app()
    client = app.test_client()
    adapter = get_state(app).webhook_adapters["sendgrid"]
    assert isinstance(adapter, SendGridAdapter)
    schema = SendGridEventSchema()
    requests = [kit.request(batch) for batch in batches]
    print(
        f"the celery mode's answer path, in this process: {len(requests)} signed SendGrid "
        f"batches of {BATCH:,} events ({len(requests[0][0]):,} bytes each); {load_average()}"
    )

    def step_times(body: bytes, headers: dict[str, str]) -> dict[str, float]:
        request = WebhookRequest(body=body, headers={k.lower(): v for k, v in headers.items()})
        steps: dict[str, float] = {}

        def timed(name: str, call: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            value = call()
            steps[name] = (time.perf_counter() - start) * 1000
            return value

        timed("verify the signature", lambda: adapter.verify(request))
        data = timed("JSON decode", lambda: json.loads(body))
        timed("depth check", lambda: json_depth_exceeds(data, 64))
        timed("schema check", lambda: validate(schema, data, "the batch", many=True))
        timed("normalize 1,000 events", lambda: [adapter.normalize(item) for item in data])
        parsed = timed("parse and check (all of it)", lambda: inbox.parse_usable(adapter, request))
        inbox_id = timed(
            "store: INSERT and COMMIT", lambda: inbox.store(app, adapter, request, parsed.unusable)
        )
        enqueue = get_state(app).tasks.enqueue_inbox
        assert enqueue is not None
        timed("enqueue (Redis)", lambda: enqueue(inbox_id))
        return steps

    with app.app_context():
        for body, headers in requests[:3]:  # connections, caches
            step_times(body, headers)
        measured = [step_times(body, headers) for body, headers in requests[3:]]
    print(f"  each step alone, median (min) of {len(measured)} requests:")
    for name in measured[0]:
        values = [m[name] for m in measured]
        print(f"    {name:<30} {statistics.median(values):6.2f} ms ({min(values):.2f})")

    walls, cpus = [], []
    for body, headers in requests:
        wall, cpu = time.perf_counter(), time.process_time()
        response = client.post(ENDPOINT, data=body, headers=headers)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
        assert response.status_code == 200, response.text
        assert response.json is not None
        assert response.json["status"] == "stored"
    print(
        f"  whole requests (test client): median {statistics.median(walls[3:]):.1f} ms, "
        f"CPU of this process {statistics.median(cpus[3:]):.1f} ms"
    )

    profiler = cProfile.Profile()
    body, headers = kit.request(batches[0])
    profiler.enable()
    response = client.post(ENDPOINT, data=body, headers=headers)
    profiler.disable()
    assert response.status_code == 200, response.text
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, str], float] = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for _, suffix, name in STEPS:
            if function == name and filename.endswith(suffix):
                # a name may be several functions of the file, one calling the other
                # (Session.commit, SessionTransaction.commit): the outermost counts
                entries[(suffix, name)] = max(entries.get((suffix, name), 0.0), cumulative)
    print("  one request under cProfile (its overhead inflates Python-heavy steps), cumulative:")
    for label, suffix, name in STEPS:
        print(f"    {label:<30} {entries.get((suffix, name), 0.0) * 1000:6.1f} ms")
    print("  the 12 functions with the most own time:")
    stats.sort_stats("tottime").print_stats(12)
    clear(engine)
    one_worker_cost(args, engine, requests)


def one_worker_cost(
    args: argparse.Namespace, engine: sa.Engine, requests: list[tuple[bytes, dict[str, str]]]
) -> None:
    """The same requests through gunicorn (one sync worker, no Celery worker), posted one at
    a time: the CPU a request costs the HTTP worker and PostgreSQL, with no one waiting."""
    env = {key: os.environ[key] for key in os.environ}  # the load host's, set by profile()
    with load_host(env, 1) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        for body, headers in requests[:3]:  # connections, caches
            assert client.post(ENDPOINT, content=body, headers=headers).status_code == 200
        meter = CpuMeter(base_url, engine.url.database or "", None)
        before = meter.read()
        latencies = []
        for body, headers in requests[3:]:
            start = time.perf_counter()
            response = client.post(ENDPOINT, content=body, headers=headers)
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
        used = CpuMeter.used(before, meter.read())
    count = len(requests) - 3
    print(
        f"  gunicorn, 1 sync worker, {count} requests one at a time: answer median "
        f"{statistics.median(latencies):.1f} ms; CPU per request: gunicorn "
        f"{used['gunicorn'] / count * 1000:.1f} ms, PostgreSQL "
        f"{used['postgresql'] / count * 1000:.1f} ms; {load_average()}"
    )
    clear(engine)


if __name__ == "__main__":
    sys.exit(main())
