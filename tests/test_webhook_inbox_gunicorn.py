"""The webhook inbox under real concurrency: gunicorn with 4 sync worker processes on
PostgreSQL, 8 threads posting overlapping signed requests at once. SendGrid batches share
events (the same ``sg_event_id`` in several batches, some batches posted twice); some
Mailgun tokens are used by several requests (the very same request again, or the token with
other event data). The final state is exactly what the accepted events imply, each event is
stored once, each Mailgun token is accepted once (its replays answered 406), and every
inbox row is applied; with ``MAILDELIVERY_INBOX_APPLY`` ``inline`` and ``after_response``
alike.

PostgreSQL only: its URL is ``MAILDELIVERY_TEST_POSTGRESQL_URL`` (``.ci/run`` sets it), else
the PostgreSQL URL listed in ``MAILDELIVERY_TEST_DATABASES``, else the server on loopback
(``postgres@127.0.0.1:5432``). The tables live in a
PostgreSQL schema of their own, created and dropped here, so the session's tables on the
same database are never touched.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery.extension import MailDelivery
from flask_maildelivery.models import Base, WebhookInbox, WebhookToken
from flask_maildelivery.state import StatusFact, email_result, email_status, recipient_state

from .conftest import DATABASE_URLS
from .gunicorn_app import create_app, serve
from .kits import EXPECTED_TYPES, MailgunKit, SendGridKit, webhook_url
from .test_webhook_concurrency import kind_of
from .webhook_helpers import email_result as stored_result
from .webhook_helpers import inbox_rows, recipient_states, send_email, stored_events

POSTERS = 8
WORKERS = 4
SENDGRID_KINDS = ["processed", "deferred", "delivered", "open", "click", "hard_bounce"]
MAILGUN_KINDS = ["delivered", "open", "click", "dropped", "complaint"]
MAILGUN_KIND = {
    "accepted": "processed",
    "delivered": "delivered",
    "opened": "open",
    "clicked": "click",
    "failed": "hard_bounce",
    "rejected": "dropped",
    "complained": "complaint",
}


#: The PostgreSQL server this machine runs on loopback (its own schema is made there).
LOCAL_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgresql_url() -> str:
    """The suite's PostgreSQL URL: ``MAILDELIVERY_TEST_POSTGRESQL_URL``, else the PostgreSQL
    URL in ``MAILDELIVERY_TEST_DATABASES``, else the local server on loopback."""
    return os.environ.get("MAILDELIVERY_TEST_POSTGRESQL_URL") or next(
        (u for u in DATABASE_URLS if u.startswith("postgresql")), LOCAL_POSTGRESQL
    )


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A URL on the suite's PostgreSQL database whose connections use a new PostgreSQL
    schema holding the package's tables; the schema is dropped afterwards."""
    url = sa.make_url(postgresql_url())
    name = f"md_gunicorn_{secrets.token_hex(4)}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {name}"))
    in_schema = url.update_query_dict({"options": f"-csearch_path={name}"})
    engine = sa.create_engine(in_schema)
    try:
        Base.metadata.create_all(engine)
        yield in_schema.render_as_string(hide_password=False)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


@dataclass(frozen=True)
class Post:
    """One request to post: its provider, body and headers; ``token``: its Mailgun token."""

    provider: str
    body: bytes
    headers: dict[str, str]
    token: str | None = None


def sendgrid_posts(kit: SendGridKit, rng: random.Random, pool: list[dict[str, Any]]) -> list[Post]:
    """Every pool event in at least one batch; overlapping batches on top; a few batches
    posted twice."""
    shuffled = rng.sample(pool, len(pool))
    batches = [shuffled[i : i + 12] for i in range(0, len(shuffled), 12)]
    batches += [rng.sample(pool, 12) for _ in range(8)]
    batches += rng.sample(batches, 4)
    posts = []
    for batch in batches:
        body, headers = kit.request(batch)
        posts.append(Post("sendgrid", body, headers))
    return posts


def mailgun_posts(kit: MailgunKit, rng: random.Random, events: list[dict[str, Any]]) -> list[Post]:
    """One request per event; a third of them posted again as they are, another third's
    token reused by a request carrying another event."""
    posts = []
    for index, event in enumerate(events):
        body, headers = kit.request([event])
        token = json.loads(body)["signature"]["token"]
        posts.append(Post("mailgun", body, headers, token))
        if index % 3 == 0:
            posts.append(Post("mailgun", body, headers, token))
        elif index % 3 == 1:
            data = json.loads(body)
            data["event-data"] = rng.choice(events)
            posts.append(Post("mailgun", json.dumps(data).encode(), headers, token))
    return posts


