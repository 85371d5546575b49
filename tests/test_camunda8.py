"""Camunda 8 (zeebe) diagrams deploy and run through the REST API as Camunda 8 runs them, or are refused at
deploy naming the element and why (docs/writing-pathways.md, "Camunda 8 (zeebe) diagrams").

tests/fixtures/camunda8/constructs/c8_review.bpmn uses each construct once (and EACH_CHILD below a multi-instance
over a FEEL collection): zeebe:userTask,
zeebe:assignmentDefinition (a comma list, a FEEL list, an assignee expression), zeebe:formDefinition formId,
zeebe:taskSchedule, zeebe:ioMapping, zeebe:calledDecision, zeebe:script, zeebe:calledElement with
propagateAllChildVariables="false", zeebe:properties, a message with zeebe:subscription, and = FEEL in
conditions, mappings, due dates and timers.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import USERS, Api, save_user
from service import scheduler
from service.engine import runtime
from service.engine.bundle import build_bundle
from service.models import db

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "camunda8" / "constructs"
PROCESS = (FIXTURES / "c8_review.bpmn").read_text()
START = {"needs": 1, "child_name": "Amy", "allocated_worker": "worker"}


@pytest.fixture
def api(sqlite_app):
    tokens = {}
    with sqlite_app.app_context():
        for name, roles in USERS.items():
            save_user(db.session, name, roles, token=f"token-{name}")
            tokens[name] = f"token-{name}"
        db.session.commit()
    return Api(sqlite_app, tokens)


def upload(api, files: dict[str, bytes]):
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return api.post("/deployments", data=data, as_="analyst", content_type="multipart/form-data")


def fixture_files(**replace: str) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in FIXTURES.iterdir()}
    text = PROCESS
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    files["c8_review.bpmn"] = text.encode()
    return files


@pytest.fixture
def deployed(api):
    response = upload(api, fixture_files())
    assert response.status_code == 201, response.json
    return api


def start(api, data=None) -> dict:
    response = api.post("/cases", json={"process": "c8_review", "reference": "C8-1", "data": data or START})
    assert response.status_code == 201, response.json
    assert response.json["status"] != "error", response.json
    return response.json


def complete(api, case: dict, name: str, data: dict, as_: str = "worker") -> dict:
    [task] = [t for t in case["tasks"] if t["name"] == name]
    response = api.post(f"/tasks/{task['id']}/complete", json={"data": data}, as_=as_)
    assert response.status_code == 200, response.json
    assert response.json["status"] != "error", response.json
    return response.json


def path(api, case: dict) -> list[tuple[str, str | None]]:
    """The steps the case took, from its history: tasks completed and decisions taken."""
    return [(e["event"], e["task"]) for e in api.get(f"/cases/{case['id']}/history", as_="admin").json
            if e["event"] in ("task_completed", "decision_taken", "case_completed")]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_process_lists_the_roles_of_its_zeebe_candidate_groups(deployed):
    process = deployed.get("/processes/c8_review").json
    assert process["roles"] == ["front_door", "social_worker", "team_manager"]


def test_user_task_assignment_form_schedule_and_input_mapping(deployed, frozen_clock):
    case = start(deployed)
    [task] = case["tasks"]
    assert (task["name"], task["roles"], task["assignee"]) == ("Task_Assess", ["social_worker"], "worker")
    assert when(task["due_at"]) == utc(2026, 12, 23, 9, 0)  # =working_days(2) from Monday 21 December
    form = deployed.get(f"/tasks/{task['id']}", as_="worker").json["form"]
    assert [f["key"] for f in form["fields"]] == ["risk", "summary"]  # the linked form, found by its form id
    assert case["data"]["task_heading"] == "Amy (1 needs)"  # the input mapping, while the task is open
    assert case["data"]["task_kind"] == "Assessment"  # a source without "=" is a static value
    [timer] = case["timers"]
    assert (timer["name"], when(timer["due_at"])) == ("Event_Remind", utc(2026, 12, 24, 9, 0))  # =duration("P3D")
    complete(deployed, case, "Task_Assess", {"risk": False, "summary": "Fine"})


def test_a_camunda_8_forms_taglist_is_a_list_of_its_values(deployed):
    case = complete(deployed, start(deployed), "Task_Assess", {"risk": False})
    [plan] = case["tasks"]
    form = deployed.get(f"/tasks/{plan['id']}", as_="worker").json["form"]
    [services] = [f for f in form["fields"] if f["key"] == "plan_services"]
    assert services["type"] == "checklist"
    response = deployed.post(f"/tasks/{plan['id']}/complete", json={"data": {"plan_services": ["nobody"]}})
    assert response.status_code == 422 and "plan_services" in response.json["errors"]
    done = complete(deployed, case, "Task_AgreePlan", {"plan_agreed": True, "plan_services": ["school_nurse"]})
    assert done["status"] == "active"


def test_a_feel_condition_and_a_called_decision_with_its_result_variable_step_up(deployed):
    case = start(deployed)
    case = complete(deployed, case, "Task_Assess", {"risk": True})
    assert case["data"]["level"] == "acute"  # zeebe:calledDecision resultVariable: the single output itself
    [approve] = case["tasks"]
    assert (approve["name"], approve["roles"]) == ("Task_Approve", ["team_manager"])  # =["team_manager"]
    assert when(approve["due_at"]) == utc(2027, 1, 4, 9, 0)
    done = complete(deployed, case, "Task_Approve", {}, as_="manager")
    assert (done["status"], done["data"]["outcome"]) == ("completed", "stepped_up")  # zeebe:property outcome
    assert path(deployed, case) == [("task_completed", "Task_Assess"), ("decision_taken", "Task_Level"),
                                    ("task_completed", "Task_Approve"), ("case_completed", None)]


def test_script_call_activity_mappings_and_a_message_to_the_default_flow(deployed, frozen_clock):
    case = complete(deployed, start(deployed), "Task_Assess", {"risk": False})
    assert case["data"]["summary_line"] == "level additional for Amy"  # zeebe:script
    [plan] = case["tasks"]
    assert (plan["name"], plan["roles"]) == ("Task_AgreePlan", ["social_worker", "team_manager"])
    assert when(plan["due_at"]) == utc(2027, 1, 4, 9, 0)  # =add_days(today(), plan_weeks * 7): the input, doubled
    case = complete(deployed, case, "Task_AgreePlan", {"plan_agreed": False, "plan_notes": "Family away"})
    assert case["data"]["plan_agreed"] is False and case["data"]["weeks_planned"] == 2  # the outputs
    response = deployed.post(f"/cases/{case['id']}/messages", json={"name": "family_update",
                                                                    "data": {"family_engaged": True}}, as_="admin")
    assert response.status_code == 200, response.json
    assert (response.json["status"], response.json["data"]["outcome"]) == ("completed", "no_plan")


def test_the_plan_agreed_takes_the_conditional_flow_to_a_voluntary_end_that_needs_consent(deployed):
    case = complete(deployed, start(deployed), "Task_Assess", {"risk": False})
    case = complete(deployed, case, "Task_AgreePlan", {"plan_agreed": True})
    url = f"/cases/{case['id']}/messages"
    refused = deployed.post(url, json={"name": "family_update", "data": {"family_engaged": True}}, as_="admin")
    assert refused.status_code == 422 and "consent" in refused.json["errors"]  # zeebe:property voluntary
    response = deployed.post(url, json={"name": "family_update", "data": {"family_engaged": True, "consent": "given"}},
                             as_="admin")
    assert response.status_code == 200, response.json
    assert response.json["data"]["outcome"] == "closed"
    assert path(deployed, case) == [("task_completed", "Task_Assess"), ("decision_taken", "Task_Level"),
                                    ("task_completed", "Task_AgreePlan"), ("case_completed", None)]


def test_a_zeebe_property_notifies_when_the_feel_timer_fires(deployed, frozen_clock):
    case = start(deployed)
    frozen_clock.move_to(utc(2026, 12, 24, 9, 0))
    assert scheduler.fire_due(deployed.app) == 1
    after = deployed.get(f"/cases/{case['id']}", as_="admin").json
    assert after["timers"] == [] and [t["name"] for t in after["tasks"]] == ["Task_Assess"]
    assert any(e["event"] == "timer_fired" and e["detail"].get("properties") == {"notify": "task"}
               for e in deployed.get(f"/cases/{case['id']}/history", as_="admin").json)


def test_a_feel_condition_on_a_missing_name_stops_the_case_naming_it(deployed):
    case = complete(deployed, start(deployed), "Task_Assess", {"risk": False})
    case = complete(deployed, case, "Task_AgreePlan", {"plan_agreed": True})
    response = deployed.post(f"/cases/{case['id']}/messages", json={"name": "family_update", "data": {}},
                             as_="admin")
    assert response.json["status"] == "error"
    assert "'family_engaged' is not in the case data" in response.json["error"]["message"]


def test_immediate_risk_runs_in_a_zeebe_pathway(deployed):
    case = start(deployed)
    response = deployed.post(f"/cases/{case['id']}/messages",
                             json={"name": "immediate_risk", "data": {"what_happened": "A disclosure"}}, as_="admin")
    assert response.status_code == 200, response.json
    assert [t["name"] for t in response.json["tasks"]] == ["Task_Urgent"]


def test_mappings_scope_the_engines_data_as_camunda_8_does(frozen_clock):
    """What conditions and later steps see (the engine's data; the case record keeps every answer given):
    an input is the element's own, and a call activity that does not propagate all child variables hands
    back only its outputs."""
    files = {name: content for name, content in fixture_files().items()}
    process = build_bundle(files).processes["c8_review"]
    workflow, snap = runtime.start(process, dict(START))
    assert (snap.data["task_heading"], snap.data["task_kind"]) == ("Amy (1 needs)", "Assessment")
    snap = runtime.complete_task(workflow, workflow.script_engine, snap.tasks[0].id, {"risk": False})
    assert "task_heading" not in snap.data and "task_kind" not in snap.data
    assert snap.data["plan_weeks"] == 2  # the call activity's input
    snap = runtime.complete_task(workflow, workflow.script_engine, snap.tasks[0].id,
                                 {"plan_agreed": True, "plan_notes": "Weekly visits"})
    assert (snap.data["plan_agreed"], snap.data["weeks_planned"]) == (True, 2)
    assert "plan_notes" not in snap.data and "plan_weeks" not in snap.data


# -- refused at deploy, naming the element --------------------------------------------------------

SERVICE_TASK = """<bpmn:serviceTask id="Task_Send" name="Send a letter">
      <bpmn:extensionElements><zeebe:taskDefinition type="send-letter" /></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:userTask id="Task_Assess\""""

REFUSALS = {
    "job worker service task": (
        {'<bpmn:userTask id="Task_Assess"': SERVICE_TASK}, "Task_Send", "a job worker would run this step"),
    "job worker message end": (
        {'<bpmn:endEvent id="Event_NoPlan" name="No plan">\n      <bpmn:extensionElements>':
         '<bpmn:endEvent id="Event_NoPlan" name="No plan">\n      <bpmn:extensionElements>'
         '<zeebe:taskDefinition type="publish-message" />'},
        "Event_NoPlan", "remove the task definition: the service sends the message itself"),
    "candidate groups read from the case": (
        {'candidateGroups="=[&quot;team_manager&quot;]"': 'candidateGroups="=approvers"'},
        "Task_Approve", "must be fixed role names"),
    "candidate users": (
        {'candidateGroups="front_door"': 'candidateGroups="front_door" candidateUsers="alice"'},
        "Task_Urgent", "candidate users are not supported"),
    "embedded form not in the diagram": (
        {'<zeebe:formDefinition formId="c8_assess" />': '<zeebe:formDefinition formKey="camunda-forms:bpmn:Form_1" />'},
        "Task_Assess", "the embedded form 'Form_1' is not in the diagram (no zeebe:userTaskForm has that id)"),
    "embedded form that is not a form": (
        {'<bpmn:documentation>Every Camunda 8 construct the service runs, in one small pathway.</bpmn:documentation>':
         '<bpmn:extensionElements><zeebe:userTaskForm id="UserTaskForm_Bad">{"id": "bad", "components": 3}'
         '</zeebe:userTaskForm></bpmn:extensionElements>'},
        "UserTaskForm_Bad", "the embedded form has no 'components' list"),
    "external form": (
        {'<zeebe:formDefinition formId="c8_assess" />':
         '<zeebe:formDefinition externalReference="https://forms.example/assess" />'},
        "Task_Assess", "the form is on another web site"),
    "form id not deployed": (
        {'formId="c8_assess"': 'formId="c8_not_there"'}, "Task_Assess", "the form 'c8_not_there' is not deployed"),
    "FEEL syntax in a condition": (
        {'=level = "acute" and risk': '=level = "acute" and'}, "Flow_ToApprove", "is not a valid FEEL expression"),
    "unknown function in a mapping": (
        {'source="=needs * 2"': 'source="=frobnicate(needs)"'}, "Call_Plan", "unknown function 'frobnicate'"),
    "bad timer": (
        {'=duration("P3D")': '=duration("P3D"'}, "Event_Remind", "timer"),
    "bad due date": (
        {'dueDate="2027-01-04T09:00:00Z"': 'dueDate="next tuesday"'}, "Task_Approve", "dueDate"),
    "decision not deployed": (
        {'decisionId="test_level"': 'decisionId="no_such_table"'}, "Task_Level", "'no_such_table' is not deployed"),
    "called process not deployed": (
        {'processId="c8_plan"': 'processId="c8_nowhere"'}, "Call_Plan", "'c8_nowhere' is not deployed"),
    "zeebe script without result": (
        {' resultVariable="summary_line"': ''}, "Task_Summarise", "needs a result variable"),
    "execution listener": (
        {'<zeebe:calledDecision': '<zeebe:executionListeners><zeebe:executionListener eventType="start" '
                                  'type="audit" /></zeebe:executionListeners><zeebe:calledDecision'},
        "Task_Level", "execution listeners call job workers"),
    "no outcome on an end": (
        {'<zeebe:property name="outcome" value="no_plan" />': ''}, "Event_NoPlan", "names its outcome"),
    "no immediate risk sub-process": (
        {'name="immediate_risk"': 'name="immediate_danger"'}, "c8_review", "does not catch the message 'immediate_risk'"),
    "a candidate group too long for its column": (
        {'candidateGroups="front_door"': 'candidateGroups="' + "x" * 100 + '"'}, "Task_Urgent",
        "the candidate group (a role) has 100 characters"),
    "an outcome too long for its column": (
        {'value="no_plan"': 'value="' + "n" * 100 + '"'}, "Event_NoPlan", "the outcome has 100 characters"),
    "task without a role": (
        {'<zeebe:assignmentDefinition candidateGroups="front_door" />': ''}, "Task_Urgent", "has no role"),
}


@pytest.mark.parametrize("change, element, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_what_cannot_run_is_refused_naming_the_element(api, change, element, message):
    response = upload(api, fixture_files(**change))
    assert response.status_code == 400, response.json
    found = [(e["element"], e["message"]) for e in response.json["errors"]]
    assert any(e == element and message in m for e, m in found), found


@pytest.mark.parametrize("expression, value", [
    ('=cycle(duration("P3M"))', "R/P3M"), ('=cycle(4, duration("P7D"))', "R4/P7D"),
    ('=duration("P3D")', "P3D"), ('=date(review_date) + duration("P7D")', "2027-01-11"),
    ('=working_days(1, review_date)', "2027-01-05T09:00:00+00:00")])
def test_feel_timer_expressions_give_the_iso_text_the_timers_read(frozen_clock, expression, value):
    from service.engine import timers
    timers.check_timer_expression(expression)
    assert timers.timer_value(expression, {"review_date": "2027-01-04"}) == value


EACH_CHILD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Definitions_C8Each" targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" exporterVersion="5.28.0" modeler:executionPlatform="Camunda Cloud" modeler:executionPlatformVersion="8.6.0">
  <bpmn:message id="Message_ImmediateRisk" name="immediate_risk" />
  <bpmn:process id="c8_each_child" name="See each child" isExecutable="true">
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Task_SeeChild" name="See the child">
      <bpmn:extensionElements>
        <zeebe:userTask />
        <zeebe:assignmentDefinition candidateGroups="social_worker" />
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing>
      <bpmn:multiInstanceLoopCharacteristics>
        <bpmn:extensionElements>
          <zeebe:loopCharacteristics inputCollection="=children" inputElement="child" OUTPUT />
        </bpmn:extensionElements>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_Seen">
      <bpmn:extensionElements><zeebe:properties><zeebe:property name="outcome" value="seen" /></zeebe:properties></bpmn:extensionElements>
      <bpmn:incoming>Flow_2</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_SeeChild" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_SeeChild" targetRef="Event_Seen" />
    <bpmn:subProcess id="Sub_ImmediateRisk" triggeredByEvent="true">
      <bpmn:startEvent id="Event_Risk"><bpmn:outgoing>Flow_R1</bpmn:outgoing><bpmn:messageEventDefinition id="Def_Risk" messageRef="Message_ImmediateRisk" /></bpmn:startEvent>
      <bpmn:userTask id="Task_Urgent" name="Urgent referral">
        <bpmn:extensionElements><zeebe:assignmentDefinition candidateGroups="front_door" /></bpmn:extensionElements>
        <bpmn:incoming>Flow_R1</bpmn:incoming><bpmn:outgoing>Flow_R2</bpmn:outgoing>
      </bpmn:userTask>
      <bpmn:endEvent id="Event_Referred"><bpmn:incoming>Flow_R2</bpmn:incoming></bpmn:endEvent>
      <bpmn:sequenceFlow id="Flow_R1" sourceRef="Event_Risk" targetRef="Task_Urgent" />
      <bpmn:sequenceFlow id="Flow_R2" sourceRef="Task_Urgent" targetRef="Event_Referred" />
    </bpmn:subProcess>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_zeebe_multi_instance_runs_once_per_item_of_its_feel_collection(api):
    response = upload(api, {"each_child.bpmn": EACH_CHILD.replace(" OUTPUT", "").encode()})
    assert response.status_code == 201, response.json
    children = [{"name": "Amy"}, {"name": "Ben"}]
    case = api.post("/cases", json={"process": "c8_each_child", "reference": "C8-2", "data": {"children": children}}).json
    assert sorted(t["title"] for t in case["tasks"]) == ["See the child: Amy", "See the child: Ben"]
    for task in case["tasks"]:
        seen = "yes" if task["title"].endswith("Amy") else "not at home"
        done = api.post(f"/tasks/{task['id']}/complete", json={"data": {"seen": seen}}).json
    assert (done["status"], done["data"]["outcome"]) == ("completed", "seen")
    assert [a["seen"] for a in done["data"]["child_answers"]] == ["yes", "not at home"]


def test_a_zeebe_output_collection_keeps_each_instances_output_element_at_its_items_place(api):
    diagram = EACH_CHILD.replace("OUTPUT", 'outputCollection="seen_all" outputElement="={child: child.name, seen: seen}"')
    response = upload(api, {"each_child.bpmn": diagram.encode()})
    assert response.status_code == 201, response.json
    children = [{"name": "Amy"}, {"name": "Ben"}, {"name": "Cal"}]
    case = api.post("/cases", json={"process": "c8_each_child", "reference": "C8-3", "data": {"children": children}}).json
    by_title = {t["title"]: t["id"] for t in case["tasks"]}
    for title, seen in (("See the child: Cal", "yes"), ("See the child: Amy", "not at home")):
        case = api.post(f"/tasks/{by_title[title]}/complete", json={"data": {"seen": seen}}).json
    assert case["status"] == "active" and [t["title"] for t in case["tasks"]] == ["See the child: Ben"]
    done = api.post(f"/tasks/{by_title['See the child: Ben']}/complete", json={"data": {"seen": "asleep"}}).json
    assert (done["status"], done["data"]["outcome"]) == ("completed", "seen")
    assert done["data"]["seen_all"] == [{"child": "Amy", "seen": "not at home"}, {"child": "Ben", "seen": "asleep"},
                                        {"child": "Cal", "seen": "yes"}]  # in the children's order, not the visits'
    assert [a["seen"] for a in done["data"]["child_answers"]] == ["not at home", "asleep", "yes"]


@pytest.mark.parametrize("output, says", [
    ('outputCollection="seen_all"', "an output collection and an output element go together"),
    ('outputCollection="seen all" outputElement="=seen"', "the output collection 'seen all' is not a name"),
    ('outputCollection="seen_all" outputElement="=frobnicate(seen)"', "unknown function 'frobnicate'")])
def test_a_zeebe_output_collection_that_cannot_run_is_refused(api, output, says):
    response = upload(api, {"each_child.bpmn": EACH_CHILD.replace("OUTPUT", output).encode()})
    assert response.status_code == 400
    assert any(e["element"] == "Task_SeeChild" and says in e["message"]
               for e in response.json["errors"]), response.json


# -- messages correlated by zeebe:subscription correlationKey -------------------------------------------------

def c8_diagram(key: str, body: str, messages: str) -> bytes:
    """A Camunda 8 process ``key`` around ``body`` (flow nodes and flows), catching immediate risk."""
    risk = EACH_CHILD[EACH_CHILD.index('<bpmn:subProcess id="Sub_ImmediateRisk"'):EACH_CHILD.index("</bpmn:process>")]
    head = EACH_CHILD[:EACH_CHILD.index('  <bpmn:message id="Message_ImmediateRisk"')]
    return (head.replace("Definitions_C8Each", f"Definitions_{key}")
            + '  <bpmn:message id="Message_ImmediateRisk" name="immediate_risk" />\n' + messages
            + f'  <bpmn:process id="{key}" name="{key}" isExecutable="true">\n{body}\n{risk}'
            + "  </bpmn:process>\n</bpmn:definitions>\n").encode()


KEYED = ('  <bpmn:message id="Message_Report" name="school_report"><bpmn:extensionElements>'
         '<zeebe:subscription correlationKey="=child_ref" /></bpmn:extensionElements></bpmn:message>\n')

C8_RECEIVER = c8_diagram("c8_receiver", """
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:receiveTask id="Task_Wait" name="Wait for the school" messageRef="Message_Report">
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:receiveTask>
    <bpmn:userTask id="Task_Read" name="Read the report">
      <bpmn:extensionElements><zeebe:userTask /><zeebe:assignmentDefinition candidateGroups="social_worker" />
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_2</bpmn:incoming><bpmn:outgoing>Flow_3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_Read">
      <bpmn:extensionElements><zeebe:properties><zeebe:property name="outcome" value="read" /></zeebe:properties>
      </bpmn:extensionElements><bpmn:incoming>Flow_3</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Wait" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Wait" targetRef="Task_Read" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Task_Read" targetRef="Event_Read" />""", KEYED)

C8_SENDER = c8_diagram("c8_sender", """
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Task_Write" name="Write the report">
      <bpmn:extensionElements><zeebe:userTask /><zeebe:assignmentDefinition candidateGroups="social_worker" />
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_Sent">
      <bpmn:extensionElements><zeebe:properties><zeebe:property name="outcome" value="sent" /></zeebe:properties>
      </bpmn:extensionElements><bpmn:incoming>Flow_2</bpmn:incoming>
      <bpmn:messageEventDefinition id="Def_Send" messageRef="Message_Report" />
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Write" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Write" targetRef="Event_Sent" />""", KEYED)


def open_names(api, case_id: int) -> list[str]:
    return [t["name"] for t in api.get(f"/cases/{case_id}", as_="admin").json["tasks"]]


def test_a_message_sent_with_a_correlation_key_reaches_only_the_case_waiting_with_that_key(api):
    assert upload(api, {"c8_receiver.bpmn": C8_RECEIVER}).status_code == 201
    ids = {}
    for ref, reference in (("A1", "C8-A"), (12, "C8-B"), ("C3", "C8-C"), ("C3", "C8-D")):
        case = api.post("/cases", json={"process": "c8_receiver", "reference": reference,
                                        "data": {"child_ref": ref}}).json
        assert case["tasks"] == [] and case["status"] == "active", case
        ids[reference] = case["id"]
    answer = api.post("/messages", json={"name": "school_report", "correlation_key": "A1",
                                         "data": {"attendance": 88}}, as_="admin")
    assert answer.status_code == 200, answer.json
    assert answer.json == {"reached": [ids["C8-A"]], "started": []}
    assert open_names(api, ids["C8-A"]) == ["Task_Read"] and open_names(api, ids["C8-B"]) == []
    number = api.post("/messages", json={"name": "school_report", "correlation_key": "12"}, as_="admin")
    assert number.json["reached"] == [ids["C8-B"]]  # keys compare as text, as Camunda 8's do
    ambiguous = api.post("/messages", json={"name": "school_report", "correlation_key": "C3"}, as_="admin")
    assert ambiguous.status_code == 409 and ambiguous.json["matched"] == [ids["C8-C"], ids["C8-D"]]
    missing = api.post("/messages", json={"name": "school_report", "correlation_key": "Z9"}, as_="admin")
    assert missing.status_code == 409
    assert missing.json["message"] == ("no case waits for the message 'school_report' with correlation key 'Z9', "
                                       "and no pathway starts with it")
    bad = api.post("/messages", json={"name": "school_report", "correlation_key": {"a": 1}}, as_="admin")
    assert bad.status_code == 422


def test_a_keyed_message_more_cases_could_take_than_a_list_counts_is_refused(api, monkeypatch):
    """Past the lists' cap of cases of versions that wait for the message with a key, a keyed message is refused
    (422 on ``correlation_key``), each case's key being read from its data, and nothing is delivered."""
    from service import paging

    assert upload(api, {"c8_receiver.bpmn": C8_RECEIVER}).status_code == 201
    ids = [api.post("/cases", json={"process": "c8_receiver", "reference": f"C8-{n}", "data": {"child_ref": "A1"}}
                    ).json["id"] for n in range(2)]
    monkeypatch.setattr(paging, "COUNT_CAP", 1)
    refused = api.post("/messages", json={"name": "school_report", "correlation_key": "A1", "all": True},
                       as_="admin")
    assert refused.status_code == 422, refused.json
    assert "send the message to the case" in refused.json["errors"]["correlation_key"]
    assert all(open_names(api, case_id) == [] for case_id in ids)
    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    answer = api.post("/messages", json={"name": "school_report", "correlation_key": "A1", "all": True},
                      as_="admin")
    assert answer.status_code == 200 and answer.json["reached"] == ids, answer.json


def test_the_versions_a_keyed_message_could_reach_are_probed_each_by_its_first_wait(api):
    """Which versions of the council have a case waiting for the message: for each version, its first entry of
    ``case_waits`` in the index's order. With ``EXISTS`` (or a bare ``LIMIT 1``) PostgreSQL's statistics, which see
    nearly every wait of one version, made it read every case's wait for the name for each other version: 450 ms at
    a million cases waiting for immediate risk once the council had three versions, 4 ms this way (a plan a test's
    few rows cannot show, so the statement is checked)."""
    from sqlalchemy import event

    from service.models import db

    assert upload(api, {"c8_receiver.bpmn": C8_RECEIVER}).status_code == 201
    sent = []
    seen = lambda conn, cursor, statement, *args: sent.append(" ".join(statement.split()))  # noqa: E731
    with api.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        api.post("/messages", json={"name": "school_report", "correlation_key": "A1"}, as_="admin")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    [probe] = [s for s in sent if s.startswith("SELECT process_versions.") and "FROM case_waits" in s]
    assert "ORDER BY case_waits.case_id LIMIT" in probe and "EXISTS" not in probe, probe


def test_a_keyed_message_reads_only_the_cases_that_could_take_it_a_batch_at_a_time(api, monkeypatch):
    """A message with a correlation key is for the cases that wait for it with a key (Camunda 8): the cases of a
    version that waits for the same message without one are neither read nor decrypted (every case waits for the
    immediate-risk message, and a council holds hundreds of thousands). The others are read a batch at a time, and
    a match in a later batch is found as one in the first."""
    from sqlalchemy import event

    from service import cases as case_service
    from service.models import Case

    unkeyed = C8_RECEIVER.decode().replace(KEYED, '  <bpmn:message id="Message_Report" name="school_report" />\n')
    unkeyed = (unkeyed.replace('"c8_receiver"', '"c8_unkeyed"')
               .replace("Definitions_c8_receiver", "Definitions_c8_unkeyed"))
    assert upload(api, {"c8_receiver.bpmn": C8_RECEIVER, "c8_unkeyed.bpmn": unkeyed.encode()}).status_code == 201
    keyed = [api.post("/cases", json={"process": "c8_receiver", "reference": f"C8-{n}", "data": {"child_ref": ref}}
                      ).json["id"] for n, ref in enumerate(("B2", "A1", "B2"))]
    other = [api.post("/cases", json={"process": "c8_unkeyed", "reference": f"UN-{n}",
                                      "data": {"child_ref": "B2"}}).json["id"] for n in range(2)]
    monkeypatch.setattr(case_service, "WAITING_BATCH", 1)
    read = []
    listen = lambda target, context: read.append(target.id)  # noqa: E731
    event.listen(Case, "load", listen)
    try:
        answer = api.post("/messages", json={"name": "school_report", "correlation_key": "B2", "all": True},
                          as_="admin")
    finally:
        event.remove(Case, "load", listen)
    assert answer.status_code == 200 and answer.json["reached"] == [keyed[0], keyed[2]], answer.json
    assert not set(read) & set(other), read
    assert open_names(api, other[0]) == [] and open_names(api, keyed[2]) == ["Task_Read"]


def test_a_message_a_case_throws_reaches_only_the_cases_waiting_with_its_key_whatever_their_family(api):
    assert upload(api, {"c8_receiver.bpmn": C8_RECEIVER, "c8_sender.bpmn": C8_SENDER}).status_code == 201
    waiting = {ref: api.post("/cases", json={"process": "c8_receiver", "reference": f"C8-{ref}",
                                             "data": {"child_ref": ref}}).json["id"] for ref in ("A1", "B2")}
    sender = api.post("/cases", json={"process": "c8_sender", "reference": "SCHOOL-1", "data": {}}).json
    done = complete(api, sender, "Task_Write", {"child_ref": "B2", "attendance": 64})
    assert (done["status"], done["outcome"]) == ("completed", "sent")
    sent = [e for e in api.get(f"/cases/{sender['id']}/history", as_="admin").json if e["event"] == "message_sent"]
    assert sent[0]["detail"]["to_cases"] == [waiting["B2"]]
    assert open_names(api, waiting["B2"]) == ["Task_Read"] and open_names(api, waiting["A1"]) == []
    assert api.get(f"/cases/{waiting['B2']}", as_="admin").json["data"]["attendance"] == 64


# -- forms embedded in the diagram (zeebe:userTaskForm) ---------------------------------------------------------

def embedded_form_files() -> dict[str, bytes]:
    """c8_review with the assessment's form embedded in the diagram, as Camunda Modeler 5 saves it, not linked."""
    from xml.sax.saxutils import escape

    form = (FIXTURES / "c8_assess.form").read_text()
    files = fixture_files(**{
        '<zeebe:formDefinition formId="c8_assess" />':
            '<zeebe:formDefinition formKey="camunda-forms:bpmn:UserTaskForm_Assess" />',
        '<bpmn:documentation>Every Camunda 8 construct the service runs, in one small pathway.</bpmn:documentation>':
            '<bpmn:documentation>Every Camunda 8 construct the service runs, in one small pathway.</bpmn:documentation>'
            f'<bpmn:extensionElements><zeebe:userTaskForm id="UserTaskForm_Assess">{escape(form)}'
            '</zeebe:userTaskForm></bpmn:extensionElements>'})
    del files["c8_assess.form"]
    return files


def test_a_form_embedded_in_the_diagram_is_the_tasks_form_as_a_linked_one_is(api):
    response = upload(api, embedded_form_files())
    assert response.status_code == 201, response.json
    case = start(api)
    [task] = case["tasks"]
    form = api.get(f"/tasks/{task['id']}", as_="worker").json["form"]
    assert [f["key"] for f in form["fields"]] == ["risk", "summary"]
    refused = api.post(f"/tasks/{task['id']}/complete", json={"data": {"risk": "perhaps"}}, as_="worker")
    assert refused.status_code == 422 and "risk" in refused.json["errors"]  # the embedded form's checkbox
    done = complete(api, case, "Task_Assess", {"risk": True, "summary": "Seen at home"})
    assert done["data"]["level"] == "acute" and [t["name"] for t in done["tasks"]] == ["Task_Approve"]
