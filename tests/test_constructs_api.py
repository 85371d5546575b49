"""Each BPMN construct through the REST API: deploy, start, act, then the path taken (the case's history), the
open tasks and the outcome; and each construct the service cannot run refused at deploy, naming the element.

The engine-level tests of the same constructs (every element run, in order) are in test_engine_constructs.py;
these prove the service drives them: messages and signals routed between cases, timers fired by the sweep.
"""
from __future__ import annotations

import pytest

from conftest import FIXTURES, sqlite_only
from constructs_support import deploy, end, event, message, pathway, start, task, timer
from constructs_support import parallel_answers as draw_parallel_answers
from service import scheduler


#: SQLite only (conftest.sqlite_only): PostgreSQL is covered by Halton's step down and the API tests.
database_url = sqlite_only()


class Walk:
    """One case, driven through the API as a worker (or ``as_``)."""

    def __init__(self, api, process: str, data: dict | None = None, reference: str = "FAM-1", case_id=None,
                 as_: str = "worker") -> None:
        self.api, self.as_ = api, as_
        if case_id is None:
            response = api.post("/cases", json={"process": process, "reference": reference, "data": data or {}},
                                as_=as_)
            assert response.status_code == 201, response.json
            case_id = response.json["id"]
        self.id = case_id

    @property
    def case(self) -> dict:
        return self.api.get(f"/cases/{self.id}", as_="admin").json

    @property
    def open(self) -> list[str]:
        return sorted(t["name"] for t in self.case["tasks"])

    def complete(self, name: str, data: dict | None = None, title: str | None = None) -> dict:
        found = next(t for t in self.case["tasks"] if t["name"] == name and (title is None or t["title"] == title))
        response = self.api.post(f"/tasks/{found['id']}/complete", json={"data": data or {}}, as_="admin")
        assert response.status_code == 200, response.json
        return response.json

    def message(self, name: str, data: dict | None = None):
        return self.api.post(f"/cases/{self.id}/messages", json={"name": name, "data": data or {}}, as_="admin")

    @property
    def history(self) -> list[tuple[str, str | None]]:
        """(event, task or message/signal name) of each entry of the case's history, in order."""
        entries = self.api.get(f"/cases/{self.id}/history", as_="admin").json
        return [(e["event"], e["task"] or e["detail"].get("name")) for e in entries]

    @property
    def path(self) -> list[str]:
        """The steps people took and the events the case caught, in order, from the history."""
        return [name or event for event, name in self.history
                if event in ("task_completed", "message_received", "signal_received", "timer_fired")]


def deployed(api, *names: str, **diagrams: bytes):
    files = [(f"{n}.bpmn", (FIXTURES / "constructs" / f"{n}.bpmn").read_bytes()) for n in names]
    files += [(f"{key}.bpmn", content) for key, content in diagrams.items()]
    response = deploy(api, *files)
    assert response.status_code == 201, response.json
    return response


def refused(api, key: str, diagram: bytes) -> list[tuple[str | None, str]]:
    response = deploy(api, (f"{key}.bpmn", diagram))
    assert response.status_code == 400, response.json
    return [(e["element"], e["message"]) for e in response.json["errors"]]


# -- terminate, error and link events ---------------------------------------------------------------

def test_a_terminate_end_event_ends_the_case_with_its_outcome_and_stops_the_other_branch(api, frozen_clock, app):
    deployed(api, "terminate_end")
    case = Walk(api, "terminate_end")
    assert case.open == ["Task_Assess", "Task_Visit"] and len(case.case["timers"]) == 1
    case.complete("Task_Assess", {"withdrawn": True})
    found = case.case
    assert (found["status"], found["outcome"], found["tasks"], found["timers"]) == ("completed", "withdrawn", [], [])
    frozen_clock.advance(days=6)
    assert scheduler.fire_due(app) == 0  # the sweep finds nothing of the ended case
    assert case.path == ["Task_Assess"] and case.history[-1] == ("case_completed", None)


def test_an_error_end_event_nothing_catches_stops_the_case_with_its_code(api):
    deployed(api, "error_end")
    case = Walk(api, "error_end")
    case.complete("Task_CheckPlacement", {"safe": False})
    found = case.case
    assert found["status"] == "error" and found["error"]["element"] == "Event_PlacementUnsafe"
    assert "PLACEMENT_UNSAFE" in found["error"]["message"] and found["outcome"] is None
    assert case.history[-1][0] == "error"


def test_a_link_event_goes_on_at_its_catching_link(api):
    deployed(api, "link_events")
    case = Walk(api, "link_events")
    case.complete("Task_Assess")
    assert case.open == ["Task_Review"]
    case.complete("Task_Review")
    assert case.case["outcome"] == "reviewed" and case.path == ["Task_Assess", "Task_Review"]


