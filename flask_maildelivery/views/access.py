"""Who may see the log pages and the API, and who may act on them.

Shared by the pages and the API blueprints:

* nobody signed in: the host's login flow (Flask-Login's unauthorized handler) when Flask-Login
  is set up, else ``401``;
* signed in without permission (the host's ``permission_loader``; default ``user.is_admin``):
  ``403``;
* another tenant's email: ``404``, like an email that does not exist (the reads are scoped
  to :func:`~flask_maildelivery.views.reading.viewer_tenant`);
* acting (resend, review) without the host's ``action_permission_loader``'s consent: ``403``.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app
from werkzeug.wrappers import Response as BaseResponse

from ..context import get_state


def check_viewer() -> BaseResponse | None:
    """Refuse the request unless the acting user may see the log.

    :returns: the host's login redirect for an anonymous user when Flask-Login is set up,
        else ``None`` when the user may proceed.
    :raises werkzeug.exceptions.HTTPException: ``401`` (anonymous, no Flask-Login) or ``403``.
    """
    callbacks = get_state().callbacks
    user = callbacks.current_user()
    if user is None or not getattr(user, "is_authenticated", True):
        login_manager: Any = getattr(current_app, "login_manager", None)
        if login_manager is not None:
            response: BaseResponse = login_manager.unauthorized()
            return response
        abort(401)
    if not callbacks.may_view_log(user):
        abort(403)
    return None


def check_actor() -> None:
    """Refuse (``403``) unless the acting user may act on the log (resend, review): the
    host's ``action_permission_loader``, by default the same answer as for seeing it.
    Runs after :func:`check_viewer`, so the user is signed in."""
    callbacks = get_state().callbacks
    if not callbacks.may_act(callbacks.current_user()):
        abort(403)
