"""Translations and dates of the log pages, through Flask-Babel.

The package's catalogs (``flask_maildelivery/translations``) are a Flask-Babel
:class:`~flask_babel.Domain` of their own, so they never mix with the host's catalogs; the
host's locale selector and time zone selector decide. When the host did not set up
Flask-Babel, the pages render in English with UTC dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

import babel.dates
import babel.numbers
import flask_babel
from babel import Locale
from flask import current_app

#: Where the package's compiled catalogs live (``<lang>/LC_MESSAGES/messages.mo``).
TRANSLATIONS_DIR = str(Path(__file__).resolve().parent.parent / "translations")
#: The languages the package ships catalogs for (English is the source language).
LANGUAGES = ("en", "fr")

#: The locale of the pages without Flask-Babel.
ENGLISH = Locale("en")

_domain = flask_babel.Domain(translation_directories=[TRANSLATIONS_DIR], domain="messages")


def babel_ready() -> bool:
    """Whether the current app set up Flask-Babel."""
    return "babel" in current_app.extensions


def gettext(string: str, **variables: Any) -> str:
    """``string`` in the viewer's language, ``%(name)s`` placeholders filled."""
    if babel_ready():
        return str(_domain.gettext(string, **variables))
    return string % variables if variables else string


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """The singular or plural form for ``num`` in the viewer's language."""
    if babel_ready():
        return str(_domain.ngettext(singular, plural, num, **variables))
    variables.setdefault("num", num)
    return (singular if num == 1 else plural) % variables


def locale_name() -> str:
    """The viewer's locale (``"en"`` without Flask-Babel), for ``<html lang>``."""
    if babel_ready():
        locale = flask_babel.get_locale()
        if locale is not None:
            return str(locale).replace("_", "-")
    return "en"


def format_datetime(value: datetime | None, format: str = "medium") -> str:
    """``value`` in the viewer's locale and time zone (Flask-Babel's
    :func:`~flask_babel.format_datetime`); in English and UTC without Flask-Babel; empty for
    ``None``."""
    if value is None:
        return ""
    if babel_ready():
        return str(flask_babel.format_datetime(value, format))
    return babel.dates.format_datetime(value, format, tzinfo=UTC, locale=ENGLISH)


def format_date(value: date, format: str = "medium") -> str:
    """A day in the viewer's locale (Flask-Babel's :func:`~flask_babel.format_date`); in
    English without Flask-Babel."""
    if babel_ready():
        return str(flask_babel.format_date(value, format))
    return babel.dates.format_date(value, format, locale=ENGLISH)


def viewer_timezone() -> tzinfo:
    """The viewer's time zone (Flask-Babel's :func:`~flask_babel.get_timezone`); UTC without
    Flask-Babel."""
    if babel_ready():
        zone: tzinfo | None = flask_babel.get_timezone()
        if zone is not None:
            return zone
    return UTC


def format_size(size: int | None) -> str:
    """A byte count for people (``12.3 kB``), in the viewer's locale."""
    if size is None:
        return ""
    number: float = size
    for unit in ("B", "kB", "MB", "GB"):
        if number < 1000 or unit == "GB":
            break
        number /= 1000
    if unit == "B":
        return f"{size} B"
    formatted = (
        flask_babel.format_decimal(round(number, 1)) if babel_ready() else f"{round(number, 1)}"
    )
    return f"{formatted} {unit}"


def format_number(value: int) -> str:
    """A count in the viewer's locale (``1,234``; ``1 234`` in French)."""
    if babel_ready():
        return str(flask_babel.format_decimal(value))
    return babel.numbers.format_decimal(value, locale=ENGLISH)


def format_percent(value: float | None) -> str:
    """A rate in the viewer's locale, to two decimals (``0.12%``); ``—`` for ``None``."""
    if value is None:
        return "—"
    if babel_ready():
        return str(flask_babel.format_percent(value, "#,##0.00%"))
    return babel.numbers.format_percent(value, "#,##0.00%", locale=ENGLISH)
