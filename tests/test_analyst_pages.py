"""The analyst workspace (service.analyst, service.pathway_diff, the /analyst pages) through Flask's test client:
versions with who deployed them and what changed, a version's files downloaded as attachments, the diff
between two versions, a version's cases errors first, retry (the analyst's) and cancel (the admin's, with
its reason), and who may see any of it. The browser checks (viewers, diff colouring, axe-core) are in
test_browser_analyst.py; another council's objects answering 404 is test_tenancy.py's matrix.
"""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select, update

from conftest import FIXTURES, Api, Browser, everything, in_council, page_text, password_hash, save_user
from service.engine import clock
from service.engine.clock import LONDON, FixedClock
from service.models import AccessEvent, AuditEvent, Case, ProcessVersion, db
from service.pathway_diff import diff_versions, elements

PEOPLE = {"analyst": ["analyst"], "worker": ["social_worker"], "manager": ["team_manager"], "admin": ["admin"]}
PATHWAY = FIXTURES / "pathways"


def second_version(tmp_path):
    """The fixture pathway changed as an analyst would: a task renamed and due later, an end event given a new
    id (removed and added), the flow into it re-pointed, a rule's threshold moved."""
    folder = tmp_path / "v2"
    folder.mkdir()
    diagram = (PATHWAY / "review.bpmn").read_text()
    diagram = diagram.replace('name="Assess the family" camunda:dueDate="P2D"',
                              'name="Assess the whole family" camunda:dueDate="P3D"')
    diagram = diagram.replace("Event_Closed", "Event_CaseClosed")
    (folder / "review.bpmn").write_text(diagram)
    (folder / "test_level.dmn").write_text((PATHWAY / "test_level.dmn").read_text().replace(
        "<text>&gt;= 4</text>", "<text>&gt;= 5</text>"))
    return folder


@pytest.fixture
def time():
    fixed = FixedClock(datetime(2027, 1, 4, 9, 0, tzinfo=LONDON))
    previous = clock.set_clock(fixed)
    yield fixed
    clock.set_clock(previous)


@pytest.fixture
def site(sqlite_app, time, tmp_path):
    """Two versions of the fixture pathway in the test council, a case on each, one case stopped on an error;
    an analyst of another council with the same pathway of its own (SQLite)."""
    return make_site(sqlite_app, time, tmp_path)


@pytest.fixture
def any_site(app, time, tmp_path):
    """The same on SQLite and on PostgreSQL (row-level security on), for the workspace's own queries."""
    return make_site(app, time, tmp_path)


def make_site(sqlite_app, time, tmp_path):
    with sqlite_app.app_context():
        in_council(db.session)
        for name, roles in PEOPLE.items():
            user, _ = save_user(db.session, name, roles, token=f"token-{name}", display_name=name.capitalize())
            user.password_hash = password_hash(f"pw-{name}")
        user, _ = save_user(db.session, "elsewhere", ["analyst"], council="elsewhere", token="token-elsewhere")
        user.password_hash = password_hash("pw-elsewhere")
        db.session.commit()
    api = Api(sqlite_app, {name: f"token-{name}" for name in [*PEOPLE, "elsewhere"]})
    assert api.deploy(PATHWAY).status_code == 201
    assert api.deploy(PATHWAY, as_="elsewhere").status_code == 201
    first = api.post("/cases", json={"process": "test_review", "reference": "OLD-1", "data": {"needs": 1}},
                     as_="worker").json
    time.advance(hours=1)
    assert api.deploy(second_version(tmp_path)).status_code == 201
    stuck = api.post("/cases", json={"process": "test_review", "reference": "STUCK-1", "data": {"needs": 2}},
                     as_="worker").json
    api.post("/cases", json={"process": "test_review", "reference": "NEW-2", "data": {"needs": 2}}, as_="worker")
    with sqlite_app.app_context():
        in_council(db.session)
        db.session.execute(update(Case).where(Case.id == stuck["id"]).values(
            status="error", error={"element": "Task_Assess", "message": "name 'levle' is not defined"}))
        db.session.commit()
        versions = {v.version: v.id for v in db.session.scalars(select(ProcessVersion))}
    api.ids = {"v1": versions[1], "v2": versions[2], "old": first["id"], "stuck": stuck["id"]}
    return api


