"""How the ERP plugs into flask-maildelivery: its host callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import has_request_context, request, url_for
from flask_login import current_user

from .models import CONTACT_KINDS, Contact, Invoice, db
from .pdf import invoice_filename, invoice_pdf

if TYPE_CHECKING:
    from flask_maildelivery import MailDelivery
    from flask_maildelivery.models import Email


def current_company_id() -> str | None:
    """The signed-in user's company: the tenant of everything they send and see."""
    if not has_request_context() or not current_user.is_authenticated:
        return None
    return str(current_user.company_id)


def may_view_email_log(user: Any) -> bool:
    """The ERP's own permission: administrators, and users granted it on the users page."""
    return bool(getattr(user, "may_view_email_log", False))


def may_act_on_email_log(user: Any) -> bool:
    """Resending and reviewing: those who read the log, auditors excepted."""
    return bool(getattr(user, "may_act_on_email_log", False))


def sent_by_name(user: Any) -> str:
    """The log shows who sent an email by username, not by database id."""
    return str(user.username)


def _contact(contact_type: str, contact_id: str) -> Contact | None:
    if contact_type not in CONTACT_KINDS or not str(contact_id).isdigit():
        return None
    contact = db.session.get(Contact, int(contact_id))
    if contact is None or contact.kind != contact_type:
        return None
    return contact


def contact_edit_url(contact_type: str, contact_id: str) -> str | None:
    """The edit form of the contact that holds an address; opened from an email of the
    delivery log, saving the contact returns to that email."""
    contact = _contact(contact_type, contact_id)
    if contact is None:
        return None
    if has_request_context() and request.endpoint == "maildelivery.detail":
        return url_for("erp.contact_edit", contact_id=contact.id, next=request.path)
    return url_for("erp.contact_edit", contact_id=contact.id)


def contact_current_address(contact_type: str, contact_id: str) -> str | None:
    """The address the contact holds now: a resend goes there."""
    contact = _contact(contact_type, contact_id)
    return contact.email if contact else None


def related_object_url(related_type: str, related_id: str) -> str | None:
    """The invoice an email belongs to."""
    if related_type != "invoice" or not str(related_id).isdigit():
        return None
    return url_for("erp.invoice", invoice_id=int(related_id))


def resend_attachments(email: Email) -> list[tuple[str, bytes, str]]:
    """Only attachment names and sizes are stored; a resend regenerates the invoice PDF."""
    if email.related_type != "invoice" or not str(email.related_id).isdigit():
        return []
    invoice = db.session.get(Invoice, int(str(email.related_id)))
    if invoice is None:
        return []
    return [(invoice_filename(invoice), invoice_pdf(invoice), "application/pdf")]


def register(mail_delivery: MailDelivery) -> None:
    """Register the callbacks on ``mail_delivery`` (idempotent)."""
    mail_delivery.tenant_loader(current_company_id)
    mail_delivery.permission_loader(may_view_email_log)
    mail_delivery.action_permission_loader(may_act_on_email_log)
    mail_delivery.sent_by_loader(sent_by_name)
    mail_delivery.contact_url_loader(contact_edit_url)
    mail_delivery.contact_address_loader(contact_current_address)
    mail_delivery.related_url_loader(related_object_url)
    mail_delivery.attachment_loader(resend_attachments)
