"""The delivery log's JSON API (blueprint ``maildelivery_api``, at ``{URL_PREFIX}/api``).

* ``GET /api/emails``: a page of the log, with the list page's filters (``show``, ``status``,
  ``result``, ``from``, ``to``, ``recipient``, ``domain``, ``subject``), ``cursor`` and ``limit``;
* ``GET /api/emails/<id>``: one email with its recipients and their events, its copies
  (``resent_as``) and its review;
* ``POST /api/emails/<id>/review``: mark it reviewed, or take the review back (``undo``);
* ``GET /api/addresses``: the addresses with problems, worst first (``state``,
  ``contact_type``, ``cursor``, ``limit``);
* ``GET /api/addresses/<address>``: the health of one address (zeros for one never seen);
* ``GET /api/overview``: the overview page's figures (``tz``: the time zone of its days).

Same permissions and tenant scope as the pages (acting needs the host's
``action_permission_loader``). Errors are JSON: ``{"error": "..."}``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Flask, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..context import config_value, get_state
from ..review import review_email
from ..schemas import (
    AddressHealthSchema,
    AddressPageSchema,
    LogEmailPageSchema,
    OverviewSchema,
    dump_log_email,
)
from ..suppression import STATE_FAILING, STATE_SUPPRESSED, address_health
from . import addresses as address_list
from . import i18n, queries
from .access import check_actor, check_viewer
from .csrf import check_csrf
from .overview import rate_thresholds
from .reading import read_email, read_filter, read_overview, status_logs, viewer_tenant

#: Largest ``limit`` the list accepts.
MAX_LIMIT = 500


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _limit() -> int:
    """The ``limit`` argument (default ``MAILDELIVERY_PAGE_SIZE``)."""
    limit_arg = request.args.get("limit", "")
    if not limit_arg:
        return int(config_value("PAGE_SIZE"))
    try:
        return queries.parse_limit(limit_arg, MAX_LIMIT)
    except queries.FilterError as exc:
        raise _BadRequest(str(exc)) from None


def list_emails() -> ResponseReturnValue:
    """A page of the log as JSON."""
    try:
        log_filter = read_filter(request.args)
    except queries.FilterError as exc:
        raise _BadRequest(str(exc)) from None
    limit = _limit()
    with queries.reading() as connection:
        page = queries.log_page(connection, log_filter, viewer_tenant(), limit)
    data: dict[str, Any] = LogEmailPageSchema().dump(
        {
            "items": [
                {**asdict(row), "url": url_for("maildelivery_api.get_email", email_id=row.id)}
                for row in page.rows
            ],
            "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
            "previous_cursor": page.previous_cursor.encode() if page.previous_cursor else None,
        }
    )
    return data


def get_email(email_id: int) -> ResponseReturnValue:
    """One email with its recipients and their events as JSON."""
    email = read_email(email_id)
    if email is None:
        return jsonify(error=f"no email {email_id}"), 404
    logs = status_logs(email)
    recipients = [
        {**asdict(log.recipient), "contact_url": log.contact_url, "events": log.events}
        for log in logs.recipients
    ]
    resent_as = [
        {
            "id": copy.id,
            "sent_at": copy.sent_at,
            "result": copy.result,
            "url": url_for("maildelivery_api.get_email", email_id=copy.id),
        }
        for copy in email.resends
    ]
    return dump_log_email(
        email,
        recipients=recipients,
        other_events=logs.other_events,
        related_url=logs.related_url,
        resent_as=resent_as,
    )


def _undo_requested() -> bool:
    """``undo`` from a JSON body (``{"undo": true}``) or a form (``undo=1``)."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise _BadRequest('the body must be a JSON object, such as {"undo": true}')
        undo = body.get("undo", False)
        if not isinstance(undo, bool):
            raise _BadRequest("undo must be true or false")
        return undo
    return request.form.get("undo", "") in ("1", "true")


def review(email_id: int) -> ResponseReturnValue:
    """Mark an email reviewed (or take the review back with ``undo``); answers with the
    email as ``GET`` does."""
    check_csrf(json_allowed=True)
    check_actor()
    undo = _undo_requested()
    email = queries.get_email(get_state().sessions(), email_id, viewer_tenant())
    if email is None:
        return jsonify(error=f"no email {email_id}"), 404
    state = get_state()
    review_email(state, email.id, state.callbacks.current_user(), undo=undo)
    return get_email(email_id)


