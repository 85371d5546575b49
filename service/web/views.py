"""The pages: sign in and out, the inbox, a task's form, a case, the manager view.

Each view reads and acts through ``service.cases`` (the rules of who may see and do what live there and
nowhere else) and renders a template; errors the service layer raises become GOV.UK-style pages.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from service import cases as case_service
from service import councils as council_service
from service import paging, tenancy, workload
from service import auth
from service.auth import SignInRefused, TooManyAttempts, councils_of, roles_in, sign_in as check_password
from service.engine import calendar, clock
from service.errors import Conflict, Forbidden, InvalidData, NotFound, ServiceError, database_busy
from service.models import Council, OpenTask, User, db
from service.policy import Actor
from service.web import formview

bp = Blueprint("web", __name__)

DUE_SOON_WORKING_DAYS = 2


class WebUser(UserMixin):
    """The signed-in user as Flask-Login sees them, acting for one council (the session holds the ids).

    Loading the user also sets the request's council scope (``service.tenancy``): every page after this
    reads and writes that council's data only.
    """

    def __init__(self, user: User, council: Council | None, councils: list[Council], roles: tuple[str, ...]) -> None:
        self.id = user.id
        self.name = user.name
        self.display_name = user.display_name or user.name
        self.council = council
        self.councils = councils
        self.roles = roles
        self.is_operator = user.is_operator

    @classmethod
    def load(cls, user_id: str) -> WebUser | None:
        """The session's user, if the session still holds (``service.auth.session_holds``); else none."""
        try:
            user = db.session.get(User, int(user_id))
        except (TypeError, ValueError):
            return None
        if user is None or not auth.session_holds(user, session):
            session.clear()  # ended: signed out, timed out, or the user's password or roles changed
            return None
        _touch(session)
        tenancy.identify(db.session, user.id)
        councils = councils_of(db.session, user)
        chosen = session.get(COUNCIL_KEY)
        council = next((c for c in councils if c.id == chosen), councils[0] if len(councils) == 1 else None)
        if council is None:
            return cls(user, None, councils, ())
        tenancy.act_for(db.session, council, user.id)
        return cls(user, council, councils, roles_in(db.session, user, council))

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.roles, self.id, self.council.id if self.council else None)

    @property
    def is_manager(self) -> bool:
        return self.actor.is_manager


def _touch(held) -> None:
    """Mark the session used now (for the idle timeout); at most once a minute, so the cookie rarely changes."""
    now = clock.now().timestamp()
    if now - float(held.get(auth.SEEN_AT, 0)) >= 60:
        held[auth.SEEN_AT] = now


COUNCIL_KEY = "council_id"
#: Pages a signed-in user reaches before choosing the council they act for.
_WITHOUT_COUNCIL = {"web.sign_in", "web.sign_out", "web.choose_council", "web.brand_css", "web.operator", "static"}


@bp.before_app_request
def need_council():
    """A user who works for several councils chooses one before any page of council data."""
    if request.endpoint in _WITHOUT_COUNCIL or request.path.startswith("/api/"):
        return None
    if current_user.is_authenticated and current_user.council is None:
        if not current_user.councils and current_user.is_operator:
            return redirect(url_for("web.operator"))
        if not current_user.councils:
            return error_page(403, "You do not work for any council in this service. Ask your council's "
                                   "administrator to give you a role.")
        return redirect(url_for("web.choose_council", next=request.full_path))
    return None


# -- errors --------------------------------------------------------------------------------------

_TITLES = {400: "There is a problem with that request", 403: "You cannot see this page",
           404: "Page not found", 405: "That cannot be done here", 409: "This has changed",
           422: "There is a problem", 500: "Sorry, there is a problem with the service",
           503: "Sorry, the service is busy"}


def error_page(status: int, message: str, *, link: tuple[str, str] | None = None):
    return render_template("error.html", status=status, title=_TITLES.get(status, "There is a problem"),
                           message=message, link=link), status


@bp.errorhandler(ServiceError)
def service_error(error: ServiceError):
    db.session.rollback()
    link = None
    if isinstance(error, Conflict) and request.view_args and request.view_args.get("task_id"):
        task = db.session.get(OpenTask, request.view_args["task_id"])
        if task is not None and case_service.may_see_case(db.session, task.case, current_user.actor):
            link = (url_for("web.case", case_id=task.case_id), f"Go to case {task.case.reference}")
    return error_page(error.status, error.message, link=link)


