"""Issue 17's first "Done when", walked in a real browser (Debian's chromium via Playwright) as the people would:

Carmarthenshire's analyst (a council that publishes with four eyes) starts a new pathway from the blank template
and draws it in the browser: the assessment's form becomes a Camunda Form (the properties panel's Forms group), a
business rule task after it asks a decision table (the Implementation group), and the review after that gets a
non-interrupting reminder timer (the Timer group). The timer's duration, typed "7 days", is a problem the server's
check marks on the timer and lists; fixed (typed "P7D") from the problem's own "Show ... on the diagram" button,
the diagram passes and is saved as a draft. On the new version the form editor (form-js) gains a question dragged
from its palette and named in its properties panel, and the decision table (dmn-js) a rule typed into its cells;
saved again. The analyst rehearses that version over a month: completes the assessment through its form as the
social worker, moves the sandbox clock four weeks and sees the reminder the service would have sent, completes the
review to the outcome, records the rehearsal as a scenario and adds it to the pathway (a new draft, its scenario
listed as passed). The analyst submits that draft for approval; the council's pathway approver (another person)
reads the scenario's result on the approval page and publishes it; the council's social worker then finds the
pathway under "Start a referral", starts a case of it and sees its first task.

The form and the decision table are added in the editor ("Add a form", "Add a decision table", each with its id):
the form's blank question is renamed and a number question dragged in, the table's input expression and first
rule typed, and both linked from the properties panel before the first save. Where dragging on the canvas would be fragile the shapes are
added with the modeller's own API (``modeling``); every property is typed into the panels, and the saved files are
checked to be what the server deploys. Skipped like test_browser.py without chromium, Playwright or the built
front-end assets.
"""
from __future__ import annotations

import re
import time

import pytest
from browser_support import browser, checked_page, expect, shots  # noqa: F401 (fixtures)
from sqlalchemy import select

from service import deployments, tenancy
from service.models import Case, Deployment, OpenTask, ProcessVersion, db
from service.pathway_diff import version_files

pytestmark = pytest.mark.browser

ANALYST = f"{shots.COUNCIL}.analyst"
APPROVER = f"{shots.COUNCIL}.approver"
WORKER = f"{shots.COUNCIL}.social.worker"
KEY = "carmarthenshire_early_help_review"
NAME = "Early help review"
FORM_ID, DECISION = "Form_Assessment", "Decision_Level"
FORM_FILE, TABLE_FILE = f"{KEY}_form_assessment.form", f"{KEY}_decision_level.dmn"  # named by the editor
SCENARIO = "Four needs: targeted help, a reminder a week on, then closed"

#: What the analyst draws after the blank template's assessment, with the modeller's own commands (dragging shapes
#: on the canvas is what is fragile): the end moved right, a business rule task, the review, its reminder timer
#: (non-interrupting, to an end of its own) and the flows. Their properties are typed into the panel.
DRAW = """() => {
  const m = document.getElementById('editor').stepModeler;
  const registry = m.get('elementRegistry'), modeling = m.get('modeling');
  const assess = registry.get('Task_Assess'), closed = registry.get('Event_Closed');
  modeling.removeElements([registry.get('Flow_AssessToClosed')]);
  modeling.moveShape(closed, {x: 300, y: 0});
  const level = modeling.createShape({type: 'bpmn:BusinessRuleTask'}, {x: 545, y: 180}, assess.parent);
  modeling.updateProperties(level, {id: 'Task_Level', name: 'Decide the level of help'});
  const review = modeling.createShape({type: 'bpmn:UserTask'}, {x: 700, y: 180}, assess.parent);
  modeling.updateProperties(review, {id: 'Task_Review', name: 'Review the plan with the family'});
  modeling.connect(assess, level);
  modeling.connect(level, review);
  modeling.connect(review, closed);
  const timer = modeling.createShape({type: 'bpmn:BoundaryEvent', eventDefinitionType: 'bpmn:TimerEventDefinition'},
                                     {x: 720, y: 220}, review, {attach: true});
  modeling.updateProperties(timer, {id: 'Event_ReviewReminder', name: 'Not reviewed in a week', cancelActivity: false});
  const reminded = modeling.createShape({type: 'bpmn:EndEvent'}, {x: 790, y: 255}, assess.parent);
  modeling.updateProperties(reminded, {id: 'Event_Reminded', name: 'Reminded'});
  modeling.connect(timer, reminded);
}"""

