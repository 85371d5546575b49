"""Every script and expression runs within its step's limits: time, memory, loops, digits and nesting.

Each limit has a test that fails when the limit is taken away, and each bomb from the security review
stops within a few seconds with the case in error, naming the element and the reason.
"""
from __future__ import annotations

import gc
import re
import threading
import time
import tracemalloc
from html import escape

import pytest

from service.engine import expressions, limits, runtime
from service.engine.bundle import DeploymentInvalid, build_bundle
from service.engine.limits import Limits

QUICK = 5.0  # seconds: a bomb must be stopped well within this, on a busy shared machine


def pathway(script: str = "checked = True", condition: str = "${checked}", assignee: str | None = None,
            due: str | None = None, timer: str | None = None) -> runtime.ProcessDefinition:
    """Start, a script task, an optional timer, a gateway with a condition, a user task: every place that evaluates."""
    xml = pathway_xml(script, condition, assignee, due, timer)
    return build_bundle({"bounds.bpmn": xml}).processes["bounds"]


def pathway_xml(script: str = "checked = True", condition: str = "${checked}", assignee: str | None = None,
                due: str | None = None, timer: str | None = None) -> bytes:
    """The diagram of :func:`pathway` (process id ``bounds``), to deploy through the service."""
    wait = (f'<bpmn:intermediateCatchEvent id="Event_Wait"><bpmn:incoming>Flow_2</bpmn:incoming>'
            f'<bpmn:outgoing>Flow_3</bpmn:outgoing><bpmn:timerEventDefinition id="Timer_Wait">'
            f'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{escape(timer)}</bpmn:timeDuration>'
            f'</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>') if timer else ""
    into_gateway = "Flow_3" if timer else "Flow_2"
    work = " ".join(f'camunda:{name}="{escape(value)}"' for name, value in (("assignee", assignee), ("dueDate", due))
                    if value)
    bpmn = f'''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="Definitions_Bounds" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bounds" name="Bounds" isExecutable="true">
    <bpmn:laneSet id="LaneSet_Bounds"><bpmn:lane id="Lane_Worker" name="Social worker">
      <bpmn:flowNodeRef>Task_Work</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="Task_Script" scriptFormat="python"><bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing><bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>
    {wait}
    <bpmn:exclusiveGateway id="Gateway_Check" default="Flow_No"><bpmn:incoming>{into_gateway}</bpmn:incoming>
      <bpmn:outgoing>Flow_Yes</bpmn:outgoing><bpmn:outgoing>Flow_No</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:userTask id="Task_Work" {work}><bpmn:incoming>Flow_Yes</bpmn:incoming><bpmn:outgoing>Flow_4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_Done">{outcome("done")}<bpmn:incoming>Flow_4</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="Event_Other">{outcome("other")}<bpmn:incoming>Flow_No</bpmn:incoming></bpmn:endEvent>
    {IMMEDIATE_RISK}
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Script" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Script" targetRef="{'Event_Wait' if timer else 'Gateway_Check'}" />
    {'<bpmn:sequenceFlow id="Flow_3" sourceRef="Event_Wait" targetRef="Gateway_Check" />' if timer else ''}
    <bpmn:sequenceFlow id="Flow_Yes" sourceRef="Gateway_Check" targetRef="Task_Work">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="Flow_No" sourceRef="Gateway_Check" targetRef="Event_Other" />
    <bpmn:sequenceFlow id="Flow_4" sourceRef="Task_Work" targetRef="Event_Done" />
  </bpmn:process>
  <bpmn:message id="Message_ImmediateRisk" name="immediate_risk" />
</bpmn:definitions>'''
    return bpmn.encode()


def outcome(value: str) -> str:
    return (f'<bpmn:extensionElements><camunda:properties><camunda:property name="outcome" value="{value}" />'
            f'</camunda:properties></bpmn:extensionElements>')


