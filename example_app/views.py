"""The ERP's pages: sign-in, invoices, contacts, users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import flask_login
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_login import current_user, login_user, logout_user
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.wrappers import Response as BaseResponse

from flask_maildelivery import SendRefused
from flask_maildelivery.models import Email

from .language import LANGUAGE_KEY, LANGUAGES
from .mailing import email_invoice
from .models import CONTACT_KINDS, Contact, Invoice, User, db
from .pdf import invoice_filename, invoice_pdf

bp = Blueprint("erp", __name__)

_View = TypeVar("_View", bound=Callable[..., Any])


def login_required(view: _View) -> _View:
    """Flask-Login's ``login_required`` with its type stated: Flask-Login ships no type
    information, so the decorator as it comes would leave every view untyped."""
    return cast(_View, flask_login.login_required(view))


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site (``/maildelivery/12``), else ``None``: an
    absolute URL, a scheme-relative ``//host``, a backslash (which browsers read as a
    slash), a scheme (``javascript:``) or a control character (which browsers drop) could
    send the user to another site after a form."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _own(model: Any, record_id: int) -> Any:
    """A record of the signed-in user's company, else 404 (another company's ids are unknown)."""
    record = db.session.get(model, record_id)
    if record is None or record.company_id != current_user.company_id:
        abort(404)
    return record


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse:
    """Sign in with a username and password."""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        user = db.session.scalar(sa.select(User).where(User.username == username))
        if user is not None and user.check_password(request.form.get("password", "")):
            login_user(user)
            # only same-site paths: never an open redirect
            return redirect(local_path(request.args.get("next")) or url_for("erp.invoices"))
        flash("Unknown username or wrong password.", "error")
    users = db.session.scalars(
        sa.select(User).options(joinedload(User.company)).order_by(User.company_id, User.id)
    ).all()
    return render_template("login.html", demo_users=users)


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out."""
    logout_user()
    return redirect(url_for("erp.login"))


@bp.get("/")
@login_required
def home() -> BaseResponse:
    """The invoice list is the home page."""
    return redirect(url_for("erp.invoices"))


@bp.get("/invoices")
@login_required
def invoices() -> str:
    """The company's invoices, each with the outcome of its latest email."""
    rows = db.session.scalars(
        sa.select(Invoice)
        .options(joinedload(Invoice.customer))
        .where(Invoice.company_id == current_user.company_id)
        .order_by(Invoice.number.desc())
    ).all()
    return render_template("invoices.html", invoices=rows)


@bp.post("/invoices/email")
@login_required
def email_invoices() -> BaseResponse:
    """Email the selected invoices, each to its customer."""
    if current_user.role == "auditor":
        abort(403)
    ids = [int(i) for i in request.form.getlist("invoice_id") if i.isdigit()]
    if not ids:
        flash("Select the invoices to email.", "error")
        return redirect(url_for("erp.invoices"))
    chosen = db.session.scalars(
        sa.select(Invoice)
        .where(Invoice.id.in_(ids), Invoice.company_id == current_user.company_id)
        .order_by(Invoice.number)
    ).all()
    sent = []
    for invoice in chosen:
        number, address = invoice.number, invoice.customer.email
        try:
            email = email_invoice(invoice)
        except SendRefused as exc:
            flash(f"{number} was not sent: {exc}", "error")
            continue
        if email.result == "failed":
            flash(f"{number} could not be sent to {address}: {email.error}", "error")
        else:
            sent.append(number)
    if sent:
        flash(f"Emailed {len(sent)} invoice(s): {', '.join(sent)}.", "success")
    return redirect(url_for("erp.invoices"))


@bp.get("/invoices/<int:invoice_id>")
@login_required
def invoice(invoice_id: int) -> str:
    """One invoice and every email sent for it."""
    record = _own(Invoice, invoice_id)
    emails = db.session.scalars(
        sa.select(Email)
        .options(selectinload(Email.recipients))
        .where(
            Email.related_type == "invoice",
            Email.related_id == str(record.id),
            Email.tenant_id == str(current_user.company_id),
        )
        .order_by(Email.id.desc())
    ).all()
    return render_template("invoice.html", invoice=record, emails=emails)


