"""What service/engine/spiff.py relies on in SpiffWorkflow 3.2.0, pinned.

Every test here states one behaviour or internal of the pinned release that the adapter uses or works
around. Moving to another SpiffWorkflow release should fail here, naming what changed, before a stored
case is misread: then adapt spiff.py (and, if the stored layout changed, add a state format and its
migration in runtime.py).
"""
from __future__ import annotations

import inspect
import json
from datetime import date
from importlib.metadata import version
from pathlib import Path
from uuid import UUID

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.parser.event_parsers import StartEventParser
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.control import BoundaryEventJoin, BpmnStartTask, _EndJoin
from SpiffWorkflow.bpmn.specs.defaults import EventBasedGateway
from SpiffWorkflow.bpmn.specs.event_definitions.base import EventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.conditional import ConditionalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins import multiinstance_task as mi_mixins
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import EventSubprocess
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.specs import multiinstance_task as camunda_mi
from SpiffWorkflow.dmn.parser.BpmnDmnParser import BpmnDmnParser
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskIterator

from service.engine import runtime, spiff
from service.engine.specs import ItemsMultiInstance, ParallelItemsMultiInstance
from test_case_growth import Case, process_of

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "constructs"


def test_the_installed_release_is_the_one_the_adapter_was_written_for():
    assert version("spiffworkflow") == spiff.SPIFF_VERSION == "3.2.0"


# -- storing a case -----------------------------------------------------------------------------

def test_the_serializer_writes_format_1_5_with_the_fields_the_state_converter_keeps():
    assert spiff.SERIALIZER_VERSION == "1.5"
    assert runtime.OLDER_FORMATS.keys() == {"spiff-1.5", "pathways-2"}
    workflow, _ = runtime.start(process_of("review_loop.bpmn"), {"born": date(2020, 5, 1)})
    state = spiff.state_to_dict(workflow)
    assert set(state) == {"typename", "data", "correlations", "last_task", "success", "completed", "tasks", "root",
                          "subprocesses"}
    task = next(iter(state["tasks"].values()))
    assert set(task) == {"typename", "id", "parent", "children", "last_state_change", "state", "task_spec", "triggered",
                         "internal_data", "data", "delta"}


def test_the_state_converter_calls_the_workflow_fields_of_its_grandparent():
    # _StateOnlyConverter.to_dict skips BpmnWorkflowConverter (which adds the spec) for WorkflowConverter's.
    assert BpmnWorkflowConverter.__mro__[1] is WorkflowConverter
    assert "delta" in inspect.getsource(TaskConverter.to_dict)  # data stored as a delta against the parent


def test_dates_in_a_delta_survive_the_round_trip():
    process = process_of("review_loop.bpmn")
    workflow, snap = runtime.start(process, {})
    workflow.get_task_from_id(UUID(snap.tasks[0].id)).data["met"] = date(2027, 1, 6)
    again = spiff.state_from_dict(json.loads(spiff.state_json(workflow)), process.spec, process.subprocess_specs)
    assert again.get_task_from_id(UUID(snap.tasks[0].id)).data["met"] == date(2027, 1, 6)


# -- the task tree compact() edits --------------------------------------------------------------

def test_tasks_link_parent_and_children_by_id_through_the_workflow():
    workflow, _ = runtime.start(process_of("review_loop.bpmn"), {})
    task = workflow.task_tree.children[0]
    assert isinstance(task._parent, UUID) and task._parent == workflow.task_tree.id
    assert workflow.task_tree._children == [task.id]
    assert task.parent is workflow.tasks[task._parent]


def test_task_iteration_stops_at_a_depth_of_1000_and_ancestor_walks_recurse():
    # Why compact() keeps the tree shallow: below depth 1000 get_tasks() sees nothing, and
    # is_descendant_of/find_ancestor recurse once per level.
    assert inspect.signature(TaskIterator.__init__).parameters["max_depth"].default == 1000
    assert "self.parent.is_descendant_of(task)" in inspect.getsource(Task.is_descendant_of)
    assert "self.parent.find_ancestor(spec_name)" in inspect.getsource(Task.find_ancestor)


def test_without_compaction_every_review_deepens_the_tree(frozen_clock, monkeypatch):
    monkeypatch.setattr(spiff, "compact", lambda workflow: 0)
    case = Case(process_of("review_loop.bpmn"))
    depths = []
    for _ in range(3):
        case.complete("Task_ReviewPlan", {"close": False})
        frozen_clock.move_to(frozen_clock.now().replace(year=frozen_clock.now().year + 1))
        case.step(runtime.fire_timers)
        depths.append(spiff.tree_depth(case.workflow))
    assert depths[2] - depths[1] == depths[1] - depths[0] > 0