def signed_in(site, name):
    browser = Browser(site.app)
    browser.sign_in(name)
    return browser


# -- the diff --------------------------------------------------------------------------------------

def test_the_diff_names_elements_added_removed_and_changed_with_their_attributes(site):
    with site.app.app_context():
        in_council(db.session)
        v1, v2 = (db.session.get(ProcessVersion, site.ids[k]) for k in ("v1", "v2"))
        diff = diff_versions(db.session, v1, v2)
        from_nothing = diff_versions(db.session, None, v1)
    assert "Task_Assess" in [e.id for e in from_nothing.added] and not from_nothing.removed + from_nothing.changed
    as_json = diff.to_dict()
    assert (as_json["from"], as_json["to"], as_json["key"]) == (1, 2, "test_review")
    assert as_json["files"] == {"added": [], "removed": [], "changed": ["review.bpmn", "test_level.dmn"]}
    assert {"id": "Event_CaseClosed", "type": "endEvent", "name": "Closed", "file": "review.bpmn"} in as_json["added"]
    assert [e.id for e in diff.added] == ["Event_CaseClosed"]
    assert [e.id for e in diff.removed] == ["Event_Closed"]
    changed = {c.id: {a.name: (a.before, a.after) for a in c.attributes} for c in diff.changed}
    assert changed["Task_Assess"] == {"name": ("Assess the family", "Assess the whole family"),
                                      "camunda:dueDate": ("P2D", "P3D")}
    assert changed["Flow_ToClosed"] == {"targetRef": ("Event_Closed", "Event_CaseClosed")}
    assert changed["Rule_Complex"] == {"when Number of needs": (">= 4", ">= 5")} or \
        list(changed["Rule_Complex"].values()) == [(">= 4", ">= 5")]
    assert "Lane_Worker" in changed  # its list of elements names the new end event
    assert diff.summary() == "1 added, 1 removed, 4 changed"
    assert diff.ids() == {"added": ["Event_CaseClosed"], "removed": ["Event_Closed"],
                          "changed": ["Task_Assess", "Flow_ToClosed"]}


def test_the_diff_reads_form_fields_and_ignores_the_layout():
    form = b'{"id": "f", "type": "default", "components": [{"id": "Field_1", "key": "a", "label": "A", "type": "textfield"}]}'
    drawn = (FIXTURES / "allocation" / "allocation.bpmn").read_bytes()
    moved = drawn.replace(b'<dc:Bounds x="', b'<dc:Bounds x="1', 1)
    assert moved != drawn
    before = elements({"a.bpmn": drawn, "f.form": form})
    after = elements({"a.bpmn": moved, "f.form": form.replace(b'"label": "A"', b'"label": "A?", "validate": {"required": true}')})
    assert {k: v.attributes for k, v in before.items() if k[0] == "bpmn"} == \
        {k: v.attributes for k, v in after.items() if k[0] == "bpmn"}
    assert before[("form", "f/Field_1")].attributes == {"key": "a", "label": "A", "type": "textfield"}
    assert after[("form", "f/Field_1")].attributes == {"key": "a", "label": "A?", "type": "textfield",
                                                       "validate.required": "true"}


# -- the pages -------------------------------------------------------------------------------------

def test_the_workspace_lists_versions_with_who_when_what_changed_and_cases(any_site):
    site = any_site
    analyst = signed_in(site, "analyst")
    home = analyst.get("/analyst")
    assert home.status_code == 200
    body = page_text(home)
    assert "Analyst workspace" in body and "Test review" in body
    html = home.get_data(as_text=True)
    rows = re.findall(r'<tr class="govuk-table__row" data-version="(\d)">(.*?)</tr>', html, re.DOTALL)
    assert [number for number, _ in rows] == ["2", "1"]  # newest first
    v2, v1 = (re.sub(r"<[^>]+>|\s+", " ", row) for _, row in rows)
    assert "Latest" in v2 and "by You" in v2 and "1 added, 1 removed, 4 changed" in v2
    assert "1 stopped on an error, 1 active" in v2
    assert "First version" in v1 and "1 active" in v1
    assert "Analyst workspace" in page_text(analyst.get("/"))  # in the navigation


