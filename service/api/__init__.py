"""The REST API (v1): bearer-token auth, JSON in and out, OpenAPI at /api/v1/openapi.json."""
from __future__ import annotations

from flask import Flask, jsonify, request
from flask_smorest import Api
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from service.engine.bundle import DeploymentInvalid
from service import limits, tenancy
from service.errors import ServiceError, database_busy
from service.models import db

from . import (access_log, case_answers, case_records, cases, councils, decisions, deployments, engine_rest,
               families, notifications, processes, scenarios, signals, tasks, tokens, tracker, workload)
from . import probe, rehearsals
from .schemas import ErrorSchema

API_PREFIX = "/api/v1"


class _Api(Api):
    """flask-smorest documenting the error bodies this API sends (``message``, and ``errors`` when any)."""

    ERROR_SCHEMA = ErrorSchema


def init_app(app: Flask) -> None:
    api = _Api(app, spec_kwargs={"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]})
    for module in (deployments, processes, cases, tasks, notifications, decisions, tracker, councils, signals,
                   tokens, access_log, families, workload, case_records, case_answers, scenarios, rehearsals):
        api.register_blueprint(module.blp, url_prefix=API_PREFIX)
    api.register_blueprint(councils.operator_blp, url_prefix=API_PREFIX)
    engine_rest.init_app(app)  # Camunda Modeler's Deploy button: /engine-rest
    app.register_blueprint(probe.bp)  # /healthz, for a load balancer

    @app.before_request
    def check_request():
        if request.path.startswith(API_PREFIX):
            limits.check_request()

    @app.after_request
    def never_cached(response):
        """API answers hold case data and tokens: no browser or proxy may keep them."""
        if request.path.startswith(API_PREFIX):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.teardown_request
    def forget_council(_error=None):
        tenancy.leave(db.session)

    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError):
        db.session.rollback()  # nothing half-done is left in the session for a later commit
        body = {"message": error.message, **error.detail}
        return jsonify(body), error.status

    @app.errorhandler(StaleDataError)
    def changed_meanwhile(error: StaleDataError):
        db.session.rollback()
        return jsonify({"message": "someone else changed this case at the same moment; reload it and try again"}), 409

    @app.errorhandler(DeploymentInvalid)
    def deployment_invalid(error: DeploymentInvalid):
        return jsonify({"message": "the deployment was refused: fix the problems listed and upload again",
                        "errors": [p.to_json() for p in error.problems]}), 400

    @app.errorhandler(OperationalError)
    def database_error(error: OperationalError):
        """The database gave up waiting for a lock (``errors.database_busy``): 503, send again, nothing was
        changed; any other database failure is a bug (:func:`unexpected`). Pages answer in service.web.views."""
        if not (database_busy(error) and request.path.startswith(API_PREFIX)):
            return unexpected(error)
        db.session.rollback()
        return jsonify({"message": "the service is busy: nothing was changed; send the request again in a moment"}), \
            503, {"Retry-After": "2"}

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        if not request.path.startswith(API_PREFIX):
            raise error
        # A bug, not bad input: nothing was committed; log it and say so in JSON.
        db.session.rollback()
        app.logger.exception("unexpected error in %s %s", request.method, request.path)
        return jsonify({"message": "something went wrong on our side; nothing was changed. "
                                   "Please try again, and tell the service desk if it keeps happening."}), 500

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not request.path.startswith(API_PREFIX):
            return error
        body = {"message": error.description or error.name}
        data = getattr(error, "data", None)
        if isinstance(data, dict) and data.get("messages"):
            body["errors"] = data["messages"]
            body["message"] = ("the request body is not JSON" if error.code == 400 else
                               "the request is missing something or has a value of the wrong kind: see errors")
        elif isinstance(data, dict) and data.get("errors"):
            body["errors"] = data["errors"]
        # Keep the exception's own headers (405's Allow), not its HTML content type.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return jsonify(body), error.code, headers