def post_all(base_url: str, posts: list[Post]) -> list[int]:
    """Post every request from :data:`POSTERS` threads started at once; the statuses, in the
    order of ``posts``."""
    statuses: list[int] = [0] * len(posts)
    errors: list[BaseException] = []
    barrier = threading.Barrier(POSTERS)

    def poster(indexes: list[int]) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=30) as client:
                barrier.wait(timeout=30)
                for index in indexes:
                    post = posts[index]
                    response = client.post(
                        webhook_url(post.provider), content=post.body, headers=post.headers
                    )
                    statuses[index] = response.status_code
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=poster, args=(list(range(n, len(posts), POSTERS)),))
        for n in range(POSTERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a poster did not finish"
    assert errors == []
    return statuses


def wait_until_applied(app: Flask, count: int, timeout: float = 20.0) -> None:
    """Wait until ``count`` inbox rows are settled (applied or failed): with
    ``after_response``, the workers apply after answering."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        while time.monotonic() < deadline:
            settled = session.scalar(
                sa.select(sa.func.count())
                .select_from(WebhookInbox)
                .where(WebhookInbox.status != "pending")
            )
            session.rollback()
            if settled == count:
                return
            time.sleep(0.05)
    raise AssertionError(f"fewer than {count} inbox rows settled within {timeout} seconds")


@pytest.mark.parametrize("apply_mode", ["inline", "after_response"])
def test_gunicorn_workers_apply_overlapping_requests_exactly_once(
    schema_url: str, apply_mode: str
) -> None:
    sendgrid, mailgun = SendGridKit(), MailgunKit()
    keys = {
        "MAILDELIVERY_SENDGRID_WEBHOOK_PUBLIC_KEY": SendGridKit.public_b64(sendgrid.key),
        "MAILDELIVERY_MAILGUN_WEBHOOK_SIGNING_KEY": mailgun.signing_key,
        "MAILDELIVERY_INBOX_APPLY": apply_mode,
    }
    app = create_app(schema_url, **keys)
    try:
        check_overlapping_requests(app, schema_url, keys, sendgrid, mailgun)
    finally:
        with app.app_context():
            MailDelivery.state(app).sessions.remove()
            MailDelivery.state(app).db.session.remove()
            MailDelivery.state(app).db.engine.dispose()


def check_overlapping_requests(
    app: Flask, schema_url: str, keys: dict[str, str], sendgrid: SendGridKit, mailgun: MailgunKit
) -> None:
    """Post the requests to gunicorn, then check every answer and the final state."""
    rng = random.Random(20261204)
    addresses = tuple(f"r{i}@customer.test" for i in range(4))
    emails = [send_email(app, to=addresses) for _ in range(4)]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def at() -> datetime:
        return start + timedelta(seconds=rng.randrange(3600))

    pool = [
        sendgrid.one_event(kind, public_id, at=at(), address=address, event_id=f"sg-{n}-{a}-{kind}")
        for n, (_, public_id) in enumerate(emails)
        for a, address in enumerate(addresses)
        for kind in rng.sample(SENDGRID_KINDS, 3)
    ]
    mailgun_events = [
        mailgun.one_event(kind, public_id, at=at(), address=address, event_id=f"mg-{n}-{a}-{kind}")
        for n, (_, public_id) in enumerate(emails)
        for a, address in enumerate(addresses)
        for kind in rng.sample(MAILGUN_KINDS, 2)
    ]
    posts = sendgrid_posts(sendgrid, rng, pool) + mailgun_posts(mailgun, rng, mailgun_events)
    posts = rng.sample(posts, len(posts))

    with serve({**keys, "MAILDELIVERY_HOST_DATABASE_URL": schema_url}, workers=WORKERS) as url:
        statuses = post_all(url, posts)
        wait_until_applied(app, statuses.count(200))

    # every SendGrid post is answered 200 (a repeated event included); each Mailgun token
    # is accepted once, its other uses refused as replays
    by_token: dict[str, list[int]] = defaultdict(list)
    for post, status in zip(posts, statuses, strict=True):
        if post.token is None:
            assert status == 200
        else:
            by_token[post.token].append(status)
    for token_statuses in by_token.values():
        assert sorted(token_statuses) == [200] + [406] * (len(token_statuses) - 1)

    # the accepted events: every SendGrid one, and the Mailgun event of each accepted request
    accepted: dict[str, tuple[str, datetime, str, str]] = {}
    for event in pool:
        accepted[f"sendgrid:{event['sg_event_id']}"] = (
            kind_of(event),
            datetime.fromtimestamp(event["timestamp"], UTC),
            event["maildelivery_id"],
            event["email"],
        )
    for post, status in zip(posts, statuses, strict=True):
        if post.token is not None and status == 200:
            data = json.loads(post.body)["event-data"]
            accepted[f"mailgun:{data['id']}:{data['timestamp']}"] = (
                MAILGUN_KIND[data["event"]],
                datetime.fromtimestamp(data["timestamp"], UTC),
                data["user-variables"]["maildelivery_id"],
                data["recipient"],
            )

    stored = sorted(f"{e.provider}:{e.provider_event_id}" for e in stored_events(app))
    assert stored == sorted(accepted)  # each accepted event once, nothing else

    for email_id, public_id in emails:
        actual = recipient_states(app, email_id)
        expected_statuses = []
        for address in addresses:
            facts = [
                StatusFact(EXPECTED_TYPES[kind], occurred, tiebreak=tiebreak)
                for tiebreak, (kind, occurred, event_public_id, event_address) in accepted.items()
                if event_public_id == public_id and event_address == address
            ]
            expected = recipient_state(facts).status
            expected_statuses.append(expected)
            assert actual[address][0] == expected, (address, facts)
        assert stored_result(app, email_id) == (
            email_result(expected_statuses),
            email_status(expected_statuses),
        )

    rows = inbox_rows(app)
    assert len(rows) == statuses.count(200)
    assert {row.status for row in rows} == {"applied"}
    assert all(row.attempts == 1 and row.error is None for row in rows)
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        tokens = session.scalars(sa.select(WebhookToken.token)).all()
        session.rollback()
    assert sorted(tokens) == sorted(by_token)
