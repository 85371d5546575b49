"""GET /processes: the pathways that can be started, and what starting one needs."""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from service import deployments as deployment_service, pathway_versions
from service.forms import form_to_api
from service.models import db

from .access import authenticate, require_role
from .schemas import DeploymentRefusedSchema, DeploymentSchema, ProcessSchema, ProcessSummarySchema, deployment_json

blp = Blueprint("processes", __name__, description="Deployed pathways")
blp.before_request(authenticate)


@blp.route("/processes")
@blp.response(200, ProcessSummarySchema(many=True))
def list_processes():
    """The latest version of every pathway."""
    return [{"key": v.key, "name": v.name, "version": v.version}
            for v in deployment_service.latest_process_versions(db.session)]


@blp.route("/processes/<string:key>")
@blp.response(200, ProcessSchema)
def get_process(key: str):
    """A pathway's roles and its start form (the data a case needs to start)."""
    version = deployment_service.get_process(db.session, key)
    process = deployment_service.process_definition(db.session, version)
    return {"key": version.key, "name": version.name, "version": version.version, "status": version.status,
            "roles": process.roles,
            "start_form": form_to_api(process.start_form) if process.start_form else {"fields": []},
            "documentation": process.documentation}


class CopySchema(Schema):
    from_council = fields.String(required=True, metadata={"description": "the key of the council to copy from"})


@blp.route("/processes/<string:key>/copy", methods=["POST"])
@blp.arguments(CopySchema())
@blp.response(201, DeploymentSchema)
@blp.alt_response(400, schema=DeploymentRefusedSchema, description="refused: every problem, by file and element")
def copy_process(body, key: str):
    """Copy another council's latest version of a pathway into yours as a starting point (role analyst)."""
    require_role("analyst")
    result = pathway_versions.copy(db.session, g.actor, body["from_council"], key)  # a draft, as any upload
    db.session.commit()
    return deployment_json(result)