# -- event-based gateway, messages, receive and send tasks -------------------------------------------

def test_an_event_based_gateway_takes_the_message_or_the_timer(api, app, frozen_clock):
    deployed(api, "event_gateway")
    replied, silent = Walk(api, "event_gateway", reference="FAM-1"), Walk(api, "event_gateway", reference="FAM-2")
    for case in (replied, silent):
        case.complete("Task_AskConsent")
        assert case.open == [] and [t["name"] for t in case.case["timers"]] == ["Event_TenDays"]
    assert replied.message("family_reply", {"consent": True}).status_code == 200
    assert replied.open == ["Task_ReadReply"] and replied.case["timers"] == []
    frozen_clock.advance(days=11)
    assert scheduler.fire_due(app) == 1  # the silent family's ten days; the replied case's timer went
    assert silent.open == ["Task_ChaseUp"] and silent.message("family_reply").status_code == 409
    replied.complete("Task_ReadReply")
    silent.complete("Task_ChaseUp")
    assert (replied.case["outcome"], silent.case["outcome"]) == ("replied", "chased")
    assert replied.path == ["Task_AskConsent", "family_reply", "Task_ReadReply"]
    assert silent.path == ["Task_AskConsent", "Event_TenDays", "Task_ChaseUp"]


RECEIVER = pathway("receiver", [
    start(), task("Task_AskSchool", "Ask the school"),
    '<bpmn:receiveTask id="Task_WaitForSchool" name="Wait for the school" messageRef="Message_school_report"/>',
    task("Task_ReadReport", "Read the report"), end("Event_Read", "read")],
    [("Event_Start", "Task_AskSchool"), ("Task_AskSchool", "Task_WaitForSchool"),
     ("Task_WaitForSchool", "Task_ReadReport"), ("Task_ReadReport", "Event_Read")])
SENDER = pathway("sender", [
    start(), task("Task_WriteReport", "Write the report", role="education_officer"),
    '<bpmn:sendTask id="Task_SendReport" name="Send the report" messageRef="Message_school_report"/>',
    end("Event_Sent", "sent")],
    [("Event_Start", "Task_WriteReport"), ("Task_WriteReport", "Task_SendReport"), ("Task_SendReport", "Event_Sent")])


def test_a_receive_task_waits_for_the_message_a_send_task_of_another_case_sends(api):
    deployed(api, receiver=RECEIVER, sender=SENDER)
    waiting = Walk(api, "receiver")
    waiting.complete("Task_AskSchool")
    assert waiting.open == [] and waiting.case["status"] == "active"
    school = Walk(api, "sender", as_="admin")
    school.complete("Task_WriteReport", {"attendance": 92})
    assert school.case["outcome"] == "sent"
    sent = [e for e in api.get(f"/cases/{school.id}/history", as_="admin").json if e["event"] == "message_sent"]
    assert sent[0]["detail"] == {"name": "school_report", "to_cases": [waiting.id]}
    assert waiting.open == ["Task_ReadReport"] and waiting.case["data"]["attendance"] == 92
    waiting.complete("Task_ReadReport")
    assert waiting.case["outcome"] == "read"
    assert waiting.path == ["Task_AskSchool", "school_report", "Task_ReadReport"]


def test_a_receive_task_takes_a_message_sent_through_the_api(api):
    deployed(api, receiver=RECEIVER)
    case = Walk(api, "receiver")
    assert case.message("school_report").status_code == 409  # not yet waiting: the task before is open
    case.complete("Task_AskSchool")
    assert case.message("school_report", {"attendance": 80}).status_code == 200
    assert case.open == ["Task_ReadReport"] and case.case["data"]["attendance"] == 80


# -- message start events ---------------------------------------------------------------------------

REFERRER = pathway("referrer", [
    start(), task("Task_Refer", "Refer to triage"),
    event("intermediateThrowEvent", "Event_SendReferral", message("referral_received")),
    end("Event_Referred", "referred")],
    [("Event_Start", "Task_Refer"), ("Task_Refer", "Event_SendReferral"), ("Event_SendReferral", "Event_Referred")])


def test_a_message_thrown_by_a_case_starts_every_pathway_whose_message_start_event_catches_it(api):
    deployed(api, "message_start", referrer=REFERRER)
    referrer = Walk(api, "referrer", reference="FAM-7")
    referrer.complete("Task_Refer", {"concern": "neglect"})
    sent = [e for e in api.get(f"/cases/{referrer.id}/history", as_="admin").json if e["event"] == "message_sent"]
    [started] = sent[0]["detail"]["started"]
    triage = Walk(api, "message_start", case_id=started)
    found = triage.case
    assert (found["process"], found["reference"], found["started_from_case_id"]) == ("message_start", "FAM-7",
                                                                                      referrer.id)
    assert triage.open == ["Task_Triage"] and found["data"]["concern"] == "neglect"
    assert triage.history[0] == ("case_started", None)
    triage.complete("Task_Triage")
    assert triage.case["outcome"] == "triaged"


