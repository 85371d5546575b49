"""Rehearsing a pathway in a real browser (Debian's chromium via Playwright), issue 17 item 5: Carmarthenshire's
analyst rehearses the step-down pathway over a month from its version page: starts it with the start form, sees
the task due by the sandbox clock, moves the clock a week and sees the reminder the service would have sent,
completes JAFF part 1 as the social worker through the task's own form (its error summary first), sees the next
task due two working days after the sandbox clock, moves four weeks on (the task overdue by the sandbox clock),
sees the path on the diagram, downloads the rehearsal as a scenario file and adds it to the pathway as a draft.
axe-core finds nothing on the pages. Nothing of it is a real case. Skipped like test_browser.py without chromium,
Playwright or the built front-end assets. STEP_SCREENSHOTS=1 refreshes docs/screenshots/rehearsal-*.png.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser_support import axe, browser, expect, page, reflows, shot, shots  # noqa: F401 (fixtures)
from sqlalchemy import func, select

from service import tenancy
from service.models import Case, Deployment, Notification, OpenTask, PendingTimer, ProcessVersion, Rehearsal, db

pytestmark = pytest.mark.browser

ANALYST = f"{shots.COUNCIL}.analyst"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with shots.running_site(tmp_path_factory.mktemp("web-rehearsal")) as site:
        with site.app.app_context():
            tenancy.act_for(db.session, tenancy.council_by_key(db.session, shots.COUNCIL))
            site.version = db.session.scalars(select(ProcessVersion.id).where(ProcessVersion.key == shots.KEY)).one()
            site.rows = _real_rows()
        yield site


def _real_rows() -> tuple[int, ...]:
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Case, OpenTask, PendingTimer, Notification))


def task_row(page, title: str):
    return page.locator("table.sp-rehearsal-tasks tbody tr", has_text=title)


def test_an_analyst_rehearses_the_step_down_over_a_month_and_records_a_scenario(site, page, tmp_path):
    violations = {}
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.version}")
    page.get_by_role("link", name="Rehearse this version").click()
    page.wait_for_url(f"{site.url}/analyst/versions/{site.version}/rehearse")

    # the start form, checked as a referral's is: an answer missing is an error at its field
    page.get_by_label("Name of the rehearsal (optional)").fill("Ten weeks open, family accepts support")
    page.get_by_label("Start it as").select_option("social_worker")
    page.get_by_label("Day").fill("4")
    page.get_by_label("Month").fill("1")
    page.get_by_label("Year").fill("2027")
    page.get_by_label("Weeks the case has been open to Social Services").fill("10")
    page.get_by_role("button", name="Start the rehearsal").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_be_visible()
    violations["start with an error"] = axe(page)
    page.locator("#family_accepts_support").check()  # the first radio: Yes
    page.locator("#safety_plan").check()
    page.get_by_label("Family name (optional)").fill("Rehearsal")
    page.get_by_role("button", name="Start the rehearsal").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+$"))

    # the first task, due five working days after the sandbox clock (not the service's)
    main = page.locator("main")
    expect(main).to_contain_text("Monday 4 January 2027 at 9am")
    row = task_row(page, "Complete JAFF part 1 with the family")
    expect(row).to_contain_text("11 January 2027 at 9am")
    expect(row).not_to_contain_text("Overdue")
    page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
    expect(page.locator('#diagram g.djs-element.sp-current[data-element-id="Task_CompleteJaffPart1"]')).to_have_count(1)
    expect(page.locator('#diagram g.djs-element.sp-path[data-element-id="Event_StepDownRequested"]')).to_have_count(1)
    violations["started"] = axe(page)
    assert reflows(page), "the rehearsal page scrolls sideways at 320 px"
    shot(page, "rehearsal-started", tmp_path)

    # a week on: the reminder fired on the way, worded as the service would have sent it
    page.get_by_role("button", name="Move on 1 week").click()
    expect(main).to_contain_text("The sandbox clock is now Monday 11 January 2027 at 9am")
    notices = page.locator(".sp-rehearsal-notifications")
    expect(notices).to_contain_text("JAFF part 1 for the step down to TAF is not yet sent")
    expect(notices).to_contain_text("Social worker")

    # the task, through the task pages' own form and checks
    task_row(page, "Complete JAFF part 1 with the family").get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+/tasks/.+"))
    page.get_by_role("button", name="Complete task").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text(
        "Enter clear outcomes for intervention identified with the family")
    violations["task with an error"] = axe(page)
    shot(page, "rehearsal-task-with-error", tmp_path)
    page.locator("#family_outcomes").fill("Regular school attendance; calmer bedtimes.")
    page.get_by_label("Given", exact=True).check()
    page.get_by_label("JAFF part 1 has been shared with the family before sending").check()
    page.get_by_label("Signed by the family").check()
    page.get_by_role("button", name="Complete task").click()
    page.wait_for_url(re.compile(r".*/analyst/rehearsals/\d+$"))
    expect(main).to_contain_text("You completed 'Complete JAFF part 1 with the family' as Social worker")
    check = task_row(page, "Check JAFF part 1 in the TAF box")
    expect(check).to_contain_text("13 January 2027 at 9am")  # two working days after Monday 11 January

    # four weeks on: the due date stays, and is overdue by the sandbox clock
    page.get_by_role("button", name="Move on 4 weeks").click()
    expect(main).to_contain_text("Monday 8 February 2027 at 9am")
    check = task_row(page, "Check JAFF part 1 in the TAF box")
    expect(check).to_contain_text("13 January 2027 at 9am")
    expect(check).to_contain_text("Overdue")
    page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
    expect(page.locator('#diagram g.djs-element.sp-path[data-element-id="Task_CompleteJaffPart1"]')).to_have_count(1)
    expect(page.locator('#diagram g.djs-element.sp-current[data-element-id="Task_CheckJaffPart1"]')).to_have_count(1)
    violations["a month on"] = axe(page)
    shot(page, "rehearsal-a-month-on", tmp_path)
    assert violations == {name: [] for name in violations}

    # record it as a scenario: download the file, then add it to the pathway (a draft: Carmarthenshire has four eyes)
    page.get_by_label("What the scenario shows").fill("Ten weeks open: reminder, then JAFF part 1 sent")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the scenario file").click()
    assert download.value.suggested_filename == \
        "carmarthenshire_step_down.ten_weeks_open_reminder_then_jaff_part_1_sent.scenario.json"
    scenario = json.loads(Path(download.value.path()).read_text())
    assert scenario["process"] == shots.KEY and scenario["start"]["data"]["weeks_open"] == 10
    assert [s.get("clock") or s.get("complete") for s in scenario["steps"]] == \
        ["+1 week", "Task_CompleteJaffPart1", "+4 weeks"]
    page.get_by_role("button", name="Add it to the pathway").click()
    page.wait_for_url(re.compile(r".*/analyst/versions/\d+$"))
    expect(main).to_contain_text("The scenario is added to the pathway in a new draft")
    with site.app.app_context():
        tenancy.act_for(db.session, tenancy.council_by_key(db.session, shots.COUNCIL))
        latest = db.session.scalars(select(Deployment).order_by(Deployment.id.desc()).limit(1)).one()
        assert latest.status == "draft" and latest.source == "rehearsal"
        assert "carmarthenshire_step_down.ten_weeks_open_reminder_then_jaff_part_1_sent.scenario.json" in \
            {f.name for f in latest.files}
        assert db.session.scalar(select(func.count()).select_from(Rehearsal)) == 1
        assert _real_rows() == site.rows  # no case, task, timer or notification came of the rehearsal
    assert page.problems == []