#: What the service requires of every pathway with a person's step (docs/safeguarding.md, rule 2).
IMMEDIATE_RISK = '''<bpmn:subProcess id="SubProcess_ImmediateRisk" triggeredByEvent="true">
      <bpmn:startEvent id="Event_ImmediateRisk" isInterrupting="false"><bpmn:outgoing>Flow_Risk1</bpmn:outgoing>
        <bpmn:messageEventDefinition id="Definition_ImmediateRisk" messageRef="Message_ImmediateRisk" /></bpmn:startEvent>
      <bpmn:userTask id="Task_UrgentReferral" camunda:candidateGroups="front_door"><bpmn:incoming>Flow_Risk1</bpmn:incoming>
        <bpmn:outgoing>Flow_Risk2</bpmn:outgoing></bpmn:userTask>
      <bpmn:endEvent id="Event_Referred"><bpmn:incoming>Flow_Risk2</bpmn:incoming></bpmn:endEvent>
      <bpmn:sequenceFlow id="Flow_Risk1" sourceRef="Event_ImmediateRisk" targetRef="Task_UrgentReferral" />
      <bpmn:sequenceFlow id="Flow_Risk2" sourceRef="Task_UrgentReferral" targetRef="Event_Referred" />
    </bpmn:subProcess>'''


def case_error(process, data: dict | None = None, step_limits: Limits | None = None) -> runtime.EngineError:
    """Start a case that must fail, within QUICK seconds; the error it fails with."""
    started = time.monotonic()
    with pytest.raises(runtime.EngineError) as failed:
        runtime.start(process, data or {}, limits=step_limits)
    assert time.monotonic() - started < QUICK, "the step was not stopped quickly"
    return failed.value


def script_error(script: str, step_limits: Limits | None = None) -> str:
    """Run a script that must fail within QUICK seconds, in a step of its own; its error message."""
    started = time.monotonic()
    with pytest.raises(expressions.ExpressionError) as failed, limits.step(step_limits):
        expressions.run_script(script, {})
    assert time.monotonic() - started < QUICK, "the script was not stopped quickly"
    return str(failed.value)


# --------------------------------------------------------------------------- the bombs of the review, in a case

@pytest.mark.parametrize("script, reason", [
    ("x = 3**(2**40)", "the script made a number with more than 10,000 digits"),
    ("x = 'x' * 10**10", "the script needs more than 256 MB of memory"),
    ("x = [0] * 10**9", "the script needs more than 256 MB of memory"),
    ("x = 'x' * 1_500_000_000", "the script needs more than 256 MB of memory"),
    ("while True: pass", "the script (loops more than 1,000,000 times|ran for more than 2 s)"),
    ("x = [i * j for i in range(10**4) for j in range(10**4)]",
     "the script (loops more than 1,000,000 times|ran for more than 2 s)"),
    ("x = []\nfor i in range(10_000):\n    x = [x]", "the script nests values more than 100 deep"),
])
def test_a_bomb_in_a_script_stops_the_case_quickly_naming_the_task(script, reason):
    error = case_error(pathway(script=script))
    assert error.element == "Task_Script"
    assert re.fullmatch(reason, error.message), error.message


@pytest.mark.parametrize("script", ["while True: pass", "x = 3**(2**40)", "x = 'x' * 1_500_000_000"])
def test_a_runaway_step_does_not_stall_other_threads(script):
    process, errors = pathway(script=script), []

    def runaway() -> None:
        try:
            runtime.start(process, {})
        except runtime.EngineError as error:
            errors.append(error)

    thread = threading.Thread(target=runaway)
    thread.start()
    gaps, last = [], time.monotonic()
    while thread.is_alive() and time.monotonic() - last < QUICK:  # another request meanwhile: still answered
        expressions.evaluate("${weeks_open >= 8}", {"weeks_open": 9})
        time.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    thread.join(QUICK)
    assert not thread.is_alive() and len(errors) == 1 and errors[0].element == "Task_Script"
    assert max(gaps, default=0) < 1.0, f"another thread waited {max(gaps):.1f} s"


