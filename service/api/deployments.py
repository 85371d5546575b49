"""POST /deployments: analysts upload diagrams, decision tables and forms."""
from __future__ import annotations

from flask import g, request
from flask_smorest import Blueprint

from service import deployments as deployment_service
from service.models import db

from .access import authenticate, require_role
from .schemas import DeploymentRefusedSchema, DeploymentSchema, deployment_json

blp = Blueprint("deployments", __name__, description="Deploy pathways (role analyst)")
blp.before_request(authenticate)


@blp.route("/deployments", methods=["POST"])
@blp.response(201, DeploymentSchema)
@blp.alt_response(400, schema=DeploymentRefusedSchema, description="refused: every problem, by file and element")
def deploy():
    """Upload .bpmn, .dmn and .form files (multipart); unchanged files make no new version."""
    require_role("analyst")
    uploads = {(item.filename or "").replace("\\", "/").rsplit("/", 1)[-1]: item.read()
               for key in request.files for item in request.files.getlist(key)}
    result = deployment_service.deploy(db.session, uploads, g.user.name, g.user.id)
    db.session.commit()
    return deployment_json(result)