def test_a_message_sent_through_the_api_starts_the_pathways_it_starts(api):
    deployed(api, "message_start")
    assert api.post("/messages", json={"name": "referral_received", "reference": "FAM-8"},
                    as_="analyst").status_code == 403  # an analyst may not start a front-door pathway
    answer = api.post("/messages", json={"name": "referral_received", "reference": "FAM-8",
                                         "data": {"concern": "housing"}}, as_="front")
    assert answer.status_code == 200, answer.json
    [case_id] = answer.json["started"]
    case = Walk(api, "message_start", case_id=case_id)
    assert case.open == ["Task_Triage"] and case.case["reference"] == "FAM-8"
    assert api.post("/messages", json={"name": "nobody_listens", "reference": "FAM-8"},
                    as_="front").status_code == 409
    assert api.post("/messages", json={"name": "referral_received"}, as_="front").status_code == 422


# -- multi-instance, event sub-processes, conditional events ----------------------------------------

def test_a_multi_instance_task_opens_a_task_per_child_and_keeps_each_childs_answers(api):
    deployed(api, "each_child")
    case = Walk(api, "each_child", {"children": [{"name": "Amy"}, {"name": "Ben"}]})
    assert sorted(t["title"] for t in case.case["tasks"]) == ["See the child: Amy", "See the child: Ben"]
    case.complete("Task_SeeChild", {"seen": True}, title="See the child: Ben")
    case.complete("Task_SeeChild", {"seen": False}, title="See the child: Amy")
    assert [a["seen"] for a in case.case["data"]["child_answers"]] == [False, True]
    for _ in range(2):
        case.complete("Task_PlanForChild", {"plan": "support"})
    assert case.case["outcome"] == "all_seen" and case.path == ["Task_SeeChild"] * 2 + ["Task_PlanForChild"] * 2


def test_an_interrupting_timer_event_sub_process_fires_only_when_its_time_comes(api, app, frozen_clock):
    deployed(api, "event_subprocess_timer")
    case = Walk(api, "event_subprocess_timer")
    assert case.open == ["Task_Assess"]
    frozen_clock.advance(days=5, minutes=1)
    scheduler.fire_due(app)
    assert case.open == ["Task_ManagerReview"]
    case.complete("Task_ManagerReview")
    assert case.case["outcome"] == "escalated" and case.path == ["Event_FiveDays", "Task_ManagerReview"]


def test_an_escalation_event_sub_process_runs_only_when_the_escalation_is_thrown(api):
    deployed(api, "event_subprocess_escalation")
    quiet, escalated = Walk(api, "event_subprocess_escalation"), Walk(api, "event_subprocess_escalation")
    quiet.complete("Task_Assess", {"escalate": False})
    escalated.complete("Task_Assess", {"escalate": True})
    assert quiet.case["outcome"] == "assessed" and escalated.open == ["Task_ManagerTakesOver"]
    escalated.complete("Task_ManagerTakesOver")
    assert escalated.case["outcome"] == "manager"


def error_start_pathway() -> bytes:
    handler = ('<bpmn:subProcess id="SubProcess_PlacementBroke" triggeredByEvent="true">'
               + start("Event_PlacementBroke", '<bpmn:errorEventDefinition id="Def_Broke" errorRef="Error_Broke"/>')
               + task("Task_FindEmergencyPlacement", "Find an emergency placement")
               + end("Event_Placed", "emergency_placement") + "</bpmn:subProcess>")
    diagram = pathway("error_start", [
        start(), '<bpmn:subProcess id="SubProcess_Placement">' + start("Event_PlacementStart")
        + task("Task_CheckPlacement", "Check the placement")
        + '<bpmn:exclusiveGateway id="Gateway_Broke" default="Flow_Gateway_Broke_Event_PlacementOk"/>'
        + end("Event_PlacementOk") + end("Event_Broke", None, '<bpmn:errorEventDefinition id="Def_Throw" '
                                                              'errorRef="Error_Broke"/>')
        + "</bpmn:subProcess>", end("Event_Stable", "stable"), handler],
        [("Event_Start", "SubProcess_Placement"), ("Event_PlacementStart", "Task_CheckPlacement"),
         ("Task_CheckPlacement", "Gateway_Broke"), ("Gateway_Broke", "Event_Broke", "${broke}"),
         ("Gateway_Broke", "Event_PlacementOk"), ("SubProcess_Placement", "Event_Stable"),
         ("Event_PlacementBroke", "Task_FindEmergencyPlacement"), ("Task_FindEmergencyPlacement", "Event_Placed")])
    return diagram.replace(b'<bpmn:process', b'<bpmn:error id="Error_Broke" name="Broke" errorCode="BROKE"/>'
                                              b'<bpmn:process', 1)


