"""The ERP's own tables: companies (tenants), users, contacts and invoices."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash


class Model(DeclarativeBase):
    """Declarative base of the ERP's tables (all named ``erp_*``)."""


db = SQLAlchemy(model_class=Model)

#: Contact kinds: each one is a contact record holding an email address.
CONTACT_KINDS = ("customer", "vendor", "employee")
#: User roles. ``auditor`` is a read-only role that may be granted the delivery log: it
#: reads the log but neither resends nor reviews.
ROLES = ("admin", "clerk", "auditor")


class Company(db.Model):  # type: ignore[name-defined,misc]
    """A tenant: every other record belongs to one company."""

    __tablename__ = "erp_company"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    #: The From address of the company's emails.
    billing_email: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    #: Copied (Cc) on every invoice email.
    accounting_email: Mapped[str] = mapped_column(sa.String(320), nullable=False)


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    """A person who signs in; belongs to one company."""

    __tablename__ = "erp_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(sa.ForeignKey("erp_company.id"), nullable=False)
    username: Mapped[str] = mapped_column(sa.String(80), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    password_hash: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    #: The ERP's own permission to read the email delivery log, granted per user.
    #: Administrators have it whatever this says.
    can_view_email_log: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)

    company: Mapped[Company] = relationship()

    @property
    def is_admin(self) -> bool:
        """Administrators manage users and see the delivery log."""
        return self.role == "admin"

    @property
    def may_view_email_log(self) -> bool:
        """The permission the delivery log pages ask for (see ``permission_loader``)."""
        return self.is_admin or self.can_view_email_log

    @property
    def may_act_on_email_log(self) -> bool:
        """Whether the user may resend or review an email of the log (see
        ``action_permission_loader``): an auditor only reads it."""
        return self.may_view_email_log and self.role != "auditor"

    def set_password(self, password: str) -> None:
        """Store a hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is this user's."""
        return check_password_hash(self.password_hash, password)


class Contact(db.Model):  # type: ignore[name-defined,misc]
    """A customer, vendor or employee: a record holding an email address."""

    __tablename__ = "erp_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        sa.ForeignKey("erp_company.id"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    email: Mapped[str] = mapped_column(sa.String(320), nullable=False)
    #: The address that hard-bounced, set by a signal receiver; the flag holds while the
    #: contact still has that address.
    bounced_address: Mapped[str | None] = mapped_column(sa.String(320))
    bounce_reason: Mapped[str | None] = mapped_column(sa.Text)
    bounced_at: Mapped[datetime | None] = mapped_column(sa.DateTime)

    @property
    def email_bounced(self) -> bool:
        """The current address is the one that hard-bounced."""
        return (
            bool(self.bounced_address)
            and (self.bounced_address or "").lower() == self.email.lower()
        )


class Invoice(db.Model):  # type: ignore[name-defined,misc]
    """An invoice to a customer; its email outcome is kept up to date by signal receivers."""

    __tablename__ = "erp_invoice"

    id: Mapped[int] = mapped_column(primary_key=True)
    company_id: Mapped[int] = mapped_column(
        sa.ForeignKey("erp_company.id"), nullable=False, index=True
    )
    number: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("erp_contact.id"), nullable=False)
    issued_on: Mapped[date] = mapped_column(sa.Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2), nullable=False)
    description: Mapped[str] = mapped_column(sa.String(255), nullable=False, default="")
    #: The latest email of this invoice (``maildelivery_email.id``) and its outcome.
    email_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    email_result: Mapped[str | None] = mapped_column(sa.String(16))
    email_status: Mapped[str | None] = mapped_column(sa.String(16))

    company: Mapped[Company] = relationship()
    customer: Mapped[Contact] = relationship()
