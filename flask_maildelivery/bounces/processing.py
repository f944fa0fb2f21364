"""One bounce message -> events of provider ``dsn`` -> :func:`~flask_maildelivery.ingest.ingest_events`.

The email a report is about is found by the VERP token of the address it was sent to
(:mod:`.verp`); a tagged address whose token does not verify is a forged bounce and
changes nothing. A report to the untagged bounce address falls back to the returned
message's ``X-MailDelivery-ID``, then its ``Message-ID``. Each event's id is the report's
id and the recipient, so reading the same message again stores nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from ..context import config_value
from ..events import NormalizedEvent, storable_id
from ..ingest import IngestReport, ingest_events
from ..models import utcnow
from ..vocabulary import EventType
from .reports import DSN_PROVIDER, BounceReport, read_report
from .settings import bounce_secrets
from .verp import check_address

logger = logging.getLogger("flask_maildelivery")

#: Width of ``Event.provider_event_id``.
EVENT_ID_WIDTH = 255


@dataclass
class BounceOutcome:
    """What reading one message did.

    :param action: ``applied`` (events stored), ``duplicate`` (read before: nothing new),
        ``unmatched`` (stored, but no email of the log matches yet), ``forged`` (a tagged
        address whose token does not verify), ``uncorrelated`` (a report that names no
        email of this app), or ``ignored`` (an auto-reply or unrelated mail).
    :param steps: how the message was read, for ``bounces read --explain``.
    """

    report: BounceReport
    action: str
    correlation: str | None = None
    ingest: IngestReport | None = None
    steps: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what the message was and what it did."""
        applied = self.action in ("applied", "unmatched", "duplicate")
        recipients = ", ".join(
            f"{r.address} {r.type}" for r in (self.report.recipients if applied else ())
        )
        text = f"{self.report.kind}: {self.action}"
        if self.correlation:
            text += f" ({self.correlation})"
        return f"{text}: {recipients}" if recipients else text


def read_bounce(app: Flask, data: bytes) -> BounceOutcome:
    """Recognize the message ``data`` and apply what it reports.

    :raises sqlalchemy.exc.SQLAlchemyError: the database failed; nothing of the message
        is stored, so it can be read again.
    """
    report = read_report(data)
    steps = [
        f"recognized as: {report.kind}",
        f"subject: {report.subject!r}, from: {report.sender or '(none)'}",
    ]
    for recipient in report.recipients:
        steps.append(
            f"recipient {recipient.address}: {recipient.action} -> {recipient.type}"
            + (f" ({recipient.bounce_type})" if recipient.bounce_type else "")
            + (f", status {recipient.status}" if recipient.status else "")
            + (f", reason {recipient.reason!r}" if recipient.reason else "")
        )
    if not report.is_report:
        steps.append("not a delivery report: nothing applied")
        logger.info("bounce mailbox: %s message %r ignored", report.kind, report.subject)
        return BounceOutcome(report, "ignored", steps=steps)
    if not report.recipients:
        steps.append("the report names no recipient: nothing applied")
        return BounceOutcome(report, "ignored", steps=steps)

    maildelivery_id, message_id, correlation = _correlation(app, report, steps)
    if correlation == "forged":
        logger.warning(
            "bounce mailbox: report %s was sent to a tagged address whose token does not "
            "verify (forged, or signed with a secret no longer configured): ignored",
            report.report_id,
        )
        return BounceOutcome(report, "forged", steps=steps)
    if maildelivery_id is None and message_id is None:
        steps.append("no token, X-MailDelivery-ID or Message-ID names an email: nothing applied")
        logger.info("bounce mailbox: report %s names no email of this app", report.report_id)
        return BounceOutcome(report, "uncorrelated", steps=steps)

    result = ingest_events(_events(report, maildelivery_id, message_id), app)
    if result.stored == 0:
        action = "duplicate"
        steps.append("already read before: nothing new stored")
    elif result.unmatched == result.stored:
        action = "unmatched"
        steps.append("stored, but no email of the log matches (yet)")
    else:
        action = "applied"
        steps.append(
            f"applied: {result.stored} event(s), {len(result.recipient_changes)} recipient "
            "status change(s)"
        )
    return BounceOutcome(report, action, correlation, result, steps)


def _correlation(
    app: Flask, report: BounceReport, steps: list[str]
) -> tuple[str | None, str | None, str | None]:
    """``(maildelivery_id, message_id, how)``: the VERP token first, then the returned
    message's ids. ``how`` is ``"forged"`` for a tagged address whose token fails."""
    bounce_address = config_value("BOUNCE_ADDRESS", app)
    if bounce_address is not None:
        secrets = bounce_secrets(app)
        for address in dict.fromkeys(a.lower() for a in report.addressed_to):
            check = check_address(address, str(bounce_address), secrets)
            if not check.tagged:
                continue
            if check.public_id is None:
                steps.append(f"sent to {address}: its token does not verify: forged, ignored")
                return None, None, "forged"
            steps.append(f"sent to {address}: token verified, email {check.public_id}")
            return check.public_id, None, f"token of email {check.public_id}"
        steps.append(f"sent to no tagged {bounce_address} address: no token")
    if report.returned_maildelivery_id:
        steps.append(f"returned X-MailDelivery-ID: {report.returned_maildelivery_id}")
        return (
            report.returned_maildelivery_id,
            report.returned_message_id,
            f"X-MailDelivery-ID {report.returned_maildelivery_id}",
        )
    if report.returned_message_id:
        steps.append(f"returned Message-ID: <{report.returned_message_id}>")
        return None, report.returned_message_id, f"Message-ID <{report.returned_message_id}>"
    return None, None, None


def _events(
    report: BounceReport, maildelivery_id: str | None, message_id: str | None
) -> list[NormalizedEvent]:
    occurred_at = report.occurred_at or utcnow()
    events = []
    for recipient in report.recipients:
        payload: dict[str, Any] = {
            "report": str(report.kind),
            "report_id": report.report_id,
            "subject": report.subject,
            "from": report.sender,
            "reporting_mta": report.reporting_mta,
            "recipient": recipient.address,
            "original_recipient": recipient.original_recipient,
            "action": recipient.action,
            "status": recipient.status,
            "diagnostic": recipient.diagnostic,
            "returned_message_id": report.returned_message_id,
        }
        events.append(
            NormalizedEvent(
                provider=DSN_PROVIDER,
                provider_event_id=storable_id(
                    f"{report.report_id}:{recipient.address.lower()}", EVENT_ID_WIDTH
                ),
                type=recipient.type if recipient.type in EventType else EventType.UNKNOWN,
                raw_type=f"{report.kind}:{recipient.action}",
                occurred_at=occurred_at,
                recipient=recipient.address,
                maildelivery_id=maildelivery_id,
                provider_message_id=message_id,
                reason=recipient.reason,
                smtp_code=recipient.smtp_code,
                bounce_type=str(recipient.bounce_type) if recipient.bounce_type else None,
                payload={k: v for k, v in payload.items() if v is not None},
            )
        )
    return events
