"""New pathways for the analyst workspace: a blank template that passes the deploy checks, or a copy of one of
the council's pathways under a new process id and name (``analyst.new_pathway``).

The blank template follows docs/safeguarding.md: a lane per role (the social worker's steps, the front door's),
an ``immediate_risk`` event sub-process whose first step is an urgent user task for the front door, and an
``outcome`` on the end of the case. A copy is the pathway's diagram under a new file name with its process id
and name changed; it uses the council's decision tables and forms as the original does (by their ids).
"""
from __future__ import annotations

import json
import re
from xml.sax.saxutils import quoteattr

from lxml import etree

from service.engine.bundle import BPMN_NS, NS
from service.engine.xml import XmlRejected, parse_xml
from service.errors import InvalidData

KEY = re.compile(r"^[a-z][a-z0-9_]{2,62}$")


def check_key_and_name(key: str, name: str) -> tuple[str, str]:
    """The new pathway's process id and name, or InvalidData saying what to write."""
    key, name = (key or "").strip(), " ".join((name or "").split())
    errors = {}
    if not name:
        errors["name"] = "Enter the pathway's name, as workers will see it"
    elif len(name) > 120:
        errors["name"] = "The name must be 120 characters or fewer"
    if not KEY.match(key):
        errors["key"] = ("Enter a process id of 3 to 63 lower-case letters, digits and '_', starting with a letter "
                         "(such as 'halton_early_help')")
    if errors:
        raise InvalidData("the new pathway needs a name and a process id", errors)
    return key, name


def blank(key: str, name: str) -> bytes:
    """A minimal Camunda 7 diagram that deploys: assess, close with an outcome, and immediate risk to the front
    door at any time. The analyst draws the rest."""
    return _BLANK.format(key=key, name=quoteattr(name)).encode("utf-8")


#: A new form's or decision's id: an XML name (letters, digits, '_' and '-', starting with a letter or '_').
FILE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
#: What the editor adds beside a diagram: a form (form-js) or a decision table (DMN 1.3), by kind.
NEW_FILE_SUFFIXES = {"form": ".form", "dmn": ".dmn"}


def check_file_id(kind: str, file_id: str) -> str:
    """A new form's or decision table's id, or InvalidData saying what to write."""
    file_id = (file_id or "").strip()
    if kind not in NEW_FILE_SUFFIXES:
        raise InvalidData(f"'{kind}' is not a kind of file the editor adds", {"kind": "Add a form or a decision table"})
    if not FILE_ID.match(file_id):
        example = "Form_Assessment" if kind == "form" else "Decision_Level"
        raise InvalidData(f"'{file_id}' is not an id", {"id": (
            f"Enter an id of up to 63 letters, digits, '_' and '-', starting with a letter (such as '{example}')")})
    return file_id


def new_file_name(key: str, kind: str, file_id: str) -> str:
    """The new file's name: ``<process key>_<id>.form`` or ``.dmn``, lower-case."""
    return f"{key}_{file_id}".lower().replace("-", "_") + NEW_FILE_SUFFIXES[kind]


def blank_form(form_id: str) -> bytes:
    """A form-js schema (Camunda 7) with the id ``form_id`` and one text field, which the deploy checks accept."""
    schema = {
        "components": [{"label": "Your answer", "type": "textfield", "key": "answer", "id": "Field_Answer"}],
        "type": "default",
        "id": form_id,
        "executionPlatform": "Camunda Platform",
        "executionPlatformVersion": "7.20.0",
        "schemaVersion": 16,
    }
    return (json.dumps(schema, indent=2) + "\n").encode("utf-8")


def blank_table(decision_id: str) -> bytes:
    """A DMN 1.3 decision ``decision_id`` whose table has one input (of no set type), one output and one rule, which
    the deploy checks accept. The analyst writes the input's expression and the rules after the case's data."""
    return _BLANK_TABLE.format(id=decision_id).encode("utf-8")


