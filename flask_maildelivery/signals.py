"""Signals sent by flask-maildelivery (a private blinker :class:`~blinker.Namespace`).

Every signal is sent with the real application object as sender. Outcome signals are sent
after the database commit, once per real change (never for a repeated event). A receiver
that raises is logged and does not undo or lose anything.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

_signals = Namespace()
logger = logging.getLogger("flask_maildelivery")

before_send = _signals.signal(
    "before-send",
    doc="""Sent before a message is recorded and handed to the transport.

    :param sender: the app.
    :param message: the :class:`email.message.Message` about to be sent (built with the
        ``email.mime`` classes); receivers may add or replace headers. Raising :class:`flask_maildelivery.SendCancelled` stops the send; it is
        recorded with result ``failed`` and the reason.
    """,
)

email_sent = _signals.signal(
    "email-sent",
    doc="""Sent after the transport accepted an email and the outcome was committed.

    :param sender: the app.
    :param email: the :class:`~flask_maildelivery.models.Email`.
    """,
)

email_result_changed = _signals.signal(
    "email-result-changed",
    doc="""Sent after an email's ``result`` changed and the change was committed.

    :param sender: the app.
    :param email: the :class:`~flask_maildelivery.models.Email`.
    :param old: the previous result.
    :param new: the new result.
    """,
)

recipient_status_changed = _signals.signal(
    "recipient-status-changed",
    doc="""Sent after a recipient's ``status`` changed and the change was committed.

    :param sender: the app.
    :param recipient: the :class:`~flask_maildelivery.models.Recipient`.
    :param email: its :class:`~flask_maildelivery.models.Email`.
    :param old: the previous status.
    :param new: the new status.
    :param event: the :class:`~flask_maildelivery.models.Event` that caused it, or ``None``
        for a change made by the send itself.
    """,
)

event_received = _signals.signal(
    "event-received",
    doc="""Sent after a new delivery event was stored (never for a repeated event).

    :param sender: the app.
    :param event: the :class:`~flask_maildelivery.models.Event`.
    """,
)

email_reviewed = _signals.signal(
    "email-reviewed",
    doc="""Sent after someone marked an email reviewed, or took the review back, and the
    change was committed (never for a review that changed nothing).

    :param sender: the app.
    :param email: the :class:`~flask_maildelivery.models.Email`.
    :param user: the acting user (as the host's ``user_loader`` gives it), or ``None``.
    :param reviewed: ``True`` when it was marked reviewed, ``False`` when the review was
        taken back.

    .. versionadded:: 0.2
    """,
)

email_resolved = _signals.signal(
    "email-resolved",
    doc="""Sent once, after an email was resolved and the change was committed: every
    recipient that failed on it now has a delivered copy (a resend).

    :param sender: the app.
    :param email: the :class:`~flask_maildelivery.models.Email` that was resolved.
    :param copy: the copy (an :class:`~flask_maildelivery.models.Email` whose
        ``resent_from_id`` is ``email.id``) whose delivery resolved it.

    .. versionadded:: 0.2
    """,
)


address_suppressed = _signals.signal(
    "address-suppressed",
    doc="""Sent once, after an address was suppressed and the change was committed (a hard
    bounce, a complaint, or ``MAILDELIVERY_SOFT_BOUNCE_LIMIT`` soft bounces in a row).

    :param sender: the app.
    :param address: the address (as last sent to).
    :param reason: the failure that suppressed it.
    :param email: the :class:`~flask_maildelivery.models.Email` that failed.
    :param tenant_id: the tenant of the address, or ``None``.

    .. versionadded:: 0.2
    """,
)


def send_safely(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` to each receiver of ``sender``; a receiver that raises is logged with
    its traceback (logger ``flask_maildelivery``, ``ERROR``) and the other receivers still
    run.

    Unlike blinker's own ``send()`` (which Flask-Login and Flask-Mail use, letting a
    receiver's exception reach their caller), an outcome signal is sent after a commit,
    often in a provider's webhook request: a receiver's bug must not turn stored events
    into an error answer the provider would retry forever.
    """
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("receiver %r of signal %r raised", receiver, signal.name)
