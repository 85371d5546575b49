"""GET /tracker/print: the printable Step up / Step down Transitions Meeting tracker (A4 landscape).

Registered by :func:`init_app` (called from ``create_app``; calling it twice does nothing). Who is reading: the user
signed in to the pages, else an API token given as ``?token=`` or as ``Authorization: Bearer``.
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, render_template, request
from flask_login import current_user

from service import tracker as tracker_service
from service.auth import user_for_token
from service.engine import clock
from service.engine.clock import LONDON
from service.models import db

bp = Blueprint("tracker_page", __name__, template_folder="templates")


def _reader():
    if current_user.is_authenticated:  # signed in to the pages
        return current_user
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    token = token or (request.args.get("token") or "").strip()
    return user_for_token(db.session, token)


@bp.route("/tracker/print")
def print_tracker():
    user = _reader()
    if user is None:
        abort(401, description="Sign in, or add ?token=<your API token>, to see the tracker.")
    if not tracker_service.may_read(user.roles):
        abort(403, description="The tracker is for Achieving for Children's PEH, SPA and CSC roles.")
    rows = tracker_service.rows(db.session)
    now = clock.now().astimezone(LONDON)
    response = render_template("tracker_print.html", rows=rows, printed_at=now,
                               step_ups=sum(1 for r in rows if r.process == "afc_step_up"),
                               step_downs=sum(1 for r in rows if r.process == "afc_step_down"))
    return response, 200, {"Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"}


def init_app(app: Flask) -> None:
    """Add the printable tracker page to ``app`` (idempotent)."""
    if bp.name not in app.blueprints:
        app.register_blueprint(bp)
