"""The ``flask maildelivery`` command group: commands only, the logic lives elsewhere."""

from __future__ import annotations

from typing import BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import migrations
from .bounces import mailbox as bounce_mailbox
from .bounces.processing import BounceOutcome, read_bounce
from .bounces.reports import MAX_READ_BYTES
from .context import config_value, get_state
from .ingest import apply_unmatched_events
from .maintenance import purge, rebuild_rollups, retention_cutoff
from .sending import RecordingFailed, ResendRefused, SendRefused, resend_email
from .sending.retry import release_stuck, send_due
from .views.overview import SERIES
from .views.reading import read_overview
from .webhooks import inbox


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
@click.option(
    "--inbox-failed",
    is_flag=True,
    help="Also delete failed webhook inbox rows older than MAILDELIVERY_INBOX_RETENTION_DAYS.",
)
@with_appcontext
def purge_command(days: int | None, bodies_only: bool, inbox_failed: bool) -> None:
    """Delete emails (or only their bodies) older than the retention period, and applied
    webhook inbox rows older than MAILDELIVERY_INBOX_RETENTION_DAYS."""
    days = days if days is not None else config_value("RETENTION_DAYS")
    if days is None:
        click.echo("emails kept: set MAILDELIVERY_RETENTION_DAYS or pass --days")
    else:
        count = purge(current_app, retention_cutoff(days), bodies_only=bodies_only)
        click.echo(f"purged {count} email(s) older than {days} day(s)")
    inbox_days = int(config_value("INBOX_RETENTION_DAYS"))
    rows = inbox.purge(current_app, retention_cutoff(inbox_days), include_failed=inbox_failed)
    kept = "" if inbox_failed else " (failed rows kept: see flask maildelivery inbox list)"
    click.echo(f"purged {rows} webhook inbox row(s) older than {inbox_days} day(s){kept}")


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


@maildelivery_cli.command("stats")
@click.option("--tenant", default=None, help="Default: the emails without a tenant.")
@click.option("--tz", "zone_name", default="UTC", show_default=True, help="Time zone of the days.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="First count the hourly rollups the figures come from again, from the emails.",
)
@with_appcontext
def stats_command(tenant: str | None, zone_name: str, rebuild: bool) -> None:
    """Print the overview page's figures: the attention counts, emails per day by result
    over the last 30 days, bounce and complaint rates, the failing domains, the providers.

    With --rebuild, the hourly rollups of every tenant are first counted again from the
    emails and recipients (after a restore, or rows changed by hand)."""
    try:
        zone = ZoneInfo(zone_name)
    except (ValueError, ZoneInfoNotFoundError):
        raise click.BadParameter(
            f"{zone_name!r} is not an IANA time zone name such as Europe/Paris",
            param_hint="--tz",
        ) from None
    if rebuild:
        try:
            outcomes, domains, failures = rebuild_rollups(current_app)
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"the rollups could not be rebuilt (nothing changed): {getattr(exc, 'orig', exc)}"
            ) from None
        click.echo(
            f"rollups rebuilt: {outcomes} hourly outcome row(s), {domains} domain row(s),"
            f" {failures} failure row(s)\n"
        )
    figures = read_overview(tenant, zone)
    click.echo(
        f"overview of {'tenant ' + tenant if tenant else 'the emails without a tenant'},"
        f" {figures.first_day} to {figures.days[-1].day} ({figures.timezone})"
    )
    for count in figures.counts:
        shown = f"{count.value}{'+' if count.capped else ''}"
        click.echo(f"  {count.key:<14} {shown}")
    names = list(SERIES)
    click.echo("\nemails per day, by result:")
    click.echo("  " + f"{'day':<10}" + "".join(f"{name:>10}" for name in [*names, "total"]))
    for day in reversed(figures.days):
        counts = [day.counts[name] for name in names]
        click.echo(f"  {day.day}" + "".join(f"{n:>10}" for n in [*counts, day.total]))
    click.echo("\nbounce and complaint rates (emails sent; level):")
    for rate in figures.rates:
        click.echo(
            f"  last {rate.days:>2} days  sent {rate.sent}"
            f"  bounced {rate.bounced} ({_percent(rate.bounce_rate)}, {rate.bounce_level})"
            f"  complained {rate.complained}"
            f" ({_percent(rate.complaint_rate)}, {rate.complaint_level})"
        )
    click.echo("\nrecipient domains with the most failures (failed of recipients, rate):")
    if not figures.domains:
        click.echo("  none")
    for domain in figures.domains:
        reason = (domain.last_reason or "").splitlines()[0] if domain.last_reason else ""
        click.echo(
            f"  {domain.domain:<30} {domain.failures:>7} of {domain.recipients:<7}"
            f" {_percent(domain.rate):>8}  {reason}"
        )
    click.echo("\nproviders:")
    if not figures.providers:
        click.echo("  none reports outcomes: only the mail server's acceptance is known")
    for provider in figures.providers:
        last = f"{provider.last_event_at:%Y-%m-%d %H:%M:%S}Z" if provider.last_event_at else "never"
        lag = (
            f"{provider.median_lag:.0f} s over {provider.lag_emails} email(s)"
            if provider.median_lag is not None
            else "-"
        )
        overdue = "-" if provider.overdue is None else str(provider.overdue)
        click.echo(
            f"  {provider.provider:<12} last event {last}  median lag (last day) {lag}"
            f"  overdue {overdue}"
        )


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


