"""Drafts and approval in a real browser (Debian's chromium via Playwright): the demo analyst submits a draft
from its version page with a note, finds it under "Waiting for approval" and is told they cannot approve their
own change; the demo pathway approver reads what changed, tries to reject it without a reason (the GOV.UK error
summary), then publishes it, and new cases start from it. axe-core finds nothing on the approvals list and the
approval page. Skipped like test_browser.py without chromium, playwright or the built front-end assets. With
STEP_SCREENSHOTS=1 the screenshots refresh docs/screenshots/analyst-approvals.png and analyst-approval.png.
"""
from __future__ import annotations

import re

import pytest
from browser_support import axe, browser, expect, page, reflows, shot, shots  # noqa: F401 (fixtures)
from sqlalchemy import select

from service import deployments, tenancy
from service.models import ProcessVersion, User, db

pytestmark = pytest.mark.browser

ANALYST = f"{shots.COUNCIL}.analyst"
APPROVER = f"{shots.COUNCIL}.approver"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo site (its council requires approval, as a real council does) with a draft of version 2 of the
    step-down pathway, deployed by the demo analyst: the decline task renamed."""
    with shots.running_site(tmp_path_factory.mktemp("web-approval")) as site:
        with site.app.app_context():
            council = tenancy.council_by_key(db.session, shots.COUNCIL)
            assert council.requires_approval
            tenancy.act_for(db.session, council)
            site.time.move_to(shots.LATER.replace(hour=14))
            files = shots.pathway_files()
            files["carmarthenshire_step_down.bpmn"] = files["carmarthenshire_step_down.bpmn"].replace(
                b'name="Explain the decline to the social worker"',
                b'name="Explain the decline to the social worker and family"')
            analyst = db.session.scalars(select(User).where(User.name == ANALYST)).one()
            result = deployments.deploy(db.session, files, ANALYST, analyst.id, publish=False)
            assert result.created and result.deployment.status == "draft"
            site.deployment = result.deployment.id
            site.version = db.session.scalars(select(ProcessVersion.id).where(
                ProcessVersion.key == shots.KEY, ProcessVersion.version == 2)).one()
            db.session.commit()
        yield site


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()


def test_an_analyst_submits_a_draft_and_an_approver_publishes_it(site, page, tmp_path):
    shots.sign_in(page, site, ANALYST)
    page.goto(f"{site.url}/analyst/versions/{site.version}")
    page.get_by_label("Note for the approver").fill("The decline is now explained to the family as well.")
    page.get_by_role("button", name="Submit for approval").click()
    page.wait_for_url(f"{site.url}/analyst/versions/{site.version}")
    expect(page.locator(".govuk-notification-banner--success")).to_contain_text("Sent for approval")

    page.get_by_role("link", name="Waiting for approval").first.click()
    page.wait_for_url(f"{site.url}/analyst/approvals")
    row = page.locator(f'tr[data-deployment="{site.deployment}"]')
    assert "explained to the family" in row.inner_text() and "Version 2" in row.inner_text()
    violations = {"approvals": axe(page)}
    assert reflows(page), "the approvals list scrolls sideways at 320 px"
    shot(page, "analyst-approvals", tmp_path)
    row.get_by_role("link").first.click()
    page.wait_for_url(f"{site.url}/analyst/approvals/{site.deployment}")
    expect(page.locator("main")).to_contain_text("You cannot approve your own change: another pathway approver must")
    expect(page.get_by_role("button", name="Publish")).to_have_count(0)
    sign_out(page)

    shots.sign_in(page, site, APPROVER)
    page.get_by_role("link", name="Waiting for approval").first.click()
    page.locator(f'tr[data-deployment="{site.deployment}"]').get_by_role("link").first.click()
    page.wait_for_url(f"{site.url}/analyst/approvals/{site.deployment}")
    changes = page.locator("table.sp-changes")
    assert "Explain the decline to the social worker and family" in changes.inner_text()
    violations["approval"] = axe(page)
    assert reflows(page), "the approval page scrolls sideways at 320 px"
    shot(page, "analyst-approval", tmp_path)

    page.get_by_role("button", name="Reject").click()  # no reason
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "Enter why you are rejecting it" in summary.inner_text()
    assert summary.get_by_role("link").first.get_attribute("href") == "#reason"
    violations["approval with an error"] = axe(page)

    page.get_by_label("Reason").fill("Read the change and the scenario results.")
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url(f"{site.url}/analyst/approvals/{site.deployment}")
    expect(page.locator(".govuk-notification-banner--success")).to_contain_text("Published")
    expect(page.locator("table.sp-history")).to_contain_text("Read the change and the scenario results.")
    with site.app.app_context():
        tenancy.act_for(db.session, tenancy.council_by_key(db.session, shots.COUNCIL))
        assert deployments.current_version(db.session, shots.KEY).id == site.version
    page.goto(f"{site.url}/analyst/versions/{site.version}")
    assert re.search(r"Suspend \(no new cases\)", page.locator("main").inner_text())
    assert violations == {name: [] for name in violations}
    assert page.problems == []
