"""More pages on the same blueprint as ``views``: raising immediate risk, notifications, the accessibility
statement and the privacy notice, GOV.UK-style 404 and 500 pages for any address, and what the case and
task pages show about a case (template globals calling ``service.case_view``).

As in ``views``: every page reads and acts through the service layer, and every rule of who may do what is in
``service.policy``.
"""
from __future__ import annotations

from typing import Any

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import InternalServerError
from werkzeug.exceptions import NotFound as HTTPNotFound

from service import case_view, immediate_risk
from service import cases as case_service
from service import notifications as notification_service
from service import tracker as tracker_service
from service.auth import display_names
from service.errors import InvalidData
from service.models import Case, User, db
from service.web import views
from service.web.views import bp, error_page

#: Pages anyone may read, signed in or not, whichever council they act for.
PUBLIC = {"web.accessibility", "web.privacy"}
views._WITHOUT_COUNCIL.update(PUBLIC)


# -- what the case and task pages show about a case ---------------------------------------------------

@bp.app_template_global()
def case_about(case: Case) -> dict[str, Any]:
    """The child, why the case is here, its linked cases and every answer so far, for the page."""
    actor = current_user.actor
    events = case_service.history(db.session, case)
    links = case_view.linked_cases(db.session, case, actor)
    return {"child": case_view.child_of(case), "origin": case_view.origin(db.session, case, links),
            "links": links, "groups": case_view.answer_groups(db.session, case, events),
            "may_raise": immediate_risk.may_raise(db.session, case, actor)}


@bp.app_template_global()
def case_history(case: Case) -> list[case_view.HistoryLine]:
    return case_view.history_lines(db.session, case)


@bp.app_template_global()
def case_data_rows(case: Case) -> list[case_view.Answer]:
    """What the case holds now, with the forms' labels and the options' labels."""
    process = case_service.process_of(db.session, case)
    return case_view.answers_from(case.data or {}, None, case_view.field_index(process))


@bp.app_template_global()
def unread_notifications() -> int:
    """The header's count (called only when the header is drawn for a signed-in user of a council)."""
    if not (current_user.is_authenticated and current_user.council):
        return 0
    return notification_service.unread_count(db.session, current_user.id)


@bp.app_template_global()
def may_read_tracker() -> bool:
    return bool(current_user.is_authenticated and current_user.council
                and tracker_service.may_read(current_user.roles))


@bp.app_template_global()
def person_name(name: str | None) -> str:
    if not name:
        return ""
    if name == current_user.name:
        return "You"
    known = g.setdefault("person_names", {})
    if name not in known:
        known.update(display_names(db.session, {name}))
    return known.get(name, name)


# -- immediate risk -------------------------------------------------------------------------------------

def _risk_form(case: Case, text: str = "", error: str | None = None, status: int = 200):
    return render_template("immediate_risk.html", case=case, text=text, error=error,
                           error_list=[{"text": error, "href": "#what_happened"}] if error else []), status


@bp.route("/cases/<int:case_id>/immediate-risk", methods=["GET", "POST"])
@login_required
def immediate_risk_start(case_id: int):
    """Ask what has happened; a POST checks the answer and shows it back for confirmation."""
    actor = current_user.actor
    case = immediate_risk.check(db.session, case_id, actor)
    if request.method == "GET":
        return _risk_form(case)
    text = request.form.get("what_happened", "")
    if request.form.get("edit"):
        return _risk_form(case, text)
    try:
        account = immediate_risk.what_happened(text)
    except InvalidData as invalid:
        return _risk_form(case, text, invalid.errors["what_happened"], 422)
    return render_template("immediate_risk_check.html", case=case, text=account)


@bp.route("/cases/<int:case_id>/immediate-risk/send", methods=["POST"])
@login_required
def immediate_risk_send(case_id: int):
    actor = current_user.actor
    text = request.form.get("what_happened", "")
    try:
        immediate_risk.raise_immediate_risk(db.session, case_id, text, actor)
    except InvalidData as invalid:
        db.session.rollback()
        case = immediate_risk.check(db.session, case_id, actor)
        return _risk_form(case, text, invalid.errors.get("what_happened", invalid.message), 422)
    case_service.commit(db.session)
    return redirect(url_for("web.immediate_risk_sent", case_id=case_id))


@bp.route("/cases/<int:case_id>/immediate-risk/sent")
@login_required
def immediate_risk_sent(case_id: int):
    """Who has the urgent referral now, and by when."""
    case = case_service.get_case(db.session, case_id, current_user.actor, purpose="case_page")
    case_service.commit(db.session)
    event, tasks = immediate_risk.last_raised(db.session, case)
    if event is None:
        return redirect(url_for("web.case", case_id=case_id))
    holders = {t.id: sorted(u.display_name or u.name for u in case_service.assignable_users(db.session, t))
               for t in tasks}
    return render_template("immediate_risk_sent.html", case=case, event=event, tasks=tasks, holders=holders,
                           raised_by=display_names(db.session, {event.actor}).get(event.actor, event.actor))


# -- notifications ------------------------------------------------------------------------------------

@bp.route("/notifications")
@login_required
def notifications():
    user = db.session.get(User, current_user.id)
    notes = notification_service.for_user(db.session, user)
    rows = []
    for note in notes:
        task = notification_service.open_task_of(db.session, note)
        case = db.session.get(Case, note.case_id) if note.case_id else None
        rows.append({"note": note, "case": case if case is not None and case.status != case_service.ERASED else None,
                     "task": task if task is not None and case_service.may_work_on(task, current_user.actor) else None})
    return render_template("notifications.html", rows=rows, unread=sum(1 for n in notes if n.read_at is None))


@bp.route("/notifications/<int:notification_id>/read", methods=["POST"])
@login_required
def notification_read(notification_id: int):
    note = notification_service.mark_read(db.session, notification_id, current_user.actor)
    subject = note.subject
    case_service.commit(db.session)
    flash(f"Marked as read: {subject}", "success")
    return redirect(url_for("web.notifications"))


@bp.route("/notifications/read", methods=["POST"])
@login_required
def notifications_read_all():
    count = notification_service.mark_all_read(db.session, current_user.actor)
    case_service.commit(db.session)
    flash(f"{count} notification{'' if count == 1 else 's'} marked as read." if count else
          "There were no unread notifications.", "success")
    return redirect(url_for("web.notifications"))


# -- statements --------------------------------------------------------------------------------------

@bp.route("/accessibility")
def accessibility():
    return render_template("accessibility.html")


@bp.route("/privacy")
def privacy():
    return render_template("privacy.html")


# -- errors on any address -----------------------------------------------------------------------------

@bp.app_errorhandler(404)
def not_found_anywhere(error: HTTPNotFound):
    """An address nothing answers: the GOV.UK page (the API answers in JSON, as it always does)."""
    if request.path.startswith("/api/"):
        return jsonify({"message": error.description or "not found"}), 404
    return error_page(404, "If you typed the web address, check it is correct. If you pasted it, check you "
                           "copied the entire address.")


@bp.app_errorhandler(InternalServerError)
def server_error(error: InternalServerError):
    db.session.rollback()
    if request.path.startswith("/api/"):
        return jsonify({"message": "something went wrong on our side; nothing was changed"}), 500
    return error_page(500, "Something went wrong on our side, and nothing you sent was saved. Try again later; "
                           "if it keeps happening, tell your service desk. If a child is at immediate risk, "
                           "phone your front door team now.")