@bp.errorhandler(StaleDataError)
def changed_meanwhile(error: StaleDataError):
    db.session.rollback()
    return error_page(409, "Someone else changed this case at the same moment. Reload it and try again.")


@bp.errorhandler(OperationalError)
def database_error(error: OperationalError):
    """The database gave up waiting for a lock (``errors.database_busy``): 503, send again, nothing was saved;
    any other database failure is a 500, as any bug is."""
    if not database_busy(error):
        raise error
    db.session.rollback()
    page, status = error_page(503, "The service is busy, and nothing you sent was saved. Go back and send it again "
                                   "in a moment. If a child is at immediate risk, phone your front door team now.")
    return page, status, {"Retry-After": "2"}


@bp.app_errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    return error_page(400, "The form was not accepted because it has expired or did not come from this "
                           "service. Go back, reload the page and try again.")


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    if error.code in (401, 403, 404, 405, 400):
        return error_page(error.code, error.description or error.name)
    return error


# -- signing in and out --------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Only a path on this site (never //host or a scheme) may be returned to after signing in."""
    if not target:
        return url_for("web.inbox")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("web.inbox")
    return target


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("web.inbox"))
    errors: dict[str, str] = {}
    name, status, retry_after = "", 200, None
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        if not name:
            errors["name"] = "Enter your user name"
        if not password:
            errors["password"] = "Enter your password"
        if not errors:
            try:
                user = check_password(db.session, name, password, request.remote_addr)
            except SignInRefused as refused:
                db.session.commit()
                errors["password"] = refused.message
                status = refused.status
                retry_after = refused.retry_after if isinstance(refused, TooManyAttempts) else None
            else:
                db.session.commit()
                session.clear()  # a fresh session: nothing from before signing in survives
                login_user(WebUser(user, None, [], ()))
                session.update(auth.start_session(user))
                return redirect(_safe_next(request.args.get("next")))
    if errors and status == 200:
        status = 400
    error_list = [{"text": message, "href": f"#{key}"} for key, message in errors.items()]
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return render_template("sign_in.html", errors=errors, error_list=error_list, name=name,
                           next=request.args.get("next")), status, headers


@bp.route("/sign-out", methods=["GET", "POST"])
def sign_out():
    if request.method == "GET":
        if not current_user.is_authenticated:
            return redirect(url_for("web.sign_in"))
        return render_template("sign_out.html")
    if current_user.is_authenticated:
        auth.end_sessions(db.session, db.session.get(User, current_user.id))  # a copied cookie dies too
        db.session.commit()
    logout_user()
    session.clear()
    flash("You have signed out.", "success")
    return redirect(url_for("web.sign_in"))


# -- the council you act for --------------------------------------------------------------------

@bp.route("/council", methods=["GET", "POST"])
@login_required
def choose_council():
    """Choose which of your councils you act for (a regional team works for several)."""
    councils = current_user.councils
    error = None
    if request.method == "POST":
        chosen = next((c for c in councils if c.key == request.form.get("council")), None)
        if chosen is not None:
            session[COUNCIL_KEY] = chosen.id
            flash(f"You are now working for {chosen.name}.", "success")
            return redirect(_safe_next(request.args.get("next")))
        error = "Choose the council you are working for"
    current = current_user.council.key if current_user.council else None
    items = [{"value": c.key, "text": c.name, "checked": c.key == current} for c in councils]
    return render_template("choose_council.html", items=items, error=error,
                           error_list=[{"text": error, "href": "#council"}] if error else []), 422 if error else 200


@bp.route("/operator")
@login_required
def operator():
    """The operator's view: every council with its counts (numbers only: the operator reads no case)."""
    if not current_user.is_operator:
        raise NotFound("There is no such page.")
    return render_template("operator.html", councils=council_service.counts(db.session))


@bp.route("/brand.css")
def brand_css():
    """The acting council's colour in the page header (a style sheet: the CSP allows no inline style)."""
    colour = current_user.council.brand_colour if current_user.is_authenticated and current_user.council else None
    body = f".sp-header {{ border-bottom-color: {colour}; }}\n" if colour else ""
    return Response(body, mimetype="text/css", headers={"Cache-Control": "no-store"})


# -- inbox ---------------------------------------------------------------------------------------

@bp.route("/")
@login_required
def inbox():
    after = request.args.get("after") or None
    tasks = case_service.open_tasks(db.session, current_user.actor, after=after)
    overdue = sum(1 for t in tasks if t.due_at is not None and t.due_at < clock.now())
    more = paging.task_cursor(tasks[-1]) if len(tasks) == paging.TASK_PAGE else None
    return render_template("inbox.html", tasks=tasks, overdue=overdue, more=more, paged=bool(after))


