"""Pages for managers (the workload, giving tasks in bulk, the lists behind the manager view's counts, errored
cases and their retry) and for a case's notes and documents. Routes on the pages' blueprint (``views.bp``).

Each view acts through ``service.workload`` and ``service.case_records``; the rules are ``service.policy``'s.
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from service import case_records, cases as case_service, paging, workload
from service.errors import InvalidData, NotFound, ServiceError
from service.models import db
from service.web.views import bp, error_page

PER_PAGE = 50
STATUS_LABELS = {"active": "Active", "completed": "Completed", "error": "Stopped on an error", "cancelled": "Cancelled"}


# -- the workload ----------------------------------------------------------------------------------

def _people_items(tasks, selected: str | None = None) -> list[dict[str, Any]]:
    roles = {r for t in tasks for r in t.roles}
    people = workload.people_for(db.session, current_user.council.id, roles) if current_user.council else []
    return [{"value": "", "text": "Choose a person"}] + [
        {"value": u.name, "text": workload.person_label(u), "selected": u.name == selected} for u in people]


def _error_list(errors: dict[str, str]) -> list[dict[str, str]]:
    """The give form's error summary: each message linking to the person to give to, or to the tasks."""
    return [{"text": message, "href": "#assignee" if key == "assignee" else "#tasks"}
            for key, message in errors.items()]


def _workload_page(errors: dict[str, str] | None = None, chosen: list[str] | None = None, assignee: str | None = None,
                   status: int = 200):
    actor = current_user.actor
    after = request.values.get("after") or None
    load = workload.workload(db.session, actor, after=after)
    tasks = [t for pile in load.by_worker + load.by_role for t in pile.tasks]
    errors = errors or {}
    return render_template("workload.html", load=load, people=_people_items(tasks, assignee), errors=errors,
                           error_list=_error_list(errors), chosen=set(chosen or []), after=after,
                           waiting_counted=workload.WAITING_COUNTED, pile_tasks=workload.PILE_TASKS,
                           no_role=workload.NO_ROLE,
                           workers_page=workload.WORKERS_PAGE,
                           workable={t.id for t in tasks if case_service.may_open_listed(t, actor)}), status


@bp.route("/workload")
@login_required
def workload_page():
    return _workload_page()


def _pile_page(pile, more: str | None, *, heading: str, summary: str, endpoint: str, back: dict[str, str],
               errors: dict[str, str] | None, chosen: list[str] | None, assignee: str | None, status: int):
    """A whole pile's page (a worker's, or a role's tasks nobody has taken), to give its tasks from."""
    errors = errors or {}
    return render_template("workload_pile.html", pile=pile, more=more, after=request.values.get("after") or None,
                           heading=heading, summary=summary, endpoint=endpoint, back=back,
                           per_page=paging.TASK_PAGE, people=_people_items(pile.tasks, assignee), errors=errors,
                           error_list=_error_list(errors), chosen=set(chosen or []),
                           workable={t.id for t in pile.tasks
                                     if case_service.may_open_listed(t, current_user.actor)}), status


def _worker_page(worker: str, errors: dict[str, str] | None = None, chosen: list[str] | None = None,
                 assignee: str | None = None, status: int = 200):
    pile, more = workload.worker_tasks(db.session, current_user.actor, worker,
                                       after=request.values.get("after") or None)
    summary = f"{pile.count:,} open task{'s' if pile.count != 1 else ''} in your team's pathways"
    return _pile_page(pile, more, heading=f"Open tasks with {pile.label}", summary=summary,
                      endpoint="web.workload_worker", back={"worker": pile.key}, errors=errors, chosen=chosen,
                      assignee=assignee, status=status)


def _waiting_page(role: str, errors: dict[str, str] | None = None, chosen: list[str] | None = None,
                  assignee: str | None = None, status: int = 200):
    pile, more = workload.waiting_tasks(db.session, current_user.actor, role,
                                        after=request.values.get("after") or None)
    many = f"{pile.count:,} or more tasks" if pile.count >= workload.WAITING_COUNTED else \
        f"{pile.count:,} task{'s' if pile.count != 1 else ''}"
    return _pile_page(pile, more, heading=f"Not yet taken: {pile.label}",
                      summary=f"{many} in your team's pathways that nobody has taken and people with the "
                              f"{pile.label} role may take",
                      endpoint="web.workload_waiting", back={"role": role}, errors=errors, chosen=chosen,
                      assignee=assignee, status=status)


