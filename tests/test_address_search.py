"""Search of the delivery log by part of a recipient address (a domain, a name), on every
database; on PostgreSQL through the trigram index of migration ``0011_address_trigram``, and
by the start of an address, with a notice, where that index is missing because the database
user may not create the ``pg_trgm`` extension."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flask_maildelivery import migrations
from flask_maildelivery.models import ADDRESS_STATISTICS, TRIGRAM_INDEX, Base
from flask_maildelivery.views import queries

from .conftest import AppFactory
from .log_helpers import ADMIN, LogApp, listed_ids, make_log_app, send_delivered
from .test_webhook_inbox_gunicorn import postgresql_url


def _send_three(log: LogApp) -> tuple[int, int, int]:
    with log.app.app_context():
        ann = send_delivered(log, subject="Invoice", to=["Ann.Smith@Customer.test"]).id
        annabel = send_delivered(log, subject="Order", to=["annabel@other.test"]).id
        bob = send_delivered(log, subject="Payslip", to=["bob@customer.test", "x@else.test"]).id
    return ann, annabel, bob


def _shown(log: LogApp, query: str) -> tuple[list[int], str]:
    response = log.client().get(f"/maildelivery/?show=all&{query}")
    assert response.status_code == 200, query
    html = response.get_data(as_text=True)
    return listed_ids(html), html


def _api_ids(log: LogApp, query: str) -> list[int]:
    response = log.client().get(f"/maildelivery/api/emails?show=all&{query}")
    assert response.status_code == 200, query
    return [item["id"] for item in response.get_json()["items"]]


def test_a_domain_or_any_part_of_an_address_finds_its_emails(make_app: AppFactory) -> None:
    log = make_log_app(make_app)
    log.viewer.user = ADMIN
    ann, annabel, bob = _send_three(log)

    ids, html = _shown(log, "recipient=customer.test")
    assert ids == [bob, ann]
    assert 'id="md-search-prefix"' not in html
    assert 'placeholder="Address or domain"' in html
    assert _shown(log, "recipient=@CUSTOMER")[0] == [bob, ann]  # any case
    assert _shown(log, "recipient=smith@")[0] == [ann]  # the middle of an address
    assert _shown(log, "recipient=ann")[0] == [annabel, ann]
    assert _shown(log, "recipient=else.test")[0] == [bob]  # any recipient of the email
    assert _shown(log, "recipient=bob@customer.test")[0] == [bob]  # an exact address
    # a text with an "@" matches whole: both sides of it, and across it
    assert _shown(log, "recipient=smith@customer.test")[0] == [ann]
    assert _shown(log, "recipient=ann.smith@customer.tes")[0] == [ann]
    assert _shown(log, "recipient=smith@other.test")[0] == []  # Ann's name, Annabel's domain
    assert _shown(log, "recipient=annabel@customer")[0] == []
    assert _shown(log, "recipient=b@customer.test")[0] == [bob]  # a short name before the @
    # LIKE wildcards are plain characters
    assert _shown(log, "recipient=%25.test")[0] == []
    assert _shown(log, "recipient=_")[0] == []
    assert _shown(log, "recipient=nobody.test")[0] == []
    # the JSON API and the CSV export search alike
    assert _api_ids(log, "recipient=customer.test") == [bob, ann]
    csv_text = log.client().get("/maildelivery/export.csv?show=all&recipient=other.test").text
    assert "annabel@other.test" in csv_text
    assert "customer.test" not in csv_text


def test_the_database_says_how_addresses_are_searched(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app()
    with app.app_context(), queries.reading() as connection:
        # the suite's PostgreSQL database may create pg_trgm: the index is there
        postgresql = connection.dialect.name == "postgresql"
        expected = queries.SEARCH_TRIGRAM if postgresql else queries.SEARCH_CONTAINS
        assert queries.address_search(connection) == expected
        if postgresql:
            found = connection.execute(sa.text("SELECT to_regclass(:n)"), {"n": TRIGRAM_INDEX})
            assert found.scalar() is not None


@pytest.fixture
def restricted_schema() -> Iterator[str]:
    """A URL on the suite's PostgreSQL database whose connections act as a role that may not
    create extensions, in a PostgreSQL schema of that role's own, while the database has no
    ``pg_trgm``: the migrations run there as on a managed database that refuses
    ``CREATE EXTENSION``. Afterwards the schema and the role are dropped, and ``pg_trgm`` and
    the trigram index of the suite's own tables are built again."""
    url = sa.make_url(postgresql_url())
    name = f"md_noext_{secrets.token_hex(4)}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        # the trigram index of the suite's tables goes with the extension
        connection.execute(sa.text("DROP EXTENSION IF EXISTS pg_trgm CASCADE"))
        connection.execute(sa.text(f"CREATE ROLE {name} NOLOGIN"))
        connection.execute(sa.text(f"CREATE SCHEMA {name} AUTHORIZATION {name}"))
    options = f"-crole={name} -csearch_path={name}"
    restricted = url.update_query_dict({"options": options})
    try:
        yield restricted.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
            connection.execute(sa.text(f"DROP ROLE {name}"))
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            has_tables = connection.execute(
                sa.text("SELECT to_regclass('maildelivery_recipient')")
            ).scalar()
            if has_tables is not None:
                connection.execute(
                    sa.text(
                        f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON maildelivery_recipient"
                        " USING gin (address_key gin_trgm_ops)"
                    )
                )
        admin.dispose()


