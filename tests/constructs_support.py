"""Small BPMN diagrams for the construct tests, written as a modeller draws them, with the house conventions.

``pathway(key, nodes, flows)`` makes a Camunda 7 diagram of one executable process: ``nodes`` are the flow
nodes' XML (see :func:`task`, :func:`end`...), ``flows`` are ``(source, target[, condition])``; each node is
given its ``incoming``/``outgoing`` and the process catches ``immediate_risk`` (docs/safeguarding.md).
"""
from __future__ import annotations

import io
import re

from lxml import etree
from xml.sax.saxutils import escape

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'id="Definitions_{key}" targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler" '
        'exporterVersion="5.20.0">\n')

IMMEDIATE_RISK = """
    <bpmn:subProcess id="SubProcess_ImmediateRisk_{key}" name="Immediate risk of harm" triggeredByEvent="true">
      <bpmn:startEvent id="Event_ImmediateRisk_{key}" name="Immediate risk reported" isInterrupting="false">
        <bpmn:outgoing>Flow_ImmediateRisk_{key}</bpmn:outgoing>
        <bpmn:messageEventDefinition id="Definition_ImmediateRisk_{key}" messageRef="Message_immediate_risk"/>
      </bpmn:startEvent>
      <bpmn:userTask id="Task_UrgentReferral_{key}" name="Urgent referral" camunda:candidateGroups="front_door">
        <bpmn:incoming>Flow_ImmediateRisk_{key}</bpmn:incoming>
        <bpmn:outgoing>Flow_UrgentReferral_{key}</bpmn:outgoing>
      </bpmn:userTask>
      <bpmn:endEvent id="Event_UrgentReferralMade_{key}">
        <bpmn:incoming>Flow_UrgentReferral_{key}</bpmn:incoming>
      </bpmn:endEvent>
      <bpmn:sequenceFlow id="Flow_ImmediateRisk_{key}" sourceRef="Event_ImmediateRisk_{key}" targetRef="Task_UrgentReferral_{key}"/>
      <bpmn:sequenceFlow id="Flow_UrgentReferral_{key}" sourceRef="Task_UrgentReferral_{key}" targetRef="Event_UrgentReferralMade_{key}"/>
    </bpmn:subProcess>
"""


def task(node_id: str, name: str | None = None, role: str = "social_worker", inner: str = "", kind: str = "userTask",
         attrs: str = "") -> str:
    """A person's step (user task unless ``kind`` says otherwise) for ``role``."""
    return (f'<bpmn:{kind} id="{node_id}" name="{escape(name or node_id)}" camunda:candidateGroups="{role}" {attrs}>'
            f'{inner}</bpmn:{kind}>')


def event(kind: str, node_id: str, definition: str = "", attrs: str = "", outcome: str | None = None) -> str:
    """An event: ``kind`` is startEvent, endEvent, intermediateCatchEvent, boundaryEvent...; ``outcome`` on an end."""
    props = (f'<bpmn:extensionElements><camunda:properties><camunda:property name="outcome" value="{outcome}"/>'
             f'</camunda:properties></bpmn:extensionElements>') if outcome else ""
    return f'<bpmn:{kind} id="{node_id}" {attrs}>{props}{definition}</bpmn:{kind}>'


def start(node_id: str = "Event_Start", definition: str = "", attrs: str = "") -> str:
    return event("startEvent", node_id, definition, attrs)


def end(node_id: str, outcome: str | None = None, definition: str = "") -> str:
    return event("endEvent", node_id, definition, outcome=outcome)


def message(name: str) -> str:
    """A message event definition (the message itself is declared by :func:`pathway`)."""
    return f'<bpmn:messageEventDefinition id="Definition_{name}_{_count()}" messageRef="Message_{name}"/>'


def timer(kind: str, value: str) -> str:
    """A timer definition: ``kind`` timeDuration, timeDate or timeCycle."""
    return (f'<bpmn:timerEventDefinition id="Timer_{_count()}"><bpmn:{kind} xsi:type="bpmn:tFormalExpression">'
            f'{escape(value)}</bpmn:{kind}></bpmn:timerEventDefinition>')


_COUNTER = [0]


def _count() -> int:
    _COUNTER[0] += 1
    return _COUNTER[0]