def test_an_error_start_event_sub_process_catches_the_error_and_replaces_the_main_path(api):
    deployed(api, error_start=error_start_pathway())
    broke, stable = Walk(api, "error_start"), Walk(api, "error_start")
    broke.complete("Task_CheckPlacement", {"broke": True})
    stable.complete("Task_CheckPlacement", {"broke": False})
    assert stable.case["outcome"] == "stable" and broke.open == ["Task_FindEmergencyPlacement"]
    broke.complete("Task_FindEmergencyPlacement")
    assert broke.case["status"] == "completed" and broke.case["outcome"] == "emergency_placement"


def test_a_conditional_event_fires_when_the_data_makes_it_true(api):
    deployed(api, "conditional_event")
    case = Walk(api, "conditional_event", {"consent": False})
    case.complete("Task_AskConsent", {"consent": False})
    assert case.open == ["Task_AskConsent"]
    case.complete("Task_AskConsent", {"consent": True})
    assert case.open == ["Task_ShareInformation"]
    case.complete("Task_ShareInformation")
    assert case.case["outcome"] == "shared"


# -- transactions and ad-hoc sub-processes ------------------------------------------------------------

TRANSACTION = pathway("transaction", [
    start(), '<bpmn:transaction id="Transaction_Placement" name="Book the placement">' + start("Event_Booking")
    + task("Task_Book", "Book the placement")
    + '<bpmn:exclusiveGateway id="Gateway_Booked" default="Flow_Gateway_Booked_Event_BookingDone"/>'
    + end("Event_BookingDone") + end("Event_BookingCancelled", None, '<bpmn:cancelEventDefinition id="Cancel_End"/>')
    + "</bpmn:transaction>",
    event("boundaryEvent", "Event_PlacementCancelled", '<bpmn:cancelEventDefinition id="Cancel_Catch"/>',
          'attachedToRef="Transaction_Placement"'),
    task("Task_Rethink", "Think again"), end("Event_Placed", "placed"), end("Event_Rethought", "rethought")],
    [("Event_Start", "Transaction_Placement"), ("Event_Booking", "Task_Book"), ("Task_Book", "Gateway_Booked"),
     ("Gateway_Booked", "Event_BookingCancelled", "${not booked}"), ("Gateway_Booked", "Event_BookingDone"),
     ("Transaction_Placement", "Event_Placed"), ("Event_PlacementCancelled", "Task_Rethink"),
     ("Task_Rethink", "Event_Rethought")])


def test_a_transaction_completes_or_is_cancelled_by_its_cancel_end_event(api):
    deployed(api, transaction=TRANSACTION)
    booked, cancelled = Walk(api, "transaction"), Walk(api, "transaction")
    booked.complete("Task_Book", {"booked": True})
    cancelled.complete("Task_Book", {"booked": False})
    assert booked.case["outcome"] == "placed" and cancelled.open == ["Task_Rethink"]
    cancelled.complete("Task_Rethink")
    assert cancelled.case["outcome"] == "rethought" and cancelled.path == ["Task_Book", "Task_Rethink"]


def ad_hoc(condition: str | None = None) -> bytes:
    inner = task("Task_CallSchool", "Call the school") + task("Task_CallGp", "Call the GP")
    if condition:
        inner += f'<bpmn:completionCondition xsi:type="bpmn:tFormalExpression">{condition}</bpmn:completionCondition>'
    return pathway("ad_hoc", [start(), f'<bpmn:adHocSubProcess id="SubProcess_Checks" name="Checks">{inner}'
                                       f'</bpmn:adHocSubProcess>', end("Event_Checked", "checked")],
                   [("Event_Start", "SubProcess_Checks"), ("SubProcess_Checks", "Event_Checked")])


def test_an_ad_hoc_sub_process_with_no_completion_condition_ends_when_every_activity_is_done(api):
    deployed(api, ad_hoc=ad_hoc())
    case = Walk(api, "ad_hoc")
    assert case.open == ["Task_CallGp", "Task_CallSchool"]
    case.complete("Task_CallGp", {"gp_seen": True})
    assert case.open == ["Task_CallSchool"]
    case.complete("Task_CallSchool", {"school_seen": True})
    found = case.case
    assert found["outcome"] == "checked" and found["data"]["gp_seen"] and found["data"]["school_seen"]


