"""Review, resolution and safe resends on every database: the pages (CSRF, the action
permission), the API, the code API, the command line and the signals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_maildelivery import MailDelivery, ResendRefused, SendRefused, signals
from flask_maildelivery.models import Email
from flask_maildelivery.sending import CopyStillOnItsWay, ResendNeedsConfirmation
from flask_maildelivery.testing import outbox, simulate_event

from .conftest import AppFactory
from .log_helpers import ADMIN, LogApp, User, csrf_client, listed_ids, make_log_app, send_failed

AUDITOR = User("auditor", is_admin=True)
API = "/maildelivery/api/emails"


@pytest.fixture
def log(make_app: AppFactory) -> LogApp:
    """An app with the log pages; the administrator acts, the auditor may only look."""
    log = make_log_app(make_app)
    log.viewer.user = ADMIN
    log.extension.action_permission_loader(lambda user: user.id != AUDITOR.id)
    return log


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """``email_reviewed`` and ``email_resolved`` as they are sent."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def reviewed(sender: Flask, **kwargs: Any) -> None:
        seen.append(("reviewed", kwargs))

    def resolved(sender: Flask, **kwargs: Any) -> None:
        seen.append(("resolved", kwargs))

    with (
        signals.email_reviewed.connected_to(reviewed),
        signals.email_resolved.connected_to(resolved),
    ):
        yield seen


def _client(log: LogApp) -> Any:
    return csrf_client(log)


def _email(app: Flask, email_id: int) -> Email:
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        email = session.get(Email, email_id)
        assert email is not None
        session.expunge(email)
        return email


def _copies(app: Flask, email_id: int) -> list[Email]:
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        copies = list(
            session.scalars(
                sa.select(Email).where(Email.resent_from_id == email_id).order_by(Email.id)
            )
        )
        for copy in copies:
            _ = copy.recipients
        session.expunge_all()
        return copies


def _count(app: Flask) -> int:
    with app.app_context():
        session = MailDelivery.state(app).sessions()
        return int(session.scalar(sa.select(sa.func.count()).select_from(Email)) or 0)


def _deliver(app: Flask, copy_id: int, address: str, type_: str = "delivered") -> None:
    with app.app_context():
        copy = MailDelivery.state(app).sessions().get(Email, copy_id)
        assert copy is not None
        simulate_event(copy, type_, recipient=address)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- review -------------------------------------------------------------------------------