def test_a_version_page_shows_its_diagram_decisions_forms_and_files(site):
    analyst = signed_in(site, "analyst")
    page = analyst.get(f"/analyst/versions/{site.ids['v2']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    body = page_text(page)
    assert f'data-bpmn-url="/analyst/versions/{site.ids["v2"]}/diagram.bpmn"' in html
    assert f'data-dmn-url="/analyst/versions/{site.ids["v2"]}/files/test_level.dmn"' in html
    assert "Number of needs" in body and "Risk of significant harm" in body  # the forms' questions
    assert "review.bpmn" in body and "test_level.dmn" in body
    assert "Compare with version 1" in body
    assert "The latest: new cases start from it" in body
    older = page_text(analyst.get(f"/analyst/versions/{site.ids['v1']}"))
    assert "Replaced by a newer version: its running cases go on" in older


def test_every_file_downloads_as_an_attachment_of_its_own_type(site):
    analyst = signed_in(site, "analyst")
    diagram = analyst.get(f"/analyst/versions/{site.ids['v1']}/files/review.bpmn")
    assert diagram.status_code == 200
    assert diagram.mimetype == "application/xml"
    assert diagram.headers["Content-Disposition"] == "attachment; filename*=UTF-8''review.bpmn"
    assert diagram.headers["X-Content-Type-Options"] == "nosniff"
    assert diagram.data == (PATHWAY / "review.bpmn").read_bytes()
    table = analyst.get(f"/analyst/versions/{site.ids['v2']}/files/test_level.dmn")
    assert b"&gt;= 5" in table.data and table.headers["Content-Disposition"].startswith("attachment")
    for_viewer = analyst.get(f"/analyst/versions/{site.ids['v2']}/diagram.bpmn")
    assert for_viewer.headers["Content-Disposition"].startswith("attachment") and b"Event_CaseClosed" in for_viewer.data
    # only the version's own files: nothing else of the deployment, no path
    assert analyst.get(f"/analyst/versions/{site.ids['v1']}/files/other.bpmn").status_code == 404
    assert analyst.get(f"/analyst/versions/{site.ids['v1']}/files/..%2Fsecret").status_code == 404


def test_the_diff_page_lists_changes_and_colours_both_diagrams(site):
    analyst = signed_in(site, "analyst")
    page = analyst.get(f"/analyst/versions/{site.ids['v2']}/diff")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    body = page_text(page)
    assert "Changes from version 1 to version 2" in body
    assert re.search(r'id="diagram-a".*data-removed="Event_Closed" data-changed="Task_Assess Flow_ToClosed"',
                     html, re.DOTALL)
    assert re.search(r'id="diagram-b".*data-added="Event_CaseClosed" data-changed="Task_Assess Flow_ToClosed"',
                     html, re.DOTALL)
    assert "Added (green, only in version 2)" in body  # the legend says it in words
    assert "“Assess the family” became “Assess the whole family”" in body or \
        "Assess the family became Assess the whole family" in body
    assert "P2D" in body and "P3D" in body
    assert "now also Event_CaseClosed; no longer Event_Closed" in body  # a lane's elements, as ids in and out
    the_other_way = analyst.get(f"/analyst/versions/{site.ids['v1']}/diff?from={site.ids['v2']}")
    assert 'data-added="Event_Closed"' in the_other_way.get_data(as_text=True)
    first = analyst.get(f"/analyst/versions/{site.ids['v1']}/diff")
    assert first.status_code == 302  # nothing before version 1


def test_a_versions_cases_come_errors_first_without_the_childs_details(site):
    analyst = signed_in(site, "analyst")
    page = analyst.get(f"/analyst/versions/{site.ids['v2']}/cases")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    statuses = re.findall(r'data-status="(\w+)"', html)
    assert statuses == ["error", "active"]
    assert "name 'levle' is not defined (at Task_Assess)" in page_text(page)
    only_errors = analyst.get(f"/analyst/versions/{site.ids['v2']}/cases?status=error").get_data(as_text=True)
    assert re.findall(r'data-status="(\w+)"', only_errors) == ["error"]
    case = analyst.get(f"/analyst/cases/{site.ids['stuck']}")
    html = case.get_data(as_text=True)
    assert 'data-error-element="Task_Assess"' in html and "data-error-text=\"name &#39;levle&#39; is not defined\"" in html
    assert "Retry" in page_text(case) and "Only the council's admin can cancel a case." in page_text(case)
    with site.app.app_context(), everything():
        assert db.session.scalars(select(AccessEvent.purpose).where(AccessEvent.case_id == site.ids["stuck"])).all() \
            == ["analyst_case"]  # the read is in the access log


def test_the_analyst_retries_a_case_and_the_admin_cancels_one_with_its_reason(any_site):
    site = any_site
    analyst = signed_in(site, "analyst")
    analyst.get(f"/analyst/cases/{site.ids['stuck']}")
    retried = analyst.post(f"/analyst/cases/{site.ids['stuck']}/retry")
    assert retried.status_code == 302
    assert "Case STUCK-1 was run again and goes on." in page_text(analyst.get(retried.headers["Location"]))
    assert analyst.post(f"/analyst/cases/{site.ids['stuck']}/cancel", {"reason": "a duplicate"}).status_code == 403
    admin = signed_in(site, "admin")
    admin.get(f"/analyst/cases/{site.ids['old']}")
    refused = admin.post(f"/analyst/cases/{site.ids['old']}/cancel", {"reason": " "})
    assert refused.status_code == 422 and "Say why the case is cancelled" in page_text(refused)
    done = admin.post(f"/analyst/cases/{site.ids['old']}/cancel", {"reason": "Opened twice for the same child"})
    assert done.status_code == 302
    with site.app.app_context(), everything():
        assert db.session.get(Case, site.ids["old"]).status == "cancelled"
        events = {(e.case_id, e.event, e.actor) for e in db.session.scalars(select(AuditEvent))}
        assert (site.ids["stuck"], "case_retried", "analyst") in events
        assert (site.ids["old"], "case_cancelled", "admin") in events
        reason = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "case_cancelled")).one().detail
        assert reason == {"reason": "Opened twice for the same child"}


