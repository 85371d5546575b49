"""Scenario tests of a pathway version: run them on demand, read the newest results (analysts and approvers).

They also run at every deploy and publish (``service.scenario_runs``); a failing one blocks publishing.
"""
from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from service import pathway_versions, scenario_runs
from service.models import db

from .access import authenticate

blp = Blueprint("scenarios", __name__, description="Scenario tests of pathway versions (run on a sandbox)")
blp.before_request(authenticate)


def _ran(version, results) -> dict:
    return {"key": version.key, "version": version.version, "version_id": version.id,
            "passed": all(r.passed for r in results), "scenarios": [scenario_runs.result_json(r) for r in results]}


@blp.route("/versions/<int:version_id>/scenarios/run", methods=["POST"])
def run_scenarios(version_id: int):
    """Run every scenario test of the version now, on a sandbox, and keep the results (a result per step)."""
    version = pathway_versions.get_version_by_id(db.session, g.actor, version_id)
    results = scenario_runs.run_on_demand(db.session, g.actor, version)
    db.session.commit()
    return _ran(version, results)


@blp.route("/processes/<string:key>/versions/<int:number>/scenarios/run", methods=["POST"])
def run_scenarios_by_number(key: str, number: int):
    """The same, naming the version by its pathway and number."""
    version = pathway_versions.get_version(db.session, g.actor, key, number)
    results = scenario_runs.run_on_demand(db.session, g.actor, version)
    db.session.commit()
    return _ran(version, results)


@blp.route("/versions/<int:version_id>/scenarios")
def latest_scenario_runs(version_id: int):
    """The newest run of each scenario test of the version, with the result of each step."""
    version = pathway_versions.get_version_by_id(db.session, g.actor, version_id)
    rows = scenario_runs.latest(db.session, version)
    return {"key": version.key, "version": version.version, "version_id": version.id,
            "passed": all(r.passed for r in rows), "scenarios": [scenario_runs.run_json(r) for r in rows]}
