"""The package writes through its own session on the host's engine: it never commits,
flushes or rolls back the host's ``db.session`` (SPEC, "Install and register")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import IntegrityError, PendingRollbackError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_maildelivery import MailDelivery, RecordingFailed, signals
from flask_maildelivery.models import Email
from flask_maildelivery.testing import outbox, simulate_event

from .conftest import AppFactory


class HostBase(DeclarativeBase):
    """The declarative base of the host's own tables in these tests."""


class Note(HostBase):
    """A host table: what an ERP writes in the same request as it sends an email."""

    __tablename__ = "host_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(64), unique=True)


@pytest.fixture
def host(make_app: AppFactory) -> Iterator[tuple[Flask, SQLAlchemy]]:
    """An app whose host db has a table of its own, created for the test."""
    db = SQLAlchemy(model_class=HostBase)
    # SQLite waits this long for a lock another transaction holds (default: 5 s)
    sqlite = {"connect_args": {"timeout": 0.5}} if "sqlite" in make_app.database_url else {}
    app = make_app(db=db, SQLALCHEMY_ENGINE_OPTIONS=sqlite)
    with app.app_context():
        HostBase.metadata.create_all(db.engine)
        try:
            yield app, db
        finally:
            db.session.rollback()
            HostBase.metadata.drop_all(db.engine)


def _committed(db: SQLAlchemy, model: Any) -> int:
    """Rows of ``model`` committed, read on a connection of its own."""
    with db.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def _send(app: Flask, subject: str = "Invoice INV-0042") -> Email:
    extension: MailDelivery = MailDelivery.state(app).extension
    return extension.send(subject=subject, to=["ann@customer.test"], text="x")


def test_a_host_rollback_keeps_the_email_and_drops_the_host_row(
    host: tuple[Flask, SQLAlchemy],
) -> None:
    app, db = host
    db.session.add(Note(text="invoice 42 emailed"))
    email = _send(app)
    db.session.rollback()
    assert _committed(db, Note) == 0
    assert _committed(db, Email) == 1
    assert email.result == "queued"


def test_pending_host_objects_are_not_flushed_by_a_send(host: tuple[Flask, SQLAlchemy]) -> None:
    app, db = host
    note = Note(text="pending")
    db.session.add(note)
    _send(app)
    simulate_event(_send(app, "second"), "delivered")
    assert note in db.session.new
    assert note.id is None
    assert _committed(db, Note) == 0
    db.session.commit()
    assert _committed(db, Note) == 1


def test_a_host_session_whose_transaction_failed_still_gets_its_email_recorded(
    host: tuple[Flask, SQLAlchemy],
) -> None:
    app, db = host
    db.session.add(Note(text="same"))
    db.session.commit()
    db.session.add(Note(text="same"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    email = _send(app)
    assert _committed(db, Email) == 1
    assert email.result == "queued"
    # the host's session is as the failure left it: it still needs the host's rollback
    with pytest.raises(PendingRollbackError):
        db.session.execute(sa.select(Note))
    db.session.rollback()
    assert db.session.scalars(sa.select(Note.text)).all() == ["same"]


def test_an_aborted_host_transaction_does_not_stop_a_send(host: tuple[Flask, SQLAlchemy]) -> None:
    app, db = host
    # every database refuses a duplicate key; on PostgreSQL the host's transaction is then
    # aborted ("current transaction is aborted"), elsewhere only the statement failed
    db.session.execute(sa.insert(Note).values(id=1, text="first"))
    with pytest.raises(IntegrityError):
        db.session.execute(sa.insert(Note).values(id=1, text="again"))
    if db.engine.dialect.name == "sqlite":
        # SQLite has one writer: the host's uncommitted insert holds the write lock, so the
        # send is refused with an error saying so, and nothing is sent
        with pytest.raises(RecordingFailed, match="commit them before sending"):
            _send(app)
        assert outbox(app) == []
        db.session.rollback()
        assert _committed(db, Note) == 0
        return
    email = _send(app)
    simulate_event(email, "delivered")
    assert _committed(db, Email) == 1
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.InternalError, match="aborted"):
            db.session.execute(sa.select(Note))
    db.session.rollback()
    assert _committed(db, Note) == 0


def test_signals_fire_after_the_package_commit(host: tuple[Flask, SQLAlchemy]) -> None:
    app, db = host
    seen: list[tuple[str, int]] = []

    def committed_when_sent(sender: Flask, email: Email, **kwargs: Any) -> None:
        seen.append(("sent", _committed(db, Email)))

    def committed_when_changed(sender: Flask, email: Email, **kwargs: Any) -> None:
        with db.engine.connect() as connection:
            result = connection.scalar(sa.select(Email.result).where(Email.id == email.id))
        seen.append((str(result), kwargs["new"] == result))

    with (
        signals.email_sent.connected_to(committed_when_sent, app),
        signals.email_result_changed.connected_to(committed_when_changed, app),
    ):
        email = _send(app)
        simulate_event(email, "delivered")
    assert seen == [("sent", 1), ("delivered", True)]
