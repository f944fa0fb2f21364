"""The delivery log pages (blueprint ``maildelivery``): the list, the detail page, the email's
HTML body for its sandboxed frame, the resend and review actions and the CSV export.

The pages only read; the resend goes through :func:`flask_maildelivery.sending.resend_email`,
the review through :func:`flask_maildelivery.review.review_email`.
They work without JavaScript: the "Show all emails" toggle, the filters and the pagination
are links and ``GET`` forms, the headers fold with ``<details>``.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from ..config import DEFAULTS
from ..context import config_value, get_state
from ..copies import ON_ITS_WAY_RESULTS, ON_ITS_WAY_STATUSES, is_failure, is_unchanged
from ..review import review_email
from ..sending import (
    CopyStillOnItsWay,
    ResendNeedsConfirmation,
    SendRefused,
    resend_address,
    resend_email,
)
from ..suppression import address_records, lift_suppression
from ..tracking import tracking, tracking_health
from ..webhooks import inbox
from . import addresses as address_list
from . import i18n, labels, overview, queries
from .access import check_actor, check_viewer
from .csrf import check_csrf, csrf_available, csrf_token
from .reading import read_email, read_filter, read_overview, status_logs, viewer_tenant

#: Content-Security-Policy of a stored HTML body: nothing remote loads (no tracking pixel
#: fires when someone looks), no script runs, no form posts, no plugin; inline styles and
#: ``data:`` images only. ``sandbox`` also applies when the body is opened outside its frame.
BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)
#: Flash category of the pages' own messages.
FLASH_CATEGORY = "maildelivery"


#: The template of the badge macros (``status_badge``, ``result_badge``).
MACROS_TEMPLATE = "maildelivery/_macros.html"


#: Content-Security-Policy of the pages when they use the package's own layout
#: (``MAILDELIVERY_BASE_TEMPLATE`` left at its default): the stylesheet and the script are
#: the package's own files, the email's body frame is same-origin, nothing else loads.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
    "img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)


def csp_nonce() -> str:
    """The nonce of this response's script tags: the host's own (``g.csp_nonce``, or
    Flask-Talisman's ``request.csp_nonce``) when it sets one, else one made for this
    request (and sent in :data:`PAGE_CSP` with the package's own layout)."""
    nonce = getattr(g, "csp_nonce", None) or getattr(request, "csp_nonce", None)
    if not nonce:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return str(nonce)


def _set_csp(response: BaseResponse) -> BaseResponse:
    """Send :data:`PAGE_CSP` with an HTML page of the package's own layout, unless the host
    set a policy of its own."""
    own_layout = config_value("BASE_TEMPLATE") == DEFAULTS["MAILDELIVERY_BASE_TEMPLATE"]
    if (
        own_layout
        and response.mimetype == "text/html"
        and "Content-Security-Policy" not in response.headers
    ):
        response.headers["Content-Security-Policy"] = PAGE_CSP.format(nonce=csp_nonce())
    return response


def _template_globals() -> dict[str, Any]:
    values: dict[str, Any] = {
        "md_csp_nonce": csp_nonce,
        "_md": i18n.gettext,
        "md_ngettext": i18n.ngettext,
        "md_datetime": i18n.format_datetime,
        "md_size": i18n.format_size,
        "md_locale": i18n.locale_name(),
        "md_result_label": labels.result_label,
        "md_status_label": labels.status_label,
        "md_kind_label": labels.kind_label,
        "md_tone": labels.tone,
        "md_number": i18n.format_number,
        "md_percent": i18n.format_percent,
        "md_date": i18n.format_date,
        "md_base_template": config_value("BASE_TEMPLATE"),
        "md_csrf_token": csrf_token,
        "md_csrf_available": csrf_available,
        "md_messages": lambda: get_flashed_messages(
            with_categories=True, category_filter=[FLASH_CATEGORY, f"{FLASH_CATEGORY}-error"]
        ),
    }
    # the badge macros, given the values above, so that every template of the pages (a
    # host's own too) calls md_status_badge(status) without importing them
    macros: Any = current_app.jinja_env.get_template(MACROS_TEMPLATE).make_module(values)
    values["md_status_badge"] = macros.status_badge
    values["md_result_badge"] = macros.result_badge
    return values


def _filter_or_400() -> queries.LogFilter:
    try:
        return read_filter(request.args)
    except queries.FilterError as exc:
        abort(400, description=str(exc))


def error_page(exc: HTTPException) -> tuple[str, int]:
    """A ``400``, ``403`` or ``404`` raised by the pages, shown inside the log's layout (and
    the host's base template) with what happened and a way back. The template
    ``maildelivery/error.html`` gets ``status``, ``title``, ``message`` and ``back_url``."""
    status = exc.code or 500
    callbacks = get_state().callbacks
    may_view = callbacks.may_view_log(callbacks.current_user())
    if status == 403:
        title = i18n.gettext("Access refused")
        message = (
            i18n.gettext("Your account may read the delivery log but not act on it.")
            if may_view
            else i18n.gettext(
                "Your account may not see the email delivery log. Ask an administrator for access."
            )
        )
    elif status == 404:
        title = i18n.gettext("Not found")
        message = i18n.gettext("There is no such email in the delivery log.")
    else:
        title = i18n.gettext("This request cannot be answered")
        # a message of the pages' own (a filter error, an expired form): already translated
        message = str(exc.description) if exc.description else exc.name
    back_url = url_for(".index") if may_view else request.script_root + "/"
    html = render_template(
        "maildelivery/error.html", status=status, title=title, message=message, back_url=back_url
    )
    return html, status


def index() -> str | BaseResponse:
    """The delivery log: the emails needing attention by default, all with ``?show=all``.

    The filter form is a ``GET`` form, which sends its empty fields too: a request with
    empty parameters is redirected to the same filter without them, so that the address
    bar (and a link copied from it) shows only the filters in use."""
    if any(value == "" for value in request.args.values()):
        kept: dict[str, Any] = {name: value for name, value in request.args.items() if value}
        return redirect(url_for(".index", **kept))
    log_filter = _filter_or_400()
    state = get_state()
    with queries.reading() as connection:
        page = queries.log_page(connection, log_filter, viewer_tenant(), config_value("PAGE_SIZE"))
    return render_template(
        "maildelivery/index.html",
        page=page,
        rows=page.rows,
        log_filter=log_filter,
        tracking=tracking_health(state.sessions(), tracking(state)),
        failed_inbox=inbox.failed_count(),
        status_options=labels.status_options(),
        result_options=labels.result_options(),
    )


def overview_page() -> str:
    """Deliverability at a glance: emails per day by result (an SVG chart drawn here, and
    its table), bounce and complaint rates against the mailbox providers' thresholds, the
    domains that fail most, each provider's last event and lag, the attention counts."""
    figures = read_overview(viewer_tenant(), i18n.viewer_timezone())
    bounce, complaint = overview.rate_thresholds()
    return render_template(
        "maildelivery/overview.html",
        overview=figures,
        series=list(overview.SERIES),
        bounce=bounce,
        complaint=complaint,
        series_label=labels.series_label,
        series_tones=labels.SERIES_TONES,
        count_label=labels.count_label,
        level_label=labels.level_label,
        level_tones=labels.LEVEL_TONES,
    )


def detail(email_id: int) -> str:
    """One email: its facts, a copy of it, and each recipient's status log; the resend and
    review buttons for a user who may act on the log."""
    email = read_email(email_id)
    if email is None:
        abort(404)
    callbacks = get_state().callbacks
    can_act = callbacks.may_act(callbacks.current_user())
    can_resend = (
        can_act
        and email.resolved_by_id is None
        and (email.text_body is not None or email.html_body is not None)
        and any(is_failure(r.status) for r in email.recipients)
    )
    # after a resend that needs a confirmation: the failed addresses that are unchanged
    unchanged = (
        [r for r in email.recipients if is_unchanged(r, resend_address(callbacks, r))]
        if can_resend and request.args.get("resend") == "confirm"
        else []
    )
    logs = status_logs(email)
    poll_seconds = config_value("DETAIL_REFRESH_SECONDS")
    on_its_way = email.result in ON_ITS_WAY_RESULTS or any(
        r.status in ON_ITS_WAY_STATUSES for r in email.recipients
    )
    health = address_records(get_state(), email.tenant_id, [r.address for r in email.recipients])
    return render_template(
        "maildelivery/detail.html",
        live_refresh=poll_seconds if poll_seconds and on_its_way else None,
        waiting_results=" ".join(sorted(ON_ITS_WAY_RESULTS)),
        waiting_statuses=" ".join(sorted(ON_ITS_WAY_STATUSES)),
        email=email,
        health=health,
        recipients=logs.recipients,
        other_events=logs.other_events,
        related_url=logs.related_url,
        resends=email.resends,
        can_act=can_act,
        can_resend=can_resend,
        unchanged=unchanged,
    )


def html_body(email_id: int) -> Response:
    """The stored HTML body, for the detail page's sandboxed frame, under :data:`BODY_CSP`."""
    with queries.reading() as connection:
        found, body = queries.get_html_body(connection, email_id, viewer_tenant())
    if not found or body is None:
        abort(404)
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = BODY_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _email_or_404(email_id: int) -> int:
    """The id of email ``email_id`` of the viewer's tenant; ``404`` when there is none."""
    email = queries.get_email(get_state().sessions(), email_id, viewer_tenant())
    if email is None:
        abort(404)
    return email.id


def resend(email_id: int) -> BaseResponse:
    """Send a copy of the email to its failed recipients (``POST``, CSRF-protected).

    Refused while an earlier copy is on its way; to an address unchanged since it failed,
    only with the form field ``confirm=1`` (without it, back to the email with the
    question)."""
    check_csrf()
    check_actor()
    tenant = viewer_tenant()
    email = queries.get_email(get_state().sessions(), email_id, tenant)
    if email is None:
        abort(404)
    confirm = request.form.get("confirm") == "1"
    try:
        copy = resend_email(get_state(), email.id, tenant_id=email.tenant_id, confirm=confirm)
    except ResendNeedsConfirmation:
        return redirect(url_for(".detail", email_id=email_id, resend="confirm"))
    except CopyStillOnItsWay as exc:
        flash(
            i18n.gettext(
                "Not sent again: its copy, record no. %(number)s, is still on its way to "
                "%(address)s. Wait for its outcome.",
                number=exc.copy_id,
                address=exc.address,
            ),
            f"{FLASH_CATEGORY}-error",
        )
        return redirect(url_for(".detail", email_id=email_id))
    except SendRefused as exc:
        flash(
            i18n.gettext("Not sent again: %(reason)s", reason=str(exc)), f"{FLASH_CATEGORY}-error"
        )
        return redirect(url_for(".detail", email_id=email_id))
    flash(i18n.gettext("A copy was sent as record no. %(number)s.", number=copy.id), FLASH_CATEGORY)
    return redirect(url_for(".detail", email_id=copy.id))


def review(email_id: int) -> BaseResponse:
    """Mark the email reviewed, or with ``undo=1`` take the review back (``POST``,
    CSRF-protected)."""
    check_csrf()
    check_actor()
    found = _email_or_404(email_id)
    undo = request.form.get("undo") == "1"
    state = get_state()
    review_email(state, found, state.callbacks.current_user(), undo=undo)
    message = (
        i18n.gettext("The review was taken back: the email needs attention again.")
        if undo
        else i18n.gettext("Marked reviewed: the email left the emails needing attention.")
    )
    flash(message, FLASH_CATEGORY)
    return redirect(url_for(".detail", email_id=email_id))


def read_address_filter() -> address_list.AddressFilter:
    """The addresses list's filter from the query arguments; ``400`` when one is not valid."""
    try:
        return address_list.AddressFilter.from_args(request.args)
    except queries.FilterError as exc:
        abort(400, description=str(exc))


def addresses() -> str:
    """The addresses with problems, worst first, with their contact links and the lift
    action."""
    address_filter = read_address_filter()
    callbacks = get_state().callbacks
    return render_template(
        "maildelivery/addresses.html",
        page=address_list.address_rows(address_filter, config_value("PAGE_SIZE")),
        address_filter=address_filter,
        states=address_list.STATES,
        can_act=callbacks.may_act(callbacks.current_user()),
    )


def lift_address() -> BaseResponse:
    """Lift the suppression of the form's ``address`` (``POST``, CSRF-protected)."""
    check_csrf()
    check_actor()
    address = (request.form.get("address") or "").strip()
    state = get_state()
    if address and lift_suppression(
        state, address, viewer_tenant(), state.callbacks.current_user()
    ):
        flash(
            i18n.gettext(
                "The suppression of %(address)s was lifted: the next email goes to it.",
                address=address,
            ),
            FLASH_CATEGORY,
        )
    else:
        flash(
            i18n.gettext("%(address)s is not suppressed: nothing to lift.", address=address),
            f"{FLASH_CATEGORY}-error",
        )
    # back to the list as it was filtered (values url_for leaves out when empty)
    return redirect(
        url_for(
            ".addresses",
            state=request.form.get("state") or None,
            contact_type=request.form.get("contact_type") or None,
        )
    )


_CSV_COLUMNS = ("id", "sent_at", "status", "result", "subject", "sender", "to", "cc", "bcc")


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a cell starting with one of these is a formula in spreadsheet programs
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def export_csv() -> Response:
    """The emails of the current filter as CSV (every page of it), streamed."""
    log_filter = _filter_or_400()
    # the scoped session itself: the stream runs after the view returned, in an app
    # context of its own, whose teardown closes the session it used
    session_ = get_state().sessions
    tenant = viewer_tenant()

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(_CSV_COLUMNS)
        for email, recipients in queries.iter_emails(session_, log_filter, tenant):
            by_kind: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
            for recipient in recipients:
                by_kind.setdefault(recipient.kind, []).append(
                    f"{recipient.address} ({recipient.status})"
                )
            writer.writerow(
                [
                    _csv_cell(v)
                    for v in (
                        email.id,
                        email.sent_at.isoformat() if email.sent_at else "",
                        email.status,
                        email.result,
                        email.subject,
                        email.sender,
                        "; ".join(by_kind["to"]),
                        "; ".join(by_kind["cc"]),
                        "; ".join(by_kind["bcc"]),
                    )
                ]
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    name = (
        "maildelivery-all.csv" if log_filter.show == queries.SHOW_ALL else "maildelivery-failed.csv"
    )
    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def create_pages_blueprint(app: Flask) -> Blueprint:
    """The ``maildelivery`` blueprint at ``MAILDELIVERY_URL_PREFIX``.

    Templates are ``maildelivery/*.html`` (a host overrides one by placing a template of the
    same name in its own ``templates/maildelivery/``); the stylesheet is served from the
    blueprint's ``static`` folder.
    """
    prefix = str(config_value("URL_PREFIX", app)).rstrip("/")
    overview.rate_thresholds(app)  # a wrong threshold fails here, not on the first view
    blueprint = Blueprint(
        "maildelivery",
        __name__,
        url_prefix=prefix or None,
        template_folder="../templates",
        static_folder="../static",
        static_url_path="/static",
    )

    @blueprint.before_request
    def _check_viewer() -> BaseResponse | None:
        if request.endpoint == "maildelivery.static":
            return None  # the stylesheet is no secret; the login page may need it
        return check_viewer()

    blueprint.context_processor(_template_globals)
    blueprint.after_request(_set_csp)
    for status in (400, 403, 404):
        blueprint.register_error_handler(status, error_page)
    blueprint.add_url_rule("/", "index", index)
    blueprint.add_url_rule("/export.csv", "export_csv", export_csv)
    blueprint.add_url_rule("/addresses", "addresses", addresses)
    blueprint.add_url_rule("/addresses/lift", "lift_address", lift_address, methods=["POST"])
    blueprint.add_url_rule("/overview", "overview", overview_page)
    # an id past the databases' integers names no email: the route does not match (404)
    email_id = f"<int(max={queries.MAX_ID}):email_id>"
    blueprint.add_url_rule(f"/{email_id}", "detail", detail)
    blueprint.add_url_rule(f"/{email_id}/body.html", "html_body", html_body)
    blueprint.add_url_rule(f"/{email_id}/resend", "resend", resend, methods=["POST"])
    blueprint.add_url_rule(f"/{email_id}/review", "review", review, methods=["POST"])
    return blueprint
