"""What the stored vocabularies are called on the pages, and how their badges look.

The stored values (``bounced``, ``warning``, ...) never reach the viewer raw: each has a
translated label, and each badge carries its label as text (colour is never the only cue).
"""

from __future__ import annotations

from .i18n import gettext

#: The tone of a badge: ``bad``, ``warn``, ``good`` or ``neutral`` (a CSS modifier).
TONES: dict[str, str] = {
    "failed": "bad",
    "error": "bad",
    "bounced": "bad",
    "dropped": "bad",
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


def result_label(result: str) -> str:
    """The label of an email ``result``."""
    labels = {
        "failed": gettext("Failed"),
        "queued": gettext("Queued"),
        "processed": gettext("Processing"),
        "delivered": gettext("Delivered"),
        "warning": gettext("Warning"),
        "error": gettext("Error"),
    }
    return labels.get(result, result)


def status_label(status: str) -> str:
    """The label of an email ``status`` or of a recipient ``status``."""
    labels = {
        "": gettext("None"),
        "queued": gettext("Queued"),
        "processed": gettext("Processed"),
        "deferred": gettext("Deferred"),
        "delivered": gettext("Delivered"),
        "opened": gettext("Opened"),
        "clicked": gettext("Clicked"),
        "unsubscribed": gettext("Unsubscribed"),
        "complained": gettext("Complained"),
        "bounced": gettext("Bounced"),
        "dropped": gettext("Dropped"),
        "failed": gettext("Failed"),
    }
    return labels.get(status, status)


def kind_label(kind: str) -> str:
    """The label of a recipient kind (``to``, ``cc``, ``bcc``)."""
    labels = {"to": gettext("To"), "cc": gettext("Cc"), "bcc": gettext("Bcc")}
    return labels.get(kind, kind)


def tone(value: str) -> str:
    """The badge tone of a status or result."""
    return TONES.get(value, "neutral")