@bp.route("/workload/workers/<worker>")
@login_required
def workload_worker(worker: str):
    """A worker's whole pile (their open tasks of the manager's team), to give from: when they are away."""
    return _worker_page(worker)


@bp.route("/workload/waiting")
@login_required
def workload_waiting():
    """The tasks a role may take that nobody has taken yet, all of them, to allocate from."""
    role = (request.args.get("role") or "").strip()
    if not role:
        return redirect(url_for("web.workload_page"))
    return _waiting_page(role)


@bp.route("/workload/reassign", methods=["POST"])
@login_required
def workload_reassign():
    actor = current_user.actor
    chosen = [t for t in request.form.getlist("tasks") if t]
    assignee = request.form.get("assignee") or None
    worker = request.form.get("worker") or None  # given from a whole pile's page, back to it
    role = request.form.get("role") or None
    errors = {}
    if not chosen:
        errors["tasks"] = "Choose at least one task to give"
    if not assignee:
        errors["assignee"] = workload.CHOOSE_SOMEONE
    if not errors:
        try:
            done = workload.reassign_many(db.session, chosen, assignee, actor)
        except InvalidData as invalid:
            db.session.rollback()
            errors = invalid.errors
        else:
            count = len(done)
            db.session.commit()
            name = workload.display_name(db.session, assignee)
            flash(f"{count} task{'s' if count != 1 else ''} given to {name}.", "success")
            return redirect(_back_to(worker, role, request.form.get("after") or None))
    if worker:
        return _worker_page(worker, errors, chosen, assignee, status=422)
    if role:
        return _waiting_page(role, errors, chosen, assignee, status=422)
    return _workload_page(errors, chosen, assignee, status=422)


def _back_to(worker: str | None, role: str | None, after: str | None) -> str:
    """Where giving tasks returns to: the page it was given from (a worker's pile while any task is still
    theirs, else the workload)."""
    if worker:
        try:
            workload.worker_tasks(db.session, current_user.actor, worker)
            return url_for("web.workload_worker", worker=worker, after=after)
        except NotFound:
            return url_for("web.workload_page")
    if role:
        return url_for("web.workload_waiting", role=role, after=after)
    return url_for("web.workload_page", after=after)


# -- the lists behind the manager view's counts, and errored cases ----------------------------------

@bp.route("/manager/cases")
@login_required
def manager_cases():
    process = request.args.get("process") or None
    status = request.args.get("status") or None
    outcome = request.args.get("outcome") or None
    try:
        page = max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    rows, total = workload.cases_behind(db.session, current_user.actor, process=process, status=status,
                                        outcome=outcome, page=page, per_page=PER_PAGE)
    pages, uncounted = paging.pages_of(total, page, len(rows), PER_PAGE)
    return render_template("manager_cases.html", cases=rows, total=total, page=page, pages=pages, uncounted=uncounted,
                           process=process, status=status, outcome=outcome, status_labels=STATUS_LABELS,
                           args={k: v for k, v in (("process", process), ("status", status), ("outcome", outcome)) if v})


@bp.route("/manager/cases/<int:case_id>/retry", methods=["POST"])
@login_required
def manager_retry(case_id: int):
    retried(workload.retry(db.session, case_id, current_user.actor))
    return redirect(url_for("web.manager"))


def retried(case) -> None:
    """Commit a retry and say how it went: the case goes on, or stopped on an error again (and which)."""
    reference, status, error = case.reference, case.status, (case.error or {}).get("message")
    case_service.commit(db.session)
    if status == "error":
        flash(f"Case {reference} was run again and stopped on an error again: {error}", "error")
    else:
        flash(f"Case {reference} was run again and goes on.", "success")


# -- notes -----------------------------------------------------------------------------------------

