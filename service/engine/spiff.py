"""Every use of SpiffWorkflow 3.2.0 internals, in one place.

The rest of the engine calls SpiffWorkflow's public API (``BpmnWorkflow``,
``Task.run``, ``do_engine_steps``...) and, for anything that reaches into its
private attributes or its task tree, the functions here. tests/test_spiff_adapter.py
pins the behaviour they rely on, so that a new SpiffWorkflow fails there first.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import _EndJoin
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

#: The SpiffWorkflow release this module was written against (pinned in pyproject.toml).
SPIFF_VERSION = "3.2.0"


# -- keeping a case's task tree bounded -------------------------------------------------------

def compact(workflow: BpmnWorkflow) -> int:
    """Drop what finished branches leave in the task tree; return how many tasks went.

    SpiffWorkflow keeps every task a case ever ran, as one tree: each turn of a
    loop hangs the next iteration below the last, each repeating timer adds a
    branch. State and step time grow with the case's age, and past a depth of
    about 1,000 its recursive ancestor walks fail. The audit log keeps the
    history, so after each step this keeps only what a later step can read:
    unfinished tasks and the path to them, the split a waiting boundary join
    looks up, the join tokens a gateway has not yet consumed, the last task run.
    """
    if workflow.is_completed():  # nothing runs any more: keep what the final data is read from
        return 0
    removed = _prune_fired_cycles(workflow)
    for key in [None, *workflow.subprocesses]:
        process = workflow if key is None else workflow.subprocesses.get(key)
        if process is not None and not process.is_completed():  # an earlier pass may have dropped it
            removed += _compact_process(workflow, process)
    return removed + _drop_orphan_subprocesses(workflow)


def _compact_process(top: BpmnWorkflow, process) -> int:
    tasks = list(process.tasks.values())
    tokens = _unconsumed_join_tokens(tasks) | _fold_ended_branches(tasks)
    keep = {process.task_tree.id} | _splits_joins_will_read(tasks)
    if process.last_task is not None:
        keep.add(process.last_task.id)
    live = _live_tasks(process.task_tree, tokens | keep)
    removed = 0
    for task in tasks:
        if task.id not in process.tasks or not _finished(task):
            continue
        for child in task.children:
            if child.id not in live:
                removed += _remove_branch(top, process, task, child)
        if task.id not in keep and _may_splice(task, tokens):
            _splice(top, process, task)
            removed += 1
    return removed


def _finished(task: Task) -> bool:
    return task.has_state(TaskState.FINISHED_MASK)


def _splits_joins_will_read(tasks: list[Task]) -> set:
    """The split each unfinished boundary or start-event join finds as its nearest ancestor of that spec."""
    splits = set()
    for task in tasks:
        name = getattr(task.task_spec, "split_task", None) if isinstance(task.task_spec, Join) else None
        if name and not _finished(task):
            ancestor = task.parent
            while ancestor is not None and ancestor.task_spec.name != name:
                ancestor = ancestor.parent
            if ancestor is not None:
                splits.add(ancestor.id)
    return splits


def _unconsumed_join_tokens(tasks: list[Task]) -> set:
    """Finished arrivals at a converging gateway that the gateway has not fired on yet.

    A parallel or inclusive gateway counts a token per incoming flow from the
    finished (often cancelled) copies of itself and their parents; once a copy
    has completed, the arrivals before it are spent.
    """
    fired: dict[str, float] = {}
    for task in tasks:
        if _counts_tokens(task) and task.state == TaskState.COMPLETED:
            fired[task.task_spec.name] = max(fired.get(task.task_spec.name, 0.0), task.last_state_change)
    return {task.id for task in tasks if _counts_tokens(task) and _finished(task)
            and task.state != TaskState.COMPLETED and task.last_state_change > fired.get(task.task_spec.name, -1.0)}


def _fold_ended_branches(tasks: list[Task]) -> set:
    """Keep one of the branches that reached an end event, holding the data of them all.

    The process end (an ``_EndJoin``) waits for every branch; each branch that arrives cancels the copy
    waiting before it, and when the last one fires it merges, oldest first, the data of every cancelled
    copy's end event. Folding that data into the newest end event keeps the final data the same while
    the older branches go.
    """
    ended = sorted((t for t in tasks if isinstance(t.task_spec, _EndJoin) and t.state == TaskState.CANCELLED
                    and t.parent is not None), key=lambda t: t.last_state_change)
    if not ended:
        return set()
    if len(ended) > 1:
        folded: dict[str, Any] = {}
        for task in ended:
            DeepMerge.merge(folded, task.parent.data)
        ended[-1].parent.data = folded
    return {ended[-1].id}


def _counts_tokens(task: Task) -> bool:
    return isinstance(task.task_spec, UnstructuredJoin) and not isinstance(task.task_spec, _EndJoin)


def _live_tasks(root: Task, keep: set) -> set:
    """Ids of the tasks that are unfinished or kept, and of every ancestor of one."""
    live, order, stack = set(), [], [root]
    while stack:  # iterative: a tree that is already deep must not overflow the stack here too
        task = stack.pop()
        order.append(task)
        stack.extend(task.children)
    for task in reversed(order):
        if task.id in keep or not _finished(task) or any(c in live for c in task._children):
            live.add(task.id)
    return live


def _may_splice(task: Task, tokens: set) -> bool:
    """A finished task with one child may leave the tree, unless a join reads it as that child's parent."""
    if task.parent is None or len(task._children) != 1:
        return False
    child = task.children[0]
    return not (isinstance(child.task_spec, Join) and (not _finished(child) or child.id in tokens))