def test_a_bomb_in_a_condition_stops_the_case_naming_the_gateway():
    error = case_error(pathway(condition="${'x' * 10000000000 == ''}"))
    assert error.element == "Gateway_Check"
    assert error.message.startswith("the expression needs more than 256 MB of memory")


def test_a_bomb_in_a_timer_expression_stops_the_case_naming_the_timer():
    error = case_error(pathway(timer="${'P' * 10000000000}"))
    assert error.element == "Event_Wait"
    assert error.message.startswith("timer: the expression needs more than 256 MB of memory")


def test_a_bomb_in_an_assignee_stops_the_case_naming_the_task():
    error = case_error(pathway(assignee="${'x' * 10000000000}"))
    assert error.element == "Task_Work"
    assert error.message.startswith("assignee: the expression needs more than 256 MB of memory")


def test_a_bomb_in_a_due_date_stops_the_case_naming_the_task():
    error = case_error(pathway(due="${'P1D' * 10000000000}"))
    assert error.element == "Task_Work"
    assert error.message.startswith("due date: the expression needs more than 256 MB of memory")


def test_a_condition_on_an_unknown_variable_names_it():
    error = case_error(pathway(script="decision = 'step_down'", condition='${decison == "step_down"}'))
    assert error.element == "Gateway_Check"
    assert error.message == ("'decison' is not in the case data; did you mean 'decision'? "
                             "(expression 'decison == \"step_down\"')")


def test_start_data_nested_too_deep_is_the_case_error_not_a_crash():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    error = case_error(pathway(), {"deep": deep})
    assert "ran out of resources" in error.message or "nests values" in error.message


def test_a_loaded_case_keeps_the_limits_it_is_given():
    process = pathway(script="checked = True", condition="${checked}")
    workflow, snap = runtime.start(process, {})
    _, journal = runtime.load(process, runtime.dump(workflow), limits=Limits(step_seconds=0.5))
    assert journal.limits.step_seconds == 0.5


# --------------------------------------------------------------------------- each limit, and that it is configurable

def test_the_time_limit_stops_a_step_that_loops_without_end():
    # The loop limit is set out of reach: only the clock can stop this one.
    error = case_error(pathway(script="while True: pass"), step_limits=Limits(step_seconds=0.3, max_loops=10**8))
    assert (error.element, error.message) == ("Task_Script", "the script ran for more than 0.3 s")


