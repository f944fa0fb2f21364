"""Translations and dates of the log pages, through Flask-Babel.

The package's catalogs (``flask_maildelivery/translations``) are a Flask-Babel
:class:`~flask_babel.Domain` of their own, so they never mix with the host's catalogs; the
host's locale selector and time zone selector decide. When the host did not set up
Flask-Babel, the pages render in English with UTC dates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal, cast

import babel.dates
import flask_babel
from babel import Locale
from flask import current_app, g

#: Where the package's compiled catalogs live (``<lang>/LC_MESSAGES/messages.mo``).
TRANSLATIONS_DIR = str(Path(__file__).resolve().parent.parent / "translations")
#: The languages the package ships catalogs for (English is the source language).
LANGUAGES = ("en", "fr")

#: The locale of the pages without Flask-Babel (and when its selector gives none).
ENGLISH = Locale("en")

_domain = flask_babel.Domain(translation_directories=[TRANSLATIONS_DIR], domain="messages")


def babel_ready() -> bool:
    """Whether the current app set up Flask-Babel."""
    return "babel" in current_app.extensions


def gettext(string: str, **variables: Any) -> str:
    """``string`` in the viewer's language, ``%(name)s`` placeholders filled."""
    if babel_ready():
        return str(_domain.gettext(string, **variables))
    return _untranslated(string, **variables)


def translator() -> Callable[..., str]:
    """:func:`gettext` with the viewer's catalog looked up once, for a template that
    translates dozens of strings in one locale (the template global ``_md``)."""
    if not babel_ready():
        return _untranslated
    translations = _domain.get_translations()

    def translate(string: str, **variables: Any) -> str:
        text = str(translations.ugettext(string))
        return text % variables if variables else text

    return translate


def _untranslated(string: str, **variables: Any) -> str:
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


def _viewer_locale_and_zone() -> tuple[Locale, Any]:
    """The viewer's locale and time zone, looked up once per request."""
    cached = g.get("_maildelivery_locale_zone")
    if cached is None:
        if babel_ready():
            cached = (flask_babel.get_locale() or ENGLISH, flask_babel.get_timezone() or UTC)
        else:
            cached = (ENGLISH, UTC)
        g._maildelivery_locale_zone = cached
    return cached  # type: ignore[no-any-return]


#: The babel format names that combine a date pattern and a time pattern.
NAMED_FORMATS = ("full", "long", "medium", "short")
NamedFormat = Literal["full", "long", "medium", "short"]
#: Time pattern fields read straight off the hour, minute or second (``a``, am/pm, too):
#: which of the three each reads.
_DIRECT_TIME_FIELDS = {"h": 0, "H": 0, "K": 0, "k": 0, "a": 0, "m": 1, "s": 2}


def _time_field_texts(name: str, locale: Locale) -> tuple[str, ...]:
    """Every text field ``name`` of a time pattern takes, by hour, minute or second."""
    char, width = name[0], len(name)
    if char in "ms":
        return tuple(f"{value:0{width}d}" for value in range(60))
    if char == "a":
        # babel's am/pm only asks whether the hour is before noon
        am, pm = (babel.dates.DateTimeFormat(time(hour), locale)[name] for hour in (0, 12))
        return tuple(am if hour < 12 else pm for hour in range(24))
    return tuple(f"{_clock_hour(char, hour):0{width}d}" for hour in range(24))


def _clock_hour(char: str, hour: int) -> int:
    """What the hour field ``char`` shows for ``hour`` (0-23), as babel counts it."""
    if char == "h":
        return hour % 12 or 12
    if char == "K":
        return hour % 12
    if char == "k":
        return hour or 24
    return hour


#: What :class:`DateTimeFormatter` reads per locale and format: the date-and-time pattern,
#: the time pattern as a ``%`` format, and each time field's name, unit and texts.
DirectPatterns = tuple[str, str, list[tuple[str, int, tuple[str, ...]]]]


