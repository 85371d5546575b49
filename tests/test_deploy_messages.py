"""Deploy messages a non-developer can act on (issue 17, item 8), through the API: refusals in plain words
with the fix, and warnings that refuse nothing."""
from __future__ import annotations

import io

from conftest import FIXTURES
from service.deploy_messages import suggest_rewrite

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_text()
DMN = (PATHWAY / "test_level.dmn").read_bytes()

#: A pathway with no person's step (the safeguarding conventions do not apply): an end without an outcome
#: is deployed, with a warning.
CALCULATION = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs_Calc" targetNamespace="x">
  <bpmn:process id="tiny_calculation" name="Tiny calculation" isExecutable="true">
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="Task_Sum" name="Add up" scriptFormat="python">
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
      <bpmn:script>total = 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="Event_Done" name="Done"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Sum" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Sum" targetRef="Event_Done" />
  </bpmn:process>
</bpmn:definitions>
"""

CAMUNDA_8 = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Defs_C8" targetNamespace="x" modeler:executionPlatform="Camunda Cloud" modeler:executionPlatformVersion="8.5.0">
  <bpmn:process id="c8_review" name="C8 review" isExecutable="true">
    <bpmn:startEvent id="Event_Start"><bpmn:outgoing>Flow_1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="Task_Review" name="Review">
      <bpmn:extensionElements><zeebe:formDefinition formKey="camunda-forms:bpmn:review" /></bpmn:extensionElements>
      <bpmn:incoming>Flow_1</bpmn:incoming><bpmn:outgoing>Flow_2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="Event_Done"><bpmn:incoming>Flow_2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="Event_Start" targetRef="Task_Review" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Task_Review" targetRef="Event_Done" />
  </bpmn:process>
</bpmn:definitions>
"""


def upload(api, files: dict[str, str | bytes]):
    data = {"files": [(io.BytesIO(c.encode() if isinstance(c, str) else c), n) for n, c in files.items()]}
    return api.post("/deployments", data=data, as_="analyst", content_type="multipart/form-data")


def refused(api, bpmn: str, **extra) -> list[dict]:
    response = upload(api, {"review.bpmn": bpmn, "test_level.dmn": DMN, **extra})
    assert response.status_code == 400, response.json
    return response.json["errors"]


def test_a_duplicate_id_is_named_with_its_lines(api):
    bpmn = REVIEW.replace('<bpmn:sequenceFlow id="Flow_ToAssess"',
                          '<bpmn:textAnnotation id="Task_Assess"><bpmn:text>note</bpmn:text></bpmn:textAnnotation>\n'
                          '    <bpmn:sequenceFlow id="Flow_ToAssess"')
    lines = [n for n, line in enumerate(bpmn.splitlines(), 1) if 'id="Task_Assess"' in line]
    errors = refused(api, bpmn)
    assert {"file": "review.bpmn", "element": "Task_Assess",
            "message": f"duplicate id 'Task_Assess' (lines {lines[0]} and {lines[1]}): every element needs an id of "
                       f"its own; rename one of them (in Camunda Modeler: select it, General > ID)"} in errors
    assert not any("xs:ID" in e["message"] for e in errors)


def test_a_flow_without_a_condition_names_its_gateway(api):
    errors = refused(api, REVIEW.replace(' default="Flow_ToWait"', ""))
    [error] = [e for e in errors if "gateway" in e["message"]]
    assert error["element"] == "Gateway_Level"
    assert error["message"].startswith("the exclusive gateway 'Level?' (Gateway_Level) has an outgoing flow "
                                       "Flow_ToWait to 'Family update' with no condition")
    assert "make it the gateway's default flow" in error["message"]


def test_camunda_7_idioms_get_their_rewrite(api):
    contains = REVIEW.replace('${level == "acute" &amp;&amp; risk}', '${levels.contains("statutory")}')
    [error] = [e for e in refused(api, contains) if e["element"] == "Flow_ToApprove"]
    assert 'write it as ${"statutory" in levels}' in error["message"]
    variable = REVIEW.replace('${level == "acute" &amp;&amp; risk}', "${execution.getVariable('level') == \"acute\"}")
    [error] = [e for e in refused(api, variable) if e["element"] == "Flow_ToApprove"]
    assert 'write it as ${level == "acute"}' in error["message"]
    assert suggest_rewrite("${x == 1}") is None


def test_a_form_key_the_service_cannot_show_is_refused(api):
    for key in ("embedded:app:forms/assess.html", "camunda-forms:deployment:missing.form"):
        bpmn = REVIEW.replace('<bpmn:userTask id="Task_Assess" name="Assess the family"',
                              f'<bpmn:userTask id="Task_Assess" name="Assess the family" camunda:formKey="{key}"')
        [error] = [e for e in refused(api, bpmn) if e["element"] == "Task_Assess"]
        assert error["message"].startswith(f"the form key '{key}' cannot be shown here")
        assert "camunda:formRef" in error["message"]


def test_a_camunda_8_diagram_is_refused_for_what_it_does_not_have_not_for_being_camunda_8(api):
    """Camunda 8 diagrams run (docs/writing-pathways.md): a refused one is told what to fix, element by element."""
    response = upload(api, {"c8.bpmn": CAMUNDA_8})
    assert response.status_code == 400
    errors = response.json["errors"]
    assert all(e["element"] for e in errors), errors
    assert not any("Camunda 8 diagram" in e["message"] for e in errors), errors
    assert any(e["element"] == "Task_Review" and "form" in e["message"] for e in errors), errors


def test_warnings_come_back_with_the_deploy(api):
    bpmn = REVIEW.replace('name="Team manager"', 'name="Panel chair"') \
                 .replace('camunda:candidateGroups="front_door"', 'camunda:candidateGroups="Front Door"')
    response = upload(api, {"review.bpmn": bpmn, "test_level.dmn": DMN, "calculation.bpmn": CALCULATION})
    assert response.status_code == 201, response.json
    warnings = {(w["file"], w["element"]): w["message"] for w in response.json["warnings"]}
    assert warnings[("review.bpmn", "Lane_Manager")].startswith(
        "no one in this council holds the role 'panel_chair' (from the lane 'Panel chair')")
    assert warnings[("review.bpmn", "Task_UrgentReferral")].startswith(
        "the candidate group 'Front Door' is not a role key: the task goes to the role 'front_door'")
    assert warnings[("calculation.bpmn", "Event_Done")].startswith("the end event 'Done' (Event_Done) names no outcome")
    # The reminder's end (after a non-interrupting timer) ends no case: no warning for it.
    assert ("review.bpmn", "Event_Reminded") not in warnings
    assert len(warnings) == 3


def test_a_good_deploy_has_no_warnings(api):
    response = upload(api, {"review.bpmn": REVIEW, "test_level.dmn": DMN})
    assert response.status_code == 201 and response.json["warnings"] == []
