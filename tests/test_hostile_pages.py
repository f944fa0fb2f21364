"""Hostile query strings and ids on the log pages, the API and the CSV export: a bad id,
cursor, date or limit is a 400 (or a 404 for an id no email can have), never a 500, and
the CSV export refuses before it starts its stream. Ends with property tests: arbitrary
text and integers in every argument and id route."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_maildelivery.views.queries import MAX_ID, Cursor

from .log_helpers import ADMIN, LogApp, make_log_app, send_failed

LIST = "/maildelivery/"
API = "/maildelivery/api/emails"
CSV = "/maildelivery/export.csv"
LISTS = (LIST, API, CSV)


@pytest.fixture
def log(make_app: Any) -> LogApp:
    """The log app with one failed email, seen by an administrator; a 500 is answered as
    a 500 (not raised into the test), so that it is seen as a status."""
    log = make_log_app(make_app, PROPAGATE_EXCEPTIONS=False)
    log.viewer.user = ADMIN
    with log.app.app_context():
        send_failed(log)
    return log


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _get(log: LogApp, url: str) -> Any:
    response = log.client().get(url)
    response.get_data()  # the whole body: a stream that breaks midway fails here
    return response


@pytest.mark.parametrize(
    "path",
    [
        "/maildelivery/99999999999999999999",
        "/maildelivery/9223372036854775808",
        "/maildelivery/99999999999999999999/body.html",
        "/maildelivery/api/emails/99999999999999999999",
    ],
)
def test_an_id_past_the_largest_record_id_is_404(log: LogApp, path: str) -> None:
    assert _get(log, path).status_code == 404


def test_the_largest_record_id_is_an_ordinary_404(log: LogApp) -> None:
    assert _get(log, f"/maildelivery/{MAX_ID}").status_code == 404
    assert _get(log, f"/maildelivery/api/emails/{MAX_ID}").status_code == 404


@pytest.mark.parametrize("action", ["resend", "review"])
def test_posting_to_an_id_past_the_largest_is_404(log: LogApp, action: str) -> None:
    response = log.client().post(f"/maildelivery/99999999999999999999/{action}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "cursor",
    [
        _token("a|2024-01-01T00:00:00+00:00|99999999999999999999"),
        _token("a|2024-01-01T00:00:00+00:00|9223372036854775808"),
        _token("a|2024-01-01T00:00:00+00:00|" + "9" * 25),
        _token("a|2024-01-01T00:00:00+00:00|\u0663"),
        _token("a|9999-12-31T23:59:59-05:00|1"),
        _token("b|0001-01-01T00:00:00+05:00|1"),
        _token("a|0001-01-01T00:00:00+00:00|1"),
        _token("a|9999-12-31T23:59:59+00:00|1"),
    ],
)
@pytest.mark.parametrize("url", LISTS)
def test_a_cursor_out_of_range_is_400(log: LogApp, url: str, cursor: str) -> None:
    response = _get(log, f"{url}?show=all&cursor={cursor}")
    assert response.status_code == 400
    assert "cursor is not valid" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "query", ["to=9999-12-31", "from=9999-12-31", "from=0001-01-01", "to=0999-12-31"]
)
@pytest.mark.parametrize("url", LISTS)
def test_a_date_out_of_range_is_400(log: LogApp, url: str, query: str) -> None:
    response = _get(log, f"{url}?show=all&{query}")
    assert response.status_code == 400
    assert "must be a date from 1000-01-01 to 9998-12-31" in response.get_data(as_text=True)


@pytest.mark.parametrize("url", LISTS)
def test_the_last_accepted_dates_answer(log: LogApp, url: str) -> None:
    response = _get(log, f"{url}?show=all&from=1000-01-01&to=9998-12-31")
    assert response.status_code == 200


@pytest.mark.parametrize("limit", ["\u0663", "\u00b2", "\uff11", "1" * 30, "-1", "+1"])
def test_a_limit_not_in_ascii_digits_is_400(log: LogApp, limit: str) -> None:
    response = _get(log, f"{API}?limit={quote(limit)}")
    assert response.status_code == 400
    assert "limit must be a whole number" in response.get_json()["error"]


@pytest.mark.parametrize("name", ["recipient", "subject", "status", "from", "cursor"])
@pytest.mark.parametrize("url", LISTS)
def test_a_nul_in_the_query_is_400(log: LogApp, url: str, name: str) -> None:
    response = _get(log, f"{url}?show=all&{name}=ann%00")
    assert response.status_code == 400


def test_the_csv_export_refuses_before_it_streams(log: LogApp) -> None:
    response = log.client().get(f"{CSV}?show=all&to=9999-12-31")
    assert response.status_code == 400
    assert not response.is_streamed or response.get_data()


def test_a_valid_cursor_still_pages(log: LogApp) -> None:
    with log.app.app_context():
        send_failed(log, subject="second")
    first = _get(log, f"{API}?show=all&limit=1").get_json()
    cursor = Cursor.decode(first["next_cursor"])
    assert cursor.id == first["items"][0]["id"]
    second = _get(log, f"{API}?show=all&limit=1&cursor={first['next_cursor']}")
    assert second.status_code == 200
    assert len(second.get_json()["items"]) == 1


# property tests: anything in a query argument or an id is a 2xx or a 4xx

#: Text a URL can carry (a lone surrogate cannot be percent-encoded as UTF-8).
url_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
#: Cursor tokens: random text, or a well-formed token holding arbitrary parts.
cursors = st.one_of(
    url_text,
    st.builds(
        lambda d, moment, id_: _token(f"{d}|{moment}|{id_}"),
        st.sampled_from(["a", "b", "x"]),
        st.one_of(
            st.datetimes(timezones=st.timezones()).map(lambda m: m.isoformat()),
            url_text,
        ),
        st.one_of(st.integers().map(str), url_text),
    ),
)
ARGUMENTS = ("show", "status", "result", "from", "to", "recipient", "subject", "overdue")
queries = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.one_of(url_text, st.integers().map(str)) for name in ARGUMENTS},
        "from": st.one_of(url_text, st.dates().map(str)),
        "to": st.one_of(url_text, st.dates().map(str)),
        "cursor": cursors,
        "limit": st.one_of(url_text, st.integers().map(str)),
    },
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(args=queries, url=st.sampled_from(LISTS))
def test_any_query_is_answered_without_a_server_error(
    log: LogApp, args: dict[str, str], url: str
) -> None:
    response = log.client().get(url, query_string=args)
    response.get_data()
    assert response.status_code < 500, (url, args)


@FUZZ
@given(
    email_id=st.one_of(st.integers(min_value=0), st.integers(min_value=2**62)),
    path=st.sampled_from(["/maildelivery/{}", "/maildelivery/{}/body.html", API + "/{}"]),
)
def test_any_id_is_answered_without_a_server_error(log: LogApp, email_id: int, path: str) -> None:
    response = log.client().get(path.format(email_id))
    assert response.status_code in (200, 404), (path, email_id)