def test_review_takes_the_email_off_the_attention_list_and_undo_puts_it_back(
    log: LogApp, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    client = _client(log)
    assert listed_ids(client.get("/maildelivery/").get_data(as_text=True)) == [email_id]
    page = client.get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert "Mark reviewed" in page
    assert "Not reviewed" in page

    # no token, a wrong token: refused, nothing changes
    assert client.post(f"/maildelivery/{email_id}/review").status_code == 400
    assert (
        client.post(f"/maildelivery/{email_id}/review", data={"csrf_token": "x"}).status_code == 400
    )
    assert _email(log.app, email_id).reviewed_at is None

    response = client.post(f"/maildelivery/{email_id}/review", data={"csrf_token": "token"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/maildelivery/{email_id}"
    reviewed = _email(log.app, email_id)
    assert reviewed.reviewed_at is not None
    assert reviewed.reviewed_by == "admin"
    page = _text(client.get(f"/maildelivery/{email_id}").get_data(as_text=True))
    assert "Marked reviewed" in page
    assert "Reviewed by admin on" in page
    assert "Undo review" in page

    # off the attention list, still under all emails with its marker
    assert listed_ids(client.get("/maildelivery/").get_data(as_text=True)) == []
    everything = client.get("/maildelivery/?show=all").get_data(as_text=True)
    assert listed_ids(everything) == [email_id]
    assert 'data-marker="reviewed"' in everything

    # a second review keeps the first one and signals nothing
    client.post(f"/maildelivery/{email_id}/review", data={"csrf_token": "token"})
    assert _email(log.app, email_id).reviewed_at == reviewed.reviewed_at
    assert [(name, kw["reviewed"]) for name, kw in recorded] == [("reviewed", True)]
    assert recorded[0][1]["user"] is ADMIN
    assert recorded[0][1]["email"].id == email_id

    response = client.post(
        f"/maildelivery/{email_id}/review", data={"csrf_token": "token", "undo": "1"}
    )
    assert response.status_code == 302
    assert (_email(log.app, email_id).reviewed_at, _email(log.app, email_id).reviewed_by) == (
        None,
        None,
    )
    assert listed_ids(client.get("/maildelivery/").get_data(as_text=True)) == [email_id]
    assert [(name, kw["reviewed"]) for name, kw in recorded] == [
        ("reviewed", True),
        ("reviewed", False),
    ]


def test_review_in_code_through_the_extension(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
        email = log.extension.review(email_id, AUDITOR)
        assert (email.reviewed_by, email.reviewed_at is not None) == ("auditor", True)
        email = log.extension.review(email_id, None, undo=True)
        assert email.reviewed_at is None
        with pytest.raises(LookupError):
            log.extension.review(424242, ADMIN)


def test_an_auditor_sees_the_log_but_cannot_act(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    log.viewer.user = AUDITOR
    client = _client(log)
    page = client.get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert client.get(f"/maildelivery/{email_id}").status_code == 200
    for button in ("Resend to failed recipients", "Mark reviewed", "Undo review"):
        assert button not in page
    for action in ("review", "resend"):
        response = client.post(f"/maildelivery/{email_id}/{action}", data={"csrf_token": "token"})
        assert response.status_code == 403
    response = client.post(f"{API}/{email_id}/review", json={})
    assert response.status_code == 403
    assert "error" in response.get_json()
    assert _email(log.app, email_id).reviewed_at is None
    assert _count(log.app) == 1


def test_review_through_the_api(log: LogApp, recorded: list[tuple[str, dict[str, Any]]]) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    client = _client(log)
    data = client.get(f"{API}/{email_id}").get_json()
    assert (data["reviewed_at"], data["reviewed_by"], data["resolved_by_id"]) == (None, None, None)
    assert data["resent_as"] == []

    response = client.post(f"{API}/{email_id}/review", json={})
    assert response.status_code == 200
    data = response.get_json()
    assert data["reviewed_by"] == "admin"
    assert data["reviewed_at"].endswith("+00:00")
    items = client.get(f"{API}?show=all").get_json()["items"]
    assert items[0]["reviewed_at"] == data["reviewed_at"]
    assert client.get(API).get_json()["items"] == []

    # a form post needs the token; a JSON body needs none (no cross-site JSON without CORS)
    assert client.post(f"{API}/{email_id}/review", data={"undo": "1"}).status_code == 400
    response = client.post(f"{API}/{email_id}/review", data={"undo": "1", "csrf_token": "token"})
    assert response.get_json()["reviewed_at"] is None
    response = client.post(f"{API}/{email_id}/review", json={"undo": "yes"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "undo must be true or false"}
    response = client.post(f"{API}/{email_id}/review", json={"undo": False})
    assert response.get_json()["reviewed_by"] == "admin"
    assert client.post(f"{API}/424242/review", json={}).status_code == 404
    assert [kw["reviewed"] for _, kw in recorded] == [True, False, True]


# -- resolution ---------------------------------------------------------------------------


def test_a_delivered_copy_resolves_the_original(
    log: LogApp, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id  # ann bounced (contact customer 7), bob delivered
    log.viewer.contact_addresses[("customer", "7")] = "ann.fixed@customer.test"
    client = _client(log)
    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "token"})
    [copy] = _copies(log.app, email_id)
    assert response.headers["Location"] == f"/maildelivery/{copy.id}"
    assert [r.address for r in copy.recipients] == ["ann.fixed@customer.test"]
    # the copy is on its way: the original is not resolved yet
    assert listed_ids(client.get("/maildelivery/").get_data(as_text=True)) == [email_id]
    everything = client.get("/maildelivery/?show=all").get_data(as_text=True)
    assert 'data-copies="1"' in everything
    assert "resent once" in everything

    _deliver(log.app, copy.id, "ann.fixed@customer.test")
    assert _email(log.app, email_id).resolved_by_id == copy.id
    assert [(name, kw["email"].id, kw["copy"].id) for name, kw in recorded] == [
        ("resolved", email_id, copy.id)
    ]
    # once: later news of the copy resolves nothing again
    _deliver(log.app, copy.id, "ann.fixed@customer.test", "opened")
    assert len(recorded) == 1

    assert listed_ids(client.get("/maildelivery/").get_data(as_text=True)) == []
    everything = client.get("/maildelivery/?show=all").get_data(as_text=True)
    assert 'data-marker="resolved"' in everything
    page = _text(client.get(f"/maildelivery/{email_id}").get_data(as_text=True))
    assert f"Resolved by record no. {copy.id}" in page
    assert "Resend to failed recipients" not in page
    data = client.get(f"{API}/{email_id}").get_json()
    assert data["resolved_by_id"] == copy.id
    assert [(c["id"], c["result"]) for c in data["resent_as"]] == [(copy.id, "delivered")]


def test_each_failed_recipient_needs_a_delivered_copy(
    log: LogApp, recorded: list[tuple[str, dict[str, Any]]]
) -> None:
    with log.app.app_context():
        original = log.extension.send(
            subject="Invoice", to=["ann@customer.test", "bob@customer.test"], text="x"
        )
        simulate_event(original, "bounced", recipient="ann@customer.test")
        simulate_event(original, "dropped", recipient="bob@customer.test")
        email_id = original.id
        first = log.extension.resend(email_id, confirm=True)
        assert sorted(r.address for r in first.recipients) == [
            "ann@customer.test",
            "bob@customer.test",
        ]
        first_id = first.id
    _deliver(log.app, first_id, "ann@customer.test")
    _deliver(log.app, first_id, "bob@customer.test", "bounced")
    assert _email(log.app, email_id).resolved_by_id is None
    with log.app.app_context():
        # ann has her copy already: the second copy goes to bob only
        second = log.extension.resend(email_id, confirm=True)
        assert [r.address for r in second.recipients] == ["bob@customer.test"]
        second_id = second.id
    _deliver(log.app, second_id, "bob@customer.test")
    assert _email(log.app, email_id).resolved_by_id == second_id
    assert [(kw["email"].id, kw["copy"].id) for _, kw in recorded] == [(email_id, second_id)]
    with log.app.app_context(), pytest.raises(ResendRefused, match="has a delivered copy"):
        log.extension.resend(email_id, force=True)


# -- resend safety ------------------------------------------------------------------------


def test_a_resend_is_refused_while_a_copy_is_on_its_way(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    log.viewer.contact_addresses[("customer", "7")] = "ann.fixed@customer.test"
    client = _client(log)
    client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "token"})
    [copy] = _copies(log.app, email_id)
    sent = len(outbox(log.app))

    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "token"})
    assert response.headers["Location"] == f"/maildelivery/{email_id}"
    page = _text(client.get(response.headers["Location"]).get_data(as_text=True))
    assert (
        f"Not sent again: its copy, record no. {copy.id}, is still on its way to "
        "ann.fixed@customer.test. Wait for its outcome." in page
    )
    with log.app.app_context():
        with pytest.raises(CopyStillOnItsWay) as refused:
            log.extension.resend(email_id)
        assert isinstance(refused.value, ResendRefused)
        assert isinstance(refused.value, SendRefused)
        assert refused.value.copy_id == copy.id
    assert (_count(log.app), len(outbox(log.app))) == (2, sent)  # nothing recorded or sent

    # deferred is still on its way; a bounce is an outcome
    _deliver(log.app, copy.id, "ann.fixed@customer.test", "deferred")
    with log.app.app_context(), pytest.raises(CopyStillOnItsWay):
        log.extension.resend(email_id)
    _deliver(log.app, copy.id, "ann.fixed@customer.test", "bounced")
    log.viewer.contact_addresses[("customer", "7")] = "ann.again@customer.test"
    with log.app.app_context():
        assert log.extension.resend(email_id).recipients[0].address == "ann.again@customer.test"


def test_force_resends_while_a_copy_is_on_its_way(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
        log.extension.resend(email_id, confirm=True)
        forced = log.extension.resend(email_id, force=True)
        assert forced.resent_from_id == email_id
    assert len(_copies(log.app, email_id)) == 2


def test_the_page_asks_before_resending_to_an_unchanged_address(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    client = _client(log)
    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "token"})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/maildelivery/{email_id}?resend=confirm"
    assert _count(log.app) == 1  # nothing sent or recorded
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    question = _text(page[page.index('id="md-confirm-resend"') :])
    assert "Resend to the same address?" in question
    assert "ann@customer.test" in question
    assert "550 5.1.1 mailbox does not exist" in question  # the old failure reason
    assert 'name="confirm" value="1"' in page
    with log.app.app_context(), pytest.raises(ResendNeedsConfirmation) as asked:
        log.extension.resend(email_id)
    assert asked.value.unchanged == [
        ("ann@customer.test", "bounced", "550 5.1.1 mailbox does not exist")
    ]

    response = client.post(
        f"/maildelivery/{email_id}/resend", data={"csrf_token": "token", "confirm": "1"}
    )
    [copy] = _copies(log.app, email_id)
    assert response.headers["Location"] == f"/maildelivery/{copy.id}"
    assert [r.address for r in copy.recipients] == ["ann@customer.test"]


def test_a_corrected_contact_address_needs_no_confirmation(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    log.viewer.contact_addresses[("customer", "7")] = "ann.fixed@customer.test"
    client = _client(log)
    page = client.get(f"/maildelivery/{email_id}?resend=confirm").get_data(as_text=True)
    assert "md-confirm-resend" not in page
    response = client.post(f"/maildelivery/{email_id}/resend", data={"csrf_token": "token"})
    [copy] = _copies(log.app, email_id)
    assert response.headers["Location"] == f"/maildelivery/{copy.id}"


def test_without_an_address_loader_every_address_is_unchanged(make_app: AppFactory) -> None:
    app = make_app()
    extension: MailDelivery = MailDelivery.state(app).extension
    with app.app_context():
        email = extension.send(subject="x", to=["ann@customer.test"], text="x")
        simulate_event(email, "bounced", reason="550 no such user")
        with pytest.raises(ResendNeedsConfirmation, match="550 no such user"):
            extension.resend(email.id)
        assert extension.resend(email.id, force=True).resent_from_id == email.id


# -- command line -------------------------------------------------------------------------


def test_cli_resend_refusals_are_one_line_and_force_overrides_them(log: LogApp) -> None:
    with log.app.app_context():
        email_id = send_failed(log).id
    runner = log.app.test_cli_runner()
    result = runner.invoke(args=["maildelivery", "resend", str(email_id)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"Error: email {email_id}: unchanged since it failed: ")
    assert "ann@customer.test (bounced: 550 5.1.1 mailbox does not exist)" in result.output
    assert result.output.endswith("(pass --force to resend anyway)\n")
    assert _count(log.app) == 1

    result = runner.invoke(args=["maildelivery", "resend", "--force", str(email_id)])
    assert result.exit_code == 0, result.output
    [copy] = _copies(log.app, email_id)
    assert result.output == f"resent as email {copy.id} (result queued)\n"

    result = runner.invoke(args=["maildelivery", "resend", str(email_id)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: email {email_id}: its copy {copy.id} is still on its way to "
        "ann@customer.test; wait for its outcome before resending "
        "(pass --force to resend anyway)\n"
    )
    result = runner.invoke(args=["maildelivery", "resend", "424242"])
    assert (result.exit_code, result.output) == (1, "Error: no email 424242\n")
    assert runner.invoke(args=["maildelivery", "resend", "--force", str(email_id)]).exit_code == 0
    assert len(_copies(log.app, email_id)) == 2