#: The reminder's extension properties (docs/writing-pathways.md: ``notify`` makes a timer remind).
REMINDS = """() => {
  const m = document.getElementById('editor').stepModeler;
  const moddle = m.get('moddle');
  const property = (name, value) => moddle.create('camunda:Property', {name, value});
  const properties = moddle.create('camunda:Properties', {values: [property('notify', 'task'),
      property('subject', 'The plan with the family is not yet reviewed')]});
  m.get('modeling').updateProperties(m.get('elementRegistry').get('Event_ReviewReminder'),
      {extensionElements: moddle.create('bpmn:ExtensionElements', {values: [properties]})});
}"""

#: A bpmn element's attribute as the modeller holds it now (the panel writes what is typed after a short pause).
ATTRIBUTE = """([id, name]) => {
  const bo = document.getElementById('editor').stepModeler.get('elementRegistry').get(id).businessObject;
  if (name === 'timer') { const d = bo.eventDefinitions[0]; return d.timeDuration ? d.timeDuration.body : null; }
  return bo.get(name);
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo site (Carmarthenshire: four eyes, a pathway approver and a social worker)."""
    with shots.running_site(tmp_path_factory.mktemp("web-analyst-walk")) as site:
        with site.app.app_context():
            assert tenancy.council_by_key(db.session, shots.COUNCIL).requires_approval
            db.session.rollback()
        yield site


def eventually(page, script: str, arg, expected, timeout: float = 10.0):
    """Wait until ``script(arg)`` in the page answers ``expected`` (what was typed has reached the model)."""
    deadline = time.monotonic() + timeout
    while (found := page.evaluate(script, arg)) != expected:
        assert time.monotonic() < deadline, f"{arg}: {found!r}, expected {expected!r}"
        page.wait_for_timeout(100)


def type_into(page, box, text: str) -> None:
    """Click into a field and put ``text`` over what it holds: an input's value in one input event (typed key by
    key, a properties panel input re-rendered by its own debounced change could lose the keys after it, as on a
    loaded machine), a contenteditable editor's key by key."""
    box.click()
    if box.evaluate("e => e.tagName === 'INPUT' || e.tagName === 'TEXTAREA'"):
        box.fill(text)
        return
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def sign_in(page, site, name: str) -> None:
    if page.get_by_role("button", name="Sign out").count():
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/sign-in"))
    shots.sign_in(page, site, name)


def in_council(site):
    tenancy.act_for(db.session, tenancy.council_by_key(db.session, shots.COUNCIL))


def test_an_analyst_draws_rehearses_and_submits_a_pathway_an_approver_publishes_it_a_worker_starts_a_case(
        site, browser):  # noqa: F811 (the fixture imported above)
    began = time.monotonic()
    page = checked_page(browser)
    # the server's checks (a deploy's, on Check, Save, Add and Publish) take seconds, more on a loaded machine
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    main = page.locator("main")
    laps: list[str] = []

    def lap(step: str) -> None:
        laps.append(f"{step} {time.monotonic() - began:.0f} s")

    try:
        _walk(page, site, main, lap)
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for the modules after this one
        page.context.close()
        print("the analyst's walk:", ", ".join(laps))
    assert page.problems == []