def test_retry_needs_a_case_stopped_on_an_error(site):
    analyst = signed_in(site, "analyst")
    analyst.get("/analyst")
    assert analyst.post(f"/analyst/cases/{site.ids['old']}/retry").status_code == 409


@pytest.mark.parametrize("name", ["worker", "manager"])
def test_the_workspace_is_the_analysts_and_the_admins_alone(site, name):
    someone = signed_in(site, name)
    for path in ("/analyst", f"/analyst/versions/{site.ids['v2']}", f"/analyst/versions/{site.ids['v2']}/diff",
                 f"/analyst/versions/{site.ids['v2']}/cases", f"/analyst/versions/{site.ids['v1']}/files/review.bpmn",
                 f"/analyst/versions/{site.ids['v1']}/diagram.bpmn", f"/analyst/cases/{site.ids['stuck']}"):
        assert someone.get(path).status_code == 403, path
    assert someone.post(f"/analyst/cases/{site.ids['stuck']}/retry").status_code == 403
    assert "Analyst workspace" not in page_text(someone.get("/"))
    with site.app.app_context(), everything():
        assert db.session.get(Case, site.ids["stuck"]).status == "error"
    assert signed_in(site, "admin").get("/analyst").status_code == 200


def test_an_analyst_of_another_council_sees_none_of_it(site):
    elsewhere = signed_in(site, "elsewhere")
    home = page_text(elsewhere.get("/analyst"))
    assert "OLD-1" not in home and "1 added" not in home  # their own pathway: one version, no cases
    for path in (f"/analyst/versions/{site.ids['v2']}", f"/analyst/versions/{site.ids['v2']}/cases",
                 f"/analyst/versions/{site.ids['v1']}/files/review.bpmn", f"/analyst/cases/{site.ids['stuck']}"):
        assert elsewhere.get(path).status_code == 404, path
    assert elsewhere.post(f"/analyst/cases/{site.ids['stuck']}/retry").status_code == 404