def copy_diagram(diagram: bytes, filename: str, old_key: str, key: str, name: str) -> bytes:
    """``diagram`` (pathway ``old_key``'s file) with the process id ``key`` and name ``name``: the process, its
    participant and the drawing's plane. A diagram holding other executable processes is refused (their ids
    would clash with the original's)."""
    try:
        root = parse_xml(diagram, filename)
    except XmlRejected as rejected:
        raise InvalidData(f"{filename} cannot be read: {rejected}", {"source": "That pathway's diagram cannot be read"})
    processes = root.findall("bpmn:process", NS)
    others = [p.get("id") for p in processes if p.get("id") != old_key and p.get("isExecutable") != "false"]
    if others:
        raise InvalidData(f"{filename} also holds the process {', '.join(others)}",
                          {"source": f"{filename} holds other processes too ({', '.join(others)}): copy it in "
                                     "Camunda Modeler, giving each process a new id"})
    for process in processes:
        if process.get("id") == old_key:
            process.set("id", key)
            process.set("name", name)
    for participant in root.iter(f"{{{BPMN_NS}}}participant"):
        if participant.get("processRef") == old_key:
            participant.set("processRef", key)
            participant.set("name", name)
    for element in root.iter():
        if isinstance(element.tag, str) and element.get("bpmnElement") == old_key:
            element.set("bpmnElement", key)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


_BLANK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Definitions_{key}" targetNamespace="http://bpmn.io/schema/bpmn" exporter="Step Pathways" exporterVersion="1">
  <bpmn:collaboration id="Collaboration_{key}">
    <bpmn:participant id="Participant_{key}" name={name} processRef="{key}" />
  </bpmn:collaboration>
  <bpmn:message id="Message_ImmediateRisk" name="immediate_risk" />
  <bpmn:process id="{key}" name={name} isExecutable="true">
    <bpmn:laneSet id="LaneSet_{key}">
      <bpmn:lane id="Lane_SocialWorker" name="Social worker">
        <bpmn:flowNodeRef>Event_Start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Task_Assess</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Event_Closed</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_FrontDoor" name="Front door">
        <bpmn:flowNodeRef>SubProcess_ImmediateRisk</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="Event_Start" name="Referral received">
      <bpmn:outgoing>Flow_StartToAssess</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="Task_Assess" name="Assess the family's needs" camunda:dueDate="P5D">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="assessment_summary" label="What the family need" type="string">
            <camunda:validation><camunda:constraint name="required" /></camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_StartToAssess</bpmn:incoming>
      <bpmn:outgoing>Flow_AssessToClosed</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_Closed" name="Closed">
      <bpmn:extensionElements>
        <camunda:properties><camunda:property name="outcome" value="closed" /></camunda:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_AssessToClosed</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_StartToAssess" sourceRef="Event_Start" targetRef="Task_Assess" />
    <bpmn:sequenceFlow id="Flow_AssessToClosed" sourceRef="Task_Assess" targetRef="Event_Closed" />
    <bpmn:subProcess id="SubProcess_ImmediateRisk" name="Immediate risk of harm" triggeredByEvent="true">
      <bpmn:startEvent id="Event_ImmediateRisk" name="Immediate risk raised">
        <bpmn:outgoing>Flow_ImmediateRiskToReferral</bpmn:outgoing>
        <bpmn:messageEventDefinition id="MessageEventDefinition_ImmediateRisk" messageRef="Message_ImmediateRisk" />
      </bpmn:startEvent>
      <bpmn:userTask id="Task_UrgentReferral" name="Urgent referral to the front door" camunda:candidateGroups="front_door">
        <bpmn:extensionElements>
          <camunda:formData>
            <camunda:formField id="referral_action" label="What the front door did" type="string">
              <camunda:validation><camunda:constraint name="required" /></camunda:validation>
            </camunda:formField>
          </camunda:formData>
        </bpmn:extensionElements>
        <bpmn:incoming>Flow_ImmediateRiskToReferral</bpmn:incoming>
        <bpmn:outgoing>Flow_ReferralToSafeguarding</bpmn:outgoing>
      </bpmn:userTask>
      <bpmn:endEvent id="Event_SafeguardingReferral" name="Safeguarding referral made">
        <bpmn:extensionElements>
          <camunda:properties><camunda:property name="outcome" value="safeguarding_referral" /></camunda:properties>
        </bpmn:extensionElements>
        <bpmn:incoming>Flow_ReferralToSafeguarding</bpmn:incoming>
      </bpmn:endEvent>
      <bpmn:sequenceFlow id="Flow_ImmediateRiskToReferral" sourceRef="Event_ImmediateRisk" targetRef="Task_UrgentReferral" />
      <bpmn:sequenceFlow id="Flow_ReferralToSafeguarding" sourceRef="Task_UrgentReferral" targetRef="Event_SafeguardingReferral" />
    </bpmn:subProcess>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_{key}">
    <bpmndi:BPMNPlane id="BPMNPlane_{key}" bpmnElement="Collaboration_{key}">
      <bpmndi:BPMNShape id="Participant_{key}_di" bpmnElement="Participant_{key}" isHorizontal="true">
        <dc:Bounds x="160" y="80" width="720" height="460" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Lane_SocialWorker_di" bpmnElement="Lane_SocialWorker" isHorizontal="true">
        <dc:Bounds x="190" y="80" width="690" height="200" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Lane_FrontDoor_di" bpmnElement="Lane_FrontDoor" isHorizontal="true">
        <dc:Bounds x="190" y="280" width="690" height="260" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Event_Start_di" bpmnElement="Event_Start">
        <dc:Bounds x="252" y="162" width="36" height="36" />
        <bpmndi:BPMNLabel><dc:Bounds x="228" y="205" width="84" height="14" /></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Task_Assess_di" bpmnElement="Task_Assess">
        <dc:Bounds x="350" y="140" width="100" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Event_Closed_di" bpmnElement="Event_Closed">
        <dc:Bounds x="522" y="162" width="36" height="36" />
        <bpmndi:BPMNLabel><dc:Bounds x="524" y="205" width="32" height="14" /></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="Flow_StartToAssess_di" bpmnElement="Flow_StartToAssess">
        <di:waypoint x="288" y="180" /><di:waypoint x="350" y="180" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="Flow_AssessToClosed_di" bpmnElement="Flow_AssessToClosed">
        <di:waypoint x="450" y="180" /><di:waypoint x="522" y="180" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNShape id="SubProcess_ImmediateRisk_di" bpmnElement="SubProcess_ImmediateRisk" isExpanded="true">
        <dc:Bounds x="240" y="310" width="440" height="200" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Event_ImmediateRisk_di" bpmnElement="Event_ImmediateRisk">
        <dc:Bounds x="282" y="392" width="36" height="36" />
        <bpmndi:BPMNLabel><dc:Bounds x="262" y="435" width="76" height="27" /></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Task_UrgentReferral_di" bpmnElement="Task_UrgentReferral">
        <dc:Bounds x="390" y="370" width="100" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Event_SafeguardingReferral_di" bpmnElement="Event_SafeguardingReferral">
        <dc:Bounds x="572" y="392" width="36" height="36" />
        <bpmndi:BPMNLabel><dc:Bounds x="550" y="435" width="80" height="27" /></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="Flow_ImmediateRiskToReferral_di" bpmnElement="Flow_ImmediateRiskToReferral">
        <di:waypoint x="318" y="410" /><di:waypoint x="390" y="410" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="Flow_ReferralToSafeguarding_di" bpmnElement="Flow_ReferralToSafeguarding">
        <di:waypoint x="490" y="410" /><di:waypoint x="572" y="410" />
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