@maildelivery_cli.command("retry")
@click.option(
    "--release",
    "release_ids",
    type=int,
    multiple=True,
    metavar="EMAIL_ID",
    help="Send again an email stuck in 'sending' (check first that it did not go out).",
)
@with_appcontext
def retry_command(release_ids: tuple[int, ...]) -> None:
    """Send the queued emails that are due: retries of transient failures (up to
    MAILDELIVERY_MAX_ATTEMPTS) and scheduled sends. Run it from cron when
    MAILDELIVERY_QUEUE is not "celery"; with Celery, it hands lost sends to the workers.
    Emails stuck in 'sending' are reported, never sent twice silently."""
    try:
        if release_ids:
            released = release_stuck(current_app, release_ids)
            missing = sorted(set(release_ids) - set(released))
            if missing:
                click.echo(
                    "not stuck in 'sending' (sent, failed or not queued): "
                    + ", ".join(map(str, missing)),
                    err=True,
                )
        report = send_due(current_app)
    except (RecordingFailed, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    for attempt in report.attempts:
        outcome = attempt.outcome.value if attempt.outcome else "not claimed (sent elsewhere)"
        click.echo(f"email {attempt.email_id}: {outcome}")
    if report.enqueued:
        click.echo(f"{len(report.enqueued)} queued email(s) handed to the workers again")
    for stuck in report.stuck:
        click.echo(
            f"email {stuck.email_id} stuck in 'sending' since "
            f"{stuck.claimed_at:%Y-%m-%d %H:%M:%S}Z (attempt {stuck.attempts}): its worker may "
            "have stopped mid-send, so it may have gone out; once checked, "
            f"flask maildelivery retry --release {stuck.email_id} sends it again",
            err=True,
        )
    if not (report.attempts or report.enqueued or report.stuck):
        click.echo("no queued email is due")


@maildelivery_cli.command("reconcile")
@with_appcontext
def reconcile_command() -> None:
    """Apply stored events that arrived before their email was known."""
    report = apply_unmatched_events(current_app)
    click.echo(
        f"{len(report.recipient_changes)} recipient status change(s), "
        f"{len(report.result_changes)} result change(s)"
    )


@maildelivery_cli.group("inbox", help="Stored webhook requests whose events are not applied.")
def inbox_group() -> None:
    """Webhook inbox commands."""


@inbox_group.command("list")
@with_appcontext
def inbox_list() -> None:
    """Print the failed and pending webhook requests, one line each."""
    entries = inbox.unsettled(current_app)
    if not entries:
        click.echo("no failed or pending webhook requests")
    for entry in entries:
        error = (entry.error or "").splitlines()[0] if entry.error else ""
        click.echo(
            f"{entry.id}\t{entry.status}\t{entry.provider}\t"
            f"{entry.received_at:%Y-%m-%d %H:%M:%S}Z\t{entry.attempts} attempt(s)\t{error}"
        )


@inbox_group.command("retry")
@click.option("--id", "inbox_id", type=int, default=None, help="One row, by its id.")
@click.option("--all", "retry_all", is_flag=True, help="Every failed and pending row.")
@with_appcontext
def inbox_retry(inbox_id: int | None, retry_all: bool) -> None:
    """Apply the events of stored webhook requests again (repeats change nothing)."""
    if (inbox_id is None) == (not retry_all):
        raise click.UsageError("pass --id N or --all")
    try:
        outcomes = inbox.retry(current_app, None if retry_all else inbox_id)
    except LookupError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    failed = 0
    for outcome in outcomes:
        if outcome.report is not None:
            report = outcome.report
            click.echo(
                f"{outcome.inbox_id}: applied ({report.stored} stored, "
                f"{report.duplicates} already stored)"
            )
        else:
            failed += 1
            click.echo(f"{outcome.inbox_id}: failed: {(outcome.error or '').splitlines()[0]}")
    if not outcomes:
        click.echo("no failed or pending webhook requests")
    if failed:
        raise click.ClickException(f"{failed} of {len(outcomes)} request(s) still failed")


#: sysexits.h's "temporary failure": what an MTA pipe retries later.
EX_TEMPFAIL = 75


@maildelivery_cli.group("bounces", help="The bounce mailbox: delayed errors of SMTP sends.")
def bounces_group() -> None:
    """Bounce mailbox commands."""


def _echo_fetch(report: bounce_mailbox.FetchReport) -> None:
    for outcome in report.outcomes:
        click.echo(outcome.summary())
    counts = ", ".join(f"{count} {action}" for action, count in sorted(report.counts().items()))
    click.echo(f"{len(report.outcomes)} message(s) read" + (f": {counts}" if counts else ""))
    for key, error in report.failed:
        click.echo(f"{key}: failed, kept for the next fetch: {error}", err=True)


@bounces_group.command("fetch")
@click.option("--reprocess", is_flag=True, help="Read processed messages again too.")
@with_appcontext
def bounces_fetch(reprocess: bool) -> None:
    """Read the new messages of MAILDELIVERY_BOUNCE_MAILBOX once (for cron)."""
    try:
        report = bounce_mailbox.fetch_bounces(current_app, reprocess=reprocess)
    except bounce_mailbox.BounceSourceError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_fetch(report)
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} message(s) could not be read")


