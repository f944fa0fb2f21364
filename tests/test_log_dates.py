"""The log pages' dates are Flask-Babel's, in the viewer's locale and time zone; English and
UTC, through Babel, without Flask-Babel."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import babel.dates
import pytest
from flask import Flask
from flask_babel import Babel

from flask_maildelivery.views.i18n import format_datetime

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]


def _moments() -> list[datetime]:
    rng = random.Random(4)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(seconds=rng.randint(0, 366 * 86400)) for _ in range(10)]
    # both daylight saving changes in Paris (2026-03-29, 2026-10-25)
    for base in ("2026-03-29T00:00", "2026-10-25T00:00"):
        at = datetime.fromisoformat(base).replace(tzinfo=UTC)
        moments += [at + timedelta(minutes=37 * n) for n in range(5)]
    return moments


@pytest.mark.parametrize("locale", ["en", "fr", "de", "ja", "zh_Hant"])
@pytest.mark.parametrize("format", ["short", "medium", "full", "yyyy-MM-dd HH:mm"])
def test_dates_follow_the_viewers_locale_and_time_zone(locale: str, format: str) -> None:
    app = Flask(__name__)
    viewer = {"zone": "UTC"}
    Babel(app, locale_selector=lambda: locale, timezone_selector=lambda: viewer["zone"])
    for zone in ZONES:
        viewer["zone"] = zone
        with app.test_request_context():
            for moment in _moments():
                expected = babel.dates.format_datetime(
                    moment, format, tzinfo=babel.dates.get_timezone(zone), locale=locale
                )
                assert format_datetime(moment, format) == expected, (locale, zone, moment)


def test_dates_are_english_and_utc_without_flask_babel() -> None:
    app = Flask(__name__)
    with app.test_request_context():
        for moment in _moments():
            assert format_datetime(moment) == babel.dates.format_datetime(
                moment, "medium", tzinfo=UTC, locale="en"
            )


def test_no_date_is_empty() -> None:
    app = Flask(__name__)
    with app.test_request_context():
        assert format_datetime(None) == ""
