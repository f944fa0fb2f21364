"""What is particular to the Mailgun webhook; the mapping of each documented event, like the
rest of what every provider webhook keeps, is in ``test_webhooks_contract.py``."""

from __future__ import annotations

from typing import Any

from .kits import MailgunKit, post
from .webhook_helpers import (
    email_result,
    recipient_states,
    send_email,
    set_message_id,
    stored_events,
)


def test_reused_token_is_refused_with_406(make_app: Any) -> None:
    kit = MailgunKit()
    app = kit.start(make_app)
    _, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    body, headers = kit.request([event])
    assert post(app, kit, (body, headers)).status_code == 200
    # same token and signature, another body: the signature does not cover the body
    forged = body.replace(b"delivered", b"complained")
    response = post(app, kit, (forged, headers))
    assert response.status_code == 406
    assert "used already" in response.get_json()["error"]
    assert [e.type for e in stored_events(app)] == ["delivered"]


def test_token_of_a_failed_request_is_not_remembered(make_app: Any) -> None:
    """A request we failed to store is retried by Mailgun with the same token: accept it."""
    import sqlalchemy as sa

    from flask_maildelivery.extension import MailDelivery

    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("delivered", public_id)
    request = kit.request([event])
    with app.app_context():
        engine = MailDelivery.state(app).db.engine

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            raise sa.exc.OperationalError(statement, {}, Exception("database is gone"))

    sa.event.listen(engine, "before_cursor_execute", fail)
    try:
        assert post(app, kit, request).status_code == 503
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail)
    assert post(app, kit, request).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "delivered"


def test_suppressed_failure_is_dropped(make_app: Any) -> None:
    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, public_id = send_email(app)
    event = kit.one_event("hard_bounce", public_id)
    event["reason"] = "suppress-bounce"
    assert kit.post_events(app, [event]).status_code == 200
    assert recipient_states(app, email_id)["ann@customer.test"][0] == "dropped"


def test_message_id_matches_with_or_without_brackets(make_app: Any) -> None:
    kit = MailgunKit()
    app = kit.start(make_app)
    email_id, _ = send_email(app)
    set_message_id(app, email_id, "<20240101.abc@mg.acme.test>")
    event = kit.one_event("delivered", None, message_id="20240101.abc@mg.acme.test")
    assert kit.post_events(app, [event]).status_code == 200
    assert email_result(app, email_id) == ("delivered", "")
