"""What the stored vocabularies are called on the pages, and the tone of their badges.

The stored values (``bounced``, ``warning``, ...) never reach the viewer raw: each has a
label, translated when shown. The badges themselves are the macros of
``maildelivery/_macros.html``: each carries its label as text (colour is never the only
cue).
"""

from __future__ import annotations

from ..state import EMAIL_STATUSES, RESULTS
from .i18n import gettext

#: The tone of a badge: ``bad``, ``warn``, ``good`` or ``neutral`` (a CSS modifier).
TONES: dict[str, str] = {
    "failed": "bad",
    "error": "bad",
    "bounced": "bad",
    "dropped": "bad",
    "suppressed": "bad",
    "complained": "bad",
    "warning": "warn",
    "deferred": "warn",
    "unsubscribed": "warn",
    "delivered": "good",
    "opened": "good",
    "clicked": "good",
    "queued": "neutral",
    "processed": "neutral",
    "": "neutral",
}


def _(message: str) -> str:
    """Mark ``message`` for extraction; it is translated when shown."""
    return message


_RESULT_LABELS = {
    "failed": _("Failed"),
    "queued": _("Queued"),
    "processed": _("Processing"),
    "delivered": _("Delivered"),
    "warning": _("Warning"),
    "error": _("Error"),
}
_STATUS_LABELS = {
    "": _("None"),
    "queued": _("Queued"),
    "processed": _("Processed"),
    "deferred": _("Deferred"),
    "delivered": _("Delivered"),
    "opened": _("Opened"),
    "clicked": _("Clicked"),
    "unsubscribed": _("Unsubscribed"),
    "complained": _("Complained"),
    "bounced": _("Bounced"),
    "dropped": _("Dropped"),
    "suppressed": _("Suppressed"),
    "failed": _("Failed"),
}
_KIND_LABELS = {"to": _("To"), "cc": _("Cc"), "bcc": _("Bcc")}


def result_label(result: str) -> str:
    """The label of an email ``result``, in the viewer's language."""
    return gettext(_RESULT_LABELS[result]) if result in _RESULT_LABELS else result


def status_label(status: str) -> str:
    """The label of an email ``status`` or of a recipient ``status``, in the viewer's
    language."""
    return gettext(_STATUS_LABELS[status]) if status in _STATUS_LABELS else status


def kind_label(kind: str) -> str:
    """The label of a recipient kind (``to``, ``cc``, ``bcc``), in the viewer's language."""
    return gettext(_KIND_LABELS[kind]) if kind in _KIND_LABELS else kind


def tone(value: str) -> str:
    """The badge tone of a status or result."""
    return TONES.get(value, "neutral")


def status_options() -> list[tuple[str, str]]:
    """``(status, label)`` of every email status the list can filter by, in the viewer's
    language."""
    return [(status, status_label(status)) for status in EMAIL_STATUSES if status]


def result_options() -> list[tuple[str, str]]:
    """``(result, label)`` of every email result the list can filter by, in the viewer's
    language."""
    return [(result, result_label(result)) for result in RESULTS]


_SERIES_LABELS = {
    "delivered": _("Delivered"),
    "pending": _("Processing or queued"),
    "warning": _("Warning"),
    "error": _("Error"),
    "failed": _("Failed"),
}
#: The tone of each series of the overview's chart (its bars' CSS modifier).
SERIES_TONES = {
    "delivered": "good",
    "pending": "neutral",
    "warning": "warn",
    "error": "bad",
    "failed": "failed",
}
_COUNT_LABELS = {
    "attention": _("Emails needing attention"),
    "overdue": _("Overdue emails"),
    "failed_inbox": _("Failed webhook requests"),
    "suppressed": _("Suppressed addresses"),
}
_LEVEL_LABELS = {"ok": _("Within limits"), "warn": _("Watch"), "alarm": _("Too high")}
#: The badge tone of a rate level.
LEVEL_TONES = {"ok": "good", "warn": "warn", "alarm": "bad"}


def series_label(name: str) -> str:
    """The label of a series of the overview's chart, in the viewer's language."""
    return gettext(_SERIES_LABELS[name])


def count_label(key: str) -> str:
    """The label of a count of the overview, in the viewer's language."""
    return gettext(_COUNT_LABELS[key]) if key in _COUNT_LABELS else key


def level_label(level: str) -> str:
    """The label of a rate level (``ok``, ``warn``, ``alarm``), in the viewer's language."""
    return gettext(_LEVEL_LABELS[level])