# -- drawing in the browser: the server's side -------------------------------------------------------

def post_diagram(browser, path, diagram: str):
    return browser.client.post(path, json={"diagram": diagram}, headers={"X-CSRFToken": browser.token},
                               base_url=browser.base_url)


def test_the_editor_checks_a_drawn_diagram_and_saves_it_as_a_new_version(site):
    analyst = signed_in(site, "analyst")
    editor = analyst.get(f"/analyst/versions/{site.ids['v2']}/edit")
    assert editor.status_code == 200
    assert 'data-check-url="/analyst/versions/' in editor.get_data(as_text=True)
    diagram = analyst.get(f"/analyst/versions/{site.ids['v2']}/diagram.bpmn").get_data(as_text=True)
    broken = diagram.replace('<bpmn:sequenceFlow id="Flow_ToApprove" sourceRef="Gateway_Level" targetRef="Task_Approve">\n'
                             '      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${level == "acute" &amp;&amp; risk}</bpmn:conditionExpression>\n'
                             '    </bpmn:sequenceFlow>',
                             '<bpmn:sequenceFlow id="Flow_ToApprove" sourceRef="Gateway_Level" targetRef="Task_Approve" />')
    assert broken != diagram
    checked = post_diagram(analyst, f"/analyst/versions/{site.ids['v2']}/check", broken)
    assert checked.status_code == 200
    problems = checked.json["problems"]
    assert problems and any(p["element"] in ("Flow_ToApprove", "Gateway_Level") for p in problems), problems
    assert post_diagram(analyst, f"/analyst/versions/{site.ids['v2']}/check", diagram).json == {"problems": []}
    refused = post_diagram(analyst, f"/analyst/versions/{site.ids['v2']}/save", broken)
    assert refused.status_code == 422 and refused.json["problems"]
    renamed = diagram.replace('name="Assess the whole family"', 'name="Assess the family with them"')
    saved = post_diagram(analyst, f"/analyst/versions/{site.ids['v2']}/save", renamed)
    assert saved.status_code == 200 and saved.json["saved"] and saved.json["version"] == 3
    assert "Saved as version 3 of Test review: new cases start from it." in page_text(analyst.get(saved.json["url"]))
    # without the CSRF token, nothing
    assert analyst.client.post(f"/analyst/versions/{site.ids['v2']}/check", json={"diagram": diagram},
                                base_url=analyst.base_url).status_code == 400


def test_decision_tables_and_forms_edited_beside_the_diagram_are_checked_and_saved_with_it(site):
    analyst = signed_in(site, "analyst")
    v2 = site.ids["v2"]
    editor = page_text(analyst.get(f"/analyst/versions/{v2}/edit"))
    assert "Decision tables: test_level.dmn" in editor
    diagram = analyst.get(f"/analyst/versions/{v2}/diagram.bpmn").get_data(as_text=True)
    table = analyst.get(f"/analyst/versions/{v2}/files/test_level.dmn").get_data(as_text=True)

    def post(path, files):
        return analyst.client.post(f"/analyst/versions/{v2}/{path}", json={"diagram": diagram, "files": files},
                                   headers={"X-CSRFToken": analyst.token}, base_url=analyst.base_url)

    typo = table.replace("<text>&gt;= 5</text>", "<text>[0..10</text>")
    assert typo != table
    problems = post("check", {"test_level.dmn": typo}).json["problems"]
    assert problems and all(p["file"] == "test_level.dmn" for p in problems), problems
    assert post("save", {"test_level.dmn": typo}).status_code == 422
    # only the version's own decision tables and forms, or new ones (test_analyst_editor_new_files.py): not another
    # kind of file, not the diagram under another name
    assert post("check", {"other.xml": table}).status_code == 422  # InvalidData
    assert post("check", {"review.bpmn": diagram}).status_code == 422
    moved = table.replace("<text>&gt;= 5</text>", "<text>&gt;= 6</text>")
    saved = post("save", {"test_level.dmn": moved})
    assert saved.status_code == 200 and saved.json["saved"] and saved.json["version"] == 3, saved.json
    assert "&gt;= 6" in analyst.get(saved.json["url"] + "/files/test_level.dmn").get_data(as_text=True)


