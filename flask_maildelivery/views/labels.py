"""What the stored vocabularies are called on the pages, and how their badges look.

The stored values (``bounced``, ``warning``, ...) never reach the viewer raw: each has a
translated label, and each badge carries its label as text (colour is never the only cue).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from markupsafe import Markup

from ..state import EMAIL_STATUSES, RESULTS
from .i18n import gettext, locale_name

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
    "failed": _("Failed"),
}
_KIND_LABELS = {"to": _("To"), "cc": _("Cc"), "bcc": _("Bcc")}

_T = TypeVar("_T")


def result_label(result: str) -> str:
    """The label of an email ``result``."""
    return gettext(_RESULT_LABELS[result]) if result in _RESULT_LABELS else result


def status_label(status: str) -> str:
    """The label of an email ``status`` or of a recipient ``status``."""
    return gettext(_STATUS_LABELS[status]) if status in _STATUS_LABELS else status


def kind_label(kind: str) -> str:
    """The label of a recipient kind (``to``, ``cc``, ``bcc``)."""
    return gettext(_KIND_LABELS[kind]) if kind in _KIND_LABELS else kind


def tone(value: str) -> str:
    """The badge tone of a status or result."""
    return TONES.get(value, "neutral")


def _per_locale(make: Callable[..., _T]) -> Callable[..., _T]:
    """``make``, called once per viewer locale and arguments: what it returns depends on
    nothing else (its labels are translated to the locale of the page that first asks)."""
    cached = functools.lru_cache(maxsize=512)(lambda locale, *args: make(*args))

    @functools.wraps(make)
    def in_viewer_locale(*args: Any) -> _T:
        return cached(locale_name(), *args)

    return in_viewer_locale


@_per_locale
def result_badge(result: str) -> Markup:
    """The badge of an email ``result``: its label as text, its tone as a CSS class."""
    return Markup(
        '<span class="md-badge md-badge--{tone}" data-result="{value}">'
        '<span class="md-visually-hidden">{prefix} </span>{label}</span>'
    ).format(tone=tone(result), value=result, prefix=gettext("Result:"), label=result_label(result))


@_per_locale
def status_badge(status: str) -> Markup:
    """The badge of an email or recipient ``status`` (a dash for no status)."""
    if not status:
        return Markup('<span class="md-muted" aria-label="{label}">—</span>').format(
            label=gettext("No status")
        )
    return Markup(
        '<span class="md-badge md-badge--{tone}" data-status="{value}">'
        '<span class="md-visually-hidden">{prefix} </span>{label}</span>'
    ).format(tone=tone(status), value=status, prefix=gettext("Status:"), label=status_label(status))


@_per_locale
def status_options() -> tuple[tuple[str, str], ...]:
    """``(status, label)`` of every email status the list can filter by, in the viewer's
    language."""
    return tuple((status, status_label(status)) for status in EMAIL_STATUSES if status)


@_per_locale
def result_options() -> tuple[tuple[str, str], ...]:
    """``(result, label)`` of every email result the list can filter by, in the viewer's
    language."""
    return tuple((result, result_label(result)) for result in RESULTS)
