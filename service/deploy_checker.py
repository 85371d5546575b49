"""What the deploy checks' fork server loads once, before it forks a checker for each deploy
(``service.deploy_checks``): the checks and the scenario runner imported, and a small pathway parsed, so that
SpiffWorkflow's parser, lxml's XPath and the BPMN schema are ready in every checker, and what they hold is frozen
out of the garbage collector. A checker spent 0.4 s on importing the scenario runner, warming the parser and a
full collection over everything it inherited, twenty times the checks' own work on a small pathway; an analyst
waits for that on every save. Imported only by the fork server.
"""
from __future__ import annotations

import gc

from service import deploy_checks, scenarios  # noqa: F401 (scenarios: imported by the checks when they run)
from service.engine.bundle import DeploymentInvalid, build_bundle

#: A user task with a timer on its boundary and a flow on: the parser's paths a pathway takes.
_WARM_UP = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Definitions_WarmUp"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="warm_up" name="Warm up" isExecutable="true">
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Look" />
    <bpmn:userTask id="Task_Look" name="Look"><bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="Event_Late" cancelActivity="false" attachedToRef="Task_Look">
      <bpmn:timerEventDefinition><bpmn:timeDuration>P1D</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Look" targetRef="Event_End" />
    <bpmn:endEvent id="Event_End"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _warm_up() -> None:
    try:
        build_bundle({"warm_up.bpmn": _WARM_UP})
    except DeploymentInvalid:  # the parse, not the verdict, is what warms the checkers
        pass
    except Exception:  # noqa: BLE001
        # Best effort: the fork server survives only an ImportError of the modules it loads, and a cold checker
        # checks as well, only slower.
        pass


_warm_up()
gc.collect()  # the warm-up's own garbage goes first
# Everything loaded so far lives as long as the fork server: kept out of the collector's sweeps, so that a checker
# does not walk (and copy, page by page) every object it inherited at its first full collection (0.1 s).
gc.freeze()
