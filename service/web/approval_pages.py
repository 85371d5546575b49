"""Drafts, approval and publishing in the pages (issue 17, item 4): submit a draft for approval, the list of
deployments waiting for a pathway approver, the approval page (what changed against the published version, the
scenario results, the deploy checks' warnings, the history) with Publish and Reject, and suspend, resume and
retire on a published version's page.

Everything through ``service.pathway_versions``, whose rules are ``service.policy``'s (``require_deployer``,
``may_publish`` / ``require_publisher`` for four eyes, ``may_reject``, ``may_suspend``, ``may_release``): the
pages only ask it what to offer, and show its refusals (a reason missing: 422 on the field; a stale request or a
failing scenario: 409 in the error summary, nothing written). Routes on the pages' blueprint (``views.bp``).
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from service import pathway_versions
from service.errors import Conflict, InvalidData
from service.models import db
from service.web.views import bp


def _reason() -> str:
    return request.form.get("reason", "")


def _refusal(refused: Conflict | InvalidData, field: str = "reason") -> tuple[dict[str, str], list[dict[str, str]]]:
    """The service's refusal as the page's errors: a field's message beside it, anything else in the summary."""
    errors = dict(getattr(refused, "errors", None) or {})
    if errors:
        return {field: errors.get("reason", refused.message)}, [{"text": errors.get("reason", refused.message),
                                                                 "href": f"#{field}"}]
    return {}, [{"text": _sentence(refused.message)}]


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


# -- the version page's actions --------------------------------------------------------------------------

@bp.route("/analyst/versions/<int:version_id>/submit", methods=["POST"])
@login_required
def analyst_submit(version_id: int):
    """Send the version's draft deployment to a pathway approver, with an optional note."""
    from service.web.analyst_pages import version_page

    actor = current_user.actor
    version = pathway_versions.get_version_by_id(db.session, actor, version_id)
    try:
        pathway_versions.submit(db.session, actor, version.deployment_id, _reason())
    except (Conflict, InvalidData) as refused:
        db.session.rollback()
        errors, error_list = _refusal(refused)
        return version_page(version_id, errors=errors, error_list=error_list, reason=_reason(),
                            status=refused.status)
    db.session.commit()
    flash("Sent for approval", "success")
    return redirect(url_for("web.analyst_version", version_id=version_id))


@bp.route("/analyst/versions/<int:version_id>/publish", methods=["POST"])
@login_required
def analyst_publish_version(version_id: int):
    """Publish the version's draft at once (where the council lets its analysts publish: ``policy.may_publish``)."""
    from service.web.analyst_pages import version_page

    actor = current_user.actor
    version = pathway_versions.get_version_by_id(db.session, actor, version_id)
    try:
        pathway_versions.publish(db.session, actor, version.deployment_id, _reason() or None)
    except (Conflict, InvalidData) as refused:
        db.session.rollback()
        errors, error_list = _refusal(refused)
        return version_page(version_id, errors=errors, error_list=error_list, reason=_reason(),
                            status=refused.status)
    number, name = version.version, version.name
    db.session.commit()
    flash(f"Published: new cases of {name} start from version {number}", "success")
    return redirect(url_for("web.analyst_version", version_id=version_id))


def _version_action(version_id: int, action: str, done: str):
    from service.web.analyst_pages import version_page

    actor = current_user.actor
    pathway_versions.get_version_by_id(db.session, actor, version_id)  # another council's: 404 first
    try:
        version = getattr(pathway_versions, action)(db.session, actor, version_id, _reason())
    except (Conflict, InvalidData) as refused:
        db.session.rollback()
        errors, error_list = _refusal(refused)
        return version_page(version_id, errors=errors, error_list=error_list, reason=_reason(),
                            status=refused.status)
    text = done.format(number=version.version, name=version.name)
    db.session.commit()
    flash(text, "success")
    return redirect(url_for("web.analyst_version", version_id=version_id))


@bp.route("/analyst/versions/<int:version_id>/suspend", methods=["POST"])
@login_required
def analyst_suspend(version_id: int):
    return _version_action(version_id, "suspend", "Suspended: no new case of {name} starts until it is resumed; "
                                                  "running cases go on")


@bp.route("/analyst/versions/<int:version_id>/resume", methods=["POST"])
@login_required
def analyst_resume(version_id: int):
    return _version_action(version_id, "resume", "Resumed: new cases of {name} start from version {number} again")


@bp.route("/analyst/versions/<int:version_id>/retire", methods=["POST"])
@login_required
def analyst_retire(version_id: int):
    return _version_action(version_id, "retire", "Retired: no new case ever starts from version {number} of {name}; "
                                                 "running cases finish")


# -- waiting for approval ---------------------------------------------------------------------------------

@bp.route("/analyst/approvals")
@login_required
def analyst_approvals():
    lists = pathway_versions.waiting(db.session, current_user.actor)
    rows = {status: [(d, pathway_versions.deployment_info(db.session, d), pathway_versions.submission_note(db.session, d)) for d in found]
            for status, found in lists.items()}
    return render_template("analyst_approvals.html", submitted=rows["submitted"], drafts=rows["draft"])


def approval_page(deployment_id: int, *, errors: dict[str, str] | None = None,
                  error_list: list[dict[str, str]] | None = None, reason: str = "", status: int = 200):
    view = pathway_versions.review(db.session, current_user.actor, deployment_id)
    return render_template("analyst_approval.html", view=view, deployment=view["deployment"],
                           info=pathway_versions.deployment_info(db.session, view["deployment"]),
                           note=pathway_versions.submission_note(db.session, view["deployment"]), errors=errors or {}, error_list=error_list or [],
                           reason=reason), status


@bp.route("/analyst/approvals/<int:deployment_id>")
@login_required
def analyst_approval(deployment_id: int):
    return approval_page(deployment_id)


def _decide(deployment_id: int, action: str, done: str):
    actor = current_user.actor
    pathway_versions.get_deployment(db.session, actor, deployment_id)  # another council's: 404 first
    reason = _reason()
    try:
        if action == "publish":
            pathway_versions.publish(db.session, actor, deployment_id, reason or None)
        else:
            pathway_versions.reject(db.session, actor, deployment_id, reason)
    except (Conflict, InvalidData) as refused:
        db.session.rollback()
        errors, error_list = _refusal(refused)
        return approval_page(deployment_id, errors=errors, error_list=error_list, reason=reason,
                             status=refused.status)
    db.session.commit()
    flash(done, "success")
    return redirect(url_for("web.analyst_approval", deployment_id=deployment_id))


@bp.route("/analyst/approvals/<int:deployment_id>/publish", methods=["POST"])
@login_required
def analyst_approval_publish(deployment_id: int):
    return _decide(deployment_id, "publish", "Published: new cases start from these versions")


@bp.route("/analyst/approvals/<int:deployment_id>/reject", methods=["POST"])
@login_required
def analyst_approval_reject(deployment_id: int):
    return _decide(deployment_id, "reject", "Rejected: these versions will never start a case. The reason is kept "
                                            "in the history")
