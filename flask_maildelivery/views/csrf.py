"""The cross-site request check of the pages' forms (resend, review) and of the API's
form posts.

When the host set up Flask-WTF's ``CSRFProtect``, its token and its check are used; otherwise
a token of the package's own, kept in the session (the app needs a ``SECRET_KEY``), compared
in constant time. The token is read from the form field ``csrf_token`` or the
``X-CSRFToken`` header; the API also accepts a JSON body without it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask, abort, current_app, request, session

from . import i18n

#: Session key of the forms' own CSRF token (used when Flask-WTF's CSRFProtect is
#: not set up on the app).
CSRF_SESSION_KEY = "_maildelivery_csrf"
CSRF_FIELD = "csrf_token"
#: The header an API client may send the token in instead.
CSRF_HEADER = "X-CSRFToken"


def _csrf_protect(app: Flask) -> Any:
    """The app's Flask-WTF ``CSRFProtect``, or ``None``."""
    return app.extensions.get("csrf")


def csrf_token() -> str:
    """The token the forms carry: Flask-WTF's when the host set up ``CSRFProtect``,
    else the package's own, kept in the session."""
    if _csrf_protect(current_app) is not None:
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def csrf_available() -> bool:
    """Whether a form can carry a token: both kinds live in the session, which Flask only
    keeps when the app has a ``SECRET_KEY``."""
    return not current_app.session_interface.is_null_session(session)


def check_csrf(*, json_allowed: bool = False) -> None:
    """Refuse (``400``) a ``POST`` without a valid token.

    :param json_allowed: accept a JSON body without the package's own token (an API call):
        a browser sends no cross-site JSON without the app's CORS consent. Flask-WTF's
        ``CSRFProtect``, when set up, decides as it does for every request.
    """
    protect = _csrf_protect(current_app)
    if protect is not None:
        # CSRFProtect checked the request already unless the host turned the default check
        # off; protect() runs the same check explicitly and answers 400 when it fails
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            protect.protect()
        return
    if json_allowed and request.is_json:
        return
    expected = session.get(CSRF_SESSION_KEY)
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        abort(400, description=i18n.gettext("The form has expired. Reload the page and try again."))
