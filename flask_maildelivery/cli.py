"""The ``flask maildelivery`` command group: commands only, the logic lives elsewhere."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import Engine

from . import migrations
from .context import config_value, get_state
from .ingest import apply_unmatched_events
from .maintenance import purge, retention_cutoff, stats
from .sending import RecordingFailed, ResendRefused, SendRefused, resend_email


def _engine() -> Engine:
    return get_state().db.engine


@click.group("maildelivery", help="Email delivery log: schema, housekeeping, resends.")
def maildelivery_cli() -> None:
    """The command group."""


@maildelivery_cli.group("db", help="The package's own migrations on the app's database.")
def db_group() -> None:
    """Schema commands."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply the package's migrations up to REVISION (default: head)."""
    migrations.upgrade(_engine(), revision)
    click.echo(f"maildelivery schema at {migrations.current(_engine())}")


@db_group.command("downgrade")
@click.argument("revision", default="base")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Revert the package's migrations down to REVISION (default: base, no tables)."""
    migrations.downgrade(_engine(), revision)
    click.echo(f"maildelivery schema at {migrations.current(_engine()) or 'base'}")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Print the revision the database is at."""
    click.echo(migrations.current(_engine()) or "base")


@maildelivery_cli.command("purge")
@click.option("--days", type=int, default=None, help="Default: MAILDELIVERY_RETENTION_DAYS.")
@click.option("--bodies-only", is_flag=True, help="Keep the records, drop the bodies.")
@with_appcontext
def purge_command(days: int | None, bodies_only: bool) -> None:
    """Delete emails (or only their bodies) older than the retention period."""
    days = days if days is not None else config_value("RETENTION_DAYS")
    if days is None:
        raise click.UsageError("set MAILDELIVERY_RETENTION_DAYS or pass --days")
    count = purge(current_app, retention_cutoff(days), bodies_only=bodies_only)
    click.echo(f"purged {count} email(s) older than {days} day(s)")


@maildelivery_cli.command("stats")
@click.option("--days", type=int, default=7, show_default=True)
@click.option("--tenant", default=None)
@with_appcontext
def stats_command(days: int, tenant: str | None) -> None:
    """Print emails by result and recipients by status over the last DAYS days."""
    figures = stats(current_app, retention_cutoff(days), tenant)
    click.echo(f"emails sent in the last {days} day(s), by result:")
    for name, count in sorted(figures["results"].items()):
        click.echo(f"  {name:<10} {count}")
    click.echo("recipients, by status:")
    for name, count in sorted(figures["statuses"].items()):
        click.echo(f"  {name:<12} {count}")


@maildelivery_cli.command("resend")
@click.argument("email_id", type=int)
@click.option("--all-recipients", is_flag=True, help="Not only the failed recipients.")
@click.option(
    "--force",
    is_flag=True,
    help="Resend even while an earlier copy is on its way, or to an unchanged address.",
)
@with_appcontext
def resend_command(email_id: int, all_recipients: bool, force: bool) -> None:
    """Send a copy of email EMAIL_ID to its failed recipients (or to all)."""
    try:
        email = resend_email(get_state(), email_id, only_failed=not all_recipients, force=force)
    except ResendRefused as exc:
        hint = " (pass --force to resend anyway)" if exc.can_force else ""
        raise click.ClickException(f"{exc}{hint}") from None
    except (SendRefused, RecordingFailed) as exc:
        raise click.ClickException(str(exc)) from None
    except LookupError:
        raise click.ClickException(f"no email {email_id}") from None
    click.echo(f"resent as email {email.id} (result {email.result})")


@maildelivery_cli.command("reconcile")
@with_appcontext
def reconcile_command() -> None:
    """Apply stored events that arrived before their email was known."""
    report = apply_unmatched_events(current_app)
    click.echo(
        f"{len(report.recipient_changes)} recipient status change(s), "
        f"{len(report.result_changes)} result change(s)"
    )
