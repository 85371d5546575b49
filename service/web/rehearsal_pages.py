"""The rehearsal pages (``/analyst/rehearsals/...``): start a rehearsal of a version with its start form, act
as any role of the pathway, complete tasks through the task pages' own form rendering and checks
(``service.web.formview``, ``_form.html``), move the sandbox clock, send a message or signal, see tasks with
their due dates by the sandbox clock, timers, the notifications the service would have sent and the path on
the diagram, and record the rehearsal as a scenario (download it, or add it to the pathway as a draft).

Everything through ``service.rehearsals``, whose rules are ``service.policy``'s (``may_rehearse``,
``require_deployer``). Routes on the pages' blueprint (``views.bp``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from service import policy, rehearsals
from service.engine import clock
from service.engine.bundle import DeploymentInvalid
from service.errors import InvalidData
from service.models import db
from service.sandbox import SandboxError
from service.web import formview
from service.web.filters import london_datetime
from service.web.views import _element_names, bp
from service.wording import role_label

#: What the service layer and the sandbox refuse with a reason the analyst can act on (422): shown on the page.
REFUSED = (InvalidData, SandboxError)
CLOCK_LABELS = {"+1 day": "Move on 1 day", "+1 week": "Move on 1 week", "+4 weeks": "Move on 4 weeks"}


def _actor():
    return current_user.actor


def _errors(refused, key: str = "") -> dict[str, str]:
    """A refusal's errors by field, or its message under ``key`` when it names no field."""
    return dict(getattr(refused, "errors", None) or {}) or {key: refused.message}


def _first(refused) -> str:
    return next(iter((getattr(refused, "errors", None) or {}).values()), refused.message)


def clock_text(moment: datetime) -> str:
    """'Monday 4 January 2027 at 9am': the sandbox clock with its weekday (working days matter here)."""
    return f"{clock.as_utc(moment).astimezone(clock.LONDON):%A} {london_datetime(moment)}"


def _date_from(form, prefix: str) -> tuple[datetime | None, str | None]:
    """A GOV.UK date input (``prefix-day``, ``-month``, ``-year``) as 09:00 London that day; an error in words."""
    parts = [form.get(f"{prefix}-{p}", "").strip() for p in ("day", "month", "year")]
    if not any(parts):
        return None, None
    try:
        day, month, year = (int(p) for p in parts)
        return datetime(year, month, day, 9, 0, tzinfo=clock.LONDON), None
    except ValueError:
        return None, "Enter a real date, for example 4 1 2027"


# -- starting ------------------------------------------------------------------------------------

@bp.route("/analyst/versions/<int:version_id>/rehearse", methods=["GET", "POST"])
@login_required
def rehearsal_start(version_id: int):
    """The start page: the rehearsal's name, the role to start as, the sandbox clock's start, the pathway's own
    start form (as a referral's start form is shown and checked)."""
    actor = _actor()
    version, process = rehearsals.version_for_start(db.session, version_id, actor)
    form = rehearsals.start_form(db.session, process, actor)
    roles = rehearsals.roles_of(process)
    errors: dict[str, str] = {}
    values: dict[str, Any] = formview.initial_values(form, {}, None) if form else {}
    name, role, status = "", (roles[0] if roles else ""), 200
    if request.method == "POST":
        name, role = request.form.get("name", ""), request.form.get("role", "")
        values = formview.raw_from_post(form, request.form) if form else {}
        at, at_error = _date_from(request.form, "at")
        if at_error:
            errors["at"] = at_error
        else:
            try:
                opened = rehearsals.start(db.session, actor, version.id, request.form if form else {}, name=name,
                                          role=role, at=at, source="html")
            except REFUSED as invalid:
                db.session.rollback()
                errors = _errors(invalid)
            else:
                rehearsal_id = opened.rehearsal.id
                db.session.commit()
                flash("The rehearsal has started. Nothing in it is a real case: nobody is told and no email is sent.",
                      "success")
                return redirect(url_for("web.rehearsal", rehearsal_id=rehearsal_id))
        status = 422
        version, process = rehearsals.version_for_start(db.session, version_id, actor)
    rest = {k: v for k, v in errors.items() if k not in ("name", "role", "at")}
    error_list = (formview.error_list(form, rest) if form
                  else [{"text": message, "href": "#main-content"} for message in rest.values()])
    error_list = ([{"text": errors["name"], "href": "#name"}] if "name" in errors else []) + \
                 ([{"text": errors["role"], "href": "#role"}] if "role" in errors else []) + \
                 ([{"text": errors["at"], "href": "#at-day"}] if "at" in errors else []) + error_list
    others = rehearsals.list_rehearsals(db.session, actor, version.id)
    return render_template("rehearsal_start.html", version=version, process=process, roles=roles, role=role,
                           name=name, items=formview.items(form, values, errors) if form else [],
                           errors=errors, error_list=error_list, others=others,
                           at={p: request.form.get(f"at-{p}", "") for p in ("day", "month", "year")}), status