@functools.lru_cache(maxsize=64)
def _direct_patterns(locale: Locale, format: str) -> DirectPatterns | None:
    """The patterns of a named ``format`` in ``locale`` when its time is made of fields read
    off the hour, minute and second only; else ``None``. Made once per locale and format."""
    named = cast(NamedFormat, format)
    time_pattern = babel.dates.get_time_format(named, locale=locale)
    names = [
        value[0] * value[1]
        for kind, value in babel.dates.tokenize_pattern(time_pattern.pattern)
        if kind == "field" and isinstance(value, tuple)
    ]
    if not all(name[0] in _DIRECT_TIME_FIELDS for name in names):
        return None
    combined = str(babel.dates.get_datetime_format(named, locale=locale)).replace("'", "")
    fields = [
        (name, _DIRECT_TIME_FIELDS[name[0]], _time_field_texts(name, locale)) for name in names
    ]
    return combined, str(time_pattern.format), fields


class DateTimeFormatter:
    """Formats datetimes exactly as ``babel.dates.format_datetime(value, format,
    tzinfo=zone, locale=locale)`` does, with the locale's patterns looked up once.

    A list page shows dozens of dates in one locale and zone; babel parses and walks the
    pattern again for every value. This formatter keeps the parsed patterns, formats each
    distinct day once, and fills the time of day from tables of its hour, minute and
    second fields made once. A pattern with a field it does not read that way (a time zone
    name, a day period, a custom pattern) goes through babel for every value, so the
    output never differs.
    """

    #: How many formatted days a formatter keeps.
    DAYS_KEPT = 4096

    def __init__(self, locale: Locale, zone: Any, format: str = "medium") -> None:
        self.locale = locale
        self.zone = zone
        self.format = format
        self._normalize = getattr(zone, "normalize", None)  # pytz
        #: Per day shown: the pattern with the date filled in, the time left as ``{0}``.
        self._days: dict[date, str | None] = {}
        patterns = _direct_patterns(locale, format) if format in NAMED_FORMATS else None
        self._direct = patterns is not None
        if patterns is not None:
            self._combined, self._time_format, self._fields = patterns

    def __call__(self, value: datetime | None) -> str:
        """``value`` formatted; empty for ``None``."""
        if value is None:
            return ""
        if not self._direct:
            return self._babel(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(self.zone)
        if self._normalize is not None:
            local = self._normalize(local)
        day = local.date()
        try:
            day_pattern = self._days[day]
        except KeyError:
            if len(self._days) >= self.DAYS_KEPT:
                self._days.clear()
            day_text = str(babel.dates.format_date(day, self.format, locale=self.locale))
            # babel fills the time in first; a date text holding "{0}" would differ
            day_pattern = self._days[day] = (
                None if "{0}" in day_text else self._combined.replace("{1}", day_text)
            )
        if day_pattern is None:
            return self._babel(value)
        units = (local.hour, local.minute, local.second)
        time_text = self._time_format % {
            name: texts[units[unit]] for name, unit, texts in self._fields
        }
        return day_pattern.replace("{0}", time_text)

    def _babel(self, value: datetime) -> str:
        return str(
            babel.dates.format_datetime(value, self.format, tzinfo=self.zone, locale=self.locale)
        )


def datetime_formatter(format: str = "medium") -> DateTimeFormatter:
    """The viewer's formatter for ``format``."""
    locale, zone = _viewer_locale_and_zone()
    return _formatter(locale, zone, format)


@functools.lru_cache(maxsize=64)
def _formatter(locale: Locale, zone: Any, format: str) -> DateTimeFormatter:
    # one per locale, zone and format, kept across requests with the days it formatted
    return DateTimeFormatter(locale, zone, format)


def format_datetime(value: datetime | None, format: str = "medium") -> str:
    """``value`` in the viewer's locale and time zone (English and UTC without Flask-Babel;
    empty for ``None``)."""
    if value is None:
        return ""
    return datetime_formatter(format)(value)


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
