"""The log pages' date formatter gives, for every value, exactly what babel gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import babel.dates
import pytest
import pytz
from babel import Locale

from flask_maildelivery.views.i18n import DateTimeFormatter

ZONES: list[tzinfo] = [
    UTC,
    pytz.UTC,
    pytz.timezone("Europe/Paris"),
    ZoneInfo("America/New_York"),
    pytz.timezone("Asia/Kolkata"),
]


def _moments() -> list[datetime]:
    rng = random.Random(4)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=rng.randint(0, 366 * 86400)) for _ in range(40)]
    # the hours around midnight and noon, and both daylight saving changes in Paris and
    # New York (2026-03-08, 2026-03-29, 2026-10-25, 2026-11-01)
    for base in ("2026-03-08T05:00", "2026-03-29T00:00", "2026-10-25T00:00", "2026-11-01T04:00"):
        at = datetime.fromisoformat(base).replace(tzinfo=UTC)
        moments += [at + timedelta(minutes=17 * n) for n in range(12)]
    moments += [datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=UTC), datetime(2026, 7, 1, 12)]
    # a naive value is taken as UTC, as babel does
    return [*moments, datetime(2026, 2, 3, 4, 5, 6)]


@pytest.mark.parametrize("locale", ["en", "fr", "en_US", "de", "ja", "ar", "fi", "zh_Hant"])
@pytest.mark.parametrize("format", ["short", "medium", "long", "full", "yyyy-MM-dd HH:mm"])
def test_formatter_matches_babel(locale: str, format: str) -> None:
    parsed = Locale.parse(locale)
    for zone in ZONES:
        formatter = DateTimeFormatter(parsed, zone, format)
        for moment in _moments():
            expected = babel.dates.format_datetime(moment, format, tzinfo=zone, locale=parsed)
            assert formatter(moment) == expected, (locale, format, zone, moment)


def test_formatter_reads_the_time_off_tables_only_where_babel_would_agree() -> None:
    # English and French medium times are hours, minutes, seconds and am/pm: read directly
    assert DateTimeFormatter(Locale.parse("en"), UTC)._direct
    assert DateTimeFormatter(Locale.parse("fr"), UTC)._direct
    # a day period ("B": morning, afternoon...) and a time zone name go through babel
    assert not DateTimeFormatter(Locale.parse("zh_Hant"), UTC)._direct
    assert not DateTimeFormatter(Locale.parse("en"), UTC, "full")._direct


def test_formatter_leaves_none_empty() -> None:
    assert DateTimeFormatter(Locale.parse("en"), UTC)(None) == ""
