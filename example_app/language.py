"""The ERP's language: English or French, chosen with the switch in the header (kept in
the user's session), else the browser's preference. Flask-Babel asks :func:`select_locale`;
the delivery log pages, which translate through Flask-Babel, follow it."""

from __future__ import annotations

from flask import request, session

#: The languages of the switch: code and name in that language.
LANGUAGES = {"en": "English", "fr": "Français"}
#: Where the chosen language is kept in the session.
LANGUAGE_KEY = "language"


def select_locale() -> str:
    """Flask-Babel's locale selector: the language chosen with the switch, else the
    browser's preferred one of :data:`LANGUAGES`, else English."""
    chosen = session.get(LANGUAGE_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"