def _splice(top: BpmnWorkflow, process, task: Task) -> None:
    """Put ``task``'s only child in its place under its parent."""
    parent, child = task.parent, task.children[0]
    parent._children[parent._children.index(task.id)] = child.id
    child._parent = parent.id
    task._children = []
    _forget(top, process, [task])


def _remove_branch(top: BpmnWorkflow, process, parent: Task, child: Task) -> int:
    branch = list(_iterate(child))
    parent._children.remove(child.id)
    _forget(top, process, branch)
    return len(branch)


def _iterate(task: Task) -> Iterable[Task]:
    stack = [task]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)


def _forget(top: BpmnWorkflow, process, tasks: list[Task]) -> None:
    for task in tasks:
        process.tasks.pop(task.id, None)
        top.event_manager.remove_task(task)
        _drop_subprocess(top, task.id)


def _drop_subprocess(top: BpmnWorkflow, task_id) -> int:
    """Forget the sub-process a removed task ran, with those its own tasks ran."""
    subprocess = top.subprocesses.pop(task_id, None)
    if subprocess is None:
        return 0
    for task in subprocess.tasks.values():
        top.event_manager.remove_task(task)
        _drop_subprocess(top, task.id)
    return len(subprocess.tasks)


def _drop_orphan_subprocesses(top: BpmnWorkflow) -> int:
    """Sub-processes whose task has left the tree (SpiffWorkflow never deletes them itself)."""
    owners = set(top.tasks).union(*(sp.tasks for sp in top.subprocesses.values()))
    return sum(_drop_subprocess(top, key) for key in [k for k in top.subprocesses if k not in owners])


def _prune_fired_cycles(workflow: BpmnWorkflow) -> int:
    """Drop what each firing of a repeating timer leaves behind, below the timer that keeps waiting.

    SpiffWorkflow adds a branch per firing under the waiting timer and never removes it: the finished
    reminder path, and another copy of the link back to the attached task.
    """
    removed = 0
    for task in list(workflow.get_tasks(state=TaskState.WAITING)):
        if not isinstance(getattr(task.task_spec, "event_definition", None), CycleTimerEventDefinition):
            continue
        links = [c for c in task.children if c.task_spec.name.endswith(".BoundaryEventJoin")]
        for child in list(task.children):
            if child in links:
                prunable = child is not links[0] and all(not t.has_state(TaskState.STARTED | TaskState.COMPLETED)
                                                         for t in child)
            else:
                prunable = all(t.has_state(TaskState.FINISHED_MASK) or _is_process_end(t) for t in child)
            if prunable:
                removed += _remove_branch(workflow, task.workflow, task, child)
    return removed


def _is_process_end(task: Task) -> bool:
    # A finished reminder branch still holds the process's end join and end, waiting for the main path.
    return task.task_spec.name == "End" or task.task_spec.name.endswith(".EndJoin")


def tree_depth(workflow: BpmnWorkflow) -> int:
    """The deepest task's depth, over the case and its sub-processes (for tests and benchmarks)."""
    deepest = 0
    for process in [workflow, *workflow.subprocesses.values()]:
        stack = [(process.task_tree, 0)]
        while stack:
            task, depth = stack.pop()
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in task.children)
    return deepest
