"""What the log pages answer around their content, on every database: the 400, 403 and 404
pages inside the log's layout (and the host's), the list's title, the filter form's empty
fields left out of the URL, the pages' Content-Security-Policy and the detail page's live
refresh script."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from jinja2 import DictLoader

from flask_maildelivery.testing import simulate_event
from flask_maildelivery.views.csrf import CSRF_SESSION_KEY

from .conftest import AppFactory
from .log_helpers import ADMIN, CLERK, LogApp, make_log_app, send_delivered, send_failed

HOST_LAYOUT = (
    "<html><head>{% block head %}{% endblock %}</head>"
    "<body><nav>Host ERP</nav>{% block content %}{% endblock %}</body></html>"
)


@pytest.fixture
def log(make_app: AppFactory) -> LogApp:
    return make_log_app(make_app)


def _text(html: str) -> str:
    return html.replace("&#39;", "'")


def test_an_unknown_email_is_a_404_page_inside_the_log_layout(log: LogApp) -> None:
    log.viewer.user = ADMIN
    response = log.client().get("/maildelivery/424242")
    assert response.status_code == 404
    html = _text(response.get_data(as_text=True))
    assert "/maildelivery/static/maildelivery.css" in html  # the log's layout
    assert '<h1 id="md-error-title">Not found</h1>' in html
    assert "There is no such email in the delivery log." in html
    assert '<a class="md-button" href="/maildelivery/">Back to the delivery log</a>' in html


def test_a_user_who_may_not_see_the_log_gets_a_403_page_pointing_home(log: LogApp) -> None:
    log.viewer.user = CLERK
    response = log.client().get("/maildelivery/")
    assert response.status_code == 403
    html = _text(response.get_data(as_text=True))
    assert "Access refused" in html
    assert "Your account may not see the email delivery log." in html
    # the log would refuse again: the way back is the site's home
    assert '<a class="md-button" href="/">Back to the home page</a>' in html
    assert 'href="/maildelivery/"' not in html


def test_a_reader_who_may_not_act_gets_a_403_page_back_to_the_log(log: LogApp) -> None:
    log.extension.action_permission_loader(lambda user: False)
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    client = log.client()
    with client.session_transaction() as session:
        session[CSRF_SESSION_KEY] = "token"
    response = client.post(f"/maildelivery/{email_id}/review", data={"csrf_token": "token"})
    assert response.status_code == 403
    html = _text(response.get_data(as_text=True))
    assert "Your account may read the delivery log but not act on it." in html
    assert 'href="/maildelivery/">Back to the delivery log</a>' in html


def test_a_bad_filter_and_an_expired_form_are_400_pages_naming_the_problem(log: LogApp) -> None:
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = send_failed(log).id
    client = log.client()
    response = client.get("/maildelivery/?from=yesterday")
    assert response.status_code == 400
    html = _text(response.get_data(as_text=True))
    assert "This request cannot be answered" in html
    assert "from must be a date written YYYY-MM-DD" in html
    response = client.post(f"/maildelivery/{email_id}/review", data={"csrf_token": "stale"})
    assert response.status_code == 400
    assert "The form has expired. Reload the page and try again." in _text(
        response.get_data(as_text=True)
    )


def test_error_pages_sit_in_the_hosts_layout_and_speak_french(make_app: AppFactory) -> None:
    from flask_babel import Babel

    log = make_log_app(make_app, MAILDELIVERY_BASE_TEMPLATE="layout.html")
    log.app.jinja_loader = DictLoader({"layout.html": HOST_LAYOUT})
    Babel(log.app, locale_selector=lambda: "fr")
    log.viewer.user = ADMIN
    response = log.client().get("/maildelivery/424242")
    assert response.status_code == 404
    html = _text(response.get_data(as_text=True))
    assert "<nav>Host ERP</nav>" in html
    assert "Introuvable" in html
    assert "Aucun e-mail de ce numéro dans l'historique d'envoi." in html
    assert "Retour à l'historique d'envoi" in html
    log.viewer.user = CLERK
    html = _text(log.client().get("/maildelivery/").get_data(as_text=True))
    assert "Accès refusé" in html
    assert "Retour à l'accueil" in html


def test_the_list_is_titled_by_what_it_shows(log: LogApp) -> None:
    log.viewer.user = ADMIN
    client = log.client()
    html = client.get("/maildelivery/").get_data(as_text=True)
    assert "<h1>Emails needing attention</h1>" in html
    assert "<title>Emails needing attention · Email delivery log</title>" in html
    html = client.get("/maildelivery/?show=all").get_data(as_text=True)
    assert "<h1>All emails</h1>" in html


def test_empty_filter_fields_are_left_out_of_the_url(log: LogApp) -> None:
    log.viewer.user = ADMIN
    client = log.client()
    # what the filter form sends when only the status was chosen
    response = client.get(
        "/maildelivery/?show=all&recipient=&subject=&status=bounced&result=&from=&to="
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/maildelivery/"
    assert parse_qsl(location.query) == [("show", "all"), ("status", "bounced")]
    assert client.get(response.headers["Location"]).status_code == 200
    # every field empty: the plain list
    response = client.get("/maildelivery/?recipient=&subject=")
    assert response.status_code == 302
    assert response.headers["Location"] == "/maildelivery/"


def test_the_packages_own_layout_sends_a_strict_content_security_policy(
    make_app: AppFactory,
) -> None:
    log = make_log_app(make_app)
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = log.extension.send(subject="On its way", to=["ann@customer.test"], text="x").id
    response = log.client().get(f"/maildelivery/{email_id}")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "style-src 'self';" in policy  # no inline style anywhere on the pages
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == [
        f'<script src="/maildelivery/static/maildelivery.js" nonce="{nonce.group(1)}" defer>'
    ]
    assert " style=" not in html
    # a new nonce per response
    again = log.client().get(f"/maildelivery/{email_id}").headers["Content-Security-Policy"]
    assert again != policy


def test_a_host_layout_keeps_the_hosts_own_policy_and_nonce(make_app: AppFactory) -> None:
    from flask import g

    log = make_log_app(make_app, MAILDELIVERY_BASE_TEMPLATE="layout.html")
    log.app.jinja_loader = DictLoader({"layout.html": HOST_LAYOUT})

    @log.app.before_request
    def _host_nonce() -> None:
        g.csp_nonce = "host-nonce"

    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = log.extension.send(subject="On its way", to=["ann@customer.test"], text="x").id
    response = log.client().get(f"/maildelivery/{email_id}")
    assert "Content-Security-Policy" not in response.headers  # the host decides
    assert 'nonce="host-nonce"' in response.get_data(as_text=True)


def test_only_an_email_on_its_way_gets_the_refresh_script(make_app: AppFactory) -> None:
    log = make_log_app(make_app)
    log.viewer.user = ADMIN
    with log.app.app_context():
        waiting = log.extension.send(subject="On its way", to=["ann@customer.test"], text="x")
        simulate_event(waiting, "deferred", recipient="ann@customer.test", reason="421 later")
        waiting_id = waiting.id
        delivered_id = send_delivered(log).id
    client = log.client()
    html = client.get(f"/maildelivery/{waiting_id}").get_data(as_text=True)
    assert 'id="md-live"' in html
    assert f'data-poll-url="/maildelivery/api/emails/{waiting_id}"' in html
    assert 'data-poll-seconds="5"' in html
    recipient_id = client.get(f"/maildelivery/api/emails/{waiting_id}").get_json()["recipients"][0][
        "id"
    ]
    # what the page shows, in the form the script compares with the API's answer
    assert f'data-signature="processed|deferred|{recipient_id}:deferred:1|0"' in html
    html = client.get(f"/maildelivery/{delivered_id}").get_data(as_text=True)
    assert 'id="md-live"' not in html
    assert "<script" not in html


def test_the_refresh_can_be_turned_off(make_app: AppFactory) -> None:
    log = make_log_app(make_app, MAILDELIVERY_DETAIL_REFRESH_SECONDS=0)
    log.viewer.user = ADMIN
    with log.app.app_context():
        email_id = log.extension.send(subject="On its way", to=["ann@customer.test"], text="x").id
    html = log.client().get(f"/maildelivery/{email_id}").get_data(as_text=True)
    assert "<script" not in html
