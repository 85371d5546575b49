"""Deployments and pathway versions: upload (role analyst), drafts, four-eyes publishing, suspend, retire.

The rules of who may do what are ``service.policy``'s; the transitions are ``service.pathway_versions``'.
"""
from __future__ import annotations

from flask import g, request
from flask_smorest import Blueprint
from marshmallow import fields

from service import case_migration, paging, pathway_versions
from service.errors import InvalidData, NotFound
from service.models import db
from service.pathway_diff import diff_versions

from .access import authenticate
from .schemas import DeploymentRefusedSchema, DeploymentSchema, StrictSchema, after_field, deployment_json

blp = Blueprint("deployments", __name__, description="Deploy pathways (role analyst), publish them (four eyes)")
blp.before_request(authenticate)


class ReasonSchema(StrictSchema):
    reason = fields.String(load_default=None, metadata={"description": "why (kept in the pathway's history)"})


@blp.route("/deployments", methods=["POST"])
@blp.response(201, DeploymentSchema)
@blp.alt_response(400, schema=DeploymentRefusedSchema, description="refused: every problem, by file and element")
def deploy():
    """Upload .bpmn, .dmn and .form files (multipart ``files``): a draft, or published at once where the council
    lets analysts publish. ``remove`` (repeatable) names files to take away; ``full_set=true`` takes away every
    file not uploaded. Unchanged files make no new version; warnings come back with the answer."""
    uploads = {(item.filename or "").replace("\\", "/").rsplit("/", 1)[-1]: item.read()
               for key in request.files for item in request.files.getlist(key)}
    full_set = (request.form.get("full_set") or "").lower()
    if full_set not in ("", "true", "false"):
        raise InvalidData("full_set is true or false", {"full_set": "Give true or false"})
    result = pathway_versions.deploy(db.session, g.actor, uploads, remove=request.form.getlist("remove"),
                                     full_set=full_set == "true", name=request.form.get("name"), source="api")
    db.session.commit()
    return deployment_json(result)


@blp.route("/deployments")
def list_deployments():
    """The council's deployments, newest first (``?status=submitted``: those waiting for an approver)."""
    rows = pathway_versions.list_deployments(db.session, g.actor, request.args.get("status"))
    return [pathway_versions.deployment_info(db.session, d) for d in rows]


@blp.route("/deployments/<int:deployment_id>")
def get_deployment(deployment_id: int):
    """A deployment: its status, files, versions and history."""
    deployment = pathway_versions.get_deployment(db.session, g.actor, deployment_id)
    return {**pathway_versions.deployment_info(db.session, deployment),
            "history": [pathway_versions.event_json(e) for e in
                        pathway_versions.history(db.session, g.actor, deployment_id=deployment_id)]}


@blp.route("/deployments/<int:deployment_id>/changes")
def deployment_changes(deployment_id: int):
    """What publishing the deployment changes: each new version's diff against the pathway's current version."""
    return pathway_versions.changes(db.session, g.actor, deployment_id)


def _transition(action, deployment_id: int, body):
    deployment = action(db.session, g.actor, deployment_id, body.get("reason"))
    db.session.commit()
    return pathway_versions.deployment_info(db.session, deployment)


@blp.route("/deployments/<int:deployment_id>/submit", methods=["POST"])
@blp.arguments(ReasonSchema())
def submit(body, deployment_id: int):
    """Ask a pathway approver to publish a draft (role analyst)."""
    return _transition(pathway_versions.submit, deployment_id, body)


@blp.route("/deployments/<int:deployment_id>/publish", methods=["POST"])
@blp.arguments(ReasonSchema())
def publish(body, deployment_id: int):
    """Publish a draft: new cases start from its versions. A pathway approver who is not its author (four eyes)."""
    return _transition(pathway_versions.publish, deployment_id, body)


@blp.route("/deployments/<int:deployment_id>/reject", methods=["POST"])
@blp.arguments(ReasonSchema())
def reject(body, deployment_id: int):
    """Turn down a draft (a pathway approver) or withdraw it (its author), with the reason."""
    return _transition(pathway_versions.reject, deployment_id, body)


@blp.route("/versions")
def list_versions():
    """Every version of every pathway (``?key=``: of one), with its status and whether new cases start from it."""
    return pathway_versions.list_versions(db.session, g.actor, request.args.get("key"))


@blp.route("/versions/<int:version_id>")
def get_version(version_id: int):
    version = pathway_versions.get_version_by_id(db.session, g.actor, version_id)
    return {**pathway_versions.version_info_of(db.session, version),
            "history": [pathway_versions.event_json(e) for e in pathway_versions.history(db.session, g.actor,
                                                                                        key=version.key)
                        if e.process_version_id in (None, version.id)]}