def test_an_ad_hoc_sub_process_ends_when_its_completion_condition_holds(api):
    deployed(api, ad_hoc=ad_hoc("${enough}"))
    case = Walk(api, "ad_hoc", {"enough": False})
    case.complete("Task_CallSchool", {"enough": True})
    assert case.open == [] and case.case["outcome"] == "checked" and case.path == ["Task_CallSchool"]
    stopped = Walk(api, "ad_hoc")  # the condition reads what the case does not have: stopped, named
    assert stopped.case["error"]["element"] == "SubProcess_Checks"
    assert "'enough' is not in the case data" in stopped.case["error"]["message"]


# -- event sub-processes that end, and terminate inside them -------------------------------------------

def esp(key: str, definition: str, nodes: list[str], interrupting: bool = False) -> str:
    return (f'<bpmn:subProcess id="SubProcess_{key}" triggeredByEvent="true">'
            + start(f"Event_{key}Start", definition, f'isInterrupting="{str(interrupting).lower()}"')
            + "".join(nodes) + "</bpmn:subProcess>")


def test_a_terminate_end_event_in_an_event_sub_process_ends_that_sub_process_only(api):
    """BPMN 2.0.2, 13.5.6: a terminate end event in a sub-process abnormally terminates that sub-process
    instance; no higher-level sub-process or process instance is affected. An event sub-process is a
    sub-process: its terminate end ends it, and the rest of the case goes on."""
    diagram = pathway("worry", [
        start(), task("Task_Support", "Support the family"), end("Event_Supported", "supported"),
        esp("Worry", message("worry_raised"), [task("Task_CheckWorry", "Check the worry"),
                                               end("Event_WorryDealt", None,
                                                   '<bpmn:terminateEventDefinition id="Terminate_Worry"/>')])],
        [("Event_Start", "Task_Support"), ("Task_Support", "Event_Supported"),
         ("Event_WorryStart", "Task_CheckWorry"), ("Task_CheckWorry", "Event_WorryDealt")])
    deployed(api, worry=diagram)
    case = Walk(api, "worry")
    assert case.message("worry_raised").status_code == 200
    assert case.open == ["Task_CheckWorry", "Task_Support"]
    case.complete("Task_CheckWorry")
    assert case.open == ["Task_Support"] and case.case["status"] == "active"
    case.complete("Task_Support")
    assert case.case["outcome"] == "supported"
    assert case.path == ["worry_raised", "Task_CheckWorry", "Task_Support"]


def test_a_repeating_timer_event_sub_process_stops_when_the_main_path_ends_and_finishes_its_open_step(
        api, app, frozen_clock):
    diagram = pathway("reminders", [
        start(), task("Task_Plan", "Carry out the plan"), end("Event_PlanDone", "plan_done"),
        esp("Reminder", timer("timeCycle", "R/P7D"), [task("Task_Remind", "Remind the family"),
                                                       end("Event_Reminded")])],
        [("Event_Start", "Task_Plan"), ("Task_Plan", "Event_PlanDone"),
         ("Event_ReminderStart", "Task_Remind"), ("Task_Remind", "Event_Reminded")])
    deployed(api, reminders=diagram)
    case = Walk(api, "reminders")
    frozen_clock.advance(days=7, minutes=1)
    scheduler.fire_due(app)
    assert case.open == ["Task_Plan", "Task_Remind"]
    case.complete("Task_Plan")
    found = case.case  # the reminder already open is done by someone; no reminder comes after the plan ends
    assert found["status"] == "active" and case.open == ["Task_Remind"] and found["timers"] == []
    case.complete("Task_Remind")
    assert case.case["status"] == "completed" and case.case["outcome"] == "plan_done"
    quiet = Walk(api, "reminders")  # never fired: the case ends with its main path
    quiet.complete("Task_Plan")
    assert quiet.case["status"] == "completed" and quiet.case["timers"] == []


# -- what the service refuses at deploy ---------------------------------------------------------------

SIMPLE = [start(), task("Task_Work", "Do the work"), end("Event_Done", "done")]
SIMPLE_FLOWS = [("Event_Start", "Task_Work"), ("Task_Work", "Event_Done")]


