"""An app without ``SECRET_KEY``: a warning at registration that says what to set, and log
pages that still open, the detail page saying why it offers no resend form."""

from __future__ import annotations

import logging

import pytest

from .conftest import AppFactory
from .log_helpers import ADMIN, make_log_app, send_failed

EXPLANATION = "To resend from this page, set SECRET_KEY in the app&#39;s configuration"


def test_registration_warns_that_the_resend_form_needs_a_secret_key(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_maildelivery"):
        make_app(SECRET_KEY=None)
    [record] = [r for r in caplog.records if r.name == "flask_maildelivery"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "no SECRET_KEY" in message
    assert "Set SECRET_KEY" in message
    assert "CSRF token is kept in the session" in message


def test_no_warning_with_a_secret_key(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_maildelivery"):
        make_app()
    assert [r for r in caplog.records if r.name == "flask_maildelivery"] == []


@pytest.mark.parametrize("flask_wtf", [False, True], ids=["own-token", "flask-wtf"])
def test_pages_open_without_a_secret_key(make_app: AppFactory, flask_wtf: bool) -> None:
    log = make_log_app(make_app, SECRET_KEY=None)
    if flask_wtf:
        from flask_wtf.csrf import CSRFProtect

        CSRFProtect(log.app)
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    client = log.client()
    listing = client.get("/maildelivery/")
    assert listing.status_code == 200
    assert f'href="/maildelivery/{email_id}"' in listing.get_data(as_text=True)
    detail = client.get(f"/maildelivery/{email_id}")
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    assert EXPLANATION in html
    assert 'name="csrf_token"' not in html
    if not flask_wtf:  # (CSRFProtect's own check fails every POST without a secret key)
        assert client.post(f"/maildelivery/{email_id}/resend").status_code == 400


def test_the_resend_form_is_back_with_a_secret_key(make_app: AppFactory) -> None:
    log = make_log_app(make_app)
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    html = log.client().get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert 'name="csrf_token"' in html
    assert EXPLANATION not in html


def test_the_explanation_is_translated(make_app: AppFactory) -> None:
    from flask_babel import Babel

    log = make_log_app(make_app, SECRET_KEY=None)
    Babel(log.app, locale_selector=lambda: "fr")
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    html = log.client().get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert "Pour renvoyer depuis cette page, définissez SECRET_KEY" in html
