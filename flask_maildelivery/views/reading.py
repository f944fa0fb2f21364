"""What the pages and the API read alike: the viewer's tenant, the list's filter, and one
email with the status log of each of its recipients."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from ..context import get_state
from ..tracking import tracking
from ..webhooks import inbox
from . import overview, queries


def viewer_tenant() -> str | None:
    """The tenant whose emails the acting user sees (``None``: the emails without tenant)."""
    return get_state().callbacks.current_tenant()


def address_search() -> str:
    """How the app's database searches recipient addresses (see
    :func:`queries.address_search`): looked up once per app, on the first search."""
    state = get_state()
    if state.address_search is None:
        with queries.reading() as connection:
            state.address_search = queries.address_search(connection)
    return state.address_search


def read_filter(args: Any) -> queries.LogFilter:
    """The list's filter from query arguments, with the app's overdue rule now and the
    database's way of searching addresses.

    :raises queries.FilterError: an argument is not valid.
    """
    log_filter = replace(
        queries.LogFilter.from_args(args), overdue_rule=tracking(get_state()).overdue_rule()
    )
    if log_filter.recipient:
        log_filter = replace(log_filter, recipient_search=address_search())
    return log_filter


def read_email(email_id: int) -> queries.EmailDetail | None:
    """Email ``email_id`` of the viewer's tenant, or ``None``; for the detail page and the
    API."""
    with queries.reading() as connection:
        return queries.email_detail(connection, email_id, viewer_tenant())


def read_overview(tenant_id: str | None, zone: tzinfo) -> overview.Overview:
    """The overview of ``tenant_id``, its days cut in ``zone``: for the overview page and the
    API (the viewer's tenant and time zone) and ``flask maildelivery stats``.

    Its counts end with the failed webhook inbox requests (the app's, not a tenant's): a
    count added here appears on the page, in the API and in the terminal alike.
    """
    state = get_state()
    track = tracking(state)
    providers = set(state.reporting_providers)
    if track.provider is not None:
        providers.add(track.provider)
    bounce, complaint = overview.rate_thresholds()
    with queries.reading() as connection:
        figures = overview.read_overview(
            connection,
            tenant_id,
            zone=zone,
            track=track,
            providers=sorted(providers),
            bounce=bounce,
            complaint=complaint,
        )
    figures.counts.append(overview.Count("failed_inbox", inbox.failed_count()))
    return figures


@dataclass(frozen=True)
class RecipientLog:
    """One recipient of an email, its events (oldest first) and the host's URL of the
    contact record that holds its address."""

    recipient: queries.RecipientDetail
    events: list[queries.EventDetail]
    contact_url: str | None


@dataclass(frozen=True)
class StatusLogs:
    """What the detail page and the API show of an email beside its columns."""

    #: Each recipient with its events, in the email's order.
    recipients: list[RecipientLog]
    #: The events of the email that name no recipient.
    other_events: list[queries.EventDetail]
    #: The host's URL of the object the email was sent for.
    related_url: str | None


def status_logs(email: queries.EmailDetail) -> StatusLogs:
    """The status log of each recipient of ``email`` (from :func:`read_email`)."""
    callbacks = get_state().callbacks
    events: dict[int | None, list[queries.EventDetail]] = {}
    for event in email.events:
        events.setdefault(event.recipient_id, []).append(event)
    return StatusLogs(
        recipients=[
            RecipientLog(
                recipient=recipient,
                events=events.get(recipient.id, []),
                contact_url=callbacks.contact_url(recipient.contact_type, recipient.contact_id),
            )
            for recipient in email.recipients
        ],
        other_events=events.get(None, []),
        related_url=callbacks.related_url(email.related_type, email.related_id),
    )