@pytest.mark.parametrize("nodes, flows, element, says", [
    ([start(), '<bpmn:scriptTask id="Task_Score" scriptFormat="python"><bpmn:script>score = weigh(risk)'
               '</bpmn:script></bpmn:scriptTask>', end("Event_Done", "done")],
     [("Event_Start", "Task_Score"), ("Task_Score", "Event_Done")],
     "Task_Score", "script: 'weigh' is not a function scripts may call (line 1)"),
    ([start(), event("intermediateCatchEvent", "Event_Ready",
                     '<bpmn:conditionalEventDefinition id="Def_Ready"><bpmn:condition xsi:type="bpmn:tFormalExpression">'
                     '${ready ==}</bpmn:condition></bpmn:conditionalEventDefinition>'), *SIMPLE[1:]],
     [("Event_Start", "Event_Ready"), ("Event_Ready", "Task_Work"), ("Task_Work", "Event_Done")],
     "Event_Ready", "condition: 'ready ==' is not a valid expression (invalid syntax)"),
    ([start(), task("Task_Work", attrs='camunda:assignee="${lookup(worker)}"'), end("Event_Done", "done")],
     SIMPLE_FLOWS, "Task_Work", "assignee: 'lookup' is not a function expressions may call"),
    ([start(), task("Task_Work", attrs='camunda:dueDate="${soon()}"'), end("Event_Done", "done")],
     SIMPLE_FLOWS, "Task_Work", "due date: 'soon' is not a function expressions may call"),
    ([start(), task("Task_Work"), end("Event_Done", "done"),
      event("boundaryEvent", "Event_Late", timer("timeDuration", "${later(1)}"), 'attachedToRef="Task_Work"')],
     SIMPLE_FLOWS + [("Event_Late", "Event_Done")], "Event_Late", "timer: 'later' is not a function expressions may call"),
    ([start(), task("Task_Work", inner='<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>-1'
                                       '</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>'),
      end("Event_Done", "done")], SIMPLE_FLOWS, "Task_Work", "the loop cardinality is -1: it cannot be negative"),
    ([start(), task("Task_Work", inner='<bpmn:standardLoopCharacteristics loopMaximum="-3"/>'),
      end("Event_Done", "done")], SIMPLE_FLOWS, "Task_Work", "the loop maximum is -3: it cannot be negative"),
    ([start(), task("Task_Work", inner='<bpmn:multiInstanceLoopCharacteristics camunda:collection="${children}">'
                                       '<bpmn:completionCondition xsi:type="bpmn:tFormalExpression">${done(x)}'
                                       '</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>'),
      end("Event_Done", "done")], SIMPLE_FLOWS, "Task_Work",
     "completion condition: 'done' is not a function expressions may call"),
    ([start(), '<bpmn:adHocSubProcess id="SubProcess_Checks" ordering="Sequential">'
               + task("Task_Check") + "</bpmn:adHocSubProcess>", end("Event_Done", "done")],
     [("Event_Start", "SubProcess_Checks"), ("SubProcess_Checks", "Event_Done")], "SubProcess_Checks",
     "a sequential ad-hoc sub-process is not supported: its activities all open at once (ordering Parallel); "
     "chain them with sequence flows to run one after another"),
    ([*SIMPLE, event("boundaryEvent", "Event_Undo", '<bpmn:compensateEventDefinition id="Def_Undo"/>',
                     'attachedToRef="Task_Work"')], SIMPLE_FLOWS, "Event_Undo",
     "compensation is not supported: undo the work with steps on the error or cancel path instead"),
    ([start(), task("Task_Work"), end("Event_Done", "done", '<bpmn:cancelEventDefinition id="Def_Cancel"/>')],
     SIMPLE_FLOWS, "Event_Done",
     "cancel events belong to transactions: a cancel end event inside one, a cancel boundary event on one"),
    ([*SIMPLE, '<bpmn:subProcess id="SubProcess_Always" triggeredByEvent="true">' + start("Event_AlwaysStart")
      + task("Task_Extra") + "</bpmn:subProcess>"], [*SIMPLE_FLOWS, ("Event_AlwaysStart", "Task_Extra")],
     "SubProcess_Always", "an event sub-process starts only on its event: give its start event a message, timer, "
                          "signal, error, escalation or conditional definition"),
    ([start(), '<bpmn:complexGateway id="Gateway_Complex"/>', *SIMPLE[1:]],
     [("Event_Start", "Gateway_Complex"), ("Gateway_Complex", "Task_Work"), ("Task_Work", "Event_Done")],
     "Gateway_Complex", "complex gateways are not supported; use exclusive, inclusive or parallel gateways"),
])
def test_a_construct_the_service_cannot_run_is_refused_at_deploy_naming_the_element(api, nodes, flows, element,
                                                                                   says):
    assert (element, says) in refused(api, "refused", pathway("refused", nodes, flows))


def test_a_voluntary_pathway_started_by_a_message_needs_consent_as_one_started_by_hand(api):
    diagram = (FIXTURES / "constructs" / "message_start.bpmn").read_bytes().replace(
        b"</bpmn:documentation>\n    <bpmn:laneSet",
        b'</bpmn:documentation>\n    <bpmn:extensionElements><camunda:properties><camunda:property name="voluntary" '
        b'value="true"/></camunda:properties></bpmn:extensionElements>\n    <bpmn:laneSet', 1)
    deployed(api, message_start=diagram)
    body = {"name": "referral_received", "reference": "FAM-9"}
    assert api.post("/messages", json=body, as_="front").status_code == 422
    assert api.post("/messages", json={**body, "data": {"consent": "refused"}}, as_="front").status_code == 422
    answer = api.post("/messages", json={**body, "data": {"consent": "given"}}, as_="front")
    assert answer.status_code == 200 and len(answer.json["started"]) == 1