def list_addresses() -> ResponseReturnValue:
    """The addresses with problems, worst first, as JSON."""
    try:
        address_filter = address_list.AddressFilter.from_args(request.args)
    except queries.FilterError as exc:
        raise _BadRequest(str(exc)) from None
    page = address_list.address_rows(address_filter, _limit())
    items = []
    for row in page.rows:
        state = STATE_SUPPRESSED if row.suppressed else STATE_FAILING
        items.append({**asdict(row), "state": state, "last_failure_url": _email_url(row)})
    data: dict[str, Any] = AddressPageSchema().dump(
        {"items": items, "next_cursor": page.next_cursor.encode() if page.next_cursor else None}
    )
    return data


def _email_url(row: address_list.AddressRow) -> str | None:
    if row.last_failure_email_id is None:
        return None
    return url_for("maildelivery_api.get_email", email_id=row.last_failure_email_id)


def get_address(address: str) -> ResponseReturnValue:
    """The health of one address of the viewer's tenant (zeros for one never seen)."""
    health = address_health(get_state(), address, viewer_tenant())
    url = (
        url_for("maildelivery_api.get_email", email_id=health.last_failure_email_id)
        if health.last_failure_email_id is not None
        else None
    )
    data: dict[str, Any] = AddressHealthSchema().dump({**asdict(health), "last_failure_url": url})
    return data


#: The API's list of each page a count of the overview links to.
_API_LISTS = {
    "index": "maildelivery_api.list_emails",
    "addresses": "maildelivery_api.list_addresses",
}


def _api_list_url(args: dict[str, Any], endpoint: str = "maildelivery_api.list_emails") -> str:
    """The URL of the API's list (``endpoint``: the emails by default) with the query
    arguments ``args``."""
    return url_for(endpoint, **args)


def overview() -> ResponseReturnValue:
    """The overview's figures as JSON (the page's numbers; days in the viewer's time zone,
    or ``?tz=Europe/Paris``)."""
    zone_name = request.args.get("tz", "")
    zone = i18n.viewer_timezone()
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ValueError, ZoneInfoNotFoundError):
            raise _BadRequest(
                f"tz must be an IANA time zone name such as Europe/Paris, not {zone_name!r}"
            ) from None
    figures = read_overview(viewer_tenant(), zone)
    bounce, complaint = rate_thresholds()
    data: dict[str, Any] = OverviewSchema().dump(
        {
            **vars(figures),
            "domains": [
                {
                    **asdict(domain),
                    "rate": domain.rate,
                    "url": _api_list_url(
                        {
                            "show": "all",
                            "domain": domain.domain,
                            "from": figures.first_day.isoformat(),
                        }
                    ),
                }
                for domain in figures.domains
            ],
            "counts": [
                {
                    **asdict(count),
                    "capped": count.capped,
                    "url": None
                    if count.log_args is None
                    else _api_list_url(count.log_args, _API_LISTS[count.endpoint]),
                }
                for count in figures.counts
            ],
            "bounce_thresholds": bounce,
            "complaint_thresholds": complaint,
        }
    )
    return data


def create_api_blueprint(app: Flask) -> Blueprint:
    """The ``maildelivery_api`` blueprint at ``{MAILDELIVERY_URL_PREFIX}/api``.

    Anonymous requests go to Flask-Login's unauthorized handler like the pages; a host that
    wants a plain ``401`` for the API sets
    ``login_manager.blueprint_login_views["maildelivery_api"] = None``.
    """
    prefix = str(config_value("URL_PREFIX", app)).rstrip("/")
    blueprint = Blueprint("maildelivery_api", __name__, url_prefix=f"{prefix}/api")

    @blueprint.before_request
    def _check_viewer() -> BaseResponse | None:
        return check_viewer()

    @blueprint.errorhandler(_BadRequest)
    def _bad_request(exc: _BadRequest) -> ResponseReturnValue:
        return jsonify(error=exc.message), 400

    @blueprint.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    blueprint.add_url_rule("/emails", "list_emails", list_emails)
    # an id past the databases' integers names no email: the route does not match (404)
    email_id = f"<int(max={queries.MAX_ID}):email_id>"
    blueprint.add_url_rule(f"/emails/{email_id}", "get_email", get_email)
    blueprint.add_url_rule(f"/emails/{email_id}/review", "review", review, methods=["POST"])
    blueprint.add_url_rule("/addresses", "list_addresses", list_addresses)
    blueprint.add_url_rule("/addresses/<path:address>", "get_address", get_address)
    blueprint.add_url_rule("/overview", "overview", overview)
    return blueprint
