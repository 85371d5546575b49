"""Running a pathway version's scenario tests and keeping the results (``scenario_runs``).

A version's scenarios are the ``<key>.<name>.scenario.json`` files deployed with it (``service.scenarios``);
they run on a sandbox (``service.sandbox``: never a row of cases, tasks, timers or notifications), in the
acting council's calendar. They run:

* at every deploy, for the new versions: a draft's results are shown to the approver;
* at every publish, for the versions being published: directly at deploy (a council whose analysts publish)
  and by an approver (four eyes). A failing scenario blocks the publish (:class:`ScenariosFailed`, listing
  scenario, step and what differed), and nothing is published;
* on demand (API, analyst page, ``flask scenarios run``).

Each run of each scenario is a row; the pages show the newest run of each scenario of a version.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import deployments, policy, scenarios
from service.engine.bundle import Bundle, DeploymentInvalid, Problem, build_bundle, scenario_files
from service.errors import Conflict
from service.models import ProcessVersion, ScenarioRun
from service.policy import Actor

TRIGGERS = ("deploy", "publish", "on_demand")


class ScenariosFailed(Conflict):
    """Publishing refused: a scenario of a version being published failed. ``failures``: one line per step."""

    def __init__(self, results: list[scenarios.ScenarioResult]) -> None:
        failed = [r for r in results if not r.passed]
        lines = [line for r in failed for line in r.summary().splitlines()]
        super().__init__(f"publishing was refused: {len(failed)} scenario test{'s' if len(failed) != 1 else ''} "
                         f"failed (fix the pathway or the scenario, then publish again): " + " | ".join(lines),
                         failures=lines, scenarios=[r.to_json() for r in failed])
        self.results = results

    def problems(self) -> list[Problem]:
        """The failures as deploy problems (file: the scenario; the step and what differed)."""
        return [Problem(r.name, None, f"step {s.number} ({s.action}): {s.message}")
                for r in self.results if not r.passed for s in r.failures()]


def _limits():
    return current_app.extensions.get("engine_limits")


def scenarios_of(bundle: Bundle, key: str) -> list[scenarios.Scenario]:
    """The scenarios of process ``key`` in ``bundle`` (parsed; the deploy checks refused malformed ones)."""
    return [scenarios.parse(bundle.files[name], name) for name in scenario_files(bundle.files, key)]


def run_bundle(bundle: Bundle, keys: Iterable[str]) -> dict[str, list[scenarios.ScenarioResult]]:
    """Run the scenarios of each process of ``keys`` on the processes of ``bundle`` (no database)."""
    limits = _limits()
    return {key: [scenarios.run(bundle.processes, s, limits=limits) for s in scenarios_of(bundle, key)]
            for key in keys}


def record(session: Session, version: ProcessVersion, results: list[scenarios.ScenarioResult], trigger: str,
           actor: str | None) -> list[ScenarioRun]:
    rows = [ScenarioRun(process_version_id=version.id, scenario=r.name[:255], title=r.title[:255], passed=r.passed,
                        steps=[s for s in r.to_json()["steps"]], milliseconds=int(r.seconds * 1000),
                        trigger=trigger, ran_by=actor and actor[:80])
            for r in results]
    session.add_all(rows)
    return rows


def run_version(session: Session, version: ProcessVersion, trigger: str, actor: str | None
                ) -> list[scenarios.ScenarioResult]:
    """Run a version's scenarios on its own files and keep the results."""
    bundle = deployments.bundle_of(session, version)
    results = run_bundle(bundle, [version.key])[version.key]
    record(session, version, results, trigger, actor)
    return results


def check_publish(session: Session, versions: Iterable[ProcessVersion], actor: str | None) -> None:
    """Run the scenarios of the versions being published: raise :class:`ScenariosFailed` if any fails (before
    anything is published); else keep the results."""
    results: list[scenarios.ScenarioResult] = []
    for version in versions:
        results += run_version(session, version, "publish", actor)
    if any(not r.passed for r in results):
        raise ScenariosFailed(results)


def before_deploy(files: Mapping[str, bytes], bundle: Bundle | None, new_keys: Iterable[str], *, publish: bool
                  ) -> tuple[Bundle | None, dict[str, list[scenarios.ScenarioResult]]]:
    """Run the scenarios of the processes a deploy makes new versions of, before anything is written: a deploy
    that publishes at once is refused (:class:`DeploymentInvalid`, a problem per failing step) when one fails.
    Returns the bundle (parsed here if the checks ran elsewhere and there are scenarios) and the results."""
    keys = [key for key in new_keys if scenario_files(files, key)]
    if not keys:
        return bundle, {}
    if bundle is None:
        bundle = build_bundle(files)
    results = run_bundle(bundle, keys)
    if publish and any(not r.passed for found in results.values() for r in found):
        raise DeploymentInvalid(ScenariosFailed([r for found in results.values() for r in found]).problems())
    return bundle, results


def after_deploy(session: Session, versions: list[ProcessVersion], results: Mapping[str, list], actor: str | None,
                 *, publish: bool) -> None:
    """Keep the results of the new versions' scenarios, run by :func:`before_deploy`."""
    for version in versions:
        if results.get(version.key):
            record(session, version, results[version.key], "publish" if publish else "deploy", actor)


def run_on_demand(session: Session, actor: Actor, version: ProcessVersion) -> list[scenarios.ScenarioResult]:
    policy.require_scenario_runner(actor)
    return run_version(session, version, "on_demand", actor.name)


def latest(session: Session, version: ProcessVersion) -> list[ScenarioRun]:
    """The newest run of each scenario of the version, by scenario file name (of the scenarios it has)."""
    rows = session.scalars(select(ScenarioRun).where(ScenarioRun.process_version_id == version.id)
                           .order_by(ScenarioRun.id.desc()))
    newest: dict[str, ScenarioRun] = {}
    for row in rows:
        newest.setdefault(row.scenario, row)
    return [newest[name] for name in sorted(newest)]


def run_json(row: ScenarioRun) -> dict[str, Any]:
    return {"scenario": row.scenario, "title": row.title, "passed": row.passed, "steps": row.steps,
            "milliseconds": row.milliseconds, "trigger": row.trigger, "ran_by": row.ran_by,
            "ran_at": row.ran_at.isoformat() if row.ran_at else None}


def result_json(result: scenarios.ScenarioResult) -> dict[str, Any]:
    data = result.to_json()
    return {"scenario": data["name"], "title": data["title"], "passed": data["passed"], "steps": data["steps"],
            "milliseconds": int(result.seconds * 1000)}