# -- messages with a correlation (POST /messages) ---------------------------------------------------------

def test_a_message_with_camunda_7_correlation_keys_reaches_only_the_case_whose_data_matches(api):
    """Camunda 7 correlates a message by process variables the sender gives: here the case data."""
    deployed(api, receiver=RECEIVER)
    amy, ben, ben_again = (Walk(api, "receiver", {"child_ref": ref}, reference=f"FAM-{ref}")
                           for ref in ("A1", "B2", "B2"))
    for case in (amy, ben, ben_again):
        case.complete("Task_AskSchool")
    body = {"name": "school_report", "data": {"attendance": 71}}
    answer = api.post("/messages", json={**body, "correlation_keys": {"child_ref": "A1"}}, as_="admin")
    assert answer.status_code == 200, answer.json
    assert answer.json == {"reached": [amy.id], "started": []}
    assert amy.open == ["Task_ReadReport"] and amy.case["data"]["attendance"] == 71
    assert ben.open == [] and "attendance" not in ben.case["data"]
    assert amy.path == ["Task_AskSchool", "school_report"]
    ambiguous = api.post("/messages", json={**body, "correlation_keys": {"child_ref": "B2"}}, as_="admin")
    assert ambiguous.status_code == 409 and ambiguous.json["matched"] == [ben.id, ben_again.id]
    assert "matches 2 cases" in ambiguous.json["message"] and ben.open == []
    nobody = api.post("/messages", json={**body, "correlation_keys": {"child_ref": "Z9"}}, as_="admin")
    assert nobody.status_code == 409
    assert "no case waits for the message 'school_report' with child_ref = \"Z9\"" in nobody.json["message"]
    both = api.post("/messages", json={**body, "correlation_keys": {"child_ref": "B2"}, "all": True}, as_="admin")
    assert both.json["reached"] == [ben.id, ben_again.id] and ben.open == ben_again.open == ["Task_ReadReport"]


def test_a_correlation_by_data_reaches_only_the_case_of_the_reference_given(api):
    """Camunda 7's business key narrows a correlation: with ``reference`` the message reaches only a case of it."""
    deployed(api, receiver=RECEIVER)
    amy = Walk(api, "receiver", {"child_ref": "A1"}, reference="FAM-A1")
    amy.complete("Task_AskSchool")
    body = {"name": "school_report", "correlation_keys": {"child_ref": "A1"}}
    other = api.post("/messages", json={**body, "reference": "FAM-B2"}, as_="admin")
    assert other.status_code == 409 and amy.open == [], other.json  # its data matches, its reference does not
    answer = api.post("/messages", json={**body, "reference": " FAM-A1 "}, as_="admin")
    assert answer.status_code == 200 and answer.json == {"reached": [amy.id], "started": []}, answer.json


def test_a_correlation_more_cases_could_take_than_a_list_counts_is_refused_before_any_is_read(api, monkeypatch):
    """A correlation reads and decrypts each case that waits for the message to compare its data: past the lists'
    cap (``paging.COUNT_CAP``) it is refused, naming the reference to give, and no case is read (a message every
    case waits for, as immediate risk is, read a million cases for four minutes)."""
    from sqlalchemy import event as orm_event

    from service import paging
    from service.models import Case

    deployed(api, receiver=RECEIVER)
    walks = [Walk(api, "receiver", {"child_ref": "B2"}, reference=f"FAM-{n}") for n in range(3)]
    for walk in walks:
        walk.complete("Task_AskSchool")
    monkeypatch.setattr(paging, "COUNT_CAP", 2)
    body = {"name": "school_report", "correlation_keys": {"child_ref": "B2"}, "all": True}
    read = []
    listen = lambda target, context: read.append(target.id)  # noqa: E731
    orm_event.listen(Case, "load", listen)
    try:
        refused = api.post("/messages", json=body, as_="admin")
    finally:
        orm_event.remove(Case, "load", listen)
    assert refused.status_code == 422, refused.json
    assert "More than 2 cases wait for the message 'school_report': give the case reference" in \
        refused.json["errors"]["reference"]
    assert read == [] and all(walk.open == [] for walk in walks)
    answer = api.post("/messages", json={**body, "reference": "FAM-1"}, as_="admin")
    assert answer.status_code == 200 and answer.json["reached"] == [walks[1].id], answer.json
    monkeypatch.setattr(paging, "COUNT_CAP", 3)  # as many as wait: read and compared
    assert api.post("/messages", json=body, as_="admin").json["reached"] == [walks[0].id, walks[2].id]