# -- the rehearsal -------------------------------------------------------------------------------

def _page(opened: rehearsals.Opened, *, errors: dict[str, str] | None = None, scenario: str = "",
          status: int = 200, fired: list[str] | None = None):
    view = opened.view
    names = _element_names(opened.process)
    tasks = []
    for task in view.tasks:
        due, overdue = rehearsals.due_in_words(task.get("due_at"), view.now)
        tasks.append({**task, "due": due, "overdue": overdue})
    timers = []
    for timer in sorted(view.timers, key=lambda t: t.get("due_at") or ""):
        due, _ = rehearsals.due_in_words(timer.get("due_at"), view.now)
        timers.append({**timer, "due": due})
    notices = []
    for notice in reversed(view.notifications):  # newest first, as /notifications lists them
        at, _ = rehearsals.due_in_words(notice.get("at"), view.now)
        notices.append({**notice, "when": at})
    errors = errors or {}
    anchors = {"clock": "#clock-day", "scenario": "#scenario", "name": "#main-content"}
    error_list = [{"text": message, "href": anchors.get(key, "#main-content")} for key, message in errors.items()]
    path = [{"id": element, "name": names.get(element, element)} for element in view.path]
    return render_template(
        "rehearsal.html", opened=opened, rehearsal=opened.rehearsal, version=opened.version, view=view,
        tasks=tasks, timers=timers, notices=notices, path=path, names=names, errors=errors, error_list=error_list,
        clock_moves=[(move, CLOCK_LABELS[move]) for move in rehearsals.CLOCK_MOVES], scenario=scenario,
        may_add=policy.may_deploy(_actor()), fired=fired, now_text=clock_text(view.now),
        current=" ".join(t["element"] for t in view.tasks),
        path_ids=" ".join(dict.fromkeys(view.path))), status


@bp.route("/analyst/rehearsals/<int:rehearsal_id>")
@login_required
def rehearsal(rehearsal_id: int):
    return _page(rehearsals.get(db.session, rehearsal_id, _actor()))


@bp.route("/analyst/rehearsals/<int:rehearsal_id>/clock", methods=["POST"])
@login_required
def rehearsal_clock(rehearsal_id: int):
    """Move the sandbox clock: a button's move ("+1 day", "+1 week", "+4 weeks", "next timer") or a date."""
    actor = _actor()
    rehearsals.get(db.session, rehearsal_id, actor)  # 404 / 403 before the form is read
    move = request.form.get("move", "")
    if move == "date":
        at, error = _date_from(request.form, "clock")
        if at is None:
            return _page(rehearsals.get(db.session, rehearsal_id, actor),
                         errors={"clock": error or "Enter the date to move the clock to"}, status=422)
        move = at.isoformat()
    try:
        opened, fired = rehearsals.move_clock(db.session, actor, rehearsal_id, move)
    except REFUSED as invalid:
        db.session.rollback()
        return _page(rehearsals.get(db.session, rehearsal_id, actor),
                     errors={"clock": _first(invalid)}, status=422)
    names = _element_names(opened.process)
    when = clock_text(opened.view.now)
    db.session.commit()
    said = f"The sandbox clock is now {when}."
    if fired:
        said += " What fired on the way: " + ", ".join(f"'{names.get(f, f)}'" for f in fired) + "."
    else:
        said += " No timer fell due on the way."
    flash(said, "success")
    return redirect(url_for("web.rehearsal", rehearsal_id=rehearsal_id))


@bp.route("/analyst/rehearsals/<int:rehearsal_id>/send", methods=["POST"])
@login_required
def rehearsal_send(rehearsal_id: int):
    """Send the message or signal the case waits for (``kind`` and ``name`` from the button)."""
    actor = _actor()
    rehearsals.get(db.session, rehearsal_id, actor)
    kind = "signal" if request.form.get("kind") == "signal" else "message"
    name = request.form.get("name", "")
    try:
        rehearsals.send(db.session, actor, rehearsal_id, kind, name)
    except REFUSED as invalid:
        db.session.rollback()
        return _page(rehearsals.get(db.session, rehearsal_id, actor),
                     errors={"name": _first(invalid)}, status=422)
    db.session.commit()
    flash(f"The {kind} '{name}' was sent to the rehearsal.", "success")
    return redirect(url_for("web.rehearsal", rehearsal_id=rehearsal_id))


# -- a task ---------------------------------------------------------------------------------------