# -- a task --------------------------------------------------------------------------------------

def _documentation(process, task: OpenTask) -> str | None:
    for spec in (process.spec, *process.subprocess_specs.values()):
        task_spec = spec.task_specs.get(task.name)
        if task_spec is not None:
            return task_spec.documentation
    return None


def _task_page(task: OpenTask, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
               assign_error: str | None = None, status: int = 200):
    actor = current_user.actor
    process = case_service.process_of(db.session, task.case)
    form = case_service.task_form(db.session, task)  # allocation fields list the users who may be allocated
    errors = errors or {}
    if values is None:
        values = formview.initial_values(form, task.case.data or {}, task.draft) if form else {}
    return render_template(
        "task.html", task=task, case=task.case, process=process, form=form,
        items=formview.items(form, values, errors) if form else [],
        error_list=(formview.error_list(form, errors) if form else [])
        + ([{"text": assign_error, "href": "#assignee"}] if assign_error else []),
        documentation=_documentation(process, task), ad_hoc=case_service.ad_hoc_of(db.session, task),
        candidates=[{"value": u.name, "text": f"{u.display_name} ({u.name})" if u.display_name else u.name,
                     "selected": u.id == task.assignee_id}
                    for u in case_service.assignable_users(db.session, task)] if actor.is_manager else [],
        draft_saved=bool(task.draft), may_work=case_service.may_work_on(task, actor),
        checks_answers=bool(form and form.checks_answers),
    ), status


@bp.route("/tasks/<string:task_id>", methods=["GET", "POST"])
@login_required
def task(task_id: str):
    actor = current_user.actor
    task = case_service.get_task(db.session, task_id, actor, purpose="task_page" if request.method == "GET" else None,
                                 to_work=request.method == "POST")  # a manager of the team opens it too
    if request.method == "GET":
        case_service.commit(db.session)  # the access log's line
        return _task_page(task)
    form = case_service.task_form(db.session, task)
    raw = formview.raw_from_post(form, request.form) if form else {}
    action = request.form.get("action")
    if action == "draft":
        case_service.save_draft(db.session, task_id, raw, actor)
        case_service.commit(db.session)
        flash("Your answers are saved as a draft. Nothing is sent until you complete the task.", "success")
        return redirect(url_for("web.task", task_id=task_id))
    if form is not None and form.checks_answers and action in ("change", "complete", None):
        return _check_answers(task, form, raw, change=action == "change")
    try:
        case = case_service.complete_task(db.session, task_id, request.form if form else {}, actor, source="html")
    except InvalidData as invalid:
        db.session.rollback()
        task = case_service.get_task(db.session, task_id, actor)
        return _task_page(task, raw, invalid.errors, status=422)
    title, case_id = task.title, case.id
    case_service.commit(db.session)
    if case.status == "error":
        flash(f"'{title}' was recorded, but the case stopped on an error: {(case.error or {}).get('message')}", "error")
    else:
        flash(f"You completed '{title}'.", "success")
    return redirect(url_for("web.case", case_id=case_id))