def _walk(page, site, main, lap) -> None:
    # -- 1. a new pathway from the blank template, open in the editor --------------------------------------
    sign_in(page, site, ANALYST)
    page.get_by_role("link", name="Analyst workspace").click()
    page.get_by_role("link", name="Start a new pathway").click()
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Process id").fill(KEY)
    page.get_by_label("The blank template").check()
    page.get_by_role("button", name="Create and draw it").click()
    page.locator("#editor.sp-editor--ready").wait_for()
    expect(page.get_by_text(f"{NAME} is saved as version 1 (a draft")).to_be_visible()
    panel = page.locator("#editor-panel")

    def choose(element_id: str, name: str) -> None:
        page.locator(f'#editor-canvas g.djs-element[data-element-id="{element_id}"]').click()
        expect(panel.locator(".bio-properties-panel-header-label")).to_have_text(name)

    def group(title: str) -> None:
        header = panel.locator(".bio-properties-panel-group-header", has_text=title)
        if "open" not in (header.get_attribute("class") or ""):
            header.click()

    lap("new pathway")

    # -- 2. a new form and a new decision table, added in the editor and changed there ----------------------
    page.get_by_label("Id of the new form").fill("Form assessment")  # a mistake: a space
    page.get_by_role("button", name="Add a form").click()
    expect(page.locator("#new-form-id-error")).to_contain_text("Enter an id of up to 63 letters")
    page.get_by_label("Id of the new form").fill(FORM_ID)
    page.get_by_role("button", name="Add a form").click()
    form = page.locator(f'.sp-file-editor__canvas--form[data-file="{FORM_FILE}"]')
    expect(form).to_have_class(re.compile("sp-file-editor--ready"))
    expect(page.locator("#new-form-id-error")).to_be_hidden()
    form.locator(".fjs-form .fjs-form-field-textfield").first.click()  # the blank form's one question
    properties = form.locator(".fjs-properties-container")
    _general(properties)
    type_into(page, properties.locator("#bio-properties-panel-label"), "What the family need")
    type_into(page, properties.locator("#bio-properties-panel-key"), "family_needs")
    field_keys = f"""() => document.querySelector('[data-file="{FORM_FILE}"]').stepEditor.saveSchema()
        .components.map(c => c.key + ':' + c.label).sort().join('|')"""
    eventually(page, field_keys, None, "family_needs:What the family need")  # in the form before the next field
    _drag_a_field(page, form, "Number", ".fjs-form-field-number", 1)
    expect(properties.locator(".bio-properties-panel-header-type")).to_have_text(re.compile("number", re.IGNORECASE))
    _general(properties)
    type_into(page, properties.locator("#bio-properties-panel-label"), "Number of needs the family have")
    type_into(page, properties.locator("#bio-properties-panel-key"), "needs_count")
    eventually(page, field_keys, None, "family_needs:What the family need|needs_count:Number of needs the family have")

    page.get_by_label("Id of the new decision").fill(DECISION)
    page.get_by_role("button", name="Add a decision table").click()
    table = page.locator(f'.sp-file-editor__canvas--dmn[data-file="{TABLE_FILE}"]')
    expect(table).to_have_class(re.compile("sp-file-editor--ready"))
    expect(table.locator(".tjs-table")).to_be_visible()
    # the header's edit button (under dmn-js's drag handle, which takes the pointer: its click as the handle passes it)
    table.locator('button[aria-label="Edit input"]').first.dispatch_event("click")
    editing = page.locator(".ref-input-editor")
    expect(editing).to_be_visible()
    type_into(page, editing.locator(".ref-text").first, "needs_count")
    page.keyboard.press("Escape")
    rule = table.locator("tbody tr").first
    type_into(page, rule.locator("td.input-cell"), "< 3")
    type_into(page, rule.locator("td.output-cell"), '"universal"')
    table_cells = f"""() => {{ const dmn = document.querySelector('[data-file="{TABLE_FILE}"]').stepEditor;
        const decision = dmn.getDefinitions().drgElement.find(d => d.id === '{DECISION}');
        const table = decision.decisionLogic;
        return [table.input[0].inputExpression.text, ...table.rule.map(r =>
            [...r.inputEntry, ...r.outputEntry].map(e => e.text).join(' -> '))].join('|'); }}"""
    eventually(page, table_cells, None, 'needs_count|< 3 -> "universal"')

    lap("form and table added")

    # -- 3. the assessment's form, a decision, a reminder: drawn, then each property typed into the panel ---
    choose("Task_Assess", "Assess the family's needs")
    group("Forms")
    panel.locator("#bio-properties-panel-formType").select_option("formRef")  # "Camunda Forms (linked)"
    type_into(page, panel.locator("#bio-properties-panel-formRef"), FORM_ID)
    eventually(page, ATTRIBUTE, ["Task_Assess", "formRef"], FORM_ID)
    page.evaluate(DRAW)
    choose("Task_Level", "Decide the level of help")
    group("Implementation")
    panel.locator("#bio-properties-panel-implementationType").select_option("dmn")
    type_into(page, panel.locator("#bio-properties-panel-decisionRef"), DECISION)
    type_into(page, panel.locator("#bio-properties-panel-decisionRefResultVariable"), "level")
    panel.locator("#bio-properties-panel-mapDecisionResult").select_option("singleEntry")
    eventually(page, ATTRIBUTE, ["Task_Level", "decisionRef"], DECISION)
    eventually(page, ATTRIBUTE, ["Task_Level", "resultVariable"], "level")
    choose("Event_ReviewReminder", "Not reviewed in a week")
    group("Timer")
    panel.locator("#bio-properties-panel-timerEventDefinitionType").select_option("timeDuration")
    type_into(page, panel.locator("#bio-properties-panel-timerEventDefinitionValue"), "7 days")  # a mistake
    eventually(page, ATTRIBUTE, ["Event_ReviewReminder", "timer"], "7 days")
    page.evaluate(REMINDS)

    lap("drawn")

    # -- 4. the problem: marked on the timer and listed; fixed from its line; the draft saved ------------------
    page.get_by_role("button", name="Check the diagram").click()
    problems = page.locator("#problems-list")
    expect(problems).to_contain_text("timer: '7 days' is not a valid expression")
    expect(problems).to_contain_text("Event_ReviewReminder")
    marked = page.locator('#editor-canvas g.djs-element.sp-problem[data-element-id="Event_ReviewReminder"]')
    expect(marked).to_have_count(1)
    expect(page.locator("#editor-canvas .djs-overlay .sp-diff-label--error")).to_have_text(["Problem 1"])
    page.get_by_role("button", name="Show Event_ReviewReminder on the diagram").click()
    expect(panel.locator(".bio-properties-panel-header-label")).to_have_text("Not reviewed in a week")
    group("Timer")
    type_into(page, panel.locator("#bio-properties-panel-timerEventDefinitionValue"), "P7D")
    eventually(page, ATTRIBUTE, ["Event_ReviewReminder", "timer"], "P7D")
    page.get_by_role("button", name="Check the diagram").click()
    expect(page.get_by_text("No problems: the diagram passes every check a deployment runs.")).to_be_visible()
    expect(page.locator("#editor-canvas g.djs-element.sp-problem")).to_have_count(0)
    expect(problems.locator("li")).to_have_count(0)
    page.get_by_role("button", name="Save as a new version").click()
    page.wait_for_url(re.compile(r".*/analyst/versions/\d+$"))
    expect(page.get_by_text(f"Saved as draft version 2 of {NAME}")).to_be_visible()
    with site.app.app_context():  # the new form and table are the new version's
        in_council(site)
        saved = db.session.scalars(select(ProcessVersion).where(ProcessVersion.key == KEY,
                                                                ProcessVersion.version == 2)).one()
        assert {f"{KEY}.bpmn", FORM_FILE, TABLE_FILE} <= set(version_files(db.session, saved))
        db.session.rollback()

    lap("problem fixed, saved")

    # -- the new version's form and decision table, in their own editors ------------------------------------
    page.get_by_role("link", name="Draw a new version from this one").click()
    page.locator("#editor.sp-editor--ready").wait_for()
    page.locator("summary", has_text=FORM_FILE).click()
    form = page.locator(f'.sp-file-editor__canvas--form[data-file="{FORM_FILE}"]')
    expect(form).to_have_class(re.compile("sp-file-editor--ready"))
    _drag_a_field(page, form, "Text field", ".fjs-form-field-textfield", 2)
    properties = form.locator(".fjs-properties-container")
    expect(properties.locator(".bio-properties-panel-header-type")).to_have_text(re.compile("text field", re.IGNORECASE))
    _general(properties)
    type_into(page, properties.locator("#bio-properties-panel-label"), "Who the family would like to work with")
    type_into(page, properties.locator("#bio-properties-panel-key"), "preferred_worker")
    eventually(page, field_keys, None, "family_needs:What the family need|needs_count:Number of needs the family "
               "have|preferred_worker:Who the family would like to work with")

    table = page.locator(f'.sp-file-editor__canvas--dmn[data-file="{TABLE_FILE}"]')
    expect(table.locator(".tjs-table")).to_be_visible()
    table.locator("td.add-rule-add").click()
    rule = table.locator("tbody tr").nth(1)
    rule.locator("td.input-cell").click()
    page.keyboard.type(">= 3")
    rule.locator("td.output-cell").click()
    page.keyboard.type('"targeted"')
    rule_cells = f"""() => {{ const dmn = document.querySelector('[data-file="{TABLE_FILE}"]').stepEditor;
        const decision = dmn.getDefinitions().drgElement.find(d => d.id === '{DECISION}');
        return decision.decisionLogic.rule.map(r => [...r.inputEntry, ...r.outputEntry].map(e => e.text).join(' -> ')).join('|'); }}"""
    eventually(page, rule_cells, None, '< 3 -> "universal"|>= 3 -> "targeted"')
    page.get_by_role("button", name="Save as a new version").click()  # checked, then saved with the diagram
    page.wait_for_url(re.compile(r".*/analyst/versions/\d+$"))
    expect(page.get_by_text(f"Saved as draft version 3 of {NAME}")).to_be_visible()
    with site.app.app_context():  # what the browser saved is what the server deployed
        in_council(site)
        saved = db.session.scalars(select(ProcessVersion).where(ProcessVersion.key == KEY,
                                                                ProcessVersion.version == 3)).one()
        assert saved.status == "draft"
        files = version_files(db.session, saved)
        assert {f"{KEY}.bpmn", FORM_FILE, TABLE_FILE} <= set(files)
        diagram = files[f"{KEY}.bpmn"].decode()
        for written in (f'camunda:formRef="{FORM_ID}"', f'camunda:decisionRef="{DECISION}"',
                        'camunda:resultVariable="level"', 'camunda:mapDecisionResult="singleEntry"',
                        'cancelActivity="false"', ">P7D<", 'name="notify" value="task"'):
            assert written in diagram, written
        assert '"key": "preferred_worker"' in files[FORM_FILE].decode()
        assert "&gt;= 3" in files[TABLE_FILE].decode() and '"targeted"' in files[TABLE_FILE].decode()
        db.session.rollback()

    lap("form and table saved")

    # -- 4. rehearsed over a month, recorded as a scenario, added to the pathway ------------------------------
    page.get_by_role("link", name="Rehearse this version").click()
    page.get_by_label("Name of the rehearsal (optional)").fill("Four needs over a month")
    page.get_by_label("Start it as").select_option("social_worker")
    page.get_by_label("Day").fill("4")
    page.get_by_label("Month").fill("1")
    page.get_by_label("Year").fill("2027")
    page.get_by_role("button", name="Start the rehearsal").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+$"))
    expect(main).to_contain_text("Monday 4 January 2027 at 9am")
    page.locator("table.sp-rehearsal-tasks tbody tr", has_text="Assess the family's needs").get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+/tasks/.+"))
    page.get_by_label("What the family need").fill("Support with routines and school attendance")
    page.get_by_label("Who the family would like to work with (optional)").fill("Their school's family worker")
    page.get_by_label("Number of needs the family have").fill("4")
    page.get_by_role("button", name="Complete task").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+$"))
    expect(main).to_contain_text("You completed 'Assess the family's needs' as Social worker")
    review = page.locator("table.sp-rehearsal-tasks tbody tr", has_text="Review the plan with the family")
    expect(review).to_have_count(1)
    page.get_by_role("button", name="Move on 4 weeks").click()
    expect(main).to_contain_text("The sandbox clock is now Monday 1 February 2027 at 9am")
    expect(main).to_contain_text("What fired on the way: 'Not reviewed in a week'")
    notices = page.locator(".sp-rehearsal-notifications")
    expect(notices).to_contain_text("The plan with the family is not yet reviewed")
    expect(notices).to_contain_text("11 January 2027 at 9am, to Social worker")
    page.locator("summary", has_text="What the case knows now").click()
    known = page.locator("details", has_text="What the case knows now")
    expect(known).to_contain_text(re.compile(r"level\s*targeted"))  # the rule typed into the table decided it
    review.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+/tasks/.+"))
    page.get_by_role("button", name="Complete task").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+$"))
    expect(main).to_contain_text("Finished: closed")
    page.get_by_label("What the scenario shows").fill(SCENARIO)
    page.get_by_role("button", name="Add it to the pathway").click()
    page.wait_for_url(re.compile(r".*/analyst/versions/\d+$"))
    expect(main).to_contain_text("The scenario is added to the pathway in a new draft")
    expect(main).to_contain_text("Version 4")
    expect(main).to_contain_text(re.compile(re.escape(SCENARIO) + r"\s*Passed"))
    version_url = page.url
    with site.app.app_context():
        in_council(site)
        draft = db.session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).one()
        assert draft.status == "draft" and draft.source == "rehearsal"
        deployment_id = draft.id
        db.session.rollback()

    lap("rehearsed, scenario added")

    # -- 5. submitted for approval; the council's pathway approver reads the scenario's result and publishes -----
    if not _approval_pages(page, site):
        pytest.skip("the approval pages are not built yet: 'Submit for approval' on /analyst/versions/<id> and "
                    "/analyst/approvals/<deployment_id> with 'Publish' (issue 17 item 4, branch approval); every "
                    "step before submitting passed")
    page.goto(version_url)
    page.get_by_label("Note for the approver").fill("A new pathway: early help review, rehearsed over a month.")
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.locator(".govuk-notification-banner--success")).to_contain_text("Sent for approval")
    sign_in(page, site, APPROVER)
    page.goto(f"{site.url}/analyst/approvals")
    page.locator(f'a[href$="/analyst/approvals/{deployment_id}"]').first.click()
    page.wait_for_url(f"{site.url}/analyst/approvals/{deployment_id}")
    expect(main).to_contain_text(NAME)
    expect(main).to_contain_text(re.compile(re.escape(SCENARIO) + r"\s*Passed"))
    page.get_by_label("Reason").fill("Read the pathway and its scenario's results.")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".govuk-notification-banner--success")).to_contain_text("Published")
    with site.app.app_context():
        in_council(site)
        assert deployments.current_version(db.session, KEY).version == 4
        db.session.rollback()

    lap("published")

    # -- 6. the social worker starts a case of it, and its first task is there --------------------------------
    sign_in(page, site, WORKER)
    page.get_by_role("link", name="Start a referral").first.click()
    page.locator(".sp-pathway-list a").get_by_text(NAME, exact=True).click()
    page.get_by_role("heading", name="Who is the referral about?").wait_for()
    page.get_by_label("First name").fill("Eira")
    page.get_by_label("Last name").fill("Lloyd")
    page.get_by_label("Day").fill("9")
    page.get_by_label("Month").fill("3")
    page.get_by_label("Year").fill("2016")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Case number").fill("CF-EHR-1")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Check your answers before starting the referral")).to_be_visible()
    page.get_by_role("button", name="Start the referral").click()
    expect(page.get_by_role("heading", name="Referral started")).to_be_visible()
    expect(main).to_contain_text("CF-EHR-1")
    expect(main).to_contain_text("Assess the family's needs")
    page.get_by_role("link", name="Inbox").first.click()
    expect(page.locator("main tr", has_text="CF-EHR-1")).to_contain_text("Assess the family's needs")
    with site.app.app_context():
        in_council(site)
        case = db.session.scalars(select(Case).where(Case.reference == "CF-EHR-1")).one()
        assert case.process.key == KEY and case.process.version == 4
        assert [t.name for t in db.session.scalars(select(OpenTask).where(OpenTask.case_id == case.id,
                                                                            OpenTask.closed_at.is_(None)))] == \
            ["Task_Assess"]
        db.session.rollback()
    lap("case started")


