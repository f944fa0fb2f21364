"""Demo data: two companies with users, contacts and invoices, and a few emails already sent.

The demo addresses use the simulator's domains (see :mod:`example_app.simulator`), so each
email ends differently: opened, delivered, deferred, dropped, bounced (at once, or later).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask
from flask_login import login_user
from werkzeug.security import generate_password_hash

from flask_maildelivery import rollup
from flask_maildelivery.models import Email, utcnow
from flask_maildelivery.state import FAILURE_STATUSES

from . import mail_delivery
from .mailing import email_invoice
from .models import Company, Contact, Invoice, User, db

#: Every demo user's password.
DEMO_PASSWORD = "demo"


@dataclass(frozen=True)
class DemoUser:
    """A demo login, printed at start."""

    username: str
    name: str
    company: str
    role: str
    can_view_email_log: bool = False

    @property
    def sees_email_log(self) -> bool:
        return self.role == "admin" or self.can_view_email_log


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("acme.admin", "Alice Admin", "Acme Supplies", "admin"),
    DemoUser("acme.clerk", "Carl Clerk", "Acme Supplies", "clerk"),
    DemoUser("acme.auditor", "Aude Auditor", "Acme Supplies", "auditor", can_view_email_log=True),
    DemoUser("globex.admin", "Gina Admin", "Globex Corporation", "admin"),
    DemoUser("globex.clerk", "Greg Clerk", "Globex Corporation", "clerk"),
    DemoUser(
        "globex.auditor", "Gail Auditor", "Globex Corporation", "auditor", can_view_email_log=True
    ),
)

COMPANIES = {
    "Acme Supplies": ("billing@acme.example", "accounting@acme.example"),
    "Globex Corporation": ("invoices@globex.example", "finance@globex.example"),
}

# (company, kind, name, address)
CONTACTS = (
    ("Acme Supplies", "customer", "Northwind Traders", "ap@northwind.example"),
    ("Acme Supplies", "customer", "Contoso Ltd", "billing@quiet.example"),
    ("Acme Supplies", "customer", "Initech", "initech@bounce.example"),
    ("Acme Supplies", "customer", "Umbrella Corp", "umbrella@drop.example"),
    ("Acme Supplies", "customer", "Soylent Foods", "soylent@slow.example"),
    ("Acme Supplies", "customer", "Hooli", "hooli@late.example"),
    ("Acme Supplies", "customer", "Vandelay Industries", "vandelay@refused.example"),
    ("Acme Supplies", "customer", "Stark Logistics", "payables@full.example"),
    ("Acme Supplies", "customer", "Wayne Freight", "accounts@waynefreight.example"),
    ("Acme Supplies", "customer", "Pied Piper", "ap@stuck.example"),
    ("Acme Supplies", "vendor", "Paper & Co", "orders@paperco.example"),
    ("Acme Supplies", "vendor", "Office Coffee", "sales@coffee.example"),
    ("Acme Supplies", "employee", "Emma Employee", "emma@acme.example"),
    ("Acme Supplies", "employee", "Former Employee", "former.employee@refused.example"),
    ("Globex Corporation", "customer", "Duff Brewing", "ap@duff.example"),
    ("Globex Corporation", "customer", "Krusty Foods", "krusty@bounce.example"),
    ("Globex Corporation", "vendor", "Springfield Power", "billing@power.example"),
    ("Globex Corporation", "employee", "Hank Scorpio", "hank@globex.example"),
)

# (company, number, customer, amount, description)
INVOICES = (
    ("Acme Supplies", "INV-1001", "Northwind Traders", "1250.00", "Office chairs x10"),
    ("Acme Supplies", "INV-1002", "Contoso Ltd", "310.50", "Printer paper, 50 boxes"),
    ("Acme Supplies", "INV-1003", "Umbrella Corp", "89.90", "Desk lamps x3"),
    ("Acme Supplies", "INV-1004", "Soylent Foods", "4200.00", "Warehouse shelving"),
    ("Acme Supplies", "INV-1005", "Hooli", "560.00", "Standing desks x2"),
    ("Acme Supplies", "INV-1006", "Vandelay Industries", "75.00", "Latex gloves, 20 boxes"),
    ("Acme Supplies", "INV-1007", "Stark Logistics", "980.00", "Pallet jacks x2"),
    ("Acme Supplies", "INV-1008", "Initech", "199.00", "Red staplers x20"),
    ("Acme Supplies", "INV-1009", "Northwind Traders", "640.00", "Filing cabinets x4"),
    ("Acme Supplies", "INV-1010", "Wayne Freight", "1320.00", "Conference table"),
    ("Acme Supplies", "INV-1011", "Pied Piper", "2750.00", "Server racks x2"),
    ("Globex Corporation", "GX-2001", "Duff Brewing", "2500.00", "Bottling line service"),
    ("Globex Corporation", "GX-2002", "Krusty Foods", "430.00", "Freezer maintenance"),
)

#: Invoices emailed at first start (with the local simulator only), one per outcome.
DEMO_EMAILED = (
    "INV-1001",
    "INV-1002",
    "INV-1003",
    "INV-1004",
    "INV-1005",
    "INV-1006",
    "INV-1007",
    "INV-1011",
    "GX-2001",
)
#: A demo invoice emailed two days before the others, about which the provider never
#: reported: the log shows it overdue.
DEMO_OVERDUE = "INV-1011"
#: A demo invoice first emailed to a wrong address the mail server refused, then resent
#: once the contact was corrected: its copy's delivery resolves the first email.
DEMO_RESOLVED = "INV-1010"
#: The wrong address of :data:`DEMO_RESOLVED`'s customer (its domain is refused by the
#: example's SMTP server).
DEMO_WRONG_ADDRESS = "wayne.freight@refused.example"


@functools.cache
def _demo_password_hash() -> str:
    return generate_password_hash(DEMO_PASSWORD)


def is_seeded() -> bool:
    """Whether the demo companies exist already."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Company)) != 0