def _check_answers(task: OpenTask, form, raw: dict[str, Any], change: bool):
    """A decision's "Check your answers" page before it is completed (a form with ``check_answers``).

    The answers travel as hidden fields, not in the session: Change posts them back to the form, Confirm
    completes the task with them (checked again by ``complete_task``).
    """
    if change:  # back to the form with the answers as given (the button's formaction names the question)
        return _task_page(task, raw)
    try:
        cleaned = case_service.check_task_answers(db.session, task.id, request.form, current_user.actor,
                                                  source="html")
    except InvalidData as invalid:
        db.session.rollback()
        task = case_service.get_task(db.session, task.id, current_user.actor)
        return _task_page(task, raw, invalid.errors, status=422)
    carried = [(k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token", "action")]
    return render_template("task_check.html", task=task, case=task.case, rows=formview.answer_rows(form, cleaned),
                           carried=carried)


@bp.route("/cases/<int:case_id>/ad-hoc/<string:element>/finish", methods=["POST"])
@login_required
def finish_ad_hoc(case_id: int, element: str):
    """The worker has done the activities of an ad-hoc sub-process they chose (the API's finish, as a button)."""
    case = case_service.finish_ad_hoc(db.session, case_id, element, current_user.actor)
    case_service.commit(db.session)
    if case.status == "error":
        flash(f"The case stopped on an error: {(case.error or {}).get('message')}", "error")
    else:
        flash("You finished the steps you chose; the others are closed.", "success")
    return redirect(url_for("web.case", case_id=case_id))


@bp.route("/tasks/<string:task_id>/claim", methods=["POST"])
@login_required
def claim(task_id: str):
    actor = current_user.actor
    assignee = request.form.get("assignee") or None
    try:
        if request.form.get("action") == "reassign":  # never a silent claim instead
            task = workload.reassign(db.session, task_id, assignee, actor)
        else:
            task = case_service.claim_task(db.session, task_id, actor, assignee)
    except InvalidData as invalid:
        db.session.rollback()
        task = case_service.get_task(db.session, task_id, actor, to_work=False)
        return _task_page(task, assign_error=next(iter(invalid.errors.values()), invalid.message), status=422)
    title, target = task.title, task.assignee
    case_service.commit(db.session)
    flash(f"'{title}' is now yours." if target == actor.name else f"'{title}' is now with {target}.", "success")
    back = request.form.get("next")
    return redirect(_safe_next(back) if back else url_for("web.task", task_id=task_id))


# -- a case --------------------------------------------------------------------------------------

_EVENTS = {
    "case_started": "Case started", "task_completed": "Task completed", "task_assigned": "Task assigned",
    "decision_taken": "Decision taken", "timer_fired": "Timer reached", "message_received": "Message received",
    "message_sent": "Message sent", "message_thrown": "Message sent", "case_handed_on": "Handed on to another pathway",
    "message_undelivered": "Message not delivered", "signal_undelivered": "Signal not delivered",
    "case_retried": "Case run again", "error": "Stopped on an error",
    "case_completed": "Case completed",
}


def _element_names(process) -> dict[str, str]:
    names: dict[str, str] = {}
    for spec in (process.spec, *process.subprocess_specs.values()):
        for task_spec in spec.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if bpmn_id:
                names[bpmn_id] = getattr(task_spec, "bpmn_name", None) or bpmn_id
    return names


@bp.route("/cases/<int:case_id>")
@login_required
def case(case_id: int):
    actor = current_user.actor
    case = case_service.get_case(db.session, case_id, actor, purpose="case_page")
    case_service.commit(db.session)  # the access log's line
    process = case_service.process_of(db.session, case)
    names = _element_names(process)
    events = [{"event": e, "title": _EVENTS.get(e.event, e.event.replace("_", " ").capitalize()),
               "element": names.get(e.task or "", e.task)} for e in case_service.history(db.session, case)]
    tasks = [(t, case_service.may_work_on(t, actor)) for t in case.tasks]
    timers = [(t, names.get(t.attached_task_id or "", None)) for t in case.timers]
    return render_template("case.html", case=case, process=process, events=events, tasks=tasks,
                           timers=timers, names=names, current=" ".join(sorted({t.name for t in case.tasks})))


@bp.route("/cases/<int:case_id>/diagram.bpmn")
@login_required
def diagram(case_id: int):
    case = case_service.get_case(db.session, case_id, current_user.actor, purpose="diagram")
    case_service.commit(db.session)  # the access log's line
    process = case_service.process_of(db.session, case)
    return Response(process.diagram, mimetype="application/xml",
                    headers={"Content-Disposition": f'inline; filename="{process.key}.bpmn"'})


# -- managers ------------------------------------------------------------------------------------

@bp.route("/manager")
@login_required
def manager():
    actor = current_user.actor
    if not actor.is_manager:
        raise Forbidden("The manager view is for managers: your roles do not include one ending in 'manager'.")
    # One statement for both lists: what is due before the "soon" horizon, the late ones first.
    now = clock.now()
    due = case_service.team_tasks(db.session, actor, due_before=calendar.working_days(DUE_SOON_WORKING_DAYS))
    overdue = [t for t in due if t.due_at is not None and t.due_at < now]
    soon = [t for t in due if t.due_at is not None and t.due_at >= now]
    counts = case_service.case_counts(db.session, actor)
    workable = {t.id for t in overdue + soon if case_service.may_open_listed(t, actor)}
    return render_template("manager.html", overdue=overdue, soon=soon, counts=counts, workable=workable,
                           soon_days=DUE_SOON_WORKING_DAYS, errored=workload.errored_cases(db.session, actor))


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    return {"nav_current": request.endpoint if request else None}