def test_a_correlated_message_is_refused_to_someone_who_does_not_work_on_the_matching_case(api):
    deployed(api, receiver=RECEIVER)
    case = Walk(api, "receiver", {"child_ref": "A1"})
    case.complete("Task_AskSchool")
    answer = api.post("/messages", json={"name": "school_report", "correlation_keys": {"child_ref": "A1"}},
                      as_="manager")  # the pathway is for social workers and the front door
    assert answer.status_code == 403 and case.open == []


def test_the_worker_chooses_the_activities_of_an_ad_hoc_sub_process_and_finishes_it(api):
    deployed(api, ad_hoc=ad_hoc("${school_seen and gp_seen}"))
    case = Walk(api, "ad_hoc", {"school_seen": False, "gp_seen": False})
    tasks = {t["name"]: t for t in case.case["tasks"]}
    offered = api.get(f"/tasks/{tasks['Task_CallGp']['id']}", as_="worker").json["ad_hoc"]
    assert offered == {"element": "SubProcess_Checks", "name": "Checks",
                       "finish": f"/api/v1/cases/{case.id}/ad-hoc/SubProcess_Checks/finish"}
    case.complete("Task_CallGp", {"gp_seen": True, "school_seen": False})
    assert case.open == ["Task_CallSchool"]  # the completion condition does not hold: the choice is the worker's
    url = f"/cases/{case.id}/ad-hoc/SubProcess_Checks/finish"
    assert api.post(url, as_="manager").status_code == 403  # not a team manager's activity
    assert api.post(f"/cases/{case.id}/ad-hoc/SubProcess_Other/finish", as_="worker").status_code == 409
    done = api.post(url, as_="worker")
    assert done.status_code == 200, done.json
    assert (done.json["status"], done.json["outcome"], done.json["tasks"]) == ("completed", "checked", [])
    assert case.path == ["Task_CallGp"]
    finished = [e for e in api.get(f"/cases/{case.id}/history", as_="admin").json if e["event"] == "ad_hoc_finished"]
    assert [(e["task"], e["detail"]) for e in finished] == [("SubProcess_Checks", {"not_done": ["Task_CallSchool"]})]
    assert api.post(url, as_="worker").status_code == 409  # over


def test_the_task_page_offers_to_finish_an_ad_hoc_sub_process(api):
    from conftest import Browser, page_text

    deployed(api, ad_hoc=ad_hoc())
    case = Walk(api, "ad_hoc")
    case.complete("Task_CallGp", {"gp_seen": True})
    browser = Browser(api.app)
    browser.sign_in("worker", "password-worker")
    [task] = case.case["tasks"]
    assert "When you have done those you chose, finish 'Checks'" in page_text(browser.get(f"/tasks/{task['id']}"))
    assert browser.post(f"/cases/{case.id}/ad-hoc/SubProcess_Checks/finish").status_code == 302
    assert (case.case["status"], case.case["outcome"], case.open) == ("completed", "checked", [])


# -- answers given again across parallel branches (issue 13) ----------------------------------------

def test_an_answer_given_again_in_a_parallel_branch_is_the_cases_data_and_what_follows_the_join_reads(api):
    deploy_response = deploy(api, *draw_parallel_answers().items())
    assert deploy_response.status_code == 201, deploy_response.json
    case = Walk(api, "parallel_answers", {"x": 1, "y": 1}, reference="FAM-PAR2")
    case.complete("Task_A1", {"x": 9})  # B1 opened holding x = 1
    assert case.open == ["Task_A2", "Task_B1"] and (case.case["data"]["x"], case.case["data"]["y"]) == (9, 1)
    case.complete("Task_B1", {"y": 7})  # A2 opened holding y = 1
    assert (case.case["data"]["x"], case.case["data"]["y"]) == (9, 7)
    case.complete("Task_B2")
    case.complete("Task_A2")
    assert case.open == ["Task_High"] and (case.case["data"]["x"], case.case["data"]["y"]) == (9, 7)
    case.complete("Task_High")
    found = case.case
    assert (found["status"], found["outcome"]) == ("completed", "handed_over")
    [handed] = [e for e in api.get(f"/cases/{case.id}/history", as_="admin").json if e["event"] == "case_handed_on"]
    next_case = Walk(api, "parallel_next", case_id=handed["detail"]["to_case"]).case
    assert (next_case["process"], next_case["data"]["x"], next_case["data"]["y"]) == ("parallel_next", 9, 7)