def seed_records() -> None:
    """Create the companies, users, contacts and invoices."""
    companies: dict[str, Company] = {}
    for name, (billing, accounting) in COMPANIES.items():
        companies[name] = Company(name=name, billing_email=billing, accounting_email=accounting)
        db.session.add(companies[name])
    for demo in DEMO_USERS:
        user = User(
            company=companies[demo.company],
            username=demo.username,
            name=demo.name,
            role=demo.role,
            can_view_email_log=demo.can_view_email_log,
        )
        # every demo user has the same password: hash it once (a hash is deliberately slow)
        user.password_hash = _demo_password_hash()
        db.session.add(user)
    contacts: dict[tuple[str, str], Contact] = {}
    db.session.flush()
    for company, kind, name, address in CONTACTS:
        contact = Contact(company_id=companies[company].id, kind=kind, name=name, email=address)
        contacts[(company, name)] = contact
        db.session.add(contact)
    db.session.flush()
    today = date.today()
    for index, (company, number, customer, amount, description) in enumerate(INVOICES):
        db.session.add(
            Invoice(
                company_id=companies[company].id,
                number=number,
                customer_id=contacts[(company, customer)].id,
                issued_on=today - timedelta(days=len(INVOICES) - index),
                amount=Decimal(amount),
                description=description,
            )
        )
    db.session.commit()


def send_demo_emails(app: Flask) -> None:
    """Email the :data:`DEMO_EMAILED` invoices and a payslip, as each company's clerk would."""
    invoices = db.session.scalars(
        sa.select(Invoice).where(Invoice.number.in_(DEMO_EMAILED)).order_by(Invoice.number)
    ).all()
    for invoice in invoices:
        clerk = db.session.scalars(
            sa.select(User).where(User.company_id == invoice.company_id, User.role == "clerk")
        ).one()
        with app.test_request_context():
            login_user(clerk)
            email_invoice(invoice)
    # the stuck invoice went out two days ago: with no word since, it is overdue
    overdue = next(i for i in invoices if i.number == DEMO_OVERDUE)
    session = mail_delivery.session
    two_days_ago = utcnow() - timedelta(days=2)
    stuck = session.scalars(
        sa.select(Email).where(Email.related_type == "invoice", Email.related_id == str(overdue.id))
    ).all()
    for email in stuck:
        # moved as a queued send's hand-over moves it: the overview's rollups with it
        rollup.move_sent_at(session, email, two_days_ago)
        email.created_at = two_days_ago
    session.commit()
    _send_resolved_demo(app)
    # a payslip to an address the mail server refuses outright: the send itself fails
    former = db.session.scalars(sa.select(Contact).where(Contact.name == "Former Employee")).one()
    company = db.session.get_one(Company, former.company_id)
    admin = db.session.scalars(
        sa.select(User).where(User.company_id == company.id, User.role == "admin")
    ).one()
    with app.test_request_context():
        login_user(admin)
        # the transport's refusal is recorded on the email (result "failed"), not raised
        mail_delivery.send(
            subject="Your payslip",
            sender=(company.name, company.billing_email),
            to=[(former.name, former.email)],
            text="Your payslip for last month is ready in the staff portal.",
            contacts={former.email: ("employee", former.id)},
            tenant_id=str(company.id),
        )


def _send_resolved_demo(app: Flask) -> None:
    """The clerk emails :data:`DEMO_RESOLVED` to the customer's old, wrong address; the
    mail server refuses it; the contact is corrected and the email resent from the log. When
    the provider reports the copy delivered, the first email is resolved."""
    invoice = db.session.scalars(sa.select(Invoice).where(Invoice.number == DEMO_RESOLVED)).one()
    customer = invoice.customer
    right_address, customer.email = customer.email, DEMO_WRONG_ADDRESS
    db.session.commit()
    clerk = db.session.scalars(
        sa.select(User).where(User.company_id == invoice.company_id, User.role == "clerk")
    ).one()
    with app.test_request_context():
        login_user(clerk)
        first = email_invoice(invoice)
        customer.email = right_address
        db.session.commit()
        # only a server that refuses the wrong address (the example's own) leaves a failure
        # to resend; the memory transport of the tests accepts every address
        if any(r.status in FAILURE_STATUSES for r in first.recipients):
            mail_delivery.resend(first.id)


def seed(app: Flask, *, emails: bool) -> bool:
    """Create the demo data unless it exists; with ``emails``, send the demo emails too.

    Returns whether anything was created.
    """
    with app.app_context():
        if is_seeded():
            return False
        seed_records()
        if emails:
            send_demo_emails(app)
        return True