def _general(properties) -> None:
    """Open the form editor's properties panel's General group (the label and key) unless it is open."""
    general = properties.locator(".bio-properties-panel-group-header", has_text="General")
    if "open" not in (general.get_attribute("class") or ""):
        general.click()


def _drag_a_field(page, form, entry: str, css: str, count: int) -> None:
    """Drag ``entry`` from form-js's palette under the form's last question (its own drag and drop, by mouse), until
    the form has ``count`` fields matching ``css``."""
    for _ in range(2):  # a drop that did not land (the machine busy mid-drag) is tried once more
        source = form.locator(".fjs-palette-field", has_text=entry).first.bounding_box()
        target = form.locator(".fjs-form .fjs-layout-row:visible").last.bounding_box()
        page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(source["x"] + source["width"] / 2 + 20, source["y"] + source["height"] / 2 + 5, steps=5)
        page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] - 3, steps=15)
        page.wait_for_timeout(200)
        page.mouse.up()
        try:
            expect(form.locator(f".fjs-form {css}")).to_have_count(count, timeout=3_000)
            return
        except AssertionError:
            continue
    expect(form.locator(f".fjs-form {css}")).to_have_count(count)


def _approval_pages(page, site) -> bool:
    """Whether the service has the approval pages yet (branch approval): the approvals list answers."""
    return page.request.get(f"{site.url}/analyst/approvals").status == 200
