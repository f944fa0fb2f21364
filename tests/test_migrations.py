"""The package's own migrations: they build exactly the models' schema, on every database,
with their own version table, and never touch the host's tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_maildelivery import MailDelivery, migrations
from flask_maildelivery.models import Base
from flask_maildelivery.state import email_result, email_status

from .conftest import AppFactory, migrating

PACKAGE_TABLES = {t.name for t in Base.metadata.sorted_tables}


def _built_on(obj: object, dialect: str) -> bool:
    """Whether ``obj`` is created on ``dialect`` (an index may be limited by ``ddl_if``)."""
    ddl_if = getattr(obj, "_ddl_if", None)
    return ddl_if is None or ddl_if.dialect is None or ddl_if.dialect == dialect


def _diff(engine: sa.Engine) -> list[object]:
    dialect = engine.dialect.name
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, reflected, compare_to: (
                    (type_ != "table" or name in PACKAGE_TABLES)
                    and (reflected or _built_on(obj, dialect))
                ),
            },
        )
        return list(compare_metadata(context, Base.metadata))


def test_migrations_and_models_agree(schema: sa.Engine) -> None:
    with migrating(schema):
        migrations.upgrade(schema)
        assert migrations.current(schema) == migrations.head()
        assert _diff(schema) == []
        migrations.downgrade(schema)
        assert migrations.current(schema) is None
        assert PACKAGE_TABLES.isdisjoint(sa.inspect(schema).get_table_names())


def test_cli_upgrade_and_downgrade_leave_host_tables_alone(
    make_app: AppFactory, schema: sa.Engine
) -> None:
    db = SQLAlchemy()

    class Invoice(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "host_invoice_for_migration_test"
        id = sa.Column(sa.Integer, primary_key=True)

    app: Flask = make_app(db=db)
    with migrating(schema):
        try:
            with app.app_context():
                db.create_all()
            runner = app.test_cli_runner()
            result = runner.invoke(args=["maildelivery", "db", "upgrade"])
            assert result.exit_code == 0, result.output
            assert f"maildelivery schema at {migrations.head()}" in result.output
            tables = set(sa.inspect(schema).get_table_names())
            assert PACKAGE_TABLES | {migrations.VERSION_TABLE, Invoice.__tablename__} <= tables
            assert "alembic_version" not in tables  # the host's own Alembic table is not ours

            result = runner.invoke(args=["maildelivery", "db", "current"])
            assert result.output.strip() == migrations.head()
            result = runner.invoke(args=["maildelivery", "db", "downgrade"])
            assert result.exit_code == 0, result.output
            tables = set(sa.inspect(schema).get_table_names())
            assert PACKAGE_TABLES.isdisjoint(tables)
            assert Invoice.__tablename__ in tables
        finally:
            with app.app_context():
                db.drop_all()
    assert MailDelivery.state(app).db is db


#: Emails as a version before 0.2.0 stored them: (id, stored status, stored result, the
#: recipients' statuses), and the (status, result) the 0.2.0 rules make of them.
OLD_ROWS = [
    # the To refused at send time, the Cc opened it: stored as "opened"
    (1, "opened", "warning", ("failed", "opened"), ("failed", "warning")),
    # a spam complaint was shown as nothing
    (2, "", "delivered", ("complained", "delivered"), ("complained", "delivered")),
    (3, "opened", "delivered", ("clicked", "complained"), ("complained", "delivered")),
    (4, "deferred", "processed", ("deferred", "complained"), ("complained", "processed")),
    # unchanged by the new rules
    (5, "bounced", "warning", ("bounced", "failed", "opened"), ("bounced", "warning")),
    (6, "dropped", "error", ("dropped", "failed"), ("dropped", "error")),
    (7, "opened", "delivered", ("opened", "unsubscribed"), ("opened", "delivered")),
    (8, "", "queued", ("queued", "queued"), ("", "queued")),
    # the send itself was refused: the result stays "failed"
    (9, "", "failed", ("failed", "failed"), ("failed", "failed")),
    (10, "", "failed", (), ("", "failed")),
    (11, "", "queued", (), ("", "queued")),
    # a result that does not match its recipients is recomputed too
    (12, "", "queued", ("delivered", "delivered"), ("", "delivered")),
]


def _insert_old_rows(connection: sa.Connection) -> None:
    """Write :data:`OLD_ROWS` with plain SQL, as the 0002 schema holds them."""
    recipient_id = 0
    for email_id, status, result, recipients, _ in OLD_ROWS:
        connection.execute(
            sa.text(
                "INSERT INTO maildelivery_email (id, public_id, created_at, updated_at, sender,"
                " subject, attachments, headers, metadata, status, result) VALUES (:id, :public_id,"
                " '2026-11-30 10:00:00', '2026-11-30 10:00:00', 'billing@acme.test', 'Invoice',"
                " '[]', '{}', '{}', :status, :result)"
            ),
            {"id": email_id, "public_id": f"old{email_id}", "status": status, "result": result},
        )
        for position, recipient_status in enumerate(recipients):
            recipient_id += 1
            address = f"r{position}@customer.test"
            connection.execute(
                sa.text(
                    "INSERT INTO maildelivery_recipient (id, email_id, address, address_key, kind,"
                    " status, updated_at) VALUES (:id, :email_id, :address, :address, :kind,"
                    " :status, '2026-11-30 10:00:00')"
                ),
                {
                    "id": recipient_id,
                    "email_id": email_id,
                    "address": address,
                    "kind": "to" if position == 0 else "cc",
                    "status": recipient_status,
                },
            )


def _stored(engine: sa.Engine) -> dict[int, tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, status, result FROM maildelivery_email ORDER BY id")
        )
        return {id_: (status, result) for id_, status, result in rows}


def test_0003_recomputes_the_status_and_result_of_emails_stored_before(
    schema: sa.Engine,
) -> None:
    with migrating(schema):
        migrations.upgrade(schema, "0002")
        with schema.begin() as connection:
            _insert_old_rows(connection)
        migrations.upgrade(schema, "0003_email_status_rules")
        recomputed = _stored(schema)
        assert recomputed == {row[0]: row[4] for row in OLD_ROWS}
        # the same as the rules the package applies to new events
        for email_id, _, old_result, recipients, _ in OLD_ROWS:
            expected_result = email_result(list(recipients), send_refused=old_result == "failed")
            assert recomputed[email_id] == (email_status(list(recipients)), expected_result)

        # back to 0002: the status as versions before 0.2.0 computed it
        with schema.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE maildelivery_recipient SET status = 'suppressed'"
                    " WHERE email_id = 6 AND status = 'dropped'"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO maildelivery_event (email_id, provider, provider_event_id, type,"
                    " raw_type, occurred_at, received_at, payload) VALUES (6, 'simulated', 'ev-1',"
                    " 'suppressed', 'suppressed', '2026-11-30 10:00:00', '2026-11-30 10:00:00',"
                    " '{}')"
                )
            )
        migrations.downgrade(schema, "0002")
        old = _stored(schema)
        assert old[1] == ("opened", "warning")
        assert old[2] == ("", "delivered")
        assert old[3] == ("opened", "delivered")
        assert old[4] == ("deferred", "processed")
        assert old[6] == ("dropped", "error")  # "suppressed" is not known before 0.2.0
        assert old[9] == ("", "failed")
        with schema.connect() as connection:
            statuses = connection.execute(sa.text("SELECT status FROM maildelivery_recipient"))
            assert "suppressed" not in {status for (status,) in statuses}
            types = connection.execute(sa.text("SELECT type FROM maildelivery_event"))
            assert [type_ for (type_,) in types] == ["dropped"]
        assert {i: old[i] for i in (5, 7, 8, 10, 11, 12)} == {
            i: recomputed[i] for i in (5, 7, 8, 10, 11, 12)
        }


#: Recipients of emails whose send was accepted on a retry, as versions before 0.2.0 stored
#: them: (recipient id, email id, stored status, its events as (provider, raw type, type,
#: minute, reason)), and the (status, reason) they get from 0014 on.
RETRIED = [
    # accepted on attempt 2: no longer deferred
    (
        1,
        1,
        "deferred",
        [
            ("maildelivery", "attempt-1", "deferred", 0, "attempt 1 of 5 failed: timed out"),
            ("maildelivery", "accepted-2", "processed", 2, "accepted on attempt 2"),
        ],
        ("processed", "accepted on attempt 2"),
    ),
    (
        2,
        1,
        "deferred",
        [
            ("maildelivery", "attempt-1", "deferred", 0, "attempt 1 of 5 failed: timed out"),
            ("maildelivery", "attempt-2", "deferred", 1, "attempt 2 of 5 failed: timed out"),
            ("maildelivery", "accepted-3", "processed", 3, "accepted on attempt 3"),
        ],
        ("processed", "accepted on attempt 3"),
    ),
    # the provider's own delay, reported between two attempts, still counts (and now
    # decides the reason)
    (
        3,
        2,
        "deferred",
        [
            ("sendgrid", "deferred", "deferred", 1, "421 try again later"),
            ("maildelivery", "attempt-1", "deferred", 0, "attempt 1 of 5 failed: timed out"),
            ("maildelivery", "attempt-2", "deferred", 2, "attempt 2 of 5 failed: timed out"),
            ("maildelivery", "accepted-3", "processed", 3, "accepted on attempt 3"),
        ],
        ("deferred", "421 try again later"),
    ),
    # refused on the accepting attempt: stays failed
    (
        4,
        2,
        "failed",
        [
            ("maildelivery", "attempt-1", "deferred", 0, "attempt 1 of 5 failed: timed out"),
            ("maildelivery", "smtp-refused", "failed", 3, "550 5.1.1 mailbox unavailable"),
        ],
        ("failed", "550 5.1.1 mailbox unavailable"),
    ),
    # a retry still to come: deferred
    (
        5,
        3,
        "deferred",
        [("maildelivery", "attempt-1", "deferred", 0, "attempt 1 of 5 failed: timed out")],
        ("deferred", "attempt 1 of 5 failed: timed out"),
    ),
]


def test_0014_recounts_the_recipients_whose_send_was_accepted_on_a_retry(
    schema: sa.Engine,
) -> None:
    with migrating(schema):
        migrations.upgrade(schema, "0013_address_statistics")
        with schema.begin() as connection:
            for email_id, status, result in (
                (1, "deferred", "processed"),
                (2, "failed", "warning"),
                (3, "deferred", "processed"),
            ):
                connection.execute(
                    sa.text(
                        "INSERT INTO maildelivery_email (id, public_id, created_at, updated_at,"
                        " sender, subject, attachments, headers, metadata, status, result) VALUES"
                        " (:id, :public_id, '2026-11-30 10:00:00', '2026-11-30 10:00:00',"
                        " 'hr@acme.test', 'Payslip', '[]', '{}', '{}', :status, :result)"
                    ),
                    {
                        "id": email_id,
                        "public_id": f"p{email_id}",
                        "status": status,
                        "result": result,
                    },
                )
            for recipient_id, email_id, status, events, _expected in RETRIED:
                # the reason the earlier rules kept: the latest event of the winning status
                reason = max((e for e in events if e[2] == status), key=lambda e: e[3])[4]
                connection.execute(
                    sa.text(
                        "INSERT INTO maildelivery_recipient (id, email_id, address, address_key,"
                        " kind, status, reason, status_at, updated_at) VALUES (:id, :email_id,"
                        " :address, :address, 'to', :status, :reason, '2026-11-30 10:00:00',"
                        " '2026-11-30 10:00:00')"
                    ),
                    {
                        "id": recipient_id,
                        "email_id": email_id,
                        "address": f"r{recipient_id}@acme.test",
                        "status": status,
                        "reason": reason,
                    },
                )
                for position, (provider, raw_type, type_, minute, text) in enumerate(events):
                    connection.execute(
                        sa.text(
                            "INSERT INTO maildelivery_event (email_id, recipient_id, provider,"
                            " provider_event_id, type, raw_type, occurred_at, received_at,"
                            " reason, payload) VALUES (:email_id, :recipient_id, :provider,"
                            " :event_id, :type, :raw_type, :at, :at, :reason, '{}')"
                        ),
                        {
                            "email_id": email_id,
                            "recipient_id": recipient_id,
                            "provider": provider,
                            "event_id": f"{recipient_id}-{position}",
                            "type": type_,
                            "raw_type": raw_type,
                            "at": f"2026-11-30 10:0{minute}:00",
                            "reason": text,
                        },
                    )
        migrations.upgrade(schema)
        with schema.connect() as connection:
            recipients = {
                id_: (status, reason)
                for id_, status, reason in connection.execute(
                    sa.text("SELECT id, status, reason FROM maildelivery_recipient")
                )
            }
            events = connection.scalar(sa.text("SELECT count(*) FROM maildelivery_event"))
        assert recipients == {row[0]: row[4] for row in RETRIED}
        assert events == sum(len(row[3]) for row in RETRIED)  # events are kept
        assert _stored(schema) == {
            1: ("", "processed"),  # off the attention list
            2: ("failed", "warning"),
            3: ("deferred", "processed"),
        }
        migrations.downgrade(schema, "0013_address_statistics")
        assert _stored(schema)[1] == ("", "processed")


def _attention_index(engine: sa.Engine) -> str | None:
    """The definition of the partial index of the emails needing attention, as PostgreSQL
    prints it (``None``: the database has no such index)."""
    if engine.dialect.name != "postgresql":
        names = {i["name"] for i in sa.inspect(engine).get_indexes("maildelivery_email")}
        return (
            "ix_maildelivery_email_attention"
            if "ix_maildelivery_email_attention" in names
            else None
        )
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_maildelivery_email_attention'"
                " AND schemaname = current_schema()"
            )
        ).scalar()


def test_0016_indexes_the_emails_needing_attention_as_the_models_do(schema: sa.Engine) -> None:
    built = _attention_index(schema)  # create_all, from the models
    with migrating(schema):
        migrations.upgrade(schema)
        assert _attention_index(schema) == built
        if schema.dialect.name == "postgresql":
            assert built is not None
            assert "WHERE" in built
            assert "reviewed_at IS NULL" in built
        else:  # no partial index there
            assert built is None
        migrations.downgrade(schema, "0015_hourly")
        assert _attention_index(schema) is None


def _recipient_storage(engine: sa.Engine) -> list[str] | None:
    """The storage parameters of the recipients' table (``None``: none set); PostgreSQL only,
    the other databases have none."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT reloptions FROM pg_class WHERE relname = 'maildelivery_recipient'"
                " AND relnamespace = current_schema()::regnamespace"
            )
        ).scalar()


def test_0017_leaves_room_for_the_recipients_updates_as_the_models_do(
    schema: sa.Engine,
) -> None:
    built = _recipient_storage(schema)  # create_all, from the models
    with migrating(schema):
        migrations.upgrade(schema)
        assert _recipient_storage(schema) == built
        if schema.dialect.name == "postgresql":
            assert built == ["fillfactor=80"]
        migrations.downgrade(schema, "0016_attention_index")
        assert _recipient_storage(schema) is None