def test_boundary_events_hang_under_a_split_their_join_finds_as_an_ancestor():
    spec = process_of("review_loop.bpmn").spec
    join = spec.task_specs["Task_ReviewPlan.BoundaryEventJoin"]
    assert isinstance(join, BoundaryEventJoin) and isinstance(join, Join)
    assert join.split_task == "Task_ReviewPlan.BoundaryEventSplit" in spec.task_specs
    assert "my_task.find_ancestor(self.split_task)" in inspect.getsource(BoundaryEventJoin._check_threshold_structured)


def test_a_parallel_join_counts_its_cancelled_copies_and_their_parents_as_tokens():
    source = inspect.getsource(ParallelGateway._check_threshold_unstructured)
    assert "task.parent.state == TaskState.COMPLETED" in source
    assert issubclass(ParallelGateway, UnstructuredJoin) and issubclass(_EndJoin, UnstructuredJoin)


def test_without_compaction_a_parallel_join_in_a_loop_fires_on_a_spent_token(monkeypatch):
    # SpiffWorkflow 3.2 bug that compact() removes: round 1's cancelled arrival from the health branch
    # counts again in round 2, so the join fires when only the school check is done.
    monkeypatch.setattr(spiff, "compact", lambda workflow: 0)
    case = Case(process_of("loop_parallel.bpmn", "loop_summary.bpmn"))
    case.complete("Task_CheckHealth", {})
    case.complete("Task_CheckSchool", {})
    case.complete("Task_Summarise", {"again": True})
    case.complete("Task_CheckSchool", {})
    assert sorted(t.name for t in case.snap.tasks) == ["Task_CheckHealth", "Task_Summarise"]


