"""The analyst workspace pages: the council's pathways and their versions, a version's diagram, decision
tables, forms and files, the diff between two versions, and the cases of a version with their errors (retry
and cancel). Routes on the pages' blueprint (``views.bp``); everything through ``service.analyst``, whose
rules are ``service.policy``'s (``may_analyse``, ``may_retry_in_workspace``, ``may_cancel``).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from service import analyst, pathway_versions, policy, scenario_runs
from service import cases as case_service
from service.errors import Forbidden, InvalidData
from service.models import db
from service.web.manager_pages import retried
from service.web.views import bp

STATUS_LABELS = {"error": "Stopped on an error", "active": "Active", "completed": "Completed", "cancelled": "Cancelled"}


def _int_arg(name: str) -> int | None:
    try:
        return int(request.args.get(name, ""))
    except ValueError:
        return None


@bp.route("/analyst")
@login_required
def analyst_home():
    rows = analyst.pathways(db.session, current_user.actor)
    return render_template("analyst.html", pathways=rows, status_labels=STATUS_LABELS, statuses=analyst.STATUSES,
                           may_deploy_pathways=policy.may_deploy(current_user.actor))


def version_page(version_id: int, *, errors: dict[str, str] | None = None,
                 error_list: list[dict[str, str]] | None = None, reason: str = "", status: int = 200):
    """The version page, with what the acting person may do with it (``pathway_versions.actions``) and, after a
    refused action, its errors (``service.web.approval_pages``)."""
    view = analyst.version_view(db.session, version_id, current_user.actor)
    return render_template("analyst_version.html", view=view, version=view.version, status_labels=STATUS_LABELS,
                           statuses=analyst.STATUSES, may_draw=policy.may_deploy(current_user.actor),
                           scenario_runs=scenario_runs.latest(db.session, view.version),
                           scenario_files=[name for name, kind, _ in view.files if kind == "Scenario test"],
                           actions=pathway_versions.actions(db.session, current_user.actor, view.version),
                           errors=errors or {}, error_list=error_list or [], reason=reason), status


@bp.route("/analyst/versions/<int:version_id>")
@login_required
def analyst_version(version_id: int):
    return version_page(version_id)


@bp.route("/analyst/versions/<int:version_id>/scenarios/run", methods=["POST"])
@login_required
def analyst_run_scenarios(version_id: int):
    """Run the version's scenario tests now (on a sandbox) and show their results per step."""
    version = pathway_versions.get_version_by_id(db.session, current_user.actor, version_id)
    results = scenario_runs.run_on_demand(db.session, current_user.actor, version)
    db.session.commit()
    failed = sum(1 for r in results if not r.passed)
    flash(f"{len(results)} scenario test{'s' if len(results) != 1 else ''} ran: "
          + (f"{failed} failed" if failed else "all passed"), "error" if failed else "success")
    if request.form.get("back") == "approval":  # run from the approval page: back to it
        return redirect(url_for("web.analyst_approval", deployment_id=version.deployment_id) + f"#scenarios-{version.id}")
    return redirect(url_for("web.analyst_version", version_id=version.id) + "#scenarios")


