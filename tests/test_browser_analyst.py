"""The analyst workspace in a real browser (Debian's chromium via Playwright): a version's diagram in the bpmn-js
viewer and its decision table in the dmn-js viewer, the diff's two diagrams coloured and labelled (added green,
removed red, changed amber, each also in words), a case's error shown at its element and retried from the page,
and axe-core finding nothing on any of these pages. Skipped like test_browser.py without chromium, playwright or
the built front-end assets. With STEP_SCREENSHOTS=1 the screenshots refresh docs/screenshots/analyst-*.png.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_support import axe, browser, expect, page, reflows, shot, shots  # noqa: F401 (fixtures)
from sqlalchemy import select, update

from service import tenancy
from service.deployments import deploy
from service.models import Case, ProcessVersion, db

pytestmark = pytest.mark.browser

ANALYST = f"{shots.COUNCIL}.analyst"


def second_version() -> dict[str, bytes]:
    """The step-down pathway as an analyst changed it: an end event given a new id (removed and added), the
    decline task renamed (changed), the 8-week threshold of the decision table moved (a rule changed)."""
    files = shots.pathway_files()
    diagram = files["carmarthenshire_step_down.bpmn"].decode()
    diagram = diagram.replace("Event_Declined", "Event_ReferralDeclined")
    diagram = diagram.replace('name="Explain the decline to the social worker"',
                              'name="Explain the decline to the social worker and family"')
    files["carmarthenshire_step_down.bpmn"] = diagram.encode()
    table = files["carmarthenshire_step_down.dmn"].decode()
    files["carmarthenshire_step_down.dmn"] = table.replace("&lt; 8", "&lt; 6", 1).encode()
    return files


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web-analyst")) as site:
        with site.app.app_context():
            council = tenancy.council_by_key(db.session, shots.COUNCIL)
            tenancy.act_for(db.session, council)
            site.time.move_to(shots.LATER.replace(hour=14))
            result = deploy(db.session, second_version(), ANALYST)
            assert result.created
            versions = {v.version: v.id for v in db.session.scalars(select(ProcessVersion).where(
                ProcessVersion.key == shots.KEY))}
            assert set(versions) == {1, 2}
            stuck = db.session.scalars(select(Case).where(Case.reference == "CF-2042")).one()
            db.session.execute(update(Case).where(Case.id == stuck.id).values(
                status="error", error={"element": "Task_CompleteJaffPart1",
                                       "message": "Error evaluating expression 'family_outcome': name 'family_outcome' is not defined"}))
            db.session.commit()
            site.versions, site.stuck = versions, stuck.id
        yield site


def stroke(page, selector: str) -> str:
    return page.eval_on_selector(f"{selector} .djs-visual > :first-child", "e => getComputedStyle(e).stroke")


def test_the_workspace_and_a_versions_diagram_and_decision_table(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.get_by_role("link", name="Analyst workspace").click()
    page.wait_for_url(f"{site.url}/analyst")
    versions = page.locator(f'[data-pathway="{shots.KEY}"] table.sp-versions tbody tr')
    assert versions.count() == 2
    assert "1 added, 1 removed" in versions.nth(0).inner_text() and "First version" in versions.nth(1).inner_text()
    assert "1 stopped on an error, 2 active" in versions.nth(1).inner_text()
    violations = {"workspace": axe(page)}
    assert reflows(page), "the analyst workspace scrolls sideways at 320 px"
    shot(page, "analyst-workspace", tmp_path)

    versions.nth(0).get_by_role("link", name="Version 2 of").click()
    page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
    expect(page.locator('#diagram g.djs-element[data-element-id="Task_ExplainDecline"]')).to_have_count(1)
    shots._watermark_visible(page)
    decisions = page.locator(".sp-decisions.sp-diagram--ready")
    decisions.wait_for(timeout=15000)
    table = decisions.locator(".sp-decision-table .tjs-table")
    assert table.count() >= 1 and "< 6" in table.first.inner_text()
    page.locator(".sp-form-card summary").first.click()
    expect(page.locator(".sp-form-fields").first).to_be_visible()
    violations["version"] = axe(page)
    shot(page, "analyst-version", tmp_path)
    with page.expect_download() as download:
        page.get_by_role("link", name="carmarthenshire_step_down.dmn").click()
    assert b"&lt; 6" in Path(download.value.path()).read_bytes()
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_the_diff_colours_both_diagrams_and_says_so_in_words(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.versions[2]}/diff")
    page.locator("#diagram-a.sp-diagram--ready").wait_for(timeout=15000)
    page.locator("#diagram-b.sp-diagram--ready").wait_for(timeout=15000)
    added = '#diagram-b g.djs-element.sp-added[data-element-id="Event_ReferralDeclined"]'
    removed = '#diagram-a g.djs-element.sp-removed[data-element-id="Event_Declined"]'
    changed = 'g.djs-element.sp-changed[data-element-id="Task_ExplainDecline"]'
    assert page.locator(added).count() == 1 and page.locator(removed).count() == 1
    assert page.locator(f"#diagram-a {changed}").count() == 1 and page.locator(f"#diagram-b {changed}").count() == 1
    expect(page.locator('#diagram-a g.djs-element.sp-added')).to_have_count(0)  # an added element is only in the new one
    assert stroke(page, added) == "rgb(0, 112, 60)"  # green
    assert stroke(page, removed) == "rgb(212, 53, 28)"  # red
    assert stroke(page, f"#diagram-b {changed}") == "rgb(179, 89, 0)"  # amber
    # not colour alone: each is labelled in words on the diagram, and the legend says what each means
    labels = page.locator("#diagram-b .djs-overlay .sp-diff-label").all_inner_texts()
    assert "Added" in labels and "Changed" in labels
    assert "Removed" in page.locator("#diagram-a .djs-overlay .sp-diff-label").all_inner_texts()
    assert "Added (green, only in version 2)" in page.locator(".sp-diff-legend").inner_text()
    rows = page.locator("table.sp-changes tbody tr")
    decline = rows.filter(has=page.locator('[data-label="Element"]', has_text="Task_ExplainDecline"))
    assert "Explain the decline to the social worker and family" in decline.inner_text()
    assert "< 6" in page.locator("table.sp-changes").inner_text()
    violations = {"diff": axe(page)}
    assert reflows(page), "the diff scrolls sideways at 320 px"
    shot(page, "analyst-diff", tmp_path)
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_a_cases_error_shows_at_its_element_and_is_retried_from_the_page(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.versions[1]}/cases")
    rows = page.locator("table.sp-analyst-cases tbody tr")
    assert rows.first.get_attribute("data-status") == "error" and "CF-2042" in rows.first.inner_text()
    violations = {"cases": axe(page)}
    rows.first.get_by_role("link", name="CF-2042").click()
    page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
    expect(page.locator('#diagram g.djs-element.sp-error[data-element-id="Task_CompleteJaffPart1"]')).to_have_count(1)
    overlay = page.locator("#diagram .djs-overlay .sp-diff-label--error").inner_text()
    assert overlay.startswith("Error: Error evaluating expression 'family_outcome'")
    violations["case with an error"] = axe(page)
    assert reflows(page), "the case's error page scrolls sideways at 320 px"
    shot(page, "analyst-case-error", tmp_path)
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Case CF-2042 was run again and goes on.")).to_be_visible()
    expect(page.locator("#diagram .sp-diff-label--error")).to_have_count(0)
    violations["case retried"] = axe(page)
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_draw_in_the_browser_see_a_problem_on_its_element_fix_it_and_save(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.versions[2]}")
    page.get_by_role("link", name="Draw a new version from this one").click()
    page.locator("#editor.sp-editor--ready").wait_for(timeout=20000)
    expect(page.locator("#editor-canvas .djs-palette")).to_be_visible()  # the modeller's palette: it edits
    page.locator('#editor-canvas g.djs-element[data-element-id="Task_ExplainDecline"]').click()
    panel = page.locator("#editor-panel")
    expect(panel.get_by_text("User task", exact=False).first).to_be_visible()
    expect(panel.get_by_text("Forms", exact=False).first).to_be_visible()  # a Camunda 7 group of the panel
    # a mistake an analyst makes: a gateway's flow loses its condition
    page.evaluate("""() => { const m = document.getElementById('editor').stepModeler;
        const flow = m.get('elementRegistry').get('Flow_SelfReferral');
        m.get('modeling').updateProperties(flow, { conditionExpression: undefined }); }""")
    # the service's bpmnlint plug-in sees it as it is drawn, before any check on the server
    expect(page.locator("#editor-canvas .bjsl-button-error")).to_be_visible(timeout=10000)
    expect(page.locator('#editor-canvas [data-container-id="Gateway_FamilyChoice"] .bjsl-overlay')).to_have_count(1)
    page.get_by_role("button", name="Check the diagram").click()
    page.locator("#problems-list li").first.wait_for(timeout=20000)
    problems = page.locator("#problems-list").inner_text()
    assert "Flow_SelfReferral" in problems or "Gateway_FamilyChoice" in problems, problems
    marked = page.locator("#editor-canvas g.djs-element.sp-problem")
    assert marked.count() >= 1
    assert page.locator("#editor-canvas .djs-overlay .sp-diff-label--error").first.inner_text() == "Problem 1"
    violations = {"editor with a problem": axe(page)}
    shot(page, "analyst-editor-problem", tmp_path)
    # fixed (undone), checked again, saved as a new version
    page.evaluate("() => document.getElementById('editor').stepModeler.get('commandStack').undo()")
    page.get_by_role("button", name="Check the diagram").click()
    page.get_by_text("No problems: the diagram passes every check a deployment runs.").wait_for(timeout=20000)
    expect(page.locator("#editor-canvas g.djs-element.sp-problem")).to_have_count(0)
    page.evaluate("""() => { const m = document.getElementById('editor').stepModeler;
        m.get('modeling').updateLabel(m.get('elementRegistry').get('Task_ExplainDecline'), 'Explain the decline'); }""")
    page.get_by_role("button", name="Save as a new version").click()
    page.wait_for_url(f"{site.url}/analyst/versions/*", timeout=20000)
    # the demo councils publish with four eyes: a saved drawing is a draft until an approver publishes it
    expect(page.get_by_text("Saved as draft version 3 of")).to_be_visible()
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_decision_tables_and_forms_are_edited_checked_and_saved_with_the_diagram(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.versions[2]}/edit")
    page.locator("#editor.sp-editor--ready").wait_for(timeout=30000)
    table = page.locator('.sp-file-editor__canvas--dmn[data-file="carmarthenshire_step_down.dmn"]')
    expect(table.locator(".tjs-table")).to_be_visible()  # dmn-js's decision table editor, open at the table
    expect(page.get_by_role("button", name="Decision: Step-down route (8-week rule)")).to_be_visible()
    page.locator("summary", has_text="carmarthenshire_step_down_meeting.form").click()
    form = page.locator('.sp-file-editor__canvas--form[data-file="carmarthenshire_step_down_meeting.form"]')
    expect(form.locator(".fjs-editor-container")).to_be_visible()  # form-js's editor, with its palette
    expect(form.locator(".fjs-palette-container")).to_be_visible()
    violations = {"editor with tables and forms": axe(page)}
    # a mistake in the table: a FEEL typo in a rule's cell; the server's check names the file and rule
    edit_cell = """(text) => { const box = document.querySelector('[data-file="carmarthenshire_step_down.dmn"]');
        const viewer = box.stepEditor.getActiveViewer();
        const cell = viewer.get('elementRegistry').get('UnaryTests_UnderEightWeeks');
        viewer.get('modeling').editCell(cell.businessObject, text); }"""
    page.evaluate(edit_cell, "[0..10")
    page.get_by_role("button", name="Check the diagram").click()
    page.locator("#problems-list li").first.wait_for(timeout=20000)
    problems = page.locator("#problems-list").inner_text()
    assert "carmarthenshire_step_down.dmn" in problems, problems
    expect(page.get_by_role("link", name="Go to carmarthenshire_step_down.dmn")).to_be_visible()
    violations["a problem in a decision table"] = axe(page)
    shot(page, "analyst-editor-tables-forms", tmp_path)
    # fixed: the threshold moved, a form's label reworded, checked again and saved with the diagram
    page.evaluate(edit_cell, "< 7")
    page.evaluate("""() => { const box = document.querySelector('[data-file="carmarthenshire_step_down_meeting.form"]');
        const editor = box.stepEditor;
        const field = editor.get('formFieldRegistry').get('Field_u46t9jm');
        editor.get('modeling').editFormField(field, 'label', 'The family understand TAF and agree to it'); }""")
    page.get_by_role("button", name="Check the diagram").click()
    page.get_by_text("No problems: the diagram passes every check a deployment runs.").wait_for(timeout=20000)
    page.get_by_role("button", name="Save as a new version").click()
    page.wait_for_url(f"{site.url}/analyst/versions/*", timeout=20000)
    expect(page.get_by_text("Saved as draft version")).to_be_visible()
    with site.app.app_context():
        council = tenancy.council_by_key(db.session, shots.COUNCIL)
        tenancy.act_for(db.session, council)
        newest = db.session.scalars(select(ProcessVersion).where(ProcessVersion.key == shots.KEY)
                                    .order_by(ProcessVersion.version.desc())).first()
        from service.pathway_diff import version_files
        files = version_files(db.session, newest)
        assert "&lt; 7" in files["carmarthenshire_step_down.dmn"].decode()
        assert "The family understand TAF and agree to it" in files["carmarthenshire_step_down_meeting.form"].decode()
        untouched = shots.pathway_files()["carmarthenshire_step_down_start.form"]
        assert files["carmarthenshire_step_down_start.form"] == untouched  # only what was changed is sent
        db.session.rollback()
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_a_file_added_in_the_editor_by_mistake_is_removed_again(site, page):
    """A new decision table no step uses is a problem on check (it would belong to no version); removed, it is
    neither checked nor sent, and the diagram passes again."""
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.versions[2]}/edit")
    page.locator("#editor.sp-editor--ready").wait_for(timeout=30000)
    page.get_by_label("Id of the new decision").fill("Decision_Mistake")
    page.get_by_role("button", name="Add a decision table").click()
    name = f"{shots.KEY}_decision_mistake.dmn"
    expect(page.locator(f'[data-file="{name}"]')).to_have_class(re.compile("sp-file-editor--ready"))
    page.get_by_role("button", name="Check the diagram").click()
    page.locator("#problems-list li").first.wait_for(timeout=20000)
    assert "no step of the diagram uses it yet" in page.locator("#problems-list").inner_text()
    page.get_by_role("button", name=f"Remove {name}").click()
    expect(page.locator(f'[data-file="{name}"]')).to_have_count(0)
    page.get_by_role("button", name="Check the diagram").click()
    page.get_by_text("No problems: the diagram passes every check a deployment runs.").wait_for(timeout=20000)
    assert page.problems == []


def test_a_new_pathway_from_the_blank_template_opens_in_the_editor(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst")
    page.get_by_role("link", name="Start a new pathway").click()
    violations = {"new pathway": axe(page)}
    page.get_by_role("button", name="Create and draw it").click()  # nothing filled in: what to write
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    violations["new pathway with errors"] = axe(page)
    page.get_by_label("Name").fill("Early help review")
    page.get_by_label("Process id").fill("carmarthenshire_early_help_review")
    page.get_by_label("The blank template").check()
    page.get_by_role("button", name="Create and draw it").click()
    page.locator("#editor.sp-editor--ready").wait_for(timeout=20000)
    expect(page.get_by_text("Early help review is saved as version 1")).to_be_visible()
    expect(page.locator('#editor-canvas g.djs-element[data-element-id="SubProcess_ImmediateRisk"]')).to_have_count(1)
    page.get_by_role("button", name="Check the diagram").click()
    page.get_by_text("No problems: the diagram passes every check a deployment runs.").wait_for(timeout=20000)
    violations["editor of the blank"] = axe(page)
    shot(page, "analyst-new-pathway", tmp_path)
    assert violations == {name: [] for name in violations}
    assert page.problems == []


def test_moving_running_cases_pick_the_target_map_a_removed_task_dry_run_then_move(site, page, tmp_path):
    from service import case_migration
    from service.models import User

    # a version 5 in which the step one of version 1's cases waits on has a new id (removed, and added anew)
    with site.app.app_context():
        council = tenancy.council_by_key(db.session, shots.COUNCIL)
        tenancy.act_for(db.session, council)
        analyst_user = db.session.scalars(select(User).where(User.name == ANALYST)).one()
        from service.policy import Actor
        actor = Actor(ANALYST, ("analyst",), analyst_user.id, council.id)
        rows = case_migration.migrate(db.session, actor, site.versions[1], site.versions[2], {}, dry_run=True)["cases"]
        waiting = sorted({e for row in rows for e in row["waiting"] if e.startswith("Task_")})
        assert rows and waiting, rows
        old = waiting[0]
        files = second_version()
        diagram = files["carmarthenshire_step_down.bpmn"].decode()
        diagram = diagram.replace(f'"{old}"', f'"{old}Renamed"').replace(f">{old}<", f">{old}Renamed<")
        diagram = diagram.replace(f'"{old}_di"', f'"{old}Renamed_di"')
        files["carmarthenshire_step_down.bpmn"] = diagram.encode()
        result = deploy(db.session, files, ANALYST)
        assert result.created
        target = next(v for v in result.processes if v.key == shots.KEY)
        target_id, target_version = target.id, target.version
        db.session.commit()
    stuck_on_old = [row["reference"] for row in rows if old in row["waiting"]]
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.versions[1]}")
    page.get_by_role("link", name="Move running cases to another version").click()
    violations = {"migration": axe(page)}
    page.get_by_label("Move to version").select_option(str(target_id))
    page.get_by_role("button", name="Check which cases can move").click()
    table = page.locator("table.sp-migration")
    expect(table).to_be_visible()
    for reference in stuck_on_old:  # waiting on a step the new version does not have: it cannot move as it is
        row = table.locator("tbody tr", has_text=reference)
        assert row.get_attribute("data-status") not in ("would_move", "moved"), row.inner_text()
        assert "Cannot move" in row.inner_text()
    violations["dry run, a step missing"] = axe(page)
    # mapped to its new id: every case can move; still nothing moved
    page.get_by_label("Elements the new version does not have").fill(f"{old} = {old}Renamed")
    page.get_by_role("button", name="Check which cases can move").click()
    expect(page.get_by_role("heading", name="What would happen")).to_be_visible()
    statuses = [table.locator("tbody tr").nth(i).get_attribute("data-status") for i in range(table.locator("tbody tr").count())]
    assert statuses and set(statuses) == {"would_move"}, statuses
    with site.app.app_context():
        tenancy.act_for(db.session, tenancy.council_by_key(db.session, shots.COUNCIL))
        assert db.session.scalar(select(Case.id).where(Case.process_version_id == target_id)) is None  # dry run
        db.session.rollback()
    violations["dry run, mapped"] = axe(page)
    shot(page, "analyst-migration", tmp_path)
    page.get_by_role("button", name="Move the cases that can move").click()
    expect(page.get_by_text(f"moved to version {target_version}.")).to_be_visible()
    expect(page.get_by_role("heading", name="What happened")).to_be_visible()
    moved = table.locator('tbody tr[data-status="moved"]')
    assert moved.count() == len(statuses)
    violations["moved"] = axe(page)
    with site.app.app_context():
        tenancy.act_for(db.session, tenancy.council_by_key(db.session, shots.COUNCIL))
        on_target = set(db.session.scalars(select(Case.reference).where(Case.process_version_id == target_id)))
        assert set(stuck_on_old) <= on_target and len(on_target) == len(statuses)
        db.session.rollback()
    assert violations == {name: [] for name in violations}
    assert page.problems == []