def test_finished_call_activities_keep_their_sub_process_until_compaction_drops_it(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(spiff, "compact", lambda workflow: 0)
        case = Case(process_of("loop_parallel.bpmn", "loop_summary.bpmn"))
        for _ in range(3):
            case.complete("Task_CheckHealth", {})
            case.complete("Task_CheckSchool", {})
            case.complete("Task_Summarise", {"again": True})
        assert len(case.workflow.subprocesses) == 3
    spiff.compact(case.workflow)
    assert len(case.workflow.subprocesses) == 0


def test_the_event_manager_indexes_waiting_events_by_task_id():
    workflow, _ = runtime.start(process_of("review_loop.bpmn"), {})
    waiting = list(workflow.event_manager.tasks.values())
    assert [t.task_spec.bpmn_id for t in waiting] == ["Event_ReviewLate"]
    assert workflow.event_manager.tasks[waiting[0].id] is waiting[0]


# -- parsing and running ------------------------------------------------------------------------

def test_bpmn_dmn_parser_looks_for_dmn_files_that_bpmn_parser_does_not():
    assert CamundaParser.__mro__[1] is BpmnDmnParser
    assert BpmnDmnParser._find_dependencies is not BpmnParser._find_dependencies


def test_start_events_of_event_sub_processes_are_triggered_by_rewiring_the_shared_start():
    # PathwayStartTask replaces this so that one case's trigger does not rewire every later case's spec.
    assert "self.connect(spec)" in inspect.getsource(BpmnStartTask.trigger_wf)
    assert "trigger_specs" in inspect.getsource(BpmnStartTask.__init__)
    spec = process_of("review_loop.bpmn").spec
    assert type(spec.start).__name__ == "PathwayStartTask" and "SubProcess_FamilyUpdate" in spec.start.trigger_specs


def test_event_sub_processes_ignore_is_interrupting():
    assert inspect.getsource(EventSubprocess).strip().endswith("pass")


def test_timers_keep_their_due_time_and_firing_in_internal_data():
    assert "_get_internal_data('event_value')" in inspect.getsource(inspect.getmodule(TimerEventDefinition))
    assert "_get_internal_data('event_fired', False)" in inspect.getsource(EventDefinition.has_fired)
    workflow, _ = runtime.start(process_of("review_loop.bpmn"), {})
    timer = next(iter(workflow.event_manager.tasks.values()))
    assert spiff.timer_value(timer) == timer.internal_data["event_value"] and not spiff.timer_fired(timer)


def test_the_bpmn_validator_holds_an_lxml_schema():
    assert isinstance(BpmnValidator().validator, etree.XMLSchema)
    assert spiff.xsd_errors(etree.fromstring((FIXTURES / "review_loop.bpmn").read_bytes())) == []


def test_camunda_multi_instance_rewrites_its_shared_task_spec_at_run_time():
    # Why the engine does not use SpiffWorkflow's Camunda multi-instance task for collections.
    assert "task_spec.data_input = " in inspect.getsource(camunda_mi.update_task_spec)


@pytest.mark.parametrize("name", ["_add_child", "_children", "_parent"])
def test_the_task_internals_the_adapter_uses_exist(name):
    workflow, _ = runtime.start(process_of("review_loop.bpmn"), {})
    assert hasattr(workflow.task_tree, name)


# -- what the constructs rely on ----------------------------------------------------------------

def test_an_event_based_gateway_takes_over_its_events_in_the_order_of_its_outputs():
    gateway = process_of("event_gateway.bpmn").spec.task_specs["Gateway_WaitReply"]
    assert isinstance(gateway, EventBasedGateway)
    assert [(spec.bpmn_id, type(d).__name__) for spec, d in spiff.gateway_events(gateway)] == [
        ("Event_Reply", "PathwayMessageEventDefinition"), ("Event_TenDays", "DurationTimer")]
    assert all(isinstance(spec.event_definition, NoneEventDefinition) for spec in gateway.outputs)


def test_the_start_event_parser_reads_no_error_or_escalation_and_no_parser_reads_links():
    source = inspect.getsource(StartEventParser.create_task)
    assert "ERROR_EVENT_XPATH" not in source and "ESCALATION_EVENT_XPATH" not in source
    assert "link" not in inspect.getsource(inspect.getmodule(StartEventParser)).lower()


def test_none_and_timer_start_event_sub_processes_start_with_the_process():
    assert "NoneEventDefinition, TimerEventDefinition" in inspect.getsource(BpmnStartTask.connect_or_add_trigger)
    spec = process_of("event_subprocess_timer.bpmn").spec
    assert [s.bpmn_id for s in spec.start.outputs] == ["Event_Referral", "SubProcess_Overrun"]


def test_get_tasks_reaches_into_sub_processes():
    # Why cancel_rest_of_process walks one process's own task list.
    case = Case(process_of("loop_parallel.bpmn", "loop_summary.bpmn"))
    case.complete("Task_CheckHealth", {})
    case.complete("Task_CheckSchool", {})
    names = [t.task_spec.name for t in case.workflow.get_tasks()]
    own = [t.task_spec.name for t in case.workflow.tasks.values()]
    assert "Task_Summarise" in names and "Task_Summarise" not in own


def test_a_conditional_event_reads_only_its_own_task_data():
    assert "evaluate(my_task, self.expression" in inspect.getsource(ConditionalEventDefinition.has_fired)


def test_multi_instance_merges_each_child_through_the_next_class_in_line():
    # ItemsMultiInstance.merge_child replaces MultiInstanceTask's: it must sit between the two in the MRO.
    mro = ParallelItemsMultiInstance.__mro__
    assert mro.index(ItemsMultiInstance) < mro.index(MultiInstanceTask)
    assert mro.index(mi_mixins.ParallelMultiInstanceTask) < mro.index(ItemsMultiInstance)
    assert "super().merge_child(workflow, child)" in inspect.getsource(mi_mixins.ParallelMultiInstanceTask.merge_child)
    assert "internal_data['merged'].append(str(child.id))" in inspect.getsource(MultiInstanceTask.merge_child)


def test_an_event_based_gateway_keeps_the_events_it_saw_after_it_ran():
    # Why PathwayEventBasedGateway resets them: they hold event definitions the serializer cannot save.
    from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway as GatewayMixin
    assert "reset" not in inspect.getsource(GatewayMixin._run_hook)
    assert "event_definition.reset(task)" in inspect.getsource(CatchingEvent._run_hook)


def test_data_associations_are_read_when_a_task_starts_and_written_when_it_completes():
    """spiff.add_data_mapping (Camunda 8's input/output mappings) relies on BpmnTaskSpec calling each input
    association's ``get`` in ``_update_hook``, each output association's ``set`` in ``_on_complete_hook``, and then
    popping each input association's ``bpmn_id`` from the data."""
    from SpiffWorkflow.bpmn.specs.bpmn_task_spec import BpmnTaskSpec
    update, complete = inspect.getsource(BpmnTaskSpec._update_hook), inspect.getsource(BpmnTaskSpec._on_complete_hook)
    assert "for obj in self.data_input_associations:\n            obj.get(my_task)" in update
    assert "for obj in self.data_output_associations:\n            obj.set(my_task)" in complete
    assert "my_task.data.pop(obj.bpmn_id, None)" in complete
    assert complete.index("obj.set(my_task)") < complete.index("my_task.data.pop(obj.bpmn_id, None)")


def test_migrate_workflow_resets_what_waits_and_spec_diff_walks_only_from_start():
    """spiff.migrate keeps each waiting task's data and internal data (its timer's due date) across
    ``migrate_workflow``'s reset, and aligns by id what SpecDiff's walk from Start does not reach (a triggered
    event sub-process)."""
    from SpiffWorkflow.bpmn.util import diff

    reset = inspect.getsource(Task.reset_branch)
    assert "self.internal_data = {}" in reset and "_drop_children" in reset
    assert "TaskState.READY|TaskState.WAITING" in inspect.getsource(diff.migrate_workflow)
    assert "self._align(original.start, original, new)" in inspect.getsource(diff.SpecDiff.__init__)
    assert "spec_diff.alignment[task.task_spec]" in inspect.getsource(diff.WorkflowDiff._align)
    assert "self._registry.convert(spec)" in inspect.getsource(diff.SpecDiff._compare_task_specs)