def _task_page(opened, task, form, values, errors, role, status=200):
    names = _element_names(opened.process)
    due, overdue = rehearsals.due_in_words(task.get("due_at"), opened.view.now)
    documentation = None
    for spec in (opened.process.spec, *opened.process.subprocess_specs.values()):
        spec_task = spec.task_specs.get(task["element"])
        if spec_task is not None:
            documentation = spec_task.documentation
            break
    error_list = (formview.error_list(form, {k: v for k, v in errors.items() if k != "role"}) if form else [])
    if "role" in errors:
        error_list = [{"text": errors["role"], "href": "#role"}] + error_list
    return render_template("rehearsal_task.html", opened=opened, rehearsal=opened.rehearsal, version=opened.version,
                           view=opened.view, task=task, title=task.get("title") or names.get(task["element"]),
                           due=due, overdue=overdue, documentation=documentation, role=role,
                           now_text=clock_text(opened.view.now),
                           items=formview.items(form, values, errors) if form else [], errors=errors,
                           error_list=error_list), status


@bp.route("/analyst/rehearsals/<int:rehearsal_id>/tasks/<string:task_id>", methods=["GET", "POST"])
@login_required
def rehearsal_task(rehearsal_id: int, task_id: str):
    """An open task of the rehearsal: its form as the task page shows it, completed as the chosen role."""
    actor = _actor()
    opened = rehearsals.get(db.session, rehearsal_id, actor)
    task = rehearsals.open_task(opened, task_id)
    form = rehearsals.task_form(db.session, opened, task["element"], actor)
    roles = list(task.get("roles") or [])
    if request.method == "GET":
        values = formview.initial_values(form, opened.view.data or {}, None) if form else {}
        return _task_page(opened, task, form, values, {}, request.args.get("as") or (roles[0] if roles else ""))
    role = request.form.get("role", "")
    raw = formview.raw_from_post(form, request.form) if form else {}
    try:
        rehearsals.complete(db.session, actor, rehearsal_id, task["id"], request.form if form else {}, role=role,
                            source="html")
    except REFUSED as invalid:
        db.session.rollback()
        opened = rehearsals.get(db.session, rehearsal_id, actor)
        return _task_page(opened, task, form, raw, _errors(invalid), role, status=422)
    db.session.commit()
    flash(f"You completed '{task.get('title') or task['element']}' as {role_label(role) if role else 'its role'} "
          f"in the rehearsal.", "success")
    return redirect(url_for("web.rehearsal", rehearsal_id=rehearsal_id))


# -- recording a scenario -------------------------------------------------------------------------

@bp.route("/analyst/rehearsals/<int:rehearsal_id>/scenario", methods=["POST"])
@login_required
def rehearsal_scenario(rehearsal_id: int):
    """Record the rehearsal as a scenario: download the file (``action=download``), or add it to the pathway
    (``action=add``: a new deployment with the file, a draft where the council requires approval)."""
    actor = _actor()
    opened = rehearsals.get(db.session, rehearsal_id, actor)
    name = request.form.get("scenario", "")
    try:
        if request.form.get("action") == "add":
            result = rehearsals.add_to_pathway(db.session, actor, rehearsal_id, name)
        else:
            filename, text = rehearsals.scenario(db.session, actor, rehearsal_id, name)
            db.session.rollback()
            return Response(text, mimetype="application/json", headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
    except REFUSED as invalid:
        db.session.rollback()
        return _page(rehearsals.get(db.session, rehearsal_id, actor), scenario=name,
                     errors={"scenario": _first(invalid)}, status=422)
    except DeploymentInvalid as invalid:
        db.session.rollback()
        problems = "; ".join(p.message for p in invalid.problems)[:600]
        return _page(rehearsals.get(db.session, rehearsal_id, actor), scenario=name,
                     errors={"scenario": f"The scenario could not be added: {problems}"}, status=422)
    key = opened.process.key
    version = next((v for v in result.processes if v.key == key), None)
    deployment = result.deployment
    db.session.commit()
    if not result.created:
        flash("The pathway already has this scenario: nothing changed.", "info")
    elif deployment.status == "draft":
        flash(f"The scenario is added to the pathway in a new draft (deployment {deployment.id}): a pathway approver "
              f"publishes it.", "success")
    else:
        flash(f"The scenario is added to the pathway (deployment {deployment.id}).", "success")
    if version is not None:
        return redirect(url_for("web.analyst_version", version_id=version.id))
    return redirect(url_for("web.rehearsal", rehearsal_id=rehearsal_id))


@bp.route("/analyst/rehearsals/<int:rehearsal_id>/delete", methods=["POST"])
@login_required
def rehearsal_delete(rehearsal_id: int):
    actor = _actor()
    opened = rehearsals.get(db.session, rehearsal_id, actor)
    version_id, name = opened.version.id, opened.rehearsal.name
    rehearsals.delete(db.session, actor, rehearsal_id)
    db.session.commit()
    flash(f"The rehearsal '{name}' is deleted.", "success")
    return redirect(url_for("web.rehearsal_start", version_id=version_id))