_BLANK_TABLE = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" xmlns:dmndi="https://www.omg.org/spec/DMN/20191111/DMNDI/" xmlns:dc="http://www.omg.org/spec/DMN/20180521/DC/" id="Definitions_{id}" name="{id}" namespace="http://camunda.org/schema/1.0/dmn" exporter="Step Pathways" exporterVersion="1">
  <decision id="{id}" name="{id}">
    <decisionTable id="DecisionTable_{id}" hitPolicy="UNIQUE">
      <input id="Input_{id}" label="Input">
        <inputExpression id="InputExpression_{id}">
          <text>answer</text>
        </inputExpression>
      </input>
      <output id="Output_{id}" label="Result" name="result" typeRef="string" />
      <rule id="Rule_{id}">
        <inputEntry id="UnaryTests_{id}"><text>-</text></inputEntry>
        <outputEntry id="LiteralExpression_{id}"><text>"yes"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
  <dmndi:DMNDI>
    <dmndi:DMNDiagram id="DMNDiagram_{id}">
      <dmndi:DMNShape id="DMNShape_{id}" dmnElementRef="{id}">
        <dc:Bounds height="80" width="180" x="160" y="100" />
      </dmndi:DMNShape>
    </dmndi:DMNDiagram>
  </dmndi:DMNDI>
</definitions>
"""
