"""The webhook inbox: an authenticated request is committed before its events are applied;
a failure while applying leaves it ``failed`` and a retry applies it once; a request that
cannot even be stored gets the answer that makes its provider retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery.extension import MailDelivery
from flask_maildelivery.models import WebhookInbox
from flask_maildelivery.vocabulary import InboxStatus
from flask_maildelivery.webhooks import inbox

from .conftest import AppFactory
from .kits import ANN, KITS, PROVIDERS, Kit, MailgunKit, PostmarkKit, SendGridKit, post
from .log_helpers import ADMIN, make_log_app
from .webhook_helpers import inbox_rows, recipient_states, send_email, stored_events


@pytest.fixture(params=PROVIDERS)
def kit(request: pytest.FixtureRequest) -> Kit:
    return KITS[request.param]()


def test_request_is_kept_with_a_few_headers_and_no_credentials(make_app: Any) -> None:
    kit = PostmarkKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    body, headers = kit.request([kit.one_event("delivered", public_id)])
    headers = {**headers, "X-PM-Webhook-Trace-Id": "trace-1", "X-Forwarded-For": "10.0.0.1"}
    response = post(app, kit, (body, headers))
    assert response.status_code == 200, response.get_json()
    [row] = inbox_rows(app)
    assert (row.provider, row.status, row.attempts, row.error) == ("postmark", "applied", 1, None)
    assert row.body == body
    assert row.headers["x-pm-webhook-trace-id"] == "trace-1"
    assert "authorization" not in row.headers
    assert "x-forwarded-for" not in row.headers
    assert row.applied_at is not None
    assert recipient_states(app, email_id)[ANN][0] == "delivered"


def test_refused_and_malformed_requests_are_not_kept(make_app: Any, kit: Kit) -> None:
    app = kit.start(make_app)
    _, public_id = send_email(app)
    forged = post(app, kit, kit.request([kit.one_event("delivered", public_id)], mode="forged"))
    assert forged.status_code == kit.auth_status
    assert post(app, kit, kit.malformed()).status_code == 400
    assert inbox_rows(app) == []


def _fail_on(app: Flask, table: str, verb: str = "INSERT") -> Any:
    """Make every insert into ``table`` (``verb="UPDATE"``: every update of it) fail (the
    database is down); a function that removes the fault."""
    with app.app_context():
        engine = MailDelivery.state(app).db.engine
    target = f" INTO {table} " if verb == "INSERT" else f"UPDATE {table} "

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith(verb) and target in statement:
            raise sa.exc.OperationalError(statement, {}, Exception("database unavailable"))

    sa.event.listen(engine, "before_cursor_execute", fail)
    return lambda: sa.event.remove(engine, "before_cursor_execute", fail)


#: The answer that makes each provider retry a request we could not store.
RETRY_STATUSES = {
    "sendgrid": 503,
    "mailgun": 503,
    "postmark": 503,
    "ses": 503,
    "sparkpost": 503,
    "mailjet": 503,
    "brevo": 429,
    "resend": 503,
    "mailersend": 503,
    "mailtrap": 503,
    "mandrill": 503,
    "postal": 503,
    "unisender_go": 503,
}


def test_inbox_write_failure_answers_the_providers_retry_status(make_app: Any, kit: Kit) -> None:
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    request = kit.request([kit.one_event("delivered", public_id)])
    remove = _fail_on(app, "maildelivery_webhook_inbox")
    try:
        response = post(app, kit, request)
    finally:
        remove()
    assert response.status_code == RETRY_STATUSES[kit.provider]
    assert "retry" in response.get_json()["error"]
    assert inbox_rows(app) == []
    assert stored_events(app) == []
    assert recipient_states(app, email_id)[ANN][0] == "queued"
    # the provider's retry, once the database is back, goes through (a Mailgun token too)
    retried = post(app, kit, request)
    assert retried.status_code == 200, retried.get_json()
    assert recipient_states(app, email_id)[ANN][0] == "delivered"


def test_failed_apply_is_kept_and_retried_exactly_once(make_app: Any, signal_log: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    events = [kit.one_event(k, public_id) for k in ("delivered", "open")]
    remove = _fail_on(app, "maildelivery_event")
    try:
        response = post(app, kit, kit.request(events))
    finally:
        remove()
    [row] = inbox_rows(app)
    assert response.status_code == 200
    assert response.get_json() == {"inbox": row.id, "status": "failed"}
    assert row.status == "failed"
    assert row.error is not None
    assert "database unavailable" in row.error
    assert stored_events(app) == []
    signal_log.clear()
    with app.app_context():
        first = inbox.apply(app, row.id)
        second = inbox.apply(app, row.id)
    assert first.report is not None
    assert second.report is not None
    assert (first.report.stored, second.report.stored, second.report.duplicates) == (2, 0, 2)
    assert len(stored_events(app)) == 2
    assert [name for name, _ in signal_log].count("event-received") == 2
    assert recipient_states(app, email_id)[ANN][0] == "opened"
    [row] = inbox_rows(app)
    assert (row.status, row.attempts) == ("applied", 3)


def test_a_stored_body_that_no_longer_parses_is_failed_not_lost(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    assert kit.post_events(app, [kit.one_event("delivered", public_id)]).status_code == 200
    [row] = inbox_rows(app)
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        session.execute(
            sa.update(inbox.inbox_t).where(inbox.inbox_t.c.id == row.id).values(body=b"[{")
        )
        session.commit()
        outcome = inbox.apply(app, row.id)
    assert outcome.report is None
    assert outcome.error is not None
    assert "not JSON" in outcome.error
    [row] = inbox_rows(app)
    assert (row.status, row.attempts) == ("failed", 2)


def test_the_row_is_marked_applied_with_its_events_or_not_at_all(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    # the database fails at the very end, when the row is marked applied: the events
    # stored before it in the same transaction are rolled back with it
    remove = _fail_on(app, "maildelivery_webhook_inbox", verb="UPDATE")
    try:
        response = post(app, kit, kit.request([kit.one_event("delivered", public_id)]))
    finally:
        remove()
    [row] = inbox_rows(app)
    assert response.status_code == 200
    assert response.get_json() == {"inbox": row.id, "status": "failed"}
    assert stored_events(app) == []
    assert row.status == "pending"  # recording the failure failed too: still to apply
    assert recipient_states(app, email_id)[ANN][0] == "queued"
    with app.app_context():
        [outcome] = inbox.retry(app)
    assert outcome.report is not None
    assert outcome.report.stored == 1
    [row] = inbox_rows(app)
    assert (row.status, row.attempts) == ("applied", 1)
    assert recipient_states(app, email_id)[ANN][0] == "delivered"


def test_one_unusable_event_is_kept_aside_while_its_batch_is_applied(
    make_app: AppFactory,
) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    unusable = {**kit.one_event("hard_bounce", public_id), "timestamp": "yesterday"}
    batch = [kit.one_event("delivered", public_id), unusable, kit.one_event("open", public_id)]
    response = post(app, kit, kit.request(batch))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"stored": 2, "duplicates": 0, "unmatched": 0, "unusable": 1}
    assert recipient_states(app, email_id)[ANN][0] == "opened"
    request_row, aside = inbox_rows(app)
    assert request_row.status == "applied"
    assert aside.status == "failed"
    assert aside.error is not None
    assert "timestamp" in aside.error
    assert aside.body == json.dumps([unusable]).encode()
    with app.app_context():
        assert inbox.failed_count(app) == 1
        # a retry tries the unusable item again (it still does not parse) and never the
        # rest of its batch a second time
        outcomes = inbox.retry(app)
    assert [(o.inbox_id, o.applied) for o in outcomes] == [(aside.id, False)]
    assert len(stored_events(app)) == 2
    [_, aside] = inbox_rows(app)
    assert (aside.status, aside.attempts) == ("failed", 1)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if KITS[p].batch])
def test_one_unusable_item_of_any_batch_shape_is_kept_aside(
    make_app: AppFactory, provider: str
) -> None:
    # a JSON array (SendGrid, Mailjet, Brevo, SparkPost) or the provider's own wrapping
    # (Mailtrap's {"events": [...]}, Mandrill's form field, Unisender Go's groups)
    kit = KITS[provider]()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    batch = [
        kit.one_event("delivered", public_id),
        kit.malformed_event,
        kit.one_event("open", public_id),
    ]
    response = kit.post_events(app, batch)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["unusable"] == 1
    assert sorted(e.type for e in stored_events(app)) == ["delivered", "opened"]
    assert recipient_states(app, email_id)[ANN][0] == "opened"
    request_row, aside = inbox_rows(app)
    assert (request_row.status, aside.status) == ("applied", "failed")
    assert aside.error
    # the item is kept in the provider's shape: a retry parses it alone (and still fails)
    with app.app_context():
        [outcome] = inbox.retry(app)
    assert (outcome.inbox_id, outcome.applied) == (aside.id, False)
    assert outcome.error is not None
    assert len(stored_events(app)) == 2


def test_a_batch_with_no_usable_item_is_refused_whole(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    bad = [{**kit.one_event(k, public_id), "timestamp": "never"} for k in ("delivered", "open")]
    response = post(app, kit, kit.request(bad))
    assert response.status_code == 400
    assert inbox_rows(app) == []
    assert stored_events(app) == []


#: Hours late, inside each provider's retry horizon (Postmark about 70 min, Brevo about
#: 11 h, Resend about 28 h; the basic-auth providers sign nothing, so no age is checked).
LATE = {"postmark": 3, "brevo": 11, "resend": 27, "sendgrid": 23, "mailgun": 7}


@pytest.mark.parametrize("provider", list(LATE))
def test_events_delivered_hours_late_are_applied(make_app: Any, provider: str) -> None:
    kit = KITS[provider]()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    then = datetime.now(UTC) - timedelta(hours=LATE[provider])
    event = kit.one_event("hard_bounce", public_id, at=then)
    response = kit.post_events(app, [event], signed_at=then)
    assert response.status_code == 200, response.get_json()
    assert recipient_states(app, email_id)[ANN][0] == "bounced"
    assert [row.status for row in inbox_rows(app)] == ["applied"]


def test_mailgun_token_replayed_to_another_instance_is_refused(make_app: Any) -> None:
    kit = MailgunKit()
    first = kit.start(make_app)
    second = kit.start(make_app)  # another process sharing the database
    email_id, public_id = send_email(first)
    request = kit.request([kit.one_event("delivered", public_id)])
    assert post(first, kit, request).status_code == 200
    # the same token on a new event: the signature still matches, the token is spent
    body, headers = request
    replayed = body.replace(b"delivered", b"failed")
    response = post(second, kit, (replayed, headers))
    assert response.status_code == 406
    assert "used already" in response.get_json()["error"]
    assert len(stored_events(first)) == 1
    assert len(inbox_rows(first)) == 1
    assert recipient_states(first, email_id)[ANN][0] == "delivered"


def _failed_request(app: Flask, kit: SendGridKit, public_id: str) -> int:
    """Post a request whose apply fails (the event table refuses inserts); its row id."""
    remove = _fail_on(app, "maildelivery_event")
    try:
        response = kit.post_events(app, [kit.one_event("delivered", public_id)])
    finally:
        remove()
    assert response.status_code == 200
    return int(response.get_json()["inbox"])


def test_cli_lists_and_retries_failed_requests(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    runner = app.test_cli_runner()
    assert "no failed or pending" in runner.invoke(args=["maildelivery", "inbox", "list"]).output
    inbox_id = _failed_request(app, kit, public_id)
    listed = runner.invoke(args=["maildelivery", "inbox", "list"])
    assert listed.exit_code == 0
    [line] = listed.output.splitlines()
    assert line.startswith(f"{inbox_id}\tfailed\tsendgrid\t")
    assert "database unavailable" in line
    # still failing: one line, exit 1, no traceback
    remove = _fail_on(app, "maildelivery_event")
    try:
        result = runner.invoke(args=["maildelivery", "inbox", "retry", "--all"])
    finally:
        remove()
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "1 of 1 request(s) still failed" in result.output
    # the fault cleared: applied once
    result = runner.invoke(args=["maildelivery", "inbox", "retry", "--id", str(inbox_id)])
    assert result.exit_code == 0, result.output
    assert f"{inbox_id}: applied (1 stored" in result.output
    assert recipient_states(app, email_id)[ANN][0] == "delivered"
    again = runner.invoke(args=["maildelivery", "inbox", "retry", "--id", str(inbox_id)])
    assert again.exit_code == 1
    assert "applied already" in again.output
    assert len(stored_events(app)) == 1
    assert runner.invoke(args=["maildelivery", "inbox", "retry"]).exit_code == 2
    missing = runner.invoke(args=["maildelivery", "inbox", "retry", "--id", "999999"])
    assert missing.exit_code == 1
    assert "no webhook inbox row 999999" in missing.output


def test_purge_drops_old_applied_rows_and_keeps_failed_ones(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    failed_id = _failed_request(app, kit, public_id)
    assert kit.post_events(app, [kit.one_event("open", public_id)]).status_code == 200
    assert kit.post_events(app, [kit.one_event("click", public_id)]).status_code == 200
    old_ids = [row.id for row in inbox_rows(app)][:2]  # the failed one and one applied
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        session.execute(
            sa.update(inbox.inbox_t)
            .where(inbox.inbox_t.c.id.in_(old_ids))
            .values(received_at=datetime.now(UTC) - timedelta(days=8))
        )
        session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["maildelivery", "purge"])
    assert result.exit_code == 0, result.output
    assert "purged 1 webhook inbox row(s) older than 7 day(s)" in result.output
    kept = [(r.id, r.status) for r in inbox_rows(app)]
    assert len(kept) == 2
    assert kept[0] == (failed_id, "failed")
    result = runner.invoke(args=["maildelivery", "purge", "--inbox-failed"])
    assert "purged 1 webhook inbox row(s)" in result.output
    assert failed_id not in [r.id for r in inbox_rows(app)]


def test_the_log_page_counts_the_failed_inbox_requests(make_app: AppFactory) -> None:
    from flask_babel import Babel

    log = make_log_app(make_app)
    locale = {"value": "en"}
    Babel(log.app, locale_selector=lambda: locale["value"])
    log.viewer.user = ADMIN
    client = log.client()
    assert 'id="md-inbox-failed"' not in client.get("/maildelivery/").get_data(as_text=True)
    with log.app.app_context():
        session = MailDelivery.state(log.app).sessions()
        for status in (InboxStatus.FAILED, InboxStatus.FAILED, InboxStatus.APPLIED):
            session.add(
                WebhookInbox(provider="sendgrid", body=b"[]", status=status, error="database down")
            )
        session.commit()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert 'data-failed-inbox="2"' in html
    assert "2 webhook requests could not be applied" in html
    assert "flask maildelivery inbox retry" in html
    locale["value"] = "fr"
    html = client.get("/maildelivery/").get_data(as_text=True).replace("&#39;", "'")
    assert "2 notifications webhook n'ont pas pu être appliquées" in html


def test_after_response_answers_once_stored_and_applies_when_the_answer_is_closed(
    make_app: Any,
) -> None:
    kit = SendGridKit()
    app = kit.start(make_app, MAILDELIVERY_INBOX_APPLY="after_response")
    email_id, public_id = send_email(app)
    body, headers = kit.request([kit.one_event("delivered", public_id)])
    response = app.test_client().post(
        "/maildelivery/webhooks/sendgrid", data=body, headers=headers, buffered=True
    )
    [row] = inbox_rows(app)
    assert response.status_code == 200
    assert response.get_json() == {"inbox": row.id, "status": "stored"}
    response.close()  # what the server does once the answer is sent
    [row] = inbox_rows(app)
    assert (row.status, row.attempts) == ("applied", 1)
    assert recipient_states(app, email_id)[ANN][0] == "delivered"


def test_after_response_failure_leaves_the_row_failed(make_app: Any) -> None:
    kit = SendGridKit()
    app = kit.start(make_app, MAILDELIVERY_INBOX_APPLY="after_response")
    _, public_id = send_email(app)
    remove = _fail_on(app, "maildelivery_event")
    try:
        response = post(app, kit, kit.request([kit.one_event("delivered", public_id)]))
        assert response.status_code == 200
        response.close()
    finally:
        remove()
    [row] = inbox_rows(app)
    assert row.status == "failed"
    assert stored_events(app) == []
    with app.app_context():
        [outcome] = inbox.retry(app, row.id)
    assert outcome.applied


def test_an_unknown_apply_mode_is_refused(make_app: Any) -> None:
    with pytest.raises(ValueError, match='set it to "inline"'):
        make_app(MAILDELIVERY_INBOX_APPLY="later")
