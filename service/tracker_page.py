"""GET /tracker: the Transitions Meeting tracker as a page; GET /tracker/print: the printable Step up / Step down Transitions Meeting tracker (A4 landscape).

Registered by :func:`init_app` (called from ``create_app``; calling it twice does nothing). A page for people signed
in to the pages, in the council they act for; programs read ``GET /api/v1/tracker`` with their token (a token never
travels in a URL, where logs and browser histories keep it).
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, render_template
from flask_login import current_user, login_required

from service import tracker as tracker_service
from service.engine import clock
from service.engine.clock import LONDON
from service.models import db

bp = Blueprint("tracker_page", __name__, template_folder="templates")


@bp.route("/tracker")
@login_required
def tracker():
    """The tracker as a page of the service (in the navigation for AfC's roles), with a link to print it."""
    if not tracker_service.may_read(current_user.roles):
        abort(403, description="The tracker is for Achieving for Children's PEH, SPA and CSC roles.")
    rows = tracker_service.rows(db.session)
    return render_template("tracker.html", rows=rows,
                           step_ups=sum(1 for r in rows if r.process == "afc_step_up"),
                           step_downs=sum(1 for r in rows if r.process == "afc_step_down"))


@bp.route("/tracker/print")
@login_required
def print_tracker():
    if not tracker_service.may_read(current_user.roles):
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
