"""Scenario files (service/scenarios.py): parsed with the file, step and key of what is wrong named; replayed on a
fresh sandbox with a result per step; recorded from a sandbox. No database."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from conftest import FIXTURES, ROOT
from service import scenarios
from service.engine.bundle import build_bundle
from service.engine.clock import LONDON
from service.scenarios import ScenarioError

SANDBOX = FIXTURES / "sandbox"
SEEN = "sandbox_visit.seen.scenario.json"


@pytest.fixture(scope="module")
def processes():
    files = {p.name: p.read_bytes() for p in SANDBOX.iterdir() if p.suffix in (".bpmn", ".form", ".dmn")}
    files.update({p.name: p.read_bytes() for folder in ("bpmn", "dmn", "forms")
                  for p in (ROOT / folder).glob("halton_*") if p.is_file()})
    return build_bundle(files).processes


def seen() -> dict:
    return json.loads((SANDBOX / SEEN).read_text())


def parsed(raw: dict, name: str = SEEN) -> scenarios.Scenario:
    return scenarios.parse(json.dumps(raw), name)


def test_a_scenario_file_replays_and_passes_with_a_result_per_step(processes):
    result = scenarios.run(processes, scenarios.parse((SANDBOX / SEEN).read_text(), SEEN))
    assert result.passed, result.summary()
    assert [(s.number, s.action, s.passed) for s in result.steps] == [
        (0, "start as social_worker", True), (1, "clock to the next timer", True),
        (2, "complete Task_Visit as social_worker", True), (3, "at the end", True)]
    assert result.steps[1].at == "2027-01-05T09:00:00+00:00"
    assert result.to_json()["steps"][2]["passed"] is True


def test_a_failing_expectation_says_what_was_expected_and_found_and_the_run_goes_on(processes):
    raw = seen()
    raw["steps"][0]["expect"] = {"notifications": ["Event_Late"], "timers": {"Event_Late": "2027-01-12T09:00:00+00:00"}}
    raw["expect"]["outcome"] = "not_seen"
    result = scenarios.run(processes, parsed(raw))
    assert not result.passed
    [first, last] = result.failures()
    assert (first.number, first.action) == (1, "clock to the next timer")
    assert "expected notifications from Event_Late, found Event_Reminder" in first.message
    assert "expected the timer Event_Late due at 2027-01-12T09:00:00+00:00, found due at 2027-01-11T09:00:00+00:00" \
        in first.message
    assert result.steps[2].passed  # the next step still ran
    assert (last.number, last.message) == (3, "expected the outcome 'not_seen', found 'seen'")
    assert result.summary().splitlines()[0].startswith(f"{SEEN}, step 1 (clock to the next timer): expected")


def test_open_tasks_data_and_path_are_checked(processes):
    raw = seen()
    raw["start"]["expect"] = {"tasks": ["Task_Reallocate"], "data": {"child_name": "Sam"},
                              "path_includes": ["Event_Seen"], "tasks_include": ["Task_Other"]}
    result = scenarios.run(processes, parsed(raw))
    message = result.steps[0].message
    assert "expected the open tasks Task_Reallocate, found Task_Visit (Task_Reallocate missing; Task_Visit not " \
           "expected)" in message
    assert 'expected the data child_name = "Sam", found "Alex"' in message
    assert "expected the case to have run through Event_Seen, it has not" in message
    assert "expected Task_Other open" in message


def test_a_step_that_cannot_be_done_fails_and_the_rest_are_not_run(processes):
    raw = seen()
    raw["steps"][1]["data"] = {"visit_notes": "no answer"}
    result = scenarios.run(processes, parsed(raw))
    failed = result.steps[2]
    assert not failed.passed and failed.message.startswith("could not be done: the task 'Visit the family'")
    assert "seen_child" in failed.message
    assert [s.run for s in result.steps] == [True, True, True, False]
    assert result.steps[3].action == "at the end" and result.summary().count("not run") == 1


def test_a_scenario_of_a_process_the_version_lacks_fails_without_raising(processes):
    raw = {**seen(), "process": "nope"}
    result = scenarios.run(processes, parsed(raw, "nope.x.scenario.json"))
    assert not result.passed and "'nope' is not in this version" in result.steps[0].message


def test_the_start_defaults_to_the_next_monday_at_nine(frozen_clock):
    assert scenarios.default_start() == datetime(2026, 12, 28, 9, 0, tzinfo=LONDON)  # after Monday 21st 09:00


@pytest.mark.parametrize("change, said", [
    (lambda r: r.pop("process"), "key 'process'"),
    (lambda r: r.update(scenario=""), "key 'scenario'"),
    (lambda r: r.update(colour="red"), "unknown key 'colour'"),
    (lambda r: r["start"].update(at="tomorrow"), "the start: key 'at': 'tomorrow' is not an ISO instant"),
    (lambda r: r["start"].update(data=[]), "the start: key 'data' must be an object"),
    (lambda r: r["steps"][1].update(clock="+1 day"), "step 2: a step has exactly one of the keys"),
    (lambda r: r["steps"][0].update(clock="a fortnight"), "step 1: key 'clock': 'a fortnight' is not a clock move"),
    (lambda r: r["steps"][1].update(expect={"task": []}), "step 2: unknown key 'expect.task'"),
    (lambda r: r["steps"][1].update(expect={"status": "done"}), "step 2: key 'expect.status' must be one of"),
    (lambda r: r["steps"][1].update(expect={"timers": {"Event_Late": "soon"}}),
     "step 2: key 'expect.timers.Event_Late': 'soon' is not an ISO instant"),
    (lambda r: r["steps"][1].update(data="yes"), "step 2: key 'data' must be an object"),
    (lambda r: r["steps"][1].update(colour="red"), "step 2: unknown key 'colour' for a 'complete' step"),
    (lambda r: r["steps"].append("wait"), "step 3: a step is an object"),
    (lambda r: r.update(expect={"outcome": 3}), "the final expect: key 'expect.outcome'"),
    (lambda r: r.update(process="other_process"), "is named 'other_process.<name>.scenario.json'"),
])
def test_a_malformed_scenario_is_refused_naming_the_file_the_step_and_the_key(change, said):
    raw = seen()
    change(raw)
    with pytest.raises(ScenarioError) as refused:
        parsed(raw)
    assert refused.value.message.startswith(f"{SEEN}: ") and said in refused.value.message


def test_a_file_that_is_not_json_is_refused_naming_it():
    with pytest.raises(ScenarioError, match=f"^{SEEN}: not JSON"):
        scenarios.parse("{", SEEN)


HALTON_UNIVERSAL = {
    "scenario": "Universal services: the family needs no further support",
    "process": "halton_step_down",
    "start": {"at": "2027-01-04T09:00:00+00:00", "as": "social_worker",
              "data": {"child_name": "Alex", "final_cin_meeting_date": "2027-01-07"},
              "expect": {"tasks": ["Task_InviteEarlyIntervention"],
                         "timers": {"Event_InvitationReminder": "2027-01-06T09:00:00+00:00"}}},
    "steps": [
        {"clock": "next timer", "expect": {"notifications": ["Event_InvitationReminder"]}},
        {"complete": "Task_InviteEarlyIntervention", "as": "social_worker",
         "data": {"cin_meeting_time": "10:00", "cin_meeting_venue": "Runcorn", "work_completed": "Plan",
                  "outstanding_actions": "None", "invitation_emailed": True},
         "expect": {"tasks": ["Task_FinalCinMeeting"], "timers": {"Event_MeetingReminder": "2027-01-08T09:00:00+00:00"}}},
        {"complete": "Task_FinalCinMeeting", "as": "social_worker",
         "data": {"risk_of_significant_harm": "no", "needs_count": 0, "needs_severity": "low",
                  "plan_progress": "progressing", "consent": "given", "step_up_indicators": "None"},
         "expect": {"tasks": ["Task_AdviseUniversal", "Task_StepDownForm"]}},
        {"complete": "Task_AdviseUniversal", "as": "social_worker", "data": {"universal_services_advised": "Hub"}},
        {"complete": "Task_StepDownForm", "as": "early_intervention",
         "data": {"actions_agreed": "Actions", "step_down_form_outcome": "universal"}},
    ],
    "expect": {"status": "completed", "outcome": "universal", "data": {"cin_outcome": "universal"}},
}


def test_a_halton_step_down_scenario_runs_on_the_reference_pathway(processes):
    result = scenarios.run(processes, parsed(HALTON_UNIVERSAL, "halton_step_down.universal.scenario.json"))
    assert result.passed, result.summary()
    assert len(result.steps) == 7


def test_file_names_follow_the_convention():
    assert scenarios.file_name("halton_step_down", "Universal services: no support!") == \
        "halton_step_down.universal_services_no_support.scenario.json"
