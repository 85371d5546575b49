"""The reference pathways' scenario files (bpmn/scenarios/, issue 17 item 6): each one passes against the
repository's pathways, and together they reach every outcome of every reference pathway, take every pathway
through immediate risk, and move every pathway's clock through a reminder or an escalation.

A scenario is replayed on a sandbox case (service/scenarios.py): the engine alone on its own clock, no database,
in the calendar of its council's country (as `make run` deploys it: Carmarthenshire's is Wales's), with no closure
days. The pathways are parsed once per run; each file runs once per worker (``run``, cached), so the coverage
rules cost nothing more.

The coverage rules read what a scenario declares at its end (``expect.outcome``) and count it only if the
scenario passes, so an outcome is "reached" when a passing scenario ended the case with it. An outcome is a
code of ``conventions.facts(...).outcomes``: an end event's ``outcome`` property (several ends may share one).
``NOT_YET_REACHED`` (and the two lists below it) name what no scenario of this branch covers yet; each list may
only shrink: a test fails when an entry is covered, saying which to remove.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from conftest import ROOT

from service import scenarios
from service.demo import REFERENCE_COUNCILS
from service.deployments import read_folders
from service.engine import calendar
from service.engine.bundle import build_bundle
from service.engine.conventions import IMMEDIATE_RISK

FOLDER = ROOT / "bpmn" / "scenarios"
#: The country of each reference council, whose bank holidays its scenarios count working days in.
COUNTRIES = {council.key: council.country for council in REFERENCE_COUNCILS}
FILES = sorted(p.name for p in FOLDER.glob("*.scenario.json"))
#: The reference pathways: every diagram in bpmn/ (each file is one council's pathway, named with its key).
REFERENCE = sorted(p.stem for p in (ROOT / "bpmn").glob("*.bpmn"))

#: Outcomes (pathway -> outcome codes) no scenario in bpmn/scenarios/ reaches. Remove an entry once a scenario
#: reaches it. ``no_consent`` of the TAF plan cannot be reached: the service refuses to start a voluntary plan
#: without consent (service.safeguarding.check_start), before the diagram's own consent check.
NOT_YET_REACHED: dict[str, set[str]] = {
    "carmarthenshire_taf_plan": {"no_consent"},
}
#: Pathways no passing scenario yet raises immediate risk on.
NO_IMMEDIATE_RISK_YET: set[str] = set()
#: Pathways with reminders or escalations that no passing scenario yet moves the clock through.
NO_REMINDER_YET: set[str] = set()


@pytest.fixture(scope="session")
def bundle():
    """The repository's pathways, parsed once per run (bpmn/, dmn/, forms/)."""
    return build_bundle(read_folders(ROOT))


@pytest.fixture(scope="session")
def run(bundle):
    """``run(file name)``: the file's scenario and its result, replayed once per worker."""
    @functools.cache
    def replay(name: str) -> tuple[scenarios.Scenario, scenarios.ScenarioResult]:
        scenario = scenarios.parse((FOLDER / name).read_text(encoding="utf-8"), name)
        previous = calendar.get_calendar()
        country = COUNTRIES.get(scenario.process.split("_", 1)[0], "england")
        calendar.set_calendar(calendar.WorkingCalendar(country=country))  # no other council's closure days
        try:
            return scenario, scenarios.run(bundle.processes, scenario)
        finally:
            calendar.set_calendar(previous)
    return replay


def test_there_are_scenarios():
    assert len(FILES) >= len(REFERENCE) - len(NOT_YET_REACHED)


def test_make_run_and_the_tests_deploy_every_scenario_into_its_council():
    """`make run` deploys the files read from the folders, named with a reference council's key, into that
    council (service.demo); tests' ``Api.deploy_pathways`` deploys them too, so their scenarios guard it."""
    assert set(FILES) <= set(read_folders(ROOT))
    councils = {council.key for council in REFERENCE_COUNCILS}
    assert {name.split("_", 1)[0] for name in FILES} <= councils


@pytest.mark.parametrize("name", FILES)
def test_scenario_passes(run, name):
    scenario, result = run(name)
    assert name.startswith(f"{scenario.process}."), f"{name}: name it {scenario.process}.<slug>.scenario.json"
    assert re.search(r"[a-z] [a-z]", scenario.title, re.IGNORECASE), f"{name}: name the scenario in plain words"
    assert result.passed, result.summary()


def _passing(run) -> list[scenarios.Scenario]:
    return [scenario for scenario, result in map(run, FILES) if result.passed]


def _check_list(name: str, missing: dict[str, set[str]] | set[str], expected: dict[str, set[str]] | set[str]):
    """``missing`` must equal the expected list ``name``: new gaps fail, and so do gaps since covered."""
    if isinstance(missing, dict):
        missing = {(key, item) for key, items in missing.items() for item in items}
        expected = {(key, item) for key, items in expected.items() for item in items}
    new, closed = sorted(missing - expected), sorted(expected - missing)
    assert not new, f"not covered by any passing scenario in bpmn/scenarios/: {new}"
    assert not closed, f"covered now: remove {closed} from {name} in {Path(__file__).name}"


def test_every_outcome_of_every_reference_pathway_is_reached(bundle, run):
    assert set(REFERENCE) <= set(bundle.processes)
    reached: dict[str, set[str]] = {}
    for scenario in _passing(run):
        outcome = scenario.expect.get("outcome")
        if outcome and scenario.expect.get("status", "completed") == "completed":
            reached.setdefault(scenario.process, set()).add(outcome)
    missing = {}
    for key in REFERENCE:
        outcomes = set(bundle.processes[key].safeguarding.outcomes)
        assert outcomes, f"{key}: no end event names an outcome"
        unknown = reached.get(key, set()) - outcomes
        assert not unknown, f"{key}: scenarios end with {sorted(unknown)}, which no end event of it names"
        if outcomes - reached.get(key, set()):
            missing[key] = outcomes - reached.get(key, set())
    _check_list("NOT_YET_REACHED", missing, NOT_YET_REACHED)


def test_every_reference_pathway_has_an_immediate_risk_scenario(run):
    raised = {scenario.process for scenario in _passing(run)
              if any(step.get("message") == IMMEDIATE_RISK for step in scenario.steps)}
    _check_list("NO_IMMEDIATE_RISK_YET", set(REFERENCE) - raised, NO_IMMEDIATE_RISK_YET)


def test_every_reference_pathway_with_reminders_has_a_scenario_through_one(bundle, run):
    """A clock move that fires a reminder or escalation the scenario names, and checks a timer's due instant."""
    through: set[str] = set()
    for scenario in _passing(run):
        steps = [scenario.start, *scenario.steps]
        fired = any(step.get("clock") and (step.get("expect") or {}).get("notifications") for step in steps)
        dated = any(isinstance((step.get("expect") or {}).get("timers"), dict)
                    and (step.get("expect") or {}).get("timers") for step in steps)
        if fired and dated:
            through.add(scenario.process)
    with_reminders = {key for key in REFERENCE
                      if re.search(rb'name="notify"', bundle.processes[key].diagram)}
    _check_list("NO_REMINDER_YET", with_reminders - through, NO_REMINDER_YET)