@bp.route("/analyst/versions/<int:version_id>/files/<string:name>")
@login_required
def analyst_file(version_id: int, name: str):
    """A file of the version, always as an attachment with its own type (never rendered by the browser)."""
    content, media_type = analyst.version_file(db.session, version_id, name, current_user.actor)
    return Response(content, mimetype=media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@bp.route("/analyst/versions/<int:version_id>/diagram.bpmn")
@login_required
def analyst_diagram(version_id: int):
    """The version's diagram for the viewer (fetched by script), as an attachment like every file here."""
    content = analyst.diagram(db.session, version_id, current_user.actor)
    return Response(content, mimetype="application/xml", headers={
        "Content-Disposition": "attachment; filename=diagram.bpmn", "Cache-Control": "no-store"})


@bp.route("/analyst/versions/<int:version_id>/diff")
@login_required
def analyst_diff(version_id: int):
    """What changed from version ``?from=`` (by default the version before) to this one."""
    actor = current_user.actor
    target = analyst.get_version(db.session, version_id, actor)
    from_id = _int_arg("from")
    if from_id is None:
        before = analyst.previous_version(db.session, target)
        if before is None:
            flash(f"Version {target.version} is the first version of {target.name}: there is nothing before it "
                  "to compare with.", "info")
            return redirect(url_for("web.analyst_version", version_id=target.id))
        from_id = before.id
    result = analyst.diff(db.session, from_id, target.id, actor)
    return render_template("analyst_diff.html", diff=result, a=result.a, b=result.b, ids=result.ids(),
                           others=analyst.versions_of(db.session, target.key))


@bp.route("/analyst/versions/<int:version_id>/cases")
@login_required
def analyst_cases(version_id: int):
    status = request.args.get("status") or None
    if status not in (None, *analyst.STATUSES):
        status = None
    page = max(1, min(_int_arg("page") or 1, 100_000))  # a page past any list is empty, not an OFFSET overflow
    version, rows, total, counts = analyst.cases_of(db.session, version_id, current_user.actor, status=status,
                                                    page=page)
    pages = max((total + analyst.CASES_PER_PAGE - 1) // analyst.CASES_PER_PAGE, 1)
    return render_template("analyst_cases.html", version=version, cases=rows, total=total, counts=counts,
                           status=status, page=page, pages=pages, status_labels=STATUS_LABELS,
                           statuses=analyst.STATUSES)


def _case_page(case_id: int, errors: dict[str, str] | None = None, reason: str = "", status: int = 200):
    actor = current_user.actor
    case = analyst.get_case(db.session, case_id, actor)
    case_service.commit(db.session)  # the access log's line
    errors = errors or {}
    error_list = [{"text": message, "href": "#reason"} for message in errors.values()]
    return render_template("analyst_case.html", case=case, version=case.process, error=case.error or {},
                           may_retry=policy.may_retry_in_workspace(actor) and case.status == "error",
                           may_cancel=analyst.may_cancel(actor) and case.status in ("active", "error"),
                           errors=errors, error_list=error_list, reason=reason,
                           status_labels=STATUS_LABELS), status


@bp.route("/analyst/cases/<int:case_id>")
@login_required
def analyst_case(case_id: int):
    return _case_page(case_id)


@bp.route("/analyst/cases/<int:case_id>/retry", methods=["POST"])
@login_required
def analyst_retry(case_id: int):
    retried(analyst.retry(db.session, case_id, current_user.actor))
    return redirect(url_for("web.analyst_case", case_id=case_id))


@bp.route("/analyst/cases/<int:case_id>/cancel", methods=["POST"])
@login_required
def analyst_cancel(case_id: int):
    reason = request.form.get("reason", "")
    try:
        case = analyst.cancel(db.session, case_id, reason, current_user.actor)
    except InvalidData as invalid:
        db.session.rollback()
        return _case_page(case_id, {"reason": invalid.errors.get("reason", invalid.message)}, reason, status=422)
    reference = case.reference
    case_service.commit(db.session)
    flash(f"Case {reference} is cancelled. The reason is kept in its history.", "success")
    return redirect(url_for("web.analyst_case", case_id=case_id))


@bp.app_context_processor
def analyst_helpers() -> dict[str, Any]:
    def may_analyse() -> bool:
        return bool(current_user.is_authenticated and getattr(current_user, "council", None)
                    and policy.may_analyse(current_user.actor))

    return {"may_analyse": may_analyse}


# -- drawing in the browser ---------------------------------------------------------------------------

MAX_DIAGRAM_BYTES = 2 * 1024 * 1024


def _posted() -> tuple[bytes, dict[str, bytes]]:
    """The diagram's XML and the decision tables and forms edited beside it (``files``: name -> text)."""
    payload = request.get_json(silent=True) or {}
    diagram = payload.get("diagram") if isinstance(payload, dict) else None
    if not isinstance(diagram, str) or not diagram.strip():
        raise InvalidData("no diagram was sent", {"diagram": "Send the diagram's XML"})
    content = diagram.encode("utf-8")
    files = payload.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                              for k, v in files.items()):
        raise InvalidData("the decision tables and forms must be sent as name: text", {"files": "Send each file's text"})
    edited = {name: text.encode("utf-8") for name, text in files.items()}
    if len(content) + sum(len(v) for v in edited.values()) > MAX_DIAGRAM_BYTES:
        raise InvalidData("the diagram is too big", {"diagram": "The diagram with its tables and forms is over 2 MB"})
    return content, edited


def _refused(invalid: InvalidData) -> tuple[dict[str, Any], int]:
    db.session.rollback()
    return {"message": next(iter(invalid.errors.values()), invalid.message)}, 422


def _problems_json(problems) -> list[dict[str, Any]]:
    return [p.to_json() for p in problems]


@bp.route("/analyst/versions/<int:version_id>/edit")
@login_required
def analyst_edit(version_id: int):
    version = analyst.draft_diagram(db.session, version_id, current_user.actor)
    files = analyst.draft_files(db.session, version_id, current_user.actor)
    return render_template("analyst_edit.html", version=version,
                           tables=[n for n in files if n.endswith(".dmn")], forms=[n for n in files if n.endswith(".form")])


@bp.route("/analyst/versions/<int:version_id>/new-file", methods=["POST"])
@login_required
def analyst_new_file(version_id: int):
    """A blank form or decision table for the editor to add (JSON ``{kind, id}`` in, ``{name, text}`` out; nothing
    saved: it is saved with the diagram that uses it). 422 with the error for an id that is not right or taken."""
    analyst.draft_diagram(db.session, version_id, current_user.actor)  # 404, 403 before anything is read
    payload = request.get_json(silent=True) or {}
    payload = payload if isinstance(payload, dict) else {}
    kind, file_id = payload.get("kind"), payload.get("id")
    try:
        name, content = analyst.new_file(db.session, version_id, kind if isinstance(kind, str) else "",
                                         file_id if isinstance(file_id, str) else "", current_user.actor)
    except InvalidData as invalid:
        db.session.rollback()
        return {"message": invalid.errors.get("id") or invalid.errors.get("kind") or invalid.message}, 422
    db.session.rollback()
    return {"name": name, "text": content.decode("utf-8")}


@bp.route("/analyst/versions/<int:version_id>/check", methods=["POST"])
@login_required
def analyst_check(version_id: int):
    """The server's deploy checks on the diagram drawn in the browser (JSON in, JSON out; nothing saved)."""
    analyst.draft_diagram(db.session, version_id, current_user.actor)  # 404, 403 before anything is read
    try:
        diagram, edited = _posted()
        problems = analyst.check_draft(db.session, version_id, diagram, current_user.actor, edited)
    except InvalidData as invalid:  # said in the editor's problems summary (a file it may not send, say)
        return _refused(invalid)
    db.session.rollback()
    return {"problems": _problems_json(problems)}


@bp.route("/analyst/versions/<int:version_id>/save", methods=["POST"])
@login_required
def analyst_save(version_id: int):
    """Save the diagram drawn in the browser as an upload; 422 with the problems when it would not run."""
    from service.engine.bundle import DeploymentInvalid

    analyst.draft_diagram(db.session, version_id, current_user.actor)  # 404, 403 before anything is read
    try:
        diagram, edited = _posted()
        result = analyst.save_draft(db.session, version_id, diagram, current_user.actor, edited)
    except DeploymentInvalid as invalid:
        db.session.rollback()
        return {"problems": _problems_json(invalid.problems)}, 422
    except InvalidData as invalid:
        return _refused(invalid)
    key = analyst.get_version(db.session, version_id, current_user.actor).key
    saved = next((v for v in result.processes if v.key == key), None)
    db.session.commit()
    if not result.created or saved is None:
        return {"problems": [], "saved": False, "message": "Nothing changed: there is no new version to save."}
    if saved.status == "draft":  # four eyes: a pathway approver publishes it (docs/analysts.md)
        flash(f"Saved as draft version {saved.version} of {saved.name}: it starts no case until a pathway "
              f"approver publishes it.", "success")
    else:
        flash(f"Saved as version {saved.version} of {saved.name}: new cases start from it.", "success")
    return {"problems": [], "saved": True, "version": saved.version,
            "url": url_for("web.analyst_version", version_id=saved.id)}


@bp.route("/analyst/new", methods=["GET", "POST"])
@login_required
def analyst_new():
    """A new pathway from the blank template or as a copy of one of the council's, then its editor."""
    from service.engine.bundle import DeploymentInvalid

    actor = current_user.actor
    policy.require_analyst(actor)
    if not policy.may_deploy(actor):
        raise Forbidden("drawing and deploying pathways needs the role analyst")
    pathways = analyst.pathways(db.session, actor)
    form = request.form
    errors, problems, status = {}, [], 200
    if request.method == "POST":
        start = form.get("start", "blank")
        copy_of = int(start) if start.isdigit() else None
        try:
            created, _ = analyst.new_pathway(db.session, actor, form.get("key", ""), form.get("name", ""), copy_of)
        except InvalidData as invalid:
            db.session.rollback()
            errors, status = dict(invalid.errors or {"key": invalid.message}), 422
        except DeploymentInvalid as invalid:
            db.session.rollback()
            problems, status = _problems_json(invalid.problems), 422
        else:
            db.session.commit()
            state = "a draft until a pathway approver publishes it" if created.status == "draft" else "live"
            flash(f"{created.name} is saved as version {created.version} ({state}). Draw it here.", "success")
            return redirect(url_for("web.analyst_edit", version_id=created.id))
    error_list = [{"text": text, "href": f"#{field}"} for field, text in errors.items()]
    return render_template("analyst_new.html", pathways=pathways, form=form, errors=errors, error_list=error_list,
                           problems=problems), status


# -- moving running cases to another version ------------------------------------------------------------

def _mapping_text(text: str) -> tuple[dict[str, str], str | None]:
    """``old_id = new_id`` a line (the analyst's mapping), or the line that is not."""
    mapping = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        old, sep, new = line.partition("=")
        if not (sep and old.strip() and new.strip()):
            return {}, f"Write each line as old_id = new_id, not '{line.strip()[:100]}'"
        mapping[old.strip()] = new.strip()
    return mapping, None


@bp.route("/analyst/versions/<int:version_id>/migration", methods=["GET", "POST"])
@login_required
def analyst_migration(version_id: int):
    """Which active cases of this version can move to another version (``to``), with the analyst's mapping; the
    move itself on POST. Through ``service.case_migration`` (whose rule is ``policy.require_migrator``)."""
    from service import case_migration
    from service.errors import ServiceError

    actor = current_user.actor
    source = analyst.get_version(db.session, version_id, actor)
    policy.require_migrator(actor)
    form = request.form if request.method == "POST" else request.args
    others = [v for v in analyst.versions_of(db.session, source.key)
              if v.id != source.id and v.status in case_migration.MOVABLE_STATUSES]
    to = _int_arg("to") if request.method == "GET" else (int(form["to"]) if form.get("to", "").isdigit() else None)
    mapping_text = form.get("mapping", "")
    mapping, mapping_error = _mapping_text(mapping_text)
    after = form.get("after", "")[:400] or None  # the page of cases checked (a page at a time), the first if none
    result, error, status = None, mapping_error, 200
    if to is not None and error is None:
        try:
            result = case_migration.migrate(db.session, actor, source.id, to, mapping,
                                            dry_run=form.get("action") != "move", after=after)
        except ServiceError as refused:
            db.session.rollback()
            error, status = refused.message, refused.status
        else:
            if not result["dry_run"]:
                case_service.commit(db.session)
                moved = sum(1 for row in result["cases"] if row["status"] == "moved")
                flash(f"{moved} case{'s' if moved != 1 else ''} moved to version {result['to']['version']}.", "success")
    return render_template("analyst_migration.html", version=source, others=others, to=to, result=result,
                           mapping=mapping_text, after=after, page_size=case_migration.MIGRATION_PAGE,
                           error=error), status