def test_a_new_pathway_from_the_blank_template_deploys_and_opens_in_the_editor(site):
    analyst = signed_in(site, "analyst")
    assert "Start a new pathway" in page_text(analyst.get("/analyst"))
    assert analyst.get("/analyst/new").status_code == 200
    made = analyst.post("/analyst/new", {"name": "Early help review", "key": "early_help_review", "start": "blank"})
    assert made.status_code == 302 and "/edit" in made.headers["Location"], page_text(made)
    assert "Early help review is saved as version 1" in page_text(analyst.get(made.headers["Location"]))
    with site.app.app_context():
        in_council(db.session)
        created = db.session.scalars(select(ProcessVersion).where(ProcessVersion.key == "early_help_review")).one()
        from service import deployments
        definition = deployments.process_definition(db.session, created)
        assert definition.filename == "early_help_review.bpmn" and definition.name == "Early help review"
        assert {"social_worker", "front_door"} <= set(definition.roles)
        db.session.rollback()
    # the blank follows the safeguarding conventions: a worker starts a case of it (the council publishes directly)
    started = site.post("/cases", json={"process": "early_help_review", "reference": "EH-1", "data": {}}, as_="worker")
    assert started.status_code == 201, started.json
    # the same process id again, or a bad one: refused with what to write
    again = analyst.post("/analyst/new", {"name": "Again", "key": "early_help_review", "start": "blank"})
    assert again.status_code == 422 and "is already used by Early help review" in page_text(again)
    bad = analyst.post("/analyst/new", {"name": "", "key": "Early Help", "start": "blank"})
    assert bad.status_code == 422
    assert "Enter the pathway's name" in page_text(bad) and "Enter a process id of 3 to 63" in page_text(bad)


def test_a_new_pathway_as_a_copy_has_its_own_process_id_and_name(site):
    analyst = signed_in(site, "analyst")
    made = analyst.post("/analyst/new", {"name": "Test review (Halton)", "key": "test_review_halton",
                                         "start": str(site.ids["v2"])})
    assert made.status_code == 302, page_text(made)
    with site.app.app_context():
        in_council(db.session)
        copy = db.session.scalars(select(ProcessVersion).where(ProcessVersion.key == "test_review_halton")).one()
        original = db.session.get(ProcessVersion, site.ids["v2"])
        assert copy.name == "Test review (Halton)" and original.key == "test_review" and copy.id != original.id
        copy_id = copy.id
        db.session.rollback()
    diagram = analyst.get(f"/analyst/versions/{copy_id}/diagram.bpmn").get_data(as_text=True)
    assert 'id="test_review_halton"' in diagram and 'processRef="test_review_halton"' in diagram
    assert 'name="Assess the whole family"' in diagram  # the original's version 2, as drawn
    assert 'camunda:decisionRef="test_level"' in diagram  # the same decision table, by its id
    started = site.post("/cases", json={"process": "test_review_halton", "reference": "COPY-1", "data": {"needs": 1}},
                        as_="worker")
    assert started.status_code == 201, started.json
    # another council's version is not there to copy
    elsewhere = signed_in(site, "elsewhere")
    assert elsewhere.post("/analyst/new", {"name": "Theirs", "key": "theirs_copy",
                                           "start": str(site.ids["v2"])}).status_code == 404


def test_only_analysts_who_deploy_start_new_pathways(site):
    worker = signed_in(site, "worker")
    assert worker.get("/analyst/new").status_code == 403
    assert worker.post("/analyst/new", {"name": "X", "key": "xxx_yyy", "start": "blank"}).status_code == 403


def test_only_those_who_deploy_may_draw(site):
    worker = signed_in(site, "worker")
    assert worker.get(f"/analyst/versions/{site.ids['v2']}/edit").status_code == 403
    assert post_diagram(worker, f"/analyst/versions/{site.ids['v2']}/save", "<x/>").status_code == 403
    elsewhere = signed_in(site, "elsewhere")
    assert elsewhere.get(f"/analyst/versions/{site.ids['v2']}/edit").status_code == 404
