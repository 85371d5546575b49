"""Deploying: what runs is accepted, what cannot run is refused with file, element and reason, hostile uploads run nothing."""
from __future__ import annotations

import io

import pytest

from conftest import FIXTURES
from service.engine.bundle import DeploymentInvalid, build_bundle

PATHWAY = FIXTURES / "pathways"
REVIEW = (PATHWAY / "review.bpmn").read_text()
DMN = (PATHWAY / "test_level.dmn").read_bytes()


def problems_of(bpmn: str, extra: dict[str, bytes] | None = None) -> list[tuple[str, str | None, str]]:
    with pytest.raises(DeploymentInvalid) as refused:
        build_bundle({"review.bpmn": bpmn.encode(), "test_level.dmn": DMN, **(extra or {})})
    return [(p.file, p.element, p.message) for p in refused.value.problems]


def test_the_fixture_pathway_builds():
    bundle = build_bundle({"review.bpmn": REVIEW.encode(), "test_level.dmn": DMN})
    assert set(bundle.processes) == {"test_review"}


def test_a_start_event_called_start_is_refused():
    # SpiffWorkflow silently empties a process whose start event has the id "Start".
    bpmn = REVIEW.replace('"Event_Referral"', '"Start"').replace(">Event_Referral<", ">Start<")
    [(file, element, message)] = problems_of(bpmn)
    assert (file, element) == ("review.bpmn", "Start") and "engine uses" in message


def test_a_missing_decision_is_named():
    problems = problems_of(REVIEW.replace('camunda:decisionRef="test_level"', 'camunda:decisionRef="nowhere"'))
    assert ("review.bpmn", "Task_Level", "the decision 'nowhere' is not deployed (no .dmn file has a decision "
                                         "with that id)") in problems


def test_a_missing_form_is_named():
    bpmn = REVIEW.replace('camunda:dueDate="P2D">', 'camunda:dueDate="P2D" camunda:formRef="no_such_form">')
    assert any(e == "Task_Assess" and "no_such_form" in m for _, e, m in problems_of(bpmn))


def test_a_user_task_without_a_role_is_refused():
    bpmn = REVIEW.replace("<bpmn:flowNodeRef>Task_Assess</bpmn:flowNodeRef>", "")
    assert any(e == "Task_Assess" and "no role" in m for _, e, m in problems_of(bpmn))


@pytest.mark.parametrize("condition, reason", [
    ("${__import__('os').system('true')}", "is not a function expressions may call"),
    ("${().__class__.__base__.__subclasses__()}", "is not a function expressions may call"),
    ("${x.__class__}", "attributes starting with '_'"),
    ("${level ==}", "not a valid expression"),
    ("${open('/etc/passwd')}", "'open' is not a function"),
])
def test_expressions_that_may_not_run_are_refused(condition, reason):
    bpmn = REVIEW.replace('${level == "acute" &amp;&amp; risk}', condition.replace("'", "&apos;"))
    [(file, element, message)] = problems_of(bpmn)
    assert element == "Flow_ToApprove" and reason in message


def test_a_script_that_imports_is_refused():
    script = ('<bpmn:scriptTask id="Task_Script" scriptFormat="python"><bpmn:script>import os\nos.system("true")'
              '</bpmn:script></bpmn:scriptTask>')
    bpmn = REVIEW.replace('<bpmn:endEvent id="Event_Reminded"', script + '<bpmn:endEvent id="Event_Reminded"')
    assert any(e == "Task_Script" and "may not import" in m for _, e, m in problems_of(bpmn))


def test_a_javascript_script_and_a_service_task_are_refused():
    extra = ('<bpmn:scriptTask id="Task_Js" scriptFormat="javascript"><bpmn:script>x = 1</bpmn:script>'
             '</bpmn:scriptTask><bpmn:serviceTask id="Task_Java" camunda:class="org.example.Delegate" />')
    bpmn = REVIEW.replace('<bpmn:endEvent id="Event_Reminded"', extra + '<bpmn:endEvent id="Event_Reminded"')
    problems = problems_of(bpmn)
    assert any(e == "Task_Js" and "Python" in m for _, e, m in problems)
    assert any(e == "Task_Java" and "service tasks" in m for _, e, m in problems)
    assert any(e == "Task_Java" and "camunda:class" in m for _, e, m in problems)


def test_a_bad_timer_is_refused():
    bpmn = REVIEW.replace(">P2D</bpmn:timeDuration>", ">P2X</bpmn:timeDuration>")
    assert any(e == "Timer_RemindWorker" or "timer" in m for _, e, m in problems_of(bpmn))


