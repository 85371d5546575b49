"""``GET /healthz``: whether this service process can serve, for a load balancer or an orchestrator in front of
several of them (README, "Production setup").

No token and no data: 200 ``{"status": "ok"}`` when the process answers and its database does (``SELECT 1`` on a
pooled connection, checked as every request's is: ``service.pool_checks``); else 503, so that requests go to
another process until this one's database answers again. The operator's counts per council are
``GET /api/v1/operator/health``: they read every council's tables, too much for a probe every few seconds.
"""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError

from service.models import db

bp = Blueprint("probe", __name__)
log = logging.getLogger(__name__)


@bp.route("/healthz")
def healthz():
    """200 when this process and its database answer; 503 when the database does not."""
    try:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as error:
        log.warning("the health probe found the database not answering: %s", type(error).__name__)
        return jsonify({"status": "unavailable", "database": "not answering"}), 503, _NOT_KEPT
    return jsonify({"status": "ok"}), 200, _NOT_KEPT


#: A probe's answer is of this moment: no proxy may keep it.
_NOT_KEPT = {"Cache-Control": "no-store"}