@bp.get("/invoices/<int:invoice_id>/pdf")
@login_required
def invoice_download(invoice_id: int) -> Response:
    """The invoice PDF, as attached to its emails."""
    record = _own(Invoice, invoice_id)
    return Response(
        invoice_pdf(record),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice_filename(record)}"'},
    )


@bp.get("/contacts")
@login_required
def contacts() -> str:
    """Customers, vendors or employees; a hard-bounced address is flagged."""
    kind = request.args.get("kind", "customer")
    if kind not in CONTACT_KINDS:
        abort(404)
    rows = db.session.scalars(
        sa.select(Contact)
        .where(Contact.company_id == current_user.company_id, Contact.kind == kind)
        .order_by(Contact.name)
    ).all()
    return render_template("contacts.html", contacts=rows, kind=kind)


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@login_required
def contact_edit(contact_id: int) -> str | BaseResponse:
    """Edit a contact's name and email address; saved, back to ``next`` (the email of the
    delivery log it was opened from) when that is a path on this site, else to the
    contacts."""
    contact = _own(Contact, contact_id)
    if current_user.role == "auditor":
        abort(403)
    back = local_path(request.values.get("next"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        address = request.form.get("email", "").strip()
        if not name:
            errors["name"] = "A name is required."
        try:
            address = validate_email(
                address, check_deliverability=False, test_environment=True
            ).normalized
        except EmailNotValidError as exc:
            errors["email"] = str(exc)
        if not errors:
            contact.name = name
            if address.lower() != contact.email.lower():
                # a new address: the bounce flag was about the old one
                contact.bounced_address = None
                contact.bounce_reason = None
                contact.bounced_at = None
            contact.email = address
            db.session.commit()
            flash(f"{contact.name} saved.", "success")
            return redirect(back or url_for("erp.contacts", kind=contact.kind))
    # what the delivery log knows about the address: bounces, complaints, suppression
    health = current_app.extensions["maildelivery"].extension.address_health(contact.email)
    return render_template(
        "contact_edit.html",
        contact=contact,
        errors=errors,
        form=request.form,
        health=health,
        back=back,
    )


@bp.get("/users")
@login_required
def users() -> str:
    """The company's users, their roles and who may read the email delivery log."""
    rows = db.session.scalars(
        sa.select(User).where(User.company_id == current_user.company_id).order_by(User.id)
    ).all()
    return render_template("users.html", users=rows)


@bp.post("/users/<int:user_id>/email-log-access")
@login_required
def email_log_access(user_id: int) -> BaseResponse:
    """Grant or withdraw a user's access to the delivery log (administrators only)."""
    if not current_user.is_admin:
        abort(403)
    user = _own(User, user_id)
    if not user.is_admin:
        user.can_view_email_log = request.form.get("grant") == "1"
        db.session.commit()
        state = "may now" if user.can_view_email_log else "may no longer"
        flash(f"{user.name} {state} read the email delivery log.", "success")
    return redirect(url_for("erp.users"))


@bp.post("/language")
def language() -> BaseResponse:
    """Switch the pages to English or French (the delivery log pages follow through
    Flask-Babel's locale selector), then back to the page the switch was on."""
    chosen = request.form.get("language", "")
    if chosen not in LANGUAGES:
        abort(400, description=f"language must be one of {', '.join(LANGUAGES)}")
    session[LANGUAGE_KEY] = chosen
    return redirect(local_path(request.form.get("next")) or url_for("erp.home"))


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The ERP's icon, where browsers ask for it first."""
    return send_from_directory(
        str(current_app.static_folder), "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    # lets the layout link to pages (the delivery log) only when they are registered
    return {
        "url_endpoints": current_app.view_functions,
        "erp_languages": LANGUAGES,
        "erp_language": str(get_locale() or "en"),
    }