def test_without_pg_trgm_the_migration_goes_on_and_the_log_searches_by_prefix(
    restricted_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sa.create_engine(restricted_schema)
    try:
        with engine.connect() as connection:
            refused = connection.execute(
                sa.text("SELECT has_database_privilege(current_database(), 'CREATE')")
            ).scalar()
            assert refused is False  # the role may not create pg_trgm
        with caplog.at_level(logging.WARNING, logger="flask_maildelivery.migrations"):
            migrations.upgrade(engine)
        assert migrations.current(engine) == migrations.head()
        assert "CREATE EXTENSION pg_trgm" in caplog.text
        indexes = {i["name"] for i in sa.inspect(engine).get_indexes("maildelivery_recipient")}
        assert TRIGRAM_INDEX not in indexes
        assert "ix_maildelivery_recipient_address_key_pattern" in indexes

        factory = AppFactory(restricted_schema)
        try:
            log = make_log_app(factory)
            log.viewer.user = ADMIN
            ann, annabel, _bob = _send_three(log)
            ids, html = _shown(log, "recipient=customer.test")
            assert ids == []  # by the start of an address only
            assert 'id="md-search-prefix"' in html
            assert "Only addresses starting with “customer.test” are found: this PostgreSQL" in html
            assert 'placeholder="Address or its start"' in html
            ids, html = _shown(log, "recipient=ann")
            assert ids == [annabel, ann]
            assert 'id="md-search-prefix"' in html
            assert 'id="md-search-prefix"' not in _shown(log, "subject=Order")[1]
            assert _api_ids(log, "recipient=customer.test") == []
            assert _api_ids(log, "recipient=ann.smith@") == [ann]
        finally:
            factory.teardown()
        migrations.downgrade(engine)
        assert migrations.current(engine) is None
    finally:
        engine.dispose()


@pytest.fixture
def own_schema() -> Iterator[sa.Engine]:
    """An engine on the suite's PostgreSQL database whose connections use a new, empty
    PostgreSQL schema (``public`` stays on the path: pg_trgm's operator classes live
    there); the schema is dropped afterwards."""
    url = sa.make_url(postgresql_url())
    name = f"md_search_{secrets.token_hex(4)}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {name}"))
    engine = sa.create_engine(url.update_query_dict({"options": f"-csearch_path={name},public"}))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


def test_the_trigram_migration_builds_the_index_where_pg_trgm_may_be_created(
    own_schema: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine = own_schema
    with caplog.at_level(logging.WARNING, logger="flask_maildelivery.migrations"):
        migrations.upgrade(engine)
    assert caplog.text == ""
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("maildelivery_recipient")}
    assert TRIGRAM_INDEX in indexes
    with engine.connect() as connection:
        assert queries.address_search(connection) == queries.SEARCH_TRIGRAM
    migrations.downgrade(engine, "0006_webhook_inbox")
    with engine.connect() as connection:
        assert queries.address_search(connection) == queries.SEARCH_PREFIX


def test_a_search_by_part_of_an_address_is_planned_for_its_own_pattern(
    make_app: AppFactory,
) -> None:
    """psycopg prepares a statement run five times; PostgreSQL could then keep a generic plan
    for ``LIKE $1``, which cannot read the trigram index: the package's transaction asks for
    a plan per execution instead (and leaves other databases and searches alone)."""
    log = make_log_app(make_app)
    log.viewer.user = ADMIN
    ann, _, bob = _send_three(log)
    with log.app.app_context(), queries.reading() as connection:
        postgresql = connection.dialect.name == "postgresql"

        def setting(name: str) -> str | None:
            if not postgresql:
                return None
            return str(connection.execute(sa.text(f"SHOW {name}")).scalar())

        parallel_default = setting("max_parallel_workers_per_gather")
        by_start = queries.LogFilter(show="all", recipient="ann")
        queries.log_page(connection, by_start, None, 10)
        assert setting("plan_cache_mode") in (None, "auto")
        contains = queries.LogFilter(
            show="all",
            recipient="customer.test",
            recipient_search=queries.address_search(connection),
        )
        for _ in range(8):  # past psycopg's prepare threshold
            page = queries.log_page(connection, contains, None, 10)
            assert [row.id for row in page.rows] == [bob, ann]
        assert setting("plan_cache_mode") == ("force_custom_plan" if postgresql else None)
        # a page of a search is read by one process, not merged from parallel workers
        assert setting("max_parallel_workers_per_gather") == ("0" if postgresql else None)
        assert parallel_default in (None, "2")


def _address_statistics(engine: sa.Engine) -> int:
    """The planner histogram size set on ``maildelivery_recipient.address_key`` (``-1``:
    the server's default), in the schema the engine's search path starts with."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text(
                    "SELECT attstattarget FROM pg_attribute"
                    " WHERE attrelid = 'maildelivery_recipient'::regclass"
                    " AND attname = 'address_key'"
                )
            ).scalar_one()
        )


def test_the_planner_keeps_a_larger_histogram_of_addresses(own_schema: sa.Engine) -> None:
    # with the default 100 values it could not tell a domain matching thousands of
    # recipients from a rare address, and read the trigram index for both (0.2-0.5 s a
    # domain at 3,000,000 recipients); with 1,000, a rare text that is part of one of the
    # histogram's bounds was estimated as common as a domain and read every email newest
    # first (0.6-0.7 s; benchmarks/log_pages.py)
    engine = own_schema
    migrations.upgrade(engine, "0012_queue")
    assert _address_statistics(engine) == -1
    migrations.upgrade(engine, "0013_address_statistics")
    assert _address_statistics(engine) == 1000
    migrations.upgrade(engine)
    assert _address_statistics(engine) == ADDRESS_STATISTICS == 5000
    migrations.downgrade(engine, "0013_address_statistics")
    assert _address_statistics(engine) == 1000
    migrations.downgrade(engine, "0012_queue")
    assert _address_statistics(engine) == -1
    migrations.downgrade(engine)
    Base.metadata.create_all(engine)  # the models say the same
    assert _address_statistics(engine) == ADDRESS_STATISTICS