def pathway(key: str, nodes: list[str], flows: list[tuple], *, messages: tuple[str, ...] = (),
            extra: str = "", immediate_risk: bool = True, process_attrs: str = "") -> bytes:
    """A deployable diagram of one process ``key``: ``nodes`` joined by ``flows``, messages declared.

    A flow is ``(source, target)`` or ``(source, target, condition)``; it is drawn in the (sub-)process that
    holds its source, with a ``Flow_<source>_<target>`` id, and each end gets its incoming / outgoing.
    """
    body = "\n    ".join(nodes)
    names = sorted({"immediate_risk", *messages, *re.findall(r'messageRef="Message_([^"]+)"', body + extra)})
    declared = "".join(f'  <bpmn:message id="Message_{n}" name="{n}"/>\n' for n in names)
    risk = IMMEDIATE_RISK.format(key=key) if immediate_risk else ""
    text = (HEAD.format(key=key) + declared
            + f'  <bpmn:process id="{key}" name="{key}" isExecutable="true" {process_attrs}>\n    {body}\n'
            + f"{extra}{risk}  </bpmn:process>\n</bpmn:definitions>\n")
    root = etree.fromstring(text.encode())
    for source, target, *condition in flows:
        flow_id = f"Flow_{source}_{target}"
        origin = _by_id(root, source)
        flow = etree.SubElement(origin.getparent(), f"{{{BPMN}}}sequenceFlow", id=flow_id, sourceRef=source,
                                targetRef=target)
        if condition and condition[0]:
            expression = etree.SubElement(flow, f"{{{BPMN}}}conditionExpression")
            expression.set(f"{{{XSI}}}type", "bpmn:tFormalExpression")
            expression.text = condition[0]
        _wire(origin, "outgoing", flow_id)
        _wire(_by_id(root, target), "incoming", flow_id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: What comes before a flow node's incoming / outgoing (BPMN's order: documentation, extensions, incoming, outgoing).
_BEFORE = {"incoming": ("documentation", "extensionElements", "incoming"),
           "outgoing": ("documentation", "extensionElements", "incoming", "outgoing")}


def _by_id(root, node_id: str):
    found = root.xpath(f"//*[@id='{node_id}']")
    assert found, f"no element {node_id}"
    return found[0]


def _wire(node, direction: str, flow_id: str) -> None:
    position = sum(1 for child in node if isinstance(child.tag, str) and etree.QName(child).localname
                   in _BEFORE[direction])
    ref = etree.Element(f"{{{BPMN}}}{direction}")
    ref.text = flow_id
    node.insert(position, ref)


def deploy(api, *diagrams: tuple[str, bytes], as_: str = "analyst"):
    """POST /deployments with the named files (bytes)."""
    files = [(io.BytesIO(content), name) for name, content in diagrams]
    return api.post("/deployments", data={"files": files}, as_=as_, content_type="multipart/form-data")


def parallel_answers() -> dict[str, bytes]:
    """Two parallel branches of two person's steps each (A1, A2 | B1, B2), a gateway on ``x`` and ``y`` after
    they join, and a hand-over to ``parallel_next`` on the high way: for answers given again in one branch while
    the other branch's step is open (issue 13)."""
    first = pathway("parallel_answers", [
        start(), event("parallelGateway", "Gateway_Split"),
        task("Task_A1"), task("Task_A2"), task("Task_B1"), task("Task_B2"),
        event("parallelGateway", "Gateway_Join"),
        event("exclusiveGateway", "Gateway_Risk", attrs='default="Flow_Gateway_Risk_Task_Low"'),
        task("Task_High"), task("Task_Low"),
        end("Event_HandedOver", "handed_over", f'<bpmn:messageEventDefinition id="Definition_HandOver_{_count()}" '
                                               f'messageRef="Message_HandOver"/>'),
        end("Event_Low", "low"),
    ], [("Event_Start", "Gateway_Split"), ("Gateway_Split", "Task_A1"), ("Gateway_Split", "Task_B1"),
        ("Task_A1", "Task_A2"), ("Task_B1", "Task_B2"), ("Task_A2", "Gateway_Join"), ("Task_B2", "Gateway_Join"),
        ("Gateway_Join", "Gateway_Risk"), ("Gateway_Risk", "Task_High", "x > 5 and y > 5"),
        ("Gateway_Risk", "Task_Low"), ("Task_High", "Event_HandedOver"), ("Task_Low", "Event_Low")])
    first = first.replace(b'name="HandOver"', b'name="start:parallel_next"')
    second = pathway("parallel_next", [start(), task("Task_Next"), end("Event_Next", "done")],
                     [("Event_Start", "Task_Next"), ("Task_Next", "Event_Next")])
    return {"parallel_answers.bpmn": first, "parallel_next.bpmn": second}
