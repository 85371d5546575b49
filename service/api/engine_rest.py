"""The part of Camunda 7's REST API that Camunda Modeler's Deploy button calls, at ``/engine-rest``.

Camunda Modeler (its ``CamundaAPI``) checks the connection with ``GET /deployment?maxResults=0``, reads
``GET /version``, then sends ``POST /deployment/create``: a multipart form with ``deployment-name``,
``deployment-source`` ("Camunda Modeler"), ``enable-duplicate-filtering`` (``deploy-changed-only`` before
Modeler 4.7), ``tenant-id`` when one is set, and the diagram and its attached files, each a part named
after its file. It authenticates with ``Authorization: Bearer <token>`` (the service's API tokens) or
``Authorization: Basic`` with a user name and a password, or a user name and one of that user's API tokens
as the password. The council is the ``tenant-id`` (a council's key), the ``X-Council`` header, or the
user's only council.

A deploy here is the same as ``POST /api/v1/deployments``: a draft, or published at once where the council
lets its analysts publish (``service.pathway_versions``). Answers have the shapes Modeler reads: the
deployment with ``deployedProcessDefinitions``; a refusal is a 400 ``{"type": "ParseException",
"message": "ENGINE-09005 Could not parse BPMN process. Errors: ...", "details": {file: {"errors": [...]}}}``
with each problem's element ids, which Modeler shows in its log.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Flask, g, jsonify, request

from service import limits, pathway_versions, policy, tenancy
from service.auth import SignInRefused, TokenRefused, TooManyAttempts, councils_of, roles_in, sign_in, user_for_token
from service.deployments import pathway_ids
from service.engine.bundle import DeploymentInvalid, Problem
from service.engine.xml import XmlRejected, parse_xml
from service.errors import ServiceError
from service.models import Deployment, User, db
from service.policy import Actor

PREFIX = "/engine-rest"
#: The Camunda 7 version the answers follow (Modeler records it with each deployment).
CAMUNDA_VERSION = "7.22.0"
PARSE_ERROR = "ENGINE-09005 Could not parse BPMN process."

bp = Blueprint("engine_rest", __name__, url_prefix=PREFIX)


def init_app(app: Flask) -> None:
    """Serve /engine-rest (no CSRF token: a request here carries its credentials itself; ``service.web``)."""
    app.register_blueprint(bp)


class _Refused(Exception):
    def __init__(self, status: int, message: str, type_: str = "InvalidRequestException") -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type_


@bp.errorhandler(_Refused)
def _refused(error: _Refused):
    return _error(error.status, error.type, error.message)


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError):
    db.session.rollback()
    kind = {401: "AuthenticationException", 403: "AuthorizationException"}.get(error.status,
                                                                              "InvalidRequestException")
    return _error(error.status, kind, error.message)


@bp.before_request
def _checked():
    limits.check_request()


@bp.after_request
def _never_cached(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.teardown_request
def _forget(_error=None):
    tenancy.leave(db.session)


def _error(status: int, type_: str, message: str, **extra: Any):
    return jsonify({"type": type_, "message": message, "code": 0, **extra}), status


# -- who is calling ---------------------------------------------------------------------------------

def _user() -> User:
    """The caller, from a bearer token, or basic credentials (a password, or one of the user's API tokens)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    try:
        if scheme == "bearer" and value:
            user = user_for_token(db.session, value)
        elif scheme == "basic" and value:
            user = _basic(value)
        else:
            user = None
    except TokenRefused as refused:
        raise _Refused(401, refused.message, "AuthenticationException") from None
    if user is None:
        raise _Refused(401, "sign in: in Camunda Modeler choose authentication 'HTTP Basic' with your user name and "
                            "password (or an API token), or 'Bearer token' with an API token",
                       "AuthenticationException")
    tenancy.identify(db.session, user.id)
    return user


def _basic(value: str) -> User | None:
    try:
        name, _, secret = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not name or not secret:
        return None
    held = user_for_token(db.session, secret)  # an API token as the password
    if held is not None:
        return held if held.name == name else None
    try:
        user = sign_in(db.session, name, secret, request.remote_addr)
    except TooManyAttempts as refused:
        raise _Refused(429, str(refused), "AuthenticationException") from None
    except SignInRefused as refused:
        raise _Refused(401, getattr(refused, "message", str(refused)), "AuthenticationException") from None
    db.session.commit()
    return user


def _act(user: User, tenant: str | None) -> Actor:
    """Act for the council named by ``tenant`` (or X-Council), or the user's only one."""
    councils = councils_of(db.session, user)
    wanted = (tenant or request.headers.get("X-Council", "")).strip()
    if wanted:
        council = next((c for c in councils if c.key == wanted), None)
        if council is None:
            raise _Refused(403, f"you do not work for a council '{wanted}' (the tenant id is the council's key: "
                                f"{', '.join(c.key for c in councils) or 'you work for none'})",
                           "AuthorizationException")
    elif len(councils) == 1:
        council = councils[0]
    elif not councils:
        raise _Refused(403, "you do not work for any council", "AuthorizationException")
    else:
        raise _Refused(400, "you work for several councils: in Camunda Modeler set the tenant ID to the key of the "
                            f"council you deploy for ({', '.join(c.key for c in councils)})")
    tenancy.act_for(db.session, council, user.id)
    g.user, g.council = user, council
    g.actor = Actor(user.name, roles_in(db.session, user, council), user.id, council.id)
    return g.actor


def _deployer(actor: Actor) -> None:
    if not policy.may_deploy(actor):
        raise _Refused(403, f"{actor.name} may not deploy pathways here: that needs the role analyst",
                       "AuthorizationException")


# -- the endpoints ----------------------------------------------------------------------------------

@bp.route("/version")
def version():
    """The Camunda version the answers follow (Modeler reads ``version``)."""
    _user()
    return jsonify({"version": CAMUNDA_VERSION})


@bp.route("/deployment")
def deployments():
    """The council's deployments as Camunda lists them (``maxResults=0``: none, the connection check)."""
    user = _user()
    actor = _act(user, request.args.get("tenantIdIn"))
    _deployer(actor)
    try:
        first = max(0, int(request.args.get("firstResult", 0)))
        most = min(200, max(0, int(request.args.get("maxResults", 50))))
    except ValueError:
        raise _Refused(400, "firstResult and maxResults are whole numbers") from None
    rows = pathway_versions.list_deployments(db.session, actor, first=first, most=most)
    return jsonify([_deployment_dto(d) for d in rows])


@bp.route("/deployment/create", methods=["POST"])
def create_deployment():
    """Deploy the files of the multipart form; 200 with the deployment and its process definitions."""
    user = _user()
    actor = _act(user, request.form.get("tenant-id"))
    _deployer(actor)
    uploads = {(item.filename or key).replace("\\", "/").rsplit("/", 1)[-1]: item.read()
               for key in request.files for item in request.files.getlist(key)}
    source = (request.form.get("deployment-source") or "camunda-modeler").strip()
    # Camunda 7: with duplicate filtering (deploy-changed-only before Modeler 4.7) an unchanged file set makes
    # no deployment; without it, every request makes one (versions here still change only with their files).
    filtering = _flag("enable-duplicate-filtering") or _flag("deploy-changed-only")
    try:
        result = pathway_versions.deploy(db.session, actor, uploads, name=request.form.get("deployment-name"),
                                          source=source, record_unchanged=not filtering)
    except DeploymentInvalid as error:
        db.session.rollback()
        return _parse_error(error.problems, uploads)
    db.session.commit()
    defined = {ident: name for name, content in uploads.items()
               for kind, ident in pathway_ids(name, content) if kind == "process"}
    definitions = {_definition_id(v): {
        "id": _definition_id(v), "key": v.key, "category": None, "description": None, "name": v.name,
        "version": v.version, "resource": defined[v.key], "deploymentId": str(v.deployment_id), "diagram": None,
        "suspended": v.status != "published", "tenantId": g.council.key, "versionTag": None,
        "historyTimeToLive": None, "startableInTasklist": v.status == "published", "status": v.status,
    } for v in result.processes if v.key in defined}
    new = {v.id for v in result.processes if v.deployment_id == result.deployment.id}
    message = None
    if not result.created:  # as Camunda 7 answers a filtered duplicate: the deployment it already has, nothing new
        definitions = {}
        message = (f"Nothing changed since deployment {result.deployment.id}: no deployment was made "
                   "(duplicate filtering is on).")
    elif not new:
        message = (f"Nothing changed: deployment {result.deployment.id} records the same files again (duplicate "
                   "filtering is off), and every pathway keeps its version, as a pathway gets a new version only "
                   "when its files change.")
    return jsonify({**_deployment_dto(result.deployment), "deployedProcessDefinitions": definitions or None,
                    "deployedCaseDefinitions": None, "deployedDecisionDefinitions": None,
                    "deployedDecisionRequirementsDefinitions": None,
                    # Not Camunda's: what this service adds (Modeler shows neither; the workspace does).
                    "status": result.deployment.status, "created": result.created, "message": message,
                    "warnings": [p.to_json() for p in result.warnings]}), 200


def _flag(name: str) -> bool:
    return (request.form.get(name) or "").strip().lower() == "true"


def _definition_id(version) -> str:
    return f"{version.key}:{version.version}:{version.id}"


def _deployment_dto(deployment: Deployment) -> dict[str, Any]:
    return {"links": [{"method": "GET", "href": f"{request.host_url.rstrip('/')}{PREFIX}/deployment/{deployment.id}",
                       "rel": "self"}],
            "id": str(deployment.id), "name": deployment.name, "source": deployment.source,
            "deploymentTime": deployment.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
            "tenantId": g.council.key, "processDefinitionsCount": None}


def _parse_error(problems: list[Problem], uploads: dict[str, bytes]):
    """A refusal as Camunda answers a diagram it cannot parse: every problem, with its element and line."""
    lines = _lines(uploads)
    details: dict[str, Any] = {}
    text = []
    for problem in problems:
        file = problem.file or next(iter(uploads), "")
        line = lines.get((file, problem.element))
        details.setdefault(file, {"errors": [], "warnings": []})["errors"].append({
            "message": problem.message, "line": line, "column": None, "mainElementId": problem.element,
            "elementIds": [problem.element] if problem.element else []})
        where = " | ".join(filter(None, [f"resource {file}" if file else None,
                                         f"element {problem.element}" if problem.element else None,
                                         f"line {line}" if line else None]))
        text.append(f"* {problem.message}{' | ' + where if where else ''}")
    message = f"{PARSE_ERROR} Errors:\n" + "\n".join(text)
    return _error(400, "ParseException", message, details=details)


def _lines(uploads: dict[str, bytes]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for name, content in uploads.items():
        if name.lower().endswith((".bpmn", ".dmn")):
            try:
                root = parse_xml(content, name)
            except XmlRejected:
                continue
            for element in root.iter():
                if isinstance(element.tag, str) and element.get("id"):
                    found.setdefault((name, element.get("id")), element.sourceline)
    return found
