"""The browser editor adds a new form or decision table beside the diagram (service.analyst.new_file, the
/analyst/versions/<id>/new-file endpoint, ``_edited``): a blank file from service.pathway_templates under the
name ``<process key>_<id>``, saved with the diagram once a step uses it; a name the council already has (another
pathway's file) or a name that is not a .form or .dmn is refused, and so is a new file no step uses. The walk in a
real browser is tests/test_browser_analyst_walk.py.
"""
from __future__ import annotations

import pytest
from conftest import in_council
from test_analyst_pages import make_site, signed_in, time  # noqa: F401 (fixtures)

from service import deploy_checks, pathway_templates
from service.engine.bundle import build_bundle
from service.errors import InvalidData
from service.models import ProcessVersion, db
from service.pathway_diff import version_files


@pytest.fixture
def site(sqlite_app, time, tmp_path):  # noqa: F811 (the fixture imported above)
    return make_site(sqlite_app, time, tmp_path)


def editor(site):
    analyst = signed_in(site, "analyst")
    v2 = site.ids["v2"]
    diagram = analyst.get(f"/analyst/versions/{v2}/diagram.bpmn").get_data(as_text=True)

    def post(path, body):
        return analyst.client.post(f"/analyst/versions/{v2}/{path}", json=body, headers={"X-CSRFToken": analyst.token},
                                   base_url=analyst.base_url)
    return analyst, diagram, post


def test_the_blank_form_and_decision_table_pass_the_deploy_checks(sqlite_app):
    files = {"p_form_a.form": pathway_templates.blank_form("Form_A"),
             "p_decision_b.dmn": pathway_templates.blank_table("Decision_B")}
    with sqlite_app.app_context():
        deploy_checks.check_limits(files)
        deploy_checks.check_in_time(files)
    bundle = build_bundle(files)
    assert bundle.form_files == {"p_form_a.form": "Form_A"} and list(bundle.forms_by_id["Form_A"].components)


def test_an_id_is_an_xml_name_and_the_file_is_named_after_the_pathway():
    assert pathway_templates.new_file_name("early_help", "form", "Form_Assess-ment") == "early_help_form_assess_ment.form"
    assert pathway_templates.new_file_name("early_help", "dmn", "Decision_Level") == "early_help_decision_level.dmn"
    for bad in ("", "1Form", "Form A", "Form.A", "a" * 64, "<x>"):
        with pytest.raises(InvalidData):
            pathway_templates.check_file_id("form", bad)
    with pytest.raises(InvalidData):
        pathway_templates.check_file_id("bpmn", "Form_A")


def test_a_form_and_a_decision_table_added_in_the_editor_are_saved_with_the_version_that_uses_them(site):
    analyst, diagram, post = editor(site)
    assert "Add a form" in analyst.get(f"/analyst/versions/{site.ids['v2']}/edit").get_data(as_text=True)
    form = post("new-file", {"kind": "form", "id": "Form_Approval"})
    table = post("new-file", {"kind": "dmn", "id": "Decision_Extra"})
    assert form.status_code == 200 and form.json["name"] == "test_review_form_approval.form", form.json
    assert table.status_code == 200 and table.json["name"] == "test_review_decision_extra.dmn", table.json
    assert '"id": "Form_Approval"' in form.json["text"] and 'decision id="Decision_Extra"' in table.json["text"]
    files = {form.json["name"]: form.json["text"], table.json["name"]: table.json["text"]}
    # not used by any step yet: said on check, refused on save (it would belong to no version)
    unused = post("check", {"diagram": diagram, "files": files}).json["problems"]
    assert {p["file"] for p in unused} == set(files), unused
    assert all("no step of the diagram uses it yet" in p["message"] for p in unused)
    assert post("save", {"diagram": diagram, "files": files}).status_code == 422
    linked = diagram.replace('<bpmn:userTask id="Task_Approve" ',
                             '<bpmn:userTask id="Task_Approve" camunda:formRef="Form_Approval" camunda:formRefBinding="latest" ')
    linked = linked.replace('camunda:decisionRef="test_level"', 'camunda:decisionRef="Decision_Extra"')
    assert linked.count("Form_Approval") == 1 and "Decision_Extra" in linked
    assert post("check", {"diagram": linked, "files": files}).json == {"problems": []}
    saved = post("save", {"diagram": linked, "files": files})
    assert saved.status_code == 200 and saved.json["saved"] and saved.json["version"] == 3, saved.json
    with site.app.app_context():
        in_council(db.session)
        v3 = db.session.query(ProcessVersion).filter_by(key="test_review", version=3).one()
        assert set(files) <= set(version_files(db.session, v3))
        db.session.rollback()
    # the id is now the council's: adding it again is refused, naming the file that has it
    again = post("new-file", {"kind": "form", "id": "Form_Approval"})
    assert again.status_code == 422 and "test_review_form_approval.form" in again.json["message"]


