"""Emailing invoices through flask-maildelivery."""

from __future__ import annotations

from flask import current_app

from flask_maildelivery.models import Email

from . import mail_delivery
from .models import Invoice
from .pdf import invoice_filename, invoice_pdf


def email_invoice(invoice: Invoice) -> Email:
    """Email ``invoice`` to its customer (To), the company's accounting address in Cc, with the
    invoice PDF attached. Returns the recorded email.

    :raises flask_maildelivery.SendRefused: the customer's address is not an email address.
    """
    company = invoice.company
    customer = invoice.customer
    text = (
        f"Dear {customer.name},\n\n"
        f"please find attached invoice {invoice.number} of {invoice.issued_on:%d %B %Y} "
        f"for {invoice.amount:.2f} EUR ({invoice.description}).\n\n"
        f"Kind regards,\n{company.name}\n"
    )
    html = (
        f"<p>Dear {_e(customer.name)},</p>"
        f"<p>please find attached invoice <strong>{_e(invoice.number)}</strong> of "
        f"{invoice.issued_on:%d %B %Y} for <strong>{invoice.amount:.2f} EUR</strong> "
        f"({_e(invoice.description)}).</p>"
        f"<p>Kind regards,<br>{_e(company.name)}</p>"
    )
    return mail_delivery.send(
        subject=f"Invoice {invoice.number} from {company.name}",
        # a real provider sends only from verified addresses: ERP_SENDER replaces the demo's
        sender=(company.name, current_app.config.get("ERP_SENDER") or company.billing_email),
        to=[(customer.name, customer.email)],
        cc=[(f"{company.name} accounting", company.accounting_email)],
        text=text,
        html=html,
        attachments=[(invoice_filename(invoice), invoice_pdf(invoice), "application/pdf")],
        metadata={"invoice": invoice.number},
        related=("invoice", invoice.id),
        contacts={customer.email: ("customer", customer.id)},
        tenant_id=str(company.id),
    )


def _e(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