@bounces_group.command("watch")
@click.option(
    "--interval",
    type=float,
    default=None,
    help="Seconds between reads (default: MAILDELIVERY_BOUNCE_POLL_INTERVAL).",
)
@with_appcontext
def bounces_watch(interval: float | None) -> None:
    """Keep reading MAILDELIVERY_BOUNCE_MAILBOX (stop with Ctrl-C)."""
    try:
        bounce_mailbox.open_source(current_app)
    except bounce_mailbox.BounceSourceError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        bounce_mailbox.watch_bounces(current_app, interval=interval, on_fetch=_echo_fetch)
    except KeyboardInterrupt:
        click.echo("stopped")


@bounces_group.command("read")
@click.argument("file", type=click.File("rb"))
@click.option("--explain", is_flag=True, help="Say how the message was read, step by step.")
@with_appcontext
def bounces_read(file: BinaryIO, explain: bool) -> None:
    """Read one message from FILE, or - for standard input (an MTA pipe)."""
    data = file.read(MAX_READ_BYTES)
    # the rest of a large message (a returned attachment) is not needed: drain, never keep
    drained = file.read(1024 * 1024)
    while drained:
        drained = file.read(1024 * 1024)
    if not data.strip():
        raise click.ClickException("the message is empty")
    try:
        outcome: BounceOutcome = read_bounce(current_app, data)
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        click.echo(f"Error: the bounce could not be stored, try again later: {cause}", err=True)
        # EX_TEMPFAIL: an MTA's pipe (Postfix pipe(8), Exim) keeps the message and retries
        raise click.exceptions.Exit(EX_TEMPFAIL) from None
    if explain:
        for step in outcome.steps:
            click.echo(f"  {step}")
    click.echo(outcome.summary())