def test_a_new_file_never_replaces_another_pathways_file_nor_has_another_name(site):
    _, diagram, post = editor(site)
    # a file of the council that v2 does not use (another pathway's), sent as if new, is refused naming it
    with site.app.app_context():
        in_council(db.session)
        from service import deployments
        deployments.deploy(db.session, {"other_pathway.form": pathway_templates.blank_form("Form_Other")}, "analyst")
        db.session.commit()
    clash = post("check", {"diagram": diagram, "files": {"other_pathway.form": pathway_templates.blank_form(
        "Form_Mine").decode()}})
    assert clash.status_code == 422 and "There is already a file other_pathway.form" in clash.json["message"]
    assert post("save", {"diagram": diagram, "files": {"other_pathway.form": "{}"}}).status_code == 422
    # a decision id another file has is refused when adding, naming that file
    taken = post("new-file", {"kind": "form", "id": "Form_Other"})
    assert taken.status_code == 422 and "other_pathway.form" in taken.json["message"]
    # only .form and .dmn names, lower-case and safe
    for name in ("new.bpmn", "new.scenario.json", "New.form", "../x.dmn", "new.txt"):
        refused = post("check", {"diagram": diagram, "files": {name: "{}"}})
        assert refused.status_code == 422, name
    assert post("new-file", {"kind": "bpmn", "id": "Process_X"}).status_code == 422
    assert post("new-file", {"kind": "form", "id": "not an id"}).status_code == 422


def test_only_those_who_deploy_add_files(site):
    worker = signed_in(site, "worker")
    answer = worker.client.post(f"/analyst/versions/{site.ids['v2']}/new-file", json={"kind": "form", "id": "Form_A"},
                                headers={"X-CSRFToken": worker.token}, base_url=worker.base_url)
    assert answer.status_code == 403


def test_a_new_file_counts_as_used_however_the_diagram_names_it():
    """A form by reference or by Camunda Forms key, a decision by reference, in Camunda 7 or Camunda 8 words."""
    from service import analyst

    diagram = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"
    id="D" targetNamespace="x">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:userTask id="A" camunda:formRef="Form_ByRef" />
    <bpmn:userTask id="B" camunda:formKey="camunda-forms:deployment:Form_ByKey" />
    <bpmn:userTask id="C"><bpmn:extensionElements><zeebe:formDefinition formId="Form_C8" />
      </bpmn:extensionElements></bpmn:userTask>
    <bpmn:businessRuleTask id="R" camunda:decisionRef="Decision_Level" />
  </bpmn:process>
</bpmn:definitions>"""
    assert analyst._referenced(diagram) == {"Form_ByRef", "Form_ByKey", "Form_C8", "Decision_Level"}
    assert analyst._referenced(b"<not xml") == set()


def test_a_new_decision_table_that_feeds_a_used_one_counts_as_used():
    """A decision requirements graph across files: the diagram's step uses Decision_Main, which requires
    Decision_Middle, which requires the new Decision_Feed. Each counts as used; a new table nothing requires does not."""
    from service import analyst

    diagram = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D" targetNamespace="x">
  <bpmn:process id="p" isExecutable="true"><bpmn:businessRuleTask id="R" camunda:decisionRef="Decision_Main" />
  </bpmn:process>
</bpmn:definitions>"""

    def requiring(table: bytes, decision_id: str, needed: str) -> bytes:
        requirement = f'<informationRequirement id="Req_{needed}"><requiredDecision href="#{needed}" /></informationRequirement>'
        return table.replace(f'<decision id="{decision_id}" name="{decision_id}">'.encode(),
                             f'<decision id="{decision_id}" name="{decision_id}">{requirement}'.encode())

    uploads = {"p.bpmn": diagram,
               "p_main.dmn": requiring(pathway_templates.blank_table("Decision_Main"), "Decision_Main", "Decision_Middle"),
               "p_middle.dmn": requiring(pathway_templates.blank_table("Decision_Middle"), "Decision_Middle",
                                         "Decision_Feed"),
               "p_feed.dmn": pathway_templates.blank_table("Decision_Feed"),
               "p_alone.dmn": pathway_templates.blank_table("Decision_Alone")}
    problems = analyst._unlinked(diagram, uploads, ["p_middle.dmn", "p_feed.dmn", "p_alone.dmn"])
    assert [p.file for p in problems] == ["p_alone.dmn"], problems
    broken = {**uploads, "p_middle.dmn": b"<not xml"}  # the chain is cut where a file cannot be read
    assert {p.file for p in analyst._unlinked(diagram, broken, ["p_feed.dmn"])} == {"p_feed.dmn"}
