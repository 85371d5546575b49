"""Each BPMN construct runs as BPMN says, or is refused at deploy naming the element and why.

Through the engine API, as the service drives a case (every step loads and saves the state): each test
asserts the path taken (the elements run, in order), the open tasks and the outcome.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import constructs_support as draw
import pytest
from SpiffWorkflow.specs.Join import Join

from service.engine import runtime, spiff
from service.engine.bundle import DeploymentInvalid, build_bundle

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "constructs"


def deploy(*names: str, **inline: bytes):
    files = {name: (FIXTURES / name).read_bytes() for name in names} | inline
    return build_bundle(files)


class Case:
    """One case kept as the service keeps it, with the path it has taken so far."""

    def __init__(self, name: str, data: dict | None = None) -> None:
        self.process = deploy(f"{name}.bpmn").processes[name]
        workflow, self.snap = runtime.start(self.process, data or {})
        self.state, self.path = runtime.dump(workflow), list(self.snap.path)

    def step(self, action, *args) -> runtime.Snapshot:
        workflow, journal = runtime.load(self.process, self.state)
        self.snap = action(workflow, journal, *args)
        self.state = runtime.dump(workflow)
        self.path += self.snap.path
        return self.snap

    def complete(self, name: str, data: dict | None = None) -> runtime.Snapshot:
        task = next(t for t in self.snap.tasks if t.name == name)
        return self.step(runtime.complete_task, task.id, data or {})

    def message(self, name: str, payload: dict | None = None) -> runtime.Snapshot:
        return self.step(runtime.deliver_message, name, payload or {})

    def wait(self, clock, **delta) -> runtime.Snapshot:
        clock.move_to(clock.now() + timedelta(**delta))
        return self.step(runtime.fire_timers)

    @property
    def open(self) -> list[str]:
        return sorted(t.name for t in self.snap.tasks)

    @property
    def timers(self) -> list[str]:
        return [t.name for t in self.snap.timers]


def refusals(error: DeploymentInvalid) -> list[tuple[str | None, str]]:
    return [(p.element, p.message) for p in error.problems]


# -- terminate end event ------------------------------------------------------------------------

def test_a_terminate_end_event_ends_the_whole_case_and_its_timers(frozen_clock):
    case = Case("terminate_end")
    assert case.open == ["Task_Assess", "Task_Visit"] and case.timers == ["Event_VisitDue"]
    snap = case.complete("Task_Assess", {"withdrawn": True})
    assert snap.completed and snap.tasks == [] and snap.timers == [] and snap.messages == []
    assert snap.data["outcome"] == "withdrawn" and snap.thrown == []
    assert case.path == ["Event_Referral", "Gateway_SplitWork", "Task_Assess", "Gateway_Withdrawn", "Event_Withdrawn"]
    assert case.wait(frozen_clock, days=6).completed  # a timer sweep after the end finds nothing to do


def test_without_the_terminate_end_event_the_other_branch_carries_on():
    case = Case("terminate_end")
    case.complete("Task_Assess", {"withdrawn": False})
    assert case.open == ["Task_Visit"] and not case.snap.completed
    snap = case.complete("Task_Visit")
    assert snap.completed and case.path[-2:] == ["Task_Visit", "Event_Visited"]


# -- error end event ----------------------------------------------------------------------------

def test_an_error_end_event_nothing_catches_stops_the_case_naming_the_element_and_code():
    case = Case("error_end")
    with pytest.raises(runtime.EngineError) as raised:
        case.complete("Task_CheckPlacement", {"safe": False})
    assert raised.value.element == "Event_PlacementUnsafe"
    assert "PLACEMENT_UNSAFE" in raised.value.message and "nothing in the pathway catches it" in raised.value.message
    assert case.open == ["Task_CheckPlacement"]  # the stored state is the one before the error: retry can rerun


def test_the_other_way_past_the_error_end_event_completes():
    case = Case("error_end")
    snap = case.complete("Task_CheckPlacement", {"safe": True})
    assert snap.completed and snap.data["outcome"] == "agreed"
    assert case.path == ["Event_PlacementProposed", "Task_CheckPlacement", "Gateway_Safe", "Event_PlacementAgreed"]


@pytest.mark.parametrize("safe, outcome", [(False, "replaced"), (True, "agreed")])
def test_the_same_error_caught_by_a_boundary_event_takes_the_boundary_path(safe, outcome):
    case = Case("error_caught")
    case.complete("Task_CheckPlacement", {"safe": safe})
    if not safe:
        assert case.open == ["Task_FindAnotherPlacement"]
        case.complete("Task_FindAnotherPlacement")
    assert case.snap.completed and case.snap.data["outcome"] == outcome
    assert ("Event_Unsafe" in case.path) is not safe


# -- event-based gateway ------------------------------------------------------------------------

def test_an_event_based_gateway_shows_its_timer_and_message_and_the_message_wins(frozen_clock):
    case = Case("event_gateway")
    snap = case.complete("Task_AskConsent")
    assert snap.tasks == [] and snap.messages == ["family_reply", "immediate_risk"]
    assert [(t.name, t.due_at) for t in snap.timers] == [("Event_TenDays", frozen_clock.now() + timedelta(days=10))]
    snap = case.message("family_reply", {"consent": True})
    assert case.open == ["Task_ReadReply"] and snap.timers == [] and snap.messages == ["immediate_risk"]
    assert snap.data["consent"] is True
    assert case.wait(frozen_clock, days=11).tasks[0].name == "Task_ReadReply"  # the timer went with the gateway
    snap = case.complete("Task_ReadReply")
    assert snap.completed and snap.data["outcome"] == "replied"
    assert case.path == ["Event_Referral", "Task_AskConsent", "Gateway_WaitReply", "Event_Reply", "Task_ReadReply",
                         "Event_Replied"]


def test_an_event_based_gateway_takes_the_timer_when_no_reply_comes(frozen_clock):
    case = Case("event_gateway")
    case.complete("Task_AskConsent")
    assert case.wait(frozen_clock, days=9).tasks == []
    snap = case.wait(frozen_clock, days=2)
    assert case.open == ["Task_ChaseUp"] and snap.messages == ["immediate_risk"] and snap.timers == []
    with pytest.raises(runtime.NothingWaits):
        case.message("family_reply")
    assert case.complete("Task_ChaseUp").data["outcome"] == "chased"
    assert case.path[-4:] == ["Gateway_WaitReply", "Event_TenDays", "Task_ChaseUp", "Event_ChasedUp"]


# -- link events --------------------------------------------------------------------------------

def test_a_link_throw_event_goes_on_at_its_catching_link_event():
    case = Case("link_events")
    case.complete("Task_Assess")
    assert case.open == ["Task_Review"] and not case.snap.completed
    snap = case.complete("Task_Review")
    assert snap.completed and snap.data["outcome"] == "reviewed"
    assert case.path == ["Event_Referral", "Task_Assess", "Event_GoToReview", "Event_Review", "Task_Review",
                         "Event_Reviewed"]


def test_a_link_with_no_catching_event_is_refused_at_deploy():
    diagram = (FIXTURES / "link_events.bpmn").read_bytes()
    diagram = diagram.replace(b'"LinkEventDefinition_GoToReview" name="Review"',
                              b'"LinkEventDefinition_GoToReview" name="Away"')
    with pytest.raises(DeploymentInvalid) as refused:
        deploy(**{"link_events.bpmn": diagram})
    [(element, message)] = refusals(refused.value)
    assert element == "Event_GoToReview"
    assert message.startswith("the link 'Away' needs exactly one catching link event of that name in the same "
                              "process; there are 0")


# -- interrupting event sub-processes -----------------------------------------------------------

def test_a_timer_start_event_sub_process_waits_for_its_timer_then_interrupts(frozen_clock):
    case = Case("event_subprocess_timer")
    assert case.open == ["Task_Assess"] and case.timers == ["Event_FiveDays"]
    assert case.wait(frozen_clock, days=4).tasks[0].name == "Task_Assess"
    case.wait(frozen_clock, days=1, minutes=1)
    assert case.open == ["Task_ManagerReview"] and case.snap.timers == []
    snap = case.complete("Task_ManagerReview")
    assert snap.completed and snap.data["outcome"] == "escalated"
    assert case.path == ["Event_Referral", "Event_FiveDays", "Task_ManagerReview", "Event_Escalated",
                         "SubProcess_Overrun"]


def test_a_timer_start_event_sub_process_that_never_fired_does_not_hold_the_case_open(frozen_clock):
    case = Case("event_subprocess_timer")
    snap = case.complete("Task_Assess")
    assert snap.completed and snap.timers == [] and snap.data["outcome"] == "assessed"
    assert case.wait(frozen_clock, days=6).tasks == []


def test_an_escalation_start_event_sub_process_runs_only_when_the_escalation_is_thrown():
    case = Case("event_subprocess_escalation")
    assert case.open == ["Task_Assess"]
    case.complete("Task_Assess", {"escalate": True})
    assert case.open == ["Task_ManagerTakesOver"]  # interrupting: the visit after the throw is cancelled
    snap = case.complete("Task_ManagerTakesOver")
    assert snap.completed and snap.data["outcome"] == "manager"
    assert "Task_Visit" not in case.path and case.path[:4] == ["Event_Referral", "Task_Assess", "Gateway_Escalate",
                                                               "Event_ThrowEscalation"]


def test_without_the_escalation_the_case_never_sees_the_escalation_sub_process():
    case = Case("event_subprocess_escalation")
    snap = case.complete("Task_Assess", {"escalate": False})
    assert snap.completed and snap.data["outcome"] == "assessed"
    assert "Event_ManagerNeeded" not in case.path


# -- multi-instance over a collection -----------------------------------------------------------

CHILDREN = [{"name": "Amy", "age": 4}, {"name": "Ben", "age": 7}]


def test_a_multi_instance_task_opens_one_task_per_child_titled_with_the_child():
    case = Case("each_child", {"children": CHILDREN})
    assert [(t.name, t.title) for t in case.snap.tasks] == [("Task_SeeChild", "See the child: Amy"),
                                                           ("Task_SeeChild", "See the child: Ben")]
    ben = next(t for t in case.snap.tasks if t.title.endswith("Ben"))
    case.step(runtime.complete_task, ben.id, {"seen": True, "notes": "Happy at school"})
    assert [t.title for t in case.snap.tasks] == ["See the child: Amy"]
    case.complete("Task_SeeChild", {"seen": False, "notes": "Not at home"})
    # Each child's answers are kept with the child, in the collection's order (whatever order they came in).
    assert case.snap.data["child_answers"] == [
        {"child": CHILDREN[0], "seen": False, "notes": "Not at home"},
        {"child": CHILDREN[1], "seen": True, "notes": "Happy at school"}]
    assert [t.title for t in case.snap.tasks] == ["Plan for the child: Amy"]  # sequential: one at a time


def test_a_sequential_multi_instance_over_a_named_collection_goes_child_by_child():
    case = Case("each_child", {"children": CHILDREN})
    for _ in CHILDREN:
        case.complete("Task_SeeChild", {"seen": True})
    case.complete("Task_PlanForChild", {"plan": "Nursery place"})
    assert [t.title for t in case.snap.tasks] == ["Plan for the child: Ben"]
    snap = case.complete("Task_PlanForChild", {"plan": "Mentor"})
    assert snap.completed and snap.data["outcome"] == "all_seen"
    assert [a["plan"] for a in snap.data["plan_child_answers"]] == ["Nursery place", "Mentor"]
    assert "seen" not in snap.data and "plan" not in snap.data  # nothing leaks from one child to the case
    assert case.path == ["Event_Referral", "Task_SeeChild", "Task_SeeChild", "Task_SeeChild", "Task_PlanForChild",
                         "Task_PlanForChild", "Task_PlanForChild", "Gateway_AllSeen", "Event_AllSeen"]


def test_an_empty_collection_skips_the_multi_instance_task():
    snap = Case("each_child", {"children": []}).snap
    assert snap.completed and snap.data["outcome"] == "all_seen"


@pytest.mark.parametrize("data, says", [({}, "the collection '${children}' cannot be read"),
                                        ({"children": 3}, "the collection '${children}' is int 3, not a list")])
def test_a_missing_or_wrong_collection_stops_the_case_naming_the_task(data, says):
    with pytest.raises(runtime.EngineError) as raised:
        Case("each_child", data)
    assert raised.value.element == "Task_SeeChild" and raised.value.message.startswith(says)


@pytest.mark.parametrize("marker, says", [
    ("<bpmn:loopCardinality>-2</bpmn:loopCardinality>", "the loop cardinality is -2: it cannot be negative"),
    ("<bpmn:loopCardinality>2.5</bpmn:loopCardinality>", "the loop cardinality '2.5' is not a whole number"),
    ("", "a multi-instance activity needs camunda:collection (the list to go through) or a loop cardinality "
         "(how many times)"),
])
def test_a_multi_instance_count_that_cannot_run_is_refused_at_deploy(marker, says):
    diagram = (FIXTURES / "each_child.bpmn").read_bytes().replace(
        b'<bpmn:multiInstanceLoopCharacteristics camunda:collection="${children}" camunda:elementVariable="child"/>',
        f"<bpmn:multiInstanceLoopCharacteristics>{marker}</bpmn:multiInstanceLoopCharacteristics>".encode())
    with pytest.raises(DeploymentInvalid) as refused:
        deploy(**{"each_child.bpmn": diagram})
    assert ("Task_SeeChild", says) in refusals(refused.value)


def test_a_negative_loop_maximum_is_refused_at_deploy():
    diagram = (FIXTURES / "link_events.bpmn").read_bytes().replace(
        b'<bpmn:outgoing>Flow_ReviewPlanToReviewed</bpmn:outgoing>',
        b'<bpmn:outgoing>Flow_ReviewPlanToReviewed</bpmn:outgoing><bpmn:standardLoopCharacteristics loopMaximum="-1"/>')
    with pytest.raises(DeploymentInvalid) as refused:
        deploy(**{"link_events.bpmn": diagram})
    assert refusals(refused.value) == [("Task_Review", "the loop maximum is -1: it cannot be negative")]


# -- plain and manual tasks ---------------------------------------------------------------------

def as_manual_task(diagram: bytes, kind: bytes) -> bytes:
    end = b'>\n    <bpmn:endEvent id="Event_Reviewed"'
    return diagram.replace(b'<bpmn:userTask id="Task_Review" name="Review the plan">',
                           b'<bpmn:' + kind + b' id="Task_Review" name="Review the plan">').replace(
        b'</bpmn:userTask' + end, b'</bpmn:' + kind + end)


@pytest.mark.parametrize("kind", [b"manualTask", b"task"])
def test_a_plain_or_manual_task_waits_for_a_person_of_its_lane(kind):
    diagram = as_manual_task((FIXTURES / "link_events.bpmn").read_bytes(), kind)
    process = deploy(**{"link_events.bpmn": diagram}).processes["link_events"]
    assert process.roles == ["front_door", "social_worker"]  # the front door: the urgent referral's
    workflow, snap = runtime.start(process, {})
    snap = runtime.complete_task(workflow, workflow.script_engine, snap.tasks[0].id, {})
    [task] = snap.tasks
    assert (task.name, task.roles, task.title) == ("Task_Review", ["social_worker"], "Review the plan")
    snap = runtime.complete_task(workflow, workflow.script_engine, task.id, {})
    assert snap.completed and snap.path == ["Task_Review", "Event_Reviewed"]


def test_a_manual_task_in_no_lane_is_refused_at_deploy():
    diagram = as_manual_task((FIXTURES / "link_events.bpmn").read_bytes(), b"manualTask")
    diagram = diagram.replace(b"<bpmn:flowNodeRef>Task_Review</bpmn:flowNodeRef>", b"")
    with pytest.raises(DeploymentInvalid) as refused:
        deploy(**{"link_events.bpmn": diagram})
    assert refusals(refused.value) == [
        ("Task_Review", "the manual task has no role: put it in a named lane or set candidate groups")]


# -- signals and message start events (the engine side; the service routes them between cases) ---

def test_a_thrown_signal_is_handed_to_the_service_to_broadcast():
    case = Case("signal_throw")
    snap = case.complete("Task_RecordClosure", {"school": "Oak Primary"})
    assert snap.completed and snap.thrown == []
    assert snap.signals == [runtime.ThrownSignal("school_closure", {"school": "Oak Primary"})]
    assert case.path[-2:] == ["Event_AnnounceClosure", "Event_Announced"]


def test_a_case_waiting_for_a_signal_catches_it():
    case = Case("signal_catch")
    assert case.snap.waiting_signals == []
    case.complete("Task_AgreePlan")
    assert case.snap.waiting_signals == ["school_closure"] and case.snap.tasks == []
    snap = case.step(runtime.deliver_signal, "school_closure", {"school": "Oak Primary"})
    assert case.open == ["Task_ArrangeCover"] and snap.data["school"] == "Oak Primary" and snap.waiting_signals == []
    with pytest.raises(runtime.NothingWaits):
        case.step(runtime.deliver_signal, "school_closure", {})
    assert case.complete("Task_ArrangeCover").data["outcome"] == "covered"
    assert case.path == ["Event_Start", "Task_AgreePlan", "Event_SchoolClosed", "Task_ArrangeCover", "Event_Covered"]


@pytest.mark.parametrize("name, kind, event, element, task", [
    ("signal_start", "signal", "school_closure", "Event_SchoolClosed", "Task_CheckChildren"),
    ("message_start", "message", "referral_received", "Event_ReferralReceived", "Task_Triage")])
def test_a_process_with_a_message_or_signal_start_event_is_started_by_it(name, kind, event, element, task):
    process = deploy(f"{name}.bpmn").processes[name]
    assert runtime.catching_start_events(process) == [runtime.StartTrigger(kind, event, element)]
    workflow, snap = runtime.start_by_event(process, kind, event, {"school": "Oak Primary"})
    assert [t.name for t in snap.tasks] == [task] and snap.data["school"] == "Oak Primary"
    assert snap.path == [element]
    with pytest.raises(runtime.NothingWaits):
        runtime.start_by_event(process, kind, "something_else", {})


def test_a_process_started_by_hand_lists_no_message_or_signal_start():
    assert runtime.catching_start_events(deploy("terminate_end.bpmn").processes["terminate_end"]) == []


# -- conditional events -------------------------------------------------------------------------

def test_a_conditional_event_fires_when_another_branch_makes_its_condition_true():
    case = Case("conditional_event", {"consent": False})
    assert case.open == ["Task_AskConsent"]
    case.complete("Task_AskConsent", {"consent": False})
    assert case.open == ["Task_AskConsent"]  # still waiting: the condition is false
    snap = case.complete("Task_AskConsent", {"consent": True})
    assert case.open == ["Task_ShareInformation"]
    snap = case.complete("Task_ShareInformation")
    assert snap.completed and snap.data["outcome"] == "shared"
    assert case.path == ["Event_Referral", "Gateway_SplitConsent", "Gateway_JoinAskConsent", "Task_AskConsent",
                         "Gateway_ConsentGiven", "Gateway_JoinAskConsent", "Task_AskConsent", "Gateway_ConsentGiven",
                         "Event_ConsentGiven", "Event_ConsentRecorded", "Task_ShareInformation", "Event_Shared"]


def test_a_conditional_event_already_true_passes_straight_through():
    case = Case("conditional_event", {"consent": True})
    assert case.open == ["Task_AskConsent", "Task_ShareInformation"]
    assert case.path == ["Event_Referral", "Gateway_SplitConsent", "Gateway_JoinAskConsent", "Event_ConsentGiven"]


@pytest.mark.parametrize("risk, open_after, outcome", [(5, ["Task_StrategyMeeting"], "escalated"),
                                                     (2, ["Task_HomeVisits"], "visits_done")])
def test_an_interrupting_conditional_boundary_event_fires_when_the_data_says_so(risk, open_after, outcome):
    case = Case("conditional_boundary", {"risk": 1})
    assert case.open == ["Task_HomeVisits", "Task_ScoreRisk"]
    case.complete("Task_ScoreRisk", {"risk": risk})
    assert case.open == open_after
    snap = case.complete(open_after[0])
    assert snap.completed and snap.data["outcome"] == outcome
    assert ("Event_RiskHigh" in case.path) is (risk > 3)


def test_a_conditional_start_event_is_refused_at_deploy():
    diagram = (FIXTURES / "link_events.bpmn").read_bytes().replace(
        b'<bpmn:outgoing>Flow_ReferralToAssess</bpmn:outgoing>',
        b'<bpmn:outgoing>Flow_ReferralToAssess</bpmn:outgoing><bpmn:conditionalEventDefinition id="Cond">'
        b'<bpmn:condition xsi:type="bpmn:tFormalExpression">${ready}</bpmn:condition>'
        b'</bpmn:conditionalEventDefinition>')
    with pytest.raises(DeploymentInvalid) as refused:
        deploy(**{"link_events.bpmn": diagram})
    assert refusals(refused.value) == [("Event_Referral", "conditional start events are not supported: nothing "
                                        "checks the condition before the process runs; use a conditional "
                                        "intermediate or boundary event")]


def test_an_event_based_gateway_with_two_timers_is_refused_at_deploy():
    diagram = (FIXTURES / "event_gateway.bpmn").read_bytes().replace(
        b'<bpmn:messageEventDefinition id="MessageEventDefinition_Reply" messageRef="Message_FamilyReply"/>',
        b'<bpmn:timerEventDefinition id="Timer_Other"><bpmn:timeDuration>P1D</bpmn:timeDuration>'
        b'</bpmn:timerEventDefinition>')
    with pytest.raises(DeploymentInvalid) as refused:
        deploy(**{"event_gateway.bpmn": diagram})
    assert refusals(refused.value) == [
        ("Gateway_WaitReply",
         "an event-based gateway here can wait for one timer at most (and any messages or signals)")]


# -- answers given again across parallel branches (issue 13) --------------------------------------

class ParallelCase(Case):
    """Two branches A1 -> A2 and B1 -> B2, joined; then a gateway on ``x > 5 and y > 5`` (constructs_support)."""

    def __init__(self, data: dict) -> None:
        self.process = build_bundle(draw.parallel_answers()).processes["parallel_answers"]
        workflow, self.snap = runtime.start(self.process, data)
        self.state, self.path = runtime.dump(workflow), list(self.snap.path)

    def task_data(self, name: str) -> dict:
        """The data the open step ``name`` holds (what its form and what follows it read)."""
        workflow, _ = runtime.load(self.process, self.state)
        found = next(t for t in self.snap.tasks if t.name == name)
        return {k: v for k, v in workflow.get_task_from_id(UUID(found.id)).data.items() if not k.startswith("_")}


def test_an_answer_given_again_in_one_branch_is_the_cases_while_the_other_branchs_older_step_is_open():
    case = ParallelCase({"x": 1, "y": 1})
    assert case.open == ["Task_A1", "Task_B1"]
    case.complete("Task_A1", {"x": 9})  # B1 opened holding x = 1
    assert case.open == ["Task_A2", "Task_B1"] and case.snap.data == {"x": 9, "y": 1}
    assert case.task_data("Task_B1") == {"x": 9, "y": 1}  # the open step's own copy too (its assignee, due date)
    case.complete("Task_B1", {"y": 7})  # A2 opened holding y = 1
    assert case.open == ["Task_A2", "Task_B2"] and case.snap.data == {"x": 9, "y": 7}
    assert case.task_data("Task_B2") == {"x": 9, "y": 7}  # B's next step reads the newest x too
    case.complete("Task_B2")
    assert case.open == ["Task_A2"] and case.snap.data == {"x": 9, "y": 7}
    case.complete("Task_A2")  # the join: what follows, and the gateway, read the newest of both
    assert case.open == ["Task_High"] and case.snap.data == {"x": 9, "y": 7}
    assert case.task_data("Task_High") == {"x": 9, "y": 7}
    snap = case.complete("Task_High")
    assert snap.completed and snap.data == {"x": 9, "y": 7, "outcome": "handed_over"}
    [handed] = snap.thrown
    assert handed.name == "start:parallel_next" and {handed.payload[k] for k in "xy"} == {9, 7}
    assert (handed.payload["x"], handed.payload["y"]) == (9, 7)


def test_the_join_takes_each_keys_newest_write_whichever_branch_arrives_last(monkeypatch):
    """Even when a branch reaches the join holding an older copy (its steps not brought up to date as they
    run), the join's data is each key's newest write."""
    real_refresh, real_before, joining = spiff.refresh, spiff.before_run, []

    def before_run(task):  # only a join brings data up to date: the branches' last steps, just before it runs
        joining[:] = [isinstance(task.task_spec, Join)]
        try:
            return real_before(task)
        finally:
            joining.clear()

    monkeypatch.setattr(spiff, "refresh", lambda task: real_refresh(task) if any(joining) else None)
    monkeypatch.setattr(spiff, "before_run", before_run)
    case = ParallelCase({"x": 1, "y": 1})
    case.complete("Task_A1", {"x": 9})
    case.complete("Task_B1", {"y": 7})
    assert case.task_data("Task_A2") == {"x": 9, "y": 1} and case.snap.data == {"x": 9, "y": 7}
    case.complete("Task_B2")  # B waits at the join holding x = 1; A arrives last holding y = 1
    case.complete("Task_A2")
    assert case.open == ["Task_High"] and case.task_data("Task_High") == {"x": 9, "y": 7}


def test_a_case_stored_before_the_newest_writes_were_kept_shows_its_steps_data_as_before():
    case = ParallelCase({"x": 1, "y": 1})
    state = json.loads(case.state)
    assert state["format"] == "pathways-3" and spiff.NEWEST not in state["data"]
    state["format"] = "pathways-2"
    case.state = json.dumps(state)
    case.complete("Task_A1", {"x": 9})
    assert json.loads(case.state)["format"] == "pathways-3"
    assert json.loads(case.state)["data"][spiff.NEWEST] == {"x": 9} and case.snap.data == {"x": 9, "y": 1}


def test_what_one_instance_of_a_multi_instance_task_answers_stays_with_its_item_not_the_case():
    case = Case("each_child", {"children": CHILDREN})
    for _ in CHILDREN:
        case.complete("Task_SeeChild", {"seen": True, "notes": "Seen"})
    newest = json.loads(case.state)["data"][spiff.NEWEST]
    assert "seen" not in case.snap.data and "notes" not in case.snap.data and "seen" not in newest
    assert [a["seen"] for a in newest["child_answers"]] == [True, True] == [a["seen"] for a in case.snap.data["child_answers"]]
