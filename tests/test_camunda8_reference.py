"""The Camunda 8 reference pathway behaves as its Camunda 7 original: bpmn/examples/camunda8/somerset_step_in_c8.bpmn
is bpmn/somerset_step_in.bpmn redrawn for Camunda 8 (zeebe: extensions, = FEEL, forms linked by form id, the same
lanes, documentation and diagram). Each scenario runs on both through the REST API; after every step the open
tasks (with roles and due dates), the timers, the status, the outcome, the decisions' rules and the hand-overs
must be the same. The Camunda 8 copy lives outside bpmn/'s top folder, so the demo does not deploy it as a
second Step-In of Somerset.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from somerset_helpers import CONSENT, CONSENT_GIVEN, CP_REFERRAL, URGENT_REFERRAL, Somerset, level, london

ROOT = Path(__file__).resolve().parents[1]
C7, C8 = "somerset_step_in", "somerset_step_in_c8"
COPY = ROOT / "bpmn" / "examples" / "camunda8" / f"{C8}.bpmn"
START = {"family_name": "Green", "service_requested": "family_intervention_service",
         "step_in_need": "Routines and debt in the TAF plan", "support_so_far": "PFSA six months"}
REQUEST = {"eha_and_plan_sent": True, "taf_meeting_date": "2027-01-20", "taf_meeting_time": "10:00",
           "taf_meeting_location": "Oak Primary School"}
BOOKING = {"service_representative": "FIS worker", "information_provided": True}


@pytest.fixture
def som(pathways, frozen_clock):
    response = pathways.deploy([COPY])
    assert response.status_code == 201, response.json
    frozen_clock.move_to(london(2027, 1, 11, 9, 0))
    return Somerset(pathways, frozen_clock)


class Run:
    """One case of one of the two diagrams, with what could be seen after each step."""

    def __init__(self, som: Somerset, key: str) -> None:
        self.som, self.key, self.trace = som, key, []
        som.clock.move_to(london(2027, 1, 11, 9, 0))  # each case from the same moment
        self.cid = som.start(key, START, "lead_practitioner", reference=f"SOM-{key}")["id"]
        self.look("started")

    def look(self, step: str) -> None:
        case = self.som.case(self.cid)
        tasks = sorted((t["name"], tuple(t["roles"]), t["due_at"]) for t in case["tasks"])
        handed = [(c["process"], c["reference"] == f"SOM-{self.key}", sorted(t["name"] for t in c["tasks"]))
                  for c in self.som.handed_on(self.cid)]
        self.trace.append((step, case["status"], case.get("outcome"), tasks, self.som.timers(self.cid),
                           self.som.rules(self.cid), handed))

    def complete(self, name: str, data: dict) -> None:
        self.som.complete(self.cid, name, data)
        self.look(name)

    def message(self, name: str, data: dict) -> None:
        self.som.message(self.cid, name, data)
        self.look(name)

    def fire(self, at) -> None:
        self.som.fire(at)
        self.look(f"timers at {at}")

    @property
    def outcome(self):
        return self.trace[-1][2]


def to_meeting(run: Run) -> None:
    run.complete("Task_RecordConsent", CONSENT_GIVEN)
    run.complete("Task_SendStepInRequest", REQUEST)
    run.complete("Task_BookRepresentative", BOOKING)


def joins(run: Run) -> None:
    to_meeting(run)
    run.fire(london(2027, 1, 21, 9, 0))
    run.fire(london(2027, 1, 27, 9, 0))
    run.complete("Task_TafMeetingWithService", {**level(escalating=True, needs=3), "service_role": "join",
                                                "service_advice": "FIS to join for 12 weeks"})
    run.complete("Task_UpdatePlan", {"plan_updated": True, "next_taf_date": "2027-03-01"})


def advice_only(run: Run) -> None:
    to_meeting(run)
    run.complete("Task_TafMeetingWithService", {**level(needs=2), "service_role": "advice_only",
                                                "service_advice": "Advice on routines"})
    run.complete("Task_UpdatePlan", {"plan_updated": True, "next_taf_date": "2027-03-01"})


def acute(run: Run) -> None:
    to_meeting(run)
    run.complete("Task_TafMeetingWithService", {**level(impaired=True), "service_role": "join",
                                                "service_advice": "Social work input required"})


def significant_harm(run: Run) -> None:
    to_meeting(run)
    run.complete("Task_TafMeetingWithService", {**level(risk="yes"), "service_role": "join",
                                                "service_advice": "Disclosure at the meeting"})
    run.complete("Task_ChildProtectionReferral", CP_REFERRAL)


def refused(run: Run) -> None:
    run.complete("Task_RecordConsent", CONSENT["refused"])


def immediate_risk(run: Run) -> None:
    run.complete("Task_RecordConsent", CONSENT_GIVEN)
    run.complete("Task_SendStepInRequest", REQUEST)
    run.message("immediate_risk", {"what_happened": "Injury seen"})
    run.complete("Task_UrgentReferral", URGENT_REFERRAL)


SCENARIOS = {"joins": (joins, "joined"), "advice only": (advice_only, "no_role"), "acute": (acute, "stepped_up"),
             "significant harm": (significant_harm, "stepped_up"), "consent refused": (refused, "no_role"),
             "immediate risk": (immediate_risk, "safeguarding_referral")}


@pytest.mark.parametrize("scenario, outcome", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_both_dialects_give_the_same_tasks_due_dates_timers_and_outcome(som, scenario, outcome):
    original = Run(som, C7)
    scenario(original)
    copy = Run(som, C8)
    scenario(copy)
    assert original.outcome == copy.outcome == outcome
    for seen_c7, seen_c8 in zip(original.trace, copy.trace, strict=True):
        assert seen_c7 == seen_c8


def test_the_copys_start_form_is_its_linked_form(som):
    response = som.start(C8, {"family_name": "Green"}, "lead_practitioner", status=422)
    assert {"service_requested", "step_in_need"} <= set(response["errors"])


def test_the_meeting_due_date_and_timers_come_from_feel_in_the_copy(som):
    run = Run(som, C8)
    to_meeting(run)
    assert som.due(run.cid, "Task_TafMeetingWithService") == london(2027, 1, 20, 9, 0)  # dueDate="=taf_meeting_date"
    assert som.timers(run.cid) == {"Event_MeetingReminder": london(2027, 1, 21, 9, 0),  # =working_days(1, ...)
                                   "Event_MeetingEscalation": london(2027, 1, 27, 9, 0)}


def test_the_copy_is_a_camunda_8_diagram_with_the_originals_lanes_forms_and_diagram():
    ns = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "zeebe": "http://camunda.org/schema/zeebe/1.0",
          "camunda": "http://camunda.org/schema/1.0/bpmn", "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}
    copy, original = etree.parse(str(COPY)).getroot(), etree.parse(str(ROOT / "bpmn" / f"{C7}.bpmn")).getroot()
    assert copy.get("{http://camunda.org/schema/modeler/1.0}executionPlatform") == "Camunda Cloud"
    assert not copy.xpath("//camunda:*|//@camunda:*", namespaces=ns)
    assert (copy.xpath("//bpmn:lane/@name", namespaces=ns) == original.xpath("//bpmn:lane/@name", namespaces=ns))
    assert (len(copy.xpath("//bpmndi:BPMNShape", namespaces=ns))
            == len(original.xpath("//bpmndi:BPMNShape", namespaces=ns)) > 0)
    assert (sorted(copy.xpath("//zeebe:formDefinition/@formId", namespaces=ns))
            == sorted(original.xpath("//@camunda:formRef", namespaces=ns)))
    assert len(copy.xpath("//bpmn:documentation", namespaces=ns)) == len(original.xpath("//bpmn:documentation",
                                                                                       namespaces=ns))