def test_schema_errors_name_the_line():
    bpmn = REVIEW.replace('<bpmn:exclusiveGateway id="Gateway_Level"', '<bpmn:exclusiveGateway bogus="1" id="Gateway_Level"')
    [(file, element, message)] = problems_of(bpmn)
    assert file == "review.bpmn" and message.startswith("line ") and "bogus" in message


def test_a_broken_feel_cell_is_refused():
    dmn = DMN.replace(b"&gt;= 4", b"&gt;= ")
    with pytest.raises(DeploymentInvalid) as refused:
        build_bundle({"review.bpmn": REVIEW.encode(), "test_level.dmn": dmn})
    assert any(p.file == "test_level.dmn" and p.element for p in refused.value.problems)


# -- hostile uploads, through the API ---------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="D"><bpmn:process id="p">
<bpmn:documentation>&e;</bpmn:documentation></bpmn:process></bpmn:definitions>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="D">&lol3;</bpmn:definitions>"""


def upload(api, files: dict[str, bytes]):
    data = {"files": [(io.BytesIO(content), name) for name, content in files.items()]}
    return api.post("/deployments", data=data, as_="analyst", content_type="multipart/form-data")


@pytest.mark.parametrize("content", [XXE, BOMB], ids=["external-entity", "entity-bomb"])
def test_hostile_xml_is_refused_with_400(api, content):
    response = upload(api, {"evil.bpmn": content})
    assert response.status_code == 400
    [error] = response.json["errors"]
    assert error["file"] == "evil.bpmn" and "DOCTYPE" in error["message"]
    assert "root:" not in str(response.json)
    assert api.get("/processes").json == []


def test_a_hostile_script_is_refused_and_runs_nothing(api, tmp_path):
    marker = tmp_path / "pwned"
    script = (f'<bpmn:scriptTask id="Task_Evil" scriptFormat="python"><bpmn:script>'
              f'().__class__.__base__.__subclasses__()\n__import__("os").system("touch {marker}")'
              f'</bpmn:script></bpmn:scriptTask>')
    bpmn = REVIEW.replace('<bpmn:endEvent id="Event_Reminded"', script + '<bpmn:endEvent id="Event_Reminded"')
    response = upload(api, {"review.bpmn": bpmn.encode(), "test_level.dmn": DMN})
    assert response.status_code == 400
    assert any(e["element"] == "Task_Evil" for e in response.json["errors"])
    assert not marker.exists()


def test_an_oversized_or_odd_upload_is_refused(api):
    response = upload(api, {"notes.txt": b"hello"})
    assert response.status_code == 400 and "only .bpmn" in response.json["errors"][0]["message"]
    assert upload(api, {}).status_code == 400
    big = b"<a>" + b"x" * (3 * 1024 * 1024) + b"</a>"
    response = upload(api, {"big.bpmn": big})
    assert response.status_code == 400 and "limit" in response.json["errors"][0]["message"]


def test_a_running_case_keeps_its_version(api):
    assert upload(api, {"review.bpmn": REVIEW.encode(), "test_level.dmn": DMN}).status_code == 201
    case = api.post("/cases", json={"process": "test_review", "reference": "F1", "data": {"needs": 1}}).json
    changed = REVIEW.replace('name="Assess the family"', 'name="Assess the family and child"')
    second = upload(api, {"review.bpmn": changed.encode()})
    assert second.status_code == 201 and second.json["processes"][0]["version"] == 2
    newer = api.post("/cases", json={"process": "test_review", "reference": "F2", "data": {"needs": 1}}).json
    assert newer["version"] == 2 and newer["tasks"][0]["title"] == "Assess the family and child"
    older = api.get(f"/cases/{case['id']}").json
    assert older["version"] == 1 and older["tasks"][0]["title"] == "Assess the family"
    done = api.post(f"/tasks/{older['tasks'][0]['id']}/complete", json={"data": {"risk": False}})
    assert done.status_code == 200 and done.json["version"] == 1


def test_the_service_survives_a_restart(database_url, tokens, api):
    from conftest import Api

    upload(api, {"review.bpmn": REVIEW.encode(), "test_level.dmn": DMN})
    case = api.post("/cases", json={"process": "test_review", "reference": "F1", "data": {"needs": 1}}).json
    restarted = Api(make_app_without_reset(database_url), tokens)
    again = restarted.get(f"/cases/{case['id']}").json
    assert again == case
    done = restarted.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"risk": False}})
    assert done.status_code == 200 and done.json["data"]["level"] == "additional"


def make_app_without_reset(database_url):
    from service import create_app
    return create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TIMERS_ENABLED": False, "TESTING": True})