def _note_page(case, values: dict[str, Any], errors: dict[str, str], status: int = 200):
    order = ("kind", "happened_on", "who", "text")
    hrefs = {"happened_on": "#happened_on-day", "kind": "#kind"}
    error_list = [{"text": errors[k], "href": hrefs.get(k, f"#{k}")} for k in order if k in errors]
    return render_template("case_note.html", case=case, values=values, errors=errors, error_list=error_list,
                           kinds=case_records.NOTE_KINDS), status


@bp.route("/cases/<int:case_id>/notes/new", methods=["GET", "POST"])
@login_required
def add_note(case_id: int):
    actor = current_user.actor
    case = case_service.get_case(db.session, case_id, actor)
    if request.method == "GET":
        return _note_page(case, {}, {})
    values = {k: request.form.get(k, "") for k in ("kind", "who", "text", "happened_on-day", "happened_on-month",
                                                    "happened_on-year")}
    day, month, year = (values[f"happened_on-{p}"].strip() for p in ("day", "month", "year"))
    happened = f"{year.zfill(4)}-{month.zfill(2)}-{day.zfill(2)}" if day and month and year else ""
    try:
        case_records.add_note(db.session, case_id, {"kind": values["kind"], "happened_on": happened,
                                                    "who": values["who"], "text": values["text"]}, actor)
    except InvalidData as invalid:
        db.session.rollback()
        case = case_service.get_case(db.session, case_id, actor)
        return _note_page(case, values, invalid.errors, status=422)
    db.session.commit()
    flash("Your note is added to the case.", "success")
    return redirect(url_for("web.case", case_id=case_id) + "#notes-and-documents")


# -- documents -------------------------------------------------------------------------------------

def _document_page(case, values: dict[str, Any], errors: dict[str, str], status: int = 200):
    order = ("file", "title", "checklist_item")
    error_list = [{"text": errors[k], "href": f"#{k}"} for k in order if k in errors]
    return render_template("case_document.html", case=case, values=values, errors=errors, error_list=error_list,
                           checklist=case_records.checklist_items(db.session, case),
                           limit=case_records._size(case_records.max_bytes())), status


@bp.route("/cases/<int:case_id>/documents/new", methods=["GET", "POST"])
@login_required
def upload_document(case_id: int):
    actor = current_user.actor
    case = case_service.get_case(db.session, case_id, actor)
    if request.method == "GET":
        return _document_page(case, {"checklist_item": request.args.get("checklist_item", "")}, {})
    values = {"title": request.form.get("title", ""), "checklist_item": request.form.get("checklist_item", "")}
    upload = request.files.get("file")
    content = upload.stream.read(case_records.max_bytes() + 1) if upload is not None else b""
    try:
        case_records.upload(db.session, case_id, title=values["title"], content=content, actor=actor,
                            filename=upload.filename if upload is not None else None,
                            checklist_item=values["checklist_item"] or None)
    except ServiceError as refused:
        db.session.rollback()
        errors = refused.detail.get("errors") or {"file": refused.message}
        if not content and "file" in errors:
            errors["file"] = "Choose a file to upload"
        case = case_service.get_case(db.session, case_id, actor)
        return _document_page(case, values, errors, status=refused.status)
    db.session.commit()
    flash(f"The document '{values['title'].strip()}' is added to the case.", "success")
    return redirect(url_for("web.case", case_id=case_id) + "#notes-and-documents")


@bp.route("/cases/<int:case_id>/documents/<int:document_id>")
@login_required
def download_document(case_id: int, document_id: int):
    from service.api.case_records import attachment

    document = case_records.download(db.session, case_id, document_id, current_user.actor)
    db.session.commit()
    return attachment(document)


@bp.app_context_processor
def case_record_helpers() -> dict[str, Any]:
    """For the case page: its notes, documents and the note kinds' names (the case is already checked)."""
    def records_of(case):
        return {"notes": case_records.notes(db.session, case), "documents": case_records.documents(db.session, case),
                "kinds": case_records.NOTE_KINDS, "types": case_records.DOCUMENT_TYPES, "size": case_records._size}

    return {"case_records_of": records_of}


_ = error_page  # the blueprint's error pages apply to these views too
