"""The processes the Celery benchmarks run (``load.py``, ``webhook_inbox.py``): the load host
(``load_host.py``) under gunicorn, Celery worker processes on a queue of the run's own, and
the removal of that queue's Redis keys afterwards.

A run's queue name is also its Redis key prefix (``load_host.py`` sets Kombu's
``global_keyprefix`` to ``"<queue>:"``), so every key the run made, the queue and Kombu's
bindings included, is found and deleted by that prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.gunicorn_app import serve

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def run_queue(name: str) -> str:
    """A queue name (and Redis key prefix) of this run's own: ``maildelivery-<name>-<hex>``."""
    return f"maildelivery-{name}-{uuid.uuid4().hex[:8]}"


def host_environment(
    database_url: str,
    *,
    sendgrid_key: str,
    broker: str,
    queue: str,
    smtp_port: int | None = None,
) -> dict[str, str]:
    """This process's environment plus what ``load_host.py`` reads: its database, the
    SendGrid verification key, the broker and the run's queue, and the SMTP sink's port
    (``None``: the memory transport)."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{BENCHMARKS}{os.pathsep}{ROOT}",
        "LOAD_DATABASE_URL": database_url,
        "LOAD_BROKER_URL": broker,
        "LOAD_CELERY_QUEUE": queue,
        "LOAD_SENDGRID_KEY": sendgrid_key,
    }
    if smtp_port is not None:
        env["LOAD_SMTP_PORT"] = str(smtp_port)
    return env


@contextmanager
def process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` from the benchmarks folder; SIGTERM (then SIGKILL) on exit."""
    proc = subprocess.Popen(command, cwd=BENCHMARKS, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until it is true.

    :raises RuntimeError: not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def load_host(env: dict[str, str], workers: int) -> Iterator[str]:
    """``load_host:create_app()`` under gunicorn (``workers`` sync worker processes); its
    base URL."""
    with serve(
        env, workers=workers, ready_timeout=180, app="load_host:create_app()", path=[BENCHMARKS]
    ) as url:
        yield url


@contextmanager
def celery_workers(
    env: dict[str, str], queue: str, concurrency: int
) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker (``load_worker:celery_app``, prefork pool of ``concurrency``
    processes) consuming ``queue`` only; stopped on exit (a warm shutdown: tasks in hand
    are finished first)."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "load_worker:celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--queues",
        queue,
    ]
    with process(command, env) as proc:
        yield proc


def drop_broker_keys(broker: str, queue: str) -> int:
    """Delete every Redis key of the run's ``queue`` (its key prefix ``"<queue>:"``): the
    queue itself, Kombu's bindings and whatever a task left. Returns how many."""
    client = redis.Redis.from_url(broker)
    try:
        keys = list(client.scan_iter(match=f"{queue}:*", count=1000))
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