@blp.route("/versions/<int:version_id>/diff")
def version_diff(version_id: int):
    """Elements added, removed and changed since ``?against=<version id>`` (default: the version before)."""
    version = pathway_versions.get_version_by_id(db.session, g.actor, version_id)
    against = request.args.get("against")
    if against is not None:
        if not against.isdigit():
            raise InvalidData("against is a version id", {"against": "Give the id of the version to compare with"})
        other = pathway_versions.get_version_by_id(db.session, g.actor, int(against))
        if other.key != version.key:
            raise NotFound(f"version {against} is not a version of '{version.key}'")
    else:
        other = pathway_versions.previous_version(db.session, version)
    return diff_versions(db.session, other, version).to_dict()


def _version_transition(action, version_id: int, body):
    version = action(db.session, g.actor, version_id, body.get("reason"))
    db.session.commit()
    return pathway_versions.version_info_of(db.session, version)


@blp.route("/versions/<int:version_id>/suspend", methods=["POST"])
@blp.arguments(ReasonSchema())
def suspend(body, version_id: int):
    """No new case starts from the pathway until it is resumed; running cases go on (analyst or approver)."""
    return _version_transition(pathway_versions.suspend, version_id, body)


@blp.route("/versions/<int:version_id>/resume", methods=["POST"])
@blp.arguments(ReasonSchema())
def resume(body, version_id: int):
    """New cases start again from a suspended version (pathway approver)."""
    return _version_transition(pathway_versions.resume, version_id, body)


@blp.route("/versions/<int:version_id>/retire", methods=["POST"])
@blp.arguments(ReasonSchema())
def retire(body, version_id: int):
    """No new case ever starts from this version; cases running on it finish (pathway approver)."""
    return _version_transition(pathway_versions.retire, version_id, body)



@blp.route("/versions/<int:version_id>/migration")
def migration_precheck(version_id: int):
    """Which active cases of this version can move to ``?to=<version id>`` of the same pathway: each case with
    the elements it waits on and those the target lacks (analyst or pathway approver), a page of cases at a time
    (``next``, also the X-Next-Cursor header: the ``?after=`` of the next page). ``?map=old_id:new_id``
    (repeatable): with the analyst's mapping of elements the target lacks."""
    to = request.args.get("to", "")
    after = request.args.get("after", "")
    if len(after) > 400:  # as the lists' ``after`` field allows
        raise paging.not_ours()
    mapping = {}
    for pair in request.args.getlist("map"):
        old, sep, new = pair.partition(":")
        if not (sep and old and new):
            raise InvalidData("map is old_id:new_id", {"map": f"Give old_id:new_id, not '{pair[:100]}'"})
        mapping[old] = new
    return _page(case_migration.precheck(db.session, g.actor, version_id, int(to) if to.isdigit() else to or None,
                                         mapping, after=after or None))


def _page(result: dict):
    """A migration's answer, with the cursor of its next page in the X-Next-Cursor header as the lists have it."""
    return result, 200, ({"X-Next-Cursor": result["next"]} if result["next"] else {})


class MigrationSchema(StrictSchema):
    to = fields.Integer(load_default=None, strict=True, metadata={"description": "the version to move the cases to"})
    mapping = fields.Dict(keys=fields.String(), values=fields.String(), load_default=None,
                          metadata={"description": "{old element id: new element id} for elements the target lacks"})
    dry_run = fields.Boolean(load_default=True, metadata={"description": "say what would happen, change nothing"})
    cases = fields.List(fields.Integer(strict=True), load_default=None, metadata={
        "description": f"only these cases, at most {case_migration.MIGRATION_PAGE} (default: the version's active "
                       f"cases, {case_migration.MIGRATION_PAGE} at a time)"})
    after = after_field()


@blp.route("/versions/<int:version_id>/migration", methods=["POST"])
@blp.arguments(MigrationSchema())
def migrate_cases(body, version_id: int):
    """Move the active cases of this version that can move to version ``to`` (``dry_run``: say what would happen).
    Each case moves in its own savepoint and is audited (``case_migrated``); a case that cannot move stays."""
    result = case_migration.migrate(db.session, g.actor, version_id, body.get("to"), body.get("mapping"),
                                    dry_run=body.get("dry_run", True), case_ids=body.get("cases"),
                                    after=body.get("after"))
    if not result["dry_run"]:
        db.session.commit()
    return _page(result)