def busy(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time, as a runaway would."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_the_time_limit_counts_the_engine_s_own_work_between_tasks():
    # Time spent outside any expression (here a slow action) still counts: the next task completed stops the step.
    workflow = runtime.new_workflow(pathway(), {}, limits=Limits(step_seconds=0.2))
    with pytest.raises(runtime.EngineError) as failed:
        runtime._advance(workflow, workflow.script_engine, lambda: busy(0.3))
    assert failed.value.element == "Event_Start" and failed.value.message == "the step ran for more than 0.2 s"


def test_a_step_the_machine_stalls_is_not_stopped():
    # A busy or paused machine (here: the thread waits, spending no CPU) has not made the step a runaway; an urgent
    # referral must not fail because the server was slow. The step's CPU time is what the limit counts.
    workflow = runtime.new_workflow(pathway(script="checked = True", condition="${checked}"), {},
                                    limits=Limits(step_seconds=0.2))
    snap = runtime._advance(workflow, workflow.script_engine, lambda: time.sleep(0.4))
    assert [task.name for task in snap.tasks] == ["Task_Work"]


def test_a_full_garbage_collection_is_not_the_steps_time():
    # The collector walks the whole process however little the step made (a test worker's full collections took
    # 3 to 17 s): its time is left out, and what the step spends itself still counts.
    heap = [[n] for n in range(1_000_000)]
    deadline = limits.Deadline(0.03)
    began = time.thread_time()
    gc.collect()
    assert time.thread_time() - began > 0.03  # the collection alone took longer than the limit
    assert not deadline.passed()
    busy(0.05)
    assert deadline.passed()
    del heap


def test_the_loop_limit_counts_every_kind_of_loop():
    few = Limits(step_seconds=60, max_loops=1000)
    assert script_error("n = 0\nwhile True:\n    n += 1", few) == "the script loops more than 1,000 times"
    assert script_error("x = [i for i in range(600)]\ny = [i for i in range(600)]", few) == \
        "the script loops more than 1,000 times"
    assert "a range of 2,000 numbers" in script_error("x = range(2000)", few)
    assert script_error("s = 'x' * 2000\nx = [*s]", few) == "the script loops more than 1,000 times"
    assert script_error("s = 'x' * 2000\nx = sorted(s)", few) == "the script loops more than 1,000 times"


def test_the_memory_limit_counts_everything_the_step_makes():
    # Each string is under the limit; together they are over it.
    one_mb = Limits(memory_mb=1)
    assert script_error("a = 'x' * 600_000\nb = 'y' * 600_000", one_mb) == \
        "the script needs more than 1 MB of memory"
    expressions.run_script("a = 'x' * 600_000", {})  # and the same under the default 256 MB is fine


def test_the_memory_limit_is_shared_by_every_evaluation_of_a_step():
    with limits.step(Limits(memory_mb=1)):
        expressions.run_script("a = 'x' * 200_000", {})
        with pytest.raises(expressions.ExpressionError, match="more than 1 MB"):
            expressions.evaluate("'y' * 900000 == ''", {})


@pytest.mark.parametrize("script", [
    "x = 10**20000",
    "x = pow(7, 30000)",
    "x = 1 << 40000",
    "a = 10**6000\nx = a * a",
])
def test_the_digit_limit(script):
    assert script_error(script) == "the script made a number with more than 10,000 digits"


@pytest.mark.parametrize("script", [
    "x = 'x' * 50_000_000",
    "x = [0] * 10_000_000",
    "s = 'x' * 6_000_000\nx = s + s + s",
    "x = ','.join(['x' * 1_000_000] * 50)",
    "x = 'a'.ljust(50_000_000)",
    "x = 'a'.rjust(50_000_000)",
    "x = 'a'.center(50_000_000)",
    "x = '1'.zfill(50_000_000)",
    "s = 'ab' * 1_000_000\nx = s.replace('a', 'a' * 50)",
    "x = ('\\t' * 1_000_000).expandtabs(100)",
    "x = f'{1:>50000000}'",
    "x = '%50000000d' % 1",
    "x = '%*d' % (50_000_000, 1)",
    "s = 'x' * 1_000_000\nx = str([s] * 1_000)",
    "s = 'x' * 1_000_000\nx = repr([s] * 1_000)",
    "s = 'x' * 1_000_000\nx = f'{[s] * 1_000}'",
    "l = [0] * 1_000_000\nacc = []\nfor i in range(100):\n    acc.append(l[:])",
    "x = sum([[0] * 1_000] * 10_000, [])",
    "s = 'x' * 4_000_000\nx = s.split('x')",
    "s = 'x' * 100_000\nx = s.translate({120: 'y' * 1_000})",
])
def test_the_memory_limit_is_checked_before_the_work(script):
    # 16 MB: each of these would make 40 MB or more, and is stopped before it does.
    tracemalloc.start()
    try:
        assert script_error(script, Limits(memory_mb=16)) == "the script needs more than 16 MB of memory"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 1024 * 1024, f"{peak / 2**20:.0f} MB were made before the limit stopped the script"


def test_working_days_counts_at_most_ten_years():
    # The walk goes day by day through each year's bank holidays: working_days(10**7) took 18 s.
    error = case_error(pathway(due="${working_days(10000000)}"))
    assert (error.element, error.message) == (
        "Task_Work", "due date: working_days counts at most 2,610 days (ten years), not 10,000,000")
    assert expressions.evaluate("working_days(2610) > working_days(-2610)", {}) is True


def test_a_script_cannot_swallow_a_limit_and_go_on():
    script = "try:\n    while True:\n        pass\nexcept Exception:\n    pass\nafter = 1"
    assert script_error(script, Limits(max_loops=1000)) == "the script loops more than 1,000 times"


def test_values_kept_in_the_case_data_are_bounded_in_depth():
    assert script_error("x = []\nx.append(x)") == "the script nests values more than 100 deep"
    assert script_error("x = []\nfor i in range(101):\n    x = [x]") == "the script nests values more than 100 deep"
    data: dict = {}
    expressions.run_script("x = []\nfor i in range(98):\n    x = [x]", data)
    assert "x" in data


def test_reading_a_value_again_is_not_counted_as_making_it():
    data = {"notes": {"summary": "x" * 2_000_000}, "items": ["y" * 2_000_000]}
    expressions.run_script("for i in range(100):\n    a = notes.get('summary')\n    b = max(items)", data)
    expressions.run_script("for i in range(100):\n    a = notes['summary']\n    b = items[0]", data)
    expressions.run_script("note = notes['summary']\nfor i in range(100):\n    a = str(note)\n    b = f'{note}'", data)


def test_limits_come_from_the_service_config():
    assert Limits.from_config({}) == Limits()
    assert Limits.from_config({"ENGINE_STEP_SECONDS": "0.5", "ENGINE_STEP_MEMORY_MB": 64}) == \
        Limits(step_seconds=0.5, memory_mb=64)


def test_ordinary_scripts_and_expressions_still_run():
    data = {"name": "Sam", "needs": [1, 2, 3]}
    expressions.run_script(
        "total = sum(needs) + 2 ** 10\nlabel = f'{name!r}: {total:>6}'\nshort = ','.join(str(n) for n in needs)\n"
        "pad = 'a'.ljust(5) + '%03d' % 7\nis_text = isinstance(name, str)\nfirst = needs[:1]\n"
        "count = 0\nwhile count < 3:\n    count += 1\nsquares = {n: n * n for n in range(4)}\nlow, high = 1, 9", data)
    assert data["label"] == "'Sam':   1030" and data["short"] == "1,2,3" and data["pad"] == "a    007"
    assert data["is_text"] is True and data["first"] == [1] and data["count"] == 3 and data["squares"][3] == 9
    assert (data["low"], data["high"]) == (1, 9)
    assert expressions.evaluate("${name + '!' == 'Sam!' && len(needs) * 2 == 6}", data) is True


# --------------------------------------------------------------------------- nesting at deploy

@pytest.mark.parametrize("condition", ["${" + "-" * 1000 + "1 > 0}", "${" + "[" * 150 + "1" + "]" * 150 + "}",
                                       "${" + "-" * 100_000 + "1 > 0}"])
def test_a_condition_nested_too_deep_is_refused_at_deploy(condition):
    with pytest.raises(DeploymentInvalid) as refused:
        pathway(condition=condition)
    [problem] = refused.value.problems
    assert problem.element == "Flow_Yes"
    assert "nested more than 100 deep" in problem.message


def test_a_form_nested_too_deep_is_refused_at_deploy():
    with pytest.raises(DeploymentInvalid) as refused:
        build_bundle({"deep.form": b"[" * 100_000 + b"]" * 100_000})
    [problem] = refused.value.problems
    assert (problem.file, problem.message) == ("deep.form", "is nested too deeply to be a form")


def test_a_script_nested_too_deep_is_refused_at_deploy():
    with pytest.raises(DeploymentInvalid) as refused:
        pathway(script="x = " + "-" * 1000 + "1")
    [problem] = refused.value.problems
    assert problem.element == "Task_Script" and "script: the script is nested more than 100 deep" == problem.message
