"""Screenshots of the case pages for the README: starting a referral (the pathways, the child, check your answers,
the confirmation), finding a case and its family, a task page showing the case, the immediate risk flow and the
notifications page, at desktop width and at 320 pixels.

    .venv/bin/python docs/make_case_screenshots.py     # writes docs/screenshots/*.png

The same running site as docs/make_screenshots.py (the demo users, the Carmarthenshire step-down pathway).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
sys.path.insert(0, str(ROOT))

import make_screenshots as shots

from service import cases, tenancy
from service.engine import clock
from service.models import Council, Notification, User, db


def _prepare(site) -> int:
    with site.app.app_context():
        council = db.session.query(Council).filter_by(key=shots.COUNCIL).one()
        tenancy.act_for(db.session, council)
        case = cases.start_case(db.session, shots.KEY, "CF-2100", {"weeks_open": 12, "family_name": "Morgan",
                                                                    "care_first_reference": "CF-2100",
                                                                    "family_accepts_support": "yes",
                                                                    "safety_plan": "yes"}, cases.SERVICE)
        user = db.session.query(User).filter_by(name=shots.WORKER).one()
        db.session.add(Notification(user_id=user.id, case_id=case.id, task="Task_CompleteJaffPart1", kind="reminder",
                                    subject="Reminder: Complete JAFF part 1 with the family (case CF-2100)",
                                    body="Case: CF-2100 (Step down from statutory services to TAF)\n"
                                         "Step: Complete JAFF part 1 with the family\nThis step is 1 day late.",
                                    created_at=clock.now()))
        db.session.commit()
        return case.id


def _start_a_referral(page, site, out: Path) -> None:
    """A referral started from the pages, then found again by the child's name, and the child's family."""
    page.goto(f"{site.url}/start")
    page.screenshot(path=str(out / "start-a-referral.png"), full_page=True)
    page.locator(".sp-pathway-list a").first.click()
    page.get_by_label("First name").fill("Ceri")
    page.get_by_label("Last name").fill("Llewellyn")
    page.get_by_label("Day").fill("14")
    page.get_by_label("Month").fill("2")
    page.get_by_label("Year").fill("2016")
    page.screenshot(path=str(out / "start-the-child.png"), full_page=True)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Case number").fill("CF-4001")
    page.get_by_label("Weeks the case has been open to Social Services").fill("12")
    page.get_by_role("group", name="Do the family still have a need and accept support from TAF?").get_by_label(
        "Yes", exact=True).check()
    page.get_by_role("group", name="Can the family manage their own safety plan?").get_by_label(
        "Yes", exact=True).check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Check your answers before starting the referral").wait_for()
    page.screenshot(path=str(out / "start-check-your-answers.png"), full_page=True)
    page.get_by_role("button", name="Start the referral").click()
    page.get_by_role("heading", name="Referral started").wait_for()
    page.screenshot(path=str(out / "start-referral-started.png"), full_page=True)
    page.get_by_role("link", name="Find a case").first.click()
    page.get_by_label("Child's name, date of birth, NHS number or case number").fill("LLEW")
    page.get_by_role("button", name="Search").click()
    page.screenshot(path=str(out / "find-a-case.png"), full_page=True)
    page.get_by_role("link", name="Ceri Llewellyn").click()
    page.get_by_role("heading", name="Llewellyn family").wait_for()
    page.screenshot(path=str(out / "family.png"), full_page=True)


def main() -> None:
    out = shots.SCREENSHOTS
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, shots.running_site(Path(folder)) as site, shots.chromium() as browser:
        case_id = _prepare(site)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        shots.sign_in(page, site)
        page.goto(f"{site.url}/tasks/{site.task_id('CF-2041', 'Task_CompleteJaffPart1')}")
        page.locator(".sp-answers details").first.locator("summary").click()
        page.screenshot(path=str(out / "task-shows-the-case.png"), full_page=True)
        page.goto(f"{site.url}/notifications")
        page.screenshot(path=str(out / "notifications.png"), full_page=True)
        page.goto(f"{site.url}/cases/{case_id}")
        page.locator("#diagram.sp-diagram--ready").wait_for(timeout=15000)
        page.get_by_role("button", name="Raise immediate risk").click()
        page.get_by_role("button", name="Continue").click()
        page.screenshot(path=str(out / "immediate-risk-error.png"), full_page=True)
        page.get_by_label("What has happened?").fill("Disclosure at school this morning: hit with a belt last night.")
        page.get_by_role("button", name="Continue").click()
        page.screenshot(path=str(out / "immediate-risk-check.png"), full_page=True)
        page.get_by_role("button", name="Send the urgent referral").click()
        page.wait_for_url("**/immediate-risk/sent")
        page.screenshot(path=str(out / "immediate-risk-sent.png"), full_page=True)
        _start_a_referral(page, site, out)
        narrow = browser.new_context(viewport={"width": 320, "height": 800}).new_page()
        shots.sign_in(narrow, site)
        narrow.goto(f"{site.url}/cases/{case_id}")
        narrow.screenshot(path=str(out / "case-at-320px.png"), full_page=True)
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
